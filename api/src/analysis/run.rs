//! Running the analysis for a call: the organization's configuration from the store, the
//! turns from the transcript, the analysers on a blocking thread, the result stored. Used by
//! the post-call job (right after transcription, in its transaction) and by re-analysis jobs.

use callscope_analysis::classify::{CallTypeDef, CallTypeSet};
use callscope_analysis::llm::{LanguageModel, LanguageModelUse};
use callscope_analysis::redact::RedactionConfig;
use callscope_analysis::report::{self, Analysed, Analysers, AnalysisConfig, CallInput};
use callscope_analysis::smart::SentenceEncoder;
use callscope_analysis::{Role, TimedWord, Turn};
use callscope_transcription::{Segment, SpeakerRole};
use serde_json::json;
use sqlx::{SqliteConnection, SqlitePool};

use super::config_routes::load_active;
use super::definitions::{RuleDefinition, TemplateDefinition, TrackerDefinition};
use super::llm_client::MissingLanguageModel;
use super::settings::{OrgAnalysisSettings, SentimentChoice};
use crate::http::state::AppState;
use crate::store::calls::Call;
use crate::store::{call_analyses, jobs, recordings, segments};
use crate::worker::JobError;

/// The job that re-analyses one stored call.
pub const KIND_ANALYZE_CALL: &str = "analyze_call";

/// Positions of `segments` in time order: turn `i` is segment `time_order(..)[i]`.
fn time_order(segments: &[Segment]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..segments.len()).collect();
    order.sort_by_key(|&i| (segments[i].start_ms, segments[i].end_ms));
    order
}

/// The transcript as the analysers see it: time order, `index` = position.
pub fn turns_from_segments(segments: &[Segment]) -> Vec<Turn> {
    time_order(segments)
        .into_iter()
        .map(|i| &segments[i])
        .enumerate()
        .map(|(index, s)| Turn {
            index,
            role: match s.role {
                SpeakerRole::Agent => Role::Agent,
                SpeakerRole::Customer => Role::Customer,
                SpeakerRole::Unknown => Role::Unknown,
            },
            speaker: s.speaker_label.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text.clone().unwrap_or_default(),
            words: s
                .words
                .iter()
                .map(|w| TimedWord {
                    text: w.text.clone(),
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                })
                .collect(),
        })
        .collect()
}

/// The organization's settings (defaults when it never changed them).
pub async fn org_settings(
    pool: &SqlitePool,
    org_id: &str,
) -> Result<OrgAnalysisSettings, sqlx::Error> {
    Ok(call_analyses::settings(pool, org_id)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}

/// The call types of the settings as the classifier takes them: the organization's own names
/// (matched by tracker and rule categories of the same name and by the names themselves as
/// words), the last one the fallback; or the default list.
pub fn call_types_of(settings: &OrgAnalysisSettings) -> Option<CallTypeSet> {
    let names = settings.call_types.as_ref()?;
    let fallback = names.last()?.clone();
    Some(CallTypeSet {
        types: names
            .iter()
            .map(|n| CallTypeDef {
                name: n.clone(),
                aliases: Vec::new(),
                cues: vec![n.replace(['_', '-'], " ")],
            })
            .collect(),
        fallback,
        min_evidence: CallTypeSet::default().min_evidence,
    })
}

/// Everything the organization configured, as the analysis crate takes it.
pub async fn org_config(
    pool: &SqlitePool,
    org_id: &str,
    settings: &OrgAnalysisSettings,
) -> Result<AnalysisConfig, sqlx::Error> {
    let trackers: Vec<TrackerDefinition> = load_active(pool, org_id).await?;
    let mut config = AnalysisConfig {
        call_types: call_types_of(settings),
        ..AnalysisConfig::default()
    };
    for t in trackers {
        match t {
            TrackerDefinition::Keyword(k) => config.keyword_trackers.push(k),
            TrackerDefinition::Smart(s) => config.smart_trackers.push(s),
        }
    }
    if settings.default_rules {
        config.rules = callscope_analysis::rules::default_rule_pack();
    }
    let rules: Vec<RuleDefinition> = load_active(pool, org_id).await?;
    config.rules.extend(rules.into_iter().map(|r| r.0));
    let templates: Vec<TemplateDefinition> = load_active(pool, org_id).await?;
    config.scorecard_templates = templates.into_iter().map(|t| t.0).collect();
    config.redaction = RedactionConfig {
        emails: settings.redact_emails,
        phones: settings.redact_phones,
        ..RedactionConfig::default()
    };
    Ok(config)
}

/// Runs the analysers on a blocking thread (models may load on first use, and the analysis
/// of a long call takes CPU time).
pub async fn analyze(
    state: &AppState,
    org_id: &str,
    call: &Call,
    turns: Vec<Turn>,
    duration_ms: Option<u64>,
) -> Result<(Analysed, OrgAnalysisSettings), JobError> {
    let settings = org_settings(&state.pool, org_id).await?;
    let config = org_config(&state.pool, org_id, &settings).await?;
    let manual_call_type = call_analyses::call_type_override(&state.pool, org_id, &call.id).await?;
    let started_ms = call.started_at.unwrap_or(call.created_at);
    let started_at = chrono::DateTime::from_timestamp_millis(started_ms).unwrap_or_default();
    let call_id = call.id.clone();
    let state = state.clone();
    let keep = settings.clone();
    // The language model's client blocks on this runtime from the analysis thread.
    let runtime = tokio::runtime::Handle::current();
    let analysed = tokio::task::spawn_blocking(move || {
        let encoder = if config.smart_trackers.is_empty() {
            None
        } else {
            state.analysis_models.encoder().ok()
        };
        // The organization's model, or why it is not there (then the lexicon scores).
        let (model, unavailable) = match settings.sentiment {
            SentimentChoice::Lexicon => (None, None),
            SentimentChoice::Model => match state.analysis_models.sentiment() {
                Ok(m) => (Some(m), None),
                Err(reason) => (None, Some(reason)),
            },
        };
        let analysers = Analysers {
            sentiment: model
                .as_deref()
                .map(|m| m as &dyn callscope_analysis::sentiment::SentimentAnalyser),
            encoder: encoder.as_deref().map(|e| e as &dyn SentenceEncoder),
        };
        // The language model only for organizations that turned a feature on: nothing is
        // sent anywhere otherwise.
        let features = settings.llm;
        let client = features
            .any()
            .then(|| state.analysis_models.language_model());
        let call_model = match &client {
            Some(Ok(c)) => Some(c.for_call(runtime)),
            _ => None,
        };
        let missing = match &client {
            Some(Err(reason)) => Some(MissingLanguageModel(reason.clone())),
            _ => None,
        };
        let model: Option<&dyn LanguageModel> = match (&call_model, &missing) {
            (Some(m), _) => Some(m),
            (None, Some(m)) => Some(m),
            (None, None) => None,
        };
        let language_model = LanguageModelUse {
            model,
            model_name: match &client {
                Some(Ok(c)) => Some(c.model()),
                _ => None,
            },
            features,
        };
        let analysis_started = std::time::Instant::now();
        let mut analysed = report::analyze_call_with_language_model(
            &CallInput {
                turns: &turns,
                duration_ms,
                started_at,
                manual_call_type: manual_call_type.as_deref(),
            },
            &config,
            &analysers,
            features.any().then_some(&language_model),
        );
        if features.any() {
            tracing::debug!(call_id = %call_id, elapsed_ms = analysis_started.elapsed().as_millis() as u64,
                degraded = analysed.analysis.degraded.len(), "analysis with the language model");
        }
        if let Some(reason) = unavailable {
            analysed.analysis.degraded.push(report::Degraded {
                part: "sentiment".into(),
                reason: format!("{reason}; the embedded lexicon was used instead"),
            });
        }
        analysed
    })
    .await
    .map_err(|e| JobError::Transient(format!("analysis task: {e}")))?;
    Ok((analysed, keep))
}

/// Stores the analysis of a call (replacing an earlier one). `original` is the unredacted
/// transcript, kept beside it only when the organization allows it.
pub async fn store(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    analysed: &Analysed,
    settings: &OrgAnalysisSettings,
    original: &[Turn],
) -> Result<(), JobError> {
    let analysis = &analysed.analysis;
    let result = serde_json::to_string(analysis)
        .map_err(|e| JobError::Permanent(format!("analysis does not serialise: {e}")))?;
    let unredacted = if settings.keep_unredacted && !analysis.redactions.is_empty() {
        let texts: Vec<serde_json::Value> = original
            .iter()
            .map(|t| json!({ "turn": t.index, "text": t.text }))
            .collect();
        Some(serde_json::Value::Array(texts).to_string())
    } else {
        None
    };
    call_analyses::save(
        &mut *conn,
        org_id,
        call_id,
        i64::from(analysis.version),
        &result,
        unredacted.as_deref(),
    )
    .await?;
    // In the same transaction as the analysis: the webhook exists if and only if the flags do.
    if !analysis.compliance.is_empty() {
        let data = json!({
            "call_id": call_id,
            "analysis_version": analysis.version,
            "flags": analysis.compliance,
            "categories": analysis.compliance_categories,
        });
        crate::webhooks::enqueue_event_in(conn, org_id, "compliance.flagged", data)
            .await
            .map_err(|e| JobError::Transient(format!("queueing compliance.flagged: {e}")))?;
    }
    Ok(())
}

/// The segments with the redacted text of their turns (`segments` in the order
/// [`turns_from_segments`] gave the turns), so the stored transcript carries no card number.
pub fn redact_segments(segments: &mut [Segment], redacted: &[Turn]) {
    let order = time_order(segments);
    for (turn, &i) in redacted.iter().zip(&order) {
        let seg = &mut segments[i];
        if seg.text.is_some() {
            seg.text = Some(turn.text.clone());
        }
        if seg.words.len() == turn.words.len() {
            for (w, t) in seg.words.iter_mut().zip(&turn.words) {
                w.text = t.text.clone();
            }
        }
    }
}

/// Queues the re-analysis of one call.
pub async fn enqueue_reanalysis(
    pool: &SqlitePool,
    org_id: &str,
    call_id: &str,
) -> Result<String, sqlx::Error> {
    jobs::enqueue(
        pool,
        org_id,
        KIND_ANALYZE_CALL,
        &json!({ "call_id": call_id }),
        3,
    )
    .await
}

/// The re-analysis job: the stored transcript through today's configuration.
pub async fn run_reanalysis(state: &AppState, job: &jobs::Job) -> Result<(), JobError> {
    let call_id = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|v| v.get("call_id").and_then(|c| c.as_str()).map(String::from))
        .ok_or_else(|| JobError::Permanent("bad job payload".into()))?;
    let org_id = job.org_id.as_str();
    let Some(call) = crate::store::calls::get_call(&state.pool, org_id, &call_id).await? else {
        return Err(JobError::Permanent("the call no longer exists".into()));
    };
    let rows = segments::list_for_call(&state.pool, org_id, &call_id).await?;
    let segs: Vec<Segment> = rows.iter().map(|r| r.to_segment()).collect();
    let duration = recordings::get_for_call(&state.pool, org_id, &call_id)
        .await?
        .and_then(|r| r.duration_ms)
        .and_then(|d| u64::try_from(d).ok());
    let mut segs = segs;
    let turns = turns_from_segments(&segs);
    let (analysed, settings) = analyze(state, org_id, &call, turns.clone(), duration).await?;
    let mut tx = state.pool.begin().await?;
    if !analysed.analysis.redactions.is_empty() {
        // Settings may have changed (e.g. emails now redacted): the stored text follows.
        redact_segments(&mut segs, &analysed.redacted_turns);
        segments::replace_for_call(&mut tx, org_id, &call_id, &segs).await?;
    }
    store(&mut tx, org_id, &call_id, &analysed, &settings, &turns).await?;
    let items = &analysed.analysis.action_items;
    crate::crm::action_tasks::on_analysis_stored(&mut tx, org_id, &call_id, items).await?;
    jobs::complete(&mut *tx, org_id, &job.id).await?;
    tx.commit().await?;
    tracing::info!(call_id = %call_id, org_id, "call re-analysed");
    Ok(())
}

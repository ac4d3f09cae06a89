//! The whole analysis of one call: every analyser run in order over the call's turns, with
//! the organization's configuration, into one [`CallAnalysis`] — what the API stores and
//! serves as `GET /calls/{id}/analysis`.
//!
//! Order matters: stats first (rules read non-talk and interruptions from them), sentiment
//! next (rules and the summary read it), trackers and rules, then what summarises them.
//! Model-backed analysers are optional: a missing or failing model degrades that part (smart
//! trackers say why they are unavailable; sentiment falls back to the embedded lexicon) and
//! never fails the call's analysis.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actions::{self, ActionItem, ActionOptions, DateOrder};
use crate::classify::{self, CallTypeSet, Classification, ClassificationSignal, SignalSource};
use crate::llm::{LanguageModelReport, LanguageModelUse, Refinable, Resolution};
use crate::redact::{self, Redaction, RedactionConfig};
use crate::rules::{self, CategorySummary, Rule, RuleFlag, RuleInputs};
use crate::scorecard::{self, Scorecard, ScorecardTemplate, ScoringFacts};
use crate::sentiment::{self, CallSentiment, LexiconAnalyser, SentimentAnalyser};
use crate::smart::{self, SentenceEncoder, SmartTracker, SmartTracking};
use crate::stats::{self, InteractionStats, StatsConfig};
use crate::summary::{self, Summary, SummaryOptions, SummarySignal};
use crate::trackers::{self, KeywordTracker, TrackerHit};
use crate::types::{SentimentScore, Turn};

/// Bumped when the shape or meaning of [`CallAnalysis`] changes; stored with each result.
pub const ANALYSIS_VERSION: u32 = 1;

/// What the organization configured (loaded by the caller from its store).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnalysisConfig {
    #[serde(default)]
    pub keyword_trackers: Vec<KeywordTracker>,
    #[serde(default)]
    pub smart_trackers: Vec<SmartTracker>,
    /// Compliance rules to evaluate (the caller adds the default pack when wanted).
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub redaction: RedactionConfig,
    /// Templates whose scores are suggested from what the analysis found.
    #[serde(default)]
    pub scorecard_templates: Vec<ScorecardTemplate>,
    #[serde(default)]
    pub stats: StatsConfig,
    /// The organization's call types; `None` uses the default list (sales, support,
    /// complaint, inquiry, follow-up, general).
    #[serde(default)]
    pub call_types: Option<CallTypeSet>,
    /// How dates like "3/12" are read in action items.
    #[serde(default)]
    pub date_order: DateOrder,
    #[serde(default)]
    pub summary: SummaryOptions,
}

/// The model-backed analysers available to this analysis.
#[derive(Default, Clone, Copy)]
pub struct Analysers<'a> {
    /// The organization's sentiment model; `None` uses the embedded lexicon.
    pub sentiment: Option<&'a dyn SentimentAnalyser>,
    /// The sentence-embedding model for smart trackers; `None` makes them unavailable.
    pub encoder: Option<&'a dyn SentenceEncoder>,
}

/// The call to analyse.
#[derive(Debug, Clone, Copy)]
pub struct CallInput<'a> {
    /// Time-ordered turns; `Turn::index` must be the position in this slice.
    pub turns: &'a [Turn],
    /// The recording's length, when known.
    pub duration_ms: Option<u64>,
    /// When the call started: due dates ("tomorrow") count from it.
    pub started_at: DateTime<Utc>,
    /// A manager's call type for this call; it wins over the computed one.
    pub manual_call_type: Option<&'a str>,
}

/// Something that went wrong in an optional part and how the analysis carried on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Degraded {
    pub part: String,
    pub reason: String,
}

/// Everything the analysis found in one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAnalysis {
    pub version: u32,
    pub stats: InteractionStats,
    pub sentiment: CallSentiment,
    /// Where card numbers (and, when configured, emails and phone numbers) were replaced in
    /// the transcript; never the redacted text itself.
    pub redactions: Vec<Redaction>,
    pub tracker_hits: Vec<TrackerHit>,
    pub smart_trackers: SmartTracking,
    /// Compliance flags, and per category the count and highest severity.
    pub compliance: Vec<RuleFlag>,
    pub compliance_categories: Vec<CategorySummary>,
    /// The call type; `None` only when the organization's call-type list is invalid (see
    /// `degraded`).
    pub call_type: Option<Classification>,
    pub summary: Summary,
    pub action_items: Vec<ActionItem>,
    /// Suggested scores for each configured scorecard template.
    pub scorecard_suggestions: Vec<Scorecard>,
    /// How resolved the customer's issue is: the language model's score when the
    /// organization uses it, the rule-based estimate otherwise.
    #[serde(default)]
    pub resolution: Resolution,
    /// Which parts the optional language model wrote (`off` when not asked).
    #[serde(default)]
    pub language_model: LanguageModelReport,
    /// Optional parts that failed, and what was used instead.
    pub degraded: Vec<Degraded>,
}

/// The analysis and the transcript it was made from, redacted (what the caller stores in
/// place of the original text).
#[derive(Debug, Clone, PartialEq)]
pub struct Analysed {
    pub analysis: CallAnalysis,
    pub redacted_turns: Vec<Turn>,
}

/// Runs the whole analysis. Pure: the same input and configuration give the same result.
/// Redaction comes first, so no analyser (and nothing it quotes) sees a card number.
pub fn analyze_call(
    call: &CallInput<'_>,
    config: &AnalysisConfig,
    analysers: &Analysers<'_>,
) -> Analysed {
    analyze_call_with_language_model(call, config, analysers, None)
}

/// [`analyze_call`] with the optional language model: it confirms smart-tracker hits before
/// anything reads them, then writes the summary, action items and resolution score, each
/// only when `language_model.features` asks for it. It sees only the redacted turns; every
/// failure falls back to the default analysers' result and is listed in `degraded`.
pub fn analyze_call_with_language_model(
    call: &CallInput<'_>,
    config: &AnalysisConfig,
    analysers: &Analysers<'_>,
    language_model: Option<&LanguageModelUse<'_>>,
) -> Analysed {
    let mut degraded = Vec::new();
    let mut model_report = LanguageModelReport::default();
    let redacted = redact::redact(call.turns, &config.redaction);
    let turns = redacted.turns.as_slice();
    let call = &CallInput { turns, ..*call };
    let stats = stats::compute_stats(turns, call.duration_ms, &config.stats);
    let sentiment = call_sentiment(call, analysers.sentiment, &mut degraded);
    let tracker_hits = trackers::find_tracker_hits(turns, &config.keyword_trackers);
    let mut per_turn: Vec<Option<SentimentScore>> = vec![None; turns.len()];
    for t in &sentiment.turns {
        if let Some(slot) = per_turn.get_mut(t.turn) {
            *slot = Some(t.sentiment);
        }
    }
    let end = turns.iter().map(|t| t.end_ms).max().unwrap_or(0);
    let compliance = rules::evaluate_rules(
        &config.rules,
        &RuleInputs {
            turns,
            sentiments: &per_turn,
            non_talk: &stats.non_talk,
            interruptions: &stats.interruptions,
            call_duration_ms: call.duration_ms.unwrap_or(0).max(end),
        },
    );
    let compliance_categories = rules::summarize_categories(&compliance);
    let smart_trackers = match smart::track_smart(turns, &config.smart_trackers, analysers.encoder)
    {
        Ok(t) => t,
        Err(e) => {
            degraded.push(Degraded {
                part: "smart_trackers".into(),
                reason: e.to_string(),
            });
            SmartTracking::Unavailable {
                reason: format!("smart trackers failed: {e}"),
            }
        }
    };
    let smart_trackers = match language_model {
        Some(lm) => lm.confirm_smart_hits(
            smart_trackers,
            &config.smart_trackers,
            &mut model_report,
            &mut degraded,
        ),
        None => smart_trackers,
    };
    let action_items = actions::extract_action_items(
        turns,
        &ActionOptions {
            call_start: call.started_at,
            date_order: config.date_order,
        },
    );
    let summary = summary::extractive_summary(
        turns,
        &summary_signals(&sentiment, &smart_trackers, &tracker_hits, &compliance),
        &config.summary,
    );
    let defaults = Refinable {
        summary,
        action_items,
        resolution: Resolution {
            score: summary::resolution_estimate(turns),
            ..Resolution::default()
        },
    };
    let Refinable {
        summary,
        action_items,
        resolution,
    } = match language_model {
        Some(lm) => lm.refine(
            turns,
            call.started_at,
            defaults,
            &mut model_report,
            &mut degraded,
        ),
        None => defaults,
    };
    let default_types;
    let types = match &config.call_types {
        Some(t) => t,
        None => {
            default_types = CallTypeSet::default();
            &default_types
        }
    };
    let call_type = match classify::classify(
        turns,
        &classification_signals(
            &smart_trackers,
            &config.smart_trackers,
            &tracker_hits,
            &compliance,
            &sentiment,
        ),
        types,
    ) {
        Ok(c) => Some(classify::apply_manual_override(c, call.manual_call_type)),
        Err(e) => {
            degraded.push(Degraded {
                part: "call_type".into(),
                reason: e.to_string(),
            });
            None
        }
    };
    let facts = scoring_facts(&stats, &tracker_hits, &smart_trackers, &compliance);
    let scorecard_suggestions = config
        .scorecard_templates
        .iter()
        .filter_map(|t| match scorecard::suggest(t, &facts) {
            Ok(card) => Some(card),
            Err(e) => {
                degraded.push(Degraded {
                    part: format!("scorecard:{}", t.id),
                    reason: e.to_string(),
                });
                None
            }
        })
        .collect();
    Analysed {
        analysis: CallAnalysis {
            version: ANALYSIS_VERSION,
            stats,
            sentiment,
            redactions: redacted.redactions,
            tracker_hits,
            smart_trackers,
            compliance,
            compliance_categories,
            call_type,
            summary,
            action_items,
            scorecard_suggestions,
            resolution,
            language_model: model_report,
            degraded,
        },
        redacted_turns: redacted.turns,
    }
}

/// What scorecard bindings can test: trackers hit, rules flagged, and the stats by name.
fn scoring_facts(
    stats: &InteractionStats,
    keyword: &[TrackerHit],
    smart: &SmartTracking,
    flags: &[RuleFlag],
) -> ScoringFacts {
    let mut facts = ScoringFacts::default();
    facts
        .tracker_ids_hit
        .extend(keyword.iter().map(|h| h.tracker_id.clone()));
    if let SmartTracking::Available { hits } = smart {
        facts
            .tracker_ids_hit
            .extend(hits.iter().map(|h| h.tracker_id.clone()));
    }
    facts
        .rule_ids_flagged
        .extend(flags.iter().map(|f| f.rule_id.clone()));
    let mut stat = |name: &str, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            facts.stats.insert(name.to_string(), v);
        }
    };
    stat(
        "call_duration_s",
        Some(stats.call_duration_ms as f64 / 1000.0),
    );
    stat("non_talk_count", Some(stats.non_talk.len() as f64));
    stat(
        "non_talk_total_s",
        Some(stats.non_talk_total_ms as f64 / 1000.0),
    );
    stat("interruptions", Some(stats.interruptions.len() as f64));
    stat(
        "interactivity_per_minute",
        stats.interactivity_per_minute.map(f64::from),
    );
    stat("agent_patience_ms", stats.agent_patience_ms.map(f64::from));
    for r in &stats.per_role {
        let role = r.role.as_str();
        stat(&format!("{role}_talk_ratio"), Some(f64::from(r.talk_share)));
        stat(
            &format!("{role}_longest_monologue_s"),
            Some(
                r.longest_monologue
                    .as_ref()
                    .map_or(0.0, |m| m.duration_ms() as f64 / 1000.0),
            ),
        );
        stat(
            &format!("{role}_words_per_minute"),
            r.words_per_minute.map(f64::from),
        );
        stat(&format!("{role}_questions"), Some(r.questions as f64));
    }
    facts
}

/// Strong sentiment below which a turn is not worth a summary signal.
const SUMMARY_SENTIMENT_MIN: f32 = 0.5;

/// What makes a turn worth summarising: tracker hits and strong sentiment.
fn summary_signals(
    sentiment: &CallSentiment,
    smart: &SmartTracking,
    keyword: &[TrackerHit],
    flags: &[RuleFlag],
) -> Vec<SummarySignal> {
    let mut signals: Vec<SummarySignal> = sentiment
        .turns
        .iter()
        .filter(|t| t.sentiment.score.abs() >= SUMMARY_SENTIMENT_MIN)
        .map(|t| SummarySignal {
            turn: t.turn,
            weight: t.sentiment.score.abs(),
            source: "sentiment".into(),
        })
        .collect();
    if let SmartTracking::Available { hits } = smart {
        signals.extend(hits.iter().map(|h| SummarySignal {
            turn: h.turn,
            weight: h.similarity,
            source: format!("tracker:{}", h.tracker_id),
        }));
    }
    signals.extend(keyword.iter().map(|h| SummarySignal {
        turn: h.turn,
        weight: 1.0,
        source: format!("tracker:{}", h.tracker_id),
    }));
    signals.extend(flags.iter().filter_map(|f| {
        Some(SummarySignal {
            turn: f.turn?,
            weight: 1.0,
            source: format!("rule:{}", f.rule_id),
        })
    }));
    signals
}

/// How much one tracker that fired says about the call's type. Trackers are the
/// organization's own and their categories (pricing, competitor, objection...) map only
/// loosely to a type: a customer complaining about a price rise names prices and rivals too.
const TRACKER_TYPE_WEIGHT: f32 = 0.5;
/// A customer who is negative over the whole call is the mark of a complaint.
const NEGATIVE_CUSTOMER_WEIGHT: f32 = 2.0;
/// The customer's first turns: where they say why they call.
const OPENING_CUSTOMER_TURNS: usize = 2;

/// Evidence for a call type from the other analysers: each tracker and rule that fired counts
/// once (however often it fired, as the list's own keyword cues do), labelled by its
/// category (pricing, competitor and objection count for sales in the default list;
/// escalation and profanity for complaint); a customer negative overall adds
/// `negative_sentiment`.
fn classification_signals(
    smart: &SmartTracking,
    trackers: &[SmartTracker],
    keyword: &[TrackerHit],
    flags: &[RuleFlag],
    sentiment: &CallSentiment,
) -> Vec<ClassificationSignal> {
    let mut signals: Vec<ClassificationSignal> = Vec::new();
    let mut push_once = |signal: ClassificationSignal| match signals
        .iter_mut()
        .find(|s| s.source == signal.source && s.label == signal.label)
    {
        Some(seen) => seen.weight = seen.weight.max(signal.weight),
        None => signals.push(signal),
    };
    for h in keyword {
        push_once(ClassificationSignal {
            label: category_name(&h.category),
            weight: TRACKER_TYPE_WEIGHT,
            source: SignalSource::Tracker(h.tracker_id.clone()),
        });
    }
    for f in flags {
        push_once(ClassificationSignal {
            label: f.category.clone(),
            weight: 1.0,
            source: SignalSource::Rule(f.rule_id.clone()),
        });
    }
    for s in smart_signals(smart, trackers) {
        push_once(ClassificationSignal {
            weight: s.weight * TRACKER_TYPE_WEIGHT,
            ..s
        });
    }
    // Negative overall, or negative when stating why they call (the first customer turns): a
    // complaint that the agent resolved ends on a friendlier note than it began.
    let customer = crate::types::Role::Customer;
    let negative = crate::types::SentimentLabel::Negative;
    let negative_overall = sentiment
        .per_role
        .iter()
        .any(|r| r.role == customer && r.sentiment.label == negative);
    let negative_opening = sentiment
        .turns
        .iter()
        .filter(|t| t.role == customer)
        .take(OPENING_CUSTOMER_TURNS)
        .any(|t| t.sentiment.label == negative);
    let customer_negative = negative_overall || negative_opening;
    if customer_negative {
        signals.push(ClassificationSignal {
            label: "negative_sentiment".into(),
            weight: NEGATIVE_CUSTOMER_WEIGHT,
            source: SignalSource::Other("customer sentiment".into()),
        });
    }
    signals
}

/// A serde-named enum's name ("pricing").
fn category_name<T: Serialize>(category: &T) -> String {
    serde_json::to_value(category)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn smart_signals(smart: &SmartTracking, trackers: &[SmartTracker]) -> Vec<ClassificationSignal> {
    let category = |id: &str| {
        trackers
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.category.clone())
    };
    match smart {
        SmartTracking::Available { hits } => hits
            .iter()
            .filter_map(|h| {
                Some(ClassificationSignal {
                    label: category(&h.tracker_id)?,
                    weight: h.similarity,
                    source: SignalSource::Tracker(h.tracker_id.clone()),
                })
            })
            .collect(),
        SmartTracking::Unavailable { .. } => Vec::new(),
    }
}

/// Sentiment with the configured analyser, falling back to the embedded lexicon if it fails.
fn call_sentiment(
    call: &CallInput<'_>,
    configured: Option<&dyn SentimentAnalyser>,
    degraded: &mut Vec<Degraded>,
) -> CallSentiment {
    let lexicon = LexiconAnalyser::embedded();
    if let Some(model) = configured {
        match sentiment::analyse_call(model, call.turns, call.duration_ms) {
            Ok(s) => return s,
            Err(e) => degraded.push(Degraded {
                part: "sentiment".into(),
                reason: format!("{e}; the embedded lexicon was used instead"),
            }),
        }
    }
    match sentiment::analyse_call(&lexicon, call.turns, call.duration_ms) {
        Ok(s) => s,
        // The lexicon scores every text; an error here would be a count mismatch, which
        // cannot happen with one analyser. Keep the call's analysis anyway, without scores.
        Err(e) => {
            degraded.push(Degraded {
                part: "sentiment".into(),
                reason: e.to_string(),
            });
            let end = call.turns.iter().map(|t| t.end_ms).max().unwrap_or(0);
            sentiment::aggregate(
                lexicon.name(),
                Vec::new(),
                call.duration_ms.unwrap_or(0).max(end),
            )
        }
    }
}

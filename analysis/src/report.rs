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
use crate::sentiment::{self, CallSentiment, LexiconAnalyser, SentimentAnalyser};
use crate::smart::{self, SentenceEncoder, SmartTracker, SmartTracking};
use crate::stats::{self, InteractionStats, StatsConfig};
use crate::summary::{self, Summary, SummaryOptions, SummarySignal};
use crate::types::Turn;

/// Bumped when the shape or meaning of [`CallAnalysis`] changes; stored with each result.
pub const ANALYSIS_VERSION: u32 = 1;

/// What the organization configured (loaded by the caller from its store).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnalysisConfig {
    pub smart_trackers: Vec<SmartTracker>,
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
    pub smart_trackers: SmartTracking,
    /// The call type; `None` only when the organization's call-type list is invalid (see
    /// `degraded`).
    pub call_type: Option<Classification>,
    pub summary: Summary,
    pub action_items: Vec<ActionItem>,
    /// Optional parts that failed, and what was used instead.
    pub degraded: Vec<Degraded>,
}

/// Runs the whole analysis. Pure: the same input and configuration give the same result.
pub fn analyze_call(
    call: &CallInput<'_>,
    config: &AnalysisConfig,
    analysers: &Analysers<'_>,
) -> CallAnalysis {
    let mut degraded = Vec::new();
    let turns = call.turns;
    let stats = stats::compute_stats(turns, call.duration_ms, &config.stats);
    let sentiment = call_sentiment(call, analysers.sentiment, &mut degraded);
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
    let action_items = actions::extract_action_items(
        turns,
        &ActionOptions {
            call_start: call.started_at,
            date_order: config.date_order,
        },
    );
    let summary = summary::extractive_summary(
        turns,
        &summary_signals(&sentiment, &smart_trackers),
        &config.summary,
    );
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
        &classification_signals(&smart_trackers, &config.smart_trackers),
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
    CallAnalysis {
        version: ANALYSIS_VERSION,
        stats,
        sentiment,
        smart_trackers,
        call_type,
        summary,
        action_items,
        degraded,
    }
}

/// Strong sentiment below which a turn is not worth a summary signal.
const SUMMARY_SENTIMENT_MIN: f32 = 0.5;

/// What makes a turn worth summarising: tracker hits and strong sentiment.
fn summary_signals(sentiment: &CallSentiment, smart: &SmartTracking) -> Vec<SummarySignal> {
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
    signals
}

/// Tracker hits as evidence for a call type: the tracker's category is the label (pricing and
/// competitor count for sales, objection for complaint, in the default list).
fn classification_signals(
    smart: &SmartTracking,
    trackers: &[SmartTracker],
) -> Vec<ClassificationSignal> {
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

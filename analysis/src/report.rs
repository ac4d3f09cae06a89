//! The whole analysis of one call: every analyser run in order over the call's turns, with
//! the organization's configuration, into one [`CallAnalysis`] — what the API stores and
//! serves as `GET /calls/{id}/analysis`.
//!
//! Order matters: stats first (rules read non-talk and interruptions from them), sentiment
//! next (rules and the summary read it), trackers and rules, then what summarises them.
//! Model-backed analysers are optional: a missing or failing model degrades that part (smart
//! trackers say why they are unavailable; sentiment falls back to the embedded lexicon) and
//! never fails the call's analysis.

use serde::{Deserialize, Serialize};

use crate::sentiment::{self, CallSentiment, LexiconAnalyser, SentimentAnalyser};
use crate::smart::{self, SentenceEncoder, SmartTracker, SmartTracking};
use crate::stats::{self, InteractionStats, StatsConfig};
use crate::types::Turn;

/// Bumped when the shape or meaning of [`CallAnalysis`] changes; stored with each result.
pub const ANALYSIS_VERSION: u32 = 1;

/// What the organization configured (loaded by the caller from its store).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnalysisConfig {
    pub smart_trackers: Vec<SmartTracker>,
    #[serde(default)]
    pub stats: StatsConfig,
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
    CallAnalysis {
        version: ANALYSIS_VERSION,
        stats,
        sentiment,
        smart_trackers,
        degraded,
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

//! The language model's part of a call's analysis: which features an organization turned
//! on, asking the model for each over the redacted turns, and what the analysis records
//! about it (where each part came from; every fallback in `degraded` with its reason).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    LanguageModel, ResultSource, WithFallback, abstractive_summary, action_items_with_model,
    confirm_smart_tracker, resolution_score,
};
use crate::actions::ActionItem;
use crate::report::Degraded;
use crate::smart::{SmartHit, SmartTracker, SmartTracking};
use crate::summary::Summary;
use crate::types::Turn;

/// Most smart-tracker hits the model is asked about in one call: each is a request, and the
/// whole model time of a call must stay bounded. Hits beyond it keep the embedding's decision.
pub const MAX_SMART_CONFIRMATIONS: usize = 20;

/// Which parts an organization lets the language model do. All off by default: the model
/// sees the (redacted) transcript, which an organization must choose to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmFeatures {
    /// An abstractive summary on top of the extractive one.
    pub summary: bool,
    /// The model's action items instead of the rule-based ones.
    pub action_items: bool,
    /// The model's resolution score instead of the rule-based estimate.
    pub resolution: bool,
    /// A yes/no from the model on each smart-tracker hit; rejected hits are removed.
    pub smart_tracker_confirmation: bool,
}

impl LlmFeatures {
    pub fn any(&self) -> bool {
        self.summary || self.action_items || self.resolution || self.smart_tracker_confirmation
    }
}

/// The model an analysis may use and what for. `model: None` with features on means the
/// organization asked for it but the server has none: every asked part falls back and says so.
#[derive(Clone, Copy)]
pub struct LanguageModelUse<'a> {
    pub model: Option<&'a dyn LanguageModel>,
    /// The model's name as the server configured it (shown in the analysis).
    pub model_name: Option<&'a str>,
    pub features: LlmFeatures,
}

/// Where one part of the analysis came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartSource {
    /// The model was not asked (the organization's switch is off).
    #[default]
    Off,
    /// The model's answer is used.
    Llm,
    /// The model was asked and failed; the default analysers' result is used (the reason is
    /// in `degraded`).
    Fallback,
}

impl PartSource {
    fn of<T>(result: &WithFallback<T>) -> Self {
        match result.source {
            ResultSource::LanguageModel => PartSource::Llm,
            ResultSource::Default => PartSource::Fallback,
        }
    }
}

/// What the language model contributed to one call's analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LanguageModelReport {
    /// The configured model's name, when the model was asked anything.
    pub model: Option<String>,
    pub summary: PartSource,
    pub action_items: PartSource,
    pub resolution: PartSource,
    pub smart_tracker_confirmation: PartSource,
    /// Smart-tracker hits the model said do not mean what the tracker's examples mean: taken
    /// out of `smart_trackers.hits` (and of everything computed from them), kept here for
    /// review.
    pub rejected_smart_hits: Vec<SmartHit>,
}

/// Where a resolution score came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionSource {
    /// [`crate::summary::resolution_estimate`].
    #[default]
    Rules,
    Llm,
}

/// How resolved the customer's issue is, in [0, 1]; `None` when neither the model nor the
/// rules could tell (e.g. only one side spoke).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resolution {
    pub score: Option<f32>,
    pub source: ResolutionSource,
}

fn fallback_note(part: &str, reason: Option<String>, instead: &str) -> Degraded {
    Degraded {
        part: format!("llm_{part}"),
        reason: format!(
            "{}; {instead} was used instead",
            reason.unwrap_or_else(|| "the language model failed".into())
        ),
    }
}

impl LanguageModelUse<'_> {
    fn start_report(&self, report: &mut LanguageModelReport) {
        if report.model.is_none() && self.model.is_some() {
            report.model = self.model_name.map(str::to_string);
        }
    }

    /// Asks the model about each smart-tracker hit (at most [`MAX_SMART_CONFIRMATIONS`]) and
    /// drops those it rejects. A failed question keeps the hit (the embedding's decision).
    pub fn confirm_smart_hits(
        &self,
        tracking: SmartTracking,
        trackers: &[SmartTracker],
        report: &mut LanguageModelReport,
        degraded: &mut Vec<Degraded>,
    ) -> SmartTracking {
        let hits = match tracking {
            SmartTracking::Available { hits } => hits,
            unavailable => return unavailable,
        };
        if !self.features.smart_tracker_confirmation || hits.is_empty() {
            return SmartTracking::Available { hits };
        }
        self.start_report(report);
        let total = hits.len();
        let mut kept = Vec::with_capacity(total);
        let mut failures: Vec<String> = Vec::new();
        let mut answered = 0usize;
        for (i, hit) in hits.into_iter().enumerate() {
            if i >= MAX_SMART_CONFIRMATIONS {
                kept.push(hit);
                continue;
            }
            // The tracker's own name and examples; the matched example alone if the tracker
            // is not in the configuration given (it always is when called by the report).
            let tracker = trackers.iter().find(|t| t.id == hit.tracker_id);
            let name = tracker.map_or(hit.tracker_id.as_str(), |t| t.name.as_str());
            let examples = match tracker {
                Some(t) if !t.examples.is_empty() => t.examples.clone(),
                _ => vec![hit.example.clone()],
            };
            let answer =
                confirm_smart_tracker(self.model, name, &examples, &hit.matched_text, true);
            match answer.source {
                ResultSource::LanguageModel => answered += 1,
                ResultSource::Default => failures.extend(answer.fallback_reason),
            }
            if answer.value {
                kept.push(hit);
            } else {
                report.rejected_smart_hits.push(hit);
            }
        }
        let asked = answered + failures.len();
        report.smart_tracker_confirmation = if failures.is_empty() {
            PartSource::Llm
        } else {
            PartSource::Fallback
        };
        if let Some(first) = failures.first() {
            degraded.push(Degraded {
                part: "llm_smart_tracker_confirmation".into(),
                reason: format!(
                    "{} of {asked} smart-tracker hits were not confirmed by the language model \
                     ({first}); the embedding's decision was kept for them",
                    failures.len()
                ),
            });
        }
        if total > MAX_SMART_CONFIRMATIONS {
            degraded.push(Degraded {
                part: "llm_smart_tracker_confirmation".into(),
                reason: format!(
                    "only the first {MAX_SMART_CONFIRMATIONS} smart-tracker hits were given to \
                     the language model; the others keep the embedding's decision"
                ),
            });
        }
        SmartTracking::Available { hits: kept }
    }

    /// The model's summary, action items and resolution score where the organization asked
    /// for them; the default analysers' results otherwise or when the model fails.
    pub fn refine(
        &self,
        turns: &[Turn],
        call_start: DateTime<Utc>,
        defaults: Refinable,
        report: &mut LanguageModelReport,
        degraded: &mut Vec<Degraded>,
    ) -> Refinable {
        let Refinable {
            mut summary,
            mut action_items,
            mut resolution,
        } = defaults;
        let f = self.features;
        if f.summary || f.action_items || f.resolution {
            self.start_report(report);
        }
        if f.summary {
            let out = abstractive_summary(self.model, turns, summary);
            report.summary = PartSource::of(&out);
            if out.source == ResultSource::Default {
                degraded.push(fallback_note(
                    "summary",
                    out.fallback_reason,
                    "the extractive summary",
                ));
            }
            summary = out.value;
        }
        if f.action_items {
            let out = action_items_with_model(self.model, turns, call_start, action_items);
            report.action_items = PartSource::of(&out);
            if out.source == ResultSource::Default {
                degraded.push(fallback_note(
                    "action_items",
                    out.fallback_reason,
                    "the rule-based action items",
                ));
            }
            action_items = out.value;
        }
        if f.resolution {
            let out = resolution_score(self.model, turns, resolution.score);
            report.resolution = PartSource::of(&out);
            if out.source == ResultSource::Default {
                degraded.push(fallback_note(
                    "resolution",
                    out.fallback_reason,
                    "the rule-based resolution estimate",
                ));
            } else {
                resolution = Resolution {
                    score: out.value,
                    source: ResolutionSource::Llm,
                };
            }
        }
        Refinable {
            summary,
            action_items,
            resolution,
        }
    }
}

/// The parts of the analysis the model may rewrite.
#[derive(Debug, Clone, PartialEq)]
pub struct Refinable {
    pub summary: Summary,
    pub action_items: Vec<ActionItem>,
    pub resolution: Resolution,
}

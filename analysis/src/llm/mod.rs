//! The optional language model: abstractive summaries, action items, a resolution score
//! and a second opinion on smart-tracker matches. This crate holds only what is pure: the
//! [`LanguageModel`] trait (the api crate implements it with an HTTP client to an
//! OpenAI-compatible endpoint, timeouts included), the prompts, the parsers of the answers
//! and the fallback: when there is no model, it fails, times out or answers something
//! unreadable, the default (rule-based) result is used and the reason recorded.

mod apply;
mod parse;
mod prompt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use apply::{
    LanguageModelReport, LanguageModelUse, LlmFeatures, MAX_SMART_CONFIRMATIONS, PartSource,
    Refinable, Resolution, ResolutionSource,
};
pub use parse::{
    AbstractiveSummary, ParseError, parse_action_items, parse_confirmation, parse_resolution,
    parse_summary,
};
pub use prompt::{
    MAX_TRANSCRIPT_CHARS, Prompt, action_items_prompt, resolution_prompt, smart_tracker_prompt,
    summary_prompt, transcript_for_prompt,
};

use crate::actions::ActionItem;
use crate::summary::{Summary, SummaryMethod};
use crate::types::Turn;

/// Why a model call failed (reported by the implementation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("the language model did not answer within {after_ms} ms")]
    Timeout { after_ms: u64 },
    #[error("the language model is unreachable: {0}")]
    Unavailable(String),
    #[error("the language model answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// The endpoint answered, but not with a chat completion (not JSON, no choices, no
    /// message text, or larger than the client accepts).
    #[error("the language model's reply is unusable: {0}")]
    BadReply(String),
    #[error("the language model failed: {0}")]
    Other(String),
    /// There is no model to ask (the server has none configured), said in the caller's words.
    #[error("{0}")]
    NotConfigured(String),
}

/// A chat model: one system and one user message in, the assistant's text out. Blocking:
/// the implementation bounds the time it takes (the analysis runs on a blocking thread), so
/// the trait stays synchronous and this crate free of any async runtime.
pub trait LanguageModel {
    fn complete(&self, system: &str, user: &str) -> Result<String, LlmError>;
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultSource {
    LanguageModel,
    /// The rule-based default.
    Default,
}

/// A result and where it came from; `fallback_reason` says why the model's was not used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithFallback<T> {
    pub value: T,
    pub source: ResultSource,
    pub fallback_reason: Option<String>,
}

impl<T> WithFallback<T> {
    fn model(value: T) -> Self {
        WithFallback {
            value,
            source: ResultSource::LanguageModel,
            fallback_reason: None,
        }
    }

    fn default_because(value: T, reason: impl Into<String>) -> Self {
        WithFallback {
            value,
            source: ResultSource::Default,
            fallback_reason: Some(reason.into()),
        }
    }
}

const NO_MODEL: &str = "no language model is configured";
const NO_TRANSCRIPT: &str = "the call has no transcript text";

fn has_text(turns: &[Turn]) -> bool {
    turns.iter().any(|t| !t.text.trim().is_empty())
}

/// Asks the model and parses its answer, or says why it could not.
fn ask<T>(
    model: Option<&dyn LanguageModel>,
    prompt: &Prompt,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, String> {
    let model = model.ok_or(NO_MODEL)?;
    let answer = model
        .complete(&prompt.system, &prompt.user)
        .map_err(|e| e.to_string())?;
    parse(&answer).map_err(|e| e.to_string())
}

/// The summary with a model-written text on top of `extractive`, or `extractive` itself.
pub fn abstractive_summary(
    model: Option<&dyn LanguageModel>,
    turns: &[Turn],
    extractive: Summary,
) -> WithFallback<Summary> {
    if model.is_some() && !has_text(turns) {
        return WithFallback::default_because(extractive, NO_TRANSCRIPT);
    }
    match ask(model, &summary_prompt(turns), parse_summary) {
        Ok(written) => {
            let mut summary = extractive;
            summary.method = SummaryMethod::Abstractive;
            summary.abstractive = Some(written.summary);
            // The model's one-liners when it gave them; the extractive ones otherwise.
            if written.reason_for_call.is_some() {
                summary.reason_for_call = written.reason_for_call;
            }
            if written.resolution.is_some() {
                summary.resolution = written.resolution;
            }
            WithFallback::model(summary)
        }
        Err(reason) => WithFallback::default_because(extractive, reason),
    }
}

/// The model's action items, or the rule-based `default` ones.
pub fn action_items_with_model(
    model: Option<&dyn LanguageModel>,
    turns: &[Turn],
    call_start: DateTime<Utc>,
    default: Vec<ActionItem>,
) -> WithFallback<Vec<ActionItem>> {
    if model.is_some() && !has_text(turns) {
        return WithFallback::default_because(default, NO_TRANSCRIPT);
    }
    match ask(model, &action_items_prompt(turns, call_start), |a| {
        parse_action_items(a, turns)
    }) {
        Ok(items) => WithFallback::model(items),
        Err(reason) => WithFallback::default_because(default, reason),
    }
}

/// How resolved the call is, in [0, 1], by the model; `default` otherwise (the rule-based
/// [`crate::summary::resolution_estimate`], or none).
pub fn resolution_score(
    model: Option<&dyn LanguageModel>,
    turns: &[Turn],
    default: Option<f32>,
) -> WithFallback<Option<f32>> {
    if model.is_some() && !has_text(turns) {
        return WithFallback::default_because(default, NO_TRANSCRIPT);
    }
    match ask(model, &resolution_prompt(turns), parse_resolution) {
        Ok(score) => WithFallback::model(Some(score)),
        Err(reason) => WithFallback::default_because(default, reason),
    }
}

/// The model's yes/no on a smart-tracker match; the embedding's decision (`default`)
/// otherwise.
pub fn confirm_smart_tracker(
    model: Option<&dyn LanguageModel>,
    tracker_name: &str,
    examples: &[String],
    sentence: &str,
    default: bool,
) -> WithFallback<bool> {
    if model.is_some() && sentence.trim().is_empty() {
        return WithFallback::default_because(default, "the sentence is empty");
    }
    match ask(
        model,
        &smart_tracker_prompt(tracker_name, examples, sentence),
        parse_confirmation,
    ) {
        Ok(yes) => WithFallback::model(yes),
        Err(reason) => WithFallback::default_because(default, reason),
    }
}

#[cfg(test)]
mod tests;

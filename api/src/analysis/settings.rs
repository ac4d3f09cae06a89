//! An organization's analysis settings (`GET/PUT /api/v1/settings/analysis`): which sentiment
//! analyser it uses, what is redacted and whether unredacted text is kept, its call types,
//! and what the optional language model may do.

use callscope_analysis::llm::LlmFeatures;
use serde::{Deserialize, Serialize};

/// Which analyser scores sentiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SentimentChoice {
    /// The embedded lexicon and rules.
    #[default]
    Lexicon,
    /// The server's ONNX classifier (`[analysis] sentiment_model`); the lexicon when it is
    /// not installed.
    Model,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OrgAnalysisSettings {
    pub sentiment: SentimentChoice,
    /// Also replace email addresses by `[PII]` (card numbers are always redacted).
    pub redact_emails: bool,
    /// Also replace phone numbers by `[PII]`.
    pub redact_phones: bool,
    /// Keep the unredacted transcript beside the redacted one (visible to nobody through the
    /// API; for the organization's own export). Off by default.
    pub keep_unredacted: bool,
    /// Apply callscope's default compliance rule pack besides the organization's own rules.
    pub default_rules: bool,
    /// The organization's own call types instead of the defaults (sales, support, complaint,
    /// inquiry, follow-up, general).
    pub call_types: Option<Vec<String>>,
    /// What the server's language model (`[analysis.llm]`) does for this organization's
    /// calls: `summary`, `action_items`, `resolution`, `smart_tracker_confirmation`. All off
    /// by default (turning one on sends the redacted transcript to that endpoint).
    #[schema(value_type = LlmFeaturesDoc)]
    pub llm: LlmFeatures,
}

/// `callscope_analysis::llm::LlmFeatures` in the OpenAPI document (that crate has no schemas):
/// documentation only.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(as = LlmFeatures)]
#[serde(default)]
struct LlmFeaturesDoc {
    /// An abstractive summary on top of the extractive one.
    #[schema(default = false)]
    summary: bool,
    /// The model's action items instead of the rule-based ones.
    #[schema(default = false)]
    action_items: bool,
    /// The model's resolution score instead of the rule-based estimate.
    #[schema(default = false)]
    resolution: bool,
    /// A yes/no from the model on each smart-tracker hit; rejected hits are removed.
    #[schema(default = false)]
    smart_tracker_confirmation: bool,
}

impl Default for OrgAnalysisSettings {
    fn default() -> Self {
        OrgAnalysisSettings {
            sentiment: SentimentChoice::Lexicon,
            redact_emails: false,
            redact_phones: false,
            keep_unredacted: false,
            default_rules: true,
            call_types: None,
            llm: LlmFeatures::default(),
        }
    }
}

impl OrgAnalysisSettings {
    /// What must be refused before storing.
    pub fn check(&self) -> Result<(), String> {
        if let Some(types) = &self.call_types {
            if types.is_empty() || types.len() > 50 {
                return Err("call_types must list 1 to 50 types".into());
            }
            if types
                .iter()
                .any(|t| t.trim().is_empty() || t.chars().count() > 60)
            {
                return Err("each call type must be 1 to 60 characters".into());
            }
        }
        Ok(())
    }
}

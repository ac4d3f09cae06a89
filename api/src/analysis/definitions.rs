//! The analysis crate's configurable types as the API stores them: how each is checked before
//! it is stored and which of its fields become the store's columns.

use callscope_analysis::rules::{Rule, validate_rule};
use callscope_analysis::scorecard::{ScorecardTemplate, validate_template};
use callscope_analysis::smart::SmartTracker;
use callscope_analysis::trackers::{KeywordTracker, TrackerCategory, validate_tracker};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::analysis_config::ConfigKind;

/// The store's columns of an object.
pub struct Columns {
    pub kind: String,
    pub name: String,
    pub category: String,
    pub active: bool,
}

/// A configurable object: its JSON is the analysis type's own.
pub trait Configured: Serialize + DeserializeOwned + Send + 'static {
    const KIND: ConfigKind;
    /// What must be refused before storing (a clear message for a 422).
    fn check(&self) -> Result<(), String>;
    fn columns(&self) -> Columns;
}

/// The name serde gives a value: a unit variant's string, or an internally tagged enum's
/// `kind` ("phrase_absent"), for the store's columns.
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => o
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// A smart tracker's category must be one keyword trackers have (the analysis crate's
/// `TrackerCategory`: competitor, pricing, objection, feature, custom).
fn check_category(category: &str) -> Result<(), String> {
    serde_json::from_value::<TrackerCategory>(serde_json::Value::from(category))
        .map(|_| ())
        .map_err(|_| {
            "category must be one of competitor, pricing, objection, feature, custom".into()
        })
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        Err("name must be 1 to 200 characters".into())
    } else {
        Ok(())
    }
}

/// A tracker, keyword or smart, told apart by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrackerDefinition {
    Keyword(KeywordTracker),
    Smart(SmartTracker),
}

impl Configured for TrackerDefinition {
    const KIND: ConfigKind = ConfigKind::Tracker;

    fn check(&self) -> Result<(), String> {
        match self {
            TrackerDefinition::Keyword(t) => {
                check_name(&t.name)?;
                if t.phrases.len() > 500 {
                    return Err("a keyword tracker takes at most 500 phrases".into());
                }
                validate_tracker(t).map_err(|e| e.to_string())
            }
            TrackerDefinition::Smart(t) => {
                check_name(&t.name)?;
                check_category(&t.category)?;
                if t.examples.len() > 50 {
                    return Err("a smart tracker takes at most 50 examples".into());
                }
                t.validate().map_err(|e| e.to_string())
            }
        }
    }

    fn columns(&self) -> Columns {
        match self {
            TrackerDefinition::Keyword(t) => Columns {
                kind: "keyword".into(),
                name: t.name.clone(),
                category: serde_name(&t.category),
                active: t.active,
            },
            TrackerDefinition::Smart(t) => Columns {
                kind: "smart".into(),
                name: t.name.clone(),
                category: t.category.clone(),
                active: t.active,
            },
        }
    }
}

/// A compliance rule (the analysis crate's `Rule`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleDefinition(pub Rule);

impl Configured for RuleDefinition {
    const KIND: ConfigKind = ConfigKind::Rule;

    fn check(&self) -> Result<(), String> {
        check_name(&self.0.name)?;
        validate_rule(&self.0).map_err(|e| e.to_string())
    }

    fn columns(&self) -> Columns {
        Columns {
            kind: serde_name(&self.0.condition),
            name: self.0.name.clone(),
            category: self.0.category.clone(),
            active: self.0.active,
        }
    }
}

/// A scorecard template (the analysis crate's `ScorecardTemplate`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TemplateDefinition(pub ScorecardTemplate);

impl Configured for TemplateDefinition {
    const KIND: ConfigKind = ConfigKind::ScorecardTemplate;

    fn check(&self) -> Result<(), String> {
        check_name(&self.0.name)?;
        if self.0.criteria.len() > 200 {
            return Err("a template takes at most 200 criteria".into());
        }
        validate_template(&self.0).map_err(|e| e.to_string())
    }

    fn columns(&self) -> Columns {
        Columns {
            kind: String::new(),
            name: self.0.name.clone(),
            category: String::new(),
            active: true,
        }
    }
}

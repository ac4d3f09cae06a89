//! The analysis crate's configurable types as the API stores them: how each is checked before
//! it is stored and which of its fields become the store's columns.

use callscope_analysis::smart::SmartTracker;
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

/// The tracker categories of the field (competitor, pricing, objection, feature, custom).
pub const TRACKER_CATEGORIES: &[&str] =
    &["competitor", "pricing", "objection", "feature", "custom"];

fn check_category(category: &str) -> Result<(), String> {
    if TRACKER_CATEGORIES.contains(&category) {
        Ok(())
    } else {
        Err(format!(
            "category must be one of {}",
            TRACKER_CATEGORIES.join(", ")
        ))
    }
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
    Smart(SmartTracker),
}

impl Configured for TrackerDefinition {
    const KIND: ConfigKind = ConfigKind::Tracker;

    fn check(&self) -> Result<(), String> {
        match self {
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
            TrackerDefinition::Smart(t) => Columns {
                kind: "smart".into(),
                name: t.name.clone(),
                category: t.category.clone(),
                active: t.active,
            },
        }
    }
}

//! Scorecard templates (an organization's QA form) and their validation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorecardTemplate {
    pub id: String,
    pub name: String,
    pub criteria: Vec<Criterion>,
}

/// One question of the form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub id: String,
    pub title: String,
    /// How much the criterion counts relative to the others (≥ 0; 0 = informational).
    pub weight: f64,
    /// Points for full marks (> 0).
    pub max_score: f64,
    pub answer_type: AnswerType,
    /// Whether "not applicable" is an allowed answer (it removes the criterion from the max).
    #[serde(default)]
    pub na_allowed: bool,
    /// An answer that fails the whole scorecard (0 %).
    #[serde(default)]
    pub auto_fail: Option<AutoFail>,
    /// Where an automatic suggestion comes from.
    #[serde(default)]
    pub binding: Option<Binding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnswerType {
    /// Yes scores `max_score`, no scores 0.
    YesNo,
    /// An integer from `min` (0 points) to `max` (`max_score` points), linear between.
    Scale { min: i32, max: i32 },
}

/// The answer that fails the scorecard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "when", rename_all = "snake_case")]
pub enum AutoFail {
    /// A yes/no criterion answered no ("Did the agent read the disclosure?").
    No,
    /// A yes/no criterion answered yes ("Did the agent promise guaranteed returns?").
    Yes,
    /// A scale criterion answered `value` or lower.
    AtOrBelow { value: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Comparator {
    pub fn holds(self, left: f64, right: f64) -> bool {
        // Stats are computed floats: equality within a small tolerance.
        const TOLERANCE: f64 = 1e-9;
        match self {
            Comparator::Lt => left < right,
            Comparator::Le => left <= right + TOLERANCE,
            Comparator::Gt => left > right,
            Comparator::Ge => left + TOLERANCE >= right,
            Comparator::Eq => (left - right).abs() <= TOLERANCE,
            Comparator::Ne => (left - right).abs() > TOLERANCE,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Lt => "<",
            Comparator::Le => "≤",
            Comparator::Gt => ">",
            Comparator::Ge => "≥",
            Comparator::Eq => "=",
            Comparator::Ne => "≠",
        }
    }
}

/// The fact a criterion's suggestion follows: when the condition holds the criterion is met
/// (yes, or the top of its scale), otherwise not (no, or the bottom of its scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binding {
    /// Met when the tracker was hit (`present`) or was not (`!present`).
    TrackerHit { tracker_id: String, present: bool },
    /// Met when the rule flagged the call (`present`) or did not (`!present`).
    RuleFlag { rule_id: String, present: bool },
    /// Met when `stat <comparator> value` holds (e.g. `agent_talk_ratio le 0.6`).
    Stat {
        stat: String,
        comparator: Comparator,
        value: f64,
    },
}

/// Largest weight or max score: keeps every total finite and readable.
pub const MAX_WEIGHT_OR_SCORE: f64 = 1_000_000.0;

/// What is wrong with a template; criteria are named by id (or position when the id is
/// missing).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template id is empty")]
    EmptyId,
    #[error("the template name is empty")]
    EmptyName,
    #[error("the template has no criteria")]
    NoCriteria,
    #[error("criterion #{position} has an empty id")]
    EmptyCriterionId { position: usize },
    #[error("criterion id {0:?} is used more than once")]
    DuplicateCriterion(String),
    #[error("criterion {0:?} has an empty title")]
    EmptyTitle(String),
    #[error("criterion {criterion:?}: weight must be a number from 0 to 1000000, not {weight}")]
    BadWeight { criterion: String, weight: f64 },
    #[error(
        "criterion {criterion:?}: max score must be a number above 0 and at most 1000000, not {max_score}"
    )]
    BadMaxScore { criterion: String, max_score: f64 },
    #[error("criterion {criterion:?}: scale minimum {min} must be below its maximum {max}")]
    BadScale {
        criterion: String,
        min: i32,
        max: i32,
    },
    #[error("criterion {0:?}: auto-fail on yes/no needs a yes/no answer type")]
    AutoFailNeedsYesNo(String),
    #[error("criterion {0:?}: auto-fail at a scale value needs a scale answer type")]
    AutoFailNeedsScale(String),
    #[error(
        "criterion {criterion:?}: auto-fail value {value} is outside the scale {min}..{max} or fails every answer"
    )]
    AutoFailOutOfRange {
        criterion: String,
        value: i32,
        min: i32,
        max: i32,
    },
    #[error("criterion {0:?}: its binding names no tracker, rule or stat")]
    EmptyBinding(String),
    #[error("criterion {0:?}: its stat threshold must be a finite number")]
    BadThreshold(String),
    #[error("the criteria's weights add up to 0: nothing can be scored")]
    ZeroTotalWeight,
}

/// All the problems of a template at once, so a form can show every one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid scorecard template: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct TemplateInvalid(pub Vec<TemplateError>);

/// Checks a template: ids, titles, weights, scales, auto-fail rules and bindings.
pub fn validate_template(template: &ScorecardTemplate) -> Result<(), TemplateInvalid> {
    let mut errors = Vec::new();
    if template.id.trim().is_empty() {
        errors.push(TemplateError::EmptyId);
    }
    if template.name.trim().is_empty() {
        errors.push(TemplateError::EmptyName);
    }
    if template.criteria.is_empty() {
        errors.push(TemplateError::NoCriteria);
    }
    let mut ids = BTreeSet::new();
    for (position, c) in template.criteria.iter().enumerate() {
        validate_criterion(position, c, &mut ids, &mut errors);
    }
    let total_weight: f64 = template
        .criteria
        .iter()
        .filter(|c| c.weight.is_finite() && c.weight > 0.0)
        .map(|c| c.weight)
        .sum();
    if !template.criteria.is_empty() && total_weight <= 0.0 {
        errors.push(TemplateError::ZeroTotalWeight);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(TemplateInvalid(errors))
    }
}

fn validate_criterion(
    position: usize,
    c: &Criterion,
    ids: &mut BTreeSet<String>,
    errors: &mut Vec<TemplateError>,
) {
    let name = c.id.clone();
    if c.id.trim().is_empty() {
        errors.push(TemplateError::EmptyCriterionId { position });
    } else if !ids.insert(c.id.clone()) {
        errors.push(TemplateError::DuplicateCriterion(name.clone()));
    }
    if c.title.trim().is_empty() {
        errors.push(TemplateError::EmptyTitle(name.clone()));
    }
    if !c.weight.is_finite() || !(0.0..=MAX_WEIGHT_OR_SCORE).contains(&c.weight) {
        errors.push(TemplateError::BadWeight {
            criterion: name.clone(),
            weight: c.weight,
        });
    }
    if !c.max_score.is_finite() || c.max_score <= 0.0 || c.max_score > MAX_WEIGHT_OR_SCORE {
        errors.push(TemplateError::BadMaxScore {
            criterion: name.clone(),
            max_score: c.max_score,
        });
    }
    if let AnswerType::Scale { min, max } = c.answer_type
        && min >= max
    {
        errors.push(TemplateError::BadScale {
            criterion: name.clone(),
            min,
            max,
        });
    }
    match (c.auto_fail, c.answer_type) {
        (Some(AutoFail::No | AutoFail::Yes), AnswerType::Scale { .. }) => {
            errors.push(TemplateError::AutoFailNeedsYesNo(name.clone()))
        }
        (Some(AutoFail::AtOrBelow { .. }), AnswerType::YesNo) => {
            errors.push(TemplateError::AutoFailNeedsScale(name.clone()))
        }
        // At the top of the scale every answer would fail.
        (Some(AutoFail::AtOrBelow { value }), AnswerType::Scale { min, max })
            if min < max && (value < min || value >= max) =>
        {
            errors.push(TemplateError::AutoFailOutOfRange {
                criterion: name.clone(),
                value,
                min,
                max,
            })
        }
        _ => {}
    }
    match &c.binding {
        Some(
            Binding::TrackerHit { tracker_id: id, .. } | Binding::RuleFlag { rule_id: id, .. },
        ) if id.trim().is_empty() => errors.push(TemplateError::EmptyBinding(name)),
        Some(Binding::Stat { stat, value, .. }) => {
            if stat.trim().is_empty() {
                errors.push(TemplateError::EmptyBinding(name.clone()));
            }
            if !value.is_finite() {
                errors.push(TemplateError::BadThreshold(name));
            }
        }
        _ => {}
    }
}

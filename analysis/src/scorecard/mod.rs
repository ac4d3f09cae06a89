//! QA scorecards: suggested answers from the call's facts (tracker hits, rule flags,
//! stats), manual scoring by a reviewer, totals with weights, N/A and auto-fail, and the
//! merge on re-analysis that keeps what a reviewer decided.

mod template;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use template::{
    AnswerType, AutoFail, Binding, Comparator, Criterion, ScorecardTemplate, TemplateError,
    TemplateInvalid, validate_template,
};

/// What the other analysers found, as the scorecard needs it (decoupled from their types).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoringFacts {
    #[serde(default)]
    pub tracker_ids_hit: BTreeSet<String>,
    #[serde(default)]
    pub rule_ids_flagged: BTreeSet<String>,
    /// Interaction stats by name ("agent_talk_ratio", "interruptions", …).
    #[serde(default)]
    pub stats: BTreeMap<String, f64>,
}

/// An answer to one criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Answer {
    Yes,
    No,
    Scale(i32),
    NotApplicable,
}

/// Who gave the answer in force: the suggested-vs-manual mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// Not answered yet.
    None,
    /// Computed from the call's facts; replaced by the next re-analysis.
    Suggested,
    /// A reviewer accepted the suggestion; kept on re-analysis.
    Accepted,
    /// A reviewer's own answer; kept on re-analysis.
    Manual,
}

impl AnswerSource {
    fn by_reviewer(self) -> bool {
        matches!(self, AnswerSource::Accepted | AnswerSource::Manual)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionScore {
    pub criterion_id: String,
    pub title: String,
    /// The answer in force.
    pub answer: Option<Answer>,
    pub source: AnswerSource,
    /// The automatic suggestion, kept next to a reviewer's answer for comparison.
    pub suggested: Option<Answer>,
    /// Why it was suggested ("tracker t-disclosure was hit"), or why not.
    pub suggestion_reason: Option<String>,
    pub note: Option<String>,
    /// Weighted points earned; none for N/A or unanswered.
    pub points: Option<f64>,
    /// Weighted points possible; none for N/A or unanswered.
    pub max_points: Option<f64>,
    /// This answer fails the scorecard.
    pub auto_failed: bool,
}

/// The overall suggested-vs-manual mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScorecardOrigin {
    /// Nothing answered.
    Empty,
    /// Every answer is a suggestion.
    Suggested,
    /// Every answer is a reviewer's (manual or accepted).
    Manual,
    Mixed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoFailReason {
    pub criterion_id: String,
    pub title: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Weighted points (0 when auto-failed).
    pub total: f64,
    /// Weighted points possible over the answered, applicable criteria.
    pub max: f64,
    /// `total / max` in per cent, two decimals; none when nothing applicable is answered
    /// (0 when auto-failed).
    pub percent: Option<f64>,
    /// The points before an auto-fail zeroed them.
    pub raw_total: f64,
    pub auto_fail: Option<AutoFailReason>,
    pub answered: usize,
    pub not_applicable: usize,
    pub unanswered: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    pub template_id: String,
    pub template_name: String,
    pub criteria: Vec<CriterionScore>,
    pub reviewer: Option<String>,
    pub overall_comment: Option<String>,
    pub origin: ScorecardOrigin,
    pub totals: Totals,
    /// Reviewer answers dropped on re-analysis because the template changed under them.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A reviewer's scoring of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManualReview {
    pub reviewer: String,
    #[serde(default)]
    pub overall_comment: Option<String>,
    pub answers: Vec<ManualAnswer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManualAnswer {
    pub criterion_id: String,
    pub answer: Answer,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScorecardError {
    #[error(transparent)]
    Template(#[from] TemplateInvalid),
    #[error("the scorecard was made from template {card:?}, not {template:?}")]
    WrongTemplate { card: String, template: String },
    #[error("the reviewer's name is empty")]
    EmptyReviewer,
    #[error("criterion {0:?} is not in the template")]
    UnknownCriterion(String),
    #[error("criterion {0:?} is answered more than once")]
    DuplicateAnswer(String),
    #[error("criterion {criterion:?}: {problem}")]
    InvalidAnswer { criterion: String, problem: String },
}

/// Why `answer` is not a valid answer to `c`, if it is not.
fn answer_problem(c: &Criterion, answer: Answer) -> Option<String> {
    match (answer, c.answer_type) {
        (Answer::NotApplicable, _) if !c.na_allowed => Some("N/A is not allowed".into()),
        (Answer::NotApplicable, _) => None,
        (Answer::Yes | Answer::No, AnswerType::YesNo) => None,
        (Answer::Yes | Answer::No, AnswerType::Scale { min, max }) => Some(format!(
            "needs a value on the scale {min}..{max}, not yes/no"
        )),
        (Answer::Scale(_), AnswerType::YesNo) => Some("needs yes or no, not a scale value".into()),
        (Answer::Scale(v), AnswerType::Scale { min, max }) if v < min || v > max => {
            Some(format!("{v} is outside the scale {min}..{max}"))
        }
        (Answer::Scale(_), AnswerType::Scale { .. }) => None,
    }
}

/// Unweighted points of an answer: `None` for N/A.
fn raw_points(c: &Criterion, answer: Answer) -> Option<f64> {
    match (answer, c.answer_type) {
        (Answer::Yes, _) => Some(c.max_score),
        (Answer::No, _) => Some(0.0),
        (Answer::Scale(v), AnswerType::Scale { min, max }) if max > min => {
            // In f64: `v - min` can overflow i32 on extreme scales.
            let v = f64::from(v.clamp(min, max));
            let (min, max) = (f64::from(min), f64::from(max));
            Some(c.max_score * (v - min) / (max - min))
        }
        (Answer::Scale(_), _) => Some(0.0),
        (Answer::NotApplicable, _) => None,
    }
}

fn fails(c: &Criterion, answer: Answer) -> Option<String> {
    match (c.auto_fail?, answer) {
        (AutoFail::No, Answer::No) => Some("answered no".into()),
        (AutoFail::Yes, Answer::Yes) => Some("answered yes".into()),
        (AutoFail::AtOrBelow { value }, Answer::Scale(v)) if v <= value => {
            Some(format!("scored {v}, at or below {value}"))
        }
        _ => None,
    }
}

/// The suggestion of a bound criterion: the answer and the reason, or only a reason.
fn suggestion(c: &Criterion, facts: &ScoringFacts) -> (Option<Answer>, Option<String>) {
    let Some(binding) = &c.binding else {
        return (None, None);
    };
    let (met, reason) = match binding {
        Binding::TrackerHit {
            tracker_id,
            present,
        } => {
            let hit = facts.tracker_ids_hit.contains(tracker_id);
            let seen = if hit { "was hit" } else { "was not hit" };
            (hit == *present, format!("tracker {tracker_id} {seen}"))
        }
        Binding::RuleFlag { rule_id, present } => {
            let flagged = facts.rule_ids_flagged.contains(rule_id);
            let seen = if flagged {
                "flagged the call"
            } else {
                "did not flag the call"
            };
            (flagged == *present, format!("rule {rule_id} {seen}"))
        }
        Binding::Stat {
            stat,
            comparator,
            value,
        } => match facts.stats.get(stat).filter(|v| v.is_finite()) {
            Some(&actual) => {
                let holds = comparator.holds(actual, *value);
                let verdict = if holds { "holds" } else { "does not hold" };
                (
                    holds,
                    format!(
                        "{stat} = {actual}: {stat} {} {value} {verdict}",
                        comparator.symbol()
                    ),
                )
            }
            None => return (None, Some(format!("stat {stat} is not available"))),
        },
    };
    let answer = match (c.answer_type, met) {
        (AnswerType::YesNo, true) => Answer::Yes,
        (AnswerType::YesNo, false) => Answer::No,
        (AnswerType::Scale { max, .. }, true) => Answer::Scale(max),
        (AnswerType::Scale { min, .. }, false) => Answer::Scale(min),
    };
    (Some(answer), Some(reason))
}

/// The automatic scorecard of a call: every bound criterion answered from `facts`, the
/// others left for a reviewer.
pub fn suggest(
    template: &ScorecardTemplate,
    facts: &ScoringFacts,
) -> Result<Scorecard, ScorecardError> {
    validate_template(template)?;
    let criteria = template
        .criteria
        .iter()
        .map(|c| {
            let (answer, reason) = suggestion(c, facts);
            CriterionScore {
                criterion_id: c.id.clone(),
                title: c.title.clone(),
                answer,
                source: if answer.is_some() {
                    AnswerSource::Suggested
                } else {
                    AnswerSource::None
                },
                suggested: answer,
                suggestion_reason: reason,
                note: None,
                points: None,
                max_points: None,
                auto_failed: false,
            }
        })
        .collect();
    Ok(finish(
        template,
        Scorecard {
            template_id: template.id.clone(),
            template_name: template.name.clone(),
            criteria,
            reviewer: None,
            overall_comment: None,
            origin: ScorecardOrigin::Empty,
            totals: empty_totals(),
            warnings: Vec::new(),
        },
    ))
}

fn non_blank(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn check_template(template: &ScorecardTemplate, card: &Scorecard) -> Result<(), ScorecardError> {
    validate_template(template)?;
    if card.template_id != template.id {
        return Err(ScorecardError::WrongTemplate {
            card: card.template_id.clone(),
            template: template.id.clone(),
        });
    }
    Ok(())
}

/// Applies a reviewer's answers (all or none: any invalid answer rejects the review).
/// Criteria the review does not mention keep their answer; the review's comment, when
/// given, replaces the overall comment.
pub fn apply_review(
    template: &ScorecardTemplate,
    card: Scorecard,
    review: &ManualReview,
) -> Result<Scorecard, ScorecardError> {
    check_template(template, &card)?;
    let reviewer = non_blank(Some(&review.reviewer)).ok_or(ScorecardError::EmptyReviewer)?;
    let mut seen = BTreeSet::new();
    for a in &review.answers {
        let c = template
            .criteria
            .iter()
            .find(|c| c.id == a.criterion_id)
            .ok_or_else(|| ScorecardError::UnknownCriterion(a.criterion_id.clone()))?;
        if !seen.insert(a.criterion_id.as_str()) {
            return Err(ScorecardError::DuplicateAnswer(a.criterion_id.clone()));
        }
        if let Some(problem) = answer_problem(c, a.answer) {
            return Err(ScorecardError::InvalidAnswer {
                criterion: c.id.clone(),
                problem,
            });
        }
    }
    let mut card = sync_with_template(template, card);
    for a in &review.answers {
        if let Some(score) = card
            .criteria
            .iter_mut()
            .find(|s| s.criterion_id == a.criterion_id)
        {
            score.answer = Some(a.answer);
            score.source = AnswerSource::Manual;
            score.note = non_blank(a.note.as_deref());
        }
    }
    card.reviewer = Some(reviewer);
    if let Some(comment) = non_blank(review.overall_comment.as_deref()) {
        card.overall_comment = Some(comment);
    }
    Ok(finish(template, card))
}

/// A reviewer accepts every suggested answer as it stands.
pub fn accept_suggestions(
    template: &ScorecardTemplate,
    card: Scorecard,
    reviewer: &str,
) -> Result<Scorecard, ScorecardError> {
    check_template(template, &card)?;
    let reviewer = non_blank(Some(reviewer)).ok_or(ScorecardError::EmptyReviewer)?;
    let mut card = sync_with_template(template, card);
    for score in &mut card.criteria {
        if score.source == AnswerSource::Suggested {
            score.source = AnswerSource::Accepted;
        }
    }
    card.reviewer = Some(reviewer);
    Ok(finish(template, card))
}

/// Re-analysis: the fresh suggestion, with the previous scorecard's reviewer answers,
/// notes, reviewer and comment kept. A kept answer no longer valid under the (changed)
/// template is dropped with a warning.
pub fn merge_on_reanalysis(
    template: &ScorecardTemplate,
    fresh: Scorecard,
    previous: &Scorecard,
) -> Result<Scorecard, ScorecardError> {
    check_template(template, &fresh)?;
    let mut card = sync_with_template(template, fresh);
    card.warnings.clear();
    for old in previous.criteria.iter().filter(|s| s.source.by_reviewer()) {
        let Some(answer) = old.answer else { continue };
        let Some(c) = template.criteria.iter().find(|c| c.id == old.criterion_id) else {
            card.warnings.push(format!(
                "the reviewer's answer to {:?} was dropped: the criterion left the template",
                old.criterion_id
            ));
            continue;
        };
        if let Some(problem) = answer_problem(c, answer) {
            card.warnings.push(format!(
                "the reviewer's answer to {:?} was dropped: {problem}",
                old.criterion_id
            ));
            continue;
        }
        if let Some(score) = card
            .criteria
            .iter_mut()
            .find(|s| s.criterion_id == old.criterion_id)
        {
            score.answer = Some(answer);
            score.source = old.source;
            score.note = old.note.clone();
        }
    }
    card.reviewer = previous.reviewer.clone();
    card.overall_comment = previous.overall_comment.clone();
    Ok(finish(template, card))
}

/// Makes the card's criteria those of the template, in its order (titles refreshed, new
/// criteria unanswered, removed ones gone).
fn sync_with_template(template: &ScorecardTemplate, mut card: Scorecard) -> Scorecard {
    let mut by_id: BTreeMap<String, CriterionScore> = card
        .criteria
        .drain(..)
        .map(|s| (s.criterion_id.clone(), s))
        .collect();
    card.criteria = template
        .criteria
        .iter()
        .map(|c| {
            let mut s = by_id.remove(&c.id).unwrap_or_else(|| CriterionScore {
                criterion_id: c.id.clone(),
                title: c.title.clone(),
                answer: None,
                source: AnswerSource::None,
                suggested: None,
                suggestion_reason: None,
                note: None,
                points: None,
                max_points: None,
                auto_failed: false,
            });
            s.title = c.title.clone();
            s
        })
        .collect();
    card.template_name = template.name.clone();
    card
}

fn empty_totals() -> Totals {
    Totals {
        total: 0.0,
        max: 0.0,
        percent: None,
        raw_total: 0.0,
        auto_fail: None,
        answered: 0,
        not_applicable: 0,
        unanswered: 0,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Recomputes points, auto-fail, totals and the origin mark.
fn finish(template: &ScorecardTemplate, mut card: Scorecard) -> Scorecard {
    let mut totals = empty_totals();
    let mut sources = BTreeSet::new();
    for score in &mut card.criteria {
        score.points = None;
        score.max_points = None;
        score.auto_failed = false;
        let Some(c) = template
            .criteria
            .iter()
            .find(|c| c.id == score.criterion_id)
        else {
            continue;
        };
        let Some(answer) = score.answer else {
            totals.unanswered += 1;
            continue;
        };
        sources.insert(score.source.by_reviewer());
        match raw_points(c, answer) {
            Some(points) => {
                totals.answered += 1;
                score.points = Some(c.weight * points);
                score.max_points = Some(c.weight * c.max_score);
                totals.raw_total += c.weight * points;
                totals.max += c.weight * c.max_score;
            }
            None => totals.not_applicable += 1,
        }
        if let Some(why) = fails(c, answer) {
            score.auto_failed = true;
            if totals.auto_fail.is_none() {
                totals.auto_fail = Some(AutoFailReason {
                    criterion_id: c.id.clone(),
                    title: c.title.clone(),
                    reason: format!("{}: {why}", c.title),
                });
            }
        }
    }
    totals.raw_total = round2(totals.raw_total);
    totals.max = round2(totals.max);
    if totals.auto_fail.is_some() {
        totals.total = 0.0;
        totals.percent = Some(0.0);
    } else {
        totals.total = totals.raw_total;
        totals.percent = (totals.max > 0.0).then(|| round2(100.0 * totals.total / totals.max));
    }
    card.origin = match (sources.contains(&false), sources.contains(&true)) {
        (false, false) => ScorecardOrigin::Empty,
        (true, false) => ScorecardOrigin::Suggested,
        (false, true) => ScorecardOrigin::Manual,
        (true, true) => ScorecardOrigin::Mixed,
    };
    card.totals = totals;
    card
}

#[cfg(test)]
mod tests;

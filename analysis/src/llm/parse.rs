//! Parsers of model outputs. Models wrap JSON in code fences, add a sentence before it, or
//! answer in prose: each parser takes what it can and says clearly when it cannot.

use chrono::NaiveDate;
use serde_json::Value;

use crate::actions::{ActionItem, ActionKind, DueDate, DuePrecision};
use crate::types::{Role, Turn};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the model's answer is empty")]
    Empty,
    #[error("the model's answer has no JSON value")]
    NoJson,
    #[error("the model's JSON does not have the expected shape: {0}")]
    Shape(String),
    #[error("the model's value is out of range: {0}")]
    OutOfRange(String),
    #[error("the model's answer is neither yes nor no: {0:?}")]
    Ambiguous(String),
}

/// Longest abstractive summary kept, in characters.
const MAX_SUMMARY_CHARS: usize = 2_000;
/// How many candidate JSON starts are tried in one answer (bounds the work on junk).
const MAX_JSON_STARTS: usize = 32;

/// The answer without a surrounding Markdown code fence.
fn strip_fences(output: &str) -> &str {
    let t = output.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    // Skip the fence's language tag ("```json").
    let body = rest.split_once('\n').map_or("", |(_, b)| b);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// The first JSON object or array in `output`.
pub(crate) fn first_json_value(output: &str) -> Option<Value> {
    let text = strip_fences(output);
    text.char_indices()
        .filter(|&(_, c)| c == '{' || c == '[')
        .take(MAX_JSON_STARTS)
        .find_map(|(i, _)| {
            let rest = text.get(i..)?;
            serde_json::Deserializer::from_str(rest)
                .into_iter::<Value>()
                .next()?
                .ok()
                .filter(|v| v.is_object() || v.is_array())
        })
}

/// A model-written summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbstractiveSummary {
    pub summary: String,
    pub reason_for_call: Option<String>,
    pub resolution: Option<String>,
}

fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn string_field(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| cut(s, MAX_SUMMARY_CHARS))
}

/// `{"summary": "...", "reason_for_call": "...", "resolution": "..."}`, or plain prose.
pub fn parse_summary(output: &str) -> Result<AbstractiveSummary, ParseError> {
    let text = strip_fences(output);
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    if let Some(v) = first_json_value(text) {
        let summary = string_field(&v, "summary")
            .ok_or_else(|| ParseError::Shape("no non-empty \"summary\" string".into()))?;
        return Ok(AbstractiveSummary {
            summary,
            reason_for_call: string_field(&v, "reason_for_call"),
            resolution: string_field(&v, "resolution"),
        });
    }
    if text.starts_with('{') || text.starts_with('[') {
        return Err(ParseError::Shape("broken JSON".into()));
    }
    let prose = text
        .strip_prefix("Summary:")
        .or_else(|| text.strip_prefix("**Summary:**"))
        .unwrap_or(text)
        .trim();
    if prose.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(AbstractiveSummary {
        summary: cut(prose, MAX_SUMMARY_CHARS),
        reason_for_call: None,
        resolution: None,
    })
}

/// The model's action items as [`ActionItem`]s pointing at the call's turns. The answer is
/// a JSON array (or `{"action_items": [...]}`) of `{"owner", "text", "turn", "due",
/// "kind"}`; items naming no valid owner or turn are skipped, a wrong due date is dropped.
pub fn parse_action_items(output: &str, turns: &[Turn]) -> Result<Vec<ActionItem>, ParseError> {
    if strip_fences(output).is_empty() {
        return Err(ParseError::Empty);
    }
    let value = first_json_value(output).ok_or(ParseError::NoJson)?;
    let list = match &value {
        Value::Array(items) => items,
        Value::Object(map) => map
            .get("action_items")
            .and_then(Value::as_array)
            .ok_or_else(|| ParseError::Shape("no \"action_items\" array".into()))?,
        _ => return Err(ParseError::Shape("neither an array nor an object".into())),
    };
    let items: Vec<ActionItem> = list.iter().filter_map(|v| action_item(v, turns)).collect();
    if items.is_empty() && !list.is_empty() {
        return Err(ParseError::Shape(format!(
            "none of the {} items has an owner, a text and a turn of this call",
            list.len()
        )));
    }
    Ok(items)
}

fn action_item(v: &Value, turns: &[Turn]) -> Option<ActionItem> {
    let owner = match v.get("owner")?.as_str()?.trim().to_lowercase().as_str() {
        "agent" => Role::Agent,
        "customer" => Role::Customer,
        "unknown" => Role::Unknown,
        _ => return None,
    };
    let text = v.get("text")?.as_str()?.trim();
    if text.is_empty() {
        return None;
    }
    let turn = match v.get("turn").and_then(Value::as_u64) {
        Some(index) => turns.iter().find(|t| t.index as u64 == index)?,
        None => {
            let needle = text.to_lowercase();
            turns
                .iter()
                .find(|t| t.text.to_lowercase().contains(&needle))?
        }
    };
    let kind = match v.get("kind").and_then(Value::as_str) {
        Some("request") => ActionKind::Request,
        _ => ActionKind::Commitment,
    };
    // Point at the sentence in the turn when the model quoted it, else at the whole turn.
    let (text_start, text_end) = turn
        .text
        .find(text)
        .map_or((0, turn.text.len()), |p| (p, p + text.len()));
    let due = v
        .get("due")
        .and_then(Value::as_str)
        .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
        .map(|date| DueDate {
            date,
            at: None,
            precision: DuePrecision::Day,
            phrase: v
                .get("due_phrase")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });
    Some(ActionItem {
        owner,
        said_by: turn.role,
        kind,
        text: cut(text, MAX_SUMMARY_CHARS),
        trigger: "language_model".into(),
        turn: turn.index,
        text_start,
        text_end,
        start_ms: turn.start_ms,
        end_ms: turn.end_ms,
        due,
    })
}

/// The first number in `text`, with "80%" read as 0.8 and "8/10" as 0.8.
fn first_number(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|b| b.is_ascii_digit())?;
    let mut end = start;
    while bytes
        .get(end)
        .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
    {
        end += 1;
    }
    let number: f64 = text.get(start..end)?.trim_end_matches('.').parse().ok()?;
    let rest = text.get(end..).unwrap_or("").trim_start();
    if rest.starts_with('%') {
        return Some(number / 100.0);
    }
    if let Some(denominator) = rest.strip_prefix('/') {
        let d = denominator.trim_start();
        let digits: String = d.chars().take_while(|c| c.is_ascii_digit()).collect();
        let d: f64 = digits.parse().ok()?;
        return (d > 0.0).then_some(number / d);
    }
    Some(number)
}

/// A resolution score in [0, 1]: `{"resolution_score": 0.8}`, "0.8", "Score: 80%", "8/10".
pub fn parse_resolution(output: &str) -> Result<f32, ParseError> {
    let text = strip_fences(output);
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let value = match first_json_value(text) {
        Some(v) => ["resolution_score", "score", "resolution"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_f64))
            .ok_or_else(|| ParseError::Shape("no numeric \"resolution_score\"".into()))?,
        None => first_number(text).ok_or_else(|| ParseError::Shape("no number".into()))?,
    };
    if !(0.0..=1.0).contains(&value) {
        return Err(ParseError::OutOfRange(format!("{value} is not in [0, 1]")));
    }
    Ok(value as f32)
}

/// A yes/no answer: `{"match": true}`, `{"answer": "yes"}`, "Yes.", "no — it is about…".
pub fn parse_confirmation(output: &str) -> Result<bool, ParseError> {
    let text = strip_fences(output);
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    if let Some(v) = first_json_value(text) {
        for key in ["match", "matches", "answer", "confirmed"] {
            match v.get(key) {
                Some(Value::Bool(b)) => return Ok(*b),
                Some(Value::String(s)) => return yes_or_no(s),
                _ => {}
            }
        }
        return Err(ParseError::Shape("no \"match\" field".into()));
    }
    yes_or_no(text)
}

fn yes_or_no(text: &str) -> Result<bool, ParseError> {
    let first = text
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_lowercase();
    match first.as_str() {
        "yes" | "true" | "y" => Ok(true),
        "no" | "false" | "n" => Ok(false),
        _ => Err(ParseError::Ambiguous(cut(text, 80))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_and_leading_prose_around_json() {
        let v = first_json_value("Sure! Here it is:\n```json\n{\"a\": [1, 2]}\n```").unwrap();
        assert_eq!(v["a"][1], 2);
        let v = first_json_value("noise { not json } then [1,2,3] trailing").unwrap();
        assert_eq!(v, serde_json::json!([1, 2, 3]));
        assert_eq!(first_json_value("no json at all"), None);
        assert_eq!(first_json_value("{ broken"), None);
        assert_eq!(first_json_value(""), None);
    }

    #[test]
    fn numbers_in_text() {
        assert_eq!(first_number("Score: 0.75 overall"), Some(0.75));
        assert_eq!(first_number("80%"), Some(0.8));
        assert_eq!(first_number("8 / 10"), Some(0.8));
        assert_eq!(first_number("8/0"), None);
        assert_eq!(first_number("1."), Some(1.0));
        assert_eq!(first_number("none"), None);
    }
}

//! Bounds and formats of CRM input. Every limit is here, so the docs can list them.

use serde_json::{Map, Value};

use super::{CrmError, CrmResult};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_PHONES: usize = 10;
pub const MAX_EMAILS: usize = 10;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 64;
/// Serialized size of a contact's or company's custom attributes.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
pub const MAX_NOTE_CHARS: usize = 10_000;
pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_ID_CHARS: usize = 200;

/// A trimmed, non-empty, bounded text; empty after trimming is `None`.
pub fn text(field: &str, v: Option<&str>, max: usize) -> CrmResult<Option<String>> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(CrmError::invalid(format!(
            "{field}: longer than {max} characters"
        )));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(CrmError::invalid(format!(
            "{field}: contains control characters"
        )));
    }
    Ok(Some(v.to_string()))
}

/// Like [`text`] but required.
pub fn required_text(field: &str, v: Option<&str>, max: usize) -> CrmResult<String> {
    text(field, v, max)?.ok_or_else(|| CrmError::invalid(format!("{field}: required")))
}

/// An email address, lower-cased: one '@', a local part, a domain with a dot, no spaces.
pub fn email(v: &str) -> CrmResult<String> {
    let e = v.trim().to_lowercase();
    let bad = || CrmError::invalid(format!("emails: {v:?} is not an email address"));
    if e.is_empty() || e.chars().count() > MAX_EMAIL_CHARS {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    let ok = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok { Ok(e) } else { Err(bad()) }
}

/// Tags: trimmed, non-empty, bounded, deduplicated (first spelling kept).
pub fn tags(v: &[String]) -> CrmResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in v {
        let t = required_text("tags", Some(t), MAX_TAG_CHARS)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(CrmError::invalid(format!("tags: more than {MAX_TAGS}")));
    }
    Ok(out)
}

/// Custom attributes: a JSON object within the size bound.
pub fn attributes(v: &Value) -> CrmResult<Map<String, Value>> {
    let Value::Object(map) = v else {
        return Err(CrmError::invalid("attributes: must be a JSON object"));
    };
    check_attributes_size(map)?;
    Ok(map.clone())
}

pub fn check_attributes_size(map: &Map<String, Value>) -> CrmResult<()> {
    let size = serde_json::to_string(map)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(CrmError::invalid(format!(
            "attributes: larger than {MAX_ATTRIBUTES_BYTES} bytes as JSON"
        )));
    }
    Ok(())
}

/// `base` with `patch` applied: a `null` value removes the key, others replace it.
pub fn merge_attributes(base: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
}

/// An id given in a body or path: bounded, so a hostile value cannot bloat a query.
pub fn id(field: &str, v: &str) -> CrmResult<String> {
    required_text(field, Some(v), MAX_ID_CHARS)
}

/// RFC 3339 time to ms.
pub fn time(field: &str, v: &str) -> CrmResult<i64> {
    chrono::DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| CrmError::invalid(format!("{field}: not an RFC 3339 time: {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.com",
            "a@b",
            "a b@c.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_bounded_and_merged() {
        assert!(attributes(&serde_json::json!([1])).is_err());
        let big = serde_json::json!({ "x": "y".repeat(MAX_ATTRIBUTES_BYTES) });
        assert!(attributes(&big).is_err());
        let mut base = attributes(&serde_json::json!({"a": 1, "b": 2})).unwrap();
        let patch = attributes(&serde_json::json!({"a": null, "c": 3})).unwrap();
        merge_attributes(&mut base, patch);
        assert_eq!(Value::Object(base), serde_json::json!({"b": 2, "c": 3}));
    }
}

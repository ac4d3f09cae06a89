//! The call metadata PBXes send (as form fields on upload, as JSON on the webhook), validated
//! into a [`NewCall`].

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::ApiError;
use crate::store::calls::NewCall;
use crate::store::contacts::normalize_phone;

/// As received. Every field optional; `from_form`/serde fill it, `validate` checks it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallFields {
    pub external_call_id: Option<String>,
    pub direction: Option<String>,
    pub customer_phone: Option<String>,
    pub agent_identifier: Option<String>,
    /// RFC 3339, or Unix seconds.
    pub call_timestamp: Option<serde_json::Value>,
    pub duration_seconds: Option<serde_json::Value>,
    pub channel_layout: Option<String>,
    pub language: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub recording_url: Option<String>,
}

const MAX_ID_LEN: usize = 256;

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl CallFields {
    /// From multipart text fields; `metadata` is a JSON object in text.
    pub fn from_form(form: &HashMap<String, String>) -> Result<Self, ApiError> {
        let get = |k: &str| non_empty(form.get(k).cloned());
        let metadata =
            match get("metadata") {
                Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                    ApiError::validation(format!("`metadata` is not valid JSON: {e}"))
                })?),
                None => None,
            };
        Ok(CallFields {
            external_call_id: get("external_call_id"),
            direction: get("direction"),
            customer_phone: get("customer_phone"),
            agent_identifier: get("agent_identifier"),
            call_timestamp: get("call_timestamp").map(serde_json::Value::String),
            duration_seconds: get("duration_seconds").map(serde_json::Value::String),
            channel_layout: get("channel_layout"),
            language: get("language"),
            metadata,
            recording_url: get("recording_url"),
        })
    }
}

/// Parse a timestamp given as RFC 3339 text or Unix seconds (number or numeric text).
pub fn parse_timestamp_ms(v: &serde_json::Value) -> Option<i64> {
    let secs = match v {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => {
            let s = s.trim();
            if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(dt.timestamp_millis());
            }
            s.parse::<f64>().ok()?
        }
        _ => return None,
    };
    (secs.is_finite() && (0.0..1e11).contains(&secs)).then(|| (secs * 1000.0).round() as i64)
}

fn parse_seconds(v: &serde_json::Value) -> Option<f64> {
    let s = match v {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (s.is_finite() && (0.0..=7.0 * 86_400.0).contains(&s)).then_some(s)
}

/// Validate and normalise. Unknown phone formats are kept as given (trimmed) but get no
/// contact; everything else wrong is a 422 naming the field.
pub fn validate(f: CallFields, source: &'static str, region: &str) -> Result<NewCall, ApiError> {
    let external_id = non_empty(f.external_call_id);
    if external_id.as_ref().is_some_and(|e| e.len() > MAX_ID_LEN) {
        return Err(ApiError::validation(
            "`external_call_id` is longer than 256 characters",
        ));
    }
    let direction = match non_empty(f.direction).map(|d| d.to_ascii_lowercase()) {
        None => None,
        Some(d) if d == "inbound" || d == "outbound" => Some(d),
        Some(d) => {
            return Err(ApiError::validation(format!(
                "`direction` must be inbound or outbound, got {d:?}"
            )));
        }
    };
    let channel_layout = match non_empty(f.channel_layout) {
        None => "mono".to_string(),
        Some(l) if ["mono", "stereo_agent_left", "stereo_agent_right"].contains(&l.as_str()) => l,
        Some(l) => {
            return Err(ApiError::validation(format!(
                "`channel_layout` must be mono, stereo_agent_left or stereo_agent_right, got {l:?}"
            )));
        }
    };
    let started_at = match &f.call_timestamp {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(parse_timestamp_ms(v).ok_or_else(|| {
            ApiError::validation("`call_timestamp` must be RFC 3339 or Unix seconds")
        })?),
    };
    let duration_ms = match &f.duration_seconds {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            (parse_seconds(v).ok_or_else(|| {
                ApiError::validation("`duration_seconds` must be a number of seconds (0 to 7 days)")
            })? * 1000.0)
                .round() as i64,
        ),
    };
    let language = non_empty(f.language);
    if language
        .as_ref()
        .is_some_and(|l| l.len() > 16 || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(ApiError::validation(
            "`language` must be a language code such as en or en-US",
        ));
    }
    let metadata = match f.metadata {
        None | Some(serde_json::Value::Null) => "{}".to_string(),
        Some(v @ serde_json::Value::Object(_)) => v.to_string(),
        Some(_) => return Err(ApiError::validation("`metadata` must be a JSON object")),
    };
    let customer_phone = non_empty(f.customer_phone)
        .filter(|p| p.len() <= 64)
        .map(|p| normalize_phone(&p, region).unwrap_or(p));
    let agent_identifier = non_empty(f.agent_identifier).filter(|a| a.len() <= MAX_ID_LEN);
    Ok(NewCall {
        external_id,
        source,
        direction,
        customer_phone,
        agent_identifier,
        started_at,
        duration_ms,
        channel_layout,
        language,
        recording_url: non_empty(f.recording_url),
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validates_and_normalises() {
        let f = CallFields {
            external_call_id: Some(" abc ".into()),
            direction: Some("Inbound".into()),
            customer_phone: Some("(415) 555-2671".into()),
            call_timestamp: Some(json!("2026-01-02T03:04:05Z")),
            duration_seconds: Some(json!("12.5")),
            channel_layout: Some("stereo_agent_left".into()),
            metadata: Some(json!({"queue": "sales"})),
            ..Default::default()
        };
        let c = validate(f, "upload", "US").unwrap();
        assert_eq!(c.external_id.as_deref(), Some("abc"));
        assert_eq!(c.direction.as_deref(), Some("inbound"));
        assert_eq!(c.customer_phone.as_deref(), Some("+14155552671"));
        assert_eq!(c.started_at, Some(1_767_323_045_000));
        assert_eq!(c.duration_ms, Some(12_500));
        assert_eq!(c.channel_layout, "stereo_agent_left");
    }

    #[test]
    fn rejects_bad_fields() {
        for f in [
            CallFields {
                direction: Some("sideways".into()),
                ..Default::default()
            },
            CallFields {
                channel_layout: Some("quad".into()),
                ..Default::default()
            },
            CallFields {
                call_timestamp: Some(json!("yesterday")),
                ..Default::default()
            },
            CallFields {
                duration_seconds: Some(json!(-1)),
                ..Default::default()
            },
            CallFields {
                metadata: Some(json!([1])),
                ..Default::default()
            },
            CallFields {
                language: Some("en; DROP".into()),
                ..Default::default()
            },
        ] {
            let e = validate(f, "upload", "US").unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
}

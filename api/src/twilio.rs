//! Recording webhooks from PBXes and from Twilio, normalised to one [`RecordingWebhook`],
//! plus Twilio's request-signature check.
//!
//! Two inputs arrive at `POST /api/v1/webhooks/call-recording`:
//! - JSON with the fields PBXes send to call-intelligence products
//!   ([`RecordingWebhook::from_json`]);
//! - Twilio's `RecordingStatusCallback` form ([`RecordingWebhook::from_twilio_form`]).
//!
//! Validation reports every bad field at once, by name ([`ValidationErrors`] → 422).

use std::collections::HashMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha1::Sha1;

use crate::error::ApiError;

const MAX_ID_LEN: usize = 200;
const MAX_URL_LEN: usize = 2048;
const MAX_PHONE_LEN: usize = 64;
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// A day: longer "calls" are almost certainly a unit mistake (ms sent as seconds).
const MAX_DURATION_S: f64 = 86_400.0;
/// Integers below this are unix seconds, above it milliseconds (1e11 s is the year 5138,
/// 1e11 ms is 1973), so both readings of a plausible timestamp are unambiguous.
const SECONDS_MS_BOUNDARY: i64 = 100_000_000_000;
/// 1970-01-01 … 2100-01-01 in ms: anything outside is a malformed timestamp.
const MAX_TIMESTAMP_MS: i64 = 4_102_444_800_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

impl CallDirection {
    /// Accepts the spellings PBXes and Twilio use (`inbound`, `incoming`, `outbound-api`,
    /// `outbound-dial`, …), case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inbound" | "incoming" | "in" => Some(Self::Inbound),
            "outbound" | "outgoing" | "out" | "outbound-api" | "outbound-dial" => {
                Some(Self::Outbound)
            }
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// A finished call's recording announced by a webhook, whatever its source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingWebhook {
    /// The sender's id for the call; with the organization, the idempotency key.
    pub external_call_id: String,
    /// An http(s) URL to download (for Twilio, with the media extension already appended).
    pub recording_url: String,
    /// As sent; normalising to E.164 is the contacts module's job (it knows the org's region).
    pub customer_phone: Option<String>,
    pub agent_identifier: Option<String>,
    pub duration_seconds: Option<f64>,
    /// Start of the call, ms since the Unix epoch (UTC).
    pub call_timestamp: Option<i64>,
    pub direction: Option<CallDirection>,
    /// 1 or 2 when the sender says; `None` = learn it from the file.
    pub channels: Option<u8>,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in one payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid recording webhook: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.field.as_str())
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        let message = e.to_string();
        ApiError::validation(message).with_details(serde_json::json!({ "fields": e.0 }))
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }
}

fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A short text field: strings, or integers (some PBXes send numeric ids). Empty → absent.
fn text_field(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
    errs: &mut Errors,
) -> Option<String> {
    let s = match obj.get(field) {
        None | Some(Value::Null) => return None,
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => {
            errs.add(field, "must be a string");
            return None;
        }
    };
    if s.is_empty() {
        return None;
    }
    if s.chars().count() > max {
        errs.add(field, format!("must be at most {max} characters"));
        return None;
    }
    if has_control_chars(&s) {
        errs.add(field, "must not contain control characters");
        return None;
    }
    Some(s)
}

fn check_recording_url(field: &str, raw: &str, errs: &mut Errors) -> Option<String> {
    if raw.len() > MAX_URL_LEN {
        errs.add(field, format!("must be at most {MAX_URL_LEN} characters"));
        return None;
    }
    match reqwest::Url::parse(raw) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Some(u.to_string())
        }
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            errs.add(
                field,
                format!("scheme must be http or https, not {:?}", u.scheme()),
            );
            None
        }
        Ok(_) => {
            errs.add(field, "must have a host");
            None
        }
        Err(e) => {
            errs.add(field, format!("is not a valid URL ({e})"));
            None
        }
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn duration_field(field: &str, v: Option<&Value>, errs: &mut Errors) -> Option<f64> {
    let v = v.filter(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))?;
    match number_of(v) {
        Some(d) if d.is_finite() && (0.0..=MAX_DURATION_S).contains(&d) => Some(d),
        Some(_) => {
            errs.add(
                field,
                format!("must be between 0 and {MAX_DURATION_S} seconds"),
            );
            None
        }
        None => {
            errs.add(field, "must be a number of seconds");
            None
        }
    }
}

fn timestamp_ms_from_integer(n: i64) -> i64 {
    if n.unsigned_abs() < SECONDS_MS_BOUNDARY.unsigned_abs() {
        n.saturating_mul(1000)
    } else {
        n
    }
}

/// RFC 3339 text, or unix seconds / milliseconds as a number or numeric text.
fn timestamp_field(field: &str, v: Option<&Value>, errs: &mut Errors) -> Option<i64> {
    let v = v.filter(|v| !v.is_null())?;
    let ms = match v {
        Value::Number(n) => n.as_i64().map(timestamp_ms_from_integer),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            if let Ok(n) = s.parse::<i64>() {
                Some(timestamp_ms_from_integer(n))
            } else {
                chrono::DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|d| d.timestamp_millis())
            }
        }
        _ => None,
    };
    match ms {
        Some(ms) if (0..=MAX_TIMESTAMP_MS).contains(&ms) => Some(ms),
        Some(_) => {
            errs.add(field, "must be between 1970 and 2100");
            None
        }
        None => {
            errs.add(
                field,
                "must be an RFC 3339 date-time (2025-01-31T14:05:00Z) or unix seconds/milliseconds",
            );
            None
        }
    }
}

fn channels_field(field: &str, v: Option<&Value>, errs: &mut Errors) -> Option<u8> {
    let v = v.filter(|v| !v.is_null())?;
    match number_of(v) {
        Some(1.0) => Some(1),
        Some(2.0) => Some(2),
        _ => {
            errs.add(field, "must be 1 or 2");
            None
        }
    }
}

impl RecordingWebhook {
    /// Parse the PBX JSON payload. Unknown top-level fields are ignored (PBXes send many);
    /// put anything worth keeping in `metadata`.
    pub fn from_json(body: Value) -> Result<Self, ValidationErrors> {
        let Value::Object(obj) = body else {
            return Err(ValidationErrors(vec![FieldError {
                field: "body".into(),
                message: "must be a JSON object".into(),
            }]));
        };
        let mut errs = Errors::default();

        let external_call_id = text_field(&obj, "external_call_id", MAX_ID_LEN, &mut errs);
        if external_call_id.is_none() && !errs.0.iter().any(|e| e.field == "external_call_id") {
            errs.add("external_call_id", "is required");
        }
        let recording_url = match obj.get("recording_url") {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                check_recording_url("recording_url", s.trim(), &mut errs)
            }
            None | Some(Value::Null) | Some(Value::String(_)) => {
                errs.add("recording_url", "is required");
                None
            }
            Some(_) => {
                errs.add("recording_url", "must be a string");
                None
            }
        };
        let customer_phone = text_field(&obj, "customer_phone", MAX_PHONE_LEN, &mut errs);
        let agent_identifier = text_field(&obj, "agent_identifier", MAX_ID_LEN, &mut errs);
        let duration_seconds =
            duration_field("duration_seconds", obj.get("duration_seconds"), &mut errs);
        let call_timestamp =
            timestamp_field("call_timestamp", obj.get("call_timestamp"), &mut errs);
        let direction = match obj.get("direction") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let d = CallDirection::parse(s);
                if d.is_none() {
                    errs.add("direction", "must be \"inbound\" or \"outbound\"");
                }
                d
            }
            Some(_) => {
                errs.add("direction", "must be \"inbound\" or \"outbound\"");
                None
            }
        };
        let channels = channels_field("channels", obj.get("channels"), &mut errs);
        let metadata = match obj.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                let size = serde_json::to_string(m)
                    .map(|s| s.len())
                    .unwrap_or(usize::MAX);
                if size > MAX_METADATA_BYTES {
                    errs.add(
                        "metadata",
                        format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
                    );
                }
                m.clone()
            }
            Some(_) => {
                errs.add("metadata", "must be a JSON object");
                Map::new()
            }
        };

        match (external_call_id, recording_url) {
            (Some(external_call_id), Some(recording_url)) if errs.0.is_empty() => Ok(Self {
                external_call_id,
                recording_url,
                customer_phone,
                agent_identifier,
                duration_seconds,
                call_timestamp,
                direction,
                channels,
                metadata,
            }),
            _ => Err(ValidationErrors(errs.0)),
        }
    }

    /// Parse Twilio's `RecordingStatusCallback` form with [`TwilioMediaFormat::Wav`].
    pub fn from_twilio_form(
        form: &HashMap<String, String>,
    ) -> Result<TwilioOutcome, ValidationErrors> {
        Self::from_twilio_form_with(form, TwilioMediaFormat::Wav)
    }

    /// Parse Twilio's `RecordingStatusCallback` form.
    ///
    /// - `RecordingStatus` other than `completed` (`in-progress`, `absent`, `failed`) gives
    ///   [`TwilioOutcome::Ignored`]: Twilio reports those states too, and they are not errors
    ///   of the request. A form without `RecordingStatus` (the `<Record action>` callback)
    ///   counts as completed.
    /// - `CallSid` is the external call id, so repeated callbacks for a call are idempotent;
    ///   `RecordingSid`, `AccountSid` and the raw status go into `metadata`.
    /// - `RecordingUrl` has no extension and must get one to name a file: `format` picks it
    ///   (see [`choose_twilio_format`]). A URL that already ends in `.wav`/`.mp3` is kept.
    /// - `Direction` with `From`/`To` (present on some callbacks) set the customer and agent:
    ///   inbound → customer = From, agent = To; outbound → the reverse.
    pub fn from_twilio_form_with(
        form: &HashMap<String, String>,
        format: TwilioMediaFormat,
    ) -> Result<TwilioOutcome, ValidationErrors> {
        let get = |k: &str| form.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        if let Some(status) = get("RecordingStatus")
            && status != "completed"
        {
            return Ok(TwilioOutcome::Ignored {
                recording_status: status.chars().take(64).collect(),
                reason: format!(
                    "recording status is {status:?}, not \"completed\"; nothing to fetch yet"
                ),
            });
        }
        let mut errs = Errors::default();

        let call_sid = match get("CallSid") {
            Some(s) if s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Some(s.to_string())
            }
            Some(_) => {
                errs.add("CallSid", "must be a Twilio SID (letters and digits)");
                None
            }
            None => {
                errs.add("CallSid", "is required");
                None
            }
        };
        let recording_url = match get("RecordingUrl") {
            Some(raw) => check_recording_url("RecordingUrl", raw, &mut errs)
                .map(|u| with_media_extension(&u, format)),
            None => {
                errs.add("RecordingUrl", "is required");
                None
            }
        };
        let channels = channels_field(
            "RecordingChannels",
            get("RecordingChannels")
                .map(|s| Value::String(s.into()))
                .as_ref(),
            &mut errs,
        );
        let duration_seconds = duration_field(
            "RecordingDuration",
            get("RecordingDuration")
                .map(|s| Value::String(s.into()))
                .as_ref(),
            &mut errs,
        );
        let call_timestamp = match get("RecordingStartTime") {
            None => None,
            Some(s) => match chrono::DateTime::parse_from_rfc2822(s) {
                Ok(d) => Some(d.timestamp_millis()),
                Err(_) => {
                    errs.add(
                        "RecordingStartTime",
                        "must be an RFC 2822 date as Twilio sends it",
                    );
                    None
                }
            },
        };
        let direction = get("Direction").and_then(CallDirection::parse);
        let phone = |k: &str, errs: &mut Errors| match get(k) {
            Some(p) if p.chars().count() <= MAX_PHONE_LEN && !has_control_chars(p) => {
                Some(p.to_string())
            }
            Some(_) => {
                errs.add(k, format!("must be at most {MAX_PHONE_LEN} characters"));
                None
            }
            None => None,
        };
        let from = phone("From", &mut errs);
        let to = phone("To", &mut errs);
        let (customer_phone, agent_identifier) = match direction {
            Some(CallDirection::Inbound) => (from.clone(), to.clone()),
            Some(CallDirection::Outbound) => (to.clone(), from.clone()),
            None => (None, None),
        };

        let mut metadata = Map::new();
        metadata.insert("source".into(), Value::from("twilio"));
        for (key, name) in [
            ("RecordingSid", "twilio_recording_sid"),
            ("AccountSid", "twilio_account_sid"),
            ("RecordingSource", "twilio_recording_source"),
            ("RecordingStatus", "twilio_recording_status"),
            ("Direction", "twilio_direction"),
        ] {
            if let Some(v) = get(key) {
                metadata.insert(
                    name.into(),
                    Value::from(v.chars().take(MAX_ID_LEN).collect::<String>()),
                );
            }
        }
        if direction.is_none() {
            // Without a direction we cannot tell who is the customer; keep the raw parties.
            if let Some(f) = &from {
                metadata.insert("twilio_from".into(), Value::from(f.clone()));
            }
            if let Some(t) = &to {
                metadata.insert("twilio_to".into(), Value::from(t.clone()));
            }
        }

        match (call_sid, recording_url) {
            (Some(external_call_id), Some(recording_url)) if errs.0.is_empty() => {
                Ok(TwilioOutcome::Recording(RecordingWebhook {
                    external_call_id,
                    recording_url,
                    customer_phone,
                    agent_identifier,
                    duration_seconds,
                    call_timestamp,
                    direction,
                    channels,
                    metadata,
                }))
            }
            _ => Err(ValidationErrors(errs.0)),
        }
    }
}

/// What a Twilio callback amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum TwilioOutcome {
    Recording(RecordingWebhook),
    /// Acknowledge with 200 and do nothing: Twilio retries non-2xx answers.
    Ignored {
        recording_status: String,
        reason: String,
    },
}

/// Which file Twilio should serve for a recording URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioMediaFormat {
    /// Lossless 16-bit PCM (best for ASR), about 57.6 MB per channel-hour at 8 kHz.
    Wav,
    /// About 8× smaller; use when the WAV would not fit the download limit.
    Mp3,
}

impl TwilioMediaFormat {
    fn extension(self) -> &'static str {
        match self {
            Self::Wav => ".wav",
            Self::Mp3 => ".mp3",
        }
    }
}

/// WAV when its expected size fits `max_bytes` with a 2× margin (covering recordings kept
/// at 16 kHz rather than the usual 8 kHz), else MP3. Unknown duration → WAV.
pub fn choose_twilio_format(
    duration_seconds: Option<f64>,
    channels: Option<u8>,
    max_bytes: u64,
) -> TwilioMediaFormat {
    let Some(d) = duration_seconds.filter(|d| d.is_finite() && *d >= 0.0) else {
        return TwilioMediaFormat::Wav;
    };
    let channels = f64::from(channels.unwrap_or(1).max(1));
    let expected_wav = d * 8000.0 * 2.0 * channels * 2.0;
    if expected_wav <= max_bytes as f64 {
        TwilioMediaFormat::Wav
    } else {
        TwilioMediaFormat::Mp3
    }
}

fn with_media_extension(url: &str, format: TwilioMediaFormat) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    let path = parsed.path().to_ascii_lowercase();
    if path.ends_with(".wav") || path.ends_with(".mp3") {
        return url.to_string();
    }
    let new_path = format!("{}{}", parsed.path(), format.extension());
    parsed.set_path(&new_path);
    parsed.to_string()
}

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(auth_token, url + concat(sorted(key + value)))).
/// `url` is the full URL Twilio requested (with query string); `params` the POST form fields
/// (empty for GET).
pub fn compute_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(twilio_mac(auth_token, url, params).finalize().into_bytes())
}

fn twilio_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // HMAC takes keys of any length; hmac's `InvalidLength` exists only for fixed-key MACs.
    #[allow(clippy::expect_used)]
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// Whether `signature` (the `X-Twilio-Signature` header) is Twilio's for this request.
/// Constant-time. Behind proxies the URL Twilio signed may carry the default port
/// explicitly or not, so both spellings are tried, as Twilio's own libraries do.
pub fn validate_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    url_variants(url).iter().any(|u| {
        twilio_mac(auth_token, u, params)
            .verify_slice(&expected)
            .is_ok()
    })
}

/// The URL as given, without its default port, and with it.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return out;
    };
    let Some(host) = parsed.host_str() else {
        return out;
    };
    let default_port = match parsed.scheme() {
        "https" => 443,
        "http" => 80,
        _ => return out,
    };
    // `Url` drops a default port when parsing, so `port()` is `Some` only for another port,
    // and then the URL has one spelling only.
    if parsed.port().is_some() {
        return out;
    }
    let rest = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    for candidate in [
        format!("{}://{host}{rest}", parsed.scheme()),
        format!("{}://{host}:{default_port}{rest}", parsed.scheme()),
    ] {
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_spellings() {
        assert_eq!(
            CallDirection::parse("Inbound"),
            Some(CallDirection::Inbound)
        );
        assert_eq!(
            CallDirection::parse("outbound-dial"),
            Some(CallDirection::Outbound)
        );
        assert_eq!(CallDirection::parse("sideways"), None);
    }

    #[test]
    fn extension_is_appended_once() {
        let u = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1";
        assert_eq!(
            with_media_extension(u, TwilioMediaFormat::Wav),
            format!("{u}.wav")
        );
        assert_eq!(
            with_media_extension(u, TwilioMediaFormat::Mp3),
            format!("{u}.mp3")
        );
        let already = format!("{u}.mp3");
        assert_eq!(
            with_media_extension(&already, TwilioMediaFormat::Wav),
            already
        );
    }

    #[test]
    fn format_choice_follows_the_size_limit() {
        let fifty_mb = 50 * 1024 * 1024;
        assert_eq!(
            choose_twilio_format(Some(300.0), Some(2), fifty_mb),
            TwilioMediaFormat::Wav
        );
        assert_eq!(
            choose_twilio_format(Some(3600.0), Some(2), fifty_mb),
            TwilioMediaFormat::Mp3
        );
        assert_eq!(
            choose_twilio_format(None, None, fifty_mb),
            TwilioMediaFormat::Wav
        );
    }
}

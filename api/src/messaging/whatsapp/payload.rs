//! Meta's WhatsApp Cloud API webhook payload, read leniently.
//!
//! Shape: `{"object":"whatsapp_business_account","entry":[{"id":WABA,"changes":[{"field":
//! "messages","value":{"metadata":{"phone_number_id":..},"contacts":[..],"messages":[..],
//! "statuses":[..]}}]}]}`. The reader walks a `serde_json::Value` instead of deriving strict
//! types: one odd message (a new type, a missing field) must not make us drop its siblings,
//! and no input may panic. What cannot be understood is skipped and counted.

use serde_json::{Map, Value, json};

use crate::messaging::model::{ContentType, DeliveryStatus};

/// Refuse to walk absurdly large batches: Meta sends at most a few hundred items per POST.
const MAX_ITEMS_PER_LIST: usize = 1000;
/// Text fields longer than this are cut (WhatsApp's own limit is 4096 characters).
const MAX_TEXT_CHARS: usize = 8192;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a WhatsApp Business Account notification")]
    NotWhatsapp,
}

/// Everything one webhook POST told us, grouped by the business phone number it concerns.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Notification {
    pub changes: Vec<Change>,
    /// Items that could not be read (logged, never stored).
    pub skipped: usize,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Change {
    pub phone_number_id: String,
    /// Profile names by wa_id, from `value.contacts[]`.
    pub profiles: Vec<(String, String)>,
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusReport>,
}

impl Change {
    pub fn profile_name(&self, wa_id: &str) -> Option<&str> {
        self.profiles
            .iter()
            .find(|(id, _)| id == wa_id)
            .map(|(_, name)| name.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The wamid: our idempotency key.
    pub id: String,
    /// The sender's wa_id (digits of the phone number, no `+`).
    pub from: String,
    /// Unix seconds, when Meta gives it.
    pub timestamp_s: Option<i64>,
    pub content_type: ContentType,
    pub text: Option<String>,
    /// For media: `{media_id, mime_type, sha256, caption, filename}`.
    pub attachments: Vec<Value>,
    /// Location, interactive reply, button payload, reaction, reply context, original type.
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The wamid of the outbound message this reports on.
    pub id: String,
    pub status: DeliveryStatus,
    pub timestamp_s: Option<i64>,
    pub recipient_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn text_field(v: &Value, key: &str) -> Option<String> {
    str_field(v, key).map(|s| s.chars().take(MAX_TEXT_CHARS).collect())
}

/// Meta sends ids and timestamps as strings; accept numbers too.
fn id_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn timestamp_field(v: &Value) -> Option<i64> {
    match v.get("timestamp")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().take(MAX_ITEMS_PER_LIST))
        .into_iter()
        .flatten()
}

/// Parse a webhook body. Errors only when the body as a whole is not a WhatsApp
/// notification; bad items inside it are skipped.
pub fn parse(body: &[u8]) -> Result<Notification, PayloadError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let object = str_field(&root, "object");
    if object.is_some_and(|o| o != "whatsapp_business_account") || root.get("entry").is_none() {
        return Err(PayloadError::NotWhatsapp);
    }
    let mut out = Notification::default();
    for entry in list(&root, "entry") {
        for change in list(entry, "changes") {
            // Other fields (message_template_status_update, account_update...) are not
            // conversations; they are acknowledged and ignored.
            if str_field(change, "field").is_some_and(|f| f != "messages") {
                continue;
            }
            let Some(value) = change.get("value") else {
                out.skipped += 1;
                continue;
            };
            let Some(phone_number_id) = value
                .get("metadata")
                .and_then(|m| id_field(m, "phone_number_id"))
            else {
                out.skipped += 1;
                continue;
            };
            let mut c = Change {
                phone_number_id,
                ..Change::default()
            };
            for contact in list(value, "contacts") {
                if let (Some(wa_id), Some(name)) = (
                    id_field(contact, "wa_id"),
                    contact.get("profile").and_then(|p| text_field(p, "name")),
                ) {
                    c.profiles.push((wa_id, name));
                }
            }
            for m in list(value, "messages") {
                match parse_message(m) {
                    Some(msg) => c.messages.push(msg),
                    None => out.skipped += 1,
                }
            }
            for s in list(value, "statuses") {
                match parse_status(s) {
                    Some(st) => c.statuses.push(st),
                    None => out.skipped += 1,
                }
            }
            out.changes.push(c);
        }
    }
    Ok(out)
}

fn media_attachment(obj: &Value) -> Value {
    let mut a = Map::new();
    for (from, to) in [
        ("id", "media_id"),
        ("mime_type", "mime_type"),
        ("sha256", "sha256"),
        ("caption", "caption"),
        ("filename", "filename"),
    ] {
        if let Some(v) = text_field(obj, from) {
            a.insert(to.to_string(), Value::String(v));
        }
    }
    Value::Object(a)
}

fn parse_message(m: &Value) -> Option<InboundMessage> {
    let id = id_field(m, "id")?;
    let from = id_field(m, "from")?;
    let kind = str_field(m, "type").unwrap_or("unsupported");
    let mut msg = InboundMessage {
        id,
        from,
        timestamp_s: timestamp_field(m),
        content_type: ContentType::Unsupported,
        text: None,
        attachments: Vec::new(),
        attributes: Map::new(),
    };
    if let Some(ctx) = m.get("context").filter(|c| c.is_object())
        && let Some(replied_to) = id_field(ctx, "id")
    {
        msg.attributes
            .insert("in_reply_to".into(), Value::String(replied_to));
    }
    match kind {
        "text" => {
            msg.content_type = ContentType::Text;
            msg.text = m.get("text").and_then(|t| text_field(t, "body"));
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            let obj = m.get(kind).filter(|o| o.is_object())?;
            msg.content_type = ContentType::parse(kind).unwrap_or(ContentType::Unsupported);
            msg.text = text_field(obj, "caption");
            if obj.get("voice").and_then(Value::as_bool) == Some(true) {
                msg.attributes.insert("voice".into(), Value::Bool(true));
            }
            msg.attachments.push(media_attachment(obj));
        }
        "location" => {
            let loc = m.get("location")?;
            let lat = loc.get("latitude").and_then(Value::as_f64)?;
            let lon = loc.get("longitude").and_then(Value::as_f64)?;
            msg.content_type = ContentType::Location;
            msg.text = text_field(loc, "name").or_else(|| text_field(loc, "address"));
            msg.attributes.insert(
                "location".into(),
                json!({
                    "latitude": lat,
                    "longitude": lon,
                    "name": text_field(loc, "name"),
                    "address": text_field(loc, "address"),
                }),
            );
        }
        "interactive" => {
            let inter = m.get("interactive")?;
            let reply_kind = str_field(inter, "type")?;
            let reply = inter.get(reply_kind)?;
            msg.content_type = ContentType::Interactive;
            msg.text = text_field(reply, "title");
            msg.attributes.insert(
                "interactive".into(),
                json!({
                    "type": reply_kind,
                    "id": text_field(reply, "id"),
                    "title": text_field(reply, "title"),
                    "description": text_field(reply, "description"),
                }),
            );
        }
        "button" => {
            let b = m.get("button")?;
            msg.content_type = ContentType::Button;
            msg.text = text_field(b, "text");
            msg.attributes.insert(
                "button".into(),
                json!({ "payload": text_field(b, "payload"), "text": text_field(b, "text") }),
            );
        }
        "reaction" => {
            let r = m.get("reaction")?;
            msg.content_type = ContentType::Reaction;
            msg.text = text_field(r, "emoji");
            msg.attributes.insert(
                "reaction".into(),
                json!({ "message_id": id_field(r, "message_id"), "emoji": text_field(r, "emoji") }),
            );
        }
        "contacts" => {
            msg.content_type = ContentType::Contacts;
            // Shared contact cards are kept as sent (bounded by the body limit).
            if let Some(cards) = m.get("contacts").filter(|c| c.is_array()) {
                msg.attributes.insert("contacts".into(), cards.clone());
            }
        }
        other => {
            // `unsupported`, `system`, `order`, new types: kept as a placeholder so the
            // conversation shows that something arrived.
            msg.content_type = ContentType::Unsupported;
            msg.attributes.insert(
                "whatsapp_type".into(),
                Value::String(other.chars().take(64).collect()),
            );
        }
    }
    Some(msg)
}

fn parse_status(s: &Value) -> Option<StatusReport> {
    let id = id_field(s, "id")?;
    let status = match str_field(s, "status")? {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return None,
    };
    let first_error = s
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first());
    let error_code = first_error.and_then(|e| id_field(e, "code"));
    let error_message = first_error.and_then(|e| {
        e.get("error_data")
            .and_then(|d| text_field(d, "details"))
            .or_else(|| text_field(e, "message"))
            .or_else(|| text_field(e, "title"))
    });
    Some(StatusReport {
        id,
        status,
        timestamp_s: timestamp_field(s),
        recipient_id: id_field(s, "recipient_id"),
        error_code,
        error_message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(value: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "WABA1", "changes": [{ "field": "messages", "value": value }] }]
        }))
        .unwrap()
    }

    #[test]
    fn text_message_with_profile() {
        let body = envelope(json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001111", "phone_number_id": "PN1" },
            "contacts": [{ "profile": { "name": "Ada" }, "wa_id": "14155552671" }],
            "messages": [{ "from": "14155552671", "id": "wamid.A", "timestamp": "1700000000",
                           "type": "text", "text": { "body": "hello" } }]
        }));
        let n = parse(&body).unwrap();
        assert_eq!(n.skipped, 0);
        let c = &n.changes[0];
        assert_eq!(c.phone_number_id, "PN1");
        assert_eq!(c.profile_name("14155552671"), Some("Ada"));
        let m = &c.messages[0];
        assert_eq!(m.id, "wamid.A");
        assert_eq!(m.from, "14155552671");
        assert_eq!(m.timestamp_s, Some(1_700_000_000));
        assert_eq!(m.content_type, ContentType::Text);
        assert_eq!(m.text.as_deref(), Some("hello"));
    }

    #[test]
    fn media_location_interactive_button() {
        let body = envelope(json!({
            "metadata": { "phone_number_id": "PN1" },
            "messages": [
                { "from": "1", "id": "m1", "type": "image",
                  "image": { "id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "receipt" } },
                { "from": "1", "id": "m2", "type": "audio",
                  "audio": { "id": "MEDIA2", "mime_type": "audio/ogg; codecs=opus", "voice": true } },
                { "from": "1", "id": "m3", "type": "document",
                  "document": { "id": "MEDIA3", "mime_type": "application/pdf", "filename": "bill.pdf" } },
                { "from": "1", "id": "m4", "type": "location",
                  "location": { "latitude": 52.5, "longitude": 13.4, "name": "Office" } },
                { "from": "1", "id": "m5", "type": "interactive",
                  "interactive": { "type": "button_reply", "button_reply": { "id": "yes", "title": "Yes" } } },
                { "from": "1", "id": "m6", "type": "button",
                  "button": { "payload": "STOP", "text": "Stop promotions" } },
                { "from": "1", "id": "m7", "type": "unsupported" }
            ]
        }));
        let n = parse(&body).unwrap();
        let m = &n.changes[0].messages;
        assert_eq!(m.len(), 7);
        assert_eq!(m[0].content_type, ContentType::Image);
        assert_eq!(m[0].text.as_deref(), Some("receipt"));
        assert_eq!(m[0].attachments[0]["media_id"], "MEDIA1");
        assert_eq!(m[0].attachments[0]["sha256"], "abc");
        assert_eq!(m[1].content_type, ContentType::Audio);
        assert_eq!(m[1].attributes["voice"], true);
        assert_eq!(m[2].attachments[0]["filename"], "bill.pdf");
        assert_eq!(m[3].attributes["location"]["latitude"], 52.5);
        assert_eq!(m[3].text.as_deref(), Some("Office"));
        assert_eq!(m[4].attributes["interactive"]["id"], "yes");
        assert_eq!(m[4].text.as_deref(), Some("Yes"));
        assert_eq!(m[5].attributes["button"]["payload"], "STOP");
        assert_eq!(m[6].content_type, ContentType::Unsupported);
    }

    #[test]
    fn statuses_with_errors() {
        let body = envelope(json!({
            "metadata": { "phone_number_id": "PN1" },
            "statuses": [
                { "id": "wamid.O1", "status": "delivered", "timestamp": "1700000001", "recipient_id": "1" },
                { "id": "wamid.O2", "status": "failed", "timestamp": 1700000002,
                  "errors": [{ "code": 131047, "title": "Re-engagement message",
                               "error_data": { "details": "More than 24 hours have passed" } }] },
                { "id": "wamid.O3", "status": "deleted" }
            ]
        }));
        let n = parse(&body).unwrap();
        let s = &n.changes[0].statuses;
        assert_eq!(s.len(), 2);
        assert_eq!(n.skipped, 1);
        assert_eq!(s[0].status, DeliveryStatus::Delivered);
        assert_eq!(s[1].status, DeliveryStatus::Failed);
        assert_eq!(s[1].error_code.as_deref(), Some("131047"));
        assert_eq!(
            s[1].error_message.as_deref(),
            Some("More than 24 hours have passed")
        );
        assert_eq!(s[1].timestamp_s, Some(1_700_000_002));
    }

    #[test]
    fn wrong_shapes_are_refused_or_skipped() {
        assert!(matches!(parse(b"not json"), Err(PayloadError::NotJson(_))));
        assert_eq!(
            parse(br#"{"object":"page","entry":[]}"#),
            Err(PayloadError::NotWhatsapp)
        );
        assert_eq!(parse(b"[]"), Err(PayloadError::NotWhatsapp));
        let n = parse(br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{}}]}]}"#).unwrap();
        assert_eq!(n.skipped, 1);
        assert!(n.changes.is_empty());
        // A message without an id cannot be deduplicated: skipped, its sibling kept.
        let body = envelope(json!({
            "metadata": { "phone_number_id": 42 },
            "messages": [ { "from": "1", "type": "text" },
                          { "from": "1", "id": "ok", "type": "text", "text": { "body": 5 } } ]
        }));
        let n = parse(&body).unwrap();
        assert_eq!(n.skipped, 1);
        assert_eq!(n.changes[0].phone_number_id, "42");
        assert_eq!(n.changes[0].messages[0].text, None);
    }

    /// A deterministic xorshift stream, so a failure reproduces.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_and_truncated_input_never_panics() {
        let sample = envelope(json!({
            "metadata": { "phone_number_id": "PN1" },
            "contacts": [{ "profile": { "name": "Ada" }, "wa_id": "1" }],
            "messages": [
                { "from": "1", "id": "m1", "type": "image", "image": { "id": "X", "mime_type": "image/png" } },
                { "from": "1", "id": "m2", "type": "location", "location": { "latitude": 1, "longitude": 2 } },
                { "from": "1", "id": "m3", "type": "interactive", "interactive": { "type": "list_reply", "list_reply": { "id": "a", "title": "A" } } }
            ],
            "statuses": [{ "id": "s", "status": "read", "errors": [{ "code": "x" }] }]
        }));
        // Every prefix of a valid body.
        let mut parsed_ok = 0;
        for cut in 0..sample.len() {
            if parse(&sample[..cut]).is_ok() {
                parsed_ok += 1;
            }
        }
        // Only the complete document is valid JSON.
        assert_eq!(parsed_ok, 0);
        assert!(parse(&sample).is_ok());

        // Random bytes, and the valid body with random bytes flipped (mostly still JSON-ish
        // around the damage, exercising the walker on odd types).
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for round in 0..3000 {
            let mut body = if round % 2 == 0 {
                sample.clone()
            } else {
                let len = (xorshift(&mut state) % 512) as usize;
                (0..len).map(|_| xorshift(&mut state) as u8).collect()
            };
            if round % 2 == 0 {
                for _ in 0..(1 + xorshift(&mut state) % 4) {
                    let i = (xorshift(&mut state) as usize) % body.len();
                    body[i] = b"{}[]\",:0a-"[(xorshift(&mut state) % 10) as usize];
                }
            }
            let _ = parse(&body);
        }
        // Type confusion at every level.
        for doc in [
            json!({"object":"whatsapp_business_account","entry":{}}),
            json!({"object":"whatsapp_business_account","entry":[1,"x",null]}),
            json!({"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"p"},"messages":[{"id":"i","from":"f","type":"image","image":"str"}],"statuses":"x","contacts":[{"profile":7}]}}]}]}),
            json!({"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"p"},"messages":[{"id":"i","from":"f","type":"location","location":{"latitude":"n"}},{"id":"j","from":"f","type":"interactive","interactive":{"type":"nope"}}]}}]}]}),
        ] {
            let _ = parse(&serde_json::to_vec(&doc).unwrap());
        }
    }
}

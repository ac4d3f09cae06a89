//! JSON shapes of the API's resources (times as RFC 3339, JSON columns as objects).

use serde_json::{Value, json};

use crate::ids::ms_to_rfc3339;
use crate::store::calls::Call;
use crate::store::contacts::Contact;
use crate::store::recordings::Recording;
use crate::store::segments::SegmentRow;
use crate::store::timeline::TimelineEvent;

fn time(ms: Option<i64>) -> Value {
    ms.map(|m| Value::String(ms_to_rfc3339(m)))
        .unwrap_or(Value::Null)
}

fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

pub fn call(c: &Call) -> Value {
    json!({
        "id": c.id,
        "external_call_id": c.external_id,
        "source": c.source,
        "direction": c.direction,
        "customer_phone": c.customer_phone,
        "agent_identifier": c.agent_identifier,
        "call_timestamp": time(c.started_at),
        "duration_seconds": c.duration_ms.map(|d| d as f64 / 1000.0),
        "channel_layout": c.channel_layout,
        "language": c.language,
        "status": c.status,
        "asr_outcome": c.asr_outcome,
        "failure": c.failure_code.as_ref().map(|code| json!({ "code": code, "reason": c.failure_reason })),
        "retry_count": c.retry_count,
        "metadata": json_text(&c.metadata),
        "contact_id": c.contact_id,
        "conversation_id": c.conversation_id,
        "created_at": time(Some(c.created_at)),
        "updated_at": time(Some(c.updated_at)),
        "completed_at": time(c.completed_at),
    })
}

pub fn recording(r: &Recording) -> Value {
    json!({
        "format": r.format,
        "codec": r.codec,
        "channels": r.channels,
        "sample_rate": r.sample_rate,
        "duration_seconds": r.duration_ms.map(|d| d as f64 / 1000.0),
        "sha256": r.sha256,
        "size_bytes": r.size_bytes,
        "recovered": r.recovered,
        "original_name": r.original_name,
    })
}

pub fn segment(s: &SegmentRow) -> Value {
    json!({
        "speaker_role": s.speaker_role,
        "speaker_label": s.speaker_label,
        "channel": s.channel,
        "start_ms": s.start_ms,
        "end_ms": s.end_ms,
        "text": s.text,
        "confidence": s.confidence,
        "words": json_text(&s.words),
    })
}

pub fn contact(c: &Contact) -> Value {
    json!({
        "id": c.id,
        "phone": c.phone_e164,
        "display_name": c.display_name,
        "created_at": time(Some(c.created_at)),
        "updated_at": time(Some(c.updated_at)),
    })
}

pub fn event(e: &TimelineEvent) -> Value {
    json!({
        "id": e.id,
        "kind": e.kind,
        "ref_id": e.ref_id,
        "conversation_id": e.conversation_id,
        "occurred_at": time(Some(e.occurred_at)),
        "payload": json_text(&e.payload),
    })
}

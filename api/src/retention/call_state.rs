//! A call's retention state: its legal hold and what the purge has removed from it.

use serde_json::{Value, json};
use sqlx::SqliteExecutor;

use super::policy::{DataKind, RetentionPolicy};
use crate::audit::AuditActor;
use crate::ids::{ms_to_rfc3339, now_ms};

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct CallRetention {
    pub legal_hold: bool,
    pub hold_reason: Option<String>,
    pub hold_actor_type: Option<String>,
    pub hold_actor_id: Option<String>,
    pub hold_changed_at: Option<i64>,
    pub recording_purged_at: Option<i64>,
    pub transcript_purged_at: Option<i64>,
    pub insights_purged_at: Option<i64>,
}

pub async fn get<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
) -> Result<CallRetention, sqlx::Error> {
    let row: Option<CallRetention> = sqlx::query_as(
        "SELECT legal_hold, hold_reason, hold_actor_type, hold_actor_id, hold_changed_at,
                recording_purged_at, transcript_purged_at, insights_purged_at
         FROM call_retention WHERE org_id = $1 AND call_id = $2",
    )
    .bind(org_id)
    .bind(call_id)
    .fetch_optional(ex)
    .await?;
    Ok(row.unwrap_or_default())
}

/// Puts the call on hold or releases it. The caller has checked the call is the
/// organization's.
pub async fn set_hold<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
    held: bool,
    reason: Option<&str>,
    actor: &AuditActor,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO call_retention (call_id, org_id, legal_hold, hold_reason, hold_actor_type,
            hold_actor_id, hold_changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (call_id) DO UPDATE SET legal_hold = excluded.legal_hold,
            hold_reason = excluded.hold_reason, hold_actor_type = excluded.hold_actor_type,
            hold_actor_id = excluded.hold_actor_id, hold_changed_at = excluded.hold_changed_at",
    )
    .bind(call_id)
    .bind(org_id)
    .bind(held)
    .bind(reason)
    .bind(actor.kind())
    .bind(actor.id())
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(())
}

/// Marks `kind` of a call as purged at `at`.
pub async fn mark_purged<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
    kind: DataKind,
    at: i64,
) -> Result<(), sqlx::Error> {
    // The column name comes from this match, never from input.
    let column = match kind {
        DataKind::Recordings => "recording_purged_at",
        DataKind::Transcripts => "transcript_purged_at",
        DataKind::Insights => "insights_purged_at",
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO call_retention (call_id, org_id, {column}) VALUES ($1, $2, $3)
         ON CONFLICT (call_id) DO UPDATE SET {column} = excluded.{column}"
    )))
    .bind(call_id)
    .bind(org_id)
    .bind(at)
    .execute(ex)
    .await?;
    Ok(())
}

fn time(ms: Option<i64>) -> Value {
    ms.map(|m| Value::String(ms_to_rfc3339(m)))
        .unwrap_or(Value::Null)
}

/// The `legal_hold` object of the call JSON.
pub fn hold_view(r: &CallRetention) -> Value {
    json!({
        "held": r.legal_hold,
        "reason": r.hold_reason,
        "changed_by": r.hold_actor_type.as_ref().map(|t| json!({ "type": t, "id": r.hold_actor_id })),
        "changed_at": time(r.hold_changed_at),
    })
}

/// The `retention` object of the call JSON: what was purged, and when each kind of data is
/// due (null: kept forever, or held).
pub fn retention_view(r: &CallRetention, policy: &RetentionPolicy, created_at_ms: i64) -> Value {
    let due = |kind| {
        if r.legal_hold {
            Value::Null
        } else {
            time(policy.purge_after_ms(kind, created_at_ms))
        }
    };
    json!({
        "recording_purged_at": time(r.recording_purged_at),
        "transcript_purged_at": time(r.transcript_purged_at),
        "insights_purged_at": time(r.insights_purged_at),
        "recording_purge_after": due(DataKind::Recordings),
        "transcript_purge_after": due(DataKind::Transcripts),
        "insights_purge_after": due(DataKind::Insights),
    })
}

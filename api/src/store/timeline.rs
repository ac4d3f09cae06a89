//! The timeline: an append-only log of what happened with a contact.

use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use crate::ids::{new_id, now_ms};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TimelineEvent {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub kind: String,
    pub ref_id: Option<String>,
    /// JSON text; the HTTP layer embeds it as an object.
    #[serde(skip)]
    pub payload: String,
    pub occurred_at: i64,
    pub created_at: i64,
}

pub struct NewEvent<'a> {
    pub contact_id: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub kind: &'a str,
    pub ref_id: &'a str,
    pub payload: &'a serde_json::Value,
    pub occurred_at: i64,
}

/// Append an event; a second event of the same kind for the same ref replaces the payload of
/// the first (a re-processed call keeps one `call.processed` entry).
pub async fn record_event(
    conn: &mut SqliteConnection,
    org_id: &str,
    e: &NewEvent<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO timeline_events (id, org_id, contact_id, conversation_id, kind, ref_id, payload, occurred_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (org_id, kind, ref_id) DO UPDATE SET
            contact_id = excluded.contact_id, conversation_id = excluded.conversation_id,
            payload = excluded.payload, occurred_at = excluded.occurred_at",
    )
    .bind(new_id())
    .bind(org_id)
    .bind(e.contact_id)
    .bind(e.conversation_id)
    .bind(e.kind)
    .bind(e.ref_id)
    .bind(e.payload.to_string())
    .bind(e.occurred_at)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A contact's events, newest first. The cursor is the last event of the previous page as
/// `(occurred_at, id)`, so events with equal times are neither skipped nor repeated.
pub async fn list_for_contact(
    pool: &SqlitePool,
    org_id: &str,
    contact_id: &str,
    before: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<TimelineEvent>, sqlx::Error> {
    // Two statements rather than `$3 IS NULL OR …`: PostgreSQL cannot type a bare NULL test.
    match before {
        None => {
            sqlx::query_as(
                "SELECT * FROM timeline_events WHERE org_id = $1 AND contact_id = $2
                 ORDER BY occurred_at DESC, id DESC LIMIT $3",
            )
            .bind(org_id)
            .bind(contact_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        Some((at, id)) => {
            sqlx::query_as(
                "SELECT * FROM timeline_events WHERE org_id = $1 AND contact_id = $2
                   AND (occurred_at < $3 OR (occurred_at = $3 AND id < $4))
                 ORDER BY occurred_at DESC, id DESC LIMIT $5",
            )
            .bind(org_id)
            .bind(contact_id)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
}

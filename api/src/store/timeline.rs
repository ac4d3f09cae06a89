//! The timeline: an append-only log of what happened with a contact.

use serde::Serialize;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::calls::CallAccess;

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

/// A timeline row of a batch for [`push_record_events`], its payload already JSON text.
pub struct NewEventRow<'a> {
    pub contact_id: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub kind: &'a str,
    pub ref_id: &'a str,
    pub payload_json: &'a str,
    pub occurred_at: i64,
}

/// [`record_event`] for many rows, appended to `b` as multi-row INSERT statements (same
/// replace-on-conflict rule) in chunks of [`super::batch::CHUNK_SIZES`] rows, each ended by
/// `;`: the caller runs them with its other statements in one round trip.
pub fn push_record_events(b: &mut QueryBuilder<Sqlite>, org_id: &str, rows: &[NewEventRow<'_>]) {
    let now = now_ms();
    for range in super::batch::chunks(rows.len()) {
        b.push(
            "INSERT INTO timeline_events (id, org_id, contact_id, conversation_id, kind, ref_id, payload, occurred_at, created_at) ",
        );
        b.push_values(&rows[range], |mut row, e| {
            row.push_bind(new_id())
                .push_bind(org_id.to_string())
                .push_bind(e.contact_id.map(str::to_string))
                .push_bind(e.conversation_id.map(str::to_string))
                .push_bind(e.kind.to_string())
                .push_bind(e.ref_id.to_string())
                .push_bind(e.payload_json.to_string())
                .push_bind(e.occurred_at)
                .push_bind(now);
        });
        b.push(
            " ON CONFLICT (org_id, kind, ref_id) DO UPDATE SET
                contact_id = excluded.contact_id, conversation_id = excluded.conversation_id,
                payload = excluded.payload, occurred_at = excluded.occurred_at;\n",
        );
    }
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

/// Whose timeline.
#[derive(Debug, Clone)]
pub enum TimelineOf {
    Contact(String),
    Conversation(String),
}

/// Where a page starts: the newest events, those older than a cursor, or those newer than one.
#[derive(Debug, Clone)]
pub enum PageFrom {
    Newest,
    Before(i64, String),
    After(i64, String),
}

/// One page of a timeline, for a reader who may see `access`'s calls.
#[derive(Debug, Clone)]
pub struct TimelineQuery {
    pub of: TimelineOf,
    pub from: PageFrom,
    /// Kind families (`call`, `message`, `note`, `task`, `conversation`, `contact`) or exact
    /// kinds (`call.processed`); empty: all.
    pub kinds: Vec<String>,
    pub limit: i64,
    pub access: CallAccess,
}

/// A page, newest first whichever way it was read.
pub async fn list(pool: &SqlitePool, q: &TimelineQuery) -> Result<Vec<TimelineEvent>, sqlx::Error> {
    let mut b: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT * FROM timeline_events WHERE org_id = ");
    b.push_bind(q.access.org_id.clone());
    match &q.of {
        TimelineOf::Contact(id) => b.push(" AND contact_id = ").push_bind(id.clone()),
        TimelineOf::Conversation(id) => b.push(" AND conversation_id = ").push_bind(id.clone()),
    };
    if !q.kinds.is_empty() {
        b.push(" AND (");
        for (i, kind) in q.kinds.iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            b.push("kind = ").push_bind(kind.clone());
            b.push(" OR kind LIKE ").push_bind(format!("{kind}.%"));
        }
        b.push(")");
    }
    if q.access.owner.is_some() {
        // Someone who sees only their own calls sees only those calls' events here too.
        b.push(" AND (kind NOT LIKE 'call.%' OR ref_id IN (SELECT calls.id FROM calls WHERE");
        q.access.push_condition(&mut b);
        b.push("))");
    }
    let ascending = matches!(q.from, PageFrom::After(..));
    match &q.from {
        PageFrom::Newest => {}
        PageFrom::Before(at, id) => {
            b.push(" AND (occurred_at < ").push_bind(*at);
            b.push(" OR (occurred_at = ").push_bind(*at);
            b.push(" AND id < ").push_bind(id.clone()).push("))");
        }
        PageFrom::After(at, id) => {
            b.push(" AND (occurred_at > ").push_bind(*at);
            b.push(" OR (occurred_at = ").push_bind(*at);
            b.push(" AND id > ").push_bind(id.clone()).push("))");
        }
    }
    b.push(if ascending {
        " ORDER BY occurred_at ASC, id ASC LIMIT "
    } else {
        " ORDER BY occurred_at DESC, id DESC LIMIT "
    });
    b.push_bind(q.limit);
    let mut rows: Vec<TimelineEvent> = b.build_query_as().fetch_all(pool).await?;
    if ascending {
        rows.reverse();
    }
    Ok(rows)
}

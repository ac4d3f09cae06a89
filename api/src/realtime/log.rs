//! The `event_stream` table: append in the change's transaction, read in `seq` order.

use sqlx::{SqliteConnection, SqlitePool};

/// One committed event.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StreamRow {
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    pub event: String,
    pub data: String,
    pub created_at: i64,
}

/// A row with its body parsed once, shared by every socket it is sent to.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub seq: i64,
    pub id: String,
    pub org_id: String,
    pub event: String,
    pub data: serde_json::Value,
    pub created_at: i64,
}

impl From<StreamRow> for StreamEvent {
    fn from(r: StreamRow) -> Self {
        Self {
            seq: r.seq,
            id: r.id,
            org_id: r.org_id,
            event: r.event,
            // Written by `append` from a Value; unparseable only if edited by hand.
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null),
            created_at: r.created_at,
        }
    }
}

/// Append an event in the caller's transaction.
pub async fn append(
    conn: &mut SqliteConnection,
    org_id: &str,
    event_id: &str,
    event: &str,
    data: &serde_json::Value,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_stream (id, org_id, event, data, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event_id)
    .bind(org_id)
    .bind(event)
    .bind(data.to_string())
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Up to `limit` events after `seq`, of every organization (the tail) or of one.
pub async fn after(
    pool: &SqlitePool,
    org_id: Option<&str>,
    seq: i64,
    limit: i64,
) -> Result<Vec<StreamEvent>, sqlx::Error> {
    let rows: Vec<StreamRow> =
        match org_id {
            Some(org) => sqlx::query_as(
                "SELECT * FROM event_stream WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(org)
            .bind(seq)
            .bind(limit)
            .fetch_all(pool)
            .await?,
            None => {
                sqlx::query_as("SELECT * FROM event_stream WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(seq)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
        };
    Ok(rows.into_iter().map(StreamEvent::from).collect())
}

/// The newest `seq` (0 for an empty stream).
pub async fn latest_seq(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let (seq,): (Option<i64>,) = sqlx::query_as("SELECT MAX(seq) FROM event_stream")
        .fetch_one(pool)
        .await?;
    Ok(seq.unwrap_or(0))
}

/// The oldest `seq` still kept for an organization (`None`: nothing kept).
pub async fn oldest_seq(pool: &SqlitePool, org_id: &str) -> Result<Option<i64>, sqlx::Error> {
    let (seq,): (Option<i64>,) =
        sqlx::query_as("SELECT MIN(seq) FROM event_stream WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(pool)
            .await?;
    Ok(seq)
}

/// Delete events older than `before_ms`; returns how many.
pub async fn prune(pool: &SqlitePool, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM event_stream WHERE created_at < $1")
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

//! The audio file of a call: where it lives and what the decoder found in it.

use serde::Serialize;
use sqlx::SqliteExecutor;

use crate::ids::{new_id, now_ms};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Recording {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    pub call_id: String,
    /// Server-side path; never shown to clients.
    #[serde(skip)]
    pub path: String,
    pub original_name: Option<String>,
    pub format: Option<String>,
    pub codec: Option<String>,
    pub channels: Option<i64>,
    pub sample_rate: Option<i64>,
    pub duration_ms: Option<i64>,
    pub sha256: String,
    pub size_bytes: i64,
    pub created_at: i64,
    /// Written by callscope for a call cut off by a crash, repaired at start-up.
    pub recovered: bool,
}

pub struct NewRecording<'a> {
    pub path: &'a str,
    pub original_name: Option<&'a str>,
    pub format: &'a str,
    pub codec: &'a str,
    pub channels: i64,
    pub sample_rate: i64,
    pub duration_ms: i64,
    pub sha256: &'a str,
    pub size_bytes: i64,
}

pub async fn insert_recording<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
    r: &NewRecording<'_>,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO recordings (id, org_id, call_id, path, original_name, format, codec, channels,
            sample_rate, duration_ms, sha256, size_bytes, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(call_id)
    .bind(r.path)
    .bind(r.original_name)
    .bind(r.format)
    .bind(r.codec)
    .bind(r.channels)
    .bind(r.sample_rate)
    .bind(r.duration_ms)
    .bind(r.sha256)
    .bind(r.size_bytes)
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(id)
}

/// The decoder's measured duration replaces the container's claim once processing ran.
pub async fn set_measured_duration<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
    duration_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE recordings SET duration_ms = $1 WHERE org_id = $2 AND call_id = $3")
        .bind(duration_ms)
        .bind(org_id)
        .bind(call_id)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn get_for_call<'e>(
    pool: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
) -> Result<Option<Recording>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM recordings WHERE org_id = $1 AND call_id = $2")
        .bind(org_id)
        .bind(call_id)
        .fetch_optional(pool)
        .await
}

//! The durable job queue. A job is a row; a worker claims it with a lease (`locked_until`)
//! and renews the lease while it works. If the worker dies (even `kill -9`) the lease runs
//! out and any worker claims the job again — nothing is lost, and jobs are written to be
//! safe to run twice.
//!
//! Claiming is the one cross-organization query here (a worker serves every tenant); all
//! reads and writes about a particular job take its organization.

use serde::Serialize;
use sqlx::{SqliteExecutor, SqlitePool};

use crate::ids::{new_id, now_ms};

pub const KIND_PROCESS_CALL: &str = "process_call";
pub const KIND_FETCH_RECORDING: &str = "fetch_recording";

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub locked_until: Option<i64>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn enqueue<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    kind: &str,
    payload: &serde_json::Value,
    max_attempts: i64,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO jobs (id, org_id, kind, payload, status, attempts, max_attempts, run_after, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(kind)
    .bind(payload.to_string())
    .bind(max_attempts)
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(id)
}

/// Take the oldest runnable job: queued and due, or running with an expired lease (its
/// worker died). One UPDATE … RETURNING, so two workers can never take the same job.
/// The attempt is counted here, at claim time, so a job that crashes its worker every time
/// still runs out of attempts.
pub async fn claim(
    pool: &SqlitePool,
    worker: &str,
    lease_ms: i64,
) -> Result<Option<Job>, sqlx::Error> {
    let now = now_ms();
    sqlx::query_as(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
            locked_until = $2, updated_at = $3
         WHERE id = (
            SELECT id FROM jobs
            WHERE (status = 'queued' AND run_after <= $4)
               OR (status = 'running' AND locked_until < $5)
            ORDER BY run_after, id LIMIT 1)
         RETURNING *",
    )
    .bind(worker)
    .bind(now + lease_ms)
    .bind(now)
    .bind(now)
    .bind(now)
    .fetch_optional(pool)
    .await
}

/// Extend the lease; false if the job is no longer ours (it expired and someone took it).
pub async fn heartbeat(
    pool: &SqlitePool,
    org_id: &str,
    job_id: &str,
    worker: &str,
    lease_ms: i64,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let r = sqlx::query(
        "UPDATE jobs SET locked_until = $1, updated_at = $2
         WHERE org_id = $3 AND id = $4 AND locked_by = $5 AND status = 'running'",
    )
    .bind(now + lease_ms)
    .bind(now)
    .bind(org_id)
    .bind(job_id)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn complete<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    job_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET status = 'done', locked_until = NULL, last_error = NULL, updated_at = $1
         WHERE org_id = $2 AND id = $3",
    )
    .bind(now_ms())
    .bind(org_id)
    .bind(job_id)
    .execute(ex)
    .await?;
    Ok(())
}

/// Give up on the job now (bad input: running it again cannot help).
pub async fn fail<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    job_id: &str,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET status = 'failed', locked_until = NULL, last_error = $1, updated_at = $2
         WHERE org_id = $3 AND id = $4",
    )
    .bind(error)
    .bind(now_ms())
    .bind(org_id)
    .bind(job_id)
    .execute(ex)
    .await?;
    Ok(())
}

/// Put the job back with a delay.
pub async fn retry_later<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    job_id: &str,
    error: &str,
    delay_ms: i64,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE jobs SET status = 'queued', locked_until = NULL, locked_by = NULL, last_error = $1,
            run_after = $2, updated_at = $3
         WHERE org_id = $4 AND id = $5",
    )
    .bind(error)
    .bind(now + delay_ms)
    .bind(now)
    .bind(org_id)
    .bind(job_id)
    .execute(ex)
    .await?;
    Ok(())
}

/// Jobs waiting or running (for the `callscope_queue_depth` gauge).
pub async fn queue_depth(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")
        .fetch_one(pool)
        .await
}

pub async fn list_for_org(pool: &SqlitePool, org_id: &str) -> Result<Vec<Job>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM jobs WHERE org_id = $1 ORDER BY id")
        .bind(org_id)
        .fetch_all(pool)
        .await
}

//! What the analysis produced per call, the organization's analysis settings, call-type
//! overrides and scorecards. Results are stored as the analysis crate's JSON.

use sqlx::{FromRow, SqliteExecutor};

use crate::ids::now_ms;

#[derive(Debug, Clone, FromRow)]
pub struct StoredAnalysis {
    pub call_id: String,
    pub version: i64,
    pub result: String,
    pub unredacted: Option<String>,
    pub analysed_at: i64,
}

/// Replaces the call's analysis (a re-analysis overwrites the last one).
pub async fn save<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
    version: i64,
    result: &str,
    unredacted: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO call_analyses (call_id, org_id, version, result, unredacted, analysed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (call_id) DO UPDATE SET version = excluded.version, \
         result = excluded.result, unredacted = excluded.unredacted, \
         analysed_at = excluded.analysed_at",
    )
    .bind(call_id)
    .bind(org_id)
    .bind(version)
    .bind(result)
    .bind(unredacted)
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
) -> Result<Option<StoredAnalysis>, sqlx::Error> {
    sqlx::query_as(
        "SELECT call_id, version, result, unredacted, analysed_at FROM call_analyses \
         WHERE org_id = $1 AND call_id = $2",
    )
    .bind(org_id)
    .bind(call_id)
    .fetch_optional(ex)
    .await
}

/// The organization's settings JSON, when it changed the defaults.
pub async fn settings<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT settings FROM analysis_settings WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(ex)
        .await
}

pub async fn put_settings<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    settings: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO analysis_settings (org_id, settings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id) DO UPDATE SET settings = excluded.settings, \
         updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(settings)
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(())
}

/// Sets (or with `None` clears) the manager's call-type override; false when no such call.
pub async fn set_call_type_override<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
    call_type: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE calls SET call_type_override = $3 WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(call_id)
            .bind(call_type)
            .execute(ex)
            .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn call_type_override<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let v: Option<Option<String>> =
        sqlx::query_scalar("SELECT call_type_override FROM calls WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(call_id)
            .fetch_optional(ex)
            .await?;
    Ok(v.flatten())
}

#[derive(Debug, Clone, FromRow)]
pub struct StoredScorecard {
    pub id: String,
    pub call_id: String,
    pub template_id: String,
    pub reviewer: Option<String>,
    pub result: String,
    pub percent: Option<f64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn scorecards<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
) -> Result<Vec<StoredScorecard>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, call_id, template_id, reviewer, result, percent, created_at, updated_at \
         FROM call_scorecards WHERE org_id = $1 AND call_id = $2 ORDER BY created_at, id",
    )
    .bind(org_id)
    .bind(call_id)
    .fetch_all(ex)
    .await
}

pub async fn scorecard<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
    template_id: &str,
) -> Result<Option<StoredScorecard>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, call_id, template_id, reviewer, result, percent, created_at, updated_at \
         FROM call_scorecards WHERE org_id = $1 AND call_id = $2 AND template_id = $3",
    )
    .bind(org_id)
    .bind(call_id)
    .bind(template_id)
    .fetch_optional(ex)
    .await
}

/// Writes the call's scorecard for a template (one per call and template).
pub async fn save_scorecard<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
    template_id: &str,
    reviewer: Option<&str>,
    result: &str,
    percent: Option<f64>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO call_scorecards (id, org_id, call_id, template_id, reviewer, result, \
         percent, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT (call_id, template_id) DO UPDATE SET reviewer = excluded.reviewer, \
         result = excluded.result, percent = excluded.percent, updated_at = excluded.updated_at",
    )
    .bind(crate::ids::new_id())
    .bind(org_id)
    .bind(call_id)
    .bind(template_id)
    .bind(reviewer)
    .bind(result)
    .bind(percent)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(())
}

//! Organizations (tenants).

use sqlx::SqlitePool;

use crate::ids::{new_id, now_ms};

pub async fn create_org(pool: &SqlitePool, name: &str) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(name)
        .bind(now_ms())
        .execute(pool)
        .await?;
    Ok(id)
}

pub async fn org_exists(pool: &SqlitePool, org_id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations WHERE id = $1")
        .bind(org_id)
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

/// Revoke a key of this organization; false when no such key belongs to it.
pub async fn revoke_api_key(
    pool: &SqlitePool,
    org_id: &str,
    key_id: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(key_id)
    .bind(org_id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

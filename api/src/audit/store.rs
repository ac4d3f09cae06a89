//! The `audit_log` table: appending entries and reading them newest first, scoped by
//! organization.

use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::{AuditActor, Target};
use crate::ids::{new_id, now_ms};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: String,
    pub org_id: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: String,
    pub ip: Option<String>,
    pub created_at: i64,
}

/// Filters of the audit-log listing; all optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// A user id or an API key id.
    pub actor_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

pub async fn insert(
    pool: &SqlitePool,
    org_id: &str,
    actor: &AuditActor,
    action: &str,
    target: Target<'_>,
    details: &Value,
    ip: Option<&str>,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO audit_log (id, org_id, actor_type, actor_id, action, target_type, target_id,
            details, ip, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(actor.kind())
    .bind(actor.id())
    .bind(action)
    .bind(target.kind)
    .bind(target.id)
    .bind(details.to_string())
    .bind(ip)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(id)
}

/// The cursor: the last entry of the previous page.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditCursor {
    pub t: i64,
    pub id: String,
}

/// Newest first, after `after` when given, at most `limit` rows.
pub async fn list(
    pool: &SqlitePool,
    org_id: &str,
    filter: &AuditFilter,
    after: Option<&AuditCursor>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM audit_log WHERE org_id = ");
    q.push_bind(org_id.to_string());
    if let Some(a) = &filter.action {
        q.push(" AND action = ").push_bind(a.clone());
    }
    if let Some(a) = &filter.actor_id {
        q.push(" AND actor_id = ").push_bind(a.clone());
    }
    if let Some(t) = &filter.target_type {
        q.push(" AND target_type = ").push_bind(t.clone());
    }
    if let Some(t) = &filter.target_id {
        q.push(" AND target_id = ").push_bind(t.clone());
    }
    if let Some(t) = filter.from_ms {
        q.push(" AND created_at >= ").push_bind(t);
    }
    if let Some(t) = filter.to_ms {
        q.push(" AND created_at < ").push_bind(t);
    }
    if let Some(c) = after {
        q.push(" AND (created_at < ")
            .push_bind(c.t)
            .push(" OR (created_at = ")
            .push_bind(c.t)
            .push(" AND id < ")
            .push_bind(c.id.clone())
            .push("))");
    }
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

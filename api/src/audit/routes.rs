//! `GET /api/v1/audit-log`: the organization's audit entries, newest first, with cursor
//! pagination and filters (`action`, `actor_id`, `target_type`, `target_id`, `from`, `to`).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{self, AuditCursor, AuditEntry, AuditFilter};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::cursor;
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::metadata_fields::parse_timestamp_ms;
use crate::permissions::Permission;

pub fn routes() -> Router<AppState> {
    Router::new().route("/audit-log", get(list_route))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    action: Option<String>,
    /// A user id or an API key id.
    actor_id: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    /// RFC 3339 or Unix seconds.
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub fn view(e: &AuditEntry) -> Value {
    json!({
        "id": e.id,
        "actor": { "type": e.actor_type, "id": e.actor_id },
        "action": e.action,
        "target": { "type": e.target_type, "id": e.target_id },
        "details": serde_json::from_str::<Value>(&e.details).unwrap_or(Value::Null),
        "ip": e.ip,
        "created_at": ms_to_rfc3339(e.created_at),
    })
}

fn time(v: &Option<String>, name: &str) -> ApiResult<Option<i64>> {
    v.as_ref()
        .map(|t| {
            parse_timestamp_ms(&Value::String(t.clone())).ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be RFC 3339 or Unix seconds"))
            })
        })
        .transpose()
}

async fn list_route(
    State(state): State<AppState>,
    org: OrgCtx,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::AuditRead)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = AuditFilter {
        action: q.action.filter(|s| !s.is_empty()),
        actor_id: q.actor_id.filter(|s| !s.is_empty()),
        target_type: q.target_type.filter(|s| !s.is_empty()),
        target_id: q.target_id.filter(|s| !s.is_empty()),
        from_ms: time(&q.from, "from")?,
        to_ms: time(&q.to, "to")?,
    };
    let after: Option<AuditCursor> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = cursor::limit(q.limit);
    // One extra row tells whether there is a next page.
    let mut rows =
        store::list(&state.pool, &org.org_id, &filter, after.as_ref(), limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if has_more {
        rows.last().map(|e| {
            cursor::encode(&AuditCursor {
                t: e.created_at,
                id: e.id.clone(),
            })
        })
    } else {
        None
    };
    Ok(Json(json!({
        "data": rows.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

//! `GET /api/v1/audit-log`: the organization's audit entries, newest first, with cursor
//! pagination and filters (`action`, `actor_id`, `target_type`, `target_id`, `from`, `to`).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, AuditCursor, AuditEntry, AuditFilter};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::cursor;
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::metadata_fields::parse_timestamp_ms;
use crate::permissions::Permission;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_route))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this action, e.g. `user.created`.
    action: Option<String>,
    /// A user id or an API key id.
    actor_id: Option<String>,
    /// Only entries about this kind of object, e.g. `call`, `user`, `settings`.
    target_type: Option<String>,
    /// Only entries about this object.
    target_id: Option<String>,
    /// Entries at or after this time: RFC 3339 or Unix seconds.
    from: Option<String>,
    /// Entries before this time: RFC 3339 or Unix seconds.
    to: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size (default 50, at most 200).
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

#[utoipa::path(
    get,
    path = "/audit-log",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "The organization's audit entries, newest first",
    operation_id = "list_audit_log",
    params(ListQuery),
    responses(
        (status = 200, description = "`{data: [entry], next_cursor}`", body = Object),
    ),
)]
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

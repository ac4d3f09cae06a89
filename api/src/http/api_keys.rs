//! `/api/v1/api-keys`: an organization's integration keys. A key carries a permission set
//! (never more than its creator holds), may expire, can be revoked, and shows when it was
//! last used. The key itself is shown once, at creation; only its hash is stored.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::FromRow;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;
use crate::auth::{self, OrgCtx};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ms_to_rfc3339, now_ms};
use crate::permissions::{Permission, Permissions};
use crate::sip::http::json_body;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateKeyBody {
    name: String,
    /// Permission names; all of the creator's when absent.
    #[serde(default)]
    permissions: Option<Vec<String>>,
    /// RFC 3339; never expires when absent.
    #[serde(default)]
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(FromRow)]
struct KeyRow {
    id: String,
    name: String,
    key_prefix: String,
    permissions: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

fn view(row: &KeyRow) -> Value {
    let permissions = row
        .permissions
        .as_deref()
        .map(Permissions::from_stored)
        .unwrap_or_else(Permissions::all);
    let now = now_ms();
    let status = if row.revoked_at.is_some() {
        "revoked"
    } else if row.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": row.id,
        "name": row.name,
        "prefix": row.key_prefix,
        "permissions": permissions.names(),
        "status": status,
        "created_at": ms_to_rfc3339(row.created_at),
        "expires_at": row.expires_at.map(ms_to_rfc3339),
        "revoked_at": row.revoked_at.map(ms_to_rfc3339),
        "last_used_at": row.last_used_at.map(ms_to_rfc3339),
    })
}

#[utoipa::path(
    get,
    path = "/api-keys",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "The organization's API keys (never the keys themselves)",
    responses((status = 200, description = "`{data: [key]}`", body = Object)),
)]
async fn list_keys(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::ApiKeysManage)?;
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT id, name, key_prefix, permissions, created_at, expires_at, revoked_at, last_used_at
         FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1000",
    )
    .bind(&org.org_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(
        json!({ "data": rows.iter().map(view).collect::<Vec<_>>() }),
    ))
}

#[utoipa::path(
    post,
    path = "/api-keys",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Create an API key; the key is in this response only",
    request_body = CreateKeyBody,
    responses((status = 201, description = "The key, with `key` shown this once.", body = Object)),
)]
async fn create_key(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<CreateKeyBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::ApiKeysManage)?;
    let b = json_body(body)?;
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation("name must be 1 to 100 characters"));
    }
    let wanted = match &b.permissions {
        None => org.permissions,
        Some(names) => Permissions::parse(names.iter().map(String::as_str)).map_err(|bad| {
            ApiError::validation(format!("unknown permission {bad:?}"))
                .with_details(json!({ "known": Permissions::all().names() }))
        })?,
    };
    if !org.permissions.covers(wanted) {
        return Err(ApiError::validation(
            "a key cannot have permissions its creator does not hold",
        )
        .with_code("permission_escalation"));
    }
    let expires_at = b.expires_at.map(|t| t.timestamp_millis());
    if expires_at.is_some_and(|t| t <= now_ms()) {
        return Err(ApiError::validation("expires_at must be in the future"));
    }
    let created =
        auth::create_scoped_api_key(&state.pool, &org.org_id, name, expires_at, wanted).await?;
    if let Some(user) = org.user_id() {
        sqlx::query("UPDATE api_keys SET created_by_user_id = $1 WHERE id = $2")
            .bind(user)
            .bind(&created.id)
            .execute(&state.pool)
            .await?;
    }
    let row: KeyRow = sqlx::query_as(
        "SELECT id, name, key_prefix, permissions, created_at, expires_at, revoked_at, last_used_at
         FROM api_keys WHERE id = $1",
    )
    .bind(&created.id)
    .fetch_one(&state.pool)
    .await?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::API_KEY_CREATED,
        crate::audit::Target::new("api_key", &created.id),
        json!({ "name": name, "permissions": wanted.names(), "expires_at": b.expires_at }),
    )
    .await;
    let mut body = view(&row);
    // Shown this once.
    body["key"] = json!(created.key);
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(
    delete,
    path = "/api-keys/{id}",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Revoke an API key (idempotent)",
    params(("id" = String, Path, description = "The key's id.")),
    responses((status = 204, description = "Revoked.")),
)]
async fn revoke_key(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::ApiKeysManage)?;
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(&id)
    .bind(&org.org_id)
    .execute(&state.pool)
    .await?;
    if done.rows_affected() == 1 {
        crate::audit::record(
            &state.pool,
            &org,
            crate::audit::actions::API_KEY_REVOKED,
            crate::audit::Target::new("api_key", &id),
            json!({}),
        )
        .await;
        return Ok(StatusCode::NO_CONTENT);
    }
    // Already revoked is done; someone else's (or nobody's) is not found.
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT id FROM api_keys WHERE id = $1 AND org_id = $2")
            .bind(&id)
            .bind(&org.org_id)
            .fetch_optional(&state.pool)
            .await?;
    match exists {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::not_found("api key")),
    }
}

//! The REST side of the recording policy: whether an organization's calls, or one trunk's,
//! are recorded. `null` removes the override (inherit). Every change reloads the in-memory
//! policy the B2BUA consults at answer time.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::json_body;
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::permissions::Permission;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_org_setting, put_org_setting))
        .routes(routes!(put_trunk_setting))
        .routes(routes!(put_route_setting))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RecordingBody {
    /// true/false to decide, null to inherit.
    record_calls: Option<bool>,
}

async fn reload(state: &AppState) -> ApiResult<()> {
    if let Some(policy) = state.sip.recording_policy() {
        policy.reload(&state.pool).await?;
    }
    Ok(())
}

async fn org_view(state: &AppState, org_id: &str) -> ApiResult<Value> {
    let own: Option<i64> =
        sqlx::query_scalar("SELECT record_calls FROM organizations WHERE id = $1")
            .bind(org_id)
            .fetch_one(&state.pool)
            .await?;
    let server_default = state.config.sip.media.record_calls;
    Ok(json!({
        "record_calls": own.map(|v| v != 0),
        "server_default": server_default,
        "effective": own.map_or(server_default, |v| v != 0),
    }))
}

#[utoipa::path(
    get,
    path = "/settings/recording",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Whether the organization's calls are recorded",
    responses(
        (status = 200, description = "`{record_calls, server_default, effective}`: `record_calls` null means the server default applies.", body = Object),
    ),
)]
async fn get_org_setting(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::CallSettingsManage)?;
    Ok(Json(org_view(&state, &org.org_id).await?))
}

#[utoipa::path(
    put,
    path = "/settings/recording",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Record the organization's calls or not (null: the server default)",
    request_body = RecordingBody,
    responses(
        (status = 200, description = "`{record_calls, server_default, effective}`", body = Object),
    ),
)]
async fn put_org_setting(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<RecordingBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::CallSettingsManage)?;
    let body = json_body(body)?;
    sqlx::query("UPDATE organizations SET record_calls = $1 WHERE id = $2")
        .bind(body.record_calls.map(i64::from))
        .bind(&org.org_id)
        .execute(&state.pool)
        .await?;
    reload(&state).await?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::RECORDING_SETTINGS_UPDATED,
        crate::audit::Target::kind("settings"),
        json!({ "record_calls": body.record_calls }),
    )
    .await;
    Ok(Json(org_view(&state, &org.org_id).await?))
}

/// Which row a setting is on.
#[derive(Clone, Copy)]
enum Scope {
    Trunk,
    Route,
}

/// Set one trunk's or route's override, scoped to the organization.
async fn put_row_setting(
    state: &AppState,
    org_id: &str,
    id: &str,
    scope: Scope,
    body: RecordingBody,
) -> ApiResult<Json<Value>> {
    let (sql, what) = match scope {
        Scope::Trunk => (
            "UPDATE sip_trunks SET record_calls = $1 WHERE id = $2 AND org_id = $3",
            "trunk",
        ),
        Scope::Route => (
            "UPDATE sip_routes SET record_calls = $1 WHERE id = $2 AND org_id = $3",
            "route",
        ),
    };
    let updated = sqlx::query(sql)
        .bind(body.record_calls.map(i64::from))
        .bind(id)
        .bind(org_id)
        .execute(&state.pool)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::not_found(what));
    }
    reload(state).await?;
    Ok(Json(json!({ "id": id, "record_calls": body.record_calls })))
}

#[utoipa::path(
    put,
    path = "/trunks/{id}/recording",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Record one trunk's calls or not (null: inherit)",
    params(("id" = String, Path, description = "The trunk's id.")),
    request_body = RecordingBody,
    responses(
        (status = 200, description = "`{id, record_calls}`", body = Object),
    ),
)]
async fn put_trunk_setting(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    body: Result<Json<RecordingBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::CallSettingsManage)?;
    let body = json_body(body)?;
    let record_calls = body.record_calls;
    let out = put_row_setting(&state, &org.org_id, &id, Scope::Trunk, body).await?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::RECORDING_SETTINGS_UPDATED,
        crate::audit::Target::new("trunk", &id),
        json!({ "record_calls": record_calls }),
    )
    .await;
    Ok(out)
}

#[utoipa::path(
    put,
    path = "/routes/{id}/recording",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Record one inbound route's calls or not (null: inherit)",
    operation_id = "put_inbound_route_recording",
    params(("id" = String, Path, description = "The route's id.")),
    request_body = RecordingBody,
    responses(
        (status = 200, description = "`{id, record_calls}`", body = Object),
    ),
)]
async fn put_route_setting(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    body: Result<Json<RecordingBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::CallSettingsManage)?;
    let body = json_body(body)?;
    let record_calls = body.record_calls;
    let out = put_row_setting(&state, &org.org_id, &id, Scope::Route, body).await?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::RECORDING_SETTINGS_UPDATED,
        crate::audit::Target::new("route", &id),
        json!({ "record_calls": record_calls }),
    )
    .await;
    Ok(out)
}

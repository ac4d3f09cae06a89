//! `/api/v1/settings/retention` (the policy), `/api/v1/settings/retention/run` (a purge now)
//! and `/api/v1/calls/{id}/legal-hold`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::call_state;
use super::policy::{self, MAX_DAYS, PolicyChange, RetentionPolicy};
use super::purge::{self, Trigger};
use crate::audit::{self, AuditActor, Target, actions};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;
use crate::sip::http::json_body;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(run_now))
        .routes(routes!(put_legal_hold))
}

/// Longest legal-hold reason kept (a case reference and a sentence).
const MAX_REASON_CHARS: usize = 500;

fn settings_view(state: &AppState, p: &RetentionPolicy, updated_at: Option<i64>) -> Value {
    json!({
        "recordings_days": p.recordings_days,
        "transcripts_days": p.transcripts_days,
        "insights_days": p.insights_days,
        "updated_at": updated_at.map(ms_to_rfc3339),
        "defaults": RetentionPolicy::default(),
        "limits": { "min_days": 1, "max_days": MAX_DAYS },
        "purge_interval_s": state.config.retention.purge_interval_s,
    })
}

#[utoipa::path(
    get,
    path = "/settings/retention",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "The organization's retention policy",
    operation_id = "get_retention_settings",
    responses(
        (status = 200, description = "`{recordings_days, transcripts_days, insights_days, updated_at, defaults, limits, purge_interval_s}`; null days keep forever.", body = Object),
    ),
)]
async fn get_settings(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::RetentionManage)?;
    let (p, at) = policy::get(&state.pool, &org.org_id).await?;
    Ok(Json(settings_view(&state, &p, at)))
}

#[utoipa::path(
    put,
    path = "/settings/retention",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Change the retention policy (absent fields keep their value, null keeps forever)",
    operation_id = "put_retention_settings",
    request_body = PolicyChange,
    responses(
        (status = 200, description = "The policy as stored.", body = Object),
    ),
)]
async fn put_settings(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<PolicyChange>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::RetentionManage)?;
    let change = json_body(body)?;
    let (before, _) = policy::get(&state.pool, &org.org_id).await?;
    let after = change.apply(before);
    after.check().map_err(ApiError::validation)?;
    let at = policy::put(&state.pool, &org.org_id, &after).await?;
    audit::record(
        &state.pool,
        &org,
        actions::RETENTION_SETTINGS_UPDATED,
        Target::kind("settings"),
        json!({ "before": before, "after": after }),
    )
    .await;
    Ok(Json(settings_view(&state, &after, Some(at))))
}

/// Purges the caller's organization now and answers with what was removed.
#[utoipa::path(
    post,
    path = "/settings/retention/run",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Purge what the policy expires now, for this organization",
    operation_id = "run_retention_purge",
    responses(
        (status = 200, description = "`{policy, purged}`: the policy applied and what was removed.", body = Object),
    ),
)]
async fn run_now(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::RetentionManage)?;
    let actor = AuditActor::of(&org);
    let run = purge::purge_org(
        &state.pool,
        &state.recordings_dir,
        &org.org_id,
        state.config.retention.batch_calls,
        Trigger::Manual(&actor),
    )
    .await?;
    Ok(Json(json!({ "policy": run.policy, "purged": run.purged })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    /// true places the hold, false releases it.
    held: bool,
    /// Required when placing a hold (why, e.g. a case reference).
    reason: Option<String>,
}

#[utoipa::path(
    put,
    path = "/calls/{id}/legal-hold",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Place or release a legal hold on a call (a held call is never purged)",
    params(("id" = String, Path, description = "The call's id.")),
    request_body = HoldBody,
    responses(
        (status = 200, description = "`{call_id, legal_hold, retention}`", body = Object),
    ),
)]
async fn put_legal_hold(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    body: Result<Json<HoldBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::LegalHoldManage)?;
    let body = json_body(body)?;
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if body.held && reason.is_none() {
        return Err(ApiError::validation("a legal hold needs a reason"));
    }
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
        return Err(ApiError::validation(format!(
            "reason is at most {MAX_REASON_CHARS} characters"
        )));
    }
    // Organization-scoped: another organization's call is simply not found.
    let call = crate::store::calls::get_call(&state.pool, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    let actor = AuditActor::of(&org);
    call_state::set_hold(&state.pool, &org.org_id, &id, body.held, reason, &actor).await?;
    audit::record(
        &state.pool,
        &org,
        if body.held {
            actions::LEGAL_HOLD_SET
        } else {
            actions::LEGAL_HOLD_RELEASED
        },
        Target::new("call", &id),
        json!({ "reason": reason }),
    )
    .await;
    let r = call_state::get(&state.pool, &org.org_id, &id).await?;
    let (p, _) = policy::get(&state.pool, &org.org_id).await?;
    Ok(Json(json!({
        "call_id": id,
        "legal_hold": call_state::hold_view(&r),
        "retention": call_state::retention_view(&r, &p, call.created_at),
    })))
}

/// The `legal_hold` and `retention` objects added to a call's JSON.
pub async fn call_fields(
    state: &AppState,
    org_id: &str,
    call_id: &str,
    created_at_ms: i64,
) -> ApiResult<(Value, Value)> {
    let r = call_state::get(&state.pool, org_id, call_id).await?;
    let (p, _) = policy::get(&state.pool, org_id).await?;
    Ok((
        call_state::hold_view(&r),
        call_state::retention_view(&r, &p, created_at_ms),
    ))
}

/// `410 Gone` for data the retention policy removed.
pub fn purged(what: &'static str, code: &'static str, at: i64) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::GONE,
        code,
        format!("the {what} was deleted by the organization's retention policy"),
    )
    .with_details(json!({ "purged_at": ms_to_rfc3339(at) }))
}

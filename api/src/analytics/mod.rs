//! Analytics: reports over an organization's calls (volume, durations, sentiment, agents,
//! trackers, compliance), the CSV export of calls with their insights, and the monthly minute
//! quota. See docs/analytics.md.
//!
//! Who sees what: `analytics.read` sees the organization's calls — all of them, or only the
//! user's own when that is all the user may read. A signed-in user without `analytics.read`
//! who may read their own calls (an agent) gets the same reports over their own calls only.

pub mod csv;
pub mod export;
pub mod insights;
pub mod quota;
pub mod reports;
pub mod window;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Actor, OrgCtx};
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::permissions::Permission;
use crate::store::calls::CallAccess;
use window::{Window, WindowQuery};

/// Every analytics route, to be nested under `/api/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(calls_report))
        .routes(routes!(agents_report))
        .routes(routes!(trackers_report))
        .routes(routes!(compliance_report))
        .routes(routes!(export_csv))
        .routes(routes!(get_quota, put_quota))
        .routes(routes!(get_usage))
}

/// Which calls the caller's reports count (see the module comment).
pub fn report_access(org: &OrgCtx) -> Result<CallAccess, ApiError> {
    if org.permissions.has(Permission::AnalyticsRead) {
        // An integration's key with `analytics.read` alone reads organization-wide reports.
        return Ok(org
            .call_access()
            .unwrap_or_else(|_| CallAccess::all(&org.org_id)));
    }
    match &org.actor {
        Actor::User { id, .. } if org.permissions.has(Permission::CallsReadOwn) => {
            Ok(CallAccess::own(&org.org_id, id))
        }
        _ => Err(ApiError::forbidden(Permission::AnalyticsRead)),
    }
}

/// A query string that does not parse (a repeated parameter, bad encoding): 400 in the API's
/// error shape rather than axum's plain-text rejection.
fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("invalid query string: {}", e.body_text()))
}

fn scope_view(access: &CallAccess) -> Value {
    json!(if access.owner.is_some() {
        "own_calls"
    } else {
        "organization"
    })
}

async fn prepare(
    state: &AppState,
    org: &OrgCtx,
    q: &WindowQuery,
) -> ApiResult<(CallAccess, Window)> {
    let access =
        crate::teams::narrow_access(state, org, report_access(org)?, q.team_id.as_deref()).await?;
    let window = Window::parse(q)?;
    insights::refresh(&state.pool, &org.org_id).await?;
    Ok((access, window))
}

fn with_scope(mut body: Value, access: &CallAccess) -> Json<Value> {
    body["scope"] = scope_view(access);
    if let Some(team) = &access.team {
        body["team_id"] = json!(team);
    }
    Json(body)
}

#[utoipa::path(
    get,
    path = "/analytics/calls",
    tag = crate::http::openapi::tags::ANALYTICS,
    summary = "Call volume, durations, outcomes and sentiment over a window",
    params(WindowQuery),
    responses(
        (status = 404, description = "No team with this `team_id`.", body = crate::http::openapi::ErrorBody),
        (status = 200, description = "The report with its `scope` (`organization` or `own_calls`); see docs/analytics.md.", body = Object),
    ),
)]
async fn calls_report(
    State(state): State<AppState>,
    org: OrgCtx,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(query_error)?;
    let (access, w) = prepare(&state, &org, &q).await?;
    let body = reports::overview(&state.pool, &access, &w).await?;
    Ok(with_scope(body, &access))
}

#[derive(Debug, Deserialize)]
struct AgentsQuery {
    #[serde(flatten)]
    window: WindowQuery,
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/analytics/agents",
    tag = crate::http::openapi::tags::ANALYTICS,
    summary = "Per-agent figures over a window",
    params(WindowQuery, ("limit" = Option<i64>, Query, description = "Most agents returned, 1 to 500 (default 100).")),
    responses(
        (status = 404, description = "No team with this `team_id`.", body = crate::http::openapi::ErrorBody),
        (status = 200, description = "The report with its `scope`; see docs/analytics.md.", body = Object),
    ),
)]
async fn agents_report(
    State(state): State<AppState>,
    org: OrgCtx,
    q: Result<Query<AgentsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(query_error)?;
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=reports::MAX_AGENTS).contains(n))
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "`limit` must be an integer in 1..={}",
                    reports::MAX_AGENTS
                ))
            })?,
    };
    let (access, w) = prepare(&state, &org, &q.window).await?;
    let body = reports::agents(&state.pool, &access, &w, limit).await?;
    Ok(with_scope(body, &access))
}

#[utoipa::path(
    get,
    path = "/analytics/trackers",
    tag = crate::http::openapi::tags::ANALYTICS,
    summary = "Tracker hits over a window",
    params(WindowQuery),
    responses(
        (status = 404, description = "No team with this `team_id`.", body = crate::http::openapi::ErrorBody),
        (status = 200, description = "The report with its `scope`; see docs/analytics.md.", body = Object),
    ),
)]
async fn trackers_report(
    State(state): State<AppState>,
    org: OrgCtx,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(query_error)?;
    let (access, w) = prepare(&state, &org, &q).await?;
    let body = reports::trackers(&state.pool, &access, &w).await?;
    Ok(with_scope(body, &access))
}

#[utoipa::path(
    get,
    path = "/analytics/compliance",
    tag = crate::http::openapi::tags::ANALYTICS,
    summary = "Compliance flags over a window",
    params(WindowQuery),
    responses(
        (status = 404, description = "No team with this `team_id`.", body = crate::http::openapi::ErrorBody),
        (status = 200, description = "The report with its `scope`; see docs/analytics.md.", body = Object),
    ),
)]
async fn compliance_report(
    State(state): State<AppState>,
    org: OrgCtx,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(query_error)?;
    let (access, w) = prepare(&state, &org, &q).await?;
    let body = reports::compliance(&state.pool, &access, &w).await?;
    Ok(with_scope(body, &access))
}

#[utoipa::path(
    get,
    path = "/calls/export.csv",
    tag = crate::http::openapi::tags::ANALYTICS,
    summary = "The calls of a window with their insights, as CSV (streamed)",
    params(WindowQuery),
    responses(
        (status = 404, description = "No team with this `team_id`.", body = crate::http::openapi::ErrorBody),
        (status = 200, description = "One row per call.", content_type = "text/csv", body = String),
    ),
)]
async fn export_csv(
    State(state): State<AppState>,
    org: OrgCtx,
    q: Result<Query<WindowQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(query_error)?;
    let (access, w) = prepare(&state, &org, &q).await?;
    tracing::info!(org_id = %org.org_id, principal = ?org.principal(), from = w.from_ms,
        to = w.to_ms, own_calls = access.owner.is_some(), "CSV export of calls");
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::CALLS_EXPORTED,
        crate::audit::Target::kind("calls"),
        json!({ "from_ms": w.from_ms, "to_ms": w.to_ms, "own_calls_only": access.owner.is_some(),
                "team_id": access.team }),
    )
    .await;
    Ok(export::stream(state.pool.clone(), access, w))
}

/// Reading the quota and usage: reporters and those who manage the organization.
fn require_usage_reader(org: &OrgCtx) -> Result<(), ApiError> {
    if org.permissions.has(Permission::UsersManage) {
        return Ok(());
    }
    org.require(Permission::AnalyticsRead)
}

#[utoipa::path(
    get,
    path = "/settings/quota",
    tag = crate::http::openapi::tags::ANALYTICS,
    summary = "The organization's monthly minute quota",
    responses(
        (status = 200, description = "`{monthly_minutes}`; null is unlimited.", body = Object),
    ),
)]
async fn get_quota(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    require_usage_reader(&org)?;
    let minutes = quota::quota_minutes(&state.pool, &org.org_id).await?;
    Ok(Json(json!({ "monthly_minutes": minutes })))
}

/// The `PUT /settings/quota` body, validated by hand in `put_quota` (so that a wrong value
/// gets the field-naming 422): documentation only.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct QuotaBody {
    /// Minutes a month, 0 to 60 000 000; null for unlimited. Required (give null explicitly).
    #[schema(required = true)]
    monthly_minutes: Option<i64>,
}

#[utoipa::path(
    put,
    path = "/settings/quota",
    tag = crate::http::openapi::tags::ANALYTICS,
    summary = "Set the monthly minute quota (null: unlimited)",
    request_body = QuotaBody,
    responses(
        (status = 200, description = "`{monthly_minutes, usage}`", body = Object),
    ),
)]
async fn put_quota(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::UsersManage)?;
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(format!("invalid JSON: {}", e.body_text())))?;
    let invalid = || {
        ApiError::validation(format!(
            "`monthly_minutes` must be null (unlimited) or an integer in 0..={}",
            quota::MAX_MONTHLY_MINUTES
        ))
        .with_details(json!({ "field": "monthly_minutes" }))
    };
    let minutes = match body.get("monthly_minutes") {
        None => return Err(invalid()),
        Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|m| (0..=quota::MAX_MONTHLY_MINUTES).contains(m))
                .ok_or_else(invalid)?,
        ),
    };
    let before = quota::quota_minutes(&state.pool, &org.org_id).await?;
    quota::set_quota_minutes(&state.pool, &org.org_id, minutes).await?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::QUOTA_SETTINGS_UPDATED,
        crate::audit::Target::kind("settings"),
        json!({ "before": before, "after": minutes }),
    )
    .await;
    tracing::info!(org_id = %org.org_id, monthly_minutes = ?minutes, "minute quota set");
    // A lower quota may cross a threshold at once.
    quota::announce_thresholds(&state.pool, &org.org_id).await?;
    let usage = quota::usage(&state.pool, &org.org_id).await?;
    Ok(Json(
        json!({ "monthly_minutes": minutes, "usage": usage.view() }),
    ))
}

#[utoipa::path(
    get,
    path = "/usage",
    tag = crate::http::openapi::tags::ANALYTICS,
    summary = "This month's processed minutes against the quota",
    responses(
        (status = 200, description = "The month's usage.", body = Object),
    ),
)]
async fn get_usage(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    require_usage_reader(&org)?;
    let usage = quota::usage(&state.pool, &org.org_id).await?;
    Ok(Json(usage.view()))
}

//! The analysis of calls over HTTP: read it, have it redone (one call or a date range), and
//! the organization's analysis settings.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::run;
use super::settings::OrgAnalysisSettings;
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;
use crate::sip::http::json_body;
use crate::store::{call_analyses, calls};

/// Most calls one date-range re-analysis may queue.
const MAX_RANGE_CALLS: i64 = 10_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_analysis))
        .routes(routes!(reanalyze_call))
        .routes(routes!(reanalyze_range))
        .routes(routes!(get_settings, put_settings))
}

#[utoipa::path(
    get,
    path = "/calls/{id}/analysis",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "A call's analysis: summary, sentiment, trackers, compliance flags, call type, scorecard suggestions",
    params(("id" = String, Path, description = "The call's id.")),
    responses(
        (status = 200, description = "The analysis with `call_id` and `analysed_at`; 404 `not_analysed` while there is none.", body = Object),
        (status = 410, description = "The call's insights was deleted by the retention policy (`insights_purged`)."),
    ),
)]
async fn get_analysis(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::IntelligenceRead)?;
    if calls::get_visible_call(&state.pool, &org.call_access()?, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("call"));
    }
    let Some(stored) = call_analyses::get(&state.pool, &org.org_id, &id).await? else {
        let kept = crate::retention::call_state::get(&state.pool, &org.org_id, &id).await?;
        return Err(match kept.insights_purged_at {
            Some(at) => crate::retention::routes::purged("analysis", "insights_purged", at),
            None => ApiError::not_found("analysis").with_code("not_analysed"),
        });
    };
    let mut result: Value = serde_json::from_str(&stored.result).map_err(ApiError::internal)?;
    if let Some(obj) = result.as_object_mut() {
        obj.insert("call_id".into(), json!(id));
        obj.insert(
            "analysed_at".into(),
            json!(ms_to_rfc3339(stored.analysed_at)),
        );
    }
    Ok(Json(result))
}

#[utoipa::path(
    post,
    path = "/calls/{id}/reanalyze",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "Redo a call's analysis (queued)",
    params(("id" = String, Path, description = "The call's id.")),
    responses(
        (status = 202, description = "`{call_id, job_id, status: \"queued\"}`", body = Object),
        (status = 410, description = "The call's transcript was deleted by the retention policy (`transcript_purged`)."),
    ),
)]
async fn reanalyze_call(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::CallsWrite)?;
    if calls::get_visible_call(&state.pool, &org.call_access()?, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("call"));
    }
    // With its transcript purged there is nothing left to analyse.
    let kept = crate::retention::call_state::get(&state.pool, &org.org_id, &id).await?;
    if let Some(at) = kept.transcript_purged_at {
        return Err(crate::retention::routes::purged(
            "transcript",
            "transcript_purged",
            at,
        ));
    }
    let job_id = run::enqueue_reanalysis(&state.pool, &org.org_id, &id).await?;
    state.jobs_ready.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "call_id": id, "job_id": job_id, "status": "queued" })),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RangeBody {
    /// RFC 3339; calls that started at or after this.
    from: chrono::DateTime<chrono::Utc>,
    /// RFC 3339; calls that started before this.
    to: chrono::DateTime<chrono::Utc>,
}

#[utoipa::path(
    post,
    path = "/calls/reanalyze",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "Redo the analysis of every transcribed call started in a date range (at most 10 000)",
    request_body = RangeBody,
    responses(
        (status = 202, description = "`{queued, call_ids}`", body = Object),
    ),
)]
async fn reanalyze_range(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<RangeBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // A range covers everyone's calls: only for those who see them all.
    org.require(Permission::CallsWrite)?;
    org.require(Permission::CallsReadAll)?;
    let body = json_body(body)?;
    let (from, to) = (body.from.timestamp_millis(), body.to.timestamp_millis());
    if to <= from {
        return Err(ApiError::validation("`to` must be after `from`"));
    }
    // Calls with a transcript (their analysis can be redone), oldest first.
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT c.id FROM calls c WHERE c.org_id = $1 \
         AND COALESCE(c.started_at, c.created_at) >= $2 \
         AND COALESCE(c.started_at, c.created_at) < $3 \
         AND EXISTS (SELECT 1 FROM transcript_segments s WHERE s.org_id = c.org_id AND s.call_id = c.id) \
         ORDER BY COALESCE(c.started_at, c.created_at), c.id LIMIT $4",
    )
    .bind(&org.org_id)
    .bind(from)
    .bind(to)
    .bind(MAX_RANGE_CALLS + 1)
    .fetch_all(&state.pool)
    .await?;
    if ids.len() as i64 > MAX_RANGE_CALLS {
        return Err(ApiError::validation(format!(
            "more than {MAX_RANGE_CALLS} calls in the range; narrow it"
        )));
    }
    for id in &ids {
        run::enqueue_reanalysis(&state.pool, &org.org_id, id).await?;
    }
    state.jobs_ready.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": ids.len(), "call_ids": ids })),
    ))
}

#[utoipa::path(
    get,
    path = "/settings/analysis",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "The organization's analysis settings",
    operation_id = "get_analysis_settings",
    responses(
        (status = 200, description = "The settings.", body = OrgAnalysisSettings),
    ),
)]
async fn get_settings(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::CallSettingsManage)?;
    let settings = run::org_settings(&state.pool, &org.org_id).await?;
    Ok(Json(
        serde_json::to_value(settings).map_err(ApiError::internal)?,
    ))
}

#[utoipa::path(
    put,
    path = "/settings/analysis",
    tag = crate::http::openapi::tags::ANALYSIS,
    summary = "Replace the organization's analysis settings (absent fields take their defaults)",
    operation_id = "put_analysis_settings",
    request_body = OrgAnalysisSettings,
    responses(
        (status = 200, description = "The settings as stored.", body = OrgAnalysisSettings),
    ),
)]
async fn put_settings(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<OrgAnalysisSettings>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::CallSettingsManage)?;
    let settings = json_body(body)?;
    settings.check().map_err(ApiError::validation)?;
    let text = serde_json::to_string(&settings).map_err(ApiError::internal)?;
    call_analyses::put_settings(&state.pool, &org.org_id, &text).await?;
    let after = serde_json::to_value(settings).map_err(ApiError::internal)?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::ANALYSIS_SETTINGS_UPDATED,
        crate::audit::Target::kind("settings"),
        json!({ "after": after }),
    )
    .await;
    Ok(Json(after))
}

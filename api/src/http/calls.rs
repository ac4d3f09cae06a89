//! `GET /api/v1/calls` and `GET /api/v1/calls/{id}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::AppState;
use super::{cursor, views};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::metadata_fields::parse_timestamp_ms;
use crate::store::calls::{self, CallFilter, CallStatus};
use crate::store::contacts::normalize_phone;
use crate::store::{recordings, segments};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub status: Option<String>,
    pub direction: Option<String>,
    pub agent: Option<String>,
    pub customer_phone: Option<String>,
    pub external_call_id: Option<String>,
    pub contact_id: Option<String>,
    /// Only the calls of this team's members.
    pub team_id: Option<String>,
    /// RFC 3339 or Unix seconds.
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/calls",
    tag = crate::http::openapi::tags::CALLS,
    summary = "List calls, newest first",
    params(ListQuery),
    responses((status = 200, description = "`{data: [call], next_cursor}`", body = Object), (status = 404, description = "No team with this `team_id`.", body = crate::http::openapi::ErrorBody)),
)]
pub async fn list_calls(
    State(state): State<AppState>,
    org: OrgCtx,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(s) = &q.status
        && CallStatus::parse(s).is_none()
    {
        return Err(ApiError::bad_request(format!("unknown status {s:?}")));
    }
    let time = |v: &Option<String>, name: &str| -> ApiResult<Option<i64>> {
        v.as_ref()
            .map(|t| {
                parse_timestamp_ms(&Value::String(t.clone())).ok_or_else(|| {
                    ApiError::bad_request(format!("`{name}` must be RFC 3339 or Unix seconds"))
                })
            })
            .transpose()
    };
    let filter = CallFilter {
        status: q.status.clone(),
        direction: q.direction.clone(),
        agent_identifier: q.agent.clone(),
        customer_phone: q.customer_phone.as_ref().map(|p| {
            normalize_phone(p, &state.config.default_region).unwrap_or_else(|| p.trim().to_string())
        }),
        external_id: q.external_call_id.clone(),
        from_ms: time(&q.from, "from")?,
        to_ms: time(&q.to, "to")?,
        contact_id: q.contact_id.clone(),
    };
    let after: Option<String> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = cursor::limit(q.limit);
    // One extra row tells whether there is a next page.
    let access =
        crate::teams::narrow_access(&state, &org, org.call_access()?, q.team_id.as_deref()).await?;
    let mut rows =
        calls::list_calls(&state.pool, &access, &filter, after.as_deref(), limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if has_more {
        rows.last().map(|c| cursor::encode(&c.id))
    } else {
        None
    };
    Ok(Json(json!({
        "data": rows.iter().map(views::call).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

#[utoipa::path(
    get,
    path = "/calls/{id}",
    tag = crate::http::openapi::tags::CALLS,
    summary = "A call with its recording, quality and transcript segments",
    params(("id" = String, Path, description = "The call's id.")),
    responses((status = 200, description = "The call.", body = Object)),
)]
pub async fn get_call(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let call = calls::get_visible_call(&state.pool, &org.call_access()?, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    let recording = recordings::get_for_call(&state.pool, &org.org_id, &id).await?;
    let segs = segments::list_for_call(&state.pool, &org.org_id, &id).await?;
    let mut body = views::call(&call);
    body["recording"] = recording
        .as_ref()
        .map(views::recording)
        .unwrap_or(Value::Null);
    body["segments"] = Value::Array(segs.iter().map(views::segment).collect());
    let (hold, retention) =
        crate::retention::routes::call_fields(&state, &org.org_id, &id, call.created_at).await?;
    body["legal_hold"] = hold;
    body["retention"] = retention;
    if call.source == "sip" {
        let sip = crate::sip::call_records::get(&state.pool, &org.org_id, &id).await?;
        body["sip"] = sip
            .as_ref()
            .map(crate::sip::call_records::view)
            .unwrap_or(Value::Null);
        // A live call shows its media quality as it is now.
        if let Some(snapshot) = state.sip.media().and_then(|m| m.snapshot(&id)) {
            body["sip"]["media_live"] = serde_json::to_value(snapshot).unwrap_or(Value::Null);
        }
        body["media_events"] =
            Value::Array(crate::sip::call_media::list_events(&state.pool, &org.org_id, &id).await?);
    }
    Ok(Json(body))
}

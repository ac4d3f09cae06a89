//! `GET /api/v1/calls/{id}/transcript.{json,vtt,srt,txt}`.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use callscope_transcription::format;

use super::state::AppState;
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::store::{calls, segments};

/// axum matches `{file}` as the last path segment: `transcript.vtt` etc.
#[utoipa::path(
    get,
    path = "/calls/{id}/{file}",
    tag = crate::http::openapi::tags::CALLS,
    summary = "The call's transcript as JSON, WebVTT, SRT or text",
    params(
        ("id" = String, Path, description = "The call's id."),
        ("file" = String, Path, description = "`transcript.json`, `transcript.vtt`, `transcript.srt` or `transcript.txt`."),
    ),
    responses(
        (status = 200, description = "The transcript in the asked format."),
        (status = 410, description = "Purged by the retention policy.", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn get_transcript(
    State(state): State<AppState>,
    org: OrgCtx,
    Path((id, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ext = file
        .strip_prefix("transcript.")
        .ok_or_else(|| ApiError::not_found("resource"))?;
    let response = render(&state, &org.call_access()?, &id, ext).await?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::TRANSCRIPT_DOWNLOADED,
        crate::audit::Target::new("call", &id),
        serde_json::json!({ "format": ext }),
    )
    .await;
    Ok(response)
}

/// Render the call's stored segments in `ext` (json, vtt, srt or txt).
pub async fn render(
    state: &AppState,
    access: &calls::CallAccess,
    call_id: &str,
    ext: &str,
) -> ApiResult<Response> {
    let (ctype, render): (&str, fn(&[callscope_transcription::Segment]) -> String) = match ext {
        "json" => ("application/json", format::json),
        "vtt" => ("text/vtt; charset=utf-8", format::vtt),
        "srt" => ("application/x-subrip; charset=utf-8", format::srt),
        "txt" => ("text/plain; charset=utf-8", format::txt),
        _ => return Err(ApiError::not_found("transcript format")),
    };
    calls::get_visible_call(&state.pool, access, call_id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    let rows = segments::list_for_call(&state.pool, &access.org_id, call_id).await?;
    if rows.is_empty() {
        let kept = crate::retention::call_state::get(&state.pool, &access.org_id, call_id).await?;
        if let Some(at) = kept.transcript_purged_at {
            return Err(crate::retention::routes::purged(
                "transcript",
                "transcript_purged",
                at,
            ));
        }
    }
    let segs: Vec<_> = rows.iter().map(|r| r.to_segment()).collect();
    Ok(([(header::CONTENT_TYPE, ctype)], render(&segs)).into_response())
}

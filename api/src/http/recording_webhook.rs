//! `POST /api/v1/webhooks/call-recording`: a PBX (JSON) or Twilio (RecordingStatusCallback
//! form) announces a finished recording by URL. The call is created (idempotently by
//! external id) and a `fetch_recording` job downloads the file; processing follows as for an
//! upload. Twilio cannot send headers, so its callback URL carries the API key as HTTP Basic
//! password (`https://x:cs_…@host/api/v1/webhooks/call-recording`).

use std::collections::HashMap;

use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::{Json, response::IntoResponse, response::Response};
use serde_json::{Value, json};

use super::state::AppState;
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::ingest::FetchRecordingPayload;
use crate::metadata_fields::{CallFields, validate};
use crate::permissions::Permission;
use crate::store::calls::{self, CallStatus};
use crate::store::jobs;
use crate::twilio::{RecordingWebhook, TwilioOutcome};

#[utoipa::path(
    post,
    path = "/webhooks/call-recording",
    tag = crate::http::openapi::tags::RECORDINGS,
    summary = "Announce a finished recording by URL (PBX JSON or Twilio callback)",
    request_body(content = Object, description = "JSON `{recording_url, external_call_id, ...}` or Twilio's RecordingStatusCallback form."),
    responses(
        (status = 202, description = "The call is created and the download queued.", body = Object),
        (status = 200, description = "Already known (same external call id).", body = Object),
        (status = 402, description = "The organization's minute quota is exhausted.", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn call_recording(
    State(state): State<AppState>,
    org: OrgCtx,
    req: Request,
) -> ApiResult<Response> {
    org.require(Permission::CallsWrite)?;
    // Before the body is read: an exhausted quota creates no call and fetches nothing.
    crate::analytics::quota::ensure_available(&state.pool, &org.org_id).await?;
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (hook, layout, language) = if ctype.starts_with("application/json") {
        let Json(body) = Json::<Value>::from_request(req, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {}", e.body_text())))?;
        // Two fields the shared parser does not know: how speakers map to channels, and
        // the spoken language.
        let layout = body
            .get("channel_layout")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let language = body
            .get("language")
            .and_then(Value::as_str)
            .map(str::to_owned);
        (RecordingWebhook::from_json(body)?, layout, language)
    } else if ctype.starts_with("application/x-www-form-urlencoded") {
        let Form(form) = Form::<HashMap<String, String>>::from_request(req, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid form: {}", e.body_text())))?;
        match RecordingWebhook::from_twilio_form(&form)? {
            TwilioOutcome::Recording(hook) => (hook, None, None),
            TwilioOutcome::Ignored {
                recording_status,
                reason,
            } => {
                // 200: Twilio retries anything else.
                return Ok((
                    StatusCode::OK,
                    Json(json!({ "ignored": true, "recording_status": recording_status, "reason": reason })),
                )
                    .into_response());
            }
        }
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            "send application/json or Twilio's application/x-www-form-urlencoded callback",
        ));
    };

    let fields = CallFields {
        external_call_id: Some(hook.external_call_id.clone()),
        direction: hook.direction.map(|d| d.as_str().to_string()),
        customer_phone: hook.customer_phone.clone(),
        agent_identifier: hook.agent_identifier.clone(),
        call_timestamp: hook.call_timestamp.map(|ms| json!(ms as f64 / 1000.0)),
        duration_seconds: hook.duration_seconds.map(|d| json!(d)),
        channel_layout: layout,
        language,
        metadata: Some(Value::Object(hook.metadata.clone())),
        recording_url: Some(hook.recording_url.clone()),
    };
    let new_call = validate(fields, "webhook", &state.config.default_region)?;

    let mut tx = state.pool.begin().await?;
    let (call, created) =
        calls::insert_or_existing(&mut tx, &org.org_id, &new_call, CallStatus::Received, None)
            .await?;
    if !created {
        return Ok((
            StatusCode::OK,
            Json(json!({ "id": call.id, "status": call.status, "duplicate": true })),
        )
            .into_response());
    }
    let payload = FetchRecordingPayload {
        call_id: call.id.clone(),
        url: hook.recording_url.clone(),
    };
    jobs::enqueue(
        &mut *tx,
        &org.org_id,
        jobs::KIND_FETCH_RECORDING,
        &serde_json::to_value(&payload).map_err(ApiError::internal)?,
        state.config.jobs.max_attempts,
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    tracing::info!(call_id = %call.id, org_id = %org.org_id, "recording announced by webhook");
    crate::analytics::quota::announce_after_intake(&state.pool, &org.org_id).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": call.id, "status": call.status, "duplicate": false })),
    )
        .into_response())
}

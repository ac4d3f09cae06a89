//! `POST /api/v1/recordings`: a multipart upload (`file`, metadata fields, optional
//! `transcript`). The file is streamed to disk with its SHA-256 computed on the way and the
//! size limit enforced while streaming, so an oversized upload is refused (413) without ever
//! being held in memory or kept on disk.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Multipart, State, multipart::Field};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::state::AppState;
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::ingest::{self, Accepted, IncomingFile, IncomingTranscript, TranscriptKind};
use crate::metadata_fields::{self, CallFields};
use crate::permissions::Permission;

/// Room for the metadata fields and multipart framing on top of the file itself.
pub const BODY_OVERHEAD_BYTES: u64 = 1024 * 1024;
/// A transcript is text; more than this is not a transcript.
const MAX_TRANSCRIPT_BYTES: usize = 4 * 1024 * 1024;
/// Any single metadata field.
const MAX_FIELD_BYTES: usize = 64 * 1024;

pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("recording exceeds the upload limit of {limit} bytes"),
    )
    .with_details(json!({ "max_upload_bytes": limit }))
}

#[utoipa::path(
    post,
    path = "/recordings",
    tag = crate::http::openapi::tags::RECORDINGS,
    summary = "Upload a finished call recording for analysis",
    description = "multipart/form-data: `file` (WAV, MP3, FLAC, Ogg/Opus, M4A...), metadata fields \
        (`external_call_id`, `direction`, `agent`, `customer_phone`, `channel_layout`, `language`, \
        `started_at`...) and an optional `transcript`. The file is streamed to disk; processing is queued.",
    request_body(content = String, content_type = "multipart/form-data", description = "The recording and its metadata."),
    responses(
        (status = 202, description = "Accepted: the call and its processing job.", body = Object),
        (status = 200, description = "The same file was already uploaded for this external call id.", body = Object),
        (status = 402, description = "The organization's minute quota is exhausted.", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "Larger than the upload limit.", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "Not a supported audio format.", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn upload_recording(
    State(state): State<AppState>,
    org: OrgCtx,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    org.require(Permission::CallsWrite)?;
    // Before a byte of the body is read: an exhausted quota stores nothing.
    crate::analytics::quota::ensure_available(&state.pool, &org.org_id).await?;
    let limit = state.config.max_upload_bytes;
    // Refuse by the declared length before reading a byte of the body.
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit.saturating_add(BODY_OVERHEAD_BYTES)
    {
        return Err(too_large(limit));
    }

    let mut file: Option<IncomingFile> = None;
    let mut transcript: Option<IncomingTranscript> = None;
    let mut fields: HashMap<String, String> = HashMap::new();

    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                if file.is_some() {
                    return Err(ApiError::bad_request("more than one `file` part"));
                }
                file = Some(stream_to_disk(&state, field, limit).await?);
            }
            "transcript" => {
                let bytes = read_bounded(field, MAX_TRANSCRIPT_BYTES, limit).await?;
                // Parsed now so a broken transcript is refused before anything is stored;
                // the job parses the stored copy again (cheap) when it runs.
                let parsed = callscope_transcription::import::parse(&bytes)
                    .map_err(|e| ApiError::validation(e.to_string()).with_code(e.code()))?;
                let kind = match parsed.format {
                    callscope_transcription::import::TranscriptFormat::WebVtt => {
                        TranscriptKind::Vtt
                    }
                    callscope_transcription::import::TranscriptFormat::Json => TranscriptKind::Json,
                };
                let text = String::from_utf8_lossy(&bytes).into_owned();
                transcript = Some(IncomingTranscript { kind, text });
            }
            _ => {
                let bytes = read_bounded(field, MAX_FIELD_BYTES, limit).await?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| ApiError::validation(format!("field `{name}` is not UTF-8")))?;
                fields.insert(name, text);
            }
        }
    }

    let file = file.ok_or_else(|| ApiError::validation("missing `file` part"))?;
    let call_fields = CallFields::from_form(&fields)?;
    let new_call = metadata_fields::validate(call_fields, "upload", &state.config.default_region)?;

    match ingest::accept(&state, &org.org_id, new_call, file, transcript).await? {
        Accepted::Created(call) => {
            crate::analytics::quota::announce_after_intake(&state.pool, &org.org_id).await;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "id": call.id, "status": call.status, "duplicate": false })),
            ))
        }
        Accepted::Existing(call) => Ok((
            StatusCode::OK,
            Json(json!({ "id": call.id, "status": call.status, "duplicate": true })),
        )),
    }
}

/// Write the part to a temporary file in `incoming/`, hashing as we go; stop at the limit.
async fn stream_to_disk(
    state: &AppState,
    mut field: Field<'_>,
    limit: u64,
) -> ApiResult<IncomingFile> {
    let original_name = field.file_name().map(str::to_owned);
    let suffix = ingest::safe_extension(original_name.as_deref())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix("upload-")
        .suffix(&suffix)
        .tempfile_in(state.incoming_dir())
        .map_err(ApiError::internal)?;
    let (std_file, temp_path) = temp.into_parts();
    let mut out = tokio::fs::File::from_std(std_file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        size = size.saturating_add(chunk.len() as u64);
        if size > limit {
            // `temp_path` drops here and removes the partial file.
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    out.flush().await.map_err(ApiError::internal)?;
    out.sync_all().await.map_err(ApiError::internal)?;
    Ok(IncomingFile {
        temp: temp_path,
        sha256: hex::encode(hasher.finalize()),
        size,
        original_name,
    })
}

async fn read_bounded(mut field: Field<'_>, max: usize, limit: u64) -> ApiResult<Vec<u8>> {
    let name = field.name().unwrap_or_default().to_string();
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if buf.len() + chunk.len() > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("field `{name}` exceeds {max} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
    }
}

//! `GET /api/v1/calls/{id}/recording`: the original file, with HTTP Range (single ranges,
//! including suffix ranges `bytes=-N`) so players can seek. Streams from disk.

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::state::AppState;
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::store::recordings;

/// MIME type for a container name as reported by the decoder.
pub fn content_type(format: Option<&str>) -> &'static str {
    match format.unwrap_or("") {
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "webm" => "audio/webm",
        "matroska" => "audio/x-matroska",
        "mp4" | "m4a" => "audio/mp4",
        "flac" => "audio/flac",
        "aac" | "adts" => "audio/aac",
        "aiff" => "audio/aiff",
        "caf" => "audio/x-caf",
        _ => "application/octet-stream",
    }
}

/// What a `Range` header asks for, given the file size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) Range header: the whole file.
    Full,
    /// Inclusive byte range.
    Partial {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// Parse `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges, or other units, are answered
/// with the whole file, which RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last n bytes.
        return match b.parse::<u64>() {
            Ok(0) => RangeRequest::Unsatisfiable,
            Ok(_) if size == 0 => RangeRequest::Unsatisfiable,
            Ok(n) => RangeRequest::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            Err(_) => RangeRequest::Full,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeRequest::Full;
    };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(size.saturating_sub(1)),
            Ok(_) => return RangeRequest::Full, // invalid: ignore the header
            Err(_) => return RangeRequest::Full,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial { start, end }
}

const CHUNK: usize = 64 * 1024;

#[utoipa::path(
    get,
    path = "/calls/{id}/recording",
    tag = crate::http::openapi::tags::CALLS,
    summary = "Download or stream the call's recording (HTTP ranges supported)",
    params(
        ("id" = String, Path, description = "The call's id."),
        ("Range" = Option<String>, Header, description = "`bytes=start-end`."),
    ),
    responses(
        (status = 200, description = "The whole file.", content_type = "audio/wav"),
        (status = 206, description = "The requested range.", content_type = "audio/wav"),
        (status = 410, description = "Purged by the retention policy.", body = crate::http::openapi::ErrorBody),
        (status = 416, description = "The range lies outside the file."),
    ),
)]
pub async fn download_recording(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    crate::store::calls::get_visible_call(&state.pool, &org.call_access()?, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))?;
    let Some(rec) = recordings::get_for_call(&state.pool, &org.org_id, &id).await? else {
        let kept = crate::retention::call_state::get(&state.pool, &org.org_id, &id).await?;
        return Err(match kept.recording_purged_at {
            Some(at) => crate::retention::routes::purged("recording", "recording_purged", at),
            None => ApiError::not_found("recording"),
        });
    };
    let mut file = tokio::fs::File::open(&rec.path).await.map_err(|e| {
        tracing::error!(call_id = %id, path = %rec.path, error = %e, "recording file missing");
        ApiError::not_found("recording")
    })?;
    let size = file.metadata().await.map_err(ApiError::internal)?.len();
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = parse_range(range_header, size);
    // A player seeks with Range requests; a download takes the whole file.
    let action = match range_header {
        Some(_) => crate::audit::actions::RECORDING_PLAYED,
        None => crate::audit::actions::RECORDING_DOWNLOADED,
    };
    crate::audit::record(
        &state.pool,
        &org,
        action,
        crate::audit::Target::new("call", &id),
        serde_json::json!({ "range": range_header.map(|r| r.chars().take(100).collect::<String>()) }),
    )
    .await;
    let ctype = HeaderValue::from_static(content_type(rec.format.as_deref()));
    let (status, start, len) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::ACCEPT_RANGES, "bytes")
                .body(Body::empty())
                .map_err(ApiError::internal);
        }
    };
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(ApiError::internal)?;
    let stream = futures::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                    (file, left - n as u64),
                ))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ctype)
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    resp.body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::{RangeRequest::*, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-1000"), 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=50-1000"), 100),
            Partial { start: 50, end: 99 }
        );
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Full);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), Full);
        assert_eq!(parse_range(Some("bytes=-5"), 0), Unsatisfiable);
    }
}

//! One error shape for every failed request, including the ones our handlers never see.
//!
//! axum answers a malformed query string, a path segment of the wrong type, a wrong method
//! or an unreadable body itself, in plain text (or with no body at all). Clients of the API
//! (and the OpenAPI document, which promises JSON) need `{error, code, details}` there too,
//! so this response mapper rewrites those answers; a response that already is JSON, or that
//! is not an error, passes untouched.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// axum's rejection texts are one short line; anything longer is not one of them.
const MAX_REJECTION_BYTES: usize = 16 * 1024;

pub async fn uniform_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let is_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let has_body = response.headers().get(header::CONTENT_TYPE).is_some();
    if has_body && !is_text {
        // Some other deliberate representation (none today): leave it.
        return response;
    }
    let (parts, body) = response.into_parts();
    let message = match axum::body::to_bytes(body, MAX_REJECTION_BYTES).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string(),
    };
    let mut rewritten = ApiError::new(status, code_for(status), message).into_response();
    // Keep what the original answer said besides its body (`Allow` on a 405, for one).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

fn is_json(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_error",
        StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
        s if s.is_server_error() => "internal_error",
        _ => "request_rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_plain_text_rejection_becomes_the_error_shape() {
        let plain = (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Failed to deserialize query string: limit: number too large",
        )
            .into_response();
        let out = uniform_errors(plain).await;
        assert_eq!(out.status(), StatusCode::BAD_REQUEST);
        assert!(is_json(&out));
        let body = body_json(out).await;
        assert_eq!(body["code"], "bad_request");
        assert!(body["error"].as_str().unwrap().contains("limit"));
    }

    #[tokio::test]
    async fn an_empty_405_keeps_its_allow_header() {
        let empty = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET,HEAD")
            .body(Body::empty())
            .unwrap();
        let out = uniform_errors(empty).await;
        assert_eq!(out.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(body_json(out).await["code"], "method_not_allowed");
    }

    #[tokio::test]
    async fn success_and_json_errors_pass_untouched() {
        let ok = (StatusCode::OK, "fine").into_response();
        let out = uniform_errors(ok).await;
        assert_eq!(out.status(), StatusCode::OK);
        assert!(!is_json(&out));
        let ours = ApiError::not_found("call").into_response();
        let body = body_json(uniform_errors(ours).await).await;
        assert_eq!(body["code"], "not_found");
    }
}

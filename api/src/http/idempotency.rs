//! Idempotency keys on `POST`s under `/api/v1`: a client that sends `Idempotency-Key` and
//! retries after a timeout gets the first answer again (with `Idempotent-Replayed: true`)
//! instead of creating the thing twice.
//!
//! Keys are per credential (the hash of the API key or session presented), kept 24 hours.
//! The same key with a different request is refused (`422 idempotency_key_reused`); a retry
//! while the first is still running gets `409 idempotency_in_progress`. Only final answers
//! are kept: a 5xx or a 429 frees the key, so the client may try again.
//!
//! The request fingerprint hashes method, path, query and body for bodies up to
//! [`MAX_HASHED_BODY`]; a larger body (a recording upload, streamed to disk by its handler)
//! is fingerprinted by its length and type instead of being held in memory, and so is a
//! multipart form (its boundary changes on every retry).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::state::AppState;
use crate::auth::OrgCtx;
use crate::error::ApiError;
use crate::ids::now_ms;

pub const HEADER: &str = "idempotency-key";
/// Bodies up to this size are part of the fingerprint.
const MAX_HASHED_BODY: usize = 1024 * 1024;
/// Answers larger than this are not kept (the key is freed).
const MAX_STORED_RESPONSE: usize = 1024 * 1024;
const MAX_KEY_LEN: usize = 255;
/// How long a key is remembered.
pub const TTL_MS: i64 = 24 * 3600 * 1000;

fn credential_hash(headers: &HeaderMap) -> Option<String> {
    super::rate_limit::client_key(headers).map(hex::encode)
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The middleware on `/api/v1`.
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= MAX_KEY_LEN => k.trim().to_string(),
        _ => {
            return ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
            .into_response();
        }
    };
    // Anonymous requests are refused by authentication; nothing to remember for them.
    let Some(credential) = credential_hash(request.headers()) else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    // Only a caller that authenticates gets a key remembered: a stranger with made-up
    // credentials must not be able to write rows.
    if OrgCtx::from_request_parts(&mut parts, &state)
        .await
        .is_err()
    {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let mut fingerprint = Sha256::new();
    fingerprint.update(parts.method.as_str());
    fingerprint.update([0]);
    fingerprint.update(parts.uri.to_string());
    fingerprint.update([0]);
    let small = declared_length(&parts.headers).is_some_and(|n| n <= MAX_HASHED_BODY);
    // A multipart body differs on every retry (a new boundary): its length stands for it.
    let multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/"));
    let body = if small && !multipart {
        match axum::body::to_bytes(body, MAX_HASHED_BODY).await {
            Ok(bytes) => {
                fingerprint.update(&bytes);
                Body::from(bytes)
            }
            Err(_) => {
                return ApiError::bad_request("the request body could not be read").into_response();
            }
        }
    } else {
        if let Some(v) = parts.headers.get(header::CONTENT_LENGTH) {
            fingerprint.update(v.as_bytes());
        }
        fingerprint.update([0]);
        if !multipart && let Some(v) = parts.headers.get(header::CONTENT_TYPE) {
            fingerprint.update(v.as_bytes());
        }
        body
    };
    let fingerprint = hex::encode(fingerprint.finalize());
    let pool = &state.pool;

    match claim(pool, &credential, &key, &fingerprint).await {
        Ok(Claim::Fresh) => {}
        Ok(Claim::Replay(stored)) => return stored,
        Ok(Claim::Refused(e)) => return e.into_response(),
        Err(e) => return ApiError::internal(e).into_response(),
    }

    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        release(pool, &credential, &key).await;
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(b) => b,
        Err(_) => {
            // Too large to keep: the client gets an error rather than a truncated body,
            // and may retry with a new key.
            release(pool, &credential, &key).await;
            return ApiError::internal("response too large to keep for an idempotency key")
                .into_response();
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Err(e) = store(
        pool,
        &credential,
        &key,
        status.as_u16(),
        content_type.as_deref(),
        &bytes,
    )
    .await
    {
        tracing::warn!(error = %e, "could not keep an idempotent response");
        release(pool, &credential, &key).await;
    }
    parts
        .headers
        .insert("idempotent-replayed", HeaderValue::from_static("false"));
    Response::from_parts(parts, Body::from(bytes))
}

/// request hash, status (NULL while running), content type, body.
type KeptAnswer = (String, Option<i64>, Option<String>, Option<Vec<u8>>);

enum Claim {
    Fresh,
    Replay(Response),
    Refused(ApiError),
}

/// Takes the key for this request, or says what to answer instead.
async fn claim(
    pool: &sqlx::SqlitePool,
    credential: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Claim, sqlx::Error> {
    let now = now_ms();
    // Forget expired keys a few at a time, so the table stays bounded without a sweeper.
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE rowid IN \
         (SELECT rowid FROM idempotency_keys WHERE created_at < $1 LIMIT 100)",
    )
    .bind(now - TTL_MS)
    .execute(pool)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (credential_hash, idem_key, request_hash, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (credential_hash, idem_key) DO NOTHING",
    )
    .bind(credential)
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh);
    }
    let row: Option<KeptAnswer> = sqlx::query_as(
        "SELECT request_hash, status, content_type, body FROM idempotency_keys \
         WHERE credential_hash = $1 AND idem_key = $2",
    )
    .bind(credential)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some((hash, status, content_type, body)) = row else {
        // Released between our insert and read: a rare race; the client may simply retry.
        return Ok(Claim::Refused(in_progress()));
    };
    if hash != fingerprint {
        return Ok(Claim::Refused(
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            )
            .with_details(serde_json::json!({ "idempotency_key": key })),
        ));
    }
    let Some(status) = status else {
        return Ok(Claim::Refused(in_progress()));
    };
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, body.unwrap_or_default()).into_response();
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(Claim::Replay(response))
}

fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_in_progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
    )
}

async fn store(
    pool: &sqlx::SqlitePool,
    credential: &str,
    key: &str,
    status: u16,
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $1, content_type = $2, body = $3 \
         WHERE credential_hash = $4 AND idem_key = $5",
    )
    .bind(i64::from(status))
    .bind(content_type)
    .bind(body.as_ref())
    .bind(credential)
    .bind(key)
    .execute(pool)
    .await
    .map(|_| ())
}

async fn release(pool: &sqlx::SqlitePool, credential: &str, key: &str) {
    if let Err(e) =
        sqlx::query("DELETE FROM idempotency_keys WHERE credential_hash = $1 AND idem_key = $2")
            .bind(credential)
            .bind(key)
            .execute(pool)
            .await
    {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
}

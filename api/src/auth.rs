//! API-key authentication. Keys look like `cs_<43 url-safe base64 chars>` (256 random bits);
//! only their SHA-256 is stored — a fast hash is right for high-entropy random keys (no
//! dictionary to attack), and it keeps the per-request lookup an indexed equality match.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use crate::error::ApiError;
use crate::ids::{new_id, now_ms};

/// The authenticated caller: every store query takes `org_id` from here.
#[derive(Debug, Clone)]
pub struct OrgCtx {
    pub org_id: String,
    pub api_key_id: String,
}

pub const KEY_PREFIX: &str = "cs_";

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new key and its stored form. The plain key is shown once and never stored.
pub struct NewApiKey {
    pub id: String,
    pub key: String,
}

pub async fn create_api_key(
    pool: &SqlitePool,
    org_id: &str,
    name: &str,
    expires_at_ms: Option<i64>,
) -> Result<NewApiKey, sqlx::Error> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let id = new_id();
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, key_hash, key_prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(name)
    .bind(hash_key(&key))
    .bind(&key[..10])
    .bind(now_ms())
    .bind(expires_at_ms)
    .execute(pool)
    .await?;
    Ok(NewApiKey { id, key })
}

/// Resolve a presented key to its organization, or `None` if unknown, revoked or expired.
pub async fn authenticate(pool: &SqlitePool, key: &str) -> Result<Option<OrgCtx>, sqlx::Error> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
        return Ok(None);
    }
    let now = now_ms();
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, org_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(hash_key(key))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    let Some((api_key_id, org_id)) = row else {
        return Ok(None);
    };
    sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&api_key_id)
        .execute(pool)
        .await?;
    Ok(Some(OrgCtx { org_id, api_key_id }))
}

/// The key from `X-API-Key`, `Authorization: Bearer`, or the password of
/// `Authorization: Basic` (for senders that cannot set headers but can put credentials in a
/// URL, such as Twilio's status callbacks).
fn presented_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get("x-api-key") {
        return v.to_str().ok().map(str::to_owned);
    }
    let auth = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let encoded = auth.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Anything that can hand the extractor a database pool.
pub trait HasPool {
    fn pool(&self) -> &SqlitePool;
}

impl<S> FromRequestParts<S> for OrgCtx
where
    S: HasPool + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts).ok_or_else(ApiError::unauthorized)?;
        authenticate(state.pool(), &key)
            .await?
            .ok_or_else(ApiError::unauthorized)
    }
}

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
use crate::permissions::{Permission, Permissions, Role};
use crate::store::calls::CallAccess;

/// The authenticated caller: every store query takes `org_id` from here, and every handler
/// asks it for the permission its work needs.
#[derive(Debug, Clone)]
pub struct OrgCtx {
    pub org_id: String,
    pub actor: Actor,
    pub permissions: Permissions,
}

/// Who is calling: an integration's API key, or a signed-in user (the web app's session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey { id: String },
    User { id: String, role: Role },
}

impl OrgCtx {
    /// `403 forbidden` unless the caller holds `p`. Within its own organization a caller may
    /// learn that a thing exists but is not theirs to change; across organizations every
    /// lookup is a 404 (the store never finds another organization's rows).
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.permissions.has(p) {
            Ok(())
        } else {
            Err(ApiError::forbidden(p))
        }
    }

    /// Which calls this caller may see at all: every call of the organization, the user's
    /// own, or none (`403`).
    pub fn call_access(&self) -> Result<CallAccess, ApiError> {
        if self.permissions.has(Permission::CallsReadAll) {
            return Ok(CallAccess::all(&self.org_id));
        }
        match &self.actor {
            Actor::User { id, .. } if self.permissions.has(Permission::CallsReadOwn) => {
                Ok(CallAccess::own(&self.org_id, id))
            }
            _ => Err(ApiError::forbidden(Permission::CallsReadAll)),
        }
    }

    /// Who acts, for authorship and audit: `("user", user id)` or `("api_key", key id)`.
    pub fn principal(&self) -> (&'static str, &str) {
        match &self.actor {
            Actor::User { id, .. } => ("user", id),
            Actor::ApiKey { id } => ("api_key", id),
        }
    }

    /// The user behind a session, if it is one.
    pub fn user_id(&self) -> Option<&str> {
        match &self.actor {
            Actor::User { id, .. } => Some(id),
            Actor::ApiKey { .. } => None,
        }
    }
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

/// A key with full access (the CLI's bootstrap key, and every key made before permissions).
pub async fn create_api_key(
    pool: &SqlitePool,
    org_id: &str,
    name: &str,
    expires_at_ms: Option<i64>,
) -> Result<NewApiKey, sqlx::Error> {
    create_scoped_api_key(pool, org_id, name, expires_at_ms, Permissions::all()).await
}

/// A key limited to `permissions`.
pub async fn create_scoped_api_key(
    pool: &SqlitePool,
    org_id: &str,
    name: &str,
    expires_at_ms: Option<i64>,
    permissions: Permissions,
) -> Result<NewApiKey, sqlx::Error> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let id = new_id();
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, key_hash, key_prefix, created_at, expires_at, permissions) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(name)
    .bind(hash_key(&key))
    .bind(&key[..10])
    .bind(now_ms())
    .bind(expires_at_ms)
    .bind(permissions.to_stored())
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
    let row: Option<(String, String, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT id, org_id, permissions, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(hash_key(key))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    let Some((api_key_id, org_id, stored, last_used)) = row else {
        return Ok(None);
    };
    // Last use to the second is all anyone reads; not writing on every request keeps a busy
    // integration from turning each read into a write.
    if last_used.is_none_or(|t| now - t >= LAST_USED_RESOLUTION_MS) {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&api_key_id)
            .execute(pool)
            .await?;
    }
    // NULL: a key made before permissions existed, which had full access.
    let permissions = stored
        .as_deref()
        .map(Permissions::from_stored)
        .unwrap_or_else(Permissions::all);
    Ok(Some(OrgCtx {
        org_id,
        actor: Actor::ApiKey { id: api_key_id },
        permissions,
    }))
}

/// How fresh `api_keys.last_used_at` is kept.
const LAST_USED_RESOLUTION_MS: i64 = 1_000;

/// The signed-in user of a web session cookie, with their role's permissions.
async fn authenticate_session(
    pool: &SqlitePool,
    token: &str,
) -> Result<Option<OrgCtx>, sqlx::Error> {
    let Some(session) = crate::agent::sessions::lookup(pool, token).await? else {
        return Ok(None);
    };
    let role: Option<(String,)> =
        sqlx::query_as("SELECT role FROM users WHERE id = $1 AND org_id = $2")
            .bind(&session.user_id)
            .bind(&session.org_id)
            .fetch_optional(pool)
            .await?;
    let Some(role) = role.and_then(|(r,)| Role::parse(&r)) else {
        return Ok(None);
    };
    Ok(Some(OrgCtx {
        org_id: session.org_id,
        actor: Actor::User {
            id: session.user_id,
            role,
        },
        permissions: role.permissions(),
    }))
}

/// The key from `X-API-Key`, `Authorization: Bearer`, or the password of
/// `Authorization: Basic` (for senders that cannot set headers but can put credentials in a
/// URL, such as Twilio's status callbacks).
fn presented_key(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("x-api-key") {
        return v.to_str().ok().map(str::to_owned);
    }
    let auth = headers
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
        let credential =
            Credential::presented(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        credential
            .authenticate(state.pool())
            .await?
            .ok_or_else(ApiError::unauthorized)
    }
}

/// What a request presented to authenticate with, kept by long-lived connections (the
/// event socket) to check now and then that it is still valid.
#[derive(Clone)]
pub enum Credential {
    ApiKey(String),
    Session(String),
}

impl Credential {
    /// An API key wins when both are present: an integration's explicit credential. Else
    /// the web app's session; its cookie is SameSite=Strict, so no other site's page can
    /// make the browser send it (no CSRF through this path).
    pub fn presented(headers: &axum::http::HeaderMap) -> Option<Self> {
        if let Some(key) = presented_key(headers) {
            return Some(Credential::ApiKey(key));
        }
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(crate::agent::sessions::token_from_cookie_header)
            .map(|t| Credential::Session(t.to_owned()))
    }

    /// The caller it stands for now: `None` once the key is revoked or expired, or the
    /// session logged out.
    pub async fn authenticate(&self, pool: &SqlitePool) -> Result<Option<OrgCtx>, sqlx::Error> {
        match self {
            Credential::ApiKey(key) => authenticate(pool, key).await,
            Credential::Session(token) => authenticate_session(pool, token).await,
        }
    }
}

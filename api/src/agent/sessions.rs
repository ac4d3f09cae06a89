//! Web sessions of agents. The cookie carries `css_` + 256 random bits; the database keeps only
//! its SHA-256 (a leaked table opens no session), with an absolute expiry and revocation at
//! logout.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use crate::ids::now_ms;

pub const TOKEN_PREFIX: &str = "css_";
/// The cookie's name.
pub const COOKIE: &str = "cs_session";

/// Who a valid session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentSession {
    pub org_id: String,
    pub user_id: String,
    pub expires_at: i64,
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a session for a user; returns the token for the cookie (shown once, never stored).
pub async fn create(
    pool: &SqlitePool,
    org_id: &str,
    user_id: &str,
    ttl_ms: i64,
    user_agent: Option<&str>,
) -> Result<(String, i64), sqlx::Error> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let now = now_ms();
    let expires_at = now.saturating_add(ttl_ms);
    sqlx::query(
        "INSERT INTO agent_sessions (token_hash, org_id, user_id, created_at, last_seen_at, expires_at, user_agent)
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
    )
    .bind(hash_token(&token))
    .bind(org_id)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .bind(user_agent.map(|u| u.chars().take(200).collect::<String>()))
    .execute(pool)
    .await?;
    Ok((token, expires_at))
}

/// The live session of a token: not expired, not revoked, its user still there.
pub async fn lookup(pool: &SqlitePool, token: &str) -> Result<Option<AgentSession>, sqlx::Error> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 100 {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT s.org_id, s.user_id, s.expires_at FROM agent_sessions s
         JOIN users u ON u.id = s.user_id AND u.org_id = s.org_id
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
    )
    .bind(hash_token(token))
    .bind(now_ms())
    .fetch_optional(pool)
    .await
}

/// Ends a session (logout). True if it was live.
pub async fn revoke(pool: &SqlitePool, token: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE agent_sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(hash_token(token))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The session token in a `Cookie` header, if any.
pub fn token_from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then_some(value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_header_parsing_finds_only_our_cookie() {
        assert_eq!(
            token_from_cookie_header("a=1; cs_session=css_abc; b=2"),
            Some("css_abc")
        );
        assert_eq!(
            token_from_cookie_header("cs_sessionx=1; a=cs_session"),
            None
        );
        assert_eq!(token_from_cookie_header(""), None);
    }
}

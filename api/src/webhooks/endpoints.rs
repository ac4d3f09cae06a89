//! Webhook endpoints: registration, listing and deletion, always scoped by organization.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sqlx::SqlitePool;

use super::WebhookError;
use super::events::is_valid_subscription;
use crate::ids::{new_id, now_ms};

/// A bound on fan-out: each event costs one outbox row per endpoint.
pub const MAX_ENDPOINTS_PER_ORG: i64 = 50;
const MAX_URL_LEN: usize = 2048;
const MIN_SECRET_LEN: usize = 16;
const MAX_SECRET_LEN: usize = 256;
/// Generated secrets start with this, so they are recognisable in config files and scanners.
pub const SECRET_PREFIX: &str = "whsec_";
/// How much of a secret is shown after creation: enough to tell two apart, far too little
/// to forge a signature.
const SHOWN_SECRET_CHARS: usize = 10;

#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    /// Event names, families (`call.*`) or `*`.
    pub events: Vec<String>,
    /// `None` → a random secret is generated.
    pub secret: Option<String>,
    pub description: Option<String>,
}

/// An endpoint as shown to its owner: never the secret itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret_prefix: String,
    pub description: Option<String>,
    pub created_at: i64,
}

/// The one moment the full secret is available to the caller.
#[derive(Debug, Clone)]
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    pub secret: String,
}

/// Accept only absolute http(s) URLs with a host and without embedded credentials (which
/// would end up in logs and in the listing).
pub fn validate_url(raw: &str) -> Result<reqwest::Url, WebhookError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(WebhookError::invalid("url", "must not be empty"));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(WebhookError::invalid(
            "url",
            format!("must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let url = reqwest::Url::parse(raw)
        .map_err(|e| WebhookError::invalid("url", format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookError::invalid(
            "url",
            format!("scheme must be http or https, not {:?}", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::invalid("url", "must have a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(WebhookError::invalid(
            "url",
            "must not contain credentials; authenticate deliveries with the signature",
        ));
    }
    Ok(url)
}

fn validate_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    if events.is_empty() {
        return Err(WebhookError::invalid(
            "events",
            "must list at least one event (or \"*\")",
        ));
    }
    if events.len() > 100 {
        return Err(WebhookError::invalid("events", "at most 100 entries"));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        let e = e.trim();
        if !is_valid_subscription(e) {
            return Err(WebhookError::invalid(
                "events",
                format!("unknown event {e:?}; see the event catalogue"),
            ));
        }
        if !out.iter().any(|x| x == e) {
            out.push(e.to_string());
        }
    }
    Ok(out)
}

fn validate_secret(secret: &str) -> Result<(), WebhookError> {
    let len = secret.chars().count();
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
        return Err(WebhookError::invalid(
            "secret",
            format!("must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters"),
        ));
    }
    if !secret.chars().all(|c| c.is_ascii_graphic()) {
        return Err(WebhookError::invalid(
            "secret",
            "must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

pub fn generate_secret() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

fn shown_prefix(secret: &str) -> String {
    secret.chars().take(SHOWN_SECRET_CHARS).collect()
}

pub(crate) fn parse_events(json: &str) -> Vec<String> {
    // A row is only ever written by this module, so a parse failure means manual tampering;
    // treat it as "subscribed to nothing" rather than failing every enqueue of the org.
    serde_json::from_str(json).unwrap_or_default()
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    url: String,
    events: String,
    secret_prefix: String,
    description: Option<String>,
    created_at: i64,
}

impl From<EndpointRow> for Endpoint {
    fn from(r: EndpointRow) -> Self {
        Endpoint {
            id: r.id,
            url: r.url,
            events: parse_events(&r.events),
            secret_prefix: r.secret_prefix,
            description: r.description,
            created_at: r.created_at,
        }
    }
}

pub async fn create_endpoint(
    pool: &SqlitePool,
    org_id: &str,
    new: NewEndpoint,
) -> Result<CreatedEndpoint, WebhookError> {
    let url = validate_url(&new.url)?;
    let events = validate_events(&new.events)?;
    let secret = match new.secret {
        Some(s) => {
            validate_secret(&s)?;
            s
        }
        None => generate_secret(),
    };
    let description = new
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        return Err(WebhookError::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }

    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM webhook_endpoints WHERE org_id = $1 AND deleted_at IS NULL",
    )
    .bind(org_id)
    .fetch_one(pool)
    .await?;
    if count >= MAX_ENDPOINTS_PER_ORG {
        return Err(WebhookError::invalid(
            "url",
            format!("an organization may have at most {MAX_ENDPOINTS_PER_ORG} endpoints"),
        ));
    }

    let endpoint = Endpoint {
        id: new_id(),
        url: url.to_string(),
        events,
        secret_prefix: shown_prefix(&secret),
        description,
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, org_id, url, events, secret, secret_prefix, description, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&endpoint.id)
    .bind(org_id)
    .bind(&endpoint.url)
    .bind(serde_json::to_string(&endpoint.events)?)
    .bind(&secret)
    .bind(&endpoint.secret_prefix)
    .bind(&endpoint.description)
    .bind(endpoint.created_at)
    .execute(pool)
    .await?;
    Ok(CreatedEndpoint { endpoint, secret })
}

pub async fn list_endpoints(
    pool: &SqlitePool,
    org_id: &str,
) -> Result<Vec<Endpoint>, WebhookError> {
    let rows: Vec<EndpointRow> = sqlx::query_as(
        "SELECT id, url, events, secret_prefix, description, created_at FROM webhook_endpoints
         WHERE org_id = $1 AND deleted_at IS NULL ORDER BY id",
    )
    .bind(org_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Endpoint::from).collect())
}

pub async fn get_endpoint(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
) -> Result<Option<Endpoint>, WebhookError> {
    let row: Option<EndpointRow> = sqlx::query_as(
        "SELECT id, url, events, secret_prefix, description, created_at FROM webhook_endpoints
         WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Endpoint::from))
}

/// Soft-delete an endpoint and give up its pending deliveries. Returns false when the id is
/// unknown to this organization (the caller answers 404 either way, so ids don't leak).
pub async fn delete_endpoint(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
) -> Result<bool, WebhookError> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query(
        "UPDATE webhook_endpoints SET deleted_at = $1 WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(org_id)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE webhook_outbox SET status = 'dead', last_error = 'endpoint deleted', updated_at = $1,
             lease_token = NULL, lease_until = NULL
         WHERE endpoint_id = $2 AND status = 'pending'",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        assert!(validate_url("https://example.com/hook").is_ok());
        assert!(validate_url("http://127.0.0.1:9000/x?y=1").is_ok());
        for bad in [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "not a url",
            "https://user:pw@example.com/",
            "/relative/path",
        ] {
            assert!(
                matches!(
                    validate_url(bad),
                    Err(WebhookError::Invalid { field: "url", .. })
                ),
                "{bad:?} should be refused"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(3000));
        assert!(validate_url(&long).is_err());
    }

    #[test]
    fn secret_rules() {
        assert!(validate_secret("0123456789abcdef").is_ok());
        assert!(validate_secret("short").is_err());
        assert!(validate_secret("has a space in it!!").is_err());
        assert!(validate_secret(&"x".repeat(300)).is_err());
        let g = generate_secret();
        assert!(g.starts_with(SECRET_PREFIX));
        assert!(validate_secret(&g).is_ok());
        assert_eq!(shown_prefix(&g).len(), SHOWN_SECRET_CHARS);
    }

    #[test]
    fn events_are_checked_and_deduplicated() {
        let ok = validate_events(&["call.processed".into(), "call.processed".into(), "*".into()]);
        assert_eq!(
            ok.unwrap(),
            vec!["call.processed".to_string(), "*".to_string()]
        );
        assert!(validate_events(&[]).is_err());
        assert!(validate_events(&["call.procesed".into()]).is_err());
    }
}

//! Channels ("inboxes"): one row per configured API or WhatsApp channel of an organization.
//! Secrets are write-only: views show a short prefix.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use sqlx::{SqliteConnection, SqlitePool};

use super::MessagingError;
use super::model::ChannelKind;
use super::whatsapp::graph::DEFAULT_GRAPH_BASE_URL;
use crate::ids::{ms_to_rfc3339, new_id, now_ms};
use crate::webhooks::endpoints::{generate_secret, validate_url};

const MAX_NAME_CHARS: usize = 200;
const MAX_CHANNELS_PER_ORG: i64 = 100;

/// Channel writes committed by this process, so caches of channels (the WhatsApp webhook's)
/// know to drop what they read before.
static CHANGES: AtomicU64 = AtomicU64::new(0);

/// How many channel writes this process has committed; a cache compares it with the value it
/// read its entries under.
pub fn changes() -> u64 {
    CHANGES.load(Ordering::Acquire)
}

/// Marks every cached channel stale (also when something a channel refers to, such as its
/// default team, goes away).
pub(crate) fn changed() {
    CHANGES.fetch_add(1, Ordering::AcqRel);
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Channel {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub name: String,
    pub callback_url: Option<String>,
    pub callback_endpoint_id: Option<String>,
    pub wa_phone_number_id: Option<String>,
    pub wa_business_account_id: Option<String>,
    pub wa_verify_token: Option<String>,
    pub wa_app_secret: Option<String>,
    pub wa_access_token: Option<String>,
    pub wa_graph_base_url: Option<String>,
    /// New conversations on the channel start in this team's queue.
    pub default_team_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

impl Channel {
    pub fn kind(&self) -> Option<ChannelKind> {
        ChannelKind::parse(&self.kind)
    }

    pub fn graph_base_url(&self) -> &str {
        self.wa_graph_base_url
            .as_deref()
            .unwrap_or(DEFAULT_GRAPH_BASE_URL)
    }
}

/// Enough of a secret to tell two apart, never enough to use it: at most 6 characters and
/// at most a quarter of it.
pub fn secret_prefix(secret: &str) -> String {
    let n = secret.chars().count();
    let shown: String = secret.chars().take((n / 4).min(6)).collect();
    format!("{shown}…")
}

/// The channel as its owner sees it.
pub fn view(c: &Channel) -> Value {
    let mut v = json!({
        "id": c.id,
        "kind": c.kind,
        "name": c.name,
        "default_team_id": c.default_team_id,
        "created_at": ms_to_rfc3339(c.created_at),
        "updated_at": ms_to_rfc3339(c.updated_at),
    });
    let details = match c.kind() {
        Some(ChannelKind::Api) => json!({
            "callback_url": c.callback_url,
            "callback_endpoint_id": c.callback_endpoint_id,
        }),
        Some(ChannelKind::Whatsapp) => json!({
            "phone_number_id": c.wa_phone_number_id,
            "business_account_id": c.wa_business_account_id,
            "graph_base_url": c.graph_base_url(),
            "verify_token_prefix": c.wa_verify_token.as_deref().map(secret_prefix),
            "app_secret_prefix": c.wa_app_secret.as_deref().map(secret_prefix),
            "access_token_prefix": c.wa_access_token.as_deref().map(secret_prefix),
        }),
        None => json!({}),
    };
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), details) {
        obj.extend(extra);
    }
    v
}

/// What the API accepts to create or change a channel. For PATCH every field is optional.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub callback_url: Option<String>,
    /// API channel: the signing secret of callbacks (generated when absent).
    pub callback_secret: Option<String>,
    pub phone_number_id: Option<String>,
    pub business_account_id: Option<String>,
    pub verify_token: Option<String>,
    pub app_secret: Option<String>,
    pub access_token: Option<String>,
    pub graph_base_url: Option<String>,
    /// The team whose queue new conversations on this channel start in; `null` clears it.
    #[serde(default, deserialize_with = "crate::crm::body::nullable")]
    #[schema(value_type = Option<String>)]
    pub default_team_id: Option<Option<String>>,
}

fn clean_name(name: Option<&str>) -> Result<String, MessagingError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(MessagingError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_string())
}

/// A credential-like field: printable ASCII, bounded.
fn token(field: &'static str, v: Option<&str>, min: usize) -> Result<String, MessagingError> {
    let v = v.map(str::trim).unwrap_or_default();
    if v.len() < min || v.len() > 1024 || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(MessagingError::invalid(
            field,
            format!("must be {min} to 1024 printable ASCII characters"),
        ));
    }
    Ok(v.to_string())
}

fn url(field: &'static str, v: &str) -> Result<String, MessagingError> {
    validate_url(v)
        .map(|u| u.to_string().trim_end_matches('/').to_string())
        .map_err(|e| MessagingError::invalid(field, e.to_string()))
}

/// A default team must be a team of the organization.
async fn checked_team(
    conn: &mut sqlx::SqliteConnection,
    org_id: &str,
    team_id: Option<String>,
) -> Result<Option<String>, MessagingError> {
    match team_id {
        Some(t) if crate::teams::store::get(conn, org_id, &t).await?.is_none() => {
            Err(MessagingError::invalid(
                "default_team_id",
                "no team with this id in the organization",
            ))
        }
        other => Ok(other),
    }
}

/// A new channel and, for an API channel, its callback secret (shown once).
pub struct CreatedChannel {
    pub channel: Channel,
    pub callback_secret: Option<String>,
}

pub async fn create(
    pool: &SqlitePool,
    org_id: &str,
    input: ChannelInput,
) -> Result<CreatedChannel, MessagingError> {
    let kind = input
        .kind
        .as_deref()
        .and_then(ChannelKind::parse)
        .ok_or_else(|| {
            MessagingError::invalid("kind", format!("must be one of {}", ChannelKind::names()))
        })?;
    let name = clean_name(input.name.as_deref())?;
    let now = now_ms();
    let mut c = Channel {
        id: new_id(),
        org_id: org_id.to_string(),
        kind: kind.as_str().to_string(),
        name,
        callback_url: None,
        callback_endpoint_id: None,
        wa_phone_number_id: None,
        wa_business_account_id: None,
        wa_verify_token: None,
        wa_app_secret: None,
        wa_access_token: None,
        wa_graph_base_url: None,
        default_team_id: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let mut callback_secret = None;
    match kind {
        ChannelKind::Api => {
            let raw = input.callback_url.as_deref().ok_or_else(|| {
                MessagingError::invalid("callback_url", "an API channel needs a callback_url")
            })?;
            c.callback_url = Some(url("callback_url", raw)?);
            callback_secret = Some(match input.callback_secret.as_deref() {
                Some(s) => token("callback_secret", Some(s), 16)?,
                None => generate_secret(),
            });
        }
        ChannelKind::Whatsapp => {
            c.wa_phone_number_id = Some(token(
                "phone_number_id",
                input.phone_number_id.as_deref(),
                1,
            )?);
            c.wa_business_account_id = input
                .business_account_id
                .as_deref()
                .map(|v| token("business_account_id", Some(v), 1))
                .transpose()?;
            c.wa_verify_token = Some(token("verify_token", input.verify_token.as_deref(), 8)?);
            c.wa_app_secret = Some(token("app_secret", input.app_secret.as_deref(), 8)?);
            c.wa_access_token = Some(token("access_token", input.access_token.as_deref(), 8)?);
            c.wa_graph_base_url = input
                .graph_base_url
                .as_deref()
                .map(|u| url("graph_base_url", u))
                .transpose()?;
        }
    }

    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM channels WHERE org_id = $1 AND deleted_at IS NULL")
            .bind(org_id)
            .fetch_one(&mut *tx)
            .await?;
    if count >= MAX_CHANNELS_PER_ORG {
        return Err(MessagingError::invalid(
            "kind",
            format!("an organization may have at most {MAX_CHANNELS_PER_ORG} channels"),
        ));
    }
    if let Some(pn) = &c.wa_phone_number_id {
        let taken: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM channels WHERE wa_phone_number_id = $1 AND deleted_at IS NULL",
        )
        .bind(pn)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(MessagingError::Conflict(
                "a WhatsApp channel with this phone_number_id already exists",
            ));
        }
    }
    c.default_team_id = checked_team(&mut tx, org_id, input.default_team_id.flatten()).await?;
    if let (Some(cb), Some(secret)) = (&c.callback_url, &callback_secret) {
        c.callback_endpoint_id = Some(create_callback_endpoint(&mut tx, &c, cb, secret).await?);
    }
    sqlx::query(
        "INSERT INTO channels (id, org_id, kind, name, callback_url, callback_endpoint_id,
             wa_phone_number_id, wa_business_account_id, wa_verify_token, wa_app_secret,
             wa_access_token, wa_graph_base_url, default_team_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $13, $13)",
    )
    .bind(&c.id)
    .bind(org_id)
    .bind(&c.kind)
    .bind(&c.name)
    .bind(&c.callback_url)
    .bind(&c.callback_endpoint_id)
    .bind(&c.wa_phone_number_id)
    .bind(&c.wa_business_account_id)
    .bind(&c.wa_verify_token)
    .bind(&c.wa_app_secret)
    .bind(&c.wa_access_token)
    .bind(&c.wa_graph_base_url)
    .bind(now)
    .bind(&c.default_team_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    changed();
    Ok(CreatedChannel {
        channel: c,
        callback_secret,
    })
}

/// The webhook endpoint that carries an API channel's outbound messages. It subscribes to
/// no event (`[]`), so only what is addressed to it reaches it, and it appears in the
/// organization's webhook endpoints with its delivery log and redelivery.
async fn create_callback_endpoint(
    conn: &mut SqliteConnection,
    c: &Channel,
    url: &str,
    secret: &str,
) -> Result<String, MessagingError> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, org_id, url, events, secret, secret_prefix, description, created_at)
         VALUES ($1, $2, $3, '[]', $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&c.org_id)
    .bind(url)
    .bind(secret)
    .bind(secret.chars().take(10).collect::<String>())
    .bind(format!("callback of API channel {} ({})", c.id, c.name))
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

pub async fn list(pool: &SqlitePool, org_id: &str) -> Result<Vec<Channel>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM channels WHERE org_id = $1 AND deleted_at IS NULL ORDER BY id")
        .bind(org_id)
        .fetch_all(pool)
        .await
}

pub async fn get(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<Channel>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM channels WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// The WhatsApp channel a webhook's `metadata.phone_number_id` names (any organization:
/// the id is global and the signature proves the sender).
pub async fn find_whatsapp_by_phone_number_id(
    pool: &SqlitePool,
    phone_number_id: &str,
) -> Result<Option<Channel>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM channels WHERE wa_phone_number_id = $1 AND kind = 'whatsapp' AND deleted_at IS NULL",
    )
    .bind(phone_number_id)
    .fetch_optional(pool)
    .await
}

/// Whether any WhatsApp channel uses this verify token (Meta's GET handshake carries no
/// phone number id).
pub async fn verify_token_exists(pool: &SqlitePool, token: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM channels WHERE wa_verify_token = $1 AND kind = 'whatsapp' AND deleted_at IS NULL LIMIT 1",
    )
    .bind(token)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Change a channel's name, callback URL or credentials. The kind and the phone number id
/// are fixed (create another channel instead).
pub async fn update(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
    input: ChannelInput,
) -> Result<Channel, MessagingError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut c = get(&mut tx, org_id, id)
        .await?
        .ok_or(MessagingError::NotFound("channel"))?;
    if input.kind.is_some() || input.phone_number_id.is_some() || input.callback_secret.is_some() {
        return Err(MessagingError::invalid(
            "kind",
            "kind, phone_number_id and callback_secret cannot be changed; create a new channel",
        ));
    }
    if input.name.is_some() {
        c.name = clean_name(input.name.as_deref())?;
    }
    let is_api = c.kind() == Some(ChannelKind::Api);
    let wa_only = [
        ("business_account_id", input.business_account_id.is_some()),
        ("verify_token", input.verify_token.is_some()),
        ("app_secret", input.app_secret.is_some()),
        ("access_token", input.access_token.is_some()),
        ("graph_base_url", input.graph_base_url.is_some()),
    ];
    if is_api {
        if let Some((field, _)) = wa_only.iter().find(|(_, set)| *set) {
            return Err(MessagingError::invalid(
                field,
                "not a field of an API channel",
            ));
        }
        if let Some(raw) = input.callback_url.as_deref() {
            let u = url("callback_url", raw)?;
            if let Some(endpoint) = &c.callback_endpoint_id {
                sqlx::query("UPDATE webhook_endpoints SET url = $1 WHERE org_id = $2 AND id = $3")
                    .bind(&u)
                    .bind(org_id)
                    .bind(endpoint)
                    .execute(&mut *tx)
                    .await?;
            }
            c.callback_url = Some(u);
        }
    } else {
        if input.callback_url.is_some() {
            return Err(MessagingError::invalid(
                "callback_url",
                "not a field of a WhatsApp channel",
            ));
        }
        if let Some(v) = input.business_account_id.as_deref() {
            c.wa_business_account_id = Some(token("business_account_id", Some(v), 1)?);
        }
        if let Some(v) = input.verify_token.as_deref() {
            c.wa_verify_token = Some(token("verify_token", Some(v), 8)?);
        }
        if let Some(v) = input.app_secret.as_deref() {
            c.wa_app_secret = Some(token("app_secret", Some(v), 8)?);
        }
        if let Some(v) = input.access_token.as_deref() {
            c.wa_access_token = Some(token("access_token", Some(v), 8)?);
        }
        if let Some(v) = input.graph_base_url.as_deref() {
            c.wa_graph_base_url = Some(url("graph_base_url", v)?);
        }
    }
    if let Some(team) = input.default_team_id {
        c.default_team_id = checked_team(&mut tx, org_id, team).await?;
    }
    c.updated_at = now_ms();
    sqlx::query(
        "UPDATE channels SET name = $1, callback_url = $2, wa_business_account_id = $3,
             wa_verify_token = $4, wa_app_secret = $5, wa_access_token = $6,
             wa_graph_base_url = $7, updated_at = $8, default_team_id = $11
         WHERE org_id = $9 AND id = $10",
    )
    .bind(&c.name)
    .bind(&c.callback_url)
    .bind(&c.wa_business_account_id)
    .bind(&c.wa_verify_token)
    .bind(&c.wa_app_secret)
    .bind(&c.wa_access_token)
    .bind(&c.wa_graph_base_url)
    .bind(c.updated_at)
    .bind(org_id)
    .bind(id)
    .bind(&c.default_team_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    changed();
    Ok(c)
}

/// Soft-delete: conversations and messages stay readable; the callback endpoint goes too.
pub async fn delete(pool: &SqlitePool, org_id: &str, id: &str) -> Result<bool, MessagingError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let Some(c) = get(&mut tx, org_id, id).await? else {
        return Ok(false);
    };
    let now = now_ms();
    sqlx::query("UPDATE channels SET deleted_at = $1 WHERE org_id = $2 AND id = $3")
        .bind(now)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if let Some(endpoint) = &c.callback_endpoint_id {
        sqlx::query(
            "UPDATE webhook_endpoints SET deleted_at = $1 WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(org_id)
        .bind(endpoint)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    changed();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::secret_prefix;

    #[test]
    fn prefixes_reveal_little() {
        assert_eq!(secret_prefix("EAAGabcdefghijklmnopqrstuvwxyz"), "EAAGab…");
        assert_eq!(secret_prefix("12345678"), "12…");
        assert_eq!(secret_prefix("abc"), "…");
    }
}

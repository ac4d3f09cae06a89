//! Messages: storing inbound and outbound ones, delivery-status updates and listing.

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{SqliteConnection, SqlitePool};

use super::MessagingError;
use super::channels::Channel;
use super::conversations::{self, Conversation};
use super::events::{Emitter, TimelineEntry};
use super::model::{ContentType, DeliveryStatus, Direction, SenderType};
use crate::ids::{ms_to_rfc3339, new_id, now_ms};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: String,
    pub org_id: String,
    pub conversation_id: String,
    pub channel_id: String,
    pub contact_id: Option<String>,
    pub direction: String,
    pub sender_type: String,
    pub sender_id: Option<String>,
    pub content: Option<String>,
    pub content_type: String,
    pub attachments: String,
    pub content_attributes: String,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub external_id: Option<String>,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Message {
    /// The row `new` becomes in `conversation`: a fresh (time-ordered) id, the
    /// conversation's contact, `created_at` the channel's time, `updated_at` = `now`.
    pub fn new_row(
        channel: &Channel,
        conversation: &Conversation,
        new: NewMessage,
        now: i64,
    ) -> Result<Self, serde_json::Error> {
        Ok(Message {
            id: new_id(),
            org_id: channel.org_id.clone(),
            conversation_id: conversation.id.clone(),
            channel_id: channel.id.clone(),
            contact_id: conversation.contact_id.clone(),
            direction: new.direction.as_str().into(),
            sender_type: new.sender_type.as_str().into(),
            sender_id: new.sender_id,
            content: new.content,
            content_type: new.content_type.as_str().into(),
            attachments: serde_json::to_string(&new.attachments)?,
            content_attributes: serde_json::to_string(&new.attributes)?,
            status: new.status.as_str().into(),
            error_code: None,
            error_message: None,
            external_id: new.external_id,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            created_at: new.occurred_at,
            updated_at: now,
        })
    }

    pub fn status(&self) -> DeliveryStatus {
        DeliveryStatus::parse(&self.status).unwrap_or(DeliveryStatus::Queued)
    }
}

fn json_text(s: &str, default: Value) -> Value {
    serde_json::from_str(s).unwrap_or(default)
}

/// Who sent a message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SenderView {
    /// `contact`, `user`, `api_key` or `system`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
}

/// Why a message failed, as its channel said.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryErrorView {
    pub code: String,
    pub message: Option<String>,
}

/// A message as the API and its events show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    pub channel_id: String,
    /// The channel's kind: `api` or `whatsapp`.
    pub channel: String,
    pub contact_id: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub sender: SenderView,
    pub content: Option<String>,
    /// `text`, `template`, `image`, `audio`, `video`, `document`, `sticker`, `location`,
    /// `contacts`, `interactive`, `button`, `reaction` or `unsupported`.
    pub content_type: String,
    #[schema(value_type = Vec<Object>)]
    pub attachments: Value,
    #[schema(value_type = Object)]
    pub content_attributes: Value,
    /// `queued`, `sent`, `delivered`, `read`, `failed` (outbound) or `received` (inbound).
    pub status: String,
    pub error: Option<DeliveryErrorView>,
    /// The channel's own id of the message (e.g. WhatsApp's wamid).
    pub external_id: Option<String>,
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    #[schema(format = DateTime)]
    pub read_at: Option<String>,
    #[schema(format = DateTime)]
    pub failed_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

pub fn view(m: &Message, channel_kind: &str) -> MessageView {
    MessageView {
        id: m.id.clone(),
        conversation_id: m.conversation_id.clone(),
        channel_id: m.channel_id.clone(),
        channel: channel_kind.to_string(),
        contact_id: m.contact_id.clone(),
        direction: m.direction.clone(),
        sender: SenderView {
            kind: m.sender_type.clone(),
            id: m.sender_id.clone(),
        },
        content: m.content.clone(),
        content_type: m.content_type.clone(),
        attachments: json_text(&m.attachments, json!([])),
        content_attributes: json_text(&m.content_attributes, json!({})),
        status: m.status.clone(),
        error: m.error_code.as_ref().map(|code| DeliveryErrorView {
            code: code.clone(),
            message: m.error_message.clone(),
        }),
        external_id: m.external_id.clone(),
        sent_at: m.sent_at.map(ms_to_rfc3339),
        delivered_at: m.delivered_at.map(ms_to_rfc3339),
        read_at: m.read_at.map(ms_to_rfc3339),
        failed_at: m.failed_at.map(ms_to_rfc3339),
        created_at: ms_to_rfc3339(m.created_at),
        updated_at: ms_to_rfc3339(m.updated_at),
    }
}

/// A message to store (inbound from a channel, or outbound before it is sent).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub direction: Direction,
    pub sender_type: SenderType,
    pub sender_id: Option<String>,
    pub content: Option<String>,
    pub content_type: ContentType,
    pub attachments: Vec<Value>,
    pub attributes: serde_json::Map<String, Value>,
    pub status: DeliveryStatus,
    pub external_id: Option<String>,
    /// When it happened (the channel's timestamp for inbound messages).
    pub occurred_at: i64,
}

/// The message with this external id on the channel, if any (replay detection).
pub async fn find_by_external_id(
    conn: &mut SqliteConnection,
    channel_id: &str,
    external_id: &str,
) -> Result<Option<Message>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM messages WHERE channel_id = $1 AND external_id = $2")
        .bind(channel_id)
        .bind(external_id)
        .fetch_optional(&mut *conn)
        .await
}

/// Store a message in `conversation` with its timeline entry and `message.created` event,
/// and move the conversation's last activity.
pub async fn insert(
    conn: &mut SqliteConnection,
    emitter: &Emitter,
    channel: &Channel,
    conversation: &Conversation,
    new: NewMessage,
) -> Result<Message, MessagingError> {
    let now = now_ms();
    let m = Message::new_row(channel, conversation, new, now)?;
    sqlx::query(
        "INSERT INTO messages (id, org_id, conversation_id, channel_id, contact_id, direction,
             sender_type, sender_id, content, content_type, attachments, content_attributes,
             status, external_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&m.id)
    .bind(&m.org_id)
    .bind(&m.conversation_id)
    .bind(&m.channel_id)
    .bind(&m.contact_id)
    .bind(&m.direction)
    .bind(&m.sender_type)
    .bind(&m.sender_id)
    .bind(&m.content)
    .bind(&m.content_type)
    .bind(&m.attachments)
    .bind(&m.content_attributes)
    .bind(&m.status)
    .bind(&m.external_id)
    .bind(m.created_at)
    .bind(m.updated_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE conversations SET last_activity_at = MAX(last_activity_at, $1), updated_at = $2
         WHERE org_id = $3 AND id = $4",
    )
    .bind(m.created_at)
    .bind(now)
    .bind(&m.org_id)
    .bind(&m.conversation_id)
    .execute(&mut *conn)
    .await?;
    emitter
        .emit(
            conn,
            "message.created",
            Some(TimelineEntry {
                contact_id: m.contact_id.as_deref(),
                conversation_id: &m.conversation_id,
                ref_id: &m.id,
                occurred_at: m.created_at,
            }),
            json!({
                "message": view(&m, &channel.kind),
                "conversation": conversations::view(conversation),
            }),
        )
        .await?;
    Ok(m)
}

/// A delivery report for an outbound message.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub status: DeliveryStatus,
    pub at: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Set the channel's id of the message (the wamid Meta returned on send).
    pub external_id: Option<String>,
}

/// Apply a report; `message.updated` when the status moved. A report that does not move the
/// status forward (a replay, an out-of-order `delivered` after `read`) only fills in its
/// timestamp if missing, and emits nothing.
pub async fn apply_status(
    conn: &mut SqliteConnection,
    emitter: &Emitter,
    channel_kind: &str,
    mut m: Message,
    change: StatusChange,
) -> Result<(Message, bool), MessagingError> {
    let moved = m.status().accepts(change.status);
    let at = Some(change.at);
    match change.status {
        DeliveryStatus::Sent => m.sent_at = m.sent_at.or(at),
        DeliveryStatus::Delivered => m.delivered_at = m.delivered_at.or(at),
        DeliveryStatus::Read => m.read_at = m.read_at.or(at),
        DeliveryStatus::Failed if moved => m.failed_at = m.failed_at.or(at),
        _ => {}
    }
    if moved {
        m.status = change.status.as_str().into();
        if change.status == DeliveryStatus::Failed {
            m.error_code = change.error_code.or(Some("unknown".into()));
            m.error_message = change.error_message;
        }
    }
    if let Some(ext) = change.external_id {
        m.external_id = Some(ext);
    }
    m.updated_at = now_ms();
    sqlx::query(
        "UPDATE messages SET status = $1, error_code = $2, error_message = $3, external_id = $4,
             sent_at = $5, delivered_at = $6, read_at = $7, failed_at = $8, updated_at = $9
         WHERE org_id = $10 AND id = $11",
    )
    .bind(&m.status)
    .bind(&m.error_code)
    .bind(&m.error_message)
    .bind(&m.external_id)
    .bind(m.sent_at)
    .bind(m.delivered_at)
    .bind(m.read_at)
    .bind(m.failed_at)
    .bind(m.updated_at)
    .bind(&m.org_id)
    .bind(&m.id)
    .execute(&mut *conn)
    .await?;
    if moved {
        emitter
            .emit(
                conn,
                "message.updated",
                None,
                json!({ "message": view(&m, channel_kind), "changed": ["status"] }),
            )
            .await?;
    }
    Ok((m, moved))
}

pub async fn get(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<Message>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM messages WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// A conversation's messages, newest first; `before` is the last id of the previous page.
pub async fn list(
    pool: &SqlitePool,
    org_id: &str,
    conversation_id: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Message>, sqlx::Error> {
    match before {
        None => {
            sqlx::query_as(
                "SELECT * FROM messages WHERE org_id = $1 AND conversation_id = $2
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(org_id)
            .bind(conversation_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        Some(b) => {
            sqlx::query_as(
                "SELECT * FROM messages WHERE org_id = $1 AND conversation_id = $2 AND id < $3
                 ORDER BY id DESC LIMIT $4",
            )
            .bind(org_id)
            .bind(conversation_id)
            .bind(b)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
}

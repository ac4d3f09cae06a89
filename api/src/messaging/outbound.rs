//! Sending a message on a conversation's channel.
//!
//! The message is stored (`queued`, with its `message.created` event) and committed before
//! anything leaves, so a failed or interrupted send never loses it. Then:
//! - WhatsApp: one Graph API request; the wamid and `sent`, or `failed` with Meta's error,
//!   are written in a second transaction (`message.updated`).
//! - API channel: the message is handed to the channel's callback endpoint through the
//!   webhook outbox in the first transaction (signed, retried, logged); it stays `queued`
//!   until the receiver reports a status (`POST /api/v1/channels/{id}/statuses`).

use serde_json::{Value, json};
use sqlx::SqlitePool;

use super::MessagingError;
use super::channels::{self, Channel};
use super::conversations::{self, Conversation};
use super::events::Emitter;
use super::messages::{self, Message, NewMessage, StatusChange};
use super::model::{ChannelKind, ContentType, DeliveryStatus, Direction, SenderType};
use super::whatsapp::graph::{self, Outgoing};
use crate::egress::EgressPolicy;
use crate::ids::now_ms;
use crate::webhooks::{Subscribers, enqueue_event_to};

const MAX_TEXT_CHARS: usize = 4096;

#[derive(Debug, Clone)]
pub struct TemplateSpec {
    pub name: String,
    pub language: String,
    pub components: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub content_type: ContentType,
    pub content: Option<String>,
    pub template: Option<TemplateSpec>,
    pub sender_type: SenderType,
    pub sender_id: Option<String>,
}

impl OutboundRequest {
    fn validate(&self) -> Result<(), MessagingError> {
        match self.content_type {
            ContentType::Text => {
                let text = self.content.as_deref().map(str::trim).unwrap_or("");
                if text.is_empty()
                    || self.content.as_deref().unwrap_or("").chars().count() > MAX_TEXT_CHARS
                {
                    return Err(MessagingError::invalid(
                        "content",
                        format!("a text message needs 1 to {MAX_TEXT_CHARS} characters"),
                    ));
                }
            }
            ContentType::Template => {
                let t = self.template.as_ref().ok_or_else(|| {
                    MessagingError::invalid("template", "a template message needs {name, language}")
                })?;
                let ok =
                    |s: &str| !s.is_empty() && s.len() <= 512 && !s.chars().any(char::is_control);
                if !ok(&t.name) || !ok(&t.language) {
                    return Err(MessagingError::invalid(
                        "template",
                        "name and language must be 1 to 512 printable characters",
                    ));
                }
                if t.components.as_ref().is_some_and(|c| !c.is_array()) {
                    return Err(MessagingError::invalid(
                        "template",
                        "components must be an array",
                    ));
                }
            }
            other => {
                return Err(MessagingError::invalid(
                    "content_type",
                    format!("sending {other} is not supported; use text or template"),
                ));
            }
        }
        Ok(())
    }
}

/// The conversation's channel, or why one cannot send on it.
async fn channel_of(
    conn: &mut sqlx::SqliteConnection,
    c: &Conversation,
) -> Result<Channel, MessagingError> {
    let Some(channel_id) = &c.channel_id else {
        return Err(MessagingError::invalid(
            "conversation",
            format!("cannot send messages on a {} conversation", c.channel),
        ));
    };
    channels::get(conn, &c.org_id, channel_id)
        .await?
        .ok_or_else(|| MessagingError::invalid("conversation", "its channel was deleted"))
}

/// A contact whose WhatsApp consent is `opted_out` gets nothing from us on that channel (the
/// consent is set through the contact API, e.g. after they asked to stop).
async fn refuse_if_opted_out(
    conn: &mut sqlx::SqliteConnection,
    channel: &Channel,
    contact_id: Option<&str>,
) -> Result<(), MessagingError> {
    let Some(contact_id) = contact_id else {
        return Ok(());
    };
    let status: Option<(String,)> = sqlx::query_as(
        "SELECT status FROM contact_consents WHERE org_id = $1 AND contact_id = $2 AND channel = 'whatsapp'",
    )
    .bind(&channel.org_id)
    .bind(contact_id)
    .fetch_optional(&mut *conn)
    .await?;
    match status {
        Some((s,)) if s == "opted_out" => Err(MessagingError::OptedOut("whatsapp")),
        _ => Ok(()),
    }
}

/// Where WhatsApp should deliver: the wa_id the contact wrote from, else their phone.
async fn whatsapp_recipient(
    conn: &mut sqlx::SqliteConnection,
    channel: &Channel,
    contact_id: Option<&str>,
) -> Result<String, MessagingError> {
    let no_recipient =
        || MessagingError::invalid("conversation", "the contact has no WhatsApp id or phone");
    let contact_id = contact_id.ok_or_else(no_recipient)?;
    let linked: Option<(String,)> = sqlx::query_as(
        "SELECT source_id FROM channel_contacts WHERE channel_id = $1 AND contact_id = $2
         ORDER BY created_at LIMIT 1",
    )
    .bind(&channel.id)
    .bind(contact_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((wa_id,)) = linked {
        return Ok(wa_id);
    }
    let phone: Option<(Option<String>,)> =
        sqlx::query_as("SELECT phone_e164 FROM contacts WHERE org_id = $1 AND id = $2")
            .bind(&channel.org_id)
            .bind(contact_id)
            .fetch_optional(&mut *conn)
            .await?;
    phone
        .and_then(|(p,)| p)
        .map(|p| p.trim_start_matches('+').to_string())
        .ok_or_else(no_recipient)
}

/// Store and send. Returns the message in its state after the attempt.
pub async fn send(
    pool: &SqlitePool,
    org_id: &str,
    conversation_id: &str,
    req: OutboundRequest,
    egress: EgressPolicy,
) -> Result<(Message, String), MessagingError> {
    req.validate()?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let conversation = conversations::get(&mut tx, org_id, conversation_id)
        .await?
        .ok_or(MessagingError::NotFound("conversation"))?;
    let channel = channel_of(&mut tx, &conversation).await?;
    let kind = channel
        .kind()
        .ok_or_else(|| MessagingError::invalid("conversation", "unknown channel kind"))?;
    let recipient = match kind {
        ChannelKind::Whatsapp => {
            refuse_if_opted_out(&mut tx, &channel, conversation.contact_id.as_deref()).await?;
            Some(whatsapp_recipient(&mut tx, &channel, conversation.contact_id.as_deref()).await?)
        }
        ChannelKind::Api => None,
    };
    let mut attributes = serde_json::Map::new();
    if let Some(t) = &req.template {
        attributes.insert(
            "template".into(),
            json!({ "name": t.name, "language": t.language, "components": t.components }),
        );
    }
    let emitter = Emitter::load(&mut tx, org_id).await?;
    let message = messages::insert(
        &mut tx,
        &emitter,
        &channel,
        &conversation,
        NewMessage {
            direction: Direction::Outbound,
            sender_type: req.sender_type,
            sender_id: req.sender_id.clone(),
            content: req.content.clone(),
            content_type: req.content_type,
            attachments: Vec::new(),
            attributes,
            status: DeliveryStatus::Queued,
            external_id: None,
            occurred_at: now_ms(),
        },
    )
    .await?;
    if kind == ChannelKind::Api {
        let endpoint = channel.callback_endpoint_id.as_deref().ok_or_else(|| {
            MessagingError::invalid("conversation", "the API channel has no callback endpoint")
        })?;
        let contact = contact_json(&mut tx, &channel, conversation.contact_id.as_deref()).await?;
        enqueue_event_to(
            &mut tx,
            org_id,
            &Subscribers::only(endpoint),
            "message.created",
            json!({
                "channel": { "id": channel.id, "name": channel.name },
                "conversation": conversations::view(&conversation),
                "contact": contact,
                "message": messages::view(&message, &channel.kind),
            }),
        )
        .await?;
    }
    tx.commit().await?;

    let Some(to) = recipient else {
        return Ok((message, channel.kind));
    };
    let outgoing = match (&req.content_type, &req.template) {
        (ContentType::Template, Some(t)) => Outgoing::Template {
            name: &t.name,
            language: &t.language,
            components: t.components.as_ref(),
        },
        _ => Outgoing::Text {
            body: req.content.as_deref().unwrap_or(""),
            preview_url: false,
        },
    };
    let result = graph::send(
        channel.graph_base_url(),
        channel.wa_phone_number_id.as_deref().unwrap_or(""),
        channel.wa_access_token.as_deref().unwrap_or(""),
        &to,
        &outgoing,
        egress,
    )
    .await;
    let change = match result {
        Ok(wamid) => StatusChange {
            status: DeliveryStatus::Sent,
            at: now_ms(),
            error_code: None,
            error_message: None,
            external_id: Some(wamid),
        },
        Err(e) => {
            tracing::warn!(message = %message.id, code = %e.code, error = %e.message, "WhatsApp send failed");
            StatusChange {
                status: DeliveryStatus::Failed,
                at: now_ms(),
                error_code: Some(e.code),
                error_message: Some(e.message),
                external_id: None,
            }
        }
    };
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // Re-read: a status webhook may already have moved it.
    let current = messages::get(&mut tx, org_id, &message.id)
        .await?
        .ok_or(MessagingError::NotFound("message"))?;
    let emitter = Emitter::load(&mut tx, org_id).await?;
    let (updated, _) =
        messages::apply_status(&mut tx, &emitter, &channel.kind, current, change).await?;
    tx.commit().await?;
    Ok((updated, channel.kind))
}

async fn contact_json(
    conn: &mut sqlx::SqliteConnection,
    channel: &Channel,
    contact_id: Option<&str>,
) -> Result<Value, MessagingError> {
    let Some(contact_id) = contact_id else {
        return Ok(Value::Null);
    };
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT phone_e164, display_name FROM contacts WHERE org_id = $1 AND id = $2",
    )
    .bind(&channel.org_id)
    .bind(contact_id)
    .fetch_optional(&mut *conn)
    .await?;
    let identifiers: Vec<(String,)> = sqlx::query_as(
        "SELECT source_id FROM channel_contacts WHERE channel_id = $1 AND contact_id = $2 ORDER BY created_at",
    )
    .bind(&channel.id)
    .bind(contact_id)
    .fetch_all(&mut *conn)
    .await?;
    let (phone, name) = row.unwrap_or_default();
    Ok(json!({
        "id": contact_id,
        "phone": phone,
        "name": name,
        "identifiers": identifiers.into_iter().map(|(s,)| s).collect::<Vec<_>>(),
    }))
}

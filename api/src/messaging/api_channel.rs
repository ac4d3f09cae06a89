//! The API channel's inbound side (like Chatwoot's API inbox): an external system, holding
//! an API key of the organization, posts the messages its users send, and reports delivery
//! of the outbound messages callscope handed to its callback URL.
//!
//! `POST /api/v1/channels/{id}/messages` — idempotent on `message_id`.
//! `POST /api/v1/channels/{id}/statuses` — delivery reports for outbound messages.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::MessagingError;
use super::channels::{self, Channel};
use super::conversations;
use super::events::Emitter;
use super::inbound::{self, Ingested, Sender};
use super::messages::{self, NewMessage, StatusChange};
use super::model::{ChannelKind, ContentType, DeliveryStatus, Direction, SenderType};
use crate::auth::OrgCtx;
use crate::error::ApiResult;
use crate::http::state::AppState;
use crate::ids::now_ms;
use crate::metadata_fields::parse_timestamp_ms;
use crate::permissions::Permission;
use crate::store::contacts::normalize_phone;

const MAX_ATTACHMENTS: usize = 10;
const MAX_CONTENT_CHARS: usize = 16_384;
const MAX_ID_CHARS: usize = 256;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ApiChannelContact)]
#[serde(deny_unknown_fields)]
pub struct InboundContact {
    /// The external system's id of the person (preferred identity).
    pub identifier: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ApiChannelInboundMessage)]
#[serde(deny_unknown_fields)]
pub struct InboundBody {
    /// The external system's message id: a repeated POST with the same id changes nothing.
    pub message_id: String,
    pub contact: InboundContact,
    pub content: Option<String>,
    pub content_type: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Value>,
    #[serde(default)]
    pub content_attributes: Option<serde_json::Map<String, Value>>,
    /// RFC 3339 or Unix seconds; default now.
    pub timestamp: Option<Value>,
}

fn bounded(field: &'static str, v: &str, max: usize) -> Result<String, MessagingError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(MessagingError::invalid(
            field,
            format!("must be 1 to {max} printable characters"),
        ));
    }
    Ok(v.to_string())
}

/// The contact's identity on the channel: identifier, else email, else phone.
fn sender(c: &InboundContact, region: &str) -> Result<Sender, MessagingError> {
    let phone_e164 =
        match c.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => Some(normalize_phone(p, region).ok_or_else(|| {
                MessagingError::invalid("contact.phone", "not a valid phone number")
            })?),
            None => None,
        };
    let email = c
        .email
        .as_deref()
        .map(|e| bounded("contact.email", e, 320))
        .transpose()?
        .map(|e| e.to_lowercase());
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(MessagingError::invalid(
            "contact.email",
            "not an email address",
        ));
    }
    let source_id = if let Some(id) = c.identifier.as_deref() {
        bounded("contact.identifier", id, MAX_ID_CHARS)?
    } else if let Some(e) = &email {
        format!("email:{e}")
    } else if let Some(p) = &phone_e164 {
        format!("phone:{p}")
    } else {
        return Err(MessagingError::invalid(
            "contact",
            "needs an identifier, an email or a phone",
        ));
    };
    let name = c
        .name
        .as_deref()
        .map(|n| bounded("contact.name", n, 200))
        .transpose()?;
    Ok(Sender {
        source_id,
        phone_e164,
        name,
    })
}

/// Attachments as `{url | media_id, mime_type, size, filename, caption}`.
pub fn clean_attachments(raw: &[Value]) -> Result<Vec<Value>, MessagingError> {
    if raw.len() > MAX_ATTACHMENTS {
        return Err(MessagingError::invalid(
            "attachments",
            format!("at most {MAX_ATTACHMENTS}"),
        ));
    }
    let bad = |msg: &str| MessagingError::invalid("attachments", msg.to_string());
    let mut out = Vec::with_capacity(raw.len());
    for a in raw {
        let obj = a
            .as_object()
            .ok_or_else(|| bad("each attachment is an object"))?;
        let mut clean = serde_json::Map::new();
        for (key, value) in obj {
            match key.as_str() {
                "url" => {
                    let u = value.as_str().ok_or_else(|| bad("url must be a string"))?;
                    let parsed = reqwest::Url::parse(u).map_err(|_| bad("url is not a URL"))?;
                    if !matches!(parsed.scheme(), "http" | "https") || u.len() > 2048 {
                        return Err(bad("url must be http(s) and at most 2048 characters"));
                    }
                    clean.insert(key.clone(), value.clone());
                }
                "media_id" | "mime_type" | "filename" | "caption" | "sha256" => {
                    let s = value
                        .as_str()
                        .ok_or_else(|| bad("media_id, mime_type, filename, caption are strings"))?;
                    if s.chars().count() > 1024 {
                        return Err(bad("attachment fields are at most 1024 characters"));
                    }
                    clean.insert(key.clone(), value.clone());
                }
                "size" => {
                    value
                        .as_u64()
                        .ok_or_else(|| bad("size is a non-negative integer"))?;
                    clean.insert(key.clone(), value.clone());
                }
                other => return Err(bad(&format!("unknown attachment field {other:?}"))),
            }
        }
        if !clean.contains_key("url") && !clean.contains_key("media_id") {
            return Err(bad("each attachment needs a url or a media_id"));
        }
        out.push(Value::Object(clean));
    }
    Ok(out)
}

async fn api_channel(state: &AppState, org_id: &str, id: &str) -> Result<Channel, MessagingError> {
    let mut conn = state.pool.acquire().await?;
    let c = channels::get(&mut conn, org_id, id)
        .await?
        .ok_or(MessagingError::NotFound("channel"))?;
    if c.kind() != Some(ChannelKind::Api) {
        return Err(MessagingError::invalid(
            "channel",
            "messages are posted here only for API channels",
        ));
    }
    Ok(c)
}

#[utoipa::path(
    post,
    path = "/channels/{id}/messages",
    operation_id = "api_channel_inbound_message",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "An API channel's inbound message (idempotent on `message_id`)",
    description = "The external system behind an API channel posts what its users send, with \
        an API key of the organization. The sender (identifier, else email, else phone) is \
        matched to a contact or becomes one; the message joins the conversation found or opened.",
    params(("id" = String, Path, description = "The API channel's id.")),
    request_body = InboundBody,
    responses(
        (status = 201, description = "`{duplicate: false, message, conversation}`", body = Object),
        (status = 200, description = "`{duplicate: true, message, conversation}`: this `message_id` was posted before; nothing changed.", body = Object),
    ),
)]
pub async fn post_inbound(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Json(body): Json<InboundBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::MessagesWrite)?;
    let channel = api_channel(&state, &org.org_id, &id).await?;
    let external_id = bounded("message_id", &body.message_id, MAX_ID_CHARS)?;
    let sender = sender(&body.contact, &state.config.default_region)?;
    let content_type = match body.content_type.as_deref() {
        None => ContentType::Text,
        Some(t) => ContentType::parse(t)
            .filter(|t| *t != ContentType::Template)
            .ok_or_else(|| {
                MessagingError::invalid("content_type", format!("one of {}", ContentType::names()))
            })?,
    };
    let content = body
        .content
        .as_deref()
        .map(|c| {
            if c.chars().count() > MAX_CONTENT_CHARS {
                Err(MessagingError::invalid(
                    "content",
                    format!("at most {MAX_CONTENT_CHARS} characters"),
                ))
            } else {
                Ok(c.to_string())
            }
        })
        .transpose()?;
    let attachments = clean_attachments(&body.attachments)?;
    if content.as_deref().is_none_or(|c| c.trim().is_empty()) && attachments.is_empty() {
        return Err(
            MessagingError::invalid("content", "a message needs content or attachments").into(),
        );
    }
    let attributes = body.content_attributes.unwrap_or_default();
    if serde_json::to_string(&attributes).map_or(0, |s| s.len()) > 16_384 {
        return Err(MessagingError::invalid("content_attributes", "at most 16 KiB of JSON").into());
    }
    let occurred_at = match &body.timestamp {
        None => now_ms(),
        Some(v) => parse_timestamp_ms(v)
            .ok_or_else(|| MessagingError::invalid("timestamp", "RFC 3339 or Unix seconds"))?,
    };
    let mut tx = state
        .pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(MessagingError::from)?;
    let emitter = Emitter::load(&mut tx, &org.org_id).await?;
    let outcome = inbound::ingest(
        &mut tx,
        &emitter,
        &channel,
        &sender,
        NewMessage {
            direction: Direction::Inbound,
            sender_type: SenderType::Contact,
            sender_id: None,
            content,
            content_type,
            attachments,
            attributes,
            status: DeliveryStatus::Received,
            external_id: Some(external_id),
            occurred_at,
        },
    )
    .await?;
    let (status, message, duplicate) = match outcome {
        Ingested::Created(m) => (StatusCode::CREATED, m, false),
        Ingested::Duplicate(m) => (StatusCode::OK, m, true),
    };
    let conversation = conversations::get(&mut tx, &org.org_id, &message.conversation_id)
        .await
        .map_err(MessagingError::from)?;
    tx.commit().await.map_err(MessagingError::from)?;
    Ok((
        status,
        Json(json!({
            "duplicate": duplicate,
            "message": messages::view(&message, &channel.kind),
            "conversation": conversation.as_ref().map(conversations::view),
        })),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ApiChannelStatusReport)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// callscope's message id (as in the callback payload).
    pub message_id: String,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The receiver's id of the message, kept as its external id.
    pub external_id: Option<String>,
    pub timestamp: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/channels/{id}/statuses",
    operation_id = "api_channel_delivery_status",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "An API channel's delivery report for an outbound message",
    params(("id" = String, Path, description = "The API channel's id.")),
    request_body = StatusBody,
    responses((status = 200, description = "`{changed, message}`: `changed` is false when the report moved nothing (a status never goes back).", body = Object)),
)]
pub async fn post_status(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Json(body): Json<StatusBody>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::MessagesWrite)?;
    let channel = api_channel(&state, &org.org_id, &id).await?;
    let status = DeliveryStatus::parse(&body.status)
        .filter(|s| !matches!(s, DeliveryStatus::Received | DeliveryStatus::Queued))
        .ok_or_else(|| MessagingError::invalid("status", "one of sent, delivered, read, failed"))?;
    let at = match &body.timestamp {
        None => now_ms(),
        Some(v) => parse_timestamp_ms(v)
            .ok_or_else(|| MessagingError::invalid("timestamp", "RFC 3339 or Unix seconds"))?,
    };
    let error_code = body
        .error_code
        .as_deref()
        .map(|c| bounded("error_code", c, 100))
        .transpose()?;
    let error_message = body
        .error_message
        .as_deref()
        .map(|m| bounded("error_message", m, 1000))
        .transpose()?;
    let external_id = body
        .external_id
        .as_deref()
        .map(|e| bounded("external_id", e, MAX_ID_CHARS))
        .transpose()?;
    let mut tx = state
        .pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(MessagingError::from)?;
    let message = messages::get(&mut tx, &org.org_id, &body.message_id)
        .await
        .map_err(MessagingError::from)?
        .filter(|m| m.channel_id == channel.id && m.direction == Direction::Outbound.as_str())
        .ok_or(MessagingError::NotFound("message"))?;
    // The receiver's id is kept once, and only when no other message of the channel has it
    // (it is unique per channel).
    let external_id = match external_id.filter(|_| message.external_id.is_none()) {
        Some(ext) => messages::find_by_external_id(&mut tx, &channel.id, &ext)
            .await
            .map_err(MessagingError::from)?
            .is_none()
            .then_some(ext),
        None => None,
    };
    let emitter = Emitter::load(&mut tx, &org.org_id).await?;
    let (message, moved) = messages::apply_status(
        &mut tx,
        &emitter,
        &channel.kind,
        message,
        StatusChange {
            status,
            at,
            error_code,
            error_message,
            external_id,
        },
    )
    .await?;
    tx.commit().await.map_err(MessagingError::from)?;
    Ok(Json(json!({
        "changed": moved,
        "message": messages::view(&message, &channel.kind),
    })))
}

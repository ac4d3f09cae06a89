//! REST surface of messaging under `/api/v1`: channels, conversations, messages, and the
//! WhatsApp webhook. Every handler but the webhook takes the organization from the API key;
//! another organization's ids answer 404.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::MessagingError;
use super::channels::{self, ChannelInput};
use super::conversations::{self, Actor, ConversationFilter, ConversationPatch};
use super::messages;
use super::model::{ContentType, ConversationStatus, Priority, SenderType};
use super::outbound::{self, OutboundRequest, TemplateSpec};
use super::{api_channel, whatsapp};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::cursor;
use crate::http::state::AppState;
use crate::metadata_fields::parse_timestamp_ms;
use crate::permissions::Permission;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/channels", post(create_channel).get(list_channels))
        .route(
            "/channels/{id}",
            get(get_channel).patch(patch_channel).delete(delete_channel),
        )
        .route("/channels/{id}/messages", post(api_channel::post_inbound))
        .route("/channels/{id}/statuses", post(api_channel::post_status))
        .route("/conversations", get(list_conversations))
        .route(
            "/conversations/{id}",
            get(get_conversation).patch(patch_conversation),
        )
        .route(
            "/conversations/{id}/messages",
            get(list_messages).post(send_message),
        )
        .route(
            "/webhooks/whatsapp",
            get(whatsapp::webhook::verify).post(whatsapp::webhook::receive),
        )
}

async fn create_channel(
    State(state): State<AppState>,
    org: OrgCtx,
    Json(input): Json<ChannelInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::ChannelsManage)?;
    let created = channels::create(&state.pool, &org.org_id, input).await?;
    let mut v = channels::view(&created.channel);
    if let (Some(obj), Some(secret)) = (v.as_object_mut(), created.callback_secret) {
        // The only time the secret is shown.
        obj.insert("callback_secret".into(), Value::String(secret));
    }
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list_channels(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::ChannelsManage)?;
    let rows = channels::list(&state.pool, &org.org_id).await?;
    Ok(Json(
        json!({ "data": rows.iter().map(channels::view).collect::<Vec<_>>() }),
    ))
}

async fn get_channel(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ChannelsManage)?;
    let mut conn = state.pool.acquire().await?;
    let c = channels::get(&mut conn, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    Ok(Json(channels::view(&c)))
}

async fn patch_channel(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Json(input): Json<ChannelInput>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ChannelsManage)?;
    let c = channels::update(&state.pool, &org.org_id, &id, input).await?;
    Ok(Json(channels::view(&c)))
}

async fn delete_channel(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::ChannelsManage)?;
    if channels::delete(&state.pool, &org.org_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("channel"))
    }
}

#[derive(Debug, Deserialize)]
pub struct ListConversationsQuery {
    pub status: Option<String>,
    /// A user id, or `none` for unassigned conversations.
    pub assignee: Option<String>,
    /// `voice`, `api` or `whatsapp`.
    pub channel: Option<String>,
    pub channel_id: Option<String>,
    pub contact_id: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

async fn list_conversations(
    State(state): State<AppState>,
    org: OrgCtx,
    Query(q): Query<ListConversationsQuery>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsRead)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ConversationStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown status {s:?}; one of {}",
                    ConversationStatus::names()
                ))
            })
        })
        .transpose()?;
    if let Some(ch) = &q.channel
        && !["voice", "api", "whatsapp"].contains(&ch.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "unknown channel {ch:?}; one of voice, api, whatsapp"
        )));
    }
    conversations::wake_due_snoozes(&state.pool, &org.org_id).await?;
    let filter = ConversationFilter {
        status,
        assignee_id: q.assignee.map(|a| if a == "none" { None } else { Some(a) }),
        channel: q.channel,
        channel_id: q.channel_id,
        contact_id: q.contact_id,
    };
    let before: Option<String> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = cursor::limit(q.limit);
    let mut rows = conversations::list(
        &state.pool,
        &org.org_id,
        &filter,
        before.as_deref(),
        limit + 1,
    )
    .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if has_more {
        rows.last().map(|c| cursor::encode(&c.id))
    } else {
        None
    };
    Ok(Json(json!({
        "data": rows.iter().map(conversations::view).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

async fn get_conversation(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsRead)?;
    conversations::wake_due_snoozes(&state.pool, &org.org_id).await?;
    let mut conn = state.pool.acquire().await?;
    let c = conversations::get(&mut conn, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(Json(conversations::view(&c)))
}

/// Read a PATCH body by hand: `assignee_id: null` (unassign) differs from no `assignee_id`.
fn parse_patch(body: &Value) -> Result<ConversationPatch, MessagingError> {
    let obj = body
        .as_object()
        .ok_or_else(|| MessagingError::invalid("body", "must be a JSON object"))?;
    let mut p = ConversationPatch::default();
    for (key, v) in obj {
        match key.as_str() {
            "status" => {
                let s = v
                    .as_str()
                    .and_then(ConversationStatus::parse)
                    .ok_or_else(|| {
                        MessagingError::invalid(
                            "status",
                            format!("one of {}", ConversationStatus::names()),
                        )
                    })?;
                p.status = Some(s);
            }
            "snoozed_until" => {
                if !v.is_null() {
                    p.snoozed_until = Some(parse_timestamp_ms(v).ok_or_else(|| {
                        MessagingError::invalid("snoozed_until", "RFC 3339 or Unix seconds")
                    })?);
                }
            }
            "assignee_id" => {
                p.assignee_id = Some(match v {
                    Value::Null => None,
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    _ => {
                        return Err(MessagingError::invalid("assignee_id", "a user id or null"));
                    }
                });
            }
            "priority" => {
                let pr = v.as_str().and_then(Priority::parse).ok_or_else(|| {
                    MessagingError::invalid("priority", format!("one of {}", Priority::names()))
                })?;
                p.priority = Some(pr);
            }
            "labels" => {
                let labels: Vec<String> = serde_json::from_value(v.clone())
                    .map_err(|_| MessagingError::invalid("labels", "an array of strings"))?;
                p.labels = Some(labels);
            }
            other => {
                return Err(MessagingError::Invalid {
                    field: "body",
                    message: format!("unknown field {other:?}"),
                });
            }
        }
    }
    if p.snoozed_until.is_some() && p.status.is_some_and(|s| s != ConversationStatus::Snoozed) {
        return Err(MessagingError::invalid(
            "snoozed_until",
            "only with status snoozed",
        ));
    }
    Ok(p)
}

async fn patch_conversation(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsWrite)?;
    let patch = parse_patch(&body)?;
    let c = conversations::update(
        &state.pool,
        &org.org_id,
        &id,
        patch,
        &Actor::principal(org.principal()),
    )
    .await?;
    Ok(Json(conversations::view(&c)))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

async fn list_messages(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsRead)?;
    let mut conn = state.pool.acquire().await?;
    let c = conversations::get(&mut conn, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    drop(conn);
    let before: Option<String> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = cursor::limit(q.limit);
    let mut rows =
        messages::list(&state.pool, &org.org_id, &id, before.as_deref(), limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if has_more {
        rows.last().map(|m| cursor::encode(&m.id))
    } else {
        None
    };
    Ok(Json(json!({
        "data": rows.iter().map(|m| messages::view(m, &c.channel)).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    pub name: String,
    pub language: String,
    pub components: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub content: Option<String>,
    /// `text` (default) or `template`.
    pub content_type: Option<String>,
    pub template: Option<TemplateBody>,
    /// The agent (users.id) sending; default: the API key.
    pub sender_user_id: Option<String>,
}

async fn send_message(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Json(body): Json<SendBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::MessagesWrite)?;
    let content_type = match body.content_type.as_deref() {
        None if body.template.is_some() => ContentType::Template,
        None => ContentType::Text,
        Some(t) => ContentType::parse(t)
            .ok_or_else(|| MessagingError::invalid("content_type", "text or template"))?,
    };
    let (sender_type, sender_id) = match body.sender_user_id {
        Some(user) => {
            let found: Option<(String,)> =
                sqlx::query_as("SELECT id FROM users WHERE org_id = $1 AND id = $2")
                    .bind(&org.org_id)
                    .bind(&user)
                    .fetch_optional(&state.pool)
                    .await?;
            if found.is_none() {
                return Err(MessagingError::invalid(
                    "sender_user_id",
                    "no user with this id in the organization",
                )
                .into());
            }
            (SenderType::User, Some(user))
        }
        None => match &org.actor {
            crate::auth::Actor::User { id, .. } => (SenderType::User, Some(id.clone())),
            crate::auth::Actor::ApiKey { id } => (SenderType::ApiKey, Some(id.clone())),
        },
    };
    let req = OutboundRequest {
        content_type,
        content: body.content,
        template: body.template.map(|t| TemplateSpec {
            name: t.name,
            language: t.language,
            components: t.components,
        }),
        sender_type,
        sender_id,
    };
    let (m, kind) = outbound::send(
        &state.pool,
        &org.org_id,
        &id,
        req,
        state.config.egress.policy(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(messages::view(&m, &kind))))
}

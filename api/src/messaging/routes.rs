//! REST surface of messaging under `/api/v1`: channels, conversations, messages, and the
//! WhatsApp webhook. Every handler but the webhook takes the organization from the API key;
//! another organization's ids answer 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::MessagingError;
use super::channels::{self, ChannelInput};
use super::conversations::{
    self, Actor, ConversationFilter, ConversationPatch, ConversationView, TeamFilter,
};
use super::messages::{self, MessageView};
use super::model::{ContentType, ConversationStatus, Priority, SenderType};
use super::outbound::{self, OutboundRequest, TemplateSpec};
use super::{api_channel, whatsapp};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::cursor;
use crate::http::lists::CursorPage;
use crate::http::state::AppState;
use crate::metadata_fields::parse_timestamp_ms;
use crate::permissions::Permission;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_channel, list_channels))
        .routes(routes!(get_channel, patch_channel, delete_channel))
        .routes(routes!(api_channel::post_inbound))
        .routes(routes!(api_channel::post_status))
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation, patch_conversation))
        .routes(routes!(list_messages, send_message))
        .routes(routes!(
            whatsapp::webhook::verify,
            whatsapp::webhook::receive
        ))
}

const CHANNEL_FIELDS: &str = "`kind` (`api` or `whatsapp`, required to create), `name` \
    (required to create); an API channel: `callback_url` (required), `callback_secret` (16+ \
    characters, generated when absent); a WhatsApp channel: `phone_number_id`, `verify_token`, \
    `app_secret`, `access_token` (required), `business_account_id`, `graph_base_url`.";

#[utoipa::path(
    post,
    path = "/channels",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "Create a messaging channel (API or WhatsApp)",
    request_body(content = ChannelInput, description = CHANNEL_FIELDS),
    responses(
        (status = 201, description = "The channel; an API channel's `callback_secret` is shown in this response only.", body = Object),
        (status = 409, description = "A WhatsApp channel with this `phone_number_id` exists.", body = crate::http::openapi::ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/channels",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "The organization's channels",
    responses((status = 200, description = "`{data: [channel]}` (credentials are never shown).", body = Object)),
)]
async fn list_channels(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::ChannelsManage)?;
    let rows = channels::list(&state.pool, &org.org_id).await?;
    Ok(Json(
        json!({ "data": rows.iter().map(channels::view).collect::<Vec<_>>() }),
    ))
}

#[utoipa::path(
    get,
    path = "/channels/{id}",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "A channel",
    params(("id" = String, Path, description = "The channel's id.")),
    responses((status = 200, description = "The channel (credentials are never shown).", body = Object)),
)]
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

#[utoipa::path(
    patch,
    path = "/channels/{id}",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "Change a channel's name, callback URL or credentials",
    params(("id" = String, Path, description = "The channel's id.")),
    request_body(
        content = ChannelInput,
        description = "Every field is optional; `kind`, `phone_number_id` and `callback_secret` cannot change.",
    ),
    responses((status = 200, description = "The channel as it is now.", body = Object)),
)]
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

#[utoipa::path(
    delete,
    path = "/channels/{id}",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "Delete a channel (its conversations stay)",
    params(("id" = String, Path, description = "The channel's id.")),
    responses((status = 204, description = "Deleted.")),
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListConversationsQuery {
    /// `open`, `pending`, `resolved` or `snoozed`.
    pub status: Option<String>,
    /// A user id, or `none` for unassigned conversations.
    pub assignee: Option<String>,
    /// A team id; `none` for conversations in no team; `mine` for those in any team the
    /// signed-in user is in.
    pub team: Option<String>,
    /// `voice`, `api` or `whatsapp`.
    pub channel: Option<String>,
    /// Only conversations of this channel.
    pub channel_id: Option<String>,
    /// Only conversations with this contact.
    pub contact_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Conversations a page (default 50, at most 200).
    pub limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/conversations",
    tag = crate::http::openapi::tags::CONVERSATIONS,
    summary = "List conversations, most recent first",
    params(ListConversationsQuery),
    responses((status = 200, description = "One page of conversations.", body = CursorPage<ConversationView>)),
)]
async fn list_conversations(
    State(state): State<AppState>,
    org: OrgCtx,
    Query(q): Query<ListConversationsQuery>,
) -> ApiResult<Json<CursorPage<ConversationView>>> {
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
    let team = match q.team.as_deref() {
        None => None,
        Some("none") => Some(TeamFilter::NoTeam),
        Some("mine") => Some(TeamFilter::TeamsOf(
            org.user_id()
                .ok_or_else(|| {
                    ApiError::bad_request("team=mine needs a signed-in user, not an API key")
                })?
                .to_string(),
        )),
        Some(t) => Some(TeamFilter::Team(t.to_string())),
    };
    conversations::wake_due_snoozes(&state.pool, &org.org_id).await?;
    let filter = ConversationFilter {
        status,
        assignee_id: q.assignee.map(|a| if a == "none" { None } else { Some(a) }),
        team,
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
    Ok(Json(CursorPage {
        data: rows.iter().map(conversations::view).collect(),
        next_cursor: next,
    }))
}

#[utoipa::path(
    get,
    path = "/conversations/{id}",
    tag = crate::http::openapi::tags::CONVERSATIONS,
    summary = "A conversation",
    params(("id" = String, Path, description = "The conversation's id.")),
    responses((status = 200, description = "The conversation (status, assignee, priority, labels, contact, channel...).", body = ConversationView)),
)]
async fn get_conversation(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationView>> {
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
            "team_id" => {
                p.team_id = Some(match v {
                    Value::Null => None,
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    _ => {
                        return Err(MessagingError::invalid("team_id", "a team id or null"));
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

// Documentation only: `parse_patch` reads the body by hand, because an explicit `null`
// differs from an absent field there.
/// The fields a conversation's PATCH accepts; any other field is refused (422).
#[derive(utoipa::ToSchema)]
#[schema(as = ConversationPatch)]
#[allow(dead_code)]
struct ConversationPatchDoc {
    /// `open`, `pending`, `resolved` or `snoozed`.
    status: Option<String>,
    /// With status `snoozed` (or on a snoozed conversation): RFC 3339 or Unix seconds.
    snoozed_until: Option<Value>,
    /// A user id; `null` unassigns.
    assignee_id: Option<String>,
    /// A team id (the team's queue); `null` takes the conversation out of its team.
    team_id: Option<String>,
    /// `none`, `low`, `medium`, `high` or `urgent`.
    priority: Option<String>,
    /// Replaces every label.
    labels: Option<Vec<String>>,
}

#[utoipa::path(
    patch,
    path = "/conversations/{id}",
    tag = crate::http::openapi::tags::CONVERSATIONS,
    summary = "Change a conversation's status, snooze, assignee, team, priority or labels",
    params(("id" = String, Path, description = "The conversation's id.")),
    request_body = ConversationPatchDoc,
    responses(
        (status = 200, description = "The conversation as it is now.", body = ConversationView),
        (status = 409, description = "Reopening it would give the contact a second unresolved conversation on the channel (`details.existing_id`).", body = crate::http::openapi::ErrorBody),
    ),
)]
async fn patch_conversation(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Json<ConversationView>> {
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Messages a page (default 50, at most 200).
    pub limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/conversations/{id}/messages",
    tag = crate::http::openapi::tags::CONVERSATIONS,
    summary = "A conversation's messages, newest first",
    params(("id" = String, Path, description = "The conversation's id."), PageQuery),
    responses((status = 200, description = "One page of messages.", body = CursorPage<MessageView>)),
)]
async fn list_messages(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<CursorPage<MessageView>>> {
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
    Ok(Json(CursorPage {
        data: rows.iter().map(|m| messages::view(m, &c.channel)).collect(),
        next_cursor: next,
    }))
}

/// A WhatsApp message template approved in the business account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsappTemplate)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    pub name: String,
    /// e.g. `en_US`.
    pub language: String,
    /// The template's components (parameters), as WhatsApp's API takes them.
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SendMessage)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// The text (1 to 4096 characters) of a `text` message.
    pub content: Option<String>,
    /// `text` (default) or `template`.
    pub content_type: Option<String>,
    pub template: Option<TemplateBody>,
    /// The agent (users.id) sending; default: the API key.
    pub sender_user_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/conversations/{id}/messages",
    tag = crate::http::openapi::tags::CONVERSATIONS,
    summary = "Send a message on the conversation's channel",
    description = "Text, or a WhatsApp template (`content_type: template` with `template`). \
        The sender is `sender_user_id`, else the caller.",
    params(("id" = String, Path, description = "The conversation's id.")),
    request_body = SendBody,
    responses(
        (status = 201, description = "The message.", body = MessageView),
        (status = 422, description = "Invalid, or the contact opted out of the channel (`contact_opted_out`).", body = crate::http::openapi::ErrorBody),
    ),
)]
async fn send_message(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Json(body): Json<SendBody>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
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

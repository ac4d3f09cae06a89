//! `GET /api/v1/webhooks/whatsapp` (Meta's verification handshake) and `POST` (signed
//! notifications). One URL serves every organization: `metadata.phone_number_id` names the
//! channel, and that channel's app secret must have signed the body.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ingest::{IngestError, Item};
use super::payload::{self, Change, InboundMessage};
use super::signature;
use crate::error::ApiError;
use crate::http::state::AppState;
use crate::ids::now_ms;
use crate::messaging::channels::{self, Channel};
use crate::messaging::inbound::Sender;
use crate::messaging::messages::NewMessage;
use crate::messaging::model::{DeliveryStatus, Direction, SenderType};
use crate::store::contacts::normalize_phone;

/// Meta's challenges are short numbers; anything long is not a handshake.
const MAX_CHALLENGE_CHARS: usize = 256;

/// The handshake: `hub.mode=subscribe` and a verify token some WhatsApp channel uses →
/// `hub.challenge` echoed as text/plain; anything else → 403.
#[utoipa::path(
    get,
    path = "/webhooks/whatsapp",
    operation_id = "whatsapp_webhook_verify",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "WhatsApp (Meta) webhook verification handshake",
    description = "Public: no API key. Meta proves the subscription with the verify token of a \
        WhatsApp channel; the challenge is echoed back as text.",
    security(()),
    params(
        ("hub.mode" = String, Query, description = "Must be `subscribe`."),
        ("hub.verify_token" = String, Query, description = "The `verify_token` of one of the server's WhatsApp channels."),
        ("hub.challenge" = String, Query, description = "Echoed back (at most 256 characters)."),
    ),
    responses(
        (status = 200, description = "`hub.challenge`, as text.", body = String, content_type = "text/plain"),
        (status = 403, description = "Not `subscribe`, or no channel has this verify token (`verification_failed`).", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn verify(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "verification_failed",
            "hub.mode must be subscribe and hub.verify_token must match a WhatsApp channel",
        )
    };
    let mode = q.get("hub.mode").map(String::as_str);
    let token = q.get("hub.verify_token").map(String::as_str).unwrap_or("");
    let challenge = q.get("hub.challenge").map(String::as_str).unwrap_or("");
    if mode != Some("subscribe")
        || token.is_empty()
        || challenge.is_empty()
        || challenge.chars().count() > MAX_CHALLENGE_CHARS
    {
        return Err(forbidden());
    }
    if !channels::verify_token_exists(&state.pool, token).await? {
        tracing::warn!("WhatsApp webhook verification with an unknown verify token");
        return Err(forbidden());
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge.to_string(),
    )
        .into_response())
}

/// A notification: verify, then hand it to the ingestion writer, which stores it with the
/// others waiting in one transaction (`ingest`). Answers 200 once it is committed (Meta
/// retries anything else for days), also for phone numbers we do not know.
#[utoipa::path(
    post,
    path = "/webhooks/whatsapp",
    operation_id = "whatsapp_webhook_receive",
    tag = crate::http::openapi::tags::CHANNELS,
    summary = "WhatsApp (Meta) webhook notifications: inbound messages and delivery statuses",
    description = "Public: no API key. Authenticated by `X-Hub-Signature-256`, the HMAC-SHA256 of \
        the raw body with the app secret of the channel that `metadata.phone_number_id` names; \
        nothing is stored unless every channel concerned signed it. Unknown phone numbers are \
        ignored with 200 (Meta retries anything else).",
    security(()),
    params(("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the raw body with the channel's app secret.")),
    request_body(content = Object, description = "Meta's notification (`object: whatsapp_business_account`, `entry[].changes[].value`).", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or ignored for a phone number no channel has)."),
        (status = 422, description = "One notification of the batch could not be stored (`notification_not_stored`); the others were.", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The store is unavailable (`ingest_unavailable`); Meta redelivers and nothing is stored twice.", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "The body is not a WhatsApp notification (`invalid_payload`).", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "The signature header is missing or malformed (`invalid_signature`).", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The signature does not match the body (`invalid_signature`).", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let presented = headers
        .get(signature::HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    let mac = signature::parse_header(presented).map_err(|e| {
        tracing::warn!(error = %e, "WhatsApp webhook refused");
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string())
    })?;
    let notification = payload::parse(&body)
        .map_err(|e| ApiError::bad_request(e.to_string()).with_code("invalid_payload"))?;

    // The channels this POST concerns, each looked up once (from the cache, mostly).
    let queue = &state.whatsapp_ingest;
    let mut known: HashMap<String, Arc<Channel>> = HashMap::new();
    for change in &notification.changes {
        if known.contains_key(&change.phone_number_id) {
            continue;
        }
        match queue
            .channels
            .find(&state.pool, &change.phone_number_id)
            .await?
        {
            Some(c) => {
                known.insert(change.phone_number_id.clone(), c);
            }
            None => tracing::warn!(
                phone_number_id = %change.phone_number_id,
                "WhatsApp notification for an unknown phone_number_id ignored"
            ),
        }
    }
    // Every channel concerned must have signed it; otherwise nothing is stored.
    for c in known.values() {
        let secret = c.wa_app_secret.as_deref().unwrap_or("");
        if secret.is_empty() || signature::verify(secret, &mac, &body).is_err() {
            tracing::warn!(channel = %c.id, org = %c.org_id, "WhatsApp webhook signature mismatch");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_signature",
                "X-Hub-Signature-256 does not match the body",
            ));
        }
    }
    if notification.skipped > 0 {
        tracing::warn!(
            skipped = notification.skipped,
            "WhatsApp notification items that could not be read"
        );
    }
    let items = items(&state, notification.changes, &known);
    if !items.is_empty() {
        queue.store(&state.pool, items).await.map_err(|e| match e {
            IngestError::Refused(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "notification_not_stored",
                e.to_string(),
            ),
            IngestError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ingest_unavailable",
                e.to_string(),
            ),
        })?;
    }
    Ok(StatusCode::OK.into_response())
}

/// What to store, in the notification's order, prepared here (phone numbers normalised) so
/// that work runs on the request's thread, not the single writer's.
fn items(
    state: &AppState,
    changes: Vec<Change>,
    known: &HashMap<String, Arc<Channel>>,
) -> Vec<Item> {
    let mut out = Vec::new();
    for change in changes {
        let Some(channel) = known.get(&change.phone_number_id) else {
            continue;
        };
        for m in &change.messages {
            let sender = Sender {
                source_id: m.from.clone(),
                phone_e164: normalize_phone(&format!("+{}", m.from), &state.config.default_region),
                name: change.profile_name(&m.from).map(str::to_owned),
            };
            out.push(Item::Message {
                channel: channel.clone(),
                sender,
                message: new_message(m),
            });
        }
        for report in change.statuses {
            out.push(Item::Status {
                channel: channel.clone(),
                report,
            });
        }
    }
    out
}

fn new_message(m: &InboundMessage) -> NewMessage {
    NewMessage {
        direction: Direction::Inbound,
        sender_type: SenderType::Contact,
        sender_id: None,
        content: m.text.clone(),
        content_type: m.content_type,
        attachments: m.attachments.clone(),
        attributes: m.attributes.clone(),
        status: DeliveryStatus::Received,
        external_id: Some(m.id.clone()),
        occurred_at: m
            .timestamp_s
            .and_then(|t| t.checked_mul(1000))
            .unwrap_or_else(now_ms),
    }
}

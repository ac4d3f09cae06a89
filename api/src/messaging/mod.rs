//! Messaging: conversations and messages of the API and WhatsApp Cloud API channels, on the
//! same contacts and timeline as calls.
//!
//! - [`channels`]: the inboxes an organization configures (secrets write-only).
//! - [`inbound`]: the one ingestion path (contact → conversation → message, idempotent).
//! - [`conversations`], [`messages`]: the store and the inbox workflow.
//! - [`outbound`]: sending on a conversation's channel.
//! - [`api_channel`], [`whatsapp`]: the channels' own HTTP surfaces.
//! - [`events`]: timeline rows and webhook events, in the same transaction as each change.
//!
//! docs/messaging.md describes the payloads and the configuration.

pub mod api_channel;
pub mod channels;
pub mod conversations;
pub mod events;
pub mod inbound;
pub mod interrupted;
pub mod keywords;
pub mod messages;
pub mod model;
pub mod outbound;
pub mod routes;
pub mod snooze_sweep;
pub mod whatsapp;

pub use routes::routes;

use axum::http::StatusCode;

use crate::error::ApiError;
use crate::webhooks::WebhookError;

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// Input that fails validation; `field` names the offending request field.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    /// A conflict with an existing resource whose id the caller may want.
    #[error("{0} ({1})")]
    ConflictWith(&'static str, String),
    /// The contact withdrew consent for the channel: nothing is sent or stored.
    #[error("the contact has opted out of {0} messages")]
    OptedOut(&'static str),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("webhook outbox: {0}")]
    Webhook(#[from] WebhookError),
    #[error("could not serialise: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl MessagingError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<MessagingError> for ApiError {
    fn from(e: MessagingError) -> Self {
        match e {
            MessagingError::Invalid { field, message } => {
                ApiError::validation(format!("{field}: {message}"))
                    .with_details(serde_json::json!({ "field": field, "message": message }))
            }
            MessagingError::NotFound(what) => ApiError::not_found(what),
            MessagingError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            MessagingError::ConflictWith(msg, id) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", msg)
                    .with_details(serde_json::json!({ "existing_id": id }))
            }
            MessagingError::OptedOut(channel) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "contact_opted_out",
                format!("the contact has opted out of {channel} messages"),
            )
            .with_details(serde_json::json!({ "channel": channel })),
            MessagingError::Db(e) => ApiError::internal(e),
            MessagingError::Webhook(e) => e.into(),
            MessagingError::Serialize(e) => ApiError::internal(e),
        }
    }
}

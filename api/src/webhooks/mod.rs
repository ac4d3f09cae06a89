//! Outbound webhooks: endpoints per organization, a durable outbox, signed deliveries with
//! retries and a delivery log.
//!
//! Flow: code that changes state calls [`enqueue_event`] (or [`enqueue_event_in`] inside
//! its own transaction, so the event exists if and only if the change does). That writes one
//! outbox row per active endpoint of the organization subscribed to the event. The delivery
//! worker ([`spawn_delivery_worker`]) claims due rows under a lease, POSTs the envelope
//! `{id, event, created_at, data}` signed with the endpoint secret (see [`signature`]),
//! logs every attempt, and reschedules failures with backoff until the row is `delivered`
//! or `dead`. [`redeliver`] starts a new cycle for any row. [`routes`] is the HTTP surface.

pub mod endpoints;
pub mod events;
pub mod outbox;
pub mod routes;
pub mod signature;
pub mod worker;

pub use endpoints::{
    CreatedEndpoint, Endpoint, NewEndpoint, create_endpoint, delete_endpoint, get_endpoint,
    list_endpoints,
};
pub use events::{EVENT_TYPES, subscription_matches};
pub use outbox::{
    AttemptLog, ClaimedDelivery, Delivery, DeliveryStatus, Subscribers, claim_due, enqueue_event,
    enqueue_event_in, enqueue_event_to, get_delivery, list_deliveries, redeliver,
};
pub use routes::routes;
pub use signature::{
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, SignatureError, signature_header,
    verify_signature,
};
pub use worker::{DeliveryConfig, default_http_client, run_due_once, spawn_delivery_worker};

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Input that fails validation; `field` names the offending request field.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the delivery is being attempted right now; try again when it finishes")]
    InFlight,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("could not serialise the event: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl WebhookError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Invalid { field, message } => {
                ApiError::validation(format!("{field}: {message}"))
                    .with_details(serde_json::json!({ "field": field, "message": message }))
            }
            WebhookError::NotFound(what) => ApiError::not_found(what),
            WebhookError::InFlight => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "delivery_in_flight",
                "the delivery is being attempted right now; try again when it finishes",
            ),
            WebhookError::Db(e) => ApiError::internal(e),
            WebhookError::Serialize(e) => ApiError::internal(e),
        }
    }
}

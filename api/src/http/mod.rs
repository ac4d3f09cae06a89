//! The HTTP surface (axum). One module per resource; `router` assembles them.

pub mod api_keys;
pub mod calls;
pub mod contacts;
pub mod cursor;
pub mod download;
pub mod health;
pub mod idempotency;
pub mod metrics;
pub mod rate_limit;
pub mod recording_webhook;
pub mod state;
pub mod timeline;
pub mod transcript;
pub mod upload;
pub mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use state::AppState;

pub fn router(state: AppState) -> Router {
    let upload_body_limit = usize::try_from(
        state
            .config
            .max_upload_bytes
            .saturating_add(upload::BODY_OVERHEAD_BYTES),
    )
    .unwrap_or(usize::MAX);
    let api = Router::new()
        .route(
            "/recordings",
            post(upload::upload_recording).layer(DefaultBodyLimit::max(upload_body_limit)),
        )
        .route(
            "/webhooks/call-recording",
            post(recording_webhook::call_recording),
        )
        .route(
            "/calls",
            get(calls::list_calls).post(crate::sip::http::click_to_call),
        )
        .route("/calls/{id}", get(calls::get_call))
        .route("/calls/{id}/recording", get(download::download_recording))
        .route("/calls/{id}/{file}", get(transcript::get_transcript))
        .route("/contacts/{id}", get(contacts::get_contact))
        .route("/contacts/{id}/timeline", get(timeline::contact_timeline))
        .route("/events/ws", get(crate::realtime::ws::events_socket))
        .route(
            "/conversations/{id}/timeline",
            get(timeline::conversation_timeline),
        )
        .merge(crate::sip::http::routes())
        .merge(crate::sip::recording_settings::routes())
        .merge(crate::agent::http::routes())
        .merge(crate::analysis::routes())
        .merge(api_keys::routes())
        .merge(crate::messaging::routes())
        .merge(crate::crm::routes())
        .merge(crate::retention::routes::routes())
        .merge(crate::audit::routes::routes())
        .merge(crate::analytics::routes())
        // Layers run outside-in from the last: rate limit, then idempotency, then the route.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::render))
        .nest("/api/v1", api)
        .merge(crate::webhooks::routes::<AppState>())
        // The agents' softphone page (GET / redirects to it).
        .merge(crate::web::routes::<AppState>())
        .layer(axum::middleware::from_fn(metrics::track))
        // The client's address for audit entries (crate::audit).
        .layer(axum::middleware::from_fn(crate::audit::capture_client_ip))
        // One INFO span per request (method, path) and one line per response with status and
        // latency: visible at the default log level.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

//! The HTTP surface (axum). One module per resource; `router` assembles them.

pub mod api_keys;
pub mod calls;
pub mod contacts;
pub mod cursor;
pub mod download;
pub mod error_shape;
pub mod health;
pub mod idempotency;
pub mod lists;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod recording_webhook;
pub mod state;
pub mod timeline;
pub mod transcript;
pub mod upload;
pub mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use state::AppState;

/// The routes under `/api/v1`, each registered with its documentation (see `openapi`).
/// `upload_body_limit` bounds the recording upload's body; it does not change the document.
fn api_routes(upload_body_limit: usize) -> OpenApiRouter<AppState> {
    let (schemas, paths, upload) = routes!(upload::upload_recording);
    let upload = (
        schemas,
        paths,
        upload.layer(DefaultBodyLimit::max(upload_body_limit)),
    );
    OpenApiRouter::new()
        .routes(upload)
        .routes(routes!(recording_webhook::call_recording))
        .routes(routes!(calls::list_calls, crate::sip::http::click_to_call))
        .routes(routes!(calls::get_call))
        .routes(routes!(download::download_recording))
        .routes(routes!(transcript::get_transcript))
        .routes(routes!(contacts::get_contact))
        .routes(routes!(timeline::contact_timeline))
        .routes(routes!(timeline::conversation_timeline))
        .routes(routes!(crate::realtime::ws::events_socket))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::docs_page))
        .routes(routes!(openapi::docs_script))
        .routes(routes!(openapi::docs_style))
        .merge(crate::sip::http::routes())
        .merge(crate::sip::recording_settings::routes())
        .merge(crate::agent::http::routes())
        .merge(crate::analysis::routes())
        .merge(api_keys::routes())
        .merge(crate::messaging::routes())
        .merge(crate::crm::routes())
        .merge(crate::teams::routes())
        .merge(crate::retention::routes::routes())
        .merge(crate::audit::routes::routes())
        .merge(crate::analytics::routes())
}

/// The routes outside `/api/v1`: health, metrics, webhook administration and the softphone.
fn root_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(metrics::render))
        .merge(crate::webhooks::routes())
        // The agents' softphone page (GET / redirects to it).
        .merge(crate::web::routes::<AppState>())
}

/// Every route with its documentation, as `openapi::document` describes it.
pub(crate) fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .nest("/api/v1", api_routes(usize::MAX))
        .merge(root_routes())
}

pub fn router(state: AppState) -> Router {
    let upload_body_limit = usize::try_from(
        state
            .config
            .max_upload_bytes
            .saturating_add(upload::BODY_OVERHEAD_BYTES),
    )
    .unwrap_or(usize::MAX);
    let (api, _) = api_routes(upload_body_limit).split_for_parts();
    let api = api
        // Layers run outside-in from the last: rate limit, then idempotency, then the route.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ));
    let (root, _) = root_routes().split_for_parts();
    root.nest("/api/v1", api)
        // A path nothing serves gets the API's error shape, so a client (and the route
        // coverage test) can tell "no such route" from "no such record".
        .fallback(route_not_found)
        // axum's own rejections (bad query, wrong method...) in the same `{error, code, details}`.
        .layer(axum::middleware::map_response(error_shape::uniform_errors))
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

async fn route_not_found() -> Response {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route",
    )
    .into_response()
}

//! Call analysis inside the server: what organizations configure (trackers, rules, scorecard
//! templates, settings), the models the analysers may use, running the analysis after
//! transcription or on demand, and its HTTP surface. The analysers themselves are the
//! `callscope-analysis` crate (pure functions); the models are `callscope-inference`.

pub mod config_routes;
pub mod definitions;
pub mod llm_client;
pub mod models;
pub mod review_routes;
pub mod routes;
pub mod run;
pub mod settings;

use utoipa_axum::router::OpenApiRouter;

use crate::http::state::AppState;

/// Every analysis route, to be nested under `/api/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    config_routes::routes()
        .merge(routes::routes())
        .merge(review_routes::routes())
}

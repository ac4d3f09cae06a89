//! Prometheus metrics: `GET /metrics`, plus a middleware counting requests.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::state::AppState;

pub const HTTP_REQUESTS: &str = "callscope_http_requests_total";
pub const HTTP_SECONDS: &str = "callscope_http_request_duration_seconds";
pub const JOBS_PROCESSED: &str = "callscope_jobs_processed_total";
pub const JOBS_FAILED: &str = "callscope_jobs_failed_total";
pub const JOBS_RETRIED: &str = "callscope_jobs_retried_total";
pub const QUEUE_DEPTH: &str = "callscope_queue_depth";
pub const PROCESSING_SECONDS: &str = "callscope_call_processing_seconds";
/// RTP packets the media engine sent on to the other leg of a call (relayed or transcoded).
pub const MEDIA_PACKETS_RELAYED: &str = "callscope_media_packets_relayed_total";

/// The process-wide recorder. The `metrics` facade allows one global recorder per process;
/// several servers in one test process share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                // Someone else installed a recorder: ours still renders (empty) output.
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::http::openapi::tags::SERVICE,
    summary = "Prometheus metrics",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain")),
)]
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(depth) = crate::store::jobs::queue_depth(&state.pool).await {
        metrics::gauge!(QUEUE_DEPTH).set(depth as f64);
    }
    // SIP counters are read from the server at scrape time (they live in atomics there).
    for (name, value) in state.sip.stats() {
        metrics::gauge!(format!("callscope_sip_{name}")).set(value as f64);
    }
    if let Some(engine) = state.sip.media() {
        metrics::counter!(MEDIA_PACKETS_RELAYED).absolute(engine.packets_relayed());
    }
    if let Some(pending) = state.sip.events_pending() {
        metrics::gauge!("callscope_sip_call_events_pending").set(pending as f64);
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Counts requests by route template (not raw path: ids would explode the label set).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_SECONDS, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

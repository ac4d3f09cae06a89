//! `GET /healthz`: is the database answering, and is there a speech model.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::state::{AppState, AsrState};

#[utoipa::path(
    get,
    path = "/healthz",
    tag = crate::http::openapi::tags::SERVICE,
    summary = "Liveness: database, speech model, diarization, SIP",
    security(()),
    responses(
        (status = 200, description = "Healthy.", body = Object),
        (status = 503, description = "The database does not answer.", body = Object),
    ),
)]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let db_ok = sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&state.pool)
        .await
        .is_ok();
    let asr = match &state.asr {
        AsrState::Loaded { engine } => json!({ "status": "loaded", "engine": engine.name() }),
        AsrState::NotConfigured => json!({
            "status": "not_configured",
            "message": "no ASR model configured (asr.model_path): calls end as transcription_unavailable with untranscribed speech segments"
        }),
    };
    let diarization = match &state.speaker_embedder {
        Some(e) => json!({ "clustering": "speaker_embeddings", "model": e.0.name() }),
        None => json!({ "clustering": "voice_statistics", "model": null }),
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if db_ok { "ok" } else { "degraded" },
            "database": if db_ok { "ok" } else { "unreachable" },
            "asr": asr,
            "diarization": diarization,
            "sip": {
                "enabled": state.sip.enabled(),
                "call_events_pending": state.sip.events_pending(),
                "counters": state
                    .sip
                    .stats()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect::<serde_json::Map<_, _>>(),
            },
        })),
    )
}

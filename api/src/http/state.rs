//! What every handler and worker shares.

use std::path::PathBuf;
use std::sync::Arc;

use callscope_transcription::AsrEngine;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::SqlitePool;
use tokio::sync::Notify;

use crate::auth::HasPool;
use crate::config::Config;

/// The speech engine, or why there is none (shown in `/healthz` and at start-up).
#[derive(Clone)]
pub enum AsrState {
    Loaded { engine: Arc<dyn AsrEngine> },
    NotConfigured,
}

impl AsrState {
    pub fn engine(&self) -> Option<Arc<dyn AsrEngine>> {
        match self {
            AsrState::Loaded { engine } => Some(engine.clone()),
            AsrState::NotConfigured => None,
        }
    }
}

pub struct Inner {
    pub pool: SqlitePool,
    pub config: Config,
    /// Absolute (so a restart from another working directory finds the files).
    pub recordings_dir: PathBuf,
    pub asr: AsrState,
    pub metrics: PrometheusHandle,
    /// Wakes idle workers when a job is enqueued, so they need not wait for the next poll.
    pub jobs_ready: Notify,
    /// Call control and event backlog of the SIP server, when it runs.
    pub sip: crate::sip::SipRuntime,
    /// Agents' open softphone sockets.
    pub agents: crate::agent::hub::AgentHub,
    /// Agents' presence, mirrored from the database for call routing.
    pub presence: crate::agent::presence::PresenceBoard,
    /// The calls each agent's softphone shows.
    pub agent_calls: crate::agent::calls::AgentCalls,
    /// The models call analysis may use (loaded on first use).
    pub analysis_models: crate::analysis::models::AnalysisModels,
    /// Requests per credential on `/api/v1`.
    pub rate_limiter: super::rate_limit::RateLimiter,
    /// The speaker-embedding model of the mono diarizer (`[diarization] speaker_model`).
    pub speaker_embedder: Option<callscope_transcription::diarize::EmbedderRef>,
    /// Committed events fanned out to the realtime sockets.
    pub events: Arc<crate::realtime::EventBus>,
    /// The WhatsApp webhook's group-commit writer and channel cache.
    pub whatsapp_ingest: crate::messaging::whatsapp::ingest::IngestQueue,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl HasPool for AppState {
    fn pool(&self) -> &SqlitePool {
        &self.0.pool
    }
}

impl AppState {
    /// Builds the state; creates the recordings directory and loads the configured speaker
    /// model (a configured model that cannot load is an error, not a silent fallback).
    pub fn new(pool: SqlitePool, config: Config, asr: AsrState) -> std::io::Result<Self> {
        let speaker_embedder =
            load_speaker_embedder(&config.diarization, &config).map_err(std::io::Error::other)?;
        let dir = config.recordings_dir();
        std::fs::create_dir_all(&dir)?;
        let recordings_dir = std::fs::canonicalize(&dir)?;
        std::fs::create_dir_all(recordings_dir.join(".incoming"))?;
        let analysis_models = crate::analysis::models::AnalysisModels::new(config.analysis.clone());
        let rate_limiter = super::rate_limit::RateLimiter::new(config.http.rate_limit_per_minute);
        Ok(AppState(Arc::new(Inner {
            pool,
            config,
            recordings_dir,
            asr,
            metrics: super::metrics::handle(),
            jobs_ready: Notify::new(),
            sip: crate::sip::SipRuntime::default(),
            agents: crate::agent::hub::AgentHub::default(),
            presence: crate::agent::presence::PresenceBoard::default(),
            agent_calls: crate::agent::calls::AgentCalls::default(),
            analysis_models,
            rate_limiter,
            speaker_embedder,
            events: Arc::default(),
            whatsapp_ingest: Default::default(),
        })))
    }

    /// Where uploads are written while they stream in; removed unless accepted.
    pub fn incoming_dir(&self) -> PathBuf {
        self.recordings_dir.join(".incoming")
    }
}

/// The `speaker_model` of `settings`, loaded with `[analysis] onnx_runtime`.
pub fn load_speaker_embedder(
    settings: &crate::config::DiarizationSettings,
    config: &Config,
) -> Result<Option<callscope_transcription::diarize::EmbedderRef>, String> {
    let Some(path) = settings.speaker_model.as_deref() else {
        return Ok(None);
    };
    let model = callscope_inference::OnnxSpeakerEmbedder::load(
        path,
        config.analysis.onnx_runtime.as_deref(),
    )
    .map_err(|e| format!("[diarization] speaker_model: {e}"))?;
    tracing::info!(model = %path.display(), input = ?model.input(),
        "speaker-embedding model loaded for diarization");
    Ok(Some(callscope_transcription::diarize::EmbedderRef(
        Arc::new(model),
    )))
}

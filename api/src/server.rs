//! Start-up and shutdown of the whole server: database, migrations, ASR engine, workers, HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use callscope_transcription::asr::whisper::{WhisperConfig, WhisperEngine};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::state::{AppState, AsrState};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("ASR model: {0}")]
    Asr(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sip(#[from] crate::sip::runtime::SipStartError),
}

/// A running server; dropping it does not stop it, call [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
    /// The SIP side, when `[sip] enabled`.
    pub sip: Option<crate::sip::runtime::SipHandle>,
}

impl Running {
    /// Stop accepting requests and jobs, let in-flight requests and jobs finish.
    pub async fn shutdown(self) {
        // SIP first: no new calls, and the last call events reach the database.
        if let Some(sip) = self.sip {
            sip.shutdown().await;
        }
        let _ = self.stop.send(true);
        if let Err(e) = self.http.await {
            tracing::warn!(error = %e, "HTTP task ended abnormally");
        }
        for w in self.workers {
            let _ = w.await;
        }
    }
}

/// Open (and create) the database and bring its schema up to date.
pub async fn open_database(config: &Config) -> Result<sqlx::SqlitePool, StartError> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let pool = crate::store::connect(&config.database_url()).await?;
    crate::store::migrate(&pool).await?;
    // Statistics for the query planner before the first request (see store::optimize).
    crate::store::optimize::at_start(&pool).await?;
    Ok(pool)
}

/// Load the configured whisper model, or say once that there is none.
pub async fn load_asr(config: &Config) -> Result<AsrState, StartError> {
    let Some(path) = config.asr.model_path.clone() else {
        tracing::warn!(
            "no ASR model configured (asr.model_path / CALLSCOPE_ASR_MODEL_PATH): calls will end \
             as transcription_unavailable, with speech segments but no text"
        );
        return Ok(AsrState::NotConfigured);
    };
    let wc = WhisperConfig {
        language: config.asr.language.clone(),
        threads: config.asr.threads.unwrap_or(0),
        ..WhisperConfig::default()
    };
    let engine = tokio::task::spawn_blocking(move || WhisperEngine::load(&path, wc))
        .await
        .map_err(|e| StartError::Asr(e.to_string()))?
        .map_err(|e| StartError::Asr(e.to_string()))?;
    tracing::info!(engine = %callscope_transcription::AsrEngine::name(&engine), "ASR model loaded");
    Ok(AsrState::Loaded {
        engine: Arc::new(engine),
    })
}

/// Everything up: returns once the listener is bound.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let pool = open_database(&config).await?;
    let asr = load_asr(&config).await?;
    start_with(pool, config, asr).await
}

/// Start with a given pool and engine (tests pass an ASR double here).
pub async fn start_with(
    pool: sqlx::SqlitePool,
    config: Config,
    asr: AsrState,
) -> Result<Running, StartError> {
    let listener = TcpListener::bind(config.http.addr).await?;
    let addr = listener.local_addr()?;
    let state = AppState::new(pool, config, asr)?;
    sweep_incoming(&state.incoming_dir());
    // Before anything can send: what a stop cut off is marked, not left `queued`.
    if let Err(e) = crate::messaging::interrupted::fail_interrupted_sends(&state.pool).await {
        tracing::warn!(error = %e, "checking for interrupted WhatsApp sends failed");
    }
    let (stop, stop_rx) = watch::channel(false);
    let mut workers = crate::worker::spawn_workers(state.clone(), stop_rx.clone());
    workers.extend(crate::retention::spawn_purge_worker(
        state.clone(),
        stop_rx.clone(),
    ));
    let client = crate::webhooks::default_http_client(state.config.egress.policy())
        .map_err(|e| StartError::Io(std::io::Error::other(e)))?;
    workers.push(state.events.spawn_tail(state.pool.clone(), stop_rx.clone()));
    workers.push(crate::store::optimize::spawn(
        state.pool.clone(),
        stop_rx.clone(),
    ));
    workers.push(crate::messaging::snooze_sweep::spawn(
        state.pool.clone(),
        stop_rx.clone(),
    ));
    let mut hook_stop = stop_rx.clone();
    workers.push(crate::webhooks::spawn_delivery_worker(
        state.pool.clone(),
        client,
        crate::webhooks::DeliveryConfig {
            egress: state.config.egress.policy(),
            ..Default::default()
        },
        async move {
            let _ = hook_stop.wait_for(|s| *s).await;
        },
    ));
    // Recordings of calls cut off by a crash: repaired and queued before new calls start.
    crate::sip::call_media::recover_interrupted(&state).await;
    let sip = crate::sip::runtime::start(&state).await?;
    let app = crate::http::router(state.clone());
    let mut http_stop = stop_rx;
    let http = tokio::spawn(async move {
        // The peer address reaches handlers (audit entries record it).
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await
    });
    tracing::info!(%addr, "callscope listening");
    Ok(Running {
        addr,
        state,
        stop,
        http,
        workers,
        sip,
    })
}

/// Remove partial uploads and downloads a killed process left behind. Nothing refers to
/// them: a file becomes a recording only by being moved out of `incoming/`, and a fetch job
/// that was interrupted downloads again.
fn sweep_incoming(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a partial file left by an earlier run")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove a partial file")
                }
            }
        }
    }
}

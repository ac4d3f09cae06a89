//! Retention (issue 7): per-organization periods for recordings, transcripts and insights,
//! legal holds per call, and the purge that applies them (scheduled and on demand).

pub mod call_state;
pub mod policy;
pub mod purge;
pub mod routes;

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::state::AppState;

/// The scheduled purge: every `[retention] purge_interval_s` (the first run one interval
/// after start-up, so a restart loop cannot turn into a purge loop); stops with `stop`.
/// `None` when the interval is 0 (scheduled purge off).
pub fn spawn_purge_worker(
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let interval_s = state.config.retention.purge_interval_s;
    if interval_s == 0 {
        tracing::info!("scheduled retention purge is off ([retention] purge_interval_s = 0)");
        return None;
    }
    let period = Duration::from_secs(interval_s);
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(period) => {}
            }
            let batch = state.config.retention.batch_calls;
            match purge::purge_all(&state.pool, &state.recordings_dir, batch).await {
                Ok(runs) => {
                    let purged = runs.iter().filter(|r| !r.purged.is_empty()).count();
                    tracing::debug!(
                        organizations = runs.len(),
                        purged,
                        "retention purge run done"
                    );
                }
                // The next run tries again; nothing is half-done (see purge.rs).
                Err(e) => tracing::error!(error = %e, "retention purge run failed"),
            }
        }
    }))
}

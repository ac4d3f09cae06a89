//! One task tails `event_stream` and broadcasts new rows to the open sockets.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::{broadcast, watch};

use super::log::{self, StreamEvent};
use crate::ids::now_ms;

/// How often the tail looks for new rows: the most an event waits before it is pushed.
const TAIL_EVERY: Duration = Duration::from_millis(100);
/// Rows read per look; a full batch is followed by another look at once.
const BATCH: i64 = 1_000;
/// Batches buffered per socket before a slow one is told it lagged (it then catches up from
/// the table).
const CHANNEL_BATCHES: usize = 256;
/// How long events stay replayable for reconnecting clients.
pub const REPLAY_WINDOW_MS: i64 = 24 * 3_600 * 1_000;
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub type Batch = Arc<Vec<Arc<StreamEvent>>>;

/// The fan-out point sockets subscribe to.
pub struct EventBus {
    tx: broadcast::Sender<Batch>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CHANNEL_BATCHES).0,
        }
    }
}

impl EventBus {
    pub fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.tx.subscribe()
    }

    /// Tails the table until `stop` turns true; prunes events past the replay window.
    pub fn spawn_tail(
        self: &Arc<Self>,
        pool: SqlitePool,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut last = match log::latest_seq(&pool).await {
                Ok(seq) => seq,
                Err(e) => {
                    tracing::error!(error = %e, "realtime: cannot read the event stream; sockets get no events");
                    return;
                }
            };
            let mut next_prune = tokio::time::Instant::now();
            loop {
                if tokio::time::Instant::now() >= next_prune {
                    match log::prune(&pool, now_ms() - REPLAY_WINDOW_MS).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(pruned = n, "realtime: old events pruned"),
                        Err(e) => tracing::warn!(error = %e, "realtime: pruning failed"),
                    }
                    next_prune += PRUNE_EVERY;
                }
                let full = match log::after(&pool, None, last, BATCH).await {
                    Ok(rows) => {
                        let full = rows.len() as i64 == BATCH;
                        if let Some(newest) = rows.last() {
                            last = newest.seq;
                            // No receiver is not an error: nobody is listening right now.
                            let _ = bus
                                .tx
                                .send(Arc::new(rows.into_iter().map(Arc::new).collect()));
                        }
                        full
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "realtime: reading the event stream failed");
                        false
                    }
                };
                if full {
                    continue;
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(TAIL_EVERY) => {}
                }
            }
        })
    }
}

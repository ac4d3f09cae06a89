//! Snoozed conversations reopen when their time comes, whether or not anyone is reading:
//! the `conversation.status_changed` webhook and realtime event go out on time, not at the
//! next list request.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::watch;

use super::conversations::wake_due_snoozes;
use crate::ids::now_ms;

/// How late a snooze may end at most.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
/// Organizations handled per sweep (each wakes at most 100 conversations per call).
const ORGS_PER_SWEEP: i64 = 100;

/// Wakes every organization's due snoozes once; returns how many conversations reopened.
pub async fn sweep_once(pool: &SqlitePool) -> Result<usize, super::MessagingError> {
    let orgs: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT org_id FROM conversations
         WHERE status = 'snoozed' AND snoozed_until IS NOT NULL AND snoozed_until <= $1
         LIMIT $2",
    )
    .bind(now_ms())
    .bind(ORGS_PER_SWEEP)
    .fetch_all(pool)
    .await?;
    let mut woken = 0;
    for (org_id,) in orgs {
        woken += wake_due_snoozes(pool, &org_id).await?;
    }
    Ok(woken)
}

pub fn spawn(pool: SqlitePool, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            match sweep_once(&pool).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(reopened = n, "snoozed conversations reopened"),
                Err(e) => tracing::warn!(error = %e, "waking snoozed conversations failed"),
            }
        }
    })
}

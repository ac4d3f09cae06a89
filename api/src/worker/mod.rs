//! The worker pool: `workers` tasks that claim jobs from the durable queue, run them, and
//! record the outcome. A job's lease is renewed while it runs; if the process dies, the lease
//! expires and the job is claimed again after restart.

pub mod fetch_recording;
pub mod process_call;

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::http::metrics::{JOBS_FAILED, JOBS_PROCESSED, JOBS_RETRIED};
use crate::http::state::AppState;
use crate::store::jobs::{self, Job};

/// How a job ended, decided by the job's own code.
#[derive(Debug)]
pub enum JobError {
    /// Running again cannot help (bad input, missing row): fail now.
    Permanent(String),
    /// Might work next time (I/O, database busy, remote down): retry with backoff.
    Transient(String),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Transient(format!("database: {e}"))
    }
}

/// Start the pool. Workers stop taking new jobs when `shutdown` turns true and finish the one
/// they hold (its lease covers a kill; a clean stop just finishes sooner).
pub fn spawn_workers(state: AppState, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let n = state.config.workers.max(1);
    (0..n)
        .map(|i| {
            let state = state.clone();
            let shutdown = shutdown.clone();
            let name = format!("{}-w{i}", std::process::id());
            tokio::spawn(async move { worker_loop(state, name, shutdown).await })
        })
        .collect()
}

async fn worker_loop(state: AppState, name: String, mut shutdown: watch::Receiver<bool>) {
    let lease_ms =
        i64::try_from(state.config.jobs.lease_seconds.saturating_mul(1000)).unwrap_or(60_000);
    let poll = Duration::from_millis(state.config.jobs.poll_ms.max(10));
    loop {
        if *shutdown.borrow() {
            break;
        }
        match jobs::claim(&state.pool, &name, lease_ms).await {
            Ok(Some(job)) => {
                let span = tracing::info_span!("job", job_id = %job.id, org_id = %job.org_id,
                    kind = %job.kind, attempt = job.attempts);
                run_one(&state, &name, job, lease_ms).instrument(span).await
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.jobs_ready.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = %name, error = %e, "claiming a job failed");
                tokio::time::sleep(poll).await;
            }
        }
    }
    tracing::debug!(worker = %name, "worker stopped");
}

async fn run_one(state: &AppState, worker: &str, job: Job, lease_ms: i64) {
    let started = Instant::now();

    // Renew the lease at a third of its length while the job runs.
    let heartbeat = {
        let pool = state.pool.clone();
        let (org, id, worker) = (job.org_id.clone(), job.id.clone(), worker.to_string());
        tokio::spawn(async move {
            let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1000).max(100));
            loop {
                tokio::time::sleep(every).await;
                match jobs::heartbeat(&pool, &org, &id, &worker, lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job_id = %id, "lost the job's lease");
                        break;
                    }
                    Err(e) => tracing::warn!(job_id = %id, error = %e, "lease renewal failed"),
                }
            }
        })
    };

    let outcome = match job.kind.as_str() {
        jobs::KIND_PROCESS_CALL => process_call::run(state, &job).await,
        jobs::KIND_FETCH_RECORDING => fetch_recording::run(state, &job).await,
        crate::analysis::run::KIND_ANALYZE_CALL => {
            crate::analysis::run::run_reanalysis(state, &job).await
        }
        other => Err(JobError::Permanent(format!("unknown job kind {other:?}"))),
    };
    heartbeat.abort();

    let kind = job.kind.clone();
    let result = match outcome {
        Ok(()) => {
            metrics::counter!(JOBS_PROCESSED, "kind" => kind).increment(1);
            tracing::info!(job_id = %job.id, elapsed_ms = started.elapsed().as_millis() as u64, "job done");
            jobs::complete(&state.pool, &job.org_id, &job.id).await
        }
        Err(JobError::Permanent(msg)) => {
            metrics::counter!(JOBS_FAILED, "kind" => kind).increment(1);
            tracing::warn!(job_id = %job.id, error = %msg, "job failed permanently");
            on_final_failure(state, &job, "processing_failed", &msg).await;
            jobs::fail(&state.pool, &job.org_id, &job.id, &msg).await
        }
        Err(JobError::Transient(msg)) if job.attempts >= job.max_attempts => {
            metrics::counter!(JOBS_FAILED, "kind" => kind).increment(1);
            tracing::warn!(job_id = %job.id, error = %msg, attempts = job.attempts, "job failed after its last attempt");
            let code = if job.kind == jobs::KIND_FETCH_RECORDING {
                "recording_unreachable"
            } else {
                "retries_exhausted"
            };
            on_final_failure(state, &job, code, &msg).await;
            jobs::fail(&state.pool, &job.org_id, &job.id, &msg).await
        }
        Err(JobError::Transient(msg)) => {
            metrics::counter!(JOBS_RETRIED, "kind" => kind).increment(1);
            let delay = backoff_ms(state.config.jobs.retry_base_ms, job.attempts);
            tracing::info!(job_id = %job.id, error = %msg, delay_ms = delay, "job will be retried");
            on_retry(state, &job, &msg).await;
            jobs::retry_later(&state.pool, &job.org_id, &job.id, &msg, delay).await
        }
    };
    if let Err(e) = result {
        // The lease will expire and the job run again: safe, jobs are idempotent.
        tracing::error!(job_id = %job.id, error = %e, "could not record the job's outcome");
    }
}

fn call_id_of(job: &Job) -> Option<String> {
    match job.kind.as_str() {
        jobs::KIND_PROCESS_CALL => process_call::call_id_of(job),
        jobs::KIND_FETCH_RECORDING => fetch_recording::call_id_of(job),
        _ => None,
    }
}

/// base · 2^(attempt-1), capped at 10 minutes.
pub fn backoff_ms(base_ms: u64, attempt: i64) -> i64 {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    let ms = base_ms.saturating_mul(1u64 << exp).min(600_000);
    i64::try_from(ms).unwrap_or(600_000)
}

async fn on_retry(state: &AppState, job: &Job, msg: &str) {
    if let Some(call_id) = call_id_of(job)
        && let Err(e) =
            crate::store::calls::bump_retry(&state.pool, &job.org_id, &call_id, msg).await
    {
        tracing::warn!(error = %e, "could not count the retry on the call");
    }
}

async fn on_final_failure(state: &AppState, job: &Job, code: &str, msg: &str) {
    if let Some(call_id) = call_id_of(job) {
        // A permanent failure from the pipeline has already written its own precise code.
        let already = crate::store::calls::get_call(&state.pool, &job.org_id, &call_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.status == "failed");
        if !already
            && let Err(e) =
                crate::store::calls::mark_failed(&state.pool, &job.org_id, &call_id, code, msg)
                    .await
        {
            tracing::warn!(error = %e, "could not mark the call failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(super::backoff_ms(1000, 1), 1000);
        assert_eq!(super::backoff_ms(1000, 2), 2000);
        assert_eq!(super::backoff_ms(1000, 3), 4000);
        assert_eq!(super::backoff_ms(1000, 40), 600_000);
    }
}

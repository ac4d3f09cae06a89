//! The `fetch_recording` job: download a webhook's `recording_url` (bounded by
//! `remote_fetch`), check it like an upload, attach it to the call and queue processing.
//! Network trouble is retried with backoff (at most `jobs.max_attempts` tries); a bad URL,
//! a 4xx, an oversize or undecodable file fail the call at once with the reason.

use tempfile::TempPath;

use super::JobError;
use crate::http::state::AppState;
use crate::ingest::{self, FetchRecordingPayload, IncomingFile};
use crate::remote_fetch::{FetchConfig, FetchRequest, RemoteFetcher};
use crate::store::calls;
use crate::store::jobs::{self, Job};
use crate::store::recordings;

pub fn call_id_of(job: &Job) -> Option<String> {
    serde_json::from_str::<FetchRecordingPayload>(&job.payload)
        .ok()
        .map(|p| p.call_id)
}

fn url_file_name(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    parsed
        .path_segments()?
        .next_back()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub async fn run(state: &AppState, job: &Job) -> Result<(), JobError> {
    let payload: FetchRecordingPayload = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Permanent(format!("bad job payload: {e}")))?;
    let org_id = job.org_id.as_str();
    let call = calls::get_call(&state.pool, org_id, &payload.call_id)
        .await?
        .ok_or_else(|| JobError::Permanent("the call no longer exists".into()))?;
    if recordings::get_for_call(&state.pool, org_id, &call.id)
        .await?
        .is_some()
    {
        return Ok(()); // Already attached by an earlier run.
    }

    let original_name = url_file_name(&payload.url);
    let ext = ingest::safe_extension(original_name.as_deref()).unwrap_or_else(|| "bin".into());
    let dest = state.incoming_dir().join(format!("fetch-{}.{ext}", job.id));
    let fetcher = RemoteFetcher::new(FetchConfig {
        egress: state.config.egress.policy(),
        ..FetchConfig::default()
    })
    .map_err(|e| JobError::Transient(e.to_string()))?;
    let req = FetchRequest {
        url: payload.url.clone(),
        dest: dest.clone(),
        max_bytes: state.config.max_upload_bytes,
        basic_auth: None,
    };
    let fetched = match fetcher.fetch(&req).await {
        Ok(f) => f,
        Err(e) if e.is_retryable() => {
            return Err(JobError::Transient(format!(
                "downloading the recording: {e}"
            )));
        }
        Err(e) => {
            let code = match e {
                crate::remote_fetch::FetchError::TooLarge { .. } => "payload_too_large",
                crate::remote_fetch::FetchError::Forbidden(_) => "recording_url_forbidden",
                _ => "recording_fetch_failed",
            };
            calls::mark_failed(&state.pool, org_id, &call.id, code, &e.to_string()).await?;
            return Err(JobError::Permanent(e.to_string()));
        }
    };
    // From here the file is removed unless it is attached to the call.
    let temp = TempPath::try_from_path(fetched.path.clone())
        .map_err(|e| JobError::Transient(e.to_string()))?;
    let file = IncomingFile {
        temp,
        sha256: fetched.sha256,
        size: fetched.size,
        original_name,
    };
    let probe_path = fetched.path.clone();
    let probed =
        tokio::task::spawn_blocking(move || callscope_transcription::pipeline::probe(&probe_path))
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
    let info = match probed {
        Ok(info) => info,
        Err(e) if e.is_bad_input() => {
            calls::mark_failed(&state.pool, org_id, &call.id, e.code(), &e.to_string()).await?;
            return Err(JobError::Permanent(e.to_string())); // `file` drops: removed.
        }
        Err(e) => return Err(JobError::Transient(e.to_string())),
    };

    let mut tx = state.pool.begin().await?;
    ingest::attach_and_queue(&mut tx, state, org_id, &call.id, file, &info, None)
        .await
        .map_err(|e| JobError::Transient(e.error))?;
    jobs::complete(&mut *tx, org_id, &job.id).await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    tracing::info!(call_id = %call.id, org_id, bytes = fetched.size, "recording fetched");
    Ok(())
}

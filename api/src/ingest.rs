//! Accepting a recording that is already on local disk (streamed in by an upload, or
//! downloaded from a PBX's URL): probe it, create the call (idempotently), move the file into
//! place, record it and queue processing — all or nothing.
//!
//! Rejected audio (unknown/corrupt) leaves a `failed` call row for audit, with the reason,
//! and no file: the client gets 415/422 and the operator can see what was refused.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use callscope_transcription::TranscriptionError;
use serde_json::json;
use tempfile::TempPath;

use crate::error::ApiError;
use crate::http::state::AppState;
use crate::store::calls::{self, Call, CallStatus, NewCall};
use crate::store::{jobs, recordings};

/// A file written to the incoming directory; deleted on drop unless accepted.
pub struct IncomingFile {
    pub temp: TempPath,
    pub sha256: String,
    pub size: u64,
    pub original_name: Option<String>,
}

/// A transcript that came with the recording.
pub struct IncomingTranscript {
    pub kind: TranscriptKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptKind {
    Vtt,
    Json,
}

impl TranscriptKind {
    fn ext(self) -> &'static str {
        match self {
            TranscriptKind::Vtt => "vtt",
            TranscriptKind::Json => "json",
        }
    }
}

/// The job's instructions for one call.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProcessCallPayload {
    pub call_id: String,
    #[serde(default)]
    pub transcript_path: Option<String>,
    #[serde(default)]
    pub transcript_kind: Option<TranscriptKind>,
}

pub enum Accepted {
    /// A new call, queued for processing.
    Created(Call),
    /// This organization already had a call with this external id: nothing was changed.
    Existing(Call),
}

/// HTTP status and error for audio the decoder refused.
pub fn rejection(err: &TranscriptionError) -> ApiError {
    let status = match err {
        TranscriptionError::UnsupportedFormat(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        TranscriptionError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, err.code(), err.to_string())
}

/// File-name extension worth keeping (alphanumeric, short), lowercased.
pub fn safe_extension(name: Option<&str>) -> Option<String> {
    let ext = Path::new(name?).extension()?.to_str()?;
    (ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| ext.to_ascii_lowercase())
}

pub async fn accept(
    state: &AppState,
    org_id: &str,
    new_call: NewCall,
    file: IncomingFile,
    transcript: Option<IncomingTranscript>,
) -> Result<Accepted, ApiError> {
    // Cheap early answer for the common duplicate; the insert below still decides races.
    if let Some(ext) = new_call.external_id.as_deref()
        && let Some(existing) = calls::find_by_external_id(&state.pool, org_id, ext).await?
        && !calls::is_rejected(&existing)
    {
        return Ok(Accepted::Existing(existing));
    }

    let probe_path = file.temp.to_path_buf();
    let probed =
        tokio::task::spawn_blocking(move || callscope_transcription::pipeline::probe(&probe_path))
            .await
            .map_err(ApiError::internal)?;

    let info = match probed {
        Ok(info) => info,
        Err(err) if err.is_bad_input() => {
            // Keep an audit row of the refusal; the file itself goes (TempPath drop).
            let mut conn = state.pool.acquire().await?;
            let (call, created) = calls::insert_or_existing(
                &mut conn,
                org_id,
                &new_call,
                CallStatus::Failed,
                Some((err.code(), &err.to_string())),
            )
            .await?;
            if !created && !calls::is_rejected(&call) {
                return Ok(Accepted::Existing(call));
            }
            if !created {
                // Refused again: the row keeps the latest reason.
                calls::mark_failed(&mut *conn, org_id, &call.id, err.code(), &err.to_string())
                    .await?;
            }
            tracing::info!(call_id = %call.id, org_id, code = err.code(), "recording rejected");
            return Err(rejection(&err).with_details(json!({ "call_id": call.id })));
        }
        Err(err) => return Err(ApiError::internal(err)),
    };

    let mut tx = state.pool.begin().await?;
    let (mut call, created) =
        calls::insert_or_existing(&mut tx, org_id, &new_call, CallStatus::Received, None).await?;
    if !created {
        // An earlier attempt with this external id was refused: this one takes its place.
        if !calls::revive_rejected(&mut tx, org_id, &call.id, &new_call).await? {
            return Ok(Accepted::Existing(call));
        }
        call = calls::get_call(&mut *tx, org_id, &call.id)
            .await?
            .ok_or_else(|| ApiError::not_found("call"))?;
    }

    attach_and_queue(&mut tx, state, org_id, &call.id, file, &info, transcript).await?;
    // A failed commit leaves files without rows: remove them (nothing half-stored).
    if let Err(e) = tx.commit().await {
        remove_call_files(state, org_id, &call.id).await;
        return Err(e.into());
    }
    state.jobs_ready.notify_one();
    tracing::info!(call_id = %call.id, org_id, format = %info.container, "recording accepted");
    Ok(Accepted::Created(call))
}

/// Move an accepted file into place as the call's recording and queue its processing, on the
/// caller's transaction. On error the files are removed again; the caller rolls back.
pub async fn attach_and_queue(
    conn: &mut sqlx::SqliteConnection,
    state: &AppState,
    org_id: &str,
    call_id: &str,
    file: IncomingFile,
    info: &callscope_transcription::AudioInfo,
    transcript: Option<IncomingTranscript>,
) -> Result<(), ApiError> {
    let org_dir = state.recordings_dir.join(org_id);
    tokio::fs::create_dir_all(&org_dir)
        .await
        .map_err(ApiError::internal)?;
    let ext =
        safe_extension(file.original_name.as_deref()).unwrap_or_else(|| info.container.clone());
    let final_path = org_dir.join(format!("{call_id}.{ext}"));
    let transcript_path = transcript
        .as_ref()
        .map(|t| org_dir.join(format!("{call_id}.transcript.{}", t.kind.ext())));

    let result: Result<(), ApiError> = async {
        place_files(
            file.temp,
            &final_path,
            transcript.as_ref(),
            transcript_path.as_deref(),
        )
        .await?;
        let path_text = final_path.to_string_lossy();
        recordings::insert_recording(
            &mut *conn,
            org_id,
            call_id,
            &recordings::NewRecording {
                path: &path_text,
                original_name: file.original_name.as_deref(),
                format: &info.container,
                codec: &info.codec,
                channels: i64::from(info.channels),
                sample_rate: i64::from(info.sample_rate),
                duration_ms: i64::try_from(info.duration_ms).unwrap_or(0),
                sha256: &file.sha256,
                size_bytes: i64::try_from(file.size).unwrap_or(i64::MAX),
            },
        )
        .await?;
        let payload = ProcessCallPayload {
            call_id: call_id.to_string(),
            transcript_path: transcript_path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            transcript_kind: transcript.as_ref().map(|t| t.kind),
        };
        jobs::enqueue(
            &mut *conn,
            org_id,
            jobs::KIND_PROCESS_CALL,
            &serde_json::to_value(&payload).map_err(ApiError::internal)?,
            state.config.jobs.max_attempts,
        )
        .await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        remove_quietly(&final_path).await;
        if let Some(p) = &transcript_path {
            remove_quietly(p).await;
        }
    }
    result
}

/// Remove whatever files a call has in the recordings directory.
async fn remove_call_files(state: &AppState, org_id: &str, call_id: &str) {
    let dir = state.recordings_dir.join(org_id);
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
        return;
    };
    let prefix = format!("{call_id}.");
    while let Ok(Some(e)) = entries.next_entry().await {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            remove_quietly(&e.path()).await;
        }
    }
}

async fn place_files(
    temp: TempPath,
    final_path: &Path,
    transcript: Option<&IncomingTranscript>,
    transcript_path: Option<&Path>,
) -> Result<(), ApiError> {
    let dest: PathBuf = final_path.to_path_buf();
    // Same filesystem (incoming/ is inside recordings/), so this is a rename.
    tokio::task::spawn_blocking(move || temp.persist(&dest))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(e.error))?;
    if let (Some(t), Some(p)) = (transcript, transcript_path) {
        tokio::fs::write(p, t.text.as_bytes())
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove file");
    }
}

/// The `fetch_recording` job's instructions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FetchRecordingPayload {
    pub call_id: String,
    pub url: String,
}

//! The media side of SIP calls in the store: what the engine reported when a call ended
//! (per-leg quality, DTMF digits, recording pauses), the recording it wrote (a `recordings`
//! row plus the post-call job, with the channel layout known: agent left), and recordings
//! cut off by a crash, repaired at start-up.

use std::path::{Path, PathBuf};

use callscope_media::engine::{CallMediaReport, LegSide};
use callscope_sip::rtp_media::ClosedCallMedia;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::http::state::AppState;
use crate::ids::{new_id, now_ms};
use crate::ingest::ProcessCallPayload;
use crate::store::{jobs, recordings};

pub const REPORTS_STORED: &str = "callscope_media_call_reports_total";
pub const RECORDINGS_QUEUED: &str = "callscope_media_recordings_queued_total";
pub const RECORDINGS_RECOVERED: &str = "callscope_media_recordings_recovered_total";
pub const REPORT_ERRORS: &str = "callscope_media_report_errors_total";

/// Capacity of the channel from the SIP side's ending calls to [`spawn`]'s task.
pub const REPORT_CHANNEL_CAPACITY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum CallMediaError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("recording file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn side_name(side: LegSide) -> &'static str {
    match side {
        LegSide::A => "caller",
        LegSide::B => "callee",
    }
}

/// The report as stored on `call_sip.media_json` and shown under `sip.media` in the API.
pub fn report_json(report: &CallMediaReport) -> Value {
    json!({
        "caller": report.a,
        "callee": report.b,
        "agent_leg": report.agent_side.map(side_name),
        "recorded": report.recording.is_some(),
        "recording_error": report.recording_error,
        "recording_dropped_frames": report.recording_dropped_frames,
        "recording_loss": {
            "agent": { "late_ms": report.recording_loss.late_ms[0], "overrun_ms": report.recording_loss.overrun_ms[0] },
            "customer": { "late_ms": report.recording_loss.late_ms[1], "overrun_ms": report.recording_loss.overrun_ms[1] },
        },
        "tap_drops": { "agent": report.tap_drops[0], "customer": report.tap_drops[1] },
        "events_dropped": report.events_dropped,
        "duration_ms": u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
    })
}

async fn insert_event(
    conn: &mut sqlx::SqliteConnection,
    org_id: &str,
    call_id: &str,
    kind: &str,
    offset_ms: Option<u64>,
    duration_ms: Option<u64>,
    data: &Value,
) -> Result<(), sqlx::Error> {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO call_media_events (id, org_id, call_id, kind, offset_ms, duration_ms, data, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(org_id)
    .bind(call_id)
    .bind(kind)
    .bind(offset_ms.map(clamp))
    .bind(duration_ms.map(clamp))
    .bind(data.to_string())
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// A media event as the API shows it.
#[derive(Debug, sqlx::FromRow)]
pub struct MediaEventRow {
    pub kind: String,
    pub offset_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub data: String,
    pub created_at: i64,
}

pub async fn list_events(
    pool: &SqlitePool,
    org_id: &str,
    call_id: &str,
) -> Result<Vec<Value>, sqlx::Error> {
    let rows: Vec<MediaEventRow> = sqlx::query_as(
        "SELECT kind, offset_ms, duration_ms, data, created_at FROM call_media_events
         WHERE org_id = $1 AND call_id = $2 ORDER BY offset_ms, created_at",
    )
    .bind(org_id)
    .bind(call_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut v = json!({
                "kind": r.kind,
                "offset_ms": r.offset_ms,
                "duration_ms": r.duration_ms,
            });
            if let Ok(Value::Object(data)) = serde_json::from_str::<Value>(&r.data) {
                for (k, val) in data {
                    v[k] = val;
                }
            }
            v
        })
        .collect())
}

/// Hash and size of a finished recording (read on a blocking thread: files can be large).
async fn digest(path: &Path) -> Result<(String, u64), CallMediaError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
        use std::io::Read;
        let mut file = std::fs::File::open(&owned)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok((hex::encode(hasher.finalize()), size))
    })
    .await
    .map_err(|e| CallMediaError::Other(e.to_string()))?
    .map_err(|source| CallMediaError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// What is known about a recording callscope wrote.
pub struct WrittenRecording<'a> {
    pub path: &'a Path,
    pub duration_ms: u64,
    pub recovered: bool,
}

/// Store a recording callscope wrote for a call and queue the post-call pipeline on it,
/// in one transaction. The agent is on the left channel: the layout is known, never guessed.
pub async fn attach_recording(
    state: &AppState,
    org_id: &str,
    call_id: &str,
    written: &WrittenRecording<'_>,
) -> Result<(), CallMediaError> {
    let (sha256, size) = digest(written.path).await?;
    // What the decoder sees (container, codec, rate): the same probe uploads go through, so
    // a file the pipeline cannot read fails here, before a job is queued for it.
    let probe_path = written.path.to_path_buf();
    let info =
        tokio::task::spawn_blocking(move || callscope_transcription::pipeline::probe(&probe_path))
            .await
            .map_err(|e| CallMediaError::Other(e.to_string()))?
            .map_err(|e| CallMediaError::Other(format!("recording does not decode: {e}")))?;
    // IMMEDIATE: this transaction reads before it writes. A deferred one would have to
    // upgrade its read lock, and SQLite refuses that at once (SQLITE_BUSY, no busy wait)
    // when another writer committed meanwhile, which at hangup the call record's own
    // update often has: the recording was then never attached.
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    if recordings::get_for_call(&mut *tx, org_id, call_id)
        .await?
        .is_some()
    {
        // Already attached (a report replayed after a restart): nothing to do.
        return Ok(());
    }
    let path_text = written.path.to_string_lossy();
    let recording_id = recordings::insert_recording(
        &mut *tx,
        org_id,
        call_id,
        &recordings::NewRecording {
            path: &path_text,
            original_name: None,
            format: &info.container,
            codec: &info.codec,
            channels: i64::from(info.channels),
            sample_rate: i64::from(info.sample_rate),
            duration_ms: i64::try_from(written.duration_ms).unwrap_or(i64::MAX),
            sha256: &sha256,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        },
    )
    .await?;
    if written.recovered {
        sqlx::query("UPDATE recordings SET recovered = 1 WHERE id = $1 AND org_id = $2")
            .bind(&recording_id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            org_id,
            call_id,
            "recording_recovered",
            Some(0),
            Some(written.duration_ms),
            &json!({}),
        )
        .await?;
    }
    sqlx::query(
        "UPDATE calls SET channel_layout = 'stereo_agent_left', duration_ms = COALESCE(duration_ms, $1),
            updated_at = $2 WHERE id = $3 AND org_id = $4",
    )
    .bind(i64::try_from(written.duration_ms).unwrap_or(i64::MAX))
    .bind(now_ms())
    .bind(call_id)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    let payload = ProcessCallPayload {
        call_id: call_id.to_string(),
        transcript_path: None,
        transcript_kind: None,
    };
    jobs::enqueue(
        &mut *tx,
        org_id,
        jobs::KIND_PROCESS_CALL,
        &serde_json::to_value(&payload).map_err(|e| CallMediaError::Other(e.to_string()))?,
        state.config.jobs.max_attempts,
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    metrics::counter!(RECORDINGS_QUEUED).increment(1);
    Ok(())
}

/// Store one ended call's media report.
pub async fn store_report(
    state: &AppState,
    closed: &ClosedCallMedia,
) -> Result<(), CallMediaError> {
    let call_id = closed.call_id.as_str();
    let org_id = match &closed.answered {
        Some(a) => a.org_id.clone(),
        None => match super::call_records::org_of_call(&state.pool, call_id).await? {
            Some(org) => org,
            // Never started in the store (refused before Started was applied): nothing to tie it to.
            None => return Ok(()),
        },
    };
    let report = &closed.report;
    // IMMEDIATE for the same reason as in `attach_recording`: wait for the write lock up
    // front rather than fail on a lock upgrade.
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("UPDATE call_sip SET media_json = $1 WHERE call_id = $2 AND org_id = $3")
        .bind(report_json(report).to_string())
        .bind(call_id)
        .bind(&org_id)
        .execute(&mut *tx)
        .await?;
    for digit in &report.dtmf {
        insert_event(
            &mut tx,
            &org_id,
            call_id,
            "dtmf",
            Some(digit.start_ms),
            Some(digit.duration_ms),
            &json!({
                "digit": digit.digit.to_string(),
                "leg": side_name(digit.side),
                // Played by callscope to that leg (an agent's keypad), not heard from it.
                "sent": digit.sent,
            }),
        )
        .await?;
    }
    for mute in &report.mutes {
        insert_event(
            &mut tx,
            &org_id,
            call_id,
            "muted",
            Some(mute.start_ms),
            Some(mute.end_ms.saturating_sub(mute.start_ms)),
            &json!({ "leg": side_name(mute.side) }),
        )
        .await?;
    }
    for released in &report.released_legs {
        insert_event(
            &mut tx,
            &org_id,
            call_id,
            "leg_replaced",
            Some(released.at_ms),
            None,
            &json!({ "leg": side_name(released.side), "quality": released.quality }),
        )
        .await?;
    }
    for pause in &report.pauses {
        insert_event(
            &mut tx,
            &org_id,
            call_id,
            "recording_paused",
            Some(pause.start_ms),
            Some(pause.end_ms.saturating_sub(pause.start_ms)),
            &json!({}),
        )
        .await?;
    }
    if let Some(error) = &report.recording_error {
        insert_event(
            &mut tx,
            &org_id,
            call_id,
            "recording_failed",
            None,
            None,
            &json!({ "error": error }),
        )
        .await?;
    }
    for (role, dropped) in ["agent", "customer"].iter().zip(report.tap_drops) {
        if dropped > 0 {
            insert_event(
                &mut tx,
                &org_id,
                call_id,
                "tap_overflow",
                None,
                None,
                &json!({ "role": role, "dropped_frames": dropped }),
            )
            .await?;
        }
    }
    tx.commit().await?;
    if let Some(recording) = &report.recording {
        attach_recording(
            state,
            &org_id,
            call_id,
            &WrittenRecording {
                path: &recording.path,
                duration_ms: u64::try_from(recording.duration.as_millis()).unwrap_or(u64::MAX),
                recovered: false,
            },
        )
        .await?;
    }
    record_quality_metrics(report);
    metrics::counter!(REPORTS_STORED).increment(1);
    Ok(())
}

/// Per-leg quality into /metrics: packet and loss counters, and the distribution of MOS and
/// jitter over finished legs.
fn record_quality_metrics(report: &CallMediaReport) {
    for quality in [&report.a, &report.b].into_iter().flatten() {
        metrics::counter!("callscope_media_packets_received_total")
            .increment(quality.packets_received);
        metrics::counter!("callscope_media_packets_sent_total").increment(quality.packets_sent);
        metrics::counter!("callscope_media_packets_lost_total")
            .increment(u64::try_from(quality.lost).unwrap_or(0));
        metrics::counter!("callscope_media_packets_discarded_total").increment(quality.discarded);
        metrics::histogram!("callscope_media_leg_jitter_ms").record(quality.jitter_ms);
        if let Some(mos) = quality.mos {
            metrics::histogram!("callscope_media_leg_mos").record(mos);
        }
    }
    let loss = &report.recording_loss;
    for (channel, index) in [("agent", 0), ("customer", 1)] {
        for (reason, ms) in [
            ("late", loss.late_ms[index]),
            ("overrun", loss.overrun_ms[index]),
        ] {
            if ms > 0 {
                metrics::counter!("callscope_recording_lost_ms_total", "channel" => channel, "reason" => reason)
                    .increment(ms);
            }
        }
    }
}

/// The task storing ended calls' media reports.
pub fn spawn(state: AppState, mut reports: mpsc::Receiver<ClosedCallMedia>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(closed) = reports.recv().await {
            if let Err(e) = store_report(&state, &closed).await {
                metrics::counter!(REPORT_ERRORS).increment(1);
                tracing::error!(call_id = %closed.call_id, error = %e, "cannot store the call's media report");
            }
        }
    })
}

/// Start-up: recordings still named `*.wav.part` or `*.opus.part` belong to calls that were cut off by a
/// crash. Repair each (valid header, whole frames), attach it as `recovered` and queue its
/// processing; the call record, never ended, is ended as cut off by the restart.
pub async fn recover_interrupted(state: &AppState) -> usize {
    let mut recovered = 0;
    let Ok(mut orgs) = tokio::fs::read_dir(&state.recordings_dir).await else {
        return 0;
    };
    while let Ok(Some(org_entry)) = orgs.next_entry().await {
        let org_id = org_entry.file_name().to_string_lossy().into_owned();
        if org_id.starts_with('.') {
            continue;
        }
        let Ok(mut files) = tokio::fs::read_dir(org_entry.path()).await else {
            continue;
        };
        while let Ok(Some(entry)) = files.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(call_id) = name
                .strip_suffix(".wav.part")
                .or_else(|| name.strip_suffix(".opus.part"))
            else {
                continue;
            };
            match recover_one(state, &org_id, call_id, &entry.path()).await {
                Ok(()) => recovered += 1,
                Err(e) => tracing::error!(call_id, path = %entry.path().display(), error = %e,
                    "cannot recover an interrupted recording; the file is left in place"),
            }
        }
    }
    if recovered > 0 {
        tracing::info!(
            recovered,
            "recovered recordings of calls cut off by a restart"
        );
    }
    recovered
}

async fn recover_one(
    state: &AppState,
    org_id: &str,
    call_id: &str,
    part: &Path,
) -> Result<(), CallMediaError> {
    // Only files of calls this organization really has: a stray file changes nothing.
    if super::call_records::org_of_call(&state.pool, call_id)
        .await?
        .as_deref()
        != Some(org_id)
    {
        return Err(CallMediaError::Other(
            "no such call in this organization".into(),
        ));
    }
    let part_owned = part.to_path_buf();
    let report =
        tokio::task::spawn_blocking(move || callscope_media::recorder::repair(&part_owned))
            .await
            .map_err(|e| CallMediaError::Other(e.to_string()))?
            .map_err(|e| CallMediaError::Other(e.to_string()))?;
    let now = now_ms();
    sqlx::query(
        "UPDATE call_sip SET state = 'ended', end_at = COALESCE(end_at, $1), hangup_side = COALESCE(hangup_side, 'system'),
            hangup_cause = COALESCE(hangup_cause, 'server_restart'), updated_at = $1
         WHERE call_id = $2 AND org_id = $3 AND state <> 'ended'",
    )
    .bind(now)
    .bind(call_id)
    .bind(org_id)
    .execute(&state.pool)
    .await?;
    attach_recording(
        state,
        org_id,
        call_id,
        &WrittenRecording {
            path: &report.path,
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            recovered: true,
        },
    )
    .await?;
    metrics::counter!(RECORDINGS_RECOVERED).increment(1);
    Ok(())
}

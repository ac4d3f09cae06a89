//! The `process_call` job: run the transcription pipeline on a call's recording and store
//! the result. Safe to run any number of times: segments are replaced (not appended) in the
//! same transaction that records the outcome, the conversation is reused, the timeline event
//! is an upsert, and the job is marked done in that transaction too.

use std::path::PathBuf;
use std::time::Instant;

use callscope_transcription::pipeline::{self, PipelineOptions};
use callscope_transcription::{
    AsrOutcome, ChannelLayout, PipelineOutput, Segment, SpeakerRole, Utterance, import,
};
use serde_json::json;
use sqlx::SqliteConnection;

use super::JobError;
use crate::http::metrics::PROCESSING_SECONDS;
use crate::http::state::AppState;
use crate::http::views;
use crate::ids::now_ms;
use crate::ingest::ProcessCallPayload;
use crate::store::calls::{self, Call, CallStatus};
use crate::store::contacts::{self, normalize_phone};
use crate::store::jobs::{self, Job};
use crate::store::{recordings, segments, timeline};

pub const CALL_PROCESSED: &str = "call.processed";

pub fn call_id_of(job: &Job) -> Option<String> {
    serde_json::from_str::<ProcessCallPayload>(&job.payload)
        .ok()
        .map(|p| p.call_id)
}

fn layout_of(call: &Call) -> ChannelLayout {
    match call.channel_layout.as_str() {
        "stereo_agent_left" => ChannelLayout::StereoAgentLeft,
        "stereo_agent_right" => ChannelLayout::StereoAgentRight,
        _ => ChannelLayout::Mono,
    }
}

/// The end state a pipeline outcome means for the call.
pub fn final_status(outcome: AsrOutcome) -> CallStatus {
    match outcome {
        AsrOutcome::Transcribed | AsrOutcome::Imported => CallStatus::Completed,
        AsrOutcome::Unavailable => CallStatus::TranscriptionUnavailable,
        AsrOutcome::NoSpeech => CallStatus::Silent,
    }
}

fn outcome_name(outcome: AsrOutcome) -> &'static str {
    match outcome {
        AsrOutcome::Transcribed => "transcribed",
        AsrOutcome::Unavailable => "unavailable",
        AsrOutcome::Imported => "imported",
        AsrOutcome::NoSpeech => "no_speech",
    }
}

pub async fn run(state: &AppState, job: &Job) -> Result<(), JobError> {
    let payload: ProcessCallPayload = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Permanent(format!("bad job payload: {e}")))?;
    let org_id = job.org_id.as_str();
    let call = calls::get_call(&state.pool, org_id, &payload.call_id)
        .await?
        .ok_or_else(|| JobError::Permanent("the call no longer exists".into()))?;
    let recording = recordings::get_for_call(&state.pool, org_id, &call.id)
        .await?
        .ok_or_else(|| JobError::Permanent("the call has no recording".into()))?;
    calls::set_status(&state.pool, org_id, &call.id, CallStatus::Transcribing).await?;

    let transcript = match &payload.transcript_path {
        Some(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| JobError::Transient(format!("reading the stored transcript: {e}")))?;
            match import::parse(&bytes) {
                Ok(t) => Some(t),
                Err(e) => return fail_call(state, org_id, &call.id, &e).await,
            }
        }
        None => None,
    };

    let opts = PipelineOptions {
        layout: layout_of(&call),
        language: call
            .language
            .clone()
            .or_else(|| state.config.asr.language.clone()),
        diarize: Some(state.config.diarization.params()),
        speaker_embedder: state.speaker_embedder.clone(),
        ..Default::default()
    };
    let engine = state.asr.engine();
    let path = PathBuf::from(&recording.path);
    let started = Instant::now();
    // Decoding and ASR are CPU-bound and blocking: keep them off the async runtime.
    let result = tokio::task::spawn_blocking(move || {
        let align = |u: &[Utterance]| -> Vec<Segment> {
            match &transcript {
                Some(t) => import::align(t, u),
                None => Vec::new(),
            }
        };
        let aligner: Option<pipeline::TranscriptAligner<'_>> = if transcript.is_some() {
            Some(&align)
        } else {
            None
        };
        pipeline::run_file(&path, &opts, engine.as_deref(), aligner, &mut |_| {})
    })
    .await
    .map_err(|e| JobError::Transient(format!("pipeline task: {e}")))?;

    let output = match result {
        Ok(out) => out,
        Err(e) if e.is_bad_input() => return fail_call(state, org_id, &call.id, &e).await,
        Err(e) => return Err(JobError::Transient(e.to_string())),
    };
    metrics::histogram!(PROCESSING_SECONDS).record(started.elapsed().as_secs_f64());

    calls::set_status(&state.pool, org_id, &call.id, CallStatus::Analyzing).await?;
    let turns = crate::analysis::run::turns_from_segments(&output.segments);
    let (analysed, settings) = crate::analysis::run::analyze(
        state,
        org_id,
        &call,
        turns.clone(),
        Some(output.info.duration_ms),
    )
    .await?;
    let mut output = output;
    // The stored transcript is the redacted one (no card numbers at rest).
    crate::analysis::run::redact_segments(&mut output.segments, &analysed.redacted_turns);

    let mut tx = state.pool.begin().await?;
    store_outcome(&mut tx, state, org_id, &call, &output).await?;
    crate::analysis::run::store(&mut tx, org_id, &call.id, &analysed, &settings, &turns).await?;
    let items = &analysed.analysis.action_items;
    crate::crm::action_tasks::on_analysis_stored(&mut tx, org_id, &call.id, items).await?;
    jobs::complete(&mut *tx, org_id, &job.id).await?;
    tx.commit().await?;
    tracing::info!(call_id = %call.id, org_id, segments = output.segments.len(),
        outcome = outcome_name(output.asr), "call processed");
    // The measured length is known now (a webhook's call had only the PBX's claim).
    crate::analytics::quota::announce_after_intake(&state.pool, org_id).await;
    Ok(())
}

/// Bad input found while processing: the call is `failed` with the pipeline's reason.
async fn fail_call(
    state: &AppState,
    org_id: &str,
    call_id: &str,
    e: &callscope_transcription::TranscriptionError,
) -> Result<(), JobError> {
    calls::mark_failed(&state.pool, org_id, call_id, e.code(), &e.to_string()).await?;
    Err(JobError::Permanent(e.to_string()))
}

async fn store_outcome(
    conn: &mut SqliteConnection,
    state: &AppState,
    org_id: &str,
    call: &Call,
    output: &PipelineOutput,
) -> Result<(), JobError> {
    segments::replace_for_call(conn, org_id, &call.id, &output.segments).await?;
    recordings::set_measured_duration(
        &mut *conn,
        org_id,
        &call.id,
        i64::try_from(output.info.duration_ms).unwrap_or(i64::MAX),
    )
    .await?;

    let contact = match call
        .customer_phone
        .as_deref()
        .and_then(|p| normalize_phone(p, &state.config.default_region))
    {
        Some(phone) => Some(contacts::find_or_create_by_phone(conn, org_id, &phone).await?),
        None => None,
    };
    let contact_id = contact.as_ref().map(|c| c.id.as_str());
    let occurred_at = call.started_at.unwrap_or(call.created_at);
    // A re-run keeps the conversation the first run created.
    let conversation_id = match &call.conversation_id {
        Some(id) => id.clone(),
        None => contacts::create_voice_conversation(conn, org_id, contact_id, occurred_at).await?,
    };
    let status = final_status(output.asr);
    calls::finish(
        &mut *conn,
        org_id,
        &call.id,
        &calls::Finish {
            status,
            asr_outcome: outcome_name(output.asr),
            language: None,
            contact_id,
            conversation_id: Some(&conversation_id),
        },
    )
    .await?;

    let updated = calls::get_call(&mut *conn, org_id, &call.id)
        .await?
        .ok_or_else(|| JobError::Permanent("the call vanished".into()))?;
    let event = call_processed_payload(&updated, output);
    timeline::record_event(
        conn,
        org_id,
        &timeline::NewEvent {
            contact_id,
            conversation_id: Some(&conversation_id),
            kind: CALL_PROCESSED,
            ref_id: &call.id,
            payload: &event,
            occurred_at,
        },
    )
    .await?;
    // The one place `call.processed` is sent: in this transaction, so the webhook exists if
    // and only if the outcome does (and a re-run after a crash cannot send it twice).
    crate::webhooks::enqueue_event_in(conn, org_id, CALL_PROCESSED, event)
        .await
        .map_err(|e| JobError::Transient(format!("queueing call.processed: {e}")))?;
    Ok(())
}

/// The `call.processed` body (timeline payload and webhook data).
pub fn call_processed_payload(call: &Call, output: &PipelineOutput) -> serde_json::Value {
    let talk_ms = |role: SpeakerRole| -> u64 {
        output
            .segments
            .iter()
            .filter(|s| s.role == role)
            .map(|s| s.end_ms.saturating_sub(s.start_ms))
            .sum()
    };
    json!({
        "call": views::call(call),
        "recording_duration_ms": output.info.duration_ms,
        "segments": output.segments.len(),
        "talk_time_ms": {
            "agent": talk_ms(SpeakerRole::Agent),
            "customer": talk_ms(SpeakerRole::Customer),
            "unknown": talk_ms(SpeakerRole::Unknown),
        },
        "processed_at": crate::ids::ms_to_rfc3339(now_ms()),
    })
}

//! Live talk turns of answered calls: the media engine's taps (16 kHz per role) go through the
//! transcription crate's live utterance finder, and each finished turn is stored at once as a
//! `utterance` media event, so `GET /api/v1/calls/{id}` shows who spoke when while the call
//! is still up. This is the live end of the taps; live transcription builds on it.
//!
//! Off by default (`[sip.media] live_utterances`): the VAD costs CPU per call that a plain
//! recording server does not need.

use callscope_media::engine::TapFrame;
use callscope_media::recorder::Channel;
use callscope_sip::media::AnsweredCall;
use callscope_sip::rtp_media::LiveAudioSink;
use callscope_transcription::SpeakerRole;
use callscope_transcription::live::{LiveUtterance, LiveUtterances};
use callscope_transcription::pipeline::PipelineOptions;
use serde_json::json;
use tokio::sync::mpsc;

use crate::http::state::AppState;
use crate::ids::{new_id, now_ms};

pub const LIVE_UTTERANCES: &str = "callscope_live_utterances_total";

pub struct LiveUtteranceSink {
    state: AppState,
}

impl LiveUtteranceSink {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn role_of(channel: Channel) -> SpeakerRole {
    match channel {
        Channel::Agent => SpeakerRole::Agent,
        Channel::Customer => SpeakerRole::Customer,
    }
}

async fn store(state: &AppState, org_id: &str, call_id: &str, turns: &[LiveUtterance]) {
    for turn in turns {
        let role = match turn.role {
            SpeakerRole::Agent => "agent",
            SpeakerRole::Customer => "customer",
            SpeakerRole::Unknown => "unknown",
        };
        let result = sqlx::query(
            "INSERT INTO call_media_events (id, org_id, call_id, kind, offset_ms, duration_ms, data, created_at)
             VALUES ($1, $2, $3, 'utterance', $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(org_id)
        .bind(call_id)
        .bind(i64::try_from(turn.start_ms).unwrap_or(i64::MAX))
        .bind(i64::try_from(turn.end_ms.saturating_sub(turn.start_ms)).unwrap_or(i64::MAX))
        .bind(json!({ "role": role, "live": true }).to_string())
        .bind(now_ms())
        .execute(&state.pool)
        .await;
        match result {
            Ok(_) => metrics::counter!(LIVE_UTTERANCES).increment(1),
            Err(e) => tracing::warn!(call_id, error = %e, "cannot store a live utterance"),
        }
    }
}

async fn run(state: AppState, org_id: String, call_id: String, mut taps: mpsc::Receiver<TapFrame>) {
    let opts = PipelineOptions::default();
    let mut live = LiveUtterances::new(opts.vad, opts.segment);
    let mut turns = Vec::new();
    while let Some(frame) = taps.recv().await {
        live.push(
            role_of(frame.role),
            frame.start_ms,
            &frame.samples,
            &mut turns,
        );
        if !turns.is_empty() {
            store(&state, &org_id, &call_id, &turns).await;
            turns.clear();
        }
    }
    // The call ended (the engine dropped the tap): close the turns still open.
    live.finish(&mut turns);
    store(&state, &org_id, &call_id, &turns).await;
}

impl LiveAudioSink for LiveUtteranceSink {
    fn call_answered(&self, call_id: &str, call: &AnsweredCall, taps: mpsc::Receiver<TapFrame>) {
        tokio::spawn(run(
            self.state.clone(),
            call.org_id.clone(),
            call_id.to_string(),
            taps,
        ));
    }
}

//! The whole pipeline with the real whisper engine (whisper.cpp inference on a generated
//! random-weight model): every ASR segment must land on the recording's timeline, inside the
//! VAD utterance it was transcribed from, on the right channel and role. The model's words are
//! nonsense, so this checks times and structure, not text.

mod common;
#[path = "support/model_gen.rs"]
mod model_gen;

use callscope_transcription::asr::{WhisperConfig, WhisperEngine};
use callscope_transcription::pipeline::{PipelineOptions, run_file, run_file_utterances};
use callscope_transcription::{AsrOutcome, ChannelLayout, SpeakerRole};

#[test]
fn whisper_segments_map_onto_the_recording_timeline() {
    common::require_tool("espeak-ng");
    let call = common::scripted_call();
    let (_model_dir, model) = model_gen::random_model_in_tempdir();
    let engine = WhisperEngine::load(
        &model,
        WhisperConfig {
            threads: 1,
            ..WhisperConfig::default()
        },
    )
    .expect("the generated model loads");
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentLeft,
        language: Some("en".into()),
        ..Default::default()
    };

    let (_, utterances) = run_file_utterances(&call.master, &opts, &mut |_| {}).expect("VAD pass");
    let mut transcribing_reports = 0;
    let out = run_file(&call.master, &opts, Some(&engine), None, &mut |p| {
        if matches!(p, callscope_transcription::Progress::Transcribing { .. }) {
            transcribing_reports += 1;
        }
    })
    .expect("pipeline with whisper");

    assert_eq!(out.asr, AsrOutcome::Transcribed);
    assert_eq!(
        transcribing_reports,
        utterances.len(),
        "one ASR call per utterance"
    );
    assert!(
        !out.segments.is_empty(),
        "whisper returned no segment for any of {} utterances",
        utterances.len()
    );
    for seg in &out.segments {
        assert!(
            seg.end_ms <= call.duration_ms,
            "{seg:?} ends after the call ({} ms)",
            call.duration_ms
        );
        let expected_role = if seg.channel == 0 {
            SpeakerRole::Agent
        } else {
            SpeakerRole::Customer
        };
        assert_eq!(seg.role, expected_role, "{seg:?}");
        let host = utterances.iter().find(|u| {
            u.channel == seg.channel && u.start_ms <= seg.start_ms && seg.end_ms <= u.end_ms
        });
        assert!(
            host.is_some(),
            "{seg:?} is not inside any VAD utterance of its channel: {utterances:?}"
        );
        assert!(
            seg.text.as_deref().is_some_and(|t| !t.trim().is_empty()),
            "{seg:?} has no text"
        );
    }
    // Segments come out merged over channels in time order.
    assert!(
        out.segments
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms)
    );
    // Both speakers were transcribed (the script has three turns each).
    for channel in [0u16, 1] {
        assert!(
            out.segments.iter().any(|s| s.channel == channel),
            "no segment on channel {channel}"
        );
    }
}

//! The full pipeline: roles, outcomes and ASR time mapping (with a scripted ASR double, since
//! no speech model exists on test machines).

mod common;

use std::sync::Mutex;

use callscope_transcription::pipeline::{PipelineOptions, run_file, run_file_utterances};
use callscope_transcription::*;
use common::*;

/// Test double for a speech model: for each call returns one segment at fixed offsets into
/// the audio it was given (one ending past the audio, to exercise clamping) and records what
/// it was handed.
struct ScriptedAsrDouble {
    calls: Mutex<Vec<(usize, f32)>>,
}

const ASR_START_MS: u64 = 300;

impl AsrEngine for ScriptedAsrDouble {
    fn name(&self) -> &str {
        "scripted-asr-double"
    }
    fn transcribe(&self, audio_16k: &[f32], language: Option<&str>) -> Result<Vec<AsrSegment>> {
        assert_eq!(language, Some("en"));
        let peak = audio_16k.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        let mut calls = self.calls.lock().unwrap();
        calls.push((audio_16k.len(), peak));
        let len_ms = audio_16k.len() as u64 / 16;
        Ok(vec![AsrSegment {
            start_ms: ASR_START_MS,
            end_ms: len_ms + 5_000,
            text: format!(" utterance {} ", calls.len()),
            confidence: Some(0.9),
            words: vec![Word {
                text: "utterance".into(),
                start_ms: ASR_START_MS,
                end_ms: ASR_START_MS + 400,
                probability: Some(0.9),
            }],
        }])
    }
}

#[test]
fn asr_times_map_back_onto_the_recording() {
    let call = scripted_call();
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentLeft,
        language: Some("en".into()),
        ..Default::default()
    };
    let asr = ScriptedAsrDouble {
        calls: Mutex::new(Vec::new()),
    };
    let mut transcribing = Vec::new();
    let out = run_file(&call.master, &opts, Some(&asr), None, &mut |p| {
        if let Progress::Transcribing { done, total } = p {
            transcribing.push((done, total));
        }
    })
    .expect("pipeline");
    assert_eq!(out.asr, AsrOutcome::Transcribed);
    assert_eq!(out.segments.len(), call.turns.len(), "{:?}", out.segments);
    assert_eq!(transcribing.len(), call.turns.len());
    assert_eq!(transcribing.last().map(|p| p.0), Some(call.turns.len()));

    let calls = asr.calls.lock().unwrap();
    let mut turns = call.turns.clone();
    turns.sort_by_key(|t| t.start_ms);
    for (seg, turn) in out.segments.iter().zip(&turns) {
        assert_eq!(seg.channel, turn.channel);
        assert_eq!(
            seg.speaker_label,
            if turn.channel == 0 {
                "Agent"
            } else {
                "Customer"
            }
        );
        assert!(
            seg.text
                .as_deref()
                .is_some_and(|t| t.starts_with("utterance ")),
            "{seg:?}"
        );
        // The engine saw padded audio starting 200 ms before the speech, so its 300 ms lands
        // 100 ms after the turn start on the recording's timeline.
        let expected_start = turn.start_ms + ASR_START_MS - 200;
        assert!(
            seg.start_ms.abs_diff(expected_start) <= 250,
            "segment {seg:?} for turn {turn:?}: expected start ≈ {expected_start}"
        );
        // The end the engine claimed is past the audio: clamped to the utterance end.
        assert!(
            seg.end_ms.abs_diff(turn.end_ms) <= 250,
            "segment {seg:?} turn {turn:?}"
        );
        assert!(seg.end_ms <= call.duration_ms);
        let w = &seg.words[0];
        assert!(
            w.start_ms == seg.start_ms && w.end_ms > w.start_ms && w.end_ms <= seg.end_ms,
            "{w:?}"
        );
    }
    // Each utterance's audio is the turn (± padding) and holds speech, not silence.
    for (len, peak) in calls.iter() {
        assert!(*len <= 30 * 16_000);
        assert!(*peak > 0.05, "ASR got near-silent audio (peak {peak})");
    }
    // Segments are in time order across both channels.
    assert!(
        out.segments
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms)
    );
}

#[test]
fn without_asr_segments_carry_talk_time_only() {
    let call = scripted_call();
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentLeft,
        ..Default::default()
    };
    let out = run_file(&call.master, &opts, None, None, &mut |_| {}).expect("pipeline");
    assert_eq!(out.asr, AsrOutcome::Unavailable);
    assert_eq!(out.segments.len(), call.turns.len());
    assert!(
        out.segments
            .iter()
            .all(|s| s.text.is_none() && s.words.is_empty())
    );
    let agent = out
        .segments
        .iter()
        .filter(|s| s.role == SpeakerRole::Agent)
        .count();
    assert_eq!(agent, 3);
}

#[test]
fn mono_layout_without_diarization_gives_one_unknown_speaker() {
    let call = scripted_call();
    // The stereo master down-mixed by the mono layout: turns alternate, so they separate.
    // Speaker clustering (on by default, tested in tests/diarize.rs) is switched off here.
    let opts = PipelineOptions {
        diarize: None,
        ..Default::default()
    };
    let out = run_file(&call.master, &opts, None, None, &mut |_| {}).expect("pipeline");
    assert_eq!(out.info.channels, 2);
    assert!(!out.segments.is_empty());
    assert!(out.segments.iter().all(|s| s.channel == 0
        && s.role == SpeakerRole::Unknown
        && s.speaker_label == "Speaker 1"));
}

#[test]
fn silence_is_no_speech() {
    let call = scripted_call();
    let silent = call.dir.join("silence.wav");
    run(std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "2"])
        .arg(&silent)
        .args(["trim", "0", "3"]));
    let asr = ScriptedAsrDouble {
        calls: Mutex::new(Vec::new()),
    };
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentLeft,
        language: Some("en".into()),
        ..Default::default()
    };
    let out = run_file(&silent, &opts, Some(&asr), None, &mut |_| {}).expect("pipeline");
    assert_eq!(out.asr, AsrOutcome::NoSpeech);
    assert!(out.segments.is_empty());
    assert_eq!(out.info.duration_ms, 3000);
    assert!(
        asr.calls.lock().unwrap().is_empty(),
        "ASR must not run on silence"
    );
}

#[test]
fn imported_transcript_aligner_replaces_asr() {
    let call = scripted_call();
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentLeft,
        ..Default::default()
    };
    let (_, utterances) =
        run_file_utterances(&call.master, &opts, &mut |_| {}).expect("utterances");
    let asr = ScriptedAsrDouble {
        calls: Mutex::new(Vec::new()),
    };
    let aligner = |utts: &[Utterance]| -> Vec<Segment> {
        utts.iter()
            .map(|u| Segment {
                channel: u.channel,
                role: u.role,
                speaker_label: "from transcript".into(),
                start_ms: u.start_ms,
                end_ms: u.end_ms,
                text: Some("imported".into()),
                confidence: None,
                words: Vec::new(),
            })
            .collect()
    };
    let out =
        run_file(&call.master, &opts, Some(&asr), Some(&aligner), &mut |_| {}).expect("pipeline");
    assert_eq!(out.asr, AsrOutcome::Imported);
    assert!(
        asr.calls.lock().unwrap().is_empty(),
        "ASR must be skipped with a transcript"
    );
    assert_eq!(out.segments.len(), utterances.len());
    assert!(
        out.segments
            .iter()
            .zip(&utterances)
            .all(|(s, u)| s.start_ms == u.start_ms && s.text.as_deref() == Some("imported"))
    );
}

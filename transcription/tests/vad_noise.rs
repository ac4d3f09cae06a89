//! The VAD's energy gate on a noisy line: pink noise at −40 dBFS (made with sox) under the
//! scripted call must not lose or shift any turn, and the model must be skipped on most of the
//! noise-only frames (that is what the gate is for).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use callscope_transcription::pipeline::{PipelineOptions, run_file_utterances};
use callscope_transcription::vad::{EarshotScorer, SpeechScorer, VadParams, VadStream};
use callscope_transcription::{ChannelLayout, Utterance};
use common::*;

const TURN_TOLERANCE_MS: i64 = 250;
const NOISE_DBFS: f64 = -40.0;

/// The real earshot model, counting how often it is asked.
struct CountingEarshot {
    inner: EarshotScorer,
    calls: Arc<AtomicUsize>,
}

impl SpeechScorer for CountingEarshot {
    fn frame_len(&self) -> usize {
        self.inner.frame_len()
    }
    fn score(&mut self, frame: &[f32]) -> f32 {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.score(frame)
    }
    fn reset(&mut self) {
        self.inner.reset()
    }
}

fn rms_of(path: &Path) -> f64 {
    let out = Command::new("sox")
        .arg(path)
        .args(["-n", "stat"])
        .output()
        .expect("run sox stat");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find(|l| l.starts_with("RMS     amplitude"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no RMS in sox stat output: {text}"))
}

/// The scripted call with stereo pink noise at −40 dBFS RMS mixed under both channels.
fn noisy_call(call: &ScriptedCall, tag: &str) -> std::path::PathBuf {
    let raw_noise = call.dir.join(format!("pink_raw_{tag}.wav"));
    let noise = call.dir.join(format!("pink_m40_{tag}.wav"));
    let noisy = call.dir.join(format!("noisy_call_{tag}.wav"));
    let secs = format!("{:.3}", call.duration_ms as f64 / 1000.0);
    // -R: repeatable noise, so a failure can be reproduced.
    run(Command::new("sox")
        .args(["-R", "-n", "-r", "16000", "-b", "16", "-c", "2"])
        .arg(&raw_noise)
        .args(["synth", &secs, "pinknoise", "vol", "0.3"]));
    let gain_db = NOISE_DBFS - 20.0 * rms_of(&raw_noise).log10();
    run(Command::new("sox")
        .arg(&raw_noise)
        .arg(&noise)
        .args(["gain", &format!("{gain_db:.2}")]));
    let level = 20.0 * rms_of(&noise).log10();
    assert!((level - NOISE_DBFS).abs() < 1.0, "noise at {level:.1} dBFS");
    run(Command::new("sox")
        .args(["-m", "-v", "1"])
        .arg(&call.master)
        .args(["-v", "1"])
        .arg(&noise)
        .arg(&noisy));
    noisy
}

fn assert_turns(turns: &[Turn], utterances: &[Utterance]) {
    for channel in 0..2u16 {
        let expected: Vec<&Turn> = turns.iter().filter(|t| t.channel == channel).collect();
        let found: Vec<&Utterance> = utterances.iter().filter(|u| u.channel == channel).collect();
        assert_eq!(
            found.len(),
            expected.len(),
            "channel {channel}: expected {expected:?}, found {found:?}"
        );
        for (t, u) in expected.iter().zip(&found) {
            let ds = u.start_ms as i64 - t.start_ms as i64;
            let de = u.end_ms as i64 - t.end_ms as i64;
            assert!(
                ds.abs() <= TURN_TOLERANCE_MS && de.abs() <= TURN_TOLERANCE_MS,
                "channel {channel}: turn {t:?} found as {u:?} ({ds} ms, {de} ms)"
            );
        }
    }
}

#[test]
fn gate_keeps_every_turn_under_pink_noise() {
    require_tool("sox");
    let call = scripted_call();
    let noisy = noisy_call(call, "pipeline");
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentLeft,
        ..Default::default()
    };
    let (_, utterances) = run_file_utterances(&noisy, &opts, &mut |_| {}).expect("pipeline");
    assert_turns(&call.turns, &utterances);
}

#[test]
fn gate_skips_the_model_on_noise_only_frames() {
    require_tool("sox");
    let call = scripted_call();
    let noisy = noisy_call(call, "count");
    let mut reader = hound::WavReader::open(&noisy).expect("open noisy wav");
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect();
    // Left channel (agent) only. Noise-only frames: more than 300 ms from any of its turns,
    // and after the first 6 s (the floor tracker climbs from −54 dBFS at ≈ 3 dB/s).
    let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
    let turns: Vec<&Turn> = call.turns.iter().filter(|t| t.channel == 0).collect();
    let noise_only = |ms: u64| {
        ms > 6_000
            && turns
                .iter()
                .all(|t| ms + 300 < t.start_ms || ms > t.end_ms + 300)
    };

    // (model calls on noise-only frames, noise-only frames, frames decided as speech)
    let count_calls = |params: VadParams| {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut vad = VadStream::new(
            CountingEarshot {
                inner: EarshotScorer::default(),
                calls: Arc::clone(&calls),
            },
            params,
        );
        let (mut seen, mut noise_calls, mut noise_frames, mut speech_frames) = (0, 0, 0, 0);
        vad.push(&left, &mut |d, _| {
            let now = calls.load(Ordering::Relaxed);
            if noise_only(d.start_sample / 16) {
                noise_frames += 1;
                noise_calls += now - seen;
            }
            seen = now;
            speech_frames += usize::from(d.speech);
        });
        (noise_calls, noise_frames, speech_frames)
    };
    let (gated_calls, noise_frames, gated_speech) = count_calls(VadParams::default());
    let (ungated_calls, _, ungated_speech) = count_calls(VadParams {
        gate_margin_db: None,
        sustain_frames: 0,
        ..VadParams::default()
    });
    assert!(noise_frames > 200, "only {noise_frames} noise-only frames");
    // Without the gate the noise (above `min_rms`) goes through the model on every frame.
    assert_eq!(ungated_calls, noise_frames);
    // With it, hardly ever (measured: 54 calls on 785 frames).
    assert!(
        gated_calls * 10 < noise_frames,
        "gated: {gated_calls} model calls on {noise_frames} noise-only frames"
    );
    // And the speech found is about the same amount (within 10 %).
    let diff = gated_speech.abs_diff(ungated_speech);
    assert!(
        diff * 10 <= ungated_speech,
        "speech frames: gated {gated_speech}, ungated {ungated_speech}"
    );
}

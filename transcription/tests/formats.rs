//! Every supported format decodes to the scripted call: right channels, duration and turns.

mod common;

use callscope_transcription::pipeline::{PipelineOptions, probe, run_file_utterances};
use callscope_transcription::{ChannelLayout, SpeakerRole, Utterance};
use common::*;

const TURN_TOLERANCE_MS: i64 = 250;

fn check_turns(name: &str, turns: &[Turn], utterances: &[Utterance]) -> i64 {
    let mut worst = 0i64;
    for channel in 0..2u16 {
        let expected: Vec<&Turn> = turns.iter().filter(|t| t.channel == channel).collect();
        let found: Vec<&Utterance> = utterances.iter().filter(|u| u.channel == channel).collect();
        assert_eq!(
            found.len(),
            expected.len(),
            "{name}: channel {channel}: expected turns {expected:?}, VAD found {found:?}"
        );
        for (t, u) in expected.iter().zip(&found) {
            let ds = u.start_ms as i64 - t.start_ms as i64;
            let de = u.end_ms as i64 - t.end_ms as i64;
            worst = worst.max(ds.abs()).max(de.abs());
            assert!(
                ds.abs() <= TURN_TOLERANCE_MS && de.abs() <= TURN_TOLERANCE_MS,
                "{name}: channel {channel}: turn {t:?} found as {u:?} (start off {ds} ms, end off {de} ms)"
            );
        }
    }
    worst
}

#[test]
fn every_format_decodes_to_the_scripted_call() {
    let call = scripted_call();
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentLeft,
        ..Default::default()
    };
    let mut failures = Vec::new();
    for enc in ENCODINGS {
        let path = encode(call, enc);
        let result = std::panic::catch_unwind(|| {
            let probed = probe(&path).unwrap_or_else(|e| panic!("{}: probe failed: {e}", enc.name));
            assert_eq!(probed.channels, 2, "{}: probe channels", enc.name);
            assert_eq!(probed.container, enc.container, "{}: container", enc.name);
            assert_eq!(probed.codec, enc.codec, "{}: codec", enc.name);

            let mut decoding_reports = 0;
            let (info, utterances) =
                run_file_utterances(&path, &opts, &mut |_| decoding_reports += 1)
                    .unwrap_or_else(|e| panic!("{}: pipeline failed: {e}", enc.name));
            assert!(decoding_reports > 0, "{}: no progress reported", enc.name);
            assert_eq!(info.channels, 2, "{}", enc.name);
            let dd = info.duration_ms.abs_diff(call.duration_ms);
            assert!(
                dd <= enc.duration_tolerance_ms,
                "{}: decoded {} ms, script is {} ms",
                enc.name,
                info.duration_ms,
                call.duration_ms
            );
            let worst = check_turns(enc.name, &call.turns, &utterances);
            for u in &utterances {
                let role = if u.channel == 0 {
                    SpeakerRole::Agent
                } else {
                    SpeakerRole::Customer
                };
                assert_eq!(u.role, role, "{}", enc.name);
            }
            eprintln!(
                "{}: ok, {} ms, {} utterances, worst turn-edge error {worst} ms",
                enc.name,
                info.duration_ms,
                utterances.len()
            );
        });
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(msg);
        }
    }
    assert!(
        failures.is_empty(),
        "{} format(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn stereo_agent_right_swaps_roles() {
    let call = scripted_call();
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentRight,
        ..Default::default()
    };
    let (_, utterances) = run_file_utterances(&call.master, &opts, &mut |_| {}).expect("pipeline");
    assert!(!utterances.is_empty());
    for u in &utterances {
        let role = if u.channel == 0 {
            SpeakerRole::Customer
        } else {
            SpeakerRole::Agent
        };
        assert_eq!(u.role, role);
    }
}

#[test]
fn fixtures_decode_to_their_real_duration() {
    let dir = fixtures_dir();
    for (name, channels) in [
        ("pyannote_dev00.wav", 1u16),
        ("jfk.mp3", 1),
        ("LDC93S1_8k.wav", 1),
    ] {
        let path = dir.join("audio").join(name);
        assert!(
            path.exists(),
            "fixture {path:?} missing (set CALLSCOPE_FIXTURES)"
        );
        let expected = ffmpeg_decoded_ms(&path);
        let (info, utterances) =
            run_file_utterances(&path, &PipelineOptions::default(), &mut |_| {}).expect(name);
        assert_eq!(info.channels, channels, "{name}");
        assert!(
            info.duration_ms.abs_diff(expected) <= 60,
            "{name}: decoded {} ms, ffmpeg decodes {expected} ms",
            info.duration_ms
        );
        // All three are speech recordings.
        assert!(!utterances.is_empty(), "{name}: no speech found");
        assert!(
            utterances
                .iter()
                .all(|u| u.role == SpeakerRole::Unknown && u.channel == 0)
        );
    }
}

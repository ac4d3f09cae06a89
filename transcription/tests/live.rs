//! Live utterances from 20 ms taps agree with the post-call pipeline on the same call: the
//! scripted two-voice call is fed frame by frame per role, as the media engine's taps deliver
//! it, and every live turn must be a turn the file pipeline finds, with the same times.

mod common;

use callscope_transcription::live::{LiveUtterance, LiveUtterances};
use callscope_transcription::pipeline::{PipelineOptions, run_file_utterances};
use callscope_transcription::{ChannelLayout, SpeakerRole};
use common::scripted_call;

fn channels(path: &std::path::Path) -> (Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).expect("open master");
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// Feeds both roles interleaved in 20 ms taps; `skip` decides which taps a lagging consumer
/// lost (by role and tap index).
fn live_turns(
    left: &[i16],
    right: &[i16],
    skip: impl Fn(SpeakerRole, usize) -> bool,
) -> Vec<LiveUtterance> {
    let opts = PipelineOptions::default();
    let mut live = LiveUtterances::new(opts.vad.clone(), opts.segment.clone());
    let mut out = Vec::new();
    for (i, (l, r)) in left.chunks(320).zip(right.chunks(320)).enumerate() {
        let at = i as u64 * 20;
        for (role, frame) in [(SpeakerRole::Agent, l), (SpeakerRole::Customer, r)] {
            if !skip(role, i) {
                live.push(role, at, frame, &mut out);
            }
        }
    }
    live.finish(&mut out);
    out.sort_by_key(|u| (u.start_ms, u.role as u8));
    out
}

#[test]
fn live_turns_match_the_post_call_pipeline() {
    let call = scripted_call();
    let (left, right) = channels(&call.master);
    let opts = PipelineOptions {
        layout: ChannelLayout::StereoAgentLeft,
        ..Default::default()
    };
    let (_, file_turns) = run_file_utterances(&call.master, &opts, &mut |_| {}).unwrap();
    let live = live_turns(&left, &right, |_, _| false);
    eprintln!("live {live:?}\nfile {file_turns:?}");
    assert_eq!(
        live.len(),
        file_turns.len(),
        "live {live:?}\nfile {file_turns:?}"
    );
    for u in &live {
        let same = file_turns.iter().any(|f| {
            f.role == u.role
                && f.start_ms.abs_diff(u.start_ms) <= 20
                && f.end_ms.abs_diff(u.end_ms) <= 20
        });
        assert!(same, "live turn {u:?} not among {file_turns:?}");
    }
    // And against the script itself, as the pipeline tests do.
    for turn in &call.turns {
        let role = if turn.channel == 0 {
            SpeakerRole::Agent
        } else {
            SpeakerRole::Customer
        };
        assert!(
            live.iter().any(|u| u.role == role
                && u.start_ms.abs_diff(turn.start_ms) <= 250
                && u.end_ms.abs_diff(turn.end_ms) <= 250),
            "scripted {turn:?} not found live: {live:?}"
        );
    }
}

#[test]
fn taps_lost_in_silence_do_not_move_later_turns() {
    let call = scripted_call();
    let (left, right) = channels(&call.master);
    let all = live_turns(&left, &right, |_, _| false);
    // Drop every third tap of the customer inside the first second (before anyone speaks),
    // as a consumer that lags at the start of a call would.
    let lossy = live_turns(&left, &right, |role, i| {
        role == SpeakerRole::Customer && i < 50 && i % 3 == 0
    });
    assert_eq!(all, lossy);
}

//! Speaker clustering of mono recordings: DER on the real AMI fixtures (target ≤ 20 % on
//! pyannote_dev00, collar 0.25 s, overlap scored) and a generated two-voice call whose turn
//! times are known, through the whole pipeline.

mod common;

use callscope_transcription::diarize::der;
use callscope_transcription::diarize::{DiarizeParams, RoleRule};
use callscope_transcription::pipeline::{PipelineOptions, diarize_file, run_file};
use callscope_transcription::*;
use common::*;

fn fixture_der(name: &str) -> Option<(f64, usize)> {
    let dir = fixtures_dir().join("audio");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: fixture directory {dir:?} is absent (set CALLSCOPE_FIXTURES to run the DER test)"
        );
        return None;
    }
    let rttm = std::fs::read_to_string(dir.join(format!("{name}.rttm"))).expect("read RTTM");
    let reference = der::parse_rttm(&rttm).expect("parse RTTM");
    let (_, d) = diarize_file(
        &dir.join(format!("{name}.wav")),
        &PipelineOptions::default(),
        &mut |_| {},
    )
    .expect("diarize");
    let report = der::score(&reference, &d.spans(), 0.25);
    eprintln!(
        "{name}: {} speakers, DER {:.2} % (miss {:.2} s, FA {:.2} s, confusion {:.2} s of {:.2} s)",
        d.speakers(),
        100.0 * report.der(),
        report.missed_s,
        report.false_alarm_s,
        report.confusion_s,
        report.total_s
    );
    Some((report.der(), d.speakers()))
}

#[test]
fn pyannote_dev00_der_is_at_most_20_percent() {
    let Some((der, speakers)) = fixture_der("pyannote_dev00") else {
        return;
    };
    assert_eq!(speakers, 2);
    assert!(der <= 0.20, "DER {:.2} % > 20 %", 100.0 * der);
}

#[test]
fn ami_four_speaker_mixture_is_scored() {
    // No target in the issue; a regression guard well above the 7 % measured when written.
    let Some((der, speakers)) = fixture_der("ami_seriously_mixture") else {
        return;
    };
    assert!(speakers >= 2, "{speakers}");
    assert!(der <= 0.30, "DER {:.2} %", 100.0 * der);
}

/// The scripted call (agent en-us+f3, customer en-us+m3, alternating turns with known times)
/// down-mixed by the mono layout.
#[test]
fn two_generated_voices_are_separated_and_the_first_is_the_agent() {
    let call = scripted_call();
    let out = run_file(
        &call.master,
        &PipelineOptions::default(),
        None,
        None,
        &mut |_| {},
    )
    .expect("pipeline");
    assert!(!out.segments.is_empty());
    let labels: std::collections::BTreeSet<&str> = out
        .segments
        .iter()
        .map(|s| s.speaker_label.as_str())
        .collect();
    assert_eq!(labels.len(), 2, "{:?}", out.segments);
    // Every segment lies in one scripted turn; its speaker must be that turn's voice.
    for s in &out.segments {
        let mid = (s.start_ms + s.end_ms) / 2;
        let turn = call
            .turns
            .iter()
            .find(|t| t.start_ms <= mid + 300 && mid <= t.end_ms + 300)
            .unwrap_or_else(|| panic!("segment {s:?} outside every turn"));
        let (label, role) = if turn.channel == 0 {
            ("Speaker 1", SpeakerRole::Agent)
        } else {
            ("Speaker 2", SpeakerRole::Customer)
        };
        assert_eq!((s.speaker_label.as_str(), s.role), (label, role), "{s:?}");
    }

    // The rule can be turned round, or off.
    for (rule, first) in [
        (RoleRule::FirstSpeakerIsCustomer, SpeakerRole::Customer),
        (RoleRule::None, SpeakerRole::Unknown),
    ] {
        let opts = PipelineOptions {
            diarize: Some(DiarizeParams {
                role_rule: rule,
                ..Default::default()
            }),
            ..Default::default()
        };
        let out = run_file(&call.master, &opts, None, None, &mut |_| {}).expect("pipeline");
        assert_eq!(out.segments.first().map(|s| s.role), Some(first));
    }

    // DER of the turns against the script (collar 0.25 s).
    let reference = call.reference_spans();
    let (_, d) =
        diarize_file(&call.master, &PipelineOptions::default(), &mut |_| {}).expect("diarize");
    let report = der::score(&reference, &d.spans(), 0.25);
    eprintln!("generated call: DER {:.2} %", 100.0 * report.der());
    assert!(report.der() <= 0.10, "{report:?}");
}

#[test]
fn bad_and_silent_input_give_errors_or_nothing_never_a_panic() {
    let call = scripted_call();
    let junk = call.dir.join("junk.wav");
    std::fs::write(&junk, pseudo_random_bytes(7, 50_000)).expect("write");
    assert!(diarize_file(&junk, &PipelineOptions::default(), &mut |_| {}).is_err());

    let silent = call.dir.join("silence_mono.wav");
    run(std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1"])
        .arg(&silent)
        .args(["trim", "0", "2"]));
    let (_, d) = diarize_file(&silent, &PipelineOptions::default(), &mut |_| {}).expect("diarize");
    assert!(d.turns.is_empty() && d.speakers() == 0, "{d:?}");
}

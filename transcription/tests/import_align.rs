//! Aligning imported cues to VAD utterances (the rule is documented on `import::align`).

use callscope_transcription::import::{ImportedCue, ImportedTranscript, TranscriptFormat, align};
use callscope_transcription::{SpeakerRole, Utterance};

use SpeakerRole::{Agent, Customer, Unknown};

fn utt(channel: u16, role: SpeakerRole, start_ms: u64, end_ms: u64) -> Utterance {
    Utterance {
        channel,
        role,
        start_ms,
        end_ms,
    }
}

fn cue(
    start_ms: u64,
    end_ms: u64,
    role: SpeakerRole,
    speaker: Option<&str>,
    text: &str,
) -> ImportedCue {
    ImportedCue {
        start_ms,
        end_ms,
        role,
        speaker: speaker.map(str::to_string),
        text: text.into(),
    }
}

fn transcript(cues: Vec<ImportedCue>) -> ImportedTranscript {
    ImportedTranscript {
        format: TranscriptFormat::WebVtt,
        cues,
    }
}

/// (channel, role, label, start, end, text) of each aligned segment.
fn summary(
    t: &ImportedTranscript,
    utterances: &[Utterance],
) -> Vec<(u16, SpeakerRole, String, u64, u64, String)> {
    align(t, utterances)
        .into_iter()
        .map(|s| {
            assert_eq!(s.confidence, None);
            assert!(s.words.is_empty());
            (
                s.channel,
                s.role,
                s.speaker_label,
                s.start_ms,
                s.end_ms,
                s.text.expect("imported text"),
            )
        })
        .collect()
}

#[test]
fn cues_snap_to_the_speech_of_their_own_speaker() {
    // Stereo call: agent on channel 0, customer on channel 1; the customer's reply overlaps
    // the agent's last words, and the transcript's times are a little off.
    let utterances = [
        utt(0, Agent, 1_130, 3_420),
        utt(1, Customer, 3_300, 6_050),
        utt(0, Agent, 6_800, 9_000),
    ];
    let t = transcript(vec![
        cue(1_000, 3_500, Agent, Some("Agent"), "Hello, how can I help?"),
        cue(
            3_000,
            6_000,
            Customer,
            Some("Customer"),
            "My router is broken.",
        ),
        cue(6_500, 9_200, Agent, Some("Agent"), "Let me check."),
    ]);
    assert_eq!(
        summary(&t, &utterances),
        vec![
            (
                0,
                Agent,
                "Agent".into(),
                1_130,
                3_420,
                "Hello, how can I help?".into()
            ),
            (
                1,
                Customer,
                "Customer".into(),
                3_300,
                6_050,
                "My router is broken.".into()
            ),
            (
                0,
                Agent,
                "Agent".into(),
                6_800,
                9_000,
                "Let me check.".into()
            ),
        ]
    );
}

#[test]
fn a_cue_over_several_utterances_spans_them_and_ignores_a_grazed_one() {
    let utterances = [
        utt(0, Unknown, 900, 2_000),
        utt(0, Unknown, 2_600, 4_100),
        // Only its first 100 ms of 3 s fall inside the cue: it belongs to the next cue.
        utt(0, Unknown, 4_400, 7_400),
    ];
    let t = transcript(vec![cue(
        1_000,
        4_500,
        Unknown,
        None,
        "One two. Three four.",
    )]);
    assert_eq!(
        summary(&t, &utterances),
        vec![(
            0,
            Unknown,
            "Speaker".into(),
            900,
            4_100,
            "One two. Three four.".into()
        )]
    );
}

#[test]
fn cues_inside_one_merged_utterance_are_clamped_into_it() {
    let utterances = [utt(1, Customer, 2_000, 8_000)];
    let t = transcript(vec![
        cue(1_500, 5_000, Unknown, Some("Bob"), "First sentence."),
        cue(5_000, 9_000, Unknown, Some("Bob"), "Second sentence."),
    ]);
    assert_eq!(
        summary(&t, &utterances),
        vec![
            // Role comes from the utterance when the cue's speaker name gives none.
            (
                1,
                Customer,
                "Bob".into(),
                2_000,
                5_000,
                "First sentence.".into()
            ),
            (
                1,
                Customer,
                "Bob".into(),
                5_000,
                8_000,
                "Second sentence.".into()
            ),
        ]
    );
}

#[test]
fn unmatched_cues_keep_their_times_and_take_their_roles_channel() {
    let utterances = [utt(1, Customer, 0, 1_000), utt(0, Agent, 1_000, 2_000)];
    let t = transcript(vec![
        // Overlaps only the agent's speech, but it is the customer's cue.
        cue(1_200, 1_800, Customer, Some("Customer"), "Mm-hm."),
        cue(5_000, 6_000, Agent, None, "Anything else?"),
        cue(7_000, 7_500, Unknown, Some("Alice"), "Bye."),
    ]);
    assert_eq!(
        summary(&t, &utterances),
        vec![
            (
                1,
                Customer,
                "Customer".into(),
                1_200,
                1_800,
                "Mm-hm.".into()
            ),
            (
                0,
                Agent,
                "Agent".into(),
                5_000,
                6_000,
                "Anything else?".into()
            ),
            (0, Unknown, "Alice".into(), 7_000, 7_500, "Bye.".into()),
        ]
    );
}

#[test]
fn output_is_ordered_by_time_and_handles_empty_and_extreme_inputs() {
    let t = transcript(vec![
        cue(5_000, 6_000, Unknown, None, "later"),
        cue(1_000, 1_000, Unknown, None, "zero length"),
        cue(u64::MAX - 1, u64::MAX, Unknown, None, "far away"),
    ]);
    let utterances = [
        utt(0, Unknown, 500, 1_500),
        utt(0, Unknown, u64::MAX - 10, u64::MAX),
    ];
    let got = summary(&t, &utterances);
    assert_eq!(
        got[0],
        (
            0,
            Unknown,
            "Speaker".into(),
            500,
            1_500,
            "zero length".into()
        )
    );
    assert_eq!(got[1].3, 5_000);
    assert_eq!(got[2].3, u64::MAX - 10);
    assert!(align(&transcript(vec![]), &utterances).is_empty());
    assert_eq!(align(&t, &[]).len(), 3);
}

#[test]
fn many_cues_and_utterances_align_quickly() {
    // 20 000 of each: the scan is bounded by binary search, not quadratic.
    let utterances: Vec<Utterance> = (0..20_000u64)
        .map(|i| {
            utt(
                (i % 2) as u16,
                if i % 2 == 0 { Agent } else { Customer },
                i * 1_000 + 50,
                i * 1_000 + 900,
            )
        })
        .collect();
    let cues: Vec<ImportedCue> = (0..20_000u64)
        .map(|i| {
            cue(
                i * 1_000,
                i * 1_000 + 950,
                if i % 2 == 0 { Agent } else { Customer },
                None,
                "x",
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let segments = align(&transcript(cues), &utterances);
    assert!(
        started.elapsed().as_secs() < 5,
        "align took {:?}",
        started.elapsed()
    );
    assert_eq!(segments.len(), 20_000);
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(
            (s.start_ms, s.end_ms),
            (i as u64 * 1_000 + 50, i as u64 * 1_000 + 900)
        );
    }
}

//! Rendering segments as JSON, WebVTT, SRT and text; reading our own output back; and
//! bounded random inputs thrown at the transcript parsers.

use callscope_transcription::import::{self, ImportedCue};
use callscope_transcription::{Segment, SpeakerRole, Word, format};

fn seg(
    channel: u16,
    role: SpeakerRole,
    label: &str,
    start_ms: u64,
    end_ms: u64,
    text: Option<&str>,
) -> Segment {
    Segment {
        channel,
        role,
        speaker_label: label.into(),
        start_ms,
        end_ms,
        text: text.map(str::to_string),
        confidence: Some(0.75),
        words: vec![],
    }
}

fn sample() -> Vec<Segment> {
    vec![
        seg(
            0,
            SpeakerRole::Agent,
            "Agent",
            1_250,
            3_500,
            Some("Thank you for calling <Acme> & co."),
        ),
        seg(
            1,
            SpeakerRole::Customer,
            "Customer",
            3_400,
            6_100,
            Some("My router --> is\nbroken"),
        ),
        seg(0, SpeakerRole::Unknown, "Speaker", 6_200, 6_900, None),
        seg(
            1,
            SpeakerRole::Customer,
            "Bob",
            3_725_010,
            3_726_999,
            Some("Still there?"),
        ),
        seg(
            0,
            SpeakerRole::Unknown,
            "Agent",
            3_727_000,
            3_728_000,
            Some("A label that lies"),
        ),
    ]
}

#[test]
fn vtt_has_voice_tags_escaping_and_cue_numbers() {
    let vtt = format::vtt(&sample());
    let expected = "WEBVTT\n\
\n1\n00:00:01.250 --> 00:00:03.500\n<v Agent>Thank you for calling &lt;Acme&gt; &amp; co.\n\
\n2\n00:00:03.400 --> 00:00:06.100\n<v Customer>My router --&gt; is broken\n\
\n3\n01:02:05.010 --> 01:02:06.999\n<v.customer Bob>Still there?\n\
\n4\n01:02:07.000 --> 01:02:08.000\n<v.unknown Agent>A label that lies\n";
    assert_eq!(vtt, expected);
}

#[test]
fn srt_numbers_from_one_with_comma_times_and_speaker_prefix() {
    let srt = format::srt(&sample());
    let expected = "1\n00:00:01,250 --> 00:00:03,500\nAgent: Thank you for calling <Acme> & co.\n\
\n2\n00:00:03,400 --> 00:00:06,100\nCustomer: My router --> is broken\n\
\n3\n01:02:05,010 --> 01:02:06,999\nBob: Still there?\n\
\n4\n01:02:07,000 --> 01:02:08,000\nAgent: A label that lies\n";
    assert_eq!(srt, expected);
}

#[test]
fn txt_is_one_line_per_segment_with_minutes_and_seconds() {
    let txt = format::txt(&sample());
    let expected = "[00:01] Agent: Thank you for calling <Acme> & co.\n\
[00:03] Customer: My router --> is broken\n\
[62:05] Bob: Still there?\n\
[62:07] Agent: A label that lies\n";
    assert_eq!(txt, expected);
}

#[test]
fn json_keeps_every_segment_including_untranscribed_ones() {
    let mut segments = sample();
    segments[0].words = vec![Word {
        text: "Thank".into(),
        start_ms: 1_250,
        end_ms: 1_500,
        probability: Some(0.5),
    }];
    let json = format::json(&segments);
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let items = value["segments"].as_array().expect("segments array");
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["role"], "agent");
    assert_eq!(items[0]["speaker"], "Agent");
    assert_eq!(items[0]["speaker_label"], "Agent");
    assert_eq!(items[0]["start_ms"], 1_250);
    assert_eq!(items[0]["words"][0]["text"], "Thank");
    assert_eq!(items[2]["text"], serde_json::Value::Null);
    assert_eq!(items[1]["channel"], 1);
}

/// What a transcript can carry of a segment: times, role, label, one-line text.
fn as_cue(s: &Segment) -> Option<ImportedCue> {
    let text = s
        .text
        .as_deref()?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Some(ImportedCue {
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        role: s.role,
        speaker: Some(s.speaker_label.clone()),
        text,
    })
}

#[test]
fn vtt_and_json_read_back_as_the_same_segments() {
    let segments = sample();
    let expected: Vec<ImportedCue> = segments.iter().filter_map(as_cue).collect();
    let from_vtt = import::parse(format::vtt(&segments).as_bytes()).expect("our VTT parses");
    assert_eq!(from_vtt.cues, expected);

    // JSON keeps the untranscribed segment, but a cue without text is dropped on import.
    let from_json = import::parse(format::json(&segments).as_bytes()).expect("our JSON parses");
    assert_eq!(from_json.cues, expected);
}

/// xorshift: deterministic, dependency-free random bytes for the fuzz-style tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Pieces that steer random input into the parsers' interesting paths.
const VTT_PIECES: &[&str] = &[
    "WEBVTT",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    " --> ",
    "-->",
    "00:00:01.000",
    "00:01.500",
    "99:59:59.999",
    "1:2.3",
    "<v Agent>",
    "<v.loud Customer>",
    "<v",
    "</v>",
    "<",
    ">",
    "&amp;",
    "&#x1F600;",
    "&#0;",
    "&#99999999999;",
    "&",
    ";",
    "NOTE",
    "STYLE",
    "REGION",
    "id",
    " ",
    "\t",
    "é",
    "\u{feff}",
    ".",
    ":",
];
const JSON_PIECES: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"segments\"",
    "\"start\"",
    "\"end\"",
    "\"start_ms\"",
    "\"end_ms\"",
    "\"text\"",
    "\"speaker\"",
    "\"role\"",
    "\"agent\"",
    "1",
    "-1",
    "1.5",
    "1e308",
    "-0",
    "null",
    "true",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "18446744073709551616",
    " ",
];

fn random_doc(rng: &mut XorShift, pieces: &[&str], prefix: &str) -> Vec<u8> {
    let mut doc = prefix.as_bytes().to_vec();
    let n = rng.below(60);
    for _ in 0..n {
        if rng.below(10) == 0 {
            doc.push(rng.below(256) as u8);
        } else {
            doc.extend_from_slice(pieces[rng.below(pieces.len() as u64) as usize].as_bytes());
        }
    }
    doc
}

#[test]
fn random_transcripts_never_panic_and_valid_ones_are_consistent() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    let mut errors = 0;
    for i in 0..20_000 {
        let doc = match i % 3 {
            0 => random_doc(&mut rng, VTT_PIECES, "WEBVTT\n\n"),
            1 => random_doc(&mut rng, JSON_PIECES, ""),
            _ => random_doc(&mut rng, VTT_PIECES, ""),
        };
        match import::parse(&doc) {
            Ok(t) => {
                parsed += 1;
                for c in &t.cues {
                    assert!(
                        c.start_ms <= c.end_ms,
                        "{c:?} from {:?}",
                        String::from_utf8_lossy(&doc)
                    );
                    assert!(!c.text.is_empty());
                }
                // Whatever parsed also aligns and renders without panicking.
                let segments = import::align(&t, &[]);
                let _ = format::vtt(&segments);
            }
            Err(e) => {
                errors += 1;
                assert_eq!(e.code(), "invalid_transcript");
            }
        }
    }
    // Both outcomes occur, so the generator reaches past the first checks.
    assert!(
        parsed > 100 && errors > 100,
        "parsed {parsed}, errors {errors}"
    );
}

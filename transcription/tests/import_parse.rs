//! Parsing transcripts that come with recordings: WebVTT and JSON, good and hostile.

use callscope_transcription::SpeakerRole;
use callscope_transcription::TranscriptionError;
use callscope_transcription::import::{
    ImportedCue, MAX_TRANSCRIPT_BYTES, TranscriptFormat, parse, parse_json, parse_webvtt,
    role_for_speaker,
};

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
        text: text.to_string(),
    }
}

fn invalid(input: &[u8]) -> String {
    match parse(input) {
        Err(TranscriptionError::InvalidTranscript(msg)) => msg,
        other => panic!(
            "expected InvalidTranscript for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[test]
fn webvtt_with_voices_ids_notes_styles_and_both_timestamp_forms() {
    let vtt = "\u{feff}WEBVTT - call 42\r\nKind: captions\r\n\r\n\
NOTE exported by the PBX\r\nsecond note line\r\n\r\n\
STYLE\r\n::cue { color: red }\r\n\r\n\
intro-1\r\n00:00:01.250 --> 00:00:03.500 align:start position:10%\r\n<v Agent>Thank you for calling,\r\nhow can I help?</v>\r\n\r\n\
00:04.000 --> 00:06.100\r\n<v.loud Customer>My <b>router</b> is broken &amp; I&apos;m &lt;upset&gt;\r\n\r\n\
3\r\n01:00:00.000 --> 01:00:02.000\r\n<v Alice>Let me check.\r\n\r\n\
00:07.000 --> 00:08.000\r\nNo voice here\r\n\r\n\
00:09.000 --> 00:09.500\r\n<v Agent></v>\r\n";
    let t = parse(vtt.as_bytes()).expect("valid WebVTT");
    assert_eq!(t.format, TranscriptFormat::WebVtt);
    assert_eq!(
        t.cues,
        vec![
            cue(
                1250,
                3500,
                SpeakerRole::Agent,
                Some("Agent"),
                "Thank you for calling, how can I help?"
            ),
            cue(
                4000,
                6100,
                SpeakerRole::Customer,
                Some("Customer"),
                "My router is broken & I'm <upset>"
            ),
            cue(
                3_600_000,
                3_602_000,
                SpeakerRole::Unknown,
                Some("Alice"),
                "Let me check."
            ),
            cue(7000, 8000, SpeakerRole::Unknown, None, "No voice here"),
            // The empty cue at 9 s is dropped.
        ]
    );
}

#[test]
fn voice_classes_and_speaker_names_give_roles() {
    let vtt = "WEBVTT\n\n00:01.000 --> 00:02.000\n<v.agent Alice>Hello\n\n\
00:02.000 --> 00:03.000\n<v.customer.loud Bob>Hi\n\n\
00:03.000 --> 00:04.000\n<v.unknown Agent Smith>Odd\n\n\
00:04.000 --> 00:05.000\n<v Customer (Bob)>Fine\n";
    let t = parse_webvtt(vtt.as_bytes()).expect("valid");
    let roles: Vec<_> = t.cues.iter().map(|c| (c.role, c.speaker.clone())).collect();
    assert_eq!(
        roles,
        vec![
            (SpeakerRole::Agent, Some("Alice".into())),
            (SpeakerRole::Customer, Some("Bob".into())),
            (SpeakerRole::Unknown, Some("Agent Smith".into())),
            (SpeakerRole::Customer, Some("Customer (Bob)".into())),
        ]
    );
    assert_eq!(role_for_speaker("AGENT 7"), SpeakerRole::Agent);
    assert_eq!(role_for_speaker("agent-customer"), SpeakerRole::Unknown);
    assert_eq!(role_for_speaker("Agents"), SpeakerRole::Unknown);
    assert_eq!(role_for_speaker("the customer"), SpeakerRole::Customer);
}

#[test]
fn json_in_seconds_and_in_milliseconds_array_or_object() {
    let secs = r#"[{"speaker":"Agent","start":0.5,"end":2.25,"text":"Hello"},
                   {"role":"customer","start":3,"end":4.0004,"text":" Hi  there "}]"#;
    let t = parse(secs.as_bytes()).expect("seconds form");
    assert_eq!(t.format, TranscriptFormat::Json);
    assert_eq!(
        t.cues,
        vec![
            cue(500, 2250, SpeakerRole::Agent, Some("Agent"), "Hello"),
            cue(
                3000,
                4000,
                SpeakerRole::Customer,
                Some("customer"),
                "Hi there"
            ),
        ]
    );
    let ms = r#"{"segments":[{"speaker":"Bob","role":"agent","start_ms":10,"end_ms":20,"text":"x"},
                             {"start_ms":30,"end_ms":40,"text":"y"},
                             {"start_ms":50,"end_ms":60,"text":null}]}"#;
    let t = parse_json(ms.as_bytes()).expect("milliseconds form");
    assert_eq!(
        t.cues,
        vec![
            cue(10, 20, SpeakerRole::Agent, Some("Bob"), "x"),
            cue(30, 40, SpeakerRole::Unknown, None, "y"),
        ]
    );
}

#[test]
fn json_errors_name_the_segment_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        (
            r#"[{"start":1,"start_ms":1000,"end":2,"text":"a"}]"#,
            "not both",
        ),
        (r#"[{"start":1,"text":"a"}]"#, "missing \"end\""),
        (r#"[{"start":-1,"end":2,"text":"a"}]"#, "out of range"),
        (r#"[{"start":"1","end":2,"text":"a"}]"#, "number of seconds"),
        (
            r#"[{"start_ms":1.5,"end_ms":2,"text":"a"}]"#,
            "integer number of milliseconds",
        ),
        (
            r#"[{"start_ms":-5,"end_ms":2,"text":"a"}]"#,
            "integer number of milliseconds",
        ),
        (r#"[{"start":1e300,"end":2,"text":"a"}]"#, "out of range"),
        (r#"[{"start":3,"end":2,"text":"a"}]"#, "before it starts"),
        (
            r#"[{"start":1,"end":2,"text":5}]"#,
            "\"text\" must be a string",
        ),
        (
            r#"[{"start":1,"end":2,"text":"a","speaker":[1]}]"#,
            "\"speaker\" must be a string",
        ),
        (r#"[1]"#, "must be an object"),
        (r#"{"segments":{}}"#, "must be an array"),
        (r#"{"cues":[]}"#, "\"segments\" array"),
        (r#"[{"start":1,"end":2,"text":"a"}"#, "invalid JSON"),
    ];
    for (input, expected) in cases {
        let msg = invalid(input.as_bytes());
        assert!(
            msg.contains(expected),
            "{input}: {msg:?} lacks {expected:?}"
        );
    }
    let msg = invalid(br#"[{"start":1,"end":2,"text":"ok"},{"start":1}]"#);
    assert!(msg.starts_with("segment 1:"), "{msg}");
}

#[test]
fn webvtt_errors_name_the_line() {
    let cases: &[(&str, &str)] = &[
        ("WEBVTTX\n", "signature"),
        ("WEBVTT\n\n00:01.000 --> 00:00.500\nx\n", "line 3: cue ends"),
        (
            "WEBVTT\n\n00:01.00 --> 00:02.000\nx\n",
            "line 3: bad timestamp",
        ),
        ("WEBVTT\n\n00:61.000 --> 00:62.000\nx\n", "bad timestamp"),
        ("WEBVTT\n\n1:00.000 --> 1:01.000\nx\n", "bad timestamp"),
        (
            "WEBVTT\n\nid only\n",
            "line 3: a cue id without a timing line",
        ),
        (
            "WEBVTT\n\nid\nnot a timing\n",
            "line 4: expected a cue timing line",
        ),
        (
            "WEBVTT\n\n9999999:00:00.000 --> 9999999:00:01.000\nx\n",
            "bad timestamp",
        ),
        (
            "WEBVTT\n\n999999:00:00.000 --> 999999:00:01.000\nx\n",
            "beyond",
        ),
        ("00:01.000 --> 00:02.000\nx\n", "unknown transcript format"),
        ("", "unknown transcript format"),
    ];
    for (input, expected) in cases {
        let msg = invalid(input.as_bytes());
        assert!(
            msg.contains(expected),
            "{input:?}: {msg:?} lacks {expected:?}"
        );
    }
}

#[test]
fn oversized_and_non_utf8_input_is_refused_before_parsing() {
    let mut big = b"WEBVTT\n\n".to_vec();
    big.resize(MAX_TRANSCRIPT_BYTES + 1, b'a');
    assert!(invalid(&big).contains("limit"));
    assert!(invalid(b"WEBVTT\n\n00:01.000 --> 00:02.000\n\xff\xfe\n").contains("not UTF-8"));
    let many: String = std::iter::once("[".to_string())
        .chain((0..100_001).map(|i| {
            format!(
                "{}{{\"start_ms\":{i},\"end_ms\":{i},\"text\":\"a\"}}",
                if i > 0 { "," } else { "" }
            )
        }))
        .chain(std::iter::once("]".to_string()))
        .collect();
    assert!(invalid(many.as_bytes()).contains("more than"));
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let msg = invalid(nested.as_bytes());
    assert!(msg.contains("invalid JSON"), "{msg}");
}

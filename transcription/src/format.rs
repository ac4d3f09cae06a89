//! Transcript renderings of segments: JSON, WebVTT, SRT and plain text.
//!
//! JSON carries every segment. The text formats (VTT, SRT, TXT) carry only segments that
//! have text: a segment without text (no ASR ran) is talk time, not something to read, and
//! an empty cue would be read back as nothing anyway. Line breaks inside a segment's text
//! become spaces, because a blank line ends a cue in VTT and SRT.
//!
//! The WebVTT output is what [`crate::import`] reads: `<v Agent>` when the label already
//! names the role, `<v.agent Alice>` (or `<v.unknown Agent>`) when the label alone would
//! give another role.

use std::fmt::Write as _;

use serde::Serialize;

use crate::import::role_for_speaker;
use crate::types::Segment;

/// The document [`json`] writes: `{"segments": [...]}`, each segment as [`Segment`]
/// serializes (`channel`, `role`, `speaker_label`, `start_ms`, `end_ms`, `text`,
/// `confidence`, `words`) plus `speaker` (= the label), so that the file can be
/// posted back as a transcript to import.
#[derive(Serialize)]
struct JsonDocument<'a> {
    segments: Vec<JsonSegment<'a>>,
}

#[derive(Serialize)]
struct JsonSegment<'a> {
    #[serde(flatten)]
    segment: &'a Segment,
    speaker: &'a str,
}

/// Pretty-printed JSON of all segments.
pub fn json(segments: &[Segment]) -> String {
    let doc = JsonDocument {
        segments: segments
            .iter()
            .map(|segment| JsonSegment {
                segment,
                speaker: &segment.speaker_label,
            })
            .collect(),
    };
    // Serializing plain structs of strings and numbers cannot fail; NaN confidences
    // (which serde_json rejects as numbers) are written as null by serde_json.
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// WebVTT with one cue per segment and the speaker as a voice tag.
pub fn vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n");
    for (i, (seg, text)) in with_text(segments).enumerate() {
        let _ = write!(
            out,
            "\n{}\n{} --> {}\n<{}>{}\n",
            i + 1,
            vtt_time(seg.start_ms),
            vtt_time(seg.end_ms.max(seg.start_ms)),
            voice_tag(seg),
            escape_vtt(&text)
        );
    }
    out
}

/// SubRip: 1-based numbering, `HH:MM:SS,mmm` times, the speaker as a `Label: ` prefix.
pub fn srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, (seg, text)) in with_text(segments).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}: {}\n",
            i + 1,
            srt_time(seg.start_ms),
            srt_time(seg.end_ms.max(seg.start_ms)),
            one_line(&seg.speaker_label),
            text
        );
    }
    out
}

/// Plain text, one line per segment: `[mm:ss] Label: text` (minutes keep counting past 59).
pub fn txt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (seg, text) in with_text(segments) {
        let secs = seg.start_ms / 1000;
        let _ = writeln!(
            out,
            "[{:02}:{:02}] {}: {}",
            secs / 60,
            secs % 60,
            one_line(&seg.speaker_label),
            text
        );
    }
    out
}

/// Segments with non-blank text, the text on one line.
fn with_text(segments: &[Segment]) -> impl Iterator<Item = (&Segment, String)> {
    segments.iter().filter_map(|s| {
        let text = one_line(s.text.as_deref()?);
        (!text.is_empty()).then_some((s, text))
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `<v Label>`, or `<v.role Label>` when the label alone would not give the role back.
fn voice_tag(seg: &Segment) -> String {
    let label = one_line(&seg.speaker_label);
    let label = if label.is_empty() {
        crate::import::role_label(seg.role).to_string()
    } else {
        label
    };
    let escaped = escape_vtt(&label);
    if role_for_speaker(&label) == seg.role {
        format!("v {escaped}")
    } else {
        format!("v.{} {escaped}", seg.role.as_str())
    }
}

/// Escape the characters WebVTT cue text reserves.
fn escape_vtt(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

fn split_ms(ms: u64) -> (u64, u64, u64, u64) {
    (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// `HH:MM:SS.mmm` (hours grow past two digits if they must).
fn vtt_time(ms: u64) -> String {
    let (h, m, s, f) = split_ms(ms);
    format!("{h:02}:{m:02}:{s:02}.{f:03}")
}

/// `HH:MM:SS,mmm`.
fn srt_time(ms: u64) -> String {
    let (h, m, s, f) = split_ms(ms);
    format!("{h:02}:{m:02}:{s:02},{f:03}")
}

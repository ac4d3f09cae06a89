//! Transcripts that come with a recording (Zoom, some PBXes): parsed from WebVTT or JSON,
//! then aligned to the utterances VAD found, so that callscope keeps their text and
//! speakers but uses its own, sample-accurate speech times.
//!
//! Accepted input (at most [`MAX_TRANSCRIPT_BYTES`], UTF-8, optional BOM):
//!
//! * **WebVTT**: the `WEBVTT` header, cues with optional ids, timings `hh:mm:ss.mmm` or
//!   `mm:ss.mmm` (cue settings after the end time are ignored), `NOTE`, `STYLE` and `REGION`
//!   blocks (skipped). The speaker is the first voice span's annotation: `<v Agent>`,
//!   `<v.loud Customer>`, `<v Alice>`; a class named `agent`, `customer` or `unknown` (as
//!   [`crate::format`] writes for custom labels, `<v.agent Alice>`) sets the role. Other tags
//!   are dropped and character references decoded; payload lines are joined with spaces.
//! * **JSON**: an array of segments, or an object whose `segments` field is that array.
//!   Each segment is an object with `text` (string), a speaker as `speaker` and/or `role`
//!   (strings), and times as **either** `start`/`end` in **seconds** (numbers, fractions
//!   allowed) **or** `start_ms`/`end_ms` in **milliseconds** (non-negative integers).
//!   Giving both forms for one bound is an error, so a file can never be read in the wrong
//!   unit silently.
//!
//! A speaker name maps to a role by word: one containing the word "agent" is the agent,
//! "customer" the customer, anything else is unknown. Cues with empty text are dropped.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{Result, Segment, SpeakerRole, TranscriptionError, Utterance};

/// Largest transcript accepted (8 MiB: a 10-hour call's VTT is about 1 MB).
pub const MAX_TRANSCRIPT_BYTES: usize = 8 * 1024 * 1024;
/// Most cues accepted in one transcript.
pub const MAX_CUES: usize = 100_000;
/// Largest time accepted in a transcript: 7 days, far beyond any call, small enough that
/// millisecond arithmetic cannot overflow.
pub const MAX_TIME_MS: u64 = 7 * 24 * 3600 * 1000;

/// Which syntax a transcript was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptFormat {
    WebVtt,
    Json,
}

/// One cue (one speaker's stretch of text) of an imported transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedCue {
    pub start_ms: u64,
    pub end_ms: u64,
    pub role: SpeakerRole,
    /// The speaker's name as written (e.g. "Agent", "Alice"), when the cue names one.
    pub speaker: Option<String>,
    pub text: String,
}

/// A parsed transcript: cues in the order the file gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedTranscript {
    pub format: TranscriptFormat,
    pub cues: Vec<ImportedCue>,
}

fn invalid(msg: impl Into<String>) -> TranscriptionError {
    TranscriptionError::InvalidTranscript(msg.into())
}

/// Parse a transcript, recognising WebVTT or JSON from its first characters.
pub fn parse(bytes: &[u8]) -> Result<ImportedTranscript> {
    let text = decode_text(bytes)?;
    let head = text.trim_start();
    if head.starts_with("WEBVTT") {
        parse_webvtt_str(text)
    } else if head.starts_with('[') || head.starts_with('{') {
        parse_json_str(text)
    } else {
        Err(invalid(
            "unknown transcript format: expected WebVTT (starting with WEBVTT) or JSON segments",
        ))
    }
}

/// Parse a WebVTT transcript.
pub fn parse_webvtt(bytes: &[u8]) -> Result<ImportedTranscript> {
    parse_webvtt_str(decode_text(bytes)?)
}

/// Parse a JSON transcript.
pub fn parse_json(bytes: &[u8]) -> Result<ImportedTranscript> {
    parse_json_str(decode_text(bytes)?)
}

fn decode_text(bytes: &[u8]) -> Result<&str> {
    if bytes.len() > MAX_TRANSCRIPT_BYTES {
        return Err(invalid(format!(
            "transcript is {} bytes; the limit is {MAX_TRANSCRIPT_BYTES}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        invalid(format!(
            "transcript is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The role a speaker name stands for: by whole word, case-insensitively.
pub fn role_for_speaker(name: &str) -> SpeakerRole {
    let mut agent = false;
    let mut customer = false;
    for word in name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if word.eq_ignore_ascii_case("agent") {
            agent = true;
        } else if word.eq_ignore_ascii_case("customer") {
            customer = true;
        }
    }
    match (agent, customer) {
        (true, false) => SpeakerRole::Agent,
        (false, true) => SpeakerRole::Customer,
        _ => SpeakerRole::Unknown,
    }
}

fn push_cue(cues: &mut Vec<ImportedCue>, cue: ImportedCue) -> Result<()> {
    if cue.text.is_empty() {
        return Ok(());
    }
    if cues.len() >= MAX_CUES {
        return Err(invalid(format!("more than {MAX_CUES} cues")));
    }
    cues.push(cue);
    Ok(())
}

// ---------------------------------------------------------------- WebVTT

fn parse_webvtt_str(text: &str) -> Result<ImportedTranscript> {
    // Line terminators may be CRLF, LF or CR.
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = normalized.split('\n').enumerate().peekable();

    let Some((_, first)) = lines.next() else {
        return Err(invalid("empty transcript"));
    };
    let rest = first
        .strip_prefix("WEBVTT")
        .ok_or_else(|| invalid("not a WebVTT file: the first line must start with WEBVTT"))?;
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return Err(invalid("not a WebVTT file: bad WEBVTT signature line"));
    }
    // The rest of the header block (metadata lines) ends at the first blank line.
    while let Some((_, line)) = lines.peek() {
        if line.trim().is_empty() {
            break;
        }
        lines.next();
    }

    let mut cues = Vec::new();
    loop {
        // Skip blank lines between blocks.
        while lines.peek().is_some_and(|(_, l)| l.trim().is_empty()) {
            lines.next();
        }
        let Some((first_no, first_line)) = lines.next() else {
            break;
        };
        let mut block = vec![(first_no, first_line)];
        while let Some((no, line)) = lines.peek() {
            if line.trim().is_empty() {
                break;
            }
            block.push((*no, line));
            lines.next();
        }
        if is_block_keyword(first_line, "NOTE")
            || is_block_keyword(first_line, "STYLE")
            || is_block_keyword(first_line, "REGION")
        {
            continue;
        }
        // An optional cue id precedes the timing line; an id cannot contain "-->".
        let timing_at = if first_line.contains("-->") { 0 } else { 1 };
        let Some(&(timing_no, timing_line)) = block.get(timing_at) else {
            return Err(invalid(format!(
                "line {}: a cue id without a timing line",
                first_no + 1
            )));
        };
        if !timing_line.contains("-->") {
            return Err(invalid(format!(
                "line {}: expected a cue timing line (start --> end)",
                timing_no + 1
            )));
        }
        let (start_ms, end_ms) = parse_timing_line(timing_line)
            .map_err(|why| invalid(format!("line {}: {why}", timing_no + 1)))?;
        let payload: Vec<&str> = block
            .iter()
            .skip(timing_at + 1)
            .map(|(_, l)| l.trim())
            .collect();
        let (speaker, class_role, text) = parse_cue_payload(&payload.join(" "));
        let role = class_role
            .or_else(|| speaker.as_deref().map(role_for_speaker))
            .unwrap_or(SpeakerRole::Unknown);
        push_cue(
            &mut cues,
            ImportedCue {
                start_ms,
                end_ms,
                role,
                speaker,
                text,
            },
        )?;
    }
    Ok(ImportedTranscript {
        format: TranscriptFormat::WebVtt,
        cues,
    })
}

/// `NOTE`, `STYLE`, `REGION` start a block when alone or followed by a space or tab.
fn is_block_keyword(line: &str, keyword: &str) -> bool {
    line.strip_prefix(keyword)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn parse_timing_line(line: &str) -> std::result::Result<(u64, u64), String> {
    let (left, right) = line
        .split_once("-->")
        .ok_or_else(|| "missing -->".to_string())?;
    let start = parse_vtt_timestamp(left.trim())?;
    let end_token = right.split_whitespace().next().unwrap_or("");
    let end = parse_vtt_timestamp(end_token)?;
    if end < start {
        return Err(format!("cue ends ({end_token}) before it starts"));
    }
    Ok((start, end))
}

/// `hh:mm:ss.mmm` (hours may have more than two digits) or `mm:ss.mmm`.
fn parse_vtt_timestamp(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("bad timestamp {s:?} (expected hh:mm:ss.mmm or mm:ss.mmm)");
    let (clock, millis) = s.split_once('.').ok_or_else(bad)?;
    if millis.len() != 3 || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m, sec] => (*h, *m, *sec),
        [m, sec] => ("0", *m, *sec),
        _ => return Err(bad()),
    };
    let digits = |p: &str, max_len: usize| -> std::result::Result<u64, String> {
        if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse::<u64>().map_err(|_| bad())
    };
    let h = digits(hours, 6)?;
    let m = digits(minutes, 2)?;
    let sec = digits(seconds, 2)?;
    if minutes.len() != 2 || seconds.len() != 2 || m > 59 || sec > 59 {
        return Err(bad());
    }
    let ms = ((h * 60 + m) * 60 + sec) * 1000 + digits(millis, 3)?;
    if ms > MAX_TIME_MS {
        return Err(format!(
            "timestamp {s:?} is beyond {} hours",
            MAX_TIME_MS / 3_600_000
        ));
    }
    Ok(ms)
}

/// Split a cue payload into (first voice's name, role from its class, plain text).
fn parse_cue_payload(payload: &str) -> (Option<String>, Option<SpeakerRole>, String) {
    let mut speaker: Option<String> = None;
    let mut class_role: Option<SpeakerRole> = None;
    let mut text = String::with_capacity(payload.len());
    let mut rest = payload;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            // An unclosed '<' is text (it should have been escaped as &lt;).
            text.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let tag = &after[..close];
        rest = &after[close + 1..];
        if speaker.is_none()
            && let Some((name, role)) = parse_voice_tag(tag)
        {
            speaker = name;
            class_role = role;
        }
    }
    text.push_str(rest);
    let text = collapse_spaces(&decode_entities(&text));
    let speaker = speaker
        .map(|s| collapse_spaces(&decode_entities(&s)))
        .filter(|s| !s.is_empty());
    (speaker, class_role, text)
}

/// `v Name`, `v.class1.class2 Name` → (name, role named by a class).
fn parse_voice_tag(tag: &str) -> Option<(Option<String>, Option<SpeakerRole>)> {
    let body = tag.strip_prefix('v')?;
    if !(body.is_empty() || body.starts_with(['.', ' ', '\t'])) {
        return None; // e.g. <vi>, not a voice tag
    }
    let (classes, name) = match body.find([' ', '\t']) {
        Some(i) => (&body[..i], body[i..].trim()),
        None => (body, ""),
    };
    let role = classes
        .split('.')
        .find_map(|c| match c.to_ascii_lowercase().as_str() {
            "agent" => Some(SpeakerRole::Agent),
            "customer" => Some(SpeakerRole::Customer),
            "unknown" => Some(SpeakerRole::Unknown),
            _ => None,
        });
    Some(((!name.is_empty()).then(|| name.to_string()), role))
}

/// Decode the character references WebVTT writers use; unknown ones stay as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&i| i <= 10).and_then(|semi| {
            let name = &after[..semi];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                "lrm" => Some('\u{200e}'),
                "rlm" => Some('\u{200f}'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32)
                    .filter(|c| *c != '\0'),
            }?;
            Some((ch, semi))
        });
        match decoded {
            Some((ch, semi)) => {
                out.push(ch);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------- JSON

fn parse_json_str(text: &str) -> Result<ImportedTranscript> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "invalid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let items = match &value {
        Value::Array(items) => items,
        Value::Object(obj) => match obj.get("segments") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(invalid("\"segments\" must be an array")),
            None => {
                return Err(invalid(
                    "a JSON transcript is an array of segments or an object with a \"segments\" array",
                ));
            }
        },
        _ => return Err(invalid("a JSON transcript is an array or an object")),
    };
    if items.len() > MAX_CUES {
        return Err(invalid(format!("more than {MAX_CUES} segments")));
    }
    let mut cues = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let cue = json_cue(item).map_err(|why| invalid(format!("segment {i}: {why}")))?;
        push_cue(&mut cues, cue)?;
    }
    Ok(ImportedTranscript {
        format: TranscriptFormat::Json,
        cues,
    })
}

fn json_cue(item: &Value) -> std::result::Result<ImportedCue, String> {
    let obj = item.as_object().ok_or("must be an object")?;
    let start_ms = json_time(obj, "start", "start_ms")?;
    let end_ms = json_time(obj, "end", "end_ms")?;
    if end_ms < start_ms {
        return Err(format!(
            "ends ({end_ms} ms) before it starts ({start_ms} ms)"
        ));
    }
    let text = match obj.get("text") {
        Some(Value::String(s)) => collapse_spaces(s),
        // A segment without text (e.g. callscope's own JSON for untranscribed speech).
        Some(Value::Null) | None => String::new(),
        Some(_) => return Err("\"text\" must be a string".into()),
    };
    let string_field = |key: &str| -> std::result::Result<Option<String>, String> {
        match obj.get(key) {
            Some(Value::String(s)) => Ok(Some(collapse_spaces(s)).filter(|s| !s.is_empty())),
            Some(Value::Null) | None => Ok(None),
            Some(_) => Err(format!("\"{key}\" must be a string")),
        }
    };
    let speaker = string_field("speaker")?;
    let role_field = string_field("role")?;
    let role = match (&role_field, &speaker) {
        (Some(r), _) => role_for_speaker(r),
        (None, Some(s)) => role_for_speaker(s),
        (None, None) => SpeakerRole::Unknown,
    };
    // With only a role given, it is the speaker's name too ("agent" → shown as given).
    let speaker = speaker.or(role_field);
    Ok(ImportedCue {
        start_ms,
        end_ms,
        role,
        speaker,
        text,
    })
}

/// A time given either in seconds (`secs_key`) or in milliseconds (`ms_key`), never both.
fn json_time(
    obj: &serde_json::Map<String, Value>,
    secs_key: &str,
    ms_key: &str,
) -> std::result::Result<u64, String> {
    match (obj.get(secs_key), obj.get(ms_key)) {
        (Some(_), Some(_)) => Err(format!(
            "give \"{secs_key}\" (seconds) or \"{ms_key}\" (milliseconds), not both"
        )),
        (Some(v), None) => {
            let secs = v
                .as_f64()
                .ok_or_else(|| format!("\"{secs_key}\" must be a number of seconds"))?;
            if !secs.is_finite() || secs < 0.0 || secs * 1000.0 > MAX_TIME_MS as f64 {
                return Err(format!("\"{secs_key}\" {secs} is out of range"));
            }
            Ok((secs * 1000.0).round() as u64)
        }
        (None, Some(v)) => {
            let ms = v.as_u64().ok_or_else(|| {
                format!("\"{ms_key}\" must be a non-negative integer number of milliseconds")
            })?;
            if ms > MAX_TIME_MS {
                return Err(format!("\"{ms_key}\" {ms} is out of range"));
            }
            Ok(ms)
        }
        (None, None) => Err(format!("missing \"{secs_key}\" or \"{ms_key}\"")),
    }
}

// ---------------------------------------------------------------- alignment

/// Snap each cue onto the speech VAD found, keeping the cue's text and speaker.
///
/// The rule, per cue:
/// 1. Candidates are the utterances overlapping the cue in time whose role is compatible
///    (when both the cue's and the utterance's roles are known they must be equal).
/// 2. The best candidate is the one with the most overlap; the cue takes its channel, and
///    only candidates on that channel are considered further.
/// 3. The cue spans the best candidate and every candidate lying mostly (at least half its
///    length) inside the cue: it starts where the first of them starts and ends where the
///    last ends. This moves a transcript's approximate boundaries onto real speech onsets
///    and ends, also when VAD split the cue's speech at a pause; an utterance the cue only
///    grazes is left to the cue it belongs to.
/// 4. Exception: when the utterance giving the new start is also overlapped by an earlier
///    compatible cue (VAD merged two cues' speech into one utterance), the start stays
///    where the transcript puts it (but not before that utterance starts); likewise for
///    the end and a later cue. So cues that share an utterance split it at their own
///    boundary instead of both taking all of it.
/// 5. A cue that overlaps no compatible utterance keeps its own times; its channel is the
///    one the utterances of its role use, else 0.
///
/// Role: the cue's when known, else the matched utterance's. Label: the cue's speaker
/// name, else the role's name. Segments come back ordered by start time.
pub fn align(transcript: &ImportedTranscript, utterances: &[Utterance]) -> Vec<Segment> {
    let mut sorted_utts: Vec<Utterance> = utterances.to_vec();
    sorted_utts.sort_by_key(|u| (u.start_ms, u.end_ms));
    let utts = TimeIndex::new(sorted_utts, |u| (u.start_ms, u.end_ms));

    let mut cue_order: Vec<(usize, &ImportedCue)> = transcript.cues.iter().enumerate().collect();
    cue_order.sort_by_key(|(i, c)| (c.start_ms, c.end_ms, *i));
    let cues = TimeIndex::new(cue_order, |(_, c)| (c.start_ms, c.end_ms));

    let mut segments: Vec<Segment> = transcript
        .cues
        .iter()
        .enumerate()
        .map(|(i, cue)| align_cue(i, cue, &utts, &cues))
        .collect();
    segments.sort_by_key(|s| (s.start_ms, s.end_ms));
    segments
}

/// Items sorted by start time, with the longest duration, so that everything overlapping
/// a time range is found by binary search plus a bounded scan instead of a full pass.
struct TimeIndex<T> {
    items: Vec<T>,
    span: fn(&T) -> (u64, u64),
    longest: u64,
}

impl<T> TimeIndex<T> {
    fn new(items: Vec<T>, span: fn(&T) -> (u64, u64)) -> Self {
        let longest = items
            .iter()
            .map(|t| {
                let (s, e) = span(t);
                e.saturating_sub(s)
            })
            .max()
            .unwrap_or(0);
        TimeIndex {
            items,
            span,
            longest,
        }
    }

    /// Items whose span overlaps `[start, end)` (a zero-length range counts as 1 ms).
    fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &T> {
        let end = end.max(start.saturating_add(1));
        let span = self.span;
        let from = self
            .items
            .partition_point(|t| span(t).0.saturating_add(self.longest) < start);
        let to = self.items.partition_point(|t| span(t).0 < end);
        self.items
            .get(from..to)
            .unwrap_or(&[])
            .iter()
            .filter(move |t| {
                overlap_ms(
                    start,
                    end,
                    span(t).0,
                    span(t).1.max(span(t).0.saturating_add(1)),
                ) > 0
            })
    }
}

fn roles_compatible(a: SpeakerRole, b: SpeakerRole) -> bool {
    a == SpeakerRole::Unknown || b == SpeakerRole::Unknown || a == b
}

fn overlap_ms(a_start: u64, a_end: u64, b_start: u64, b_end: u64) -> u64 {
    a_end.min(b_end).saturating_sub(a_start.max(b_start))
}

fn align_cue(
    index: usize,
    cue: &ImportedCue,
    utts: &TimeIndex<Utterance>,
    cues: &TimeIndex<(usize, &ImportedCue)>,
) -> Segment {
    // A zero-length cue still belongs to the utterance it sits in.
    let cue_end = cue.end_ms.max(cue.start_ms.saturating_add(1));
    let overlap = |u: &Utterance| overlap_ms(cue.start_ms, cue_end, u.start_ms, u.end_ms);
    let candidates: Vec<&Utterance> = utts
        .overlapping(cue.start_ms, cue.end_ms)
        .filter(|u| roles_compatible(cue.role, u.role) && overlap(u) > 0)
        .collect();
    let best = candidates
        .iter()
        .copied()
        .max_by_key(|u| (overlap(u), std::cmp::Reverse(u.start_ms)));

    let Some(best) = best else {
        let channel = utts
            .items
            .iter()
            .find(|u| cue.role != SpeakerRole::Unknown && u.role == cue.role)
            .map(|u| u.channel)
            .unwrap_or(0);
        return segment_for(cue, channel, cue.role, cue.start_ms, cue.end_ms);
    };
    let spanned: Vec<&Utterance> = candidates
        .iter()
        .copied()
        .filter(|u| u.channel == best.channel)
        .filter(|u| std::ptr::eq(*u, best) || overlap(u) * 2 >= u.end_ms.saturating_sub(u.start_ms))
        .collect();
    let first = spanned
        .iter()
        .copied()
        .min_by_key(|u| u.start_ms)
        .unwrap_or(best);
    let last = spanned
        .iter()
        .copied()
        .max_by_key(|u| u.end_ms)
        .unwrap_or(best);

    // Is utterance `u` shared with another compatible cue lying before (or after) this one?
    let shared = |u: &Utterance, before: bool| {
        cues.overlapping(u.start_ms, u.end_ms).any(|(j, other)| {
            *j != index
                && roles_compatible(other.role, u.role)
                && if before {
                    (other.start_ms, *j) < (cue.start_ms, index)
                } else {
                    (other.end_ms, *j) > (cue.end_ms, index)
                }
        })
    };
    let start_ms = if shared(first, true) {
        cue.start_ms.max(first.start_ms)
    } else {
        first.start_ms
    };
    let end_ms = if shared(last, false) {
        cue.end_ms.min(last.end_ms)
    } else {
        last.end_ms
    }
    .max(start_ms);
    let role = if cue.role == SpeakerRole::Unknown {
        best.role
    } else {
        cue.role
    };
    segment_for(cue, best.channel, role, start_ms, end_ms)
}

fn segment_for(
    cue: &ImportedCue,
    channel: u16,
    role: SpeakerRole,
    start_ms: u64,
    end_ms: u64,
) -> Segment {
    Segment {
        channel,
        role,
        speaker_label: cue
            .speaker
            .clone()
            .unwrap_or_else(|| role_label(role).to_string()),
        start_ms,
        end_ms,
        text: Some(cue.text.clone()),
        confidence: None,
        words: Vec::new(),
    }
}

/// The display name of a role, used when a cue names no speaker.
pub fn role_label(role: SpeakerRole) -> &'static str {
    match role {
        SpeakerRole::Agent => "Agent",
        SpeakerRole::Customer => "Customer",
        SpeakerRole::Unknown => "Speaker",
    }
}

//! Announcing how much audio bandwidth we want from a browser: Opus' `maxplaybackrate`
//! format parameter (RFC 7587 §6.1) written into the SDP answer str0m produced.
//!
//! str0m's Opus format parameters have no field for it, and the answer is only text for the
//! browser (str0m keeps its own state), so the parameter is added to the answer's text. A
//! browser that honours it (Chromium does) caps its encoder's bandwidth there: fewer bits on
//! the agent's uplink, less for us to decode, and nothing above it to record.

/// `sdp` with `maxplaybackrate=<hz>` on payload type `pt`'s format line in the first audio
/// section (added to its parameters, or a new `a=fmtp` line after its `a=rtpmap` when it had
/// none). A parameter already there is replaced. Lines keep the answer's own ending.
pub fn announce_max_playback_rate(sdp: &str, pt: u8, hz: u32) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let fmtp_prefix = format!("a=fmtp:{pt} ");
    let rtpmap_prefix = format!("a=rtpmap:{pt} ");
    let parameter = format!("maxplaybackrate={hz}");

    let mut out = String::with_capacity(sdp.len() + 64);
    let mut in_first_audio = false;
    let mut audio_seen = false;
    let mut done = false;
    let mut rtpmap_at: Option<usize> = None;
    let mut lines = sdp.split(eol).peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("m=") {
            if in_first_audio && !done {
                done = insert_after_rtpmap(&mut out, rtpmap_at, pt, &parameter, eol);
            }
            in_first_audio = !audio_seen && line.starts_with("m=audio ");
            audio_seen |= in_first_audio;
        }
        if in_first_audio
            && !done
            && let Some(params) = line.strip_prefix(&fmtp_prefix)
        {
            out.push_str(&fmtp_prefix);
            out.push_str(&with_parameter(params, &parameter));
            done = true;
        } else {
            if in_first_audio && line.starts_with(&rtpmap_prefix) {
                rtpmap_at = Some(out.len() + line.len());
            }
            out.push_str(line);
        }
        if lines.peek().is_some() {
            out.push_str(eol);
        }
    }
    if in_first_audio && !done {
        insert_after_rtpmap(&mut out, rtpmap_at, pt, &parameter, eol);
    }
    out
}

/// Inserts `a=fmtp:<pt> <parameter>` at `at` (the end of the rtpmap line); false when the
/// section had no rtpmap for `pt` (nothing to qualify).
fn insert_after_rtpmap(
    out: &mut String,
    at: Option<usize>,
    pt: u8,
    parameter: &str,
    eol: &str,
) -> bool {
    let Some(at) = at else { return false };
    out.insert_str(at, &format!("{eol}a=fmtp:{pt} {parameter}"));
    true
}

/// `params` (`k=v;k=v`) with any `maxplaybackrate` replaced by `parameter`.
fn with_parameter(params: &str, parameter: &str) -> String {
    let mut kept: Vec<&str> = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter(|p| {
            !p.split('=')
                .next()
                .is_some_and(|k| k.trim().eq_ignore_ascii_case("maxplaybackrate"))
        })
        .collect();
    kept.push(parameter);
    kept.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
        a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
        a=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn adds_the_parameter_to_the_opus_format_line_only() {
        let out = announce_max_playback_rate(ANSWER, 111, 16000);
        assert!(
            out.contains("\r\na=fmtp:111 minptime=10;useinbandfec=1;maxplaybackrate=16000\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("maxplaybackrate").count(), 1);
        assert!(out.contains("a=rtpmap:0 PCMU/8000\r\n"));
        assert_eq!(out.len(), ANSWER.len() + ";maxplaybackrate=16000".len());
    }

    #[test]
    fn writes_a_format_line_when_the_codec_had_none() {
        let bare = ANSWER.replace("a=fmtp:111 minptime=10;useinbandfec=1\r\n", "");
        let out = announce_max_playback_rate(&bare, 111, 16000);
        assert!(
            out.contains(
                "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 maxplaybackrate=16000\r\na=rtpmap:0"
            ),
            "{out}"
        );
        // Also when the rtpmap is the section's (and the answer's) last line.
        let last = "v=0\nm=audio 9 RTP/AVP 96\na=rtpmap:96 opus/48000/2";
        assert_eq!(
            announce_max_playback_rate(last, 96, 24000),
            "v=0\nm=audio 9 RTP/AVP 96\na=rtpmap:96 opus/48000/2\na=fmtp:96 maxplaybackrate=24000"
        );
    }

    #[test]
    fn replaces_a_parameter_already_there() {
        let with = ANSWER.replace("useinbandfec=1", "MaxPlaybackRate=48000; useinbandfec=1");
        let out = announce_max_playback_rate(&with, 111, 16000);
        assert!(
            out.contains("a=fmtp:111 minptime=10;useinbandfec=1;maxplaybackrate=16000\r\n"),
            "{out}"
        );
    }

    #[test]
    fn leaves_other_sections_and_unknown_payload_types_alone() {
        let two = format!(
            "{ANSWER}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 minptime=10\r\n"
        );
        let out = announce_max_playback_rate(&two, 111, 16000);
        assert_eq!(out.matches("maxplaybackrate=16000").count(), 1);
        assert!(out.ends_with("a=fmtp:111 minptime=10\r\n"), "{out}");
        assert_eq!(announce_max_playback_rate(ANSWER, 101, 16000), ANSWER);
        assert_eq!(announce_max_playback_rate("", 111, 16000), "");
        assert_eq!(
            announce_max_playback_rate("garbage without lines", 111, 16000),
            "garbage without lines"
        );
    }
}

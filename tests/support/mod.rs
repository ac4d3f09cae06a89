//! What the media end-to-end tests share: a `callscope serve` with users, registered baresip
//! phones playing a WAV, the audio checks (a heard signal is its source at one stable lag),
//! and the stored rows of a call (recording, times, media report).
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callscope_testkit::audio_compare::{
    LagMatch, Mono, best_lag, lag_spread, lag_stability, read_wav_channels, speech_wav,
};
use callscope_testkit::baresip::{AnswerMode, Baresip, BaresipConfig, Registration};
use callscope_testkit::callscope::{Callscope, CallscopeBuilder};

pub const WAIT: Duration = Duration::from_secs(15);
pub const AGENT: &str = "Thank you for calling the support line, my name is Alex. \
    Could you please confirm the account number and the postcode on the account?";
pub const CUSTOMER: &str = "Hello, yes, I was charged twice for the same order last week \
    and nobody has answered my emails about the refund so far.";

/// A builder with media debug logging and the given users (extension, password).
pub fn server_builder(users: &[(&str, &str)]) -> CallscopeBuilder {
    let mut builder = Callscope::builder(env!("CARGO_BIN_EXE_callscope")).env(
        "CALLSCOPE_LOG",
        &std::env::var("CALLSCOPE_TEST_LOG")
            .unwrap_or_else(|_| "info,rsipstack=warn,callscope_media=debug".into()),
    );
    for (ext, pw) in users {
        builder = builder.user(ext, pw);
    }
    builder
}

pub fn start_server(users: &[(&str, &str)]) -> Callscope {
    server_builder(users).start().expect("start callscope")
}

/// A baresip registered as `ext`, auto-answering, its microphone `wav`.
pub fn phone(server: &Callscope, ext: &str, pw: &str, wav: &Path, codecs: &[&str]) -> Baresip {
    phone_with(server, ext, pw, wav, codecs, |_| {})
}

/// [`phone`] with a last say on the configuration (e.g. its RTP port range).
pub fn phone_with(
    server: &Callscope,
    ext: &str,
    pw: &str,
    wav: &Path,
    codecs: &[&str],
    tweak: impl FnOnce(&mut BaresipConfig),
) -> Baresip {
    let mut config = BaresipConfig::new(ext, wav);
    config.answer_mode = AnswerMode::Auto;
    config.audio_codecs = codecs.iter().map(|c| c.to_string()).collect();
    config.domain = Some(server.realm().to_string());
    config.registration = Some(Registration {
        registrar: server.sip_addr(),
        auth_user: String::new(),
        password: pw.to_string(),
        regint: 300,
    });
    tweak(&mut config);
    let mut p = Baresip::start(&config).expect("start baresip");
    p.wait_registered(WAIT)
        .unwrap_or_else(|e| panic!("{ext} did not register: {e}\n{}", p.log_text()));
    p
}

/// How closely a heard signal must follow its source.
#[derive(Debug, Clone, Copy)]
pub struct Match {
    /// Normalised cross-correlation at the best lag over the whole signal.
    pub min_xcorr: f64,
    /// Per 2 s window: windows at least this similar count as aligned.
    pub window_xcorr: f64,
    /// Largest spread of the aligned windows' lags, in samples at the source's rate.
    pub max_lag_spread: isize,
    /// Whole 20 ms steps the lag may take during the call. 0 for everything that follows RTP
    /// timestamps (relay, recordings). A transcoded stream is played out through an adaptive
    /// jitter buffer, which adds a frame of delay when packets arrive late — on a loaded
    /// machine the engine's own stalls are enough — so what a phone hears of it may shift once
    /// by exactly one frame; the quality is then judged window by window.
    pub frame_steps: usize,
    /// Whole frames one such step may span. 1 for callscope's own playout; a peer that plays
    /// out through its own adaptive buffer (linphonec) may grow it by several frames at once
    /// when a loaded machine delays its packets.
    pub frames_per_step: isize,
}

/// Relayed or recorded G.711 and PCM: the source sample for sample.
pub const EXACT: Match = Match {
    min_xcorr: 0.9,
    window_xcorr: 0.8,
    max_lag_spread: 1,
    frame_steps: 0,
    frames_per_step: 1,
};

/// `heard` is `source` at one lag: ≥ 0.9 overall and the same lag (±1 sample) in every
/// spoken 2 s window. Returns the overall lag in seconds.
pub fn assert_matches(what: &str, source: &Mono, heard: &Mono) -> f64 {
    assert_matches_as(what, source, heard, EXACT).lag_s(source.rate)
}

/// [`assert_matches`] with the figures of `want`; returns the overall match.
pub fn assert_matches_as(what: &str, source: &Mono, heard: &Mono, want: Match) -> LagMatch {
    assert!(
        heard.duration_s() > 4.0,
        "{what}: only {:.2} s",
        heard.duration_s()
    );
    let m = best_lag(source, heard, 2.0).unwrap();
    eprintln!(
        "{what}: {} Hz, {:.2} s, xcorr {:.4} at lag {:.4} s",
        heard.rate,
        heard.duration_s(),
        m.xcorr,
        m.lag_s(source.rate)
    );
    let span = source.slice_s(0.0, heard.duration_s() + 2.0);
    let windows = lag_stability(&span, heard, 2.0, 0.5, -40.0).unwrap();
    let (n, lo, hi) = lag_spread(&windows, want.window_xcorr);
    eprintln!("{what}: {n} windows aligned, lags {lo}..={hi} samples");
    assert!(n >= 2, "{what}: {windows:?}");
    if want.frame_steps == 0 {
        // The windows tell a lag that moved from a signal that is not there at all.
        assert!(
            m.xcorr >= want.min_xcorr,
            "{what}: {m:?}; windows {windows:?}"
        );
        assert!(
            hi - lo <= want.max_lag_spread,
            "{what}: lag drifts {lo}..{hi}: {windows:?}"
        );
        return m;
    }
    // Jitter-buffered playout: the aligned windows' lags, in order, may change at most
    // `frame_steps` times and only by whole 20 ms frames (at most `frames_per_step`, ± the
    // spread); each stretch is the source at `min_xcorr` on average.
    let frame = source.rate as isize / 50;
    let aligned: Vec<LagMatch> = windows
        .iter()
        .filter_map(|w| w.best)
        .filter(|b| b.xcorr >= want.window_xcorr)
        .collect();
    let mut steps = 0;
    for pair in aligned.windows(2) {
        let step = (pair[1].lag - pair[0].lag).abs();
        if step > want.max_lag_spread {
            let frames = (step + frame / 2) / frame;
            assert!(
                (1..=want.frames_per_step).contains(&frames)
                    && (step - frames * frame).abs() <= want.max_lag_spread,
                "{what}: lag jumped by {step} samples, not 1..={} whole frames: {windows:?}",
                want.frames_per_step
            );
            steps += 1;
        }
    }
    assert!(
        steps <= want.frame_steps,
        "{what}: {steps} delay steps: {windows:?}"
    );
    let mean = aligned.iter().map(|b| b.xcorr).sum::<f64>() / aligned.len() as f64;
    assert!(
        mean >= want.min_xcorr,
        "{what}: windows average {mean:.3}: {windows:?}"
    );
    // Most of what was said came through aligned. A window a delay step falls into matches
    // neither lag well, and the first or last window may hold the peer's start or end: those
    // count as explained, not as lost audio.
    let spoken = windows.iter().filter(|w| w.best.is_some()).count();
    assert!(
        (aligned.len() + steps + 1) * 4 >= spoken * 3,
        "{what}: only {} of {spoken} spoken windows aligned ({steps} delay steps): {windows:?}",
        aligned.len()
    );
    m
}

/// Polls `f` every 200 ms until it yields, failing with the server's log after `limit`.
pub fn wait_for<T>(
    server: &Callscope,
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two espeak-ng voices at 8 kHz, 40 s each (longer than any call: baresip hangs up when
/// its source runs out).
pub struct Sources {
    _dir: tempfile::TempDir,
    pub a: PathBuf,
    pub b: PathBuf,
}

pub fn sources() -> Sources {
    let dir = tempfile::tempdir().unwrap();
    let a = speech_wav(&dir.path().join("a.wav"), "en-us", AGENT, 8000, 40.0).unwrap();
    let b = speech_wav(&dir.path().join("b.wav"), "en-gb+f3", CUSTOMER, 8000, 40.0).unwrap();
    Sources { _dir: dir, a, b }
}

/// A steady tone as a phone's microphone: silence in a recording of it can only be ours.
pub fn tone_wav(dir: &Path, name: &str, hz: u32) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["synth", "60", "sine", &hz.to_string(), "vol", "0.3"])
        .status()
        .expect("run sox");
    assert!(status.success());
    path
}

/// The call-id of the `nth` call (by INVITE time), once its record exists.
pub fn the_call_id(server: &Callscope, nth: usize) -> String {
    wait_for(server, "the call record", WAIT, || {
        server
            .query("SELECT call_id FROM call_sip ORDER BY invite_at")
            .unwrap()
            .get(nth)
            .map(|r| r[0].clone())
    })
}

/// The recording of the test's one recorded call, once its row exists.
pub fn the_recording(server: &Callscope) -> StoredRecording {
    let call_id = wait_for(server, "the call's recording", WAIT, || {
        server
            .query("SELECT call_id FROM recordings")
            .unwrap_or_default()
            .first()
            .map(|r| r[0].clone())
    });
    stored_recording(server, &call_id)
}

/// A call's finished recording: its `recordings` row and its channels.
pub struct StoredRecording {
    pub path: PathBuf,
    pub channels: u32,
    pub sample_rate: u32,
    pub recovered: bool,
    pub audio: Vec<Mono>,
}

/// Waits for the call's recording row, checks the file is final (no `.part` left) and
/// reads its channels.
pub fn stored_recording(server: &Callscope, call_id: &str) -> StoredRecording {
    // Twice the usual wait: the report is stored after the hangup, the file hashed and
    // probed, which a loaded machine can stretch.
    let rec = wait_for(server, "the recording row", 2 * WAIT, || {
        server
            .query(&format!(
                "SELECT path, channels, sample_rate, recovered FROM recordings WHERE call_id = '{call_id}'"
            ))
            .unwrap()
            .into_iter()
            .next()
    });
    let path = PathBuf::from(&rec[0]);
    assert!(
        path.exists() && !path.with_extension("wav.part").exists(),
        "{rec:?}"
    );
    let audio = read_wav_channels(&path).unwrap();
    StoredRecording {
        channels: rec[1].parse().unwrap(),
        sample_rate: rec[2].parse().unwrap(),
        recovered: rec[3] == "1",
        path,
        audio,
    }
}

/// Answer to hangup of an ended call, from `call_sip`, in ms.
pub fn answered_ms(server: &Callscope, call_id: &str) -> f64 {
    let rows = wait_for(server, "the call's end", WAIT, || {
        server
            .query(&format!(
                "SELECT end_at - answer_at FROM call_sip WHERE call_id = '{call_id}' AND end_at IS NOT NULL"
            ))
            .unwrap()
            .into_iter()
            .next()
    });
    rows[0].parse().unwrap()
}

/// The media report stored on the call (`call_sip.media_json`), once written.
pub fn media_report(server: &Callscope, call_id: &str) -> serde_json::Value {
    let row = wait_for(server, "the call's media report", WAIT, || {
        server
            .query(&format!(
                "SELECT media_json FROM call_sip WHERE call_id = '{call_id}' AND media_json IS NOT NULL"
            ))
            .unwrap()
            .into_iter()
            .next()
    });
    let media: serde_json::Value = serde_json::from_str(&row[0]).unwrap();
    eprintln!("media report: {media}");
    media
}

/// The DTMF events stored for a call: (digit, offset ms, duration ms), in time order.
pub fn dtmf_events(server: &Callscope, call_id: &str) -> Vec<(String, f64, f64)> {
    server
        .query(&format!(
            "SELECT json_extract(data, '$.digit'), offset_ms, duration_ms FROM call_media_events \
             WHERE call_id = '{call_id}' AND kind = 'dtmf' ORDER BY offset_ms"
        ))
        .unwrap()
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap(), r[2].parse().unwrap()))
        .collect()
}

/// Waits for the post-call job to leave the processing states; returns the call's status.
pub fn wait_processed(server: &Callscope, call_id: &str) -> String {
    wait_for(server, "the post-call job", Duration::from_secs(60), || {
        let row = server
            .query(&format!("SELECT status FROM calls WHERE id = '{call_id}'"))
            .unwrap()
            .into_iter()
            .next()?;
        (!matches!(row[0].as_str(), "received" | "transcribing" | "analyzing"))
            .then(|| row[0].clone())
    })
}

/// The pipeline found talk on both channels: agent and customer segments exist.
pub fn assert_both_roles(server: &Callscope, call_id: &str) {
    let roles = server
        .query(&format!(
            "SELECT DISTINCT speaker_role FROM transcript_segments WHERE call_id = '{call_id}' ORDER BY 1"
        ))
        .unwrap();
    assert_eq!(
        roles,
        vec![vec!["agent".to_string()], vec!["customer".to_string()]]
    );
}

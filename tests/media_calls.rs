//! Real audio through the real `callscope serve`: baresip A (its microphone one espeak-ng
//! voice) calls baresip B (another voice) by extension; callscope bridges the RTP, records
//! both legs and queues the post-call pipeline at hangup. Checked on the audio itself: each
//! phone heard the other's source, the recording's left channel is the agent's source and the
//! right the other party's (normalised cross-correlation ≥ 0.9 at one lag across the call),
//! DTMF became events, and quality figures were stored.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callscope_testkit::audio_compare::{
    Mono, best_lag, lag_spread, lag_stability, read_wav_channels, read_wav_mono, speech_wav,
};
use callscope_testkit::baresip::{AnswerMode, Baresip, BaresipConfig, Registration};
use callscope_testkit::callscope::Callscope;

const WAIT: Duration = Duration::from_secs(15);
const AGENT: &str = "Thank you for calling the support line, my name is Alex. \
    Could you please confirm the account number and the postcode on the account?";
const CUSTOMER: &str = "Hello, yes, I was charged twice for the same order last week \
    and nobody has answered my emails about the refund so far.";

fn start_server(users: &[(&str, &str)]) -> Callscope {
    start_server_with(users, &[])
}

fn start_server_with(users: &[(&str, &str)], env: &[(&str, &str)]) -> Callscope {
    let mut builder = Callscope::builder(env!("CARGO_BIN_EXE_callscope"))
        .env("CALLSCOPE_LOG", "info,rsipstack=warn,callscope_media=debug");
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    for (ext, pw) in users {
        builder = builder.user(ext, pw);
    }
    builder.start().expect("start callscope")
}

fn phone(server: &Callscope, ext: &str, pw: &str, wav: &Path, codecs: &[&str]) -> Baresip {
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
    let mut p = Baresip::start(&config).expect("start baresip");
    p.wait_registered(WAIT)
        .unwrap_or_else(|e| panic!("{ext} did not register: {e}\n{}", p.log_text()));
    p
}

/// `heard` is `source` at one lag: ≥ 0.9 overall and the same lag (±1 sample) in every
/// spoken 2 s window. Returns the overall lag in seconds.
fn assert_matches(what: &str, source: &Mono, heard: &Mono) -> f64 {
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
    assert!(m.xcorr >= 0.9, "{what}: {m:?}");
    let span = source.slice_s(0.0, heard.duration_s() + 2.0);
    let windows = lag_stability(&span, heard, 2.0, 0.5, -40.0).unwrap();
    let (n, lo, hi) = lag_spread(&windows, 0.8);
    eprintln!("{what}: {n} windows aligned, lags {lo}..={hi} samples");
    assert!(n >= 2, "{what}: {windows:?}");
    assert!(hi - lo <= 1, "{what}: lag drifts {lo}..{hi}: {windows:?}");
    m.lag_s(source.rate)
}

fn wait_for<T>(
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

/// Waits for the post-call job to leave the processing states; returns the call's status.
fn wait_processed(server: &Callscope, call_id: &str) -> String {
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
fn assert_both_roles(server: &Callscope, call_id: &str) {
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

struct Sources {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

fn sources() -> Sources {
    let dir = tempfile::tempdir().unwrap();
    let a = speech_wav(&dir.path().join("a.wav"), "en-us", AGENT, 8000, 40.0).unwrap();
    let b = speech_wav(&dir.path().join("b.wav"), "en-gb+f3", CUSTOMER, 8000, 40.0).unwrap();
    Sources { _dir: dir, a, b }
}

#[test]
fn baresip_to_baresip_is_relayed_recorded_and_processed() {
    let src = sources();
    let server = start_server(&[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")]);
    let mut a = phone(
        &server,
        "1001",
        "alice-pw-0001",
        &src.a,
        &["PCMU", "telephone-event"],
    );
    let mut b = phone(
        &server,
        "1002",
        "bob-pw-00002",
        &src.b,
        &["PCMU", "telephone-event"],
    );

    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("no answer: {e}\n{}", server.log()));
    b.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    a.send_dtmf("159#").unwrap();
    let mut got = String::new();
    for _ in 0..4 {
        let e = b
            .wait_event("CALL_DTMF_START", WAIT)
            .unwrap_or_else(|e| panic!("B got no relayed DTMF: {e}\n{}", server.log()));
        got.push_str(e.param.as_deref().unwrap_or("?"));
    }
    assert_eq!(got, "159#", "digits relayed to B");
    std::thread::sleep(Duration::from_secs(4));
    let b_stats = b.rtp_stats().unwrap();
    eprintln!("B's RTP stats through callscope: {b_stats:?}");
    assert!(b_stats.received >= 350 && b_stats.lost == 0, "{b_stats:?}");
    a.hangup().unwrap();
    a.wait_event("CALL_CLOSED", WAIT).unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();

    // Each phone heard the other's voice through the relay.
    let a_src = read_wav_mono(&src.a).unwrap();
    let b_src = read_wav_mono(&src.b).unwrap();
    let (a_heard, b_heard) = (a.received_recordings(), b.received_recordings());
    assert_eq!((a_heard.len(), b_heard.len()), (1, 1));
    assert_matches("B heard A", &a_src, &read_wav_mono(&b_heard[0]).unwrap());
    assert_matches("A heard B", &b_src, &read_wav_mono(&a_heard[0]).unwrap());

    // The recording: stored, two channels, agent (the caller, 1001) left, B right.
    let call_id = server
        .query("SELECT call_id FROM call_sip")
        .unwrap()
        .first()
        .map(|r| r[0].clone())
        .expect("one call");
    let rec = wait_for(&server, "the recording row", 2 * WAIT, || {
        server
            .query(&format!(
                "SELECT path, channels, sample_rate, duration_ms, recovered FROM recordings WHERE call_id = '{call_id}'"
            ))
            .unwrap()
            .into_iter()
            .next()
    });
    assert_eq!(
        (rec[1].as_str(), rec[2].as_str(), rec[4].as_str()),
        ("2", "8000", "0"),
        "{rec:?}"
    );
    let path = PathBuf::from(&rec[0]);
    assert!(path.exists() && !path.with_extension("wav.part").exists());
    let channels = read_wav_channels(&path).unwrap();
    assert_eq!(channels.len(), 2);
    let left_lag = assert_matches("recording left = agent A", &a_src, &channels[0]);
    let right_lag = assert_matches("recording right = B", &b_src, &channels[1]);
    // Both phones started their files at their own answer; the two channels line up with
    // the call, so the sources' offsets differ by at most the answer-to-media skew.
    assert!(
        (left_lag - right_lag).abs() < 0.5,
        "{left_lag} vs {right_lag}"
    );
    // Not swapped: the left channel is not B's voice.
    let wrong = best_lag(&b_src, &channels[0], 2.0).unwrap();
    assert!(wrong.xcorr < 0.3, "left channel matches B: {wrong:?}");
    // Its length is the answered call's length.
    let times = server
        .query(&format!(
            "SELECT end_at - answer_at FROM call_sip WHERE call_id = '{call_id}'"
        ))
        .unwrap();
    let call_ms: f64 = times[0][0].parse().unwrap();
    let rec_ms = channels[0].duration_s() * 1000.0;
    eprintln!("call {call_ms} ms, recording {rec_ms:.0} ms");
    assert!(
        (rec_ms - call_ms).abs() < 500.0,
        "call {call_ms} ms vs recording {rec_ms} ms"
    );

    // DTMF from A stored as events with digits, in order, inside the call.
    let dtmf = server
        .query(&format!(
            "SELECT json_extract(data, '$.digit'), offset_ms, duration_ms FROM call_media_events \
             WHERE call_id = '{call_id}' AND kind = 'dtmf' ORDER BY offset_ms"
        ))
        .unwrap();
    let digits: String = dtmf.iter().map(|r| r[0].clone()).collect();
    assert_eq!(digits, "159#", "{dtmf:?}");
    for r in &dtmf {
        let offset: f64 = r[1].parse().unwrap();
        assert!(offset > 3000.0 && offset < call_ms, "{dtmf:?}");
    }

    // Quality per leg stored on the call.
    let media: serde_json::Value = serde_json::from_str(
        &server
            .query(&format!(
                "SELECT media_json FROM call_sip WHERE call_id = '{call_id}'"
            ))
            .unwrap()[0][0],
    )
    .unwrap();
    eprintln!("media report: {media}");
    for leg in ["caller", "callee"] {
        let q = &media[leg];
        assert!(q["packets_received"].as_u64().unwrap() >= 350, "{leg}: {q}");
        assert_eq!(q["lost"].as_i64(), Some(0), "{leg}: {q}");
        assert!(q["mos"].as_f64().unwrap() > 4.0, "{leg}: {q}");
    }
    assert_eq!(media["recorded"], true);
    let metrics = server.metrics().unwrap();
    assert!(
        metrics["callscope_media_packets_received_total"] >= 700.0,
        "{metrics:?}"
    );
    assert_eq!(metrics["callscope_media_packets_lost_total"], 0.0);

    // The post-call pipeline ran on it (no ASR model here: talk turns without text).
    assert_eq!(
        wait_processed(&server, &call_id),
        "transcription_unavailable"
    );
    let layout = server
        .query(&format!(
            "SELECT channel_layout FROM calls WHERE id = '{call_id}'"
        ))
        .unwrap();
    assert_eq!(layout[0][0], "stereo_agent_left");
    assert_both_roles(&server, &call_id);

    a.quit().unwrap();
    b.quit().unwrap();
}

/// A steady tone as a phone's microphone: silence in a recording of it can only be ours.
fn tone_wav(dir: &Path, name: &str, hz: u32) -> PathBuf {
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

fn the_call_id(server: &Callscope, nth: usize) -> String {
    wait_for(server, "the call record", WAIT, || {
        server
            .query("SELECT call_id FROM call_sip ORDER BY invite_at")
            .unwrap()
            .get(nth)
            .map(|r| r[0].clone())
    })
}

/// Pause and resume by API write silence on both channels for exactly that stretch, kept as
/// an event; then the organization turns recording off and the next call has no recording.
#[test]
fn recording_pause_resume_and_policy_off() {
    let dir = tempfile::tempdir().unwrap();
    let (ta, tb) = (
        tone_wav(dir.path(), "a.wav", 440),
        tone_wav(dir.path(), "b.wav", 660),
    );
    let server = start_server(&[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")]);
    let http = server.http();
    let mut a = phone(&server, "1001", "alice-pw-0001", &ta, &["PCMA"]);
    let mut b = phone(&server, "1002", "bob-pw-00002", &tb, &["PCMA"]);

    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    let call_id = the_call_id(&server, 0);
    std::thread::sleep(Duration::from_secs(3));
    let (status, body) = http
        .post(
            &format!("/api/v1/calls/{call_id}/recording/pause"),
            &serde_json::json!({}),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let paused_at = Instant::now();
    // Pausing twice is a conflict, not a second pause.
    let (status, _) = http
        .post(
            &format!("/api/v1/calls/{call_id}/recording/pause"),
            &serde_json::json!({}),
        )
        .unwrap();
    assert_eq!(status, 409);
    std::thread::sleep(Duration::from_secs(3));
    let (status, body) = http
        .post(
            &format!("/api/v1/calls/{call_id}/recording/resume"),
            &serde_json::json!({}),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let pause_len = paused_at.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    a.hangup().unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();

    let rec = wait_for(&server, "the recording", 2 * WAIT, || {
        server
            .query(&format!(
                "SELECT path FROM recordings WHERE call_id = '{call_id}'"
            ))
            .unwrap()
            .into_iter()
            .next()
    });
    let channels = read_wav_channels(Path::new(&rec[0])).unwrap();
    let event = server
        .query(&format!(
            "SELECT offset_ms, duration_ms FROM call_media_events WHERE call_id = '{call_id}' AND kind = 'recording_paused'"
        ))
        .unwrap();
    assert_eq!(event.len(), 1, "{event:?}");
    let (ev_start, ev_len): (f64, f64) = (
        event[0][0].parse::<f64>().unwrap() / 1000.0,
        event[0][1].parse::<f64>().unwrap() / 1000.0,
    );
    assert!(
        (ev_len - pause_len).abs() < 0.3,
        "event {ev_len} s vs API {pause_len} s"
    );
    for (i, ch) in channels.iter().enumerate() {
        let gaps = callscope_testkit::audio_compare::silence_intervals(ch, 20, -50.0, 1.0);
        eprintln!("channel {i}: {:.2} s, silences {gaps:?}", ch.duration_s());
        assert_eq!(gaps.len(), 1, "channel {i}: {gaps:?}");
        assert!(
            (gaps[0].start_s - ev_start).abs() < 0.15,
            "channel {i}: {gaps:?} vs {ev_start}"
        );
        assert!(
            (gaps[0].len_s() - ev_len).abs() < 0.15,
            "channel {i}: {gaps:?} vs {ev_len}"
        );
    }

    // Recording off for the organization: the next call is bridged but not recorded.
    let (status, body) = http
        .put(
            "/api/v1/settings/recording",
            &serde_json::json!({ "record_calls": false }),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["effective"], false);
    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    let second = the_call_id(&server, 1);
    std::thread::sleep(Duration::from_secs(2));
    let (status, _) = http
        .post(
            &format!("/api/v1/calls/{second}/recording/pause"),
            &serde_json::json!({}),
        )
        .unwrap();
    assert_eq!(status, 409, "nothing to pause");
    a.hangup().unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();
    let media = wait_for(&server, "the second call's media report", WAIT, || {
        server
            .query(&format!("SELECT media_json FROM call_sip WHERE call_id = '{second}' AND media_json IS NOT NULL"))
            .unwrap()
            .into_iter()
            .next()
    });
    assert!(media[0].contains("\"recorded\":false"), "{media:?}");
    let rows = server
        .query(&format!(
            "SELECT COUNT(*) FROM recordings WHERE call_id = '{second}'"
        ))
        .unwrap();
    assert_eq!(rows[0][0], "0");
    a.quit().unwrap();
    b.quit().unwrap();
}

/// `kill -9` 20 s into a 40 s call: after the restart the recording holds the first ~20 s
/// (at most 1 s lost), plays, is marked recovered, and is processed.
#[test]
fn killed_mid_call_recording_is_recovered_and_processed() {
    let src = sources();
    let mut server = start_server(&[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")]);
    let mut a = phone(&server, "1001", "alice-pw-0001", &src.a, &["PCMU"]);
    let b = phone(&server, "1002", "bob-pw-00002", &src.b, &["PCMU"]);
    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    let answered = Instant::now();
    let call_id = the_call_id(&server, 0);
    std::thread::sleep(Duration::from_secs(20));
    server.kill9().unwrap();
    let cut_at = answered.elapsed().as_secs_f64();
    // The phones notice nothing yet; they are stopped before the server comes back.
    a.quit().unwrap();
    b.quit().unwrap();
    server.restart().unwrap();

    let rec = wait_for(&server, "the recovered recording", 2 * WAIT, || {
        server
            .query(&format!(
                "SELECT path, recovered, duration_ms FROM recordings WHERE call_id = '{call_id}'"
            ))
            .unwrap()
            .into_iter()
            .next()
    });
    assert_eq!(rec[1], "1", "{rec:?}");
    let path = PathBuf::from(&rec[0]);
    assert!(path.exists() && !path.with_extension("wav.part").exists());
    let channels = read_wav_channels(&path).unwrap();
    let kept = channels[0].duration_s();
    eprintln!("cut at {cut_at:.2} s after answer; recovered {kept:.2} s");
    assert!(
        kept > cut_at - 1.0 && kept <= cut_at + 0.2,
        "{kept} s of {cut_at} s"
    );
    assert_matches(
        "recovered left = A",
        &read_wav_mono(&src.a).unwrap(),
        &channels[0],
    );
    assert_matches(
        "recovered right = B",
        &read_wav_mono(&src.b).unwrap(),
        &channels[1],
    );
    let state = server
        .query(&format!(
            "SELECT state, hangup_cause FROM call_sip WHERE call_id = '{call_id}'"
        ))
        .unwrap();
    assert_eq!(
        state[0],
        vec!["ended".to_string(), "server_restart".to_string()]
    );
    let events = server
        .query(&format!(
            "SELECT COUNT(*) FROM call_media_events WHERE call_id = '{call_id}' AND kind = 'recording_recovered'"
        ))
        .unwrap();
    assert_eq!(events[0][0], "1");
    assert_eq!(
        wait_processed(&server, &call_id),
        "transcription_unavailable"
    );
}

/// `recording_format = "opus"`: the call is recorded as two-channel Opus in Ogg, which an
/// independent decoder (ffmpeg) reads back at the call's length with each voice on its side,
/// and the post-call pipeline processes it like the WAV.
#[test]
fn opus_recording_is_written_and_processed() {
    let src = sources();
    let server = start_server_with(
        &[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")],
        &[("CALLSCOPE_SIP_RECORDING_FORMAT", "opus")],
    );
    let mut a = phone(&server, "1001", "alice-pw-0001", &src.a, &["PCMU"]);
    let mut b = phone(&server, "1002", "bob-pw-00002", &src.b, &["PCMU"]);
    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    let call_id = the_call_id(&server, 0);
    std::thread::sleep(Duration::from_secs(8));
    a.hangup().unwrap();
    b.wait_event("CALL_CLOSED", WAIT).unwrap();
    let rec = wait_for(&server, "the recording", 2 * WAIT, || {
        server
            .query(&format!(
                "SELECT path, format, codec, channels FROM recordings WHERE call_id = '{call_id}'"
            ))
            .unwrap()
            .into_iter()
            .next()
    });
    assert!(rec[0].ends_with(".opus"), "{rec:?}");
    assert_eq!((rec[2].as_str(), rec[3].as_str()), ("opus", "2"), "{rec:?}");
    // ffmpeg decodes it to 8 kHz stereo; compare each channel with its source.
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("decoded.wav");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", &rec[0], "-ar", "8000"])
        .arg(&wav)
        .status()
        .unwrap();
    assert!(status.success());
    let channels = read_wav_channels(&wav).unwrap();
    assert_eq!(channels.len(), 2);
    let call_ms: f64 = server
        .query(&format!(
            "SELECT end_at - answer_at FROM call_sip WHERE call_id = '{call_id}'"
        ))
        .unwrap()[0][0]
        .parse()
        .unwrap();
    let rec_ms = channels[0].duration_s() * 1000.0;
    assert!(
        (rec_ms - call_ms).abs() < 500.0,
        "call {call_ms} ms vs recording {rec_ms} ms"
    );
    assert_matches(
        "opus left = A",
        &read_wav_mono(&src.a).unwrap(),
        &channels[0],
    );
    assert_matches(
        "opus right = B",
        &read_wav_mono(&src.b).unwrap(),
        &channels[1],
    );
    assert_eq!(
        wait_processed(&server, &call_id),
        "transcription_unavailable"
    );
    assert_both_roles(&server, &call_id);
    a.quit().unwrap();
    b.quit().unwrap();
}

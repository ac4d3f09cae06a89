//! Real audio through the real `callscope serve`: baresip A (its microphone one espeak-ng
//! voice) calls baresip B (another voice) by extension; callscope bridges the RTP, records
//! both legs and queues the post-call pipeline at hangup. Checked on the audio itself: each
//! phone heard the other's source, the recording's left channel is the agent's source and the
//! right the other party's (normalised cross-correlation ≥ 0.9 at one lag across the call),
//! DTMF became events, and quality figures were stored.

mod support;

use std::time::{Duration, Instant};

use callscope_testkit::audio_compare::{Mono, best_lag, read_wav_channels, read_wav_mono};
use callscope_testkit::callscope::Callscope;
use support::{
    WAIT, answered_ms, assert_both_roles, assert_matches, dtmf_events, media_report, phone,
    server_builder, sources, start_server, stored_recording, the_call_id, tone_wav, wait_for,
    wait_processed,
};

#[test]
fn baresip_to_baresip_is_relayed_recorded_and_processed() {
    let src = sources();
    // Live talk turns on: the taps reach the transcription side during the call.
    let server = server_builder(&[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")])
        .env("CALLSCOPE_SIP_LIVE_UTTERANCES", "true")
        .start()
        .expect("start callscope");
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
    // Before anyone hangs up, both parties' first turns were found live and stored.
    let live_call = the_call_id(&server, 0);
    let live_roles = server
        .query(&format!(
            "SELECT DISTINCT json_extract(data, '$.role') FROM call_media_events \
             WHERE call_id = '{live_call}' AND kind = 'utterance' ORDER BY 1"
        ))
        .unwrap();
    assert_eq!(
        live_roles,
        vec![vec!["agent".to_string()], vec!["customer".to_string()]],
        "live turns during the call"
    );
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
    let call_id = the_call_id(&server, 0);
    let rec = stored_recording(&server, &call_id);
    assert_eq!(
        (rec.channels, rec.sample_rate, rec.recovered),
        (2, 8000, false),
        "{}",
        rec.path.display()
    );
    let channels = rec.audio;
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
    let call_ms = answered_ms(&server, &call_id);
    let rec_ms = channels[0].duration_s() * 1000.0;
    eprintln!("call {call_ms} ms, recording {rec_ms:.0} ms");
    assert!(
        (rec_ms - call_ms).abs() < 500.0,
        "call {call_ms} ms vs recording {rec_ms} ms"
    );

    // DTMF from A stored as events with digits, in order, inside the call.
    let dtmf = dtmf_events(&server, &call_id);
    let digits: String = dtmf.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(digits, "159#", "{dtmf:?}");
    for (_, offset, _) in &dtmf {
        assert!(*offset > 3000.0 && *offset < call_ms, "{dtmf:?}");
    }

    // Quality per leg stored on the call.
    let media = media_report(&server, &call_id);
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
    // Live and post-call turns tell the same conversation: as many turns per role, give or
    // take the one cut at each end (live taps start with the media, the file at the answer).
    for role in ["agent", "customer"] {
        let count = |sql: String| -> i64 { server.query(&sql).unwrap()[0][0].parse().unwrap() };
        let live = count(format!(
            "SELECT COUNT(*) FROM call_media_events WHERE call_id = '{call_id}' \
             AND kind = 'utterance' AND json_extract(data, '$.role') = '{role}'"
        ));
        let after = count(format!(
            "SELECT COUNT(*) FROM transcript_segments WHERE call_id = '{call_id}' AND speaker_role = '{role}'"
        ));
        eprintln!("{role}: {live} live turns, {after} after the call");
        assert!(
            live > 0 && (live - after).abs() <= 2,
            "{role}: live {live} vs {after}"
        );
    }

    a.quit().unwrap();
    b.quit().unwrap();
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

    let channels = stored_recording(&server, &call_id).audio;
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
    let media = media_report(&server, &second);
    assert_eq!(media["recorded"], false, "{media}");
    let rows = server
        .query(&format!(
            "SELECT COUNT(*) FROM recordings WHERE call_id = '{second}'"
        ))
        .unwrap();
    assert_eq!(rows[0][0], "0");
    a.quit().unwrap();
    b.quit().unwrap();
}

/// Callscope (with `env` set) bridges baresip A's call to B for `seconds`, is `kill -9`ed,
/// and comes back with the phones gone. The server, the call, and when after the answer the
/// kill came.
fn call_cut_by_kill_9(env: &[(&str, &str)], seconds: u64) -> (Callscope, String, f64) {
    let src = sources();
    let mut builder = server_builder(&[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")]);
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    let mut server = builder.start().expect("start callscope");
    let mut a = phone(&server, "1001", "alice-pw-0001", &src.a, &["PCMU"]);
    let b = phone(&server, "1002", "bob-pw-00002", &src.b, &["PCMU"]);
    a.dial(&format!("sip:1002@{}", server.realm())).unwrap();
    a.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    let answered = Instant::now();
    let call_id = the_call_id(&server, 0);
    std::thread::sleep(Duration::from_secs(seconds));
    server.kill9().unwrap();
    let cut_at = answered.elapsed().as_secs_f64();
    // The phones notice nothing yet; they are stopped before the server comes back.
    a.quit().unwrap();
    b.quit().unwrap();
    server.restart().unwrap();
    (server, call_id, cut_at)
}

/// What a recording recovered after `kill -9` must be, whatever its format: as long as the
/// call had got (at most 1 s lost), each voice on its side, the recovery an event, and the
/// post-call pipeline run on it.
fn assert_recovered_and_processed(
    server: &Callscope,
    call_id: &str,
    channels: &[Mono],
    cut_at: f64,
) {
    let src = sources();
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
    let events = server
        .query(&format!(
            "SELECT COUNT(*) FROM call_media_events WHERE call_id = '{call_id}' AND kind = 'recording_recovered'"
        ))
        .unwrap();
    assert_eq!(events[0][0], "1");
    assert_eq!(wait_processed(server, call_id), "transcription_unavailable");
}

/// `kill -9` 20 s into a 40 s call: after the restart the recording holds the first ~20 s
/// (at most 1 s lost), plays, is marked recovered, and is processed.
#[test]
fn killed_mid_call_recording_is_recovered_and_processed() {
    let (server, call_id, cut_at) = call_cut_by_kill_9(&[], 20);
    let rec = stored_recording(&server, &call_id);
    assert!(rec.recovered, "{}", rec.path.display());
    let state = server
        .query(&format!(
            "SELECT state, hangup_cause FROM call_sip WHERE call_id = '{call_id}'"
        ))
        .unwrap();
    assert_eq!(
        state[0],
        vec!["ended".to_string(), "server_restart".to_string()]
    );
    assert_recovered_and_processed(&server, &call_id, &rec.audio, cut_at);
}

/// An Opus recording decoded by an independent decoder (ffmpeg) to 8 kHz, one signal per
/// channel; each is then compared with its source.
fn decode_opus(path: &str) -> Vec<Mono> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("decoded.wav");
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i", path, "-ar", "8000"])
        .arg(&wav)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let channels = read_wav_channels(&wav).unwrap();
    assert_eq!(channels.len(), 2, "{path}");
    channels
}

/// `recording_format = "opus"`: the call is recorded as two-channel Opus in Ogg, which an
/// independent decoder (ffmpeg) reads back at the call's length with each voice on its side,
/// and the post-call pipeline processes it like the WAV.
#[test]
fn opus_recording_is_written_and_processed() {
    let src = sources();
    let server = server_builder(&[("1001", "alice-pw-0001"), ("1002", "bob-pw-00002")])
        .env("CALLSCOPE_SIP_RECORDING_FORMAT", "opus")
        .start()
        .expect("start callscope");
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
    let channels = decode_opus(&rec[0]);
    let call_ms = answered_ms(&server, &call_id);
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

/// `kill -9` mid-call with `recording_format = "opus"`: start-up repairs the `.opus.part`
/// (whole Ogg pages up to the last flush), which ffmpeg then reads at the length the call
/// had reached (at most 1 s lost) with each voice on its side; marked recovered, processed.
#[test]
fn killed_mid_call_opus_recording_is_recovered_and_processed() {
    let (server, call_id, cut_at) =
        call_cut_by_kill_9(&[("CALLSCOPE_SIP_RECORDING_FORMAT", "opus")], 10);
    let rec = wait_for(&server, "the recovered recording", 2 * WAIT, || {
        server
            .query(&format!(
                "SELECT path, format, codec, recovered FROM recordings WHERE call_id = '{call_id}'"
            ))
            .unwrap()
            .into_iter()
            .next()
    });
    assert!(rec[0].ends_with(".opus"), "{rec:?}");
    assert_eq!(
        (rec[1].as_str(), rec[2].as_str(), rec[3].as_str()),
        ("ogg", "opus", "1"),
        "{rec:?}"
    );
    assert!(!std::path::Path::new(&format!("{}.part", rec[0])).exists());
    assert_recovered_and_processed(&server, &call_id, &decode_opus(&rec[0]), cut_at);
}

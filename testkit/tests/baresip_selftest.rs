//! baresip A calls baresip B directly on loopback (no callscope): proves the baresip
//! driver — config generation, ctrl_tcp commands and events, recordings.

use callscope_testkit::baresip::{AnswerMode, Baresip, BaresipConfig};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn tone(dir: &Path, name: &str, secs: u32, freq: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    let st = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&path)
        .args(["synth", &secs.to_string(), "sine", &freq.to_string()])
        .status()
        .expect("sox runs");
    assert!(st.success());
    path
}

#[test]
fn baresip_calls_baresip_directly_and_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let wav = tone(dir.path(), "a.wav", 30, 440);
    let mut a = Baresip::start(&BaresipConfig::new("alice", &wav)).unwrap();
    let mut b = Baresip::start(&BaresipConfig::new("bob", &wav)).unwrap();

    a.dial(&b.direct_uri()).unwrap();
    let up = a.wait_event("CALL_ESTABLISHED", T).unwrap();
    assert_eq!(up.peer_uri.as_deref(), Some(b.direct_uri().as_str()));
    let incoming = b.wait_event("CALL_ESTABLISHED", T).unwrap();
    assert!(incoming.peer_uri.unwrap_or_default().contains("alice"));
    // Media flows both ways on loopback.
    a.wait_event("CALL_RTPESTAB", T).unwrap();

    std::thread::sleep(Duration::from_millis(1500));
    a.hangup().unwrap();
    a.wait_event("CALL_CLOSED", T).unwrap();
    let closed = b.wait_event("CALL_CLOSED", T).unwrap();
    assert!(closed.call_id.is_some());

    // B recorded what it heard: more than a second of 8 kHz 16-bit audio.
    let rec = b.received_recordings();
    assert_eq!(rec.len(), 1, "{rec:?}");
    let bytes = std::fs::metadata(&rec[0]).unwrap().len();
    assert!(bytes > 16_000, "recording too short: {bytes} bytes");
    a.quit().unwrap();
    b.quit().unwrap();
}

#[test]
fn baresip_hold_resume_and_manual_answer() {
    let dir = tempfile::tempdir().unwrap();
    let wav = tone(dir.path(), "b.wav", 30, 300);
    let mut a = Baresip::start(&BaresipConfig::new("carol", &wav)).unwrap();
    let mut cfg = BaresipConfig::new("dave", &wav);
    cfg.answer_mode = AnswerMode::Manual;
    let mut b = Baresip::start(&cfg).unwrap();

    a.dial(&b.direct_uri()).unwrap();
    b.wait_event("CALL_INCOMING", T).unwrap();
    a.wait_event("CALL_RINGING", T).unwrap();
    b.accept().unwrap();
    a.wait_event("CALL_ESTABLISHED", T).unwrap();

    // Hold and resume are re-INVITEs: each gets an SDP answer from the far end.
    a.drain_events().unwrap();
    a.hold().unwrap();
    let answer = a.wait_event("CALL_REMOTE_SDP", T).unwrap();
    assert_eq!(answer.param.as_deref(), Some("answer"));
    a.resume().unwrap();
    a.wait_event("CALL_REMOTE_SDP", T).unwrap();

    // An unknown command is refused, and the driver says so.
    assert!(a.command_ok("no-such-command", None).is_err());

    b.hangup().unwrap();
    a.wait_event("CALL_CLOSED", T).unwrap();
    assert!(
        a.log_text().contains("hold"),
        "baresip's log shows the hold"
    );
}

#[test]
fn baresip_blind_transfer_reaches_the_third_phone() {
    let dir = tempfile::tempdir().unwrap();
    let wav = tone(dir.path(), "c.wav", 30, 350);
    let mut a = Baresip::start(&BaresipConfig::new("erin", &wav)).unwrap();
    let mut b = Baresip::start(&BaresipConfig::new("frank", &wav)).unwrap();
    let mut c = Baresip::start(&BaresipConfig::new("grace", &wav)).unwrap();

    a.dial(&b.direct_uri()).unwrap();
    a.wait_event("CALL_ESTABLISHED", T).unwrap();
    b.wait_event("CALL_ESTABLISHED", T).unwrap();

    // A sends REFER: B is asked to call C, and C answers B.
    a.transfer(&c.direct_uri()).unwrap();
    let at_c = c.wait_event("CALL_ESTABLISHED", T).unwrap();
    assert!(
        at_c.peer_uri.unwrap_or_default().contains("frank"),
        "C is talking to B"
    );
    // A's original call ends once the transfer went through.
    a.wait_event("CALL_CLOSED", T).unwrap();
    c.hangup().unwrap();
    c.wait_event("CALL_CLOSED", T).unwrap();
}

//! baresip A (its microphone: one espeak-ng voice) calls baresip B (another voice) directly,
//! no callscope: each side's recording of what it heard must be the other side's source
//! (normalised cross-correlation ≥ 0.9, lag constant across the call), for PCMU, PCMA and
//! Opus; DTMF sent by A arrives at B as events. This proves the peers and the comparison
//! harness the media end-to-end tests build on.

use callscope_testkit::audio_compare::{
    Mono, best_lag, lag_spread, lag_stability, read_wav_mono, speech_wav,
};
use callscope_testkit::baresip::{Baresip, BaresipConfig};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);
const AGENT: &str = "Thank you for calling the support line, my name is Alex. \
    Could you please confirm the account number and the postcode on the account?";
const CUSTOMER: &str = "Hello, yes, I was charged twice for the same order last week \
    and nobody has answered my emails about the refund so far.";

/// Checks that `heard` is `source` (≥ 0.9 at the best lag, same lag in every spoken
/// window); returns the match for reporting.
fn assert_heard(what: &str, source: &Mono, heard: &Path) {
    let rec = read_wav_mono(heard).unwrap();
    assert!(
        rec.duration_s() > 5.0,
        "{what}: only {} s recorded",
        rec.duration_s()
    );
    let m = best_lag(source, &rec, 2.0).unwrap();
    eprintln!(
        "{what}: rate {} Hz, {:.2} s, xcorr {:.4} at lag {:.4} s",
        rec.rate,
        rec.duration_s(),
        m.xcorr,
        m.lag_s(source.rate)
    );
    assert!(m.xcorr >= 0.9, "{what}: {m:?}");
    // Per 2 s window of the recording's span: the source window found at one lag.
    let src_span = source.slice_s(0.0, rec.duration_s() + 2.0);
    let windows = lag_stability(&src_span, &rec, 2.0, 0.5, -40.0).unwrap();
    let (n, lo, hi) = lag_spread(&windows, 0.8);
    eprintln!("{what}: {n} windows aligned, lags {lo}..={hi} samples");
    assert!(n >= 2, "{what}: {windows:?}");
    assert!(hi - lo <= 1, "{what}: lag drifts {lo}..{hi}: {windows:?}");
}

fn call_and_compare(codec: &str, dtmf: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let a_src = speech_wav(&dir.path().join("a.wav"), "en-us", AGENT, 8000, 40.0).unwrap();
    let b_src = speech_wav(&dir.path().join("b.wav"), "en-gb+f3", CUSTOMER, 8000, 40.0).unwrap();
    let mut ca = BaresipConfig::new("alice", &a_src);
    ca.audio_codecs = vec![codec.into(), "telephone-event".into()];
    let mut cb = BaresipConfig::new("bob", &b_src);
    cb.audio_codecs = ca.audio_codecs.clone();
    let mut a = Baresip::start(&ca).unwrap();
    let mut b = Baresip::start(&cb).unwrap();

    a.dial(&b.direct_uri()).unwrap();
    a.wait_event("CALL_ESTABLISHED", T).unwrap();
    b.wait_event("CALL_ESTABLISHED", T).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    if let Some(digits) = dtmf {
        a.send_dtmf(digits).unwrap();
        let mut got = String::new();
        for _ in digits.chars() {
            let e = b.wait_event("CALL_DTMF_START", T).unwrap();
            got.push_str(e.param.as_deref().unwrap_or("?"));
        }
        assert_eq!(got, digits, "B's DTMF events");
        assert!(a.send_dtmf("12x").is_err(), "a non-digit is refused");
    }
    std::thread::sleep(Duration::from_secs(4));
    let debug = a.audio_debug().unwrap();
    eprintln!("{codec}: A's audio_debug:\n{debug}");
    assert!(
        debug.to_lowercase().contains(&codec.to_lowercase()),
        "{debug}"
    );
    let stats = b.rtp_stats().unwrap();
    eprintln!("{codec}: B's RTP stats {stats:?}");
    assert!(stats.received >= 350 && stats.lost == 0, "{stats:?}");
    a.hangup().unwrap();
    a.wait_event("CALL_CLOSED", T).unwrap();
    b.wait_event("CALL_CLOSED", T).unwrap();

    let a_src = read_wav_mono(&a_src).unwrap();
    let b_src = read_wav_mono(&b_src).unwrap();
    let b_heard = b.received_recordings();
    let a_heard = a.received_recordings();
    assert_eq!((a_heard.len(), b_heard.len()), (1, 1));
    assert_heard(&format!("{codec}: B heard A"), &a_src, &b_heard[0]);
    assert_heard(&format!("{codec}: A heard B"), &b_src, &a_heard[0]);
    // And a mismatch is caught: what B heard is not B's own voice.
    let wrong = best_lag(&b_src, &read_wav_mono(&b_heard[0]).unwrap(), 2.0).unwrap();
    assert!(
        wrong.xcorr < 0.3,
        "{codec}: B's recording matches B's source: {wrong:?}"
    );
    a.quit().unwrap();
    b.quit().unwrap();
}

#[test]
fn pcmu_both_ways_with_dtmf() {
    call_and_compare("PCMU", Some("159#"));
}

#[test]
fn pcma_both_ways() {
    call_and_compare("PCMA", None);
}

#[test]
fn opus_both_ways() {
    call_and_compare("opus", None);
}

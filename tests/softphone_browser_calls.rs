//! Real calls through the softphone page: `callscope serve` with a trunk, baresip as the
//! customer's phone on it, and the agent in Chromium (playwright-core) with a speech WAV as
//! its microphone. The DID rings the page (banner with caller and DID), the agent answers
//! with a click, the page shows connected, busy, the timer and the connection quality.
//! Then either the agent hangs up from the page (the phone's call ends; the phone heard the
//! browser's microphone and the recording's agent channel holds it), or mute, hold and DTMF
//! go through callscope and the customer hangs up. Screenshots of each state go to
//! `<target dir>/softphone-artifacts/`.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callscope_testkit::audio_compare::{Mono, best_lag, read_wav_mono, silence_intervals};
use callscope_testkit::baresip::{AnswerMode, Baresip, BaresipConfig};
use callscope_testkit::browser::Softphones;
use callscope_testkit::callscope::Callscope;
use serde_json::Value;
use support::{WAIT, media_report, server_builder, sources, the_recording};

const DID: &str = "+14155550177";
const CALLER: &str = "customer";
const TRUNK_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const EXTENSION: &str = "1001";
const PASSWORD: &str = "page-call-pw-1001";
const AGENT: &str = "alice";
/// Connecting a call includes ICE and DTLS with a cold Chromium on a busy machine.
const CONNECT: Duration = Duration::from_secs(30);

/// One browser call at a time: each test runs callscope, Chromium and baresip with live
/// audio; on this 2-core machine several at once starve each other and what a phone hears
/// degrades for reasons that are not the code under test.
static ONE_CALL_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_call_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next one still runs alone.
    ONE_CALL_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn artifact_dir(test: &str) -> PathBuf {
    callscope_testkit::browser::artifact_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), test)
        .expect("the artifact dir")
}

fn server() -> Callscope {
    server_builder(&[(EXTENSION, PASSWORD)])
        .trunk((TRUNK_IP, 5999).into(), &["127.0.0.2"])
        .route_to_user(DID, EXTENSION)
        .start()
        .expect("start callscope")
}

/// The customer: a baresip on the trunk's address, not registered.
fn customer_phone(wav: &Path) -> Baresip {
    let mut config = BaresipConfig::new(CALLER, wav);
    config.bind_ip = TRUNK_IP;
    config.answer_mode = AnswerMode::Auto;
    config.audio_codecs = vec!["PCMU".into()];
    Baresip::start(&config).expect("start baresip")
}

/// Everything a test needs once the page has answered the customer's call.
struct AnsweredCall {
    _alone: std::sync::MutexGuard<'static, ()>,
    server: Callscope,
    phones: Softphones,
    customer: Baresip,
    agent_wav: PathBuf,
    artifacts: PathBuf,
    _src: support::Sources,
}

impl AnsweredCall {
    /// `what` failed: the driver's log (with the page's signalling trace) and the server's.
    fn fail(&self, what: &str, e: &dyn std::fmt::Display) -> ! {
        panic!(
            "{what}: {e}\n--- driver ---\n{}\n--- server ---\n{}",
            self.phones.log_text(),
            self.server.log()
        )
    }

    fn shot(&mut self, name: &str) {
        let path = self.artifacts.join(name);
        if let Err(e) = self.phones.screenshot(AGENT, &path) {
            self.fail("screenshot", &e);
        }
    }
}

/// The agent signs in, goes available, the customer calls the DID, the banner shows the
/// caller and the DID, the agent clicks Answer: connected, busy, talking for a few seconds
/// with the page measuring the connection.
fn answered_call(test: &str) -> AnsweredCall {
    let alone = one_call_at_a_time();
    let artifacts = artifact_dir(test);
    let src = sources();
    let server = server();
    let phones = Softphones::start().unwrap_or_else(|e| panic!("browser driver: {e}"));
    let customer = customer_phone(&src.b);
    let mut call = AnsweredCall {
        _alone: alone,
        server,
        phones,
        customer,
        agent_wav: src.a.clone(),
        artifacts,
        _src: src,
    };
    let base = call.server.base_url();
    let wav = call.agent_wav.clone();
    if let Err(e) = call.phones.open(AGENT, &base, Some(&wav)) {
        call.fail("open", &e);
    }
    let realm = call.server.realm().to_string();
    match call.phones.login(AGENT, &realm, EXTENSION, PASSWORD) {
        Ok(reply) => assert_eq!(reply["view"], "phone", "{reply}"),
        Err(e) => call.fail("login", &e),
    }
    if let Err(e) = call.phones.set_presence(AGENT, "available") {
        call.fail("available", &e);
    }

    let uri = format!("sip:{DID}@{}", call.server.sip_addr());
    call.customer.dial(&uri).unwrap();
    let ringing = match call.phones.wait_state(AGENT, "#incoming", "visible") {
        Ok(r) => r,
        Err(e) => call.fail("the banner", &e),
    };
    let incoming = &ringing["state"]["incoming"];
    assert_eq!(incoming["did"], DID, "{ringing}");
    assert!(
        incoming["from"].as_str().unwrap_or("").contains(CALLER),
        "{ringing}"
    );
    call.shot("01-ringing.png");

    if let Err(e) = call.phones.answer(AGENT) {
        call.fail("answer", &e);
    }
    let connected =
        match call
            .phones
            .wait_attr_for(AGENT, "#call", "data-state", "connected", CONNECT)
        {
            Ok(r) => r,
            Err(e) => call.fail("connected", &e),
        };
    assert_eq!(connected["state"]["incoming"], Value::Null, "{connected}");
    if let Err(e) = call
        .phones
        .wait_attr(AGENT, "#presence", "data-presence", "busy")
    {
        call.fail("busy", &e);
    }
    if let Err(e) = call.customer.wait_event("CALL_ESTABLISHED", WAIT) {
        call.fail("the phone's call", &e);
    }

    // Talk for a while; the page measures the connection meanwhile.
    std::thread::sleep(Duration::from_secs(10));
    let state = call.phones.read_state(AGENT).unwrap();
    assert_ne!(state["quality"]["level"], "unknown", "{state}");
    assert!(state["quality"]["rtt_ms"].is_number(), "{state}");
    assert!(
        state["call"]["seconds"].as_u64().unwrap_or(0) >= 5,
        "{state}"
    );
    assert_eq!(state["call"]["peer"], incoming["from"], "{state}");
    call.shot("02-connected.png");
    call
}

/// What the phone heard on its first call, once baresip has finished writing it (its WAV
/// is completed a moment after the call closes).
fn phone_heard(phone: &Baresip, server_log: &str) -> PathBuf {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = 0;
    loop {
        if let Some(path) = phone.received_recordings().into_iter().next() {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if size > 1000 && size == last {
                return path;
            }
            last = size;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the phone's recording stays empty:\n{}\n--- server ---\n{server_log}",
            phone.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Skipped at the start of what a phone heard: the first seconds carry DTLS set-up and
/// jitter buffers settling (on a loaded machine the delay drifts by tens of ms there).
const SETTLE_S: f64 = 4.0;

/// After [`SETTLE_S`], `heard` is `source`: judged in 2 s windows, each at its own best
/// lag (a jitter buffer may step the delay by a frame or two between them), the median
/// window's cross-correlation ≥ 0.8 (Opus is lossy), over at least 2 windows.
fn assert_heard_steady(what: &str, source: &Mono, heard: &Mono) {
    let duration = heard.duration_s();
    let mut scores = Vec::new();
    let mut start = SETTLE_S;
    while start + 2.0 <= duration {
        let window = heard.slice_s(start, start + 2.0);
        let m = best_lag(source, &window, duration + 3.0).unwrap();
        scores.push((start, m.lag, m.xcorr));
        start += 2.0;
    }
    eprintln!("{what}: windows (start s, lag, xcorr) {scores:?} over {duration:.1} s");
    assert!(scores.len() >= 2, "{what}: only {duration:.1} s heard");
    let mut xcorrs: Vec<f64> = scores.iter().map(|s| s.2).collect();
    xcorrs.sort_by(f64::total_cmp);
    let median = xcorrs[xcorrs.len() / 2];
    assert!(
        median >= 0.8,
        "{what}: median window xcorr {median:.3}: {scores:?}"
    );
}

#[test]
fn the_page_answers_a_trunk_call_talks_and_hangs_up() {
    let mut call = answered_call("inbound_call_agent_hangs_up");

    // The agent hangs up from the page: both legs end, presence goes to wrap-up.
    if let Err(e) = call.phones.hangup(AGENT) {
        call.fail("hangup", &e);
    }
    let ended = match call.phones.wait_attr(AGENT, "#call", "data-state", "ended") {
        Ok(r) => r,
        Err(e) => call.fail("ended", &e),
    };
    assert_eq!(ended["state"]["call"]["reason"], "agent_hangup", "{ended}");
    if let Err(e) = call.customer.wait_event("CALL_CLOSED", WAIT) {
        call.fail("the phone's hangup", &e);
    }
    if let Err(e) = call
        .phones
        .wait_attr(AGENT, "#presence", "data-presence", "wrap_up")
    {
        call.fail("wrap-up", &e);
    }
    call.shot("03-ended.png");
    let console = call.phones.console(AGENT).unwrap();
    assert!(
        !console.iter().any(|l| l.starts_with("pageerror")),
        "{console:#?}"
    );

    // The recording's agent channel is the browser's microphone (≥ 0.8: Opus is lossy),
    // and the phone heard it.
    let agent_src = read_wav_mono(&call.agent_wav).unwrap();
    let server = &call.server;
    let rec = the_recording(server);
    let left = best_lag(&agent_src, &rec.audio[0], 3.0).unwrap();
    eprintln!("recording left = the browser's microphone: {left:?}");
    assert!(left.xcorr >= 0.8, "recording left: {left:?}");
    // The answer asked Chromium for wideband (`maxplaybackrate=16000`): it sent no more, and
    // the call was recorded at 16 kHz.
    assert_eq!(rec.sample_rate, 16000);
    let call_id = server.query("SELECT call_id FROM recordings").unwrap()[0][0].clone();
    let media = media_report(server, &call_id);
    let browser_leg = ["caller", "callee"]
        .iter()
        .map(|leg| &media[*leg])
        .find(|q| !q["webrtc"].is_null())
        .unwrap_or_else(|| panic!("no WebRTC leg in {media}"));
    let carried = browser_leg["audio_rate_received"].as_u64();
    assert!(
        carried.is_some_and(|hz| (8000..=16000).contains(&hz)),
        "Chromium's packets carried {carried:?} Hz audio: {browser_leg}"
    );
    // What Chromium's encoder chose, packet by packet (the benchmark's browsers follow it).
    let modes = &browser_leg["opus_modes_received"];
    let counted: u64 = ["silk", "hybrid", "celt"]
        .iter()
        .filter_map(|mode| modes[*mode].as_u64())
        .sum();
    let received = browser_leg["packets_received"].as_u64().unwrap_or(0);
    let bytes = browser_leg["bytes_received"].as_u64().unwrap_or(0);
    eprintln!(
        "Chromium's Opus: {modes} over {received} packets, {} bytes each on average",
        bytes / received.max(1)
    );
    assert!(
        counted > 0 && counted <= received,
        "modes {modes} against {received} packets received: {browser_leg}"
    );
    let heard_path = phone_heard(&call.customer, &call.server.log());
    let _ = std::fs::copy(&heard_path, call.artifacts.join("phone-heard.wav"));
    let _ = std::fs::copy(&rec.path, call.artifacts.join("recording.wav"));
    let phone_heard = read_wav_mono(&heard_path).unwrap();
    assert_heard_steady("the phone heard the browser", &agent_src, &phone_heard);
    eprintln!("softphone screenshots: {}", call.artifacts.display());
}

#[test]
fn mute_hold_and_dtmf_from_the_page_then_the_customer_hangs_up() {
    let mut call = answered_call("inbound_call_controls");

    // Mute and hold, 3 s each: callscope confirms each (call_update), the page shows it.
    if let Err(e) = call.phones.mute(AGENT) {
        call.fail("mute", &e);
    }
    call.shot("03-muted.png");
    std::thread::sleep(Duration::from_secs(3));
    if let Err(e) = call.phones.unmute(AGENT) {
        call.fail("unmute", &e);
    }
    std::thread::sleep(Duration::from_secs(3));
    if let Err(e) = call.phones.hold(AGENT) {
        call.fail("hold", &e);
    }
    call.shot("04-held.png");
    std::thread::sleep(Duration::from_secs(3));
    if let Err(e) = call.phones.resume(AGENT) {
        call.fail("resume", &e);
    }
    std::thread::sleep(Duration::from_secs(2));
    if let Err(e) = call.phones.dtmf(AGENT, "12#") {
        call.fail("dtmf", &e);
    }
    std::thread::sleep(Duration::from_secs(1));
    let state = call.phones.read_state(AGENT).unwrap();
    assert_eq!(state["call"]["dtmf_sent"], "12#", "{state}");
    assert_eq!(state["notice"], Value::Null, "{state}");

    // The customer hangs up: the page's call ends with the reason.
    call.customer.hangup().unwrap();
    let ended = match call.phones.wait_attr(AGENT, "#call", "data-state", "ended") {
        Ok(r) => r,
        Err(e) => call.fail("ended", &e),
    };
    assert_eq!(ended["state"]["call"]["reason"], "remote_hangup", "{ended}");
    call.shot("05-customer-hung-up.png");

    // What the customer was sent is the recording's agent channel: the microphone's speech
    // (pauses well under 2 s) with two 3 s silences, the mute and the hold. The digits went
    // to the phone as RFC 4733 and are stored as sent.
    let server = &call.server;
    let rec = the_recording(server);
    let _ = std::fs::copy(&rec.path, call.artifacts.join("recording.wav"));
    let silences = silence_intervals(&rec.audio[0], 20, -45.0, 2.0);
    eprintln!("the agent's channel is silent at {silences:?}");
    let muted_or_held = silences
        .iter()
        .filter(|s| (2.3..=4.2).contains(&s.len_s()))
        .count();
    assert!(muted_or_held >= 2, "mute and hold as silence: {silences:?}");
    let digits = server
        .query("SELECT data FROM call_media_events WHERE kind = 'dtmf'")
        .unwrap_or_default();
    assert_eq!(digits.len(), 3, "{digits:?}");
    eprintln!("softphone screenshots: {}", call.artifacts.display());
}

/// Click-to-call from the page: the number typed on the page goes out through the trunk to
/// the customer's phone (auto-answering), the page shows dialing then connected; a dropped
/// WebSocket mid-call comes back without touching the call (same call, still connected,
/// audio still flowing), and the hangup from the page goes over the new socket and ends the
/// phone's call.
#[test]
fn click_to_call_from_the_page_survives_a_socket_drop() {
    const NUMBER: &str = "+14155550123";
    let _alone = one_call_at_a_time();
    let artifacts = artifact_dir("click_to_call");
    let src = sources();
    // The phone's account is the dialled number: baresip takes only calls to its own user.
    let mut config = BaresipConfig::new(NUMBER, &src.b);
    config.bind_ip = TRUNK_IP;
    config.answer_mode = AnswerMode::Auto;
    config.audio_codecs = vec!["PCMU".into()];
    let mut customer = Baresip::start(&config).expect("start baresip");
    let server = server_builder(&[(EXTENSION, PASSWORD)])
        .trunk(customer.sip_addr(), &["127.0.0.2"])
        .start()
        .expect("start callscope");
    let mut phones = Softphones::start().unwrap_or_else(|e| panic!("browser driver: {e}"));
    macro_rules! ok {
        ($what:expr, $e:expr) => {
            $e.unwrap_or_else(|e| {
                panic!(
                    "{}: {e}\n--- driver ---\n{}\n--- server ---\n{}\n--- customer ---\n{}",
                    $what,
                    phones.log_text(),
                    server.log(),
                    customer.log_text()
                )
            })
        };
    }
    ok!("open", phones.open(AGENT, &server.base_url(), Some(&src.a)));
    let reply = ok!(
        "login",
        phones.login(AGENT, server.realm(), EXTENSION, PASSWORD)
    );
    assert_eq!(reply["view"], "phone", "{reply}");
    // callscope places calls only for a softphone that is available.
    ok!("available", phones.set_presence(AGENT, "available"));

    let dialing = ok!("dial", phones.dial(AGENT, NUMBER));
    assert_eq!(dialing["state"]["call"]["peer"], NUMBER, "{dialing}");
    let connected = ok!(
        "connected",
        phones.wait_attr_for(AGENT, "#call", "data-state", "connected", CONNECT)
    );
    let call_id = connected["state"]["call"]["call_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!call_id.is_empty(), "{connected}");
    customer
        .wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    ok!(
        "screenshot",
        phones.screenshot(AGENT, &artifacts.join("01-outbound-connected.png"))
    );
    // Audio reaches the page before the drop (the page samples its statistics each second).
    let before = ok!(
        "audio before the drop",
        phones.wait_attr_for(
            AGENT,
            "#quality",
            "data-quality",
            "good",
            Duration::from_secs(8)
        )
    );
    assert!(
        before["state"]["quality"]["jitter_ms"].is_number(),
        "{before}"
    );
    std::thread::sleep(Duration::from_secs(4));

    // The socket drops mid-call: the page reconnects, the new `hello` lists the call, the
    // page keeps it (same call, still connected, its media untouched).
    ok!("drop_socket", phones.drop_socket(AGENT));
    let back = ok!(
        "reconnect",
        phones.wait_attr(AGENT, "#connection", "data-hellos", "2")
    );
    assert_eq!(back["state"]["call"]["state"], "connected", "{back}");
    assert_eq!(back["state"]["call"]["call_id"], call_id.as_str(), "{back}");
    let trace = phones.log_text();
    assert!(
        trace.contains(&format!("\"calls\":[{{\"call_id\":\"{call_id}\"")),
        "the second hello does not list the call:\n{trace}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let state = ok!("read_state", phones.read_state(AGENT));
    eprintln!("after the reconnect the page shows {state}");
    assert_eq!(state["call"]["state"], "connected", "{state}");
    // Media still flows: the page's statistics count what arrives.
    assert!(
        matches!(state["quality"]["level"].as_str(), Some("good" | "fair")),
        "{state}\n--- server ---\n{}",
        server.log()
    );
    assert!(
        state["call"]["seconds"].as_u64().unwrap_or(0) >= 7,
        "{state}"
    );
    ok!(
        "screenshot",
        phones.screenshot(AGENT, &artifacts.join("02-after-reconnect.png"))
    );

    // Hang up over the new socket: both legs end.
    ok!("hangup", phones.hangup(AGENT));
    let ended = ok!(
        "ended",
        phones.wait_attr(AGENT, "#call", "data-state", "ended")
    );
    assert_eq!(ended["state"]["call"]["reason"], "agent_hangup", "{ended}");
    customer
        .wait_event("CALL_CLOSED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));

    // The phone heard the browser across the reconnect.
    let agent_src = read_wav_mono(&src.a).unwrap();
    let heard_path = phone_heard(&customer, &server.log());
    let _ = std::fs::copy(&heard_path, artifacts.join("phone-heard.wav"));
    let phone_heard = read_wav_mono(&heard_path).unwrap();
    assert_heard_steady("the phone heard the browser", &agent_src, &phone_heard);
    // Its last seconds, well after the reconnect, are still the browser's microphone. Two
    // 1.5 s windows (the final 0.5 s, cut by the hangup, left out), each at its own lag: a
    // jitter buffer may step the delay inside one of them.
    let duration = phone_heard.duration_s();
    assert!(duration > 7.0, "{duration:.1} s");
    let tail: Vec<_> = [duration - 3.5, duration - 2.0]
        .into_iter()
        .map(|start| {
            let window = phone_heard.slice_s(start, start + 1.5);
            best_lag(&agent_src, &window, duration + 3.0).unwrap()
        })
        .collect();
    eprintln!("after the reconnect: {tail:?}");
    assert!(
        tail.iter().any(|m| m.xcorr >= 0.8),
        "after the reconnect: {tail:?}"
    );
    eprintln!("softphone screenshots: {}", artifacts.display());
}

/// Blind transfer between two browser agents, each in their own browser context: the
/// customer's call rings agent 1001, who answers and transfers it to 1002 by typing the
/// extension; 1002's page rings, 1002 answers, 1001's call ends as `transferred`, the
/// customer now talks with 1002 (hears 1002's microphone), and 1002 hangs up.
#[test]
fn transfer_from_one_browser_agent_to_another() {
    const BOB: &str = "bob";
    const BOB_EXT: &str = "1002";
    const BOB_PW: &str = "page-call-pw-1002";
    let _alone = one_call_at_a_time();
    let artifacts = artifact_dir("transfer_between_agents");
    let src = sources();
    let server = server_builder(&[(EXTENSION, PASSWORD), (BOB_EXT, BOB_PW)])
        .trunk((TRUNK_IP, 5999).into(), &["127.0.0.2"])
        .route_to_user(DID, EXTENSION)
        .start()
        .expect("start callscope");
    let mut customer = customer_phone(&src.b);
    let bob_wav = support::tone_wav(artifacts.as_path(), "bob-mic.wav", 660);
    let mut phones = Softphones::start().unwrap_or_else(|e| panic!("browser driver: {e}"));
    macro_rules! ok {
        ($what:expr, $e:expr) => {
            $e.unwrap_or_else(|e| {
                panic!(
                    "{}: {e}\n--- driver ---\n{}\n--- server ---\n{}",
                    $what,
                    phones.log_text(),
                    server.log()
                )
            })
        };
    }
    for (agent, ext, pw, wav) in [
        (AGENT, EXTENSION, PASSWORD, &src.a),
        (BOB, BOB_EXT, BOB_PW, &bob_wav),
    ] {
        ok!("open", phones.open(agent, &server.base_url(), Some(wav)));
        let reply = ok!("login", phones.login(agent, server.realm(), ext, pw));
        assert_eq!(reply["view"], "phone", "{reply}");
        ok!("available", phones.set_presence(agent, "available"));
    }

    customer
        .dial(&format!("sip:{DID}@{}", server.sip_addr()))
        .unwrap();
    ok!(
        "alice rings",
        phones.wait_state(AGENT, "#incoming", "visible")
    );
    ok!("alice answers", phones.answer(AGENT));
    ok!(
        "alice connected",
        phones.wait_attr_for(AGENT, "#call", "data-state", "connected", CONNECT)
    );
    customer
        .wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    std::thread::sleep(Duration::from_secs(3));

    ok!("transfer", phones.transfer(AGENT, BOB_EXT));
    let ringing = ok!("bob rings", phones.wait_state(BOB, "#incoming", "visible"));
    eprintln!("bob's banner: {}", ringing["state"]["incoming"]);
    ok!(
        "screenshot",
        phones.screenshot(BOB, &artifacts.join("01-bob-ringing.png"))
    );
    ok!("bob answers", phones.answer(BOB));
    ok!(
        "bob connected",
        phones.wait_attr_for(BOB, "#call", "data-state", "connected", CONNECT)
    );
    let alice = ok!(
        "alice's leg ends",
        phones.wait_attr(AGENT, "#call", "data-state", "ended")
    );
    assert_eq!(alice["state"]["call"]["reason"], "transferred", "{alice}");
    ok!(
        "screenshot",
        phones.screenshot(AGENT, &artifacts.join("02-alice-transferred.png"))
    );
    ok!(
        "screenshot",
        phones.screenshot(BOB, &artifacts.join("03-bob-connected.png"))
    );
    std::thread::sleep(Duration::from_secs(5));

    ok!("bob hangs up", phones.hangup(BOB));
    let ended = ok!(
        "bob's call ends",
        phones.wait_attr(BOB, "#call", "data-state", "ended")
    );
    assert_eq!(ended["state"]["call"]["reason"], "agent_hangup", "{ended}");
    customer
        .wait_event("CALL_CLOSED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));

    // After the transfer the customer heard bob's microphone (a 660 Hz tone): the last
    // seconds of what the phone heard are that tone, not alice's speech.
    let heard = read_wav_mono(&phone_heard(&customer, &server.log())).unwrap();
    let duration = heard.duration_s();
    let tail = heard.slice_s(duration - 3.0, duration - 0.5);
    let bob_src = read_wav_mono(&bob_wav).unwrap();
    let m = best_lag(&bob_src.slice_s(0.0, 6.0), &tail, 3.0).unwrap();
    eprintln!("the customer heard bob after the transfer: {m:?}");
    assert!(m.xcorr >= 0.6, "after the transfer: {m:?}");
    eprintln!("softphone screenshots: {}", artifacts.display());
}

//! Browser agents' calls end to end at the protocol level: a real `callscope serve`, the
//! agent's signalling spoken over `/api/v1/agent/ws` (testkit `agent_ws`), its WebRTC media
//! from aiortc (an independent WebRTC stack standing in for the browser's), and baresip as
//! the customer's phone on a trunk. The page itself, in Chromium, is driven by
//! `softphone_browser.rs`; here every server-side path is checked with exact audio.

#[path = "../media/tests/browser/mod.rs"]
mod browser;
mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use callscope_testkit::agent_ws::{AgentSocket, login};
use callscope_testkit::aiortc::AiortcPeer;
use callscope_testkit::audio_compare::{
    Mono, amplitude_at, best_lag, read_wav_mono, silence_intervals,
};
use callscope_testkit::baresip::{AnswerMode, Baresip, BaresipConfig};
use callscope_testkit::callscope::{Callscope, RouteTarget};
use serde_json::{Value, json};
use support::{Match, WAIT, assert_matches_as, server_builder, sources, the_recording, wait_for};

const DID: &str = "+14155550188";
const TRUNK_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const AGENT_PW: &str = "alice-pw-0001";
/// The customer's number: what the agent dials, and the caller id of the customer's calls.
const CUSTOMER_NUMBER: &str = "+14155550123";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// callscope with agent 1001 and a trunk on 127.0.0.2 whose DID rings 1001.
fn server() -> Callscope {
    server_with(5999, RouteTarget::User("1001".into()))
}

/// callscope with agents 1001 and 1002; the trunk's outbound calls go to 127.0.0.2:`port`
/// and its DID rings `target`.
fn server_with(trunk_port: u16, target: RouteTarget) -> Callscope {
    server_builder(&[("1001", AGENT_PW), ("1002", "bob-pw-00002")])
        .trunk((TRUNK_IP, trunk_port).into(), &["127.0.0.2"])
        .route(DID, target)
        .start()
        .expect("start callscope")
}

/// The browser takes the ringing or dialled call `call_id`: aiortc makes the offer, the
/// socket carries it (`answer`, or the `dial` already sent), aiortc applies our answer.
fn answer_in_browser(
    rt: &tokio::runtime::Runtime,
    agent: &mut AgentSocket,
    call_id: &str,
    play: &Path,
    record: &Path,
    seconds: f64,
) -> AiortcPeer {
    let mut browser = rt.block_on(AiortcPeer::start(play, record, seconds, ""));
    let reply = agent
        .request(
            json!({"type": "answer", "call_id": call_id, "sdp": browser.offer}),
            WAIT,
        )
        .expect("answer accepted");
    assert_eq!(reply["type"], "media_answer", "{reply}");
    rt.block_on(browser.answer(reply["sdp"].as_str().unwrap()));
    browser
}

/// The customer calls the DID; returns the call id the agent's page was offered.
fn ring_agent(server: &Callscope, agent: &mut AgentSocket, customer: &mut Baresip) -> String {
    customer
        .dial(&format!("sip:{DID}@{}", server.sip_addr()))
        .unwrap();
    let incoming = agent
        .wait_for("incoming", WAIT)
        .unwrap_or_else(|e| panic!("the call did not ring the page: {e}\n{}", server.log()));
    call_id_of(&incoming)
}

fn call_id_of(message: &Value) -> String {
    message["call"]["call_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no call id in {message}"))
        .to_string()
}

/// The newest stored call once it has ended: whether it was answered, and its hang-up cause.
fn ended_call(server: &Callscope) -> (bool, String) {
    wait_for(server, "the ended call", WAIT, || {
        let rows = server
            .query(
                "SELECT answer_at IS NOT NULL, COALESCE(hangup_cause, ''), state FROM call_sip \
                 ORDER BY invite_at DESC LIMIT 1",
            )
            .unwrap_or_default();
        rows.first()
            .filter(|r| r[2] == "ended")
            .map(|r| (r[0] == "1", r[1].clone()))
    })
}

/// Agent 1001 logged in with its softphone socket open and available.
fn available_agent(server: &Callscope) -> AgentSocket {
    available_as(server, "1001", AGENT_PW)
}

/// Agent `extension` logged in (a fresh login starts away), then made available.
fn available_as(server: &Callscope, extension: &str, password: &str) -> AgentSocket {
    let cookie = login(server.http_addr(), server.realm(), extension, password).expect("login");
    let (mut agent, hello) = AgentSocket::connect(server.http_addr(), &cookie).expect("socket");
    assert_eq!(hello["user"]["extension"], extension, "{hello}");
    assert_eq!(
        hello["presence"], "away",
        "a fresh login starts away: {hello}"
    );
    agent
        .send(&json!({"type": "set_presence", "status": "available"}))
        .unwrap();
    let presence = agent.wait_for("presence", WAIT).unwrap();
    assert_eq!(presence["status"], "available");
    agent
}

/// The customer: a baresip on the trunk's address, not registered, auto-answering calls to
/// its number (baresip takes only calls to its own user).
fn customer_phone(wav: &Path) -> Baresip {
    let mut config = BaresipConfig::new(CUSTOMER_NUMBER, wav);
    config.bind_ip = TRUNK_IP;
    config.answer_mode = AnswerMode::Auto;
    config.audio_codecs = vec!["PCMU".into()];
    Baresip::start(&config).expect("start baresip")
}

fn presence_is(status: &str) -> impl Fn(&Value) -> bool + '_ {
    move |m: &Value| m["status"] == status
}

/// What a peer heard live through Opus and a WebRTC stack's own adaptive jitter buffer
/// (aiortc's, or baresip's for what came from the browser): judged window by window, the
/// lag allowed to step by whole frames a few times as those buffers adapt. aiortc's recorder
/// also writes no silence for what was lost while DTLS came up, so the first step can be
/// several frames.
const LIVE_OPUS: Match = Match {
    min_xcorr: 0.8,
    window_xcorr: 0.7,
    max_lag_spread: 2,
    frame_steps: 3,
    frames_per_step: 8,
};

/// `heard` holds `source` (best-lag normalised cross-correlation ≥ `min`).
fn assert_heard(what: &str, source: &Mono, heard: &Mono, min: f64) {
    let m = best_lag(source, heard, 3.0).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: xcorr {:.3} at lag {:.3} s over {:.1} s",
        m.xcorr,
        m.lag_s(source.rate),
        heard.duration_s()
    );
    assert!(m.xcorr >= min, "{what}: {m:?}");
}

/// A trunk call to the DID rings the available browser agent (`incoming` with caller and
/// DID); the agent answers with its WebRTC offer; audio goes both ways (Opus in the browser,
/// PCMU on the trunk) and is recorded agent left, customer right; presence goes busy, then
/// wrap-up after the agent hangs up from the page, and the phone's call ends too.
#[test]
fn trunk_call_rings_the_browser_which_answers_talks_and_hangs_up() {
    let src = sources();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let server = server();
    let mut agent = available_agent(&server);
    let mut customer = customer_phone(&src.b);

    customer
        .dial(&format!("sip:{DID}@{}", server.sip_addr()))
        .unwrap();
    let incoming = agent.wait_for("incoming", WAIT).expect("the call rings");
    let call = &incoming["call"];
    let call_id = call["call_id"].as_str().unwrap().to_string();
    assert_eq!(call["state"], "ringing", "{incoming}");
    assert_eq!(call["did"], DID, "{incoming}");
    assert_eq!(call["direction"], "inbound", "{incoming}");
    assert_eq!(call["from"], CUSTOMER_NUMBER, "{incoming}");
    // The caller hears ringback while the page rings (our 180).
    customer
        .wait_event("CALL_RINGING", WAIT)
        .unwrap_or_else(|e| panic!("no 180 for the caller: {e}\n{}", server.log()));

    let heard = dir.path().join("browser-heard.wav");
    let mut browser = answer_in_browser(&rt, &mut agent, &call_id, &src.a, &heard, 16.0);
    let answered = agent.wait_for("answered", WAIT).unwrap();
    assert_eq!(answered["call"]["state"], "connected", "{answered}");
    agent
        .wait_where("presence", WAIT, presence_is("busy"))
        .unwrap();
    customer
        .wait_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));

    std::thread::sleep(Duration::from_secs(12));
    let started = Instant::now();
    agent
        .request(json!({"type": "hangup", "call_id": call_id}), WAIT)
        .expect("hangup");
    let ended = agent.wait_for("ended", WAIT).unwrap();
    assert_eq!(ended["reason"], "agent_hangup", "{ended}");
    customer
        .wait_event("CALL_CLOSED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    eprintln!(
        "hang-up reached the phone in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    agent
        .wait_where("presence", WAIT, presence_is("wrap_up"))
        .unwrap();
    rt.block_on(browser.next_message(Duration::from_secs(15), "done"));
    browser.kill();

    let agent_src = read_wav_mono(&src.a).unwrap();
    let customer_src = read_wav_mono(&src.b).unwrap();
    let browser_heard = read_wav_mono(&heard).unwrap();
    assert_matches_as(
        "the browser heard the customer",
        &customer_src,
        &browser_heard,
        LIVE_OPUS,
    );
    let phone_heard = read_wav_mono(&customer.received_recordings()[0]).unwrap();
    assert_matches_as(
        "the customer heard the browser",
        &agent_src,
        &phone_heard,
        LIVE_OPUS,
    );

    let rec = the_recording(&server);
    assert_eq!(rec.channels, 2);
    assert_heard("recording left = the agent", &agent_src, &rec.audio[0], 0.8);
    assert_heard(
        "recording right = the customer",
        &customer_src,
        &rec.audio[1],
        0.9,
    );
    let wrong = best_lag(&customer_src, &rec.audio[0], 3.0).unwrap();
    assert!(wrong.xcorr < 0.5, "left holds the customer: {wrong:?}");
}

/// A lone agent declines: the caller hears busy (486), the page is told `rejected`, and the
/// agent stays available.
#[test]
fn a_declined_call_gives_the_caller_busy() {
    let src = sources();
    let server = server();
    let mut agent = available_agent(&server);
    let mut customer = customer_phone(&src.b);
    let call_id = ring_agent(&server, &mut agent, &mut customer);
    agent
        .request(json!({"type": "reject", "call_id": call_id}), WAIT)
        .expect("reject");
    let ended = agent.wait_for("ended", WAIT).unwrap();
    assert_eq!(ended["reason"], "rejected", "{ended}");
    let closed = customer
        .wait_event("CALL_CLOSED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(
        closed.param.as_deref().unwrap_or_default().contains("486"),
        "{closed:?}"
    );
    let (answered, cause) = ended_call(&server);
    assert!(!answered);
    assert_eq!(cause, "busy");
    // Nothing about a declined call makes the agent busy.
    assert!(
        agent
            .wait_where("presence", Duration::from_secs(1), |_| true)
            .is_err(),
        "presence changed: {:?}",
        agent.seen
    );
    // The same call cannot be answered any more.
    let late = agent.request(
        json!({"type": "answer", "call_id": call_id, "sdp": "v=0\r\n"}),
        WAIT,
    );
    assert!(late.is_err(), "{late:?}");
}

/// Ring-all over a registered phone (1002, auto-answer) and a browser (1001): the phone
/// answers first, the browser stops ringing with `answered_elsewhere`.
#[test]
fn ring_all_over_a_phone_and_a_browser_the_phone_wins() {
    let src = sources();
    let server = server_with(
        5999,
        RouteTarget::RingGroup {
            extensions: vec!["1001".into(), "1002".into()],
            strategy: "ring_all",
            timeout_s: 20,
        },
    );
    let mut agent = available_agent(&server);
    let mut phone = support::phone(&server, "1002", "bob-pw-00002", &src.a, &["PCMU"]);
    let mut customer = customer_phone(&src.b);
    customer
        .dial(&format!("sip:{DID}@{}", server.sip_addr()))
        .unwrap();
    phone.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    // The phone answers at once, so the page may be told the call ended before its ring
    // (`incoming`) went out; either way it hears that another device took the call.
    let ended = agent.wait_for("ended", WAIT).unwrap();
    assert!(
        ended["call_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{ended}"
    );
    assert_eq!(ended["reason"], "answered_elsewhere", "{ended}");
    customer.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    customer.hangup().unwrap();
    phone.wait_event("CALL_CLOSED", WAIT).unwrap();
}

/// The caller gives up while the browser rings: the page hears `caller_cancelled`.
#[test]
fn the_caller_hangs_up_while_the_browser_rings() {
    let src = sources();
    let server = server();
    let mut agent = available_agent(&server);
    let mut customer = customer_phone(&src.b);
    let call_id = ring_agent(&server, &mut agent, &mut customer);
    customer.hangup().unwrap();
    let ended = agent.wait_for("ended", WAIT).unwrap();
    assert_eq!(ended["call_id"], call_id.as_str());
    assert_eq!(ended["reason"], "caller_cancelled", "{ended}");
    let (answered, cause) = ended_call(&server);
    assert!(!answered);
    assert_eq!(cause, "cancelled");
}

/// The agent's socket drops mid-call: the call, its media and its recording go on; the page
/// reconnects, finds the call in `hello`, and hangs it up from the new socket.
#[test]
fn a_dropped_socket_keeps_the_call() {
    let src = sources();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let server = server();
    let cookie = login(server.http_addr(), server.realm(), "1001", AGENT_PW).unwrap();
    let (mut agent, _) = AgentSocket::connect(server.http_addr(), &cookie).unwrap();
    agent
        .send(&json!({"type": "set_presence", "status": "available"}))
        .unwrap();
    agent.wait_for("presence", WAIT).unwrap();
    let mut customer = customer_phone(&src.b);
    let call_id = ring_agent(&server, &mut agent, &mut customer);
    let heard = dir.path().join("heard.wav");
    let mut browser = answer_in_browser(&rt, &mut agent, &call_id, &src.a, &heard, 16.0);
    agent.wait_for("answered", WAIT).unwrap();
    customer.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(3));

    agent.drop_connection();
    std::thread::sleep(Duration::from_secs(4));
    let (mut again, hello) = AgentSocket::connect(server.http_addr(), &cookie).unwrap();
    let calls = hello["calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 1, "{hello}");
    assert_eq!(calls[0]["call_id"], call_id.as_str());
    assert_eq!(calls[0]["state"], "connected");
    assert_eq!(hello["presence"], "busy", "{hello}");
    std::thread::sleep(Duration::from_secs(3));
    again
        .request(json!({"type": "hangup", "call_id": call_id}), WAIT)
        .unwrap();
    assert_eq!(
        again.wait_for("ended", WAIT).unwrap()["reason"],
        "agent_hangup"
    );
    customer.wait_event("CALL_CLOSED", WAIT).unwrap();
    browser.kill();

    // The customer's side was recorded straight through the 4 s without a socket.
    let rec = the_recording(&server);
    let customer_src = read_wav_mono(&src.b).unwrap();
    assert!(
        rec.audio[1].duration_s() >= 9.0,
        "{:.1} s",
        rec.audio[1].duration_s()
    );
    assert_heard(
        "recording right = the customer",
        &customer_src,
        &rec.audio[1],
        0.9,
    );
}

/// Click-to-call from the page, from a contact (a customer who called before): the
/// browser's leg is set up first (`dialing`, our answer), then the contact's number goes out
/// through the trunk to the customer's phone. While it rings the
/// page hears `ringing` and the browser hears our ringback (US: 440 + 480 Hz); once the
/// customer answers, audio flows both ways; the customer hangs up and the page hears
/// `remote_hangup`.
#[test]
fn the_agent_calls_a_contact_back_from_the_browser_and_hears_ringback() {
    let src = sources();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut customer = {
        let mut config = BaresipConfig::new(CUSTOMER_NUMBER, &src.b);
        config.bind_ip = TRUNK_IP;
        config.answer_mode = AnswerMode::Manual;
        Baresip::start(&config).expect("start baresip")
    };
    let server = server_with(customer.sip_addr().port(), RouteTarget::User("1001".into()));
    let mut agent = available_agent(&server);
    // The customer called before (declined): callscope knows them as a contact, and the
    // agent calls back from the contact.
    let missed = ring_agent(&server, &mut agent, &mut customer);
    agent
        .request(json!({"type": "reject", "call_id": missed}), WAIT)
        .unwrap();
    agent
        .wait_where("ended", WAIT, |m| m["call_id"] == missed.as_str())
        .unwrap();
    customer.wait_event("CALL_CLOSED", WAIT).unwrap();
    let contact_id = wait_for(&server, "the customer's contact", WAIT, || {
        server
            .query(&format!(
                "SELECT id FROM contacts WHERE phone_e164 = '{CUSTOMER_NUMBER}'"
            ))
            .unwrap_or_default()
            .first()
            .map(|r| r[0].clone())
    });
    for bad in [
        json!({"type": "dial", "contact_id": "no-such-contact", "sdp": "v=0\r\n"}),
        json!({"type": "dial", "number": "1", "contact_id": contact_id, "sdp": "v=0\r\n"}),
    ] {
        let refused = agent.request(bad.clone(), WAIT);
        assert!(refused.is_err(), "{bad}: {refused:?}");
    }

    let heard = dir.path().join("heard.wav");
    let mut browser = rt.block_on(AiortcPeer::start(&src.a, &heard, 20.0, ""));
    let reply = agent
        .request(
            json!({"type": "dial", "contact_id": contact_id, "sdp": browser.offer}),
            WAIT,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(reply["type"], "media_answer", "{reply}");
    let call_id = reply["call_id"].as_str().unwrap().to_string();
    let dialing = agent.wait_for("dialing", WAIT).unwrap();
    assert_eq!(call_id_of(&dialing), call_id);
    assert_eq!(dialing["call"]["direction"], "outbound", "{dialing}");
    assert_eq!(dialing["call"]["from"], CUSTOMER_NUMBER, "{dialing}");
    rt.block_on(browser.answer(reply["sdp"].as_str().unwrap()));
    let connected_at = Instant::now();
    customer
        .wait_event("CALL_INCOMING", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    agent.wait_for("ringing", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    customer.accept().unwrap();
    let answered_after = connected_at.elapsed().as_secs_f64();
    customer.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    agent.wait_for("answered", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    customer.hangup().unwrap();
    let ended = agent
        .wait_where("ended", WAIT, |m| m["call_id"] == call_id.as_str())
        .unwrap();
    assert_eq!(ended["reason"], "remote_hangup", "{ended}");
    rt.block_on(browser.next_message(Duration::from_secs(20), "done"));
    browser.kill();

    let browser_heard = read_wav_mono(&heard).unwrap();
    // Before the answer: ringback, and nothing else.
    let ringing = browser_heard.slice_s(0.0, answered_after - 0.5);
    let tones = dominant_tones(&ringing, &[460.0, 800.0, 1200.0, 2000.0]);
    eprintln!("while ringing the browser heard {tones:?}");
    let ringback = tones.iter().filter(|t| **t == Some(460.0)).count();
    assert!(ringback >= 3, "no ringback: {tones:?}");
    assert!(
        tones.iter().all(|t| t.is_none() || *t == Some(460.0)),
        "{tones:?}"
    );
    // After it: the customer, both ways.
    let agent_src = read_wav_mono(&src.a).unwrap();
    let customer_src = read_wav_mono(&src.b).unwrap();
    let phone_heard = read_wav_mono(&customer.received_recordings()[0]).unwrap();
    // The browser's microphone played from the moment it connected: the customer joined
    // it `answered_after` seconds in.
    let agent_from_answer = agent_src.slice_s(answered_after, agent_src.duration_s());
    assert_matches_as(
        "the customer heard the browser",
        &agent_from_answer,
        &phone_heard,
        LIVE_OPUS,
    );
    let talk = browser_heard.slice_s(answered_after + 0.3, browser_heard.duration_s());
    assert_matches_as(
        "the browser heard the customer",
        &customer_src,
        &talk,
        LIVE_OPUS,
    );
    let (answered, cause) = ended_call(&server);
    assert!(answered);
    assert_eq!(cause, "normal_clearing");
}

/// Mute, then hold, from the page: the customer hears silence for each interval (the
/// browser's microphone is a steady tone, so any silence is ours) and the mute is stored as
/// a media event; DTMF typed on the page reaches the customer's phone as RFC 4733 digits.
#[test]
fn mute_hold_and_dtmf_from_the_page() {
    let src = sources();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let server = server();
    let mut agent = available_agent(&server);
    let mut customer = customer_phone(&src.b);
    let call_id = ring_agent(&server, &mut agent, &mut customer);
    let tone = support::tone_wav(dir.path(), "mic.wav", 440);
    let heard = dir.path().join("heard.wav");
    let mut browser = answer_in_browser(&rt, &mut agent, &call_id, &tone, &heard, 30.0);
    agent.wait_for("answered", WAIT).unwrap();
    customer.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    let command = |agent: &mut AgentSocket, kind: &str| {
        agent
            .request(json!({"type": kind, "call_id": call_id}), WAIT)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        agent.wait_for("call_update", WAIT).unwrap()
    };

    std::thread::sleep(Duration::from_secs(3));
    let update = command(&mut agent, "mute");
    assert_eq!(update["call"]["muted"], true, "{update}");
    std::thread::sleep(Duration::from_secs(3));
    let update = command(&mut agent, "unmute");
    assert_eq!(update["call"]["muted"], false, "{update}");
    std::thread::sleep(Duration::from_secs(3));
    let update = command(&mut agent, "hold");
    assert_eq!(update["call"]["held"], true, "{update}");
    std::thread::sleep(Duration::from_secs(3));
    let update = command(&mut agent, "resume");
    assert_eq!(update["call"]["held"], false, "{update}");
    std::thread::sleep(Duration::from_secs(2));
    agent
        .request(
            json!({"type": "dtmf", "call_id": call_id, "digits": "12#"}),
            WAIT,
        )
        .unwrap();
    for digit in ["1", "2", "#"] {
        let event = customer
            .wait_event("CALL_DTMF_START", WAIT)
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(event.param.as_deref(), Some(digit), "{event:?}");
    }
    let bad = agent.request(
        json!({"type": "dtmf", "call_id": call_id, "digits": "12x"}),
        WAIT,
    );
    assert!(bad.is_err(), "{bad:?}");
    std::thread::sleep(Duration::from_secs(2));
    agent
        .request(json!({"type": "hangup", "call_id": call_id}), WAIT)
        .unwrap();
    customer.wait_event("CALL_CLOSED", WAIT).unwrap();
    browser.kill();

    // The customer heard the mute as silence. (baresip stops writing its recording at the
    // hold's re-INVITE, so the hold is judged on the call's recording below.)
    let phone_heard = read_wav_mono(&customer.received_recordings()[0]).unwrap();
    let silences = silence_intervals(&phone_heard, 20, -45.0, 1.5);
    eprintln!("the customer heard silence at {silences:?}");
    assert!(
        silences.iter().any(|s| (2.3..=4.0).contains(&s.len_s())),
        "mute as silence: {silences:?}"
    );
    // The agent's channel of the recording is what the customer was sent: silent for the
    // mute and for the hold, the tone everywhere else.
    let rec = the_recording(&server);
    let agent_silences = silence_intervals(&rec.audio[0], 20, -45.0, 1.5);
    eprintln!("the agent's channel is silent at {agent_silences:?}");
    let about_three = agent_silences
        .iter()
        .filter(|s| (2.3..=4.0).contains(&s.len_s()))
        .count();
    assert_eq!(about_three, 2, "mute and hold: {agent_silences:?}");

    let muted = wait_for(&server, "the mute event", WAIT, || {
        server
            .query("SELECT duration_ms, data FROM call_media_events WHERE kind = 'muted'")
            .unwrap_or_default()
            .first()
            .cloned()
    });
    let ms: f64 = muted[0].parse().unwrap();
    assert!((2300.0..=4000.0).contains(&ms), "{muted:?}");
    // Hold silences the agent too: its interval is the second one.
    let mutes = server
        .query("SELECT duration_ms FROM call_media_events WHERE kind = 'muted'")
        .unwrap_or_default();
    assert_eq!(mutes.len(), 2, "{mutes:?}");
    let sent = server
        .query("SELECT data FROM call_media_events WHERE kind = 'dtmf'")
        .unwrap_or_default();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent.iter().all(|r| r[0].contains("\"sent\":true")),
        "{sent:?}"
    );
}

/// Blind transfer from one browser agent to another: the first agent's page hears
/// `transferred` at once, the customer hears ringback, the second agent's page rings and
/// answers, and the customer then hears the second agent.
#[test]
fn transfer_from_one_browser_agent_to_another() {
    let src = sources();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let server = server();
    let mut first = available_agent(&server);
    let mut second = available_as(&server, "1002", "bob-pw-00002");

    let mut customer = customer_phone(&src.b);
    let call_id = ring_agent(&server, &mut first, &mut customer);
    let low = support::tone_wav(dir.path(), "first.wav", 400);
    let mut one = answer_in_browser(
        &rt,
        &mut first,
        &call_id,
        &low,
        &dir.path().join("one.wav"),
        30.0,
    );
    first.wait_for("answered", WAIT).unwrap();
    customer.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(3));

    first
        .request(
            json!({"type": "transfer", "call_id": call_id, "target": "1002"}),
            Duration::from_secs(1),
        )
        .err();
    let ended = first.wait_for("ended", WAIT).unwrap();
    assert_eq!(ended["reason"], "transferred", "{ended}");
    let incoming = second.wait_for("incoming", WAIT).unwrap();
    assert_eq!(call_id_of(&incoming), call_id);
    std::thread::sleep(Duration::from_secs(3));
    let high = support::tone_wav(dir.path(), "second.wav", 1200);
    let mut two = answer_in_browser(
        &rt,
        &mut second,
        &call_id,
        &high,
        &dir.path().join("two.wav"),
        30.0,
    );
    second.wait_for("answered", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    customer.hangup().unwrap();
    assert_eq!(
        second.wait_for("ended", WAIT).unwrap()["reason"],
        "remote_hangup"
    );
    one.kill();
    two.kill();

    // What the customer heard, in 0.5 s windows: the first agent's 400 Hz, then ringback
    // (440/480 Hz), then the second agent's 1200 Hz.
    let phone_heard = read_wav_mono(&customer.received_recordings()[0]).unwrap();
    let dominant = dominant_tones(&phone_heard, &[400.0, 460.0, 1200.0]);
    eprintln!("the customer heard: {dominant:?}");
    let first_400 = dominant.iter().position(|t| *t == Some(400.0));
    let ringback = dominant.iter().position(|t| *t == Some(460.0));
    let first_1200 = dominant.iter().position(|t| *t == Some(1200.0));
    assert!(
        matches!((first_400, ringback, first_1200), (Some(a), Some(b), Some(c)) if a < b && b < c),
        "{dominant:?}"
    );
}

/// Per 0.5 s window, which of `tones` (Hz) carries the most energy (None when quiet).
/// 460 Hz stands for US ringback (440 + 480 Hz), measured as the sum of both.
fn dominant_tones(audio: &Mono, tones: &[f64]) -> Vec<Option<f64>> {
    let window = (audio.rate / 2) as usize;
    audio
        .samples
        .chunks(window)
        .map(|chunk| {
            if callscope_testkit::audio_compare::rms_dbfs(chunk) < -40.0 {
                return None;
            }
            let power = |hz: f64| amplitude_at(chunk, f64::from(audio.rate), hz);
            tones
                .iter()
                .map(|&hz| {
                    let p = if hz == 460.0 {
                        power(440.0) + power(480.0)
                    } else {
                        power(hz)
                    };
                    (hz, p)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(hz, _)| hz)
        })
        .collect()
}

/// Presence decides who rings: an agent who is away is not offered the call (the caller
/// gets 480), and another agent cannot answer or hang up a call that never rang them. A
/// second call from the same number shows the contact the first one created.
#[test]
fn only_available_agents_ring_and_only_their_own_calls_obey_them() {
    let src = sources();
    let server = server();
    let mut agent = available_agent(&server);
    agent
        .send(&json!({"type": "set_presence", "status": "away"}))
        .unwrap();
    agent
        .wait_where("presence", WAIT, presence_is("away"))
        .unwrap();
    let mut customer = customer_phone(&src.b);
    customer
        .dial(&format!("sip:{DID}@{}", server.sip_addr()))
        .unwrap();
    let closed = customer.wait_event("CALL_CLOSED", WAIT).unwrap();
    assert!(
        closed.param.as_deref().unwrap_or_default().contains("480"),
        "{closed:?}"
    );
    assert!(
        agent.wait_for("incoming", Duration::from_secs(1)).is_err(),
        "an away agent was rung: {:?}",
        agent.seen
    );

    agent
        .send(&json!({"type": "set_presence", "status": "available"}))
        .unwrap();
    agent
        .wait_where("presence", WAIT, presence_is("available"))
        .unwrap();
    let call_id = ring_agent(&server, &mut agent, &mut customer);
    let incoming = agent
        .seen
        .iter()
        .rev()
        .find(|m| m["type"] == "incoming")
        .cloned()
        .unwrap();
    assert!(
        incoming["call"]["contact"]["id"].is_string(),
        "the first call's contact is matched: {incoming}"
    );

    // Agent 1002 is logged in but was never offered this call.
    let cookie = login(server.http_addr(), server.realm(), "1002", "bob-pw-00002").unwrap();
    let (mut other, _) = AgentSocket::connect(server.http_addr(), &cookie).unwrap();
    for kind in ["hangup", "reject", "mute"] {
        let refused = other.request(json!({"type": kind, "call_id": call_id}), WAIT);
        let text = format!("{refused:?}");
        assert!(text.contains("not_found"), "{kind}: {text}");
    }
    let stolen = other.request(
        json!({"type": "answer", "call_id": call_id, "sdp": "v=0\r\n"}),
        WAIT,
    );
    assert!(format!("{stolen:?}").contains("not_found"), "{stolen:?}");
    // Still ringing for its agent, who can decline it.
    agent
        .request(json!({"type": "reject", "call_id": call_id}), WAIT)
        .unwrap();
    customer.wait_event("CALL_CLOSED", WAIT).unwrap();
}

/// Longest-idle over two browser agents: the one idle longest rings first (by the order of
/// the group when neither had a call), rings out after the member timeout (`no_answer` on its
/// page), and the next agent's page rings; when that agent declines too, the caller hears
/// busy and the call is stored unanswered.
#[test]
fn longest_idle_moves_from_an_unanswering_browser_to_the_next() {
    let src = sources();
    let server = server_with(
        5999,
        RouteTarget::RingGroup {
            extensions: vec!["1001".into(), "1002".into()],
            strategy: "longest_idle",
            timeout_s: 3,
        },
    );
    let mut first = available_agent(&server);
    let mut second = available_as(&server, "1002", "bob-pw-00002");

    let mut customer = customer_phone(&src.b);
    let call_id = ring_agent(&server, &mut first, &mut customer);
    let rang_at = Instant::now();
    assert!(
        second.wait_for("incoming", Duration::from_secs(1)).is_err(),
        "both rang at once"
    );
    let ended = first.wait_for("ended", WAIT).unwrap();
    assert_eq!(ended["reason"], "no_answer", "{ended}");
    let incoming = second.wait_for("incoming", WAIT).unwrap();
    let waited = rang_at.elapsed().as_secs_f64();
    assert_eq!(call_id_of(&incoming), call_id);
    assert!((2.0..6.0).contains(&waited), "moved on after {waited:.1} s");
    second
        .request(json!({"type": "reject", "call_id": call_id}), WAIT)
        .unwrap();
    let closed = customer.wait_event("CALL_CLOSED", WAIT).unwrap();
    assert!(
        closed.param.as_deref().unwrap_or_default().contains("486"),
        "{closed:?}"
    );
    let (answered, _) = ended_call(&server);
    assert!(!answered);
}

/// The browser vanishes mid-call (its WebRTC stack killed: no BYE, no socket message): once
/// its ICE connection has been disconnected for `[agent] media_grace_s`, callscope ends the
/// call (cause `media_failed`), the customer's phone gets a BYE and the page, if it is still
/// listening, hears `media_failed`.
#[test]
fn a_vanished_browser_ends_its_call() {
    let src = sources();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let server = server_builder(&[("1001", AGENT_PW)])
        .trunk((TRUNK_IP, 5999).into(), &["127.0.0.2"])
        .route_to_user(DID, "1001")
        .env("CALLSCOPE_AGENT_MEDIA_GRACE_S", "2")
        .start()
        .expect("start callscope");
    let mut agent = available_agent(&server);
    let mut customer = customer_phone(&src.b);
    let call_id = ring_agent(&server, &mut agent, &mut customer);
    let heard = dir.path().join("heard.wav");
    let mut browser = answer_in_browser(&rt, &mut agent, &call_id, &src.a, &heard, 60.0);
    agent.wait_for("answered", WAIT).unwrap();
    customer.wait_event("CALL_ESTABLISHED", WAIT).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    browser.kill();
    let killed = Instant::now();
    let limit = Duration::from_secs(45);
    customer
        .wait_event("CALL_CLOSED", limit)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    eprintln!(
        "the call ended {:.1} s after the browser vanished",
        killed.elapsed().as_secs_f64()
    );
    let ended = agent.wait_for("ended", WAIT).unwrap();
    assert_eq!(ended["reason"], "media_failed", "{ended}");
    let (answered, cause) = ended_call(&server);
    assert!(answered);
    assert_eq!(cause, "media_failed");
}

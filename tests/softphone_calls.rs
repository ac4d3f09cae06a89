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

use browser::AiortcPeer;
use callscope_testkit::agent_ws::{AgentSocket, login};
use callscope_testkit::audio_compare::{Mono, best_lag, read_wav_mono};
use callscope_testkit::baresip::{AnswerMode, Baresip, BaresipConfig};
use callscope_testkit::callscope::Callscope;
use serde_json::{Value, json};
use support::{
    Match, WAIT, assert_matches_as, server_builder, sources, stored_recording, wait_for,
};

const DID: &str = "+14155550188";
const TRUNK_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const AGENT_PW: &str = "alice-pw-0001";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// callscope with agent 1001 and a trunk on 127.0.0.2 whose DID rings 1001.
fn server() -> Callscope {
    server_builder(&[("1001", AGENT_PW), ("1002", "bob-pw-00002")])
        .trunk((TRUNK_IP, 5999).into(), &["127.0.0.2"])
        .route_to_user(DID, "1001")
        .start()
        .expect("start callscope")
}

/// Agent 1001 logged in with its softphone socket open and available.
fn available_agent(server: &Callscope) -> AgentSocket {
    let cookie = login(server.http_addr(), server.realm(), "1001", AGENT_PW).expect("login");
    let (mut agent, hello) = AgentSocket::connect(server.http_addr(), &cookie).expect("socket");
    assert_eq!(hello["user"]["extension"], "1001", "{hello}");
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

/// The customer: a baresip on the trunk's address, not registered, auto-answering.
fn customer_phone(wav: &Path) -> Baresip {
    let mut config = BaresipConfig::new("customer", wav);
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

    let heard = dir.path().join("browser-heard.wav");
    let mut browser = rt.block_on(AiortcPeer::start(&src.a, &heard, 16.0, ""));
    let reply = agent
        .request(
            json!({"type": "answer", "call_id": call_id, "sdp": browser.offer}),
            WAIT,
        )
        .expect("answer accepted");
    assert_eq!(reply["type"], "media_answer", "{reply}");
    rt.block_on(browser.answer(reply["sdp"].as_str().unwrap()));
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

    let call_row = wait_for(&server, "the call's recording", WAIT, || {
        let rows = server
            .query("SELECT call_id FROM recordings")
            .unwrap_or_default();
        rows.first().map(|r| r[0].clone())
    });
    let rec = stored_recording(&server, &call_row);
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

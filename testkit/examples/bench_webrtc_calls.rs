//! The softphone benchmark behind `scripts/bench-webrtc`: N concurrent WebRTC ⇄ SIP calls
//! through `callscope serve`, Opus (browser) ⇄ PCMU (trunk) transcoded and recorded, with a
//! reference in the same run: N G.711 relay calls as in `scripts/bench-media`. Prints a
//! Markdown report on stdout; progress on stderr.
//!
//! Setup, all through the real binary (testkit's `Callscope` harness): an organization,
//! agents 1001.. (one per concurrent call), user 2001 for the reference load, a trunk whose
//! outbound host is a SIPp UAS on 127.0.0.2 (inbound ACL 127.0.0.1/32) and a DID routed to
//! 2001, whose registered contact is the same UAS. The UAS answers every INVITE and streams
//! a 3400→300 Hz sweep (raw PCMU, looped) from ACK until BYE, and answers keepalive
//! OPTIONS (`-aa`).
//!
//! WebRTC step (N calls): every agent logs in (`POST /api/v1/agent/login`) and opens its
//! softphone socket; aiortc (an independent WebRTC stack, from PyPI), in
//! `BENCH_AIORTC_PROCS` processes, runs N peers, each offering Opus and sending a
//! 300→3400 Hz sweep encoded once by ffmpeg as Ogg Opus (20 ms frames, within the audio
//! bandwidth and at the bitrate a browser's WebRTC encoder uses under callscope's
//! `maxplaybackrate`: wideband at 20 kbit/s by default) packet by packet: encoding it live
//! costs aiortc about 6 % of a core per peer, more than two cores for 50 peers. What it
//! receives it counts (loss, jitter) and drops undecoded, which halves its cost again; what callscope sent is checked in callscope's recordings
//! instead. Each agent sends `dial` with its peer's offer to a number that goes out
//! through the trunk, and aiortc gets every answer. callscope runs ICE-lite + DTLS-SRTP on
//! the browser leg, decodes Opus, encodes PCMU to the trunk and back (Opus encoder at
//! `transcode_opus_complexity`), and records both channels. After the window every agent
//! hangs up over its socket; aiortc then reports its own RTP counters per peer.
//!
//! Reference step (same N): SIPp UAC on 127.0.0.1 calls the DID, streams a PCMU sweep; the
//! call reaches 2001 on the UAS; callscope relays (no transcoding) and records.
//!
//! Measured for each, over the steady window (all N calls up, until shortly before the
//! hangups): callscope's CPU (utime + stime of /proc/PID/stat, per thread from schedstat),
//! its RSS against idle, the load generators' CPU (aiortc, SIPp); after the step, per leg
//! from the stored `call_sip.media_json`: packets received, sequence gaps (lost on
//! arrival), jitter-buffer discards, send errors; per recording, silent gaps inside the
//! audio. For the WebRTC step also aiortc's own counters: packets it sent against those
//! callscope received, and packets callscope sent against those aiortc received and lost.
//!
//! Environment (all optional):
//! - `CALLSCOPE_BIN`: the release binary (default `target/release/callscope`)
//! - `BENCH_CALLS`: concurrent-call steps (default `10,25,50`)
//! - `BENCH_CALL_S`: seconds of each call (default 60)
//! - `BENCH_RATE`: G.711 reference calls set up per second (default 20)
//! - `BENCH_REFERENCE`: `0` skips the G.711 reference steps
//! - `BENCH_KEEP_DIR`: keep one recording per step and callscope's log there
//! - `BENCH_AIORTC_PROCS`: Python processes the aiortc peers are spread over (default 2)
//! - `BENCH_RUSTPBX_BIN`: a RustPBX binary you built yourself (nothing of RustPBX is in this
//!   repository; `docs/benchmarks.md`, "Session 14", says how): each step then also puts the
//!   same browsers' load through it (see `run_peer_webrtc_step`) and the report compares the
//!   two per call
//! - `BENCH_PEER_FIRST=1`: run RustPBX's step before callscope's
//! - `BENCH_RUSTPBX_RECORDER=sipflow`: RustPBX keeps the packets instead of writing WAVs
//! - `BENCH_RUSTPBX_MEDIA_WORKERS`: RustPBX's `media_worker_threads` (its default here is one)
//! - callscope's own settings pass through to the server, e.g.
//!   `CALLSCOPE_SIP_WEBRTC_AUDIO_RATE=48000` (full band asked of the browsers, recorded at
//!   48 kHz) against the default 16000; the report gives the recordings' rate
//! - `BENCH_BROWSER_AUDIO_RATE`: the audio bandwidth the browsers' packets carry (default:
//!   `CALLSCOPE_SIP_WEBRTC_AUDIO_RATE`, else 16000, as a browser keeping to callscope's
//!   `maxplaybackrate` sends); 48000 sends full band whatever callscope asked
//! - `BENCH_BROWSER_BITRATE`: their bitrate, bit/s (default: what WebRTC's Opus encoder
//!   starts at for that bandwidth, 20000 for wideband, 32000 for full band; it decides
//!   between SILK and CELT frames, and with that the decode's cost)

use callscope_testkit::agent_ws::{AgentSocket, login};
use callscope_testkit::aiortc::{AiortcOptions, AiortcPeer, PeerRtpStats};
use callscope_testkit::audio_compare::{
    opus_ogg_repeated_within, raw_g711, sweep_wav, webrtc_bitrate_for,
};
use callscope_testkit::bench::{
    CallCheck, Window, WindowFigures, check_calls, env_list, env_or, log_warnings, machine, max_f,
    max_rowid, media_calls, poll_until, remove_recordings, sum, wait_calls_stored,
    wait_queue_drained,
};
use callscope_testkit::bench_g711::{
    G711Load, G711Step, PeerRecording, read_peer_recordings, run_g711_step,
};
use callscope_testkit::callscope::Callscope;
use callscope_testkit::rustpbx::{self, Recorder, RustPbx};
use callscope_testkit::sip_uac::SipUac;
use callscope_testkit::sipp::{G711, Scenario, SippConfig, SippRun, uas_rtp_stream_scenario};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const DID: &str = "+12025550100";
const REF_EXT: &str = "2001";
const REF_PASSWORD: &str = "bench-secret-2001";
const FIRST_AGENT: u64 = 1001;
/// Opus and PCMU, both at 20 ms per packet.
const PACKETS_PER_S: f64 = 50.0;
/// Each signalling reply or state change an agent waits for.
const SIGNAL_WAIT: Duration = Duration::from_secs(30);

fn agent_password(ext: u64) -> String {
    format!("agent-pw-{ext}")
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-webrtc: {e}");
            ExitCode::from(2)
        }
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// What one WebRTC step measured.
struct WebRtcStep {
    n: u64,
    answered: u64,
    /// callscope over the window; `peers_pct` is [aiortc processes…, SIPp UAS].
    window: WindowFigures,
    /// Per call, with direction 0 = browser → trunk.
    calls: Vec<CallCheck>,
    /// aiortc's counters per peer (None if it did not report).
    browser: Option<Vec<PeerRtpStats>>,
    setup_s: f64,
}

/// One logged-in agent with its call.
struct Agent {
    socket: AgentSocket,
    call_id: String,
}

fn run_webrtc_step(
    cs: &Callscope,
    rt: &tokio::runtime::Runtime,
    uas_pid: u32,
    sweep: &Path,
    n: u64,
    call_s: u64,
) -> Res<WebRtcStep> {
    let pid = cs.pid().ok_or("callscope not running")?;
    let before_rowid = max_rowid(cs).map_err(err("reading call_sip"))?;
    let t_setup = Instant::now();
    let mut sockets = Vec::with_capacity(n as usize);
    for i in 0..n {
        let ext = (FIRST_AGENT + i).to_string();
        let cookie = login(
            cs.http_addr(),
            cs.realm(),
            &ext,
            &agent_password(FIRST_AGENT + i),
        )
        .map_err(err("agent login"))?;
        let (mut socket, _hello) =
            AgentSocket::connect(cs.http_addr(), &cookie).map_err(err("agent socket"))?;
        // A fresh login starts away; only an available softphone may dial.
        socket
            .send(&json!({"type": "set_presence", "status": "available"}))
            .map_err(err("set_presence"))?;
        socket
            .wait_where("presence", SIGNAL_WAIT, |m| m["status"] == "available")
            .map_err(err("going available"))?;
        sockets.push(socket);
    }
    let (mut browsers, browser_pids) = start_browsers(rt, sweep, n, call_s, "")?;
    let offers: Vec<String> = browsers.iter().flat_map(|b| b.offers.clone()).collect();
    let mut agents = Vec::with_capacity(n as usize);
    let mut answers = Vec::with_capacity(n as usize);
    for (i, (mut socket, offer)) in sockets.into_iter().zip(&offers).enumerate() {
        // Numbers of the trunk's customers; the UAS answers any.
        let number = format!("+1415555{:04}", i);
        let reply = socket
            .request(
                json!({"type": "dial", "number": number, "sdp": offer}),
                SIGNAL_WAIT,
            )
            .map_err(|e| format!("dial {i}: {e}\n{}", tail(&cs.log())))?;
        let call_id = reply["call_id"].as_str().unwrap_or_default().to_string();
        answers.push(reply["sdp"].as_str().unwrap_or_default().to_string());
        agents.push(Agent { socket, call_id });
    }
    answer_browsers(rt, &mut browsers, &answers);
    let mut answered = 0;
    for agent in &mut agents {
        if agent.socket.wait_for("answered", SIGNAL_WAIT).is_ok() {
            answered += 1;
        }
    }
    let all_up = poll_until(Duration::from_secs(30), || media_calls(cs) >= n);
    let setup_s = t_setup.elapsed().as_secs_f64();
    if !all_up || answered < n {
        eprintln!(
            "bench-webrtc: {answered} of {n} calls answered, callscope has {} media calls",
            media_calls(cs)
        );
    }
    // Settle (DTLS, the jitter buffers), then measure until shortly before the hangups.
    std::thread::sleep(Duration::from_secs(3));
    let t_up = Instant::now();
    let window = Duration::from_secs(call_s).saturating_sub(Duration::from_secs(6));
    if window < Duration::from_secs(5) {
        return Err(format!(
            "no steady window in calls of {call_s} s; raise BENCH_CALL_S"
        ));
    }
    // Peers: the aiortc processes, then the SIPp UAS last.
    let mut peer_pids = browser_pids.clone();
    peer_pids.push(uas_pid);
    let measuring = Window::start(pid, &peer_pids).map_err(err("CPU"))?;
    eprintln!(
        "bench-webrtc: {n} WebRTC calls up (setup {setup_s:.1} s); measuring for {:.0} s",
        window.as_secs_f64()
    );
    std::thread::sleep(window);
    let figures = measuring.finish().map_err(err("CPU"))?;
    let live_at_end = media_calls(cs);
    if live_at_end < n {
        eprintln!("bench-webrtc: only {live_at_end} media calls at the end of the window");
    }
    std::thread::sleep(Duration::from_secs(call_s).saturating_sub(t_up.elapsed()));
    for agent in &mut agents {
        let hangup = json!({"type": "hangup", "call_id": agent.call_id});
        if let Err(e) = agent.socket.request(hangup, SIGNAL_WAIT) {
            eprintln!("bench-webrtc: hangup {}: {e}", agent.call_id);
        }
    }
    let stats = browser_stats(rt, browsers);
    for agent in agents {
        agent.socket.drop_connection();
    }
    if !wait_calls_stored(cs, before_rowid, answered, Duration::from_secs(60)) {
        eprintln!("bench-webrtc: not every call's media record was stored within 60 s");
    }
    let mut calls = check_calls(cs, before_rowid).map_err(err("reading the step's calls"))?;
    for c in &mut calls {
        // Direction 0 is the browser's audio whichever leg callscope calls the caller.
        if c.agent_leg.as_deref() == Some("callee") {
            c.swap_directions();
        }
    }
    Ok(WebRtcStep {
        n,
        answered,
        window: figures,
        calls,
        browser: stats,
        setup_s,
    })
}

/// What one WebRTC step through RustPBX measured.
struct PeerWebRtcStep {
    n: u64,
    /// Calls RustPBX answered with a 200 OK.
    answered: u64,
    /// RustPBX over the window; `peers_pct` is [aiortc processes…, SIPp UAS].
    window: WindowFigures,
    browser: Option<Vec<PeerRtpStats>>,
    recordings: Vec<PeerRecording>,
    unreadable: usize,
    setup_s: f64,
}

/// The same browsers' load through RustPBX: the same aiortc peers and Opus packets, the
/// same far-end SIPp UAS and window. RustPBX takes a WebRTC offer in a plain SIP INVITE
/// (it tells a WebRTC leg by its SDP profile), so each peer's offer goes out in an INVITE
/// from `sip_uac` instead of an agent's `dial`. The offers carry Opus alone: with PCMU also
/// offered RustPBX may pick it for the browser leg and relay without transcoding, while
/// callscope, offered both, takes Opus; the comparison is of the same work. What RustPBX
/// sent the browsers is measured by aiortc's counters, what it recorded from its WAVs.
fn run_peer_webrtc_step(
    pbx: &RustPbx,
    rt: &tokio::runtime::Runtime,
    uas_pid: u32,
    sweep: &Path,
    n: u64,
    call_s: u64,
) -> Res<PeerWebRtcStep> {
    let t_setup = Instant::now();
    let (mut browsers, browser_pids) = start_browsers(rt, sweep, n, call_s, "opus")?;
    let offers: Vec<String> = browsers.iter().flat_map(|b| b.offers.clone()).collect();
    let mut uac = SipUac::bind(Ipv4Addr::LOCALHOST.into(), pbx.sip_addr())
        .map_err(err("a SIP UAC for RustPBX"))?;
    let mut dialogs = Vec::with_capacity(offers.len());
    for (i, offer) in offers.iter().enumerate() {
        let number = format!("+1415555{:04}", i);
        let dialog = uac
            .invite(
                &format!("agent{i}"),
                &number,
                &one_fingerprint(offer),
                SIGNAL_WAIT,
            )
            .map_err(|e| format!("INVITE {i} to RustPBX: {e}\n{}", tail(&pbx.log())))?;
        dialogs.push(dialog);
    }
    let answers: Vec<String> = dialogs.iter().map(|d| d.answer_sdp.clone()).collect();
    answer_browsers(rt, &mut browsers, &answers);
    let setup_s = t_setup.elapsed().as_secs_f64();
    // Settle (ICE, DTLS), then measure until shortly before the hangups, as for callscope.
    std::thread::sleep(Duration::from_secs(3));
    let t_up = Instant::now();
    let window = Duration::from_secs(call_s).saturating_sub(Duration::from_secs(6));
    let mut peer_pids = browser_pids;
    peer_pids.push(uas_pid);
    let measuring = Window::start(pbx.pid(), &peer_pids).map_err(err("CPU"))?;
    eprintln!(
        "bench-webrtc: {n} WebRTC calls through RustPBX up (setup {setup_s:.1} s); measuring \
         for {:.0} s",
        window.as_secs_f64()
    );
    std::thread::sleep(window);
    let figures = measuring.finish().map_err(err("CPU"))?;
    std::thread::sleep(Duration::from_secs(call_s).saturating_sub(t_up.elapsed()));
    for dialog in &dialogs {
        match uac.bye(dialog, SIGNAL_WAIT) {
            Ok(200) => {}
            Ok(status) => eprintln!("bench-webrtc: BYE {} got {status}", dialog.call_id),
            Err(e) => eprintln!("bench-webrtc: BYE {}: {e}", dialog.call_id),
        }
    }
    let browser = browser_stats(rt, browsers);
    let answered = dialogs.len() as u64;
    let (recordings, unreadable) = match pbx.recorder() {
        Recorder::Wav => read_peer_recordings(&|| pbx.recordings(), answered)?,
        Recorder::SipFlow => (Vec::new(), 0),
    };
    Ok(PeerWebRtcStep {
        n,
        answered,
        window: figures,
        browser,
        recordings,
        unreadable,
        setup_s,
    })
}

/// The offer with one DTLS fingerprint, SHA-256, as browsers send it: aiortc lists its
/// certificate's SHA-256, -384 and -512 fingerprints, and RustPBX refuses an offer with
/// more than one ("conflicting DTLS fingerprint attributes").
fn one_fingerprint(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let keep =
            !line.starts_with("a=fingerprint:") || line.starts_with("a=fingerprint:sha-256 ");
        if keep {
            out.push_str(line);
        }
    }
    out
}

/// The server's `[sip.media] webrtc_audio_rate` when `CALLSCOPE_SIP_WEBRTC_AUDIO_RATE` does
/// not set it. The testkit drives the binary and links none of its crates, so this mirrors
/// `OpusAudioRate::WIDEBAND` (api/src/config.rs); the report prints the recordings' rate,
/// which shows a mismatch.
const SERVER_WEBRTC_AUDIO_RATE: u32 = 16000;

/// The browsers, split over `BENCH_AIORTC_PROCS` Python processes: with 50 peers under one
/// interpreter lock the senders fell behind in most runs (see `docs/benchmarks.md`, session
/// 10; each peer then had its own file-reading thread, which session 16 replaced by packets
/// read once per process). `codec` "" offers aiortc's codecs (Opus first), else only that
/// one. Returns them with their PIDs.
fn start_browsers(
    rt: &tokio::runtime::Runtime,
    sweep: &Path,
    n: u64,
    call_s: u64,
    codec: &str,
) -> Res<(Vec<AiortcPeer>, Vec<u32>)> {
    let procs = (env_or("BENCH_AIORTC_PROCS", 2u64).max(1)).min(n) as usize;
    let mut browsers = Vec::with_capacity(procs);
    for k in 0..procs {
        let mut options = AiortcOptions::new(sweep, None, call_s as f64 + 5.0);
        options.peers = n as usize / procs + usize::from(k < n as usize % procs);
        options.passthrough = true;
        options.no_decode = true;
        options.stats = true;
        options.codec = codec.to_string();
        let browser = rt.block_on(AiortcPeer::start_opts(&options));
        if browser.offers.len() != options.peers {
            return Err(format!(
                "aiortc made {} offers for {} peers",
                browser.offers.len(),
                options.peers
            ));
        }
        browsers.push(browser);
    }
    let mut pids = Vec::with_capacity(procs);
    for b in &browsers {
        pids.push(b.pid().ok_or("aiortc exited")?);
    }
    Ok((browsers, pids))
}

/// Gives each aiortc process its peers' answers, in the order of their offers.
fn answer_browsers(rt: &tokio::runtime::Runtime, browsers: &mut [AiortcPeer], answers: &[String]) {
    let mut rest = answers;
    for b in browsers {
        let (mine, others) = rest.split_at(b.offers.len().min(rest.len()));
        rt.block_on(b.answer_all(mine));
        rest = others;
    }
}

/// Every aiortc process's RTP counters, once its peers closed (None if one did not report).
fn browser_stats(
    rt: &tokio::runtime::Runtime,
    browsers: Vec<AiortcPeer>,
) -> Option<Vec<PeerRtpStats>> {
    let mut stats = Some(Vec::new());
    for b in browsers {
        let got = rt.block_on(b.finish_with_stats(Duration::from_secs(60)));
        stats = stats.zip(got).map(|(mut all, mut more)| {
            all.append(&mut more);
            all
        });
    }
    stats
}

/// The aiortc processes' CPU together: every peer figure but the last (the SIPp UAS).
fn aiortc_pct(peers_pct: &[f64]) -> f64 {
    peers_pct
        .split_last()
        .map_or(0.0, |(_, aiortc)| aiortc.iter().sum())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn run() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = std::env::var("CALLSCOPE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/callscope"));
    if !bin.exists() {
        return Err(format!("no callscope binary at {}", bin.display()));
    }
    let steps = env_list("BENCH_CALLS", "10,25,50");
    let max_n = steps.iter().copied().max().unwrap_or(0);
    let call_s: u64 = env_or("BENCH_CALL_S", 60);
    let rate: f64 = env_or("BENCH_RATE", 20.0_f64).max(1.0);
    let reference = env_or("BENCH_REFERENCE", 1u8) != 0;
    let machine = machine();
    let keep_dir = std::env::var_os("BENCH_KEEP_DIR").map(PathBuf::from);
    if let Some(d) = &keep_dir {
        std::fs::create_dir_all(d).map_err(err("creating BENCH_KEEP_DIR"))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(err("a runtime for the aiortc driver"))?;

    // Never-silent sweeps: any silence inside a recording is lost audio.
    let media_dir = tempfile::tempdir().map_err(err("a temp dir"))?;
    let sweep48 = sweep_wav(&media_dir.path().join("up48.wav"), 48000, 4.0, 300, 3400)
        .map_err(err("making the browser's sweep"))?;
    // Encoded once: aiortc sends these packets as they are (see the report's note). A browser
    // keeps its encoder within the `maxplaybackrate` callscope's answer asks for (Chromium
    // does: `softphone_browser_calls`); aiortc's own encoder would not, so the packets are
    // encoded that way here.
    let browser_audio_rate: u32 = env_or(
        "BENCH_BROWSER_AUDIO_RATE",
        env_or("CALLSCOPE_SIP_WEBRTC_AUDIO_RATE", SERVER_WEBRTC_AUDIO_RATE),
    );
    // And at the bitrate a browser's encoder starts at for that bandwidth (20 kbit/s for
    // wideband): it decides between SILK and CELT, and with it the cost of the decode.
    let browser_bitrate: u32 = env_or(
        "BENCH_BROWSER_BITRATE",
        webrtc_bitrate_for(browser_audio_rate),
    );
    let browser_sweep = media_dir.path().join("up48.ogg");
    opus_ogg_repeated_within(
        &sweep48,
        &browser_sweep,
        call_s as f64 + 20.0,
        browser_audio_rate,
        browser_bitrate,
    )
    .map_err(err("encoding the browser's sweep as Opus"))?;
    let up = sweep_wav(&media_dir.path().join("up.wav"), 8000, 4.0, 300, 3400)
        .map_err(err("making the caller's sweep"))?;
    let down = sweep_wav(&media_dir.path().join("down.wav"), 8000, 3.0, 3400, 300)
        .map_err(err("making the answerer's sweep"))?;
    let raw_uac = media_dir.path().join("up.ulaw");
    let raw_uas = media_dir.path().join("down.ulaw");
    raw_g711(&up, &raw_uac, true).map_err(err("encoding the caller's sweep"))?;
    raw_g711(&down, &raw_uas, true).map_err(err("encoding the answerer's sweep"))?;

    let uas_ip = Ipv4Addr::new(127, 0, 0, 2);
    let uac_ip = Ipv4Addr::new(127, 0, 0, 1);
    let uas_port = callscope_testkit::ports::free_port().map_err(err("a UAS port"))?;
    let uas_addr = SocketAddr::from((uas_ip, uas_port));
    eprintln!(
        "bench-webrtc: provisioning (org, {max_n} agents, user {REF_EXT}, trunk, route {DID}) \
         and starting serve"
    );
    let mut builder = Callscope::builder(&bin).user(REF_EXT, REF_PASSWORD);
    for ext in FIRST_AGENT..FIRST_AGENT + max_n {
        builder = builder.user(&ext.to_string(), &agent_password(ext));
    }
    let mut cs = builder
        .trunk(uas_addr, &["127.0.0.1/32"])
        .route_to_user(DID, REF_EXT)
        .env("CALLSCOPE_LOG", "warn")
        .env("CALLSCOPE_SIP_TCP_ADDR", "")
        .env("CALLSCOPE_SIP_RTP_PORTS", "30000-59999")
        .env("CALLSCOPE_SIP_REQUESTS_PER_SECOND", "5000")
        .env("CALLSCOPE_SIP_REQUEST_BURST", "10000")
        .start()
        .map_err(err("starting callscope"))?;
    let reg = callscope_testkit::digest::register(
        cs.sip_addr(),
        uas_addr,
        REF_EXT,
        cs.realm(),
        REF_PASSWORD,
        3600,
        &[
            callscope_testkit::digest::Algorithm::Sha256,
            callscope_testkit::digest::Algorithm::Md5,
        ],
    )
    .map_err(err("registering the UAS as the reference user"))?;
    if reg.status != 200 {
        return Err(format!(
            "registering {REF_EXT} got {}:\n{}",
            reg.status, reg.final_response
        ));
    }
    let mut uas_cfg = SippConfig::uas(Scenario::Xml(uas_rtp_stream_scenario(&raw_uas, G711::Ulaw)));
    uas_cfg.local_ip = uas_ip;
    uas_cfg.local_port = uas_port;
    uas_cfg.extra_args = vec!["-aa".into()];
    uas_cfg.media_port =
        Some(callscope_testkit::ports::free_port_run(2).map_err(err("a UAS media port"))?);
    let mut uas = SippRun::start(&uas_cfg).map_err(err("starting the SIPp UAS"))?;
    uas.wait_ready(Duration::from_secs(5))
        .map_err(err("the SIPp UAS"))?;
    let pid = cs.pid().ok_or("callscope not running")?;

    // Idle: what callscope costs with SIP up and no call.
    let (idle_rss, idle_cpu_pct) =
        callscope_testkit::bench::idle_figures(pid).map_err(err("idle figures"))?;

    let peer = match std::env::var_os("BENCH_RUSTPBX_BIN") {
        Some(bin) => {
            let pbx = rustpbx::start_on_loopback(Path::new(&bin), uas_addr)
                .map_err(err("starting RustPBX"))?;
            eprintln!("bench-webrtc: RustPBX SIP on {}", pbx.sip_addr());
            let idle =
                callscope_testkit::bench::idle_figures(pbx.pid()).map_err(err("RustPBX idle"))?;
            Some((pbx, idle))
        }
        None => None,
    };
    let peer_first = std::env::var("BENCH_PEER_FIRST").is_ok_and(|v| v == "1");
    let mut peer_results: Vec<PeerWebRtcStep> = Vec::new();

    let load = G711Load {
        uas_pid: uas.pid(),
        uac_ip,
        raw_uac: raw_uac.clone(),
        did: DID.into(),
        rate,
        call_s,
    };
    let mut results: Vec<(Option<G711Step>, WebRtcStep)> = Vec::new();
    for &n in &steps {
        let g711 = if reference {
            eprintln!("bench-webrtc: reference, {n} G.711 relay calls of {call_s} s");
            let step = run_g711_step(&cs, &load, n)?;
            eprintln!(
                "bench-webrtc: G.711 {n}: {} ok, {} failed; callscope {:.1} % CPU",
                step.ok, step.failed, step.window.cpu_pct
            );
            settle(&cs, keep_dir.as_deref(), &format!("g711-{n}.wav"));
            Some(step)
        } else {
            None
        };
        let peer_step = |peer_results: &mut Vec<PeerWebRtcStep>| -> Res<()> {
            if let Some((pbx, _)) = &peer {
                eprintln!("bench-webrtc: {n} WebRTC ⇄ SIP calls of {call_s} s through RustPBX");
                let step = run_peer_webrtc_step(pbx, &rt, uas.pid(), &browser_sweep, n, call_s)?;
                eprintln!(
                    "bench-webrtc: RustPBX WebRTC {n}: {} answered; {:.1} % CPU; {} recordings",
                    step.answered,
                    step.window.cpu_pct,
                    step.recordings.len()
                );
                pbx.remove_recordings(
                    keep_dir
                        .as_ref()
                        .map(|d| d.join(format!("rustpbx-webrtc-{n}.wav")))
                        .as_deref(),
                );
                std::thread::sleep(Duration::from_secs(3));
                peer_results.push(step);
            }
            Ok(())
        };
        if peer_first {
            peer_step(&mut peer_results)?;
        }
        eprintln!("bench-webrtc: {n} WebRTC ⇄ SIP calls of {call_s} s");
        let step = run_webrtc_step(&cs, &rt, uas.pid(), &browser_sweep, n, call_s)?;
        let lost: i64 = sum(&step.calls, |c| c.lost[0] + c.lost[1]);
        let gaps: usize = sum(&step.calls, |c| c.gaps[0] + c.gaps[1]);
        eprintln!(
            "bench-webrtc: WebRTC {n}: {} answered; callscope {:.1} % CPU; lost {lost}, \
             recording gaps {gaps}",
            step.answered, step.window.cpu_pct
        );
        settle(&cs, keep_dir.as_deref(), &format!("webrtc-{n}.wav"));
        results.push((g711, step));
        if !peer_first {
            peer_step(&mut peer_results)?;
        }
    }

    let mut report = report(
        &results,
        &machine,
        call_s,
        BrowserPackets {
            audio_rate: browser_audio_rate,
            bitrate: browser_bitrate,
        },
        idle_cpu_pct,
        idle_rss,
        &cs,
    );
    if let Some((pbx, (peer_idle_rss, peer_idle_cpu))) = &peer {
        report.push_str(&peer_report(
            &results,
            &peer_results,
            pbx,
            peer_first,
            call_s,
            *peer_idle_rss,
            *peer_idle_cpu,
        ));
    }
    if let Some(d) = &keep_dir {
        let _ = std::fs::write(d.join("serve.log"), cs.log());
    }
    println!("{report}");
    drop(peer);
    let _ = uas.stop();
    let _ = cs.stop(Duration::from_secs(10));
    Ok(())
}

/// Lets the post-call pipeline finish the step's recordings, then removes them.
fn settle(cs: &Callscope, keep_dir: Option<&Path>, keep_as: &str) {
    if !wait_queue_drained(cs, Duration::from_secs(240)) {
        eprintln!("bench-webrtc: the post-call queue did not drain within 240 s");
    }
    remove_recordings(cs, keep_dir.map(|d| d.join(keep_as)));
    std::thread::sleep(Duration::from_secs(3));
}

fn pct_or_dash(v: f64, of: f64) -> String {
    if of > 0.0 {
        format!("{:.2}", v / of)
    } else {
        "-".into()
    }
}

/// How the browsers' packets were encoded.
struct BrowserPackets {
    /// The widest audio they carry (Hz).
    audio_rate: u32,
    /// bit/s.
    bitrate: u32,
}

fn report(
    results: &[(Option<G711Step>, WebRtcStep)],
    machine: &str,
    call_s: u64,
    browser: BrowserPackets,
    idle_cpu_pct: f64,
    idle_rss: u64,
    cs: &Callscope,
) -> String {
    let idle_mb = idle_rss as f64 / 1e6;
    let browser_audio_rate = browser.audio_rate;
    let browser_kbps = f64::from(browser.bitrate) / 1000.0;
    let mut r = String::new();
    r.push_str(&format!(
        "WebRTC: N aiortc peers (spread over `BENCH_AIORTC_PROCS` Python processes, default 2; each sends a 300→3400 Hz sweep encoded once \
         as Ogg Opus, 20 ms frames at {browser_kbps} kbit/s, its bandwidth within {browser_audio_rate} Hz audio, as a browser's WebRTC \
         encoder does under callscope's `maxplaybackrate`, packet by packet, and counts what it receives without decoding it) → agents' `dial` \
         over `/api/v1/agent/ws` → callscope serve (ICE-lite, DTLS-SRTP, Opus ⇄ PCMU \
         transcoding, two-channel WAV recording) → trunk → SIPp uas (127.0.0.2, PCMU sweep \
         back). Reference in the same run: N G.711 calls SIPp uac → callscope (relay + \
         recording) → the same SIPp uas. {call_s} s calls. Machine: {machine}. callscope \
         idle: {idle_cpu_pct:.2} % of a core, RSS {idle_mb:.1} MB.\n\n"
    ));
    r.push_str(
        "| calls | kind | answered | window (s) | callscope CPU (% core) | per call (% core) | \
         RSS (MB) | per call (MB) | load generators' CPU (% core) | WebRTC ÷ G.711 per call \
         |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (g711, w) in results {
        let n = w.n as f64;
        if let Some(g) = g711 {
            r.push_str(&format!(
                "| {} | G.711 relay | {} / {} | {:.0} | {:.1} | {:.3} | {:.1} | {:.2} | SIPp uac {:.1} + uas {:.1} | |\n",
                g.n,
                g.ok,
                g.n,
                g.window.wall_s,
                g.window.cpu_pct,
                g.window.cpu_pct / n,
                g.window.rss_bytes as f64 / 1e6,
                (g.window.rss_bytes as f64 / 1e6 - idle_mb) / n,
                g.window.peers_pct.first().copied().unwrap_or(0.0),
                g.window.peers_pct.get(1).copied().unwrap_or(0.0),
            ));
        }
        let ratio = g711.as_ref().map_or("-".into(), |g| {
            pct_or_dash(w.window.cpu_pct, g.window.cpu_pct)
        });
        r.push_str(&format!(
            "| {} | WebRTC ⇄ SIP, transcoded | {} / {} | {:.0} | {:.1} | **{:.3}** | {:.1} | {:.2} | aiortc {:.1} + SIPp uas {:.1} | {} |\n",
            w.n,
            w.answered,
            w.n,
            w.window.wall_s,
            w.window.cpu_pct,
            w.window.cpu_pct / n,
            w.window.rss_bytes as f64 / 1e6,
            (w.window.rss_bytes as f64 / 1e6 - idle_mb) / n,
            aiortc_pct(&w.window.peers_pct),
            w.window.peers_pct.last().copied().unwrap_or(0.0),
            ratio,
        ));
    }
    r.push_str(
        "\nWebRTC quality, per direction (browser→trunk / trunk→browser), from callscope's \
         stored per-leg reports, aiortc's own counters and the recordings:\n\n| calls | \
         aiortc sent / callscope received (browser→) | callscope sent / aiortc received \
         (→browser) | lost on arrival at callscope | lost on arrival at aiortc | jitter-buffer \
         discards | callscope sent on (expected ≈ received) | send errors | jitter mean / max \
         (ms) | recordings | silent gaps in recordings (count, ms) | recorder dropped frames / audio that missed the recording (ms) \
         | kernel drops on callscope's sockets |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (_, w) in results {
        let c = &w.calls;
        let n = c.len().max(1) as f64;
        let recs = c.iter().filter(|c| c.recording_ms.is_some()).count();
        // The rates the recordings came out at (one for every call of a step, normally).
        let mut rates: Vec<u32> = c.iter().filter_map(|c| c.recording_rate).collect();
        rates.sort_unstable();
        rates.dedup();
        let rates = rates
            .iter()
            .map(|r| format!("{r} Hz"))
            .collect::<Vec<_>>()
            .join(", ");
        let (b_sent, b_recv, b_lost) = w.browser.as_ref().map_or((0, 0, 0), |s| {
            (
                s.iter().map(|p| p.packets_sent).sum::<u64>(),
                s.iter().map(|p| p.packets_received).sum::<u64>(),
                s.iter().map(|p| p.packets_lost).sum::<i64>(),
            )
        });
        r.push_str(&format!(
            "| {} | {} / {} | {} / {} | {} / {} | {} | {} / {} | {} / {} | {} / {} | {:.2} / {:.2} ; {:.1} / {:.1} | {recs} of {} ({rates}) | {} ({:.0} ms) | {} / {} | {} |\n",
            w.n,
            b_sent,
            sum(c, |c| c.received[0]),
            sum(c, |c| c.sent[1]),
            b_recv,
            sum(c, |c| c.lost[0]),
            sum(c, |c| c.lost[1]),
            if w.browser.is_some() { b_lost.to_string() } else { "no report".into() },
            sum(c, |c| c.discarded[0]),
            sum(c, |c| c.discarded[1]),
            sum(c, |c| c.sent[0]),
            sum(c, |c| c.sent[1]),
            sum(c, |c| c.send_errors[0]),
            sum(c, |c| c.send_errors[1]),
            sum(c, |c| c.jitter_ms[0]) / n,
            sum(c, |c| c.jitter_ms[1]) / n,
            max_f(c, |c| c.max_jitter_ms[0]),
            max_f(c, |c| c.max_jitter_ms[1]),
            c.len(),
            sum(c, |c| c.gaps[0] + c.gaps[1]),
            sum(c, |c| c.gap_ms[0] + c.gap_ms[1]),
            sum(c, |c| c.recorder_dropped),
            sum(c, |c| c.recording_lost_ms),
            w.window.socket_drops,
        ));
    }
    r.push_str(&format!(
        "\nExpected packets per direction per call: {PACKETS_PER_S} per second of call.\n"
    ));
    // What the browsers' encoder chose, as callscope read it off the packets: the decode's
    // cost depends on it (a browser's wideband speech at its default bitrate is mostly SILK).
    for (_, w) in results {
        let c = &w.calls;
        let modes = [0, 1, 2].map(|i| sum(c, |c| c.opus_modes[i]));
        let counted = modes.iter().sum::<u64>().max(1) as f64;
        let packets = sum(c, |c| c.opus_packets).max(1);
        r.push_str(&format!(
            "- {} calls: the browsers' Opus as callscope received it: SILK {:.0} %, hybrid \
             {:.0} %, CELT {:.0} %; {} payload bytes a packet\n",
            w.n,
            modes[0] as f64 / counted * 100.0,
            modes[1] as f64 / counted * 100.0,
            modes[2] as f64 / counted * 100.0,
            sum(c, |c| c.opus_bytes) / packets,
        ));
    }
    // aiortc paces 50 peers from one Python event loop; when that loop falls behind it sends
    // fewer packets, callscope has less Opus to decode, and the step's CPU per call reads
    // low. Such a step is flagged rather than trusted.
    for (_, w) in results {
        let Some(peers) = w.browser.as_ref() else {
            continue;
        };
        let sent: u64 = peers.iter().map(|p| p.packets_sent).sum();
        let expected = w.n as f64 * call_s as f64 * PACKETS_PER_S;
        let share = sent as f64 / expected.max(1.0) * 100.0;
        r.push_str(&format!(
            "- {} calls: aiortc sent {sent} packets, {share:.0} % of the {expected:.0} a \
             browser would send in {call_s} s{}\n",
            w.n,
            if share < 90.0 {
                "; **below 90 %: the browsers' side fell behind, callscope had less Opus to \
                 decode than real browsers send, and this step's CPU per call reads low**"
            } else {
                ""
            }
        ));
    }
    r.push_str(
        "\nReference G.711 quality (caller→callee / callee→caller): lost on arrival, \
         received not sent on, recording gaps:\n\n",
    );
    for (g, _) in results {
        if let Some(g) = g {
            let c = &g.calls;
            r.push_str(&format!(
                "- {} calls: lost {} / {}, not sent on {} / {}, gaps {}, kernel drops {}\n",
                g.n,
                sum(c, |c| c.lost[0]),
                sum(c, |c| c.lost[1]),
                sum(c, |c| c.not_forwarded[0]),
                sum(c, |c| c.not_forwarded[1]),
                sum(c, |c| c.gaps[0] + c.gaps[1]),
                g.window.socket_drops,
            ));
        }
    }
    r.push_str("\ncallscope CPU over the window (% of a core): user / system, then by thread:\n\n");
    for (g, w) in results {
        let line = |kind: &str, f: &WindowFigures, n: u64| {
            let top: Vec<String> = f
                .threads
                .iter()
                .take(6)
                .map(|(name, p)| format!("{name} {p:.1}"))
                .collect();
            format!(
                "- {n} {kind}: user {:.1} / system {:.1}; {:.0} thread wake-ups/s; {}\n",
                f.user_sys_pct.0,
                f.user_sys_pct.1,
                f.schedules_per_s,
                top.join(", ")
            )
        };
        if let Some(g) = g {
            r.push_str(&line("G.711", &g.window, g.n));
        }
        r.push_str(&line("WebRTC", &w.window, w.n));
    }
    let setups: Vec<String> = results
        .iter()
        .map(|(_, w)| format!("{}: {:.1} s", w.n, w.setup_s))
        .collect();
    r.push_str(&format!(
        "\nWebRTC set-up (logins, sockets, aiortc's offers, dials, all answered): {}.\n",
        setups.join("; ")
    ));
    let log = cs.log();
    let warns = log_warnings(&log);
    r.push_str(&format!(
        "callscope log: {} WARN/ERROR lines.\n",
        warns.len()
    ));
    for w in warns.iter().take(5) {
        r.push_str(&format!(
            "- `{}`\n",
            w.chars().take(240).collect::<String>()
        ));
    }
    r
}

/// The RustPBX section of the report: each step's figures next to callscope's WebRTC step
/// of the same N.
fn peer_report(
    results: &[(Option<G711Step>, WebRtcStep)],
    peer: &[PeerWebRtcStep],
    pbx: &RustPbx,
    peer_first: bool,
    call_s: u64,
    idle_rss: u64,
    idle_cpu_pct: f64,
) -> String {
    let idle_mb = idle_rss as f64 / 1e6;
    let recorder = match pbx.recorder() {
        Recorder::Wav => "to a WAV per call",
        Recorder::SipFlow => "as RTP packets in its SIP flow store, no WAV per call",
    };
    let mut r = format!(
        "\nThe same WebRTC load through RustPBX in the same run ({} callscope's step of each \
         N): the same aiortc peers offering Opus alone, each offer in a plain SIP INVITE from \
         the benchmark's UAC (RustPBX tells a WebRTC leg by its SDP), hung up with BYE; \
         RustPBX anchors the media (`media_proxy = \"all\"`), transcodes Opus ⇄ PCMU to the \
         same SIPp uas and records every call {recorder}. RustPBX idle: {idle_cpu_pct:.2} % of \
         a core, RSS {idle_mb:.1} MB.\n\n\
         | calls | answered | window (s) | RustPBX CPU (% core) | per call (% core) | user / \
         system | RSS per call (MB) | aiortc + SIPp uas (% core) | callscope ÷ RustPBX per \
         call | aiortc sent / received | lost at aiortc | recordings | length (s) min–max | \
         silent gaps (count, ms) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        if peer_first { "before" } else { "after" },
    );
    for p in peer {
        let n = p.n as f64;
        let ours = results
            .iter()
            .find(|(_, w)| w.n == p.n)
            .map(|(_, w)| w.window.cpu_pct / w.n as f64);
        let theirs = p.window.cpu_pct / n;
        let ratio = ours.map_or("-".into(), |o| pct_or_dash(o, theirs));
        let (sent, received, lost) = p.browser.as_ref().map_or((0, 0, 0), |s| {
            (
                s.iter().map(|x| x.packets_sent).sum::<u64>(),
                s.iter().map(|x| x.packets_received).sum::<u64>(),
                s.iter().map(|x| x.packets_lost).sum::<i64>(),
            )
        });
        let lengths = p.recordings.iter().map(|x| x.duration_s);
        let (min_s, max_s) =
            lengths.fold((f64::MAX, 0.0_f64), |(lo, hi), d| (lo.min(d), hi.max(d)));
        // Every recording of a run has the same format: the first one names it.
        let format = p
            .recordings
            .first()
            .map(|x| format!(" ({}, {} ch, {} Hz)", x.encoding, x.channels, x.rate))
            .unwrap_or_default();
        r.push_str(&format!(
            "| {} | {} / {} | {:.0} | {:.1} | **{:.3}** | {:.1} / {:.1} | {:.2} | aiortc {:.1} + uas {:.1} | {} | {sent} / {received} | {} | {} of {}{}{} | {} | {} ({:.0} ms) |\n",
            p.n,
            p.answered,
            p.n,
            p.window.wall_s,
            p.window.cpu_pct,
            theirs,
            p.window.user_sys_pct.0,
            p.window.user_sys_pct.1,
            (p.window.rss_bytes as f64 / 1e6 - idle_mb) / n,
            aiortc_pct(&p.window.peers_pct),
            p.window.peers_pct.last().copied().unwrap_or(0.0),
            ratio,
            if p.browser.is_some() { lost.to_string() } else { "no report".into() },
            p.recordings.len(),
            p.answered,
            format,
            if p.unreadable > 0 { format!(", {} unreadable", p.unreadable) } else { String::new() },
            if p.recordings.is_empty() { "-".into() } else { format!("{min_s:.2}–{max_s:.2}") },
            p.recordings.iter().map(|x| x.gaps).sum::<usize>(),
            p.recordings.iter().map(|x| x.gap_ms).sum::<f64>(),
        ));
    }
    r.push_str(&format!(
        "\nExpected per call: {PACKETS_PER_S} packets a second each way; a call lasts its \
         set-up, 3 s to settle and {call_s} s, as callscope's do. Set-up (aiortc's offers, \
         INVITEs, answers): {}.\n",
        peer.iter()
            .map(|p| format!("{}: {:.1} s", p.n, p.setup_s))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    r
}

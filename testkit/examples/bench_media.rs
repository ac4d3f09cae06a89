//! The media benchmark behind `scripts/bench-media`: N concurrent G.711 calls from SIPp
//! through `callscope serve`, each bridged (payload relay with header rewriting) and
//! recorded, with RTP streamed from a file in both directions. Prints a Markdown report on
//! stdout; progress on stderr.
//!
//! Setup, all through the real binary (testkit's `Callscope` harness), as in the SIP
//! benchmark: an organization, a user (extension 2001) whose registered contact is a SIPp
//! UAS on 127.0.0.200, a trunk whose inbound ACL is 127.0.0.0/25, and a DID routed to the
//! user. A SIPp UAC on 127.0.0.1 calls the DID as trunk traffic; after ACK it streams a
//! 300→3400 Hz sweep (raw PCMU, looped) for the call's length, then hangs up. The UAS
//! answers every call and streams a 3400→300 Hz sweep back from ACK until BYE. SIPp 3.6.1
//! sends (and receives) every call's stream on one port per SIPp (`-mp`), one SSRC per call.
//! Both SIPps answer callscope's in-dialog keepalive OPTIONS (`-aa`).
//! Sweeps rather than speech: they are never silent, so any silence inside a recording is
//! lost audio.
//!
//! Per step (N concurrent calls), measured over the steady window (all N calls up, until
//! the first one hangs up):
//! - callscope's CPU (utime + stime from /proc/PID/stat) and per-thread CPU by thread name
//!   (schedstat), SIPp's CPU (UAC and UAS) the same way;
//! - callscope's RSS with N calls up, against its idle RSS before the first step;
//! - packets relayed per second (`callscope_media_packets_relayed_total` in /metrics);
//! - after the step: per leg, from the stored `call_sip.media_json`: packets received,
//!   sequence gaps (lost on arrival), packets not sent on, send errors, RFC 3550 jitter;
//!   per recording: duration against the call's answer→end time, silent gaps inside the
//!   audio (20 ms frames below -40 dBFS), frames the recorder dropped.
//!
//! Environment (all optional):
//! - `CALLSCOPE_BIN`: the release binary (default `target/release/callscope`)
//! - `BENCH_CALLS`: concurrent-call steps, e.g. `50,100,200` (default); the ramp stops
//!   early at a step with failed calls or lost audio
//! - `BENCH_CALL_S`: seconds of each call (default 60)
//! - `BENCH_RATE`: calls set up per second while a step ramps up (default 20)
//! - `BENCH_SOURCE_LIMIT`: callscope's per-source INVITE limit for the run (default 5000)
//! - `BENCH_KEEP_DIR`: a directory to keep one recording per step and callscope's log in
//!   (the server's own data directory is removed at exit)
//! - `BENCH_RUSTPBX_BIN`: a RustPBX binary you built yourself (nothing of RustPBX is in this
//!   repository). Then every step runs the same load a second time, through RustPBX (media
//!   anchored, every call recorded: `testkit/src/rustpbx.rs` writes its configuration),
//!   right after callscope's, and the report compares the two per call. Its CPU and RSS are
//!   read the same way; its quality is read from outside only (SIPp's outcome, the
//!   recordings' lengths and silent gaps), as its statistics are its own.
//! - `BENCH_PEER_FIRST=1`: run RustPBX's step before callscope's (to see the order's effect)
//! - `BENCH_RUSTPBX_RECORDER=sipflow`: RustPBX keeps each call's RTP packets in its SIP flow
//!   store instead of writing a WAV (default `wav`); its recordings are then not checked
//! - `BENCH_RUSTPBX_MEDIA_WORKERS`: RustPBX's `media_worker_threads` (its default here is one)

use callscope_testkit::audio_compare::{raw_g711, sweep_wav};
use callscope_testkit::bench::{
    CallCheck, WindowFigures, env_list, env_or, log_warnings, machine, max_f, remove_recordings,
    sum, wait_queue_drained,
};
use callscope_testkit::bench_g711::{G711Load, G711Step, PeerStep, run_g711_step, run_peer_step};
use callscope_testkit::callscope::Callscope;
use callscope_testkit::rustpbx::{self, Recorder, RustPbx};
use callscope_testkit::sipp::{G711, Scenario, SippConfig, SippRun, uas_rtp_stream_scenario};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

type Res<T> = Result<T, String>;

const DID: &str = "+12025550100";
const EXT: &str = "2001";
const PASSWORD: &str = "bench-secret-2001";
/// G.711 at 20 ms per packet.
const PACKETS_PER_S: f64 = 50.0;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-media: {e}");
            ExitCode::from(2)
        }
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn fmt_f(v: f64, digits: usize) -> String {
    format!("{v:.digits$}")
}

fn run() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = std::env::var("CALLSCOPE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/callscope"));
    if !bin.exists() {
        return Err(format!("no callscope binary at {}", bin.display()));
    }
    let steps = env_list("BENCH_CALLS", "50,100,200");
    let call_s: u64 = env_or("BENCH_CALL_S", 60);
    let rate: f64 = env_or("BENCH_RATE", 20.0_f64).max(1.0);
    let source_limit: f64 = env_or("BENCH_SOURCE_LIMIT", 5000.0);
    let machine = machine();
    let keep_dir = std::env::var_os("BENCH_KEEP_DIR").map(PathBuf::from);
    if let Some(d) = &keep_dir {
        std::fs::create_dir_all(d).map_err(err("creating BENCH_KEEP_DIR"))?;
    }

    // The two sources: never-silent sweeps, raw PCMU as SIPp's rtp_stream wants.
    let media_dir = tempfile::tempdir().map_err(err("a temp dir"))?;
    let up = sweep_wav(&media_dir.path().join("up.wav"), 8000, 4.0, 300, 3400)
        .map_err(err("making the caller's sweep"))?;
    let down = sweep_wav(&media_dir.path().join("down.wav"), 8000, 3.0, 3400, 300)
        .map_err(err("making the answerer's sweep"))?;
    let raw_uac = media_dir.path().join("up.ulaw");
    let raw_uas = media_dir.path().join("down.ulaw");
    raw_g711(&up, &raw_uac, true).map_err(err("encoding the caller's sweep"))?;
    raw_g711(&down, &raw_uas, true).map_err(err("encoding the answerer's sweep"))?;

    // As in bench-sip: the far end on 127.0.0.200 (outside the trunk's ACL, so it may
    // register), the load from 127.0.0.1 (inside it: trunk calls).
    let uas_ip = Ipv4Addr::new(127, 0, 0, 200);
    let uac_ip = Ipv4Addr::new(127, 0, 0, 1);
    let uas_port = callscope_testkit::ports::free_port().map_err(err("a UAS port"))?;
    let uas_addr = SocketAddr::from((uas_ip, uas_port));
    eprintln!("bench-media: provisioning (org, user {EXT}, trunk, route {DID}) and starting serve");
    let mut cs = Callscope::builder(&bin)
        .user(EXT, PASSWORD)
        .trunk(uas_addr, &["127.0.0.0/25"])
        .route_to_user(DID, EXT)
        .env("CALLSCOPE_LOG", "warn")
        .env("CALLSCOPE_SIP_TCP_ADDR", "")
        .env("CALLSCOPE_SIP_RTP_PORTS", "30000-59999")
        .env(
            "CALLSCOPE_SIP_REQUESTS_PER_SECOND",
            &source_limit.to_string(),
        )
        .env(
            "CALLSCOPE_SIP_REQUEST_BURST",
            &(source_limit * 2.0).to_string(),
        )
        .start()
        .map_err(err("starting callscope"))?;
    let reg = callscope_testkit::digest::register(
        cs.sip_addr(),
        uas_addr,
        EXT,
        cs.realm(),
        PASSWORD,
        3600,
        &[
            callscope_testkit::digest::Algorithm::Sha256,
            callscope_testkit::digest::Algorithm::Md5,
        ],
    )
    .map_err(err("registering the UAS as the user"))?;
    if reg.status != 200 {
        return Err(format!(
            "registering {EXT} got {}:\n{}",
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

    let load = G711Load {
        uas_pid: uas.pid(),
        uac_ip,
        raw_uac: raw_uac.clone(),
        did: DID.into(),
        rate,
        call_s,
    };
    let peer = match std::env::var_os("BENCH_RUSTPBX_BIN") {
        Some(bin) => Some(start_rustpbx(&PathBuf::from(bin), uas_addr)?),
        None => None,
    };
    let peer_first = std::env::var("BENCH_PEER_FIRST").is_ok_and(|v| v == "1");
    let mut results = Vec::new();
    let mut peer_results: Vec<PeerStep> = Vec::new();
    for &n in &steps {
        if let (Some((pbx, _)), true) = (&peer, peer_first) {
            peer_results.push(peer_step(pbx, &load, n, keep_dir.as_deref())?);
        }
        eprintln!("bench-media: {n} concurrent calls of {call_s} s, set up at {rate}/s");
        let step = run_g711_step(&cs, &load, n)?;
        let lost: i64 = sum(&step.calls, |c| c.lost[0] + c.lost[1]);
        let not_fwd: i64 = sum(&step.calls, |c| c.not_forwarded[0] + c.not_forwarded[1]);
        let gaps: usize = sum(&step.calls, |c| c.gaps[0] + c.gaps[1]);
        let stop = step.failed > 0 || step.ok < n || lost > 0 || not_fwd > 0 || gaps > 0;
        eprintln!(
            "bench-media: {n}: {} ok, {} failed; callscope {:.1} % CPU; lost {lost}, not \
             forwarded {not_fwd}, recording gaps {gaps}",
            step.ok, step.failed, step.window.cpu_pct
        );
        results.push(step);
        if !wait_queue_drained(&cs, Duration::from_secs(240)) {
            eprintln!("bench-media: the post-call queue did not drain within 240 s");
        }
        remove_recordings(
            &cs,
            keep_dir.as_ref().map(|d| d.join(format!("call-{n}.wav"))),
        );
        if let (Some((pbx, _)), false) = (&peer, peer_first) {
            std::thread::sleep(Duration::from_secs(3));
            peer_results.push(peer_step(pbx, &load, n, keep_dir.as_deref())?);
        }
        if stop {
            eprintln!("bench-media: failures or lost audio at {n} calls; stopping the ramp");
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
    }

    // The report.
    let mut r = String::new();
    r.push_str(&format!(
        "SIPp uac (127.0.0.1) → callscope serve (B2BUA, relay + two-channel WAV recording of \
         every call) → SIPp uas (127.0.0.200); PCMU 20 ms both ways, {call_s} s calls set up \
         at {rate}/s. Machine: {machine}. callscope idle (SIP up, no calls): {:.2} % of a core, \
         RSS {:.1} MB.\n\n",
        idle_cpu_pct,
        idle_rss as f64 / 1e6
    ));
    r.push_str(
        "| calls | ok / failed | window (s) | callscope CPU (% core) | per call (% core) | \
         RSS (MB) | per call (MB) | packets relayed/s (expected) | SIPp CPU uac+uas (% core) \
         | SIPp per call | callscope ÷ SIPp |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in &results {
        let n = s.n as f64;
        r.push_str(&format!(
            "| {} | {} / {} | {:.0} | {:.1} | {:.3} | {:.1} | {:.2} | {:.0} ({:.0}) | {} |\n",
            s.n,
            s.ok,
            s.failed,
            s.window.wall_s,
            s.window.cpu_pct,
            s.window.cpu_pct / n,
            (s.window.rss_bytes as f64 / 1e6),
            ((s.window.rss_bytes as f64 / 1e6) - idle_rss as f64 / 1e6) / n,
            s.relayed_per_s,
            n * 2.0 * PACKETS_PER_S,
            sipp_columns(&s.window, n),
        ));
    }
    r.push_str(
        "\nQuality, per direction (caller→callee / callee→caller), from callscope's stored \
         per-leg reports and the recordings:\n\n| calls | packets received | lost on arrival \
         (seq gaps) | received, not sent on | send errors | jitter mean / max (ms) | \
         recordings | max abs(recording − call) (ms) | silent gaps in recordings (count, ms) \
         | recorder dropped frames / audio that missed the recording (ms) | kernel drops on callscope's sockets |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in &results {
        let c = &s.calls;
        let n = c.len().max(1) as f64;
        let recs = c.iter().filter(|c| c.recording_ms.is_some()).count();
        let dur_err = c
            .iter()
            .filter_map(|c| c.recording_ms.map(|r| (r - c.call_ms).abs()))
            .fold(0.0, f64::max);
        r.push_str(&format!(
            "| {} | {} / {} | {} / {} | {} / {} | {} / {} | {:.2} / {:.2} ; {:.1} / {:.1} | {recs} of {} | {:.0} | {} ({:.0} ms) | {} / {} | {} |\n",
            s.n,
            sum(c, |c| c.received[0]),
            sum(c, |c| c.received[1]),
            sum(c, |c| c.lost[0]),
            sum(c, |c| c.lost[1]),
            sum(c, |c| c.not_forwarded[0]),
            sum(c, |c| c.not_forwarded[1]),
            sum(c, |c| c.send_errors[0]),
            sum(c, |c| c.send_errors[1]),
            sum(c, |c| c.jitter_ms[0]) / n,
            sum(c, |c| c.jitter_ms[1]) / n,
            max_f(c, |c| c.max_jitter_ms[0]),
            max_f(c, |c| c.max_jitter_ms[1]),
            c.len(),
            dur_err,
            sum(c, |c| c.gaps[0] + c.gaps[1]),
            sum(c, |c| c.gap_ms[0] + c.gap_ms[1]).abs(),
            sum(c, |c| c.recorder_dropped),
            sum(c, |c| c.recording_lost_ms),
            s.window.socket_drops,
        ));
    }
    r.push_str("\ncallscope CPU over the window (% of a core): user / system, then by thread:\n\n");
    for s in &results {
        let top: Vec<String> = s
            .window
            .threads
            .iter()
            .take(6)
            .map(|(name, p)| format!("{name} {p:.1}"))
            .collect();
        r.push_str(&format!(
            "- {} calls: user {:.1} / system {:.1}; {:.0} thread wake-ups/s; {}\n",
            s.n,
            s.window.user_sys_pct.0,
            s.window.user_sys_pct.1,
            s.window.schedules_per_s,
            top.join(", ")
        ));
    }
    let active: Vec<String> = results
        .iter()
        .map(|s| {
            let c: Vec<&CallCheck> = s
                .calls
                .iter()
                .filter(|c| c.recording_ms.is_some())
                .collect();
            let n = c.len().max(1) as f64;
            format!(
                "{}: {:.1} s / {:.1} s",
                s.n,
                c.iter().map(|c| c.active_s[0]).sum::<f64>() / n,
                c.iter().map(|c| c.active_s[1]).sum::<f64>() / n
            )
        })
        .collect();
    r.push_str(&format!(
        "\nMean sounding span of the recordings' channels (left agent / right caller), \
         against calls of {call_s} s: {}.\n",
        active.join("; ")
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
    if let Some(d) = &keep_dir {
        let _ = std::fs::write(d.join("serve.log"), &log);
    }
    if let Some((pbx, idle)) = &peer {
        r.push_str(&peer_report(
            pbx,
            *idle,
            &results,
            &peer_results,
            call_s,
            peer_first,
        ));
    }
    println!("{r}");
    drop(peer);
    let _ = uas.stop();
    let _ = cs.stop(Duration::from_secs(10));
    Ok(())
}

/// Starts RustPBX (see `rustpbx::start_on_loopback`), forwarding every call to the far-end
/// SIPp; returns it with its idle RSS and CPU.
fn start_rustpbx(bin: &std::path::Path, far_end: SocketAddr) -> Res<(RustPbx, (u64, f64))> {
    eprintln!("bench-media: starting RustPBX ({})", bin.display());
    let pbx = rustpbx::start_on_loopback(bin, far_end).map_err(err("starting RustPBX"))?;
    eprintln!("bench-media: RustPBX SIP on {}", pbx.sip_addr());
    let idle = callscope_testkit::bench::idle_figures(pbx.pid()).map_err(err("RustPBX idle"))?;
    Ok((pbx, idle))
}

fn peer_step(
    pbx: &RustPbx,
    load: &G711Load,
    n: u64,
    keep_dir: Option<&std::path::Path>,
) -> Res<PeerStep> {
    eprintln!("bench-media: {n} concurrent calls through RustPBX");
    let files = || pbx.recordings();
    let recordings: Option<&dyn Fn() -> Vec<PathBuf>> = match pbx.recorder() {
        Recorder::Wav => Some(&files),
        Recorder::SipFlow => None,
    };
    let step = run_peer_step(pbx.pid(), pbx.sip_addr(), load, n, recordings)?;
    eprintln!(
        "bench-media: RustPBX {n}: {} ok, {} failed; {:.1} % CPU; {} recordings",
        step.ok,
        step.failed,
        step.window.cpu_pct,
        step.recordings.len()
    );
    pbx.remove_recordings(
        keep_dir
            .map(|d| d.join(format!("rustpbx-{n}.wav")))
            .as_deref(),
    );
    std::thread::sleep(Duration::from_secs(3));
    Ok(step)
}

/// The same-run comparison with RustPBX, as a Markdown section.
fn peer_report(
    pbx: &RustPbx,
    (idle_rss, idle_cpu): (u64, f64),
    ours: &[G711Step],
    peer: &[PeerStep],
    call_s: u64,
    peer_first: bool,
) -> String {
    let mut r = format!(
        "\nSame load through RustPBX (media anchored: `media_proxy = \"all\"`, every call \
         recorded {}), {} callscope's step each time. RustPBX idle: {idle_cpu:.2} % of a \
         core, RSS {:.1} MB.\n\n| calls | ok / failed | window (s) | RustPBX CPU (% core) | \
         per call (% core) | RSS (MB) | per call (MB) | SIPp CPU uac+uas (% core) | SIPp per \
         call | RustPBX ÷ SIPp | callscope ÷ RustPBX, per call |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        match pbx.recorder() {
            Recorder::Wav => "to a two-channel WAV",
            Recorder::SipFlow => "as RTP packets in its SIP flow store, no WAV per call",
        },
        if peer_first { "before" } else { "after" },
        idle_rss as f64 / 1e6
    );
    for p in peer {
        let n = p.n as f64;
        let ours_per_call = ours
            .iter()
            .find(|s| s.n == p.n)
            .map(|s| s.window.cpu_pct / n);
        let per_call = p.window.cpu_pct / n;
        r.push_str(&format!(
            "| {} | {} / {} | {:.0} | {:.1} | {:.3} | {:.1} | {:.2} | {} | {} |\n",
            p.n,
            p.ok,
            p.failed,
            p.window.wall_s,
            p.window.cpu_pct,
            per_call,
            p.window.rss_bytes as f64 / 1e6,
            (p.window.rss_bytes as f64 - idle_rss as f64) / 1e6 / n,
            sipp_columns(&p.window, n),
            match ours_per_call {
                Some(o) if per_call > 0.0 => fmt_f(o / per_call, 2),
                _ => "-".into(),
            },
        ));
    }
    r.push_str(
        "\nRustPBX's recordings, read from outside (its own statistics are not compared; with \
         its SIP flow store there are no files to read), and its CPU split:\n\n\
         | calls | recordings (unreadable) | channels, rate, encoding | max abs(recording − call) (ms) | \
         silent gaps (count, ms) | RustPBX CPU user / system |\n|---|---|---|---|---|---|\n",
    );
    for p in peer {
        let shape: std::collections::BTreeSet<String> = p
            .recordings
            .iter()
            .map(|c| format!("{} ch, {} Hz, {}", c.channels, c.rate, c.encoding))
            .collect();
        let dur_err = p
            .recordings
            .iter()
            .map(|c| (c.duration_s - call_s as f64).abs() * 1000.0)
            .fold(0.0, f64::max);
        r.push_str(&format!(
            "| {} | {} ({}) | {} | {:.0} | {} ({:.0} ms) | {:.1} / {:.1} |\n",
            p.n,
            p.recordings.len(),
            p.unreadable,
            shape.into_iter().collect::<Vec<_>>().join("; "),
            dur_err,
            p.recordings.iter().map(|c| c.gaps).sum::<usize>(),
            p.recordings.iter().map(|c| c.gap_ms).sum::<f64>(),
            p.window.user_sys_pct.0,
            p.window.user_sys_pct.1,
        ));
    }
    let log = pbx.log();
    let warns = log_warnings(&log);
    r.push_str(&format!("RustPBX log: {} WARN/ERROR lines.\n", warns.len()));
    for w in warns.iter().take(5) {
        r.push_str(&format!(
            "- `{}`\n",
            w.chars().take(240).collect::<String>()
        ));
    }
    r
}

/// The report's SIPp columns for a step of `n` calls: UAC + UAS CPU, SIPp per call, and
/// the server's CPU over SIPp's.
fn sipp_columns(w: &WindowFigures, n: f64) -> String {
    let sipp = w.peers_pct.iter().sum::<f64>();
    format!(
        "{:.1} + {:.1} | {:.3} | {}",
        w.peers_pct.first().copied().unwrap_or(0.0),
        w.peers_pct.get(1).copied().unwrap_or(0.0),
        sipp / n,
        if sipp > 0.0 {
            fmt_f(w.cpu_pct / sipp, 2)
        } else {
            "-".into()
        }
    )
}

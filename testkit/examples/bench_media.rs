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

use callscope_testkit::audio_compare::{
    Mono, active_span, raw_g711, read_wav_channels, silence_intervals, sweep_wav,
};
use callscope_testkit::callscope::Callscope;
use callscope_testkit::process::{cpu_time_of, rss_bytes_of};
use callscope_testkit::sipp::{
    G711, Scenario, SippConfig, SippRun, uac_rtp_stream_scenario, uas_rtp_stream_scenario,
};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const DID: &str = "+12025550100";
const EXT: &str = "2001";
const PASSWORD: &str = "bench-secret-2001";
/// G.711 at 20 ms per packet.
const PACKETS_PER_S: f64 = 50.0;
/// A 20 ms frame below this level inside a sweep is missing audio (the sweeps sit at about
/// -9 dBFS RMS; G.711 keeps them well above this).
const GAP_DBFS: f64 = -40.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

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

/// callscope's SIP and media counters from `GET /healthz`.
fn counters(cs: &Callscope) -> BTreeMap<String, u64> {
    let Ok((200, body)) = cs.http().get("/healthz") else {
        return Default::default();
    };
    body.pointer("/sip/counters")
        .and_then(|c| c.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// CPU time in ns per thread name (digits dropped, so `callscope-rec-12` groups with its
/// kind) of process `pid`, from schedstat: exact, not rounded to clock ticks.
fn threads_cpu_ns(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let name: String = comm
            .trim_end()
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_string();
        let ns = std::fs::read_to_string(task.path().join("schedstat"))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        *out.entry(name).or_default() += ns;
    }
    out
}

/// (user, system) CPU seconds of a process, from /proc/PID/stat (fields 14 and 15).
fn user_sys_of(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    (
        f.get(11).copied().unwrap_or(0.0) / hz,
        f.get(12).copied().unwrap_or(0.0) / hz,
    )
}

/// Datagrams the kernel dropped on `pid`'s own UDP sockets (receive buffer full): the
/// `drops` column of /proc/net/udp for the socket inodes among its descriptors. Only
/// sockets open now count (a call's sockets close at hangup), so read it with calls up.
fn socket_drops_of(pid: u32) -> u64 {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|t| {
                    let t = t.to_string_lossy().into_owned();
                    Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (inode, drops) = (f.get(9)?, f.get(12)?);
            inodes
                .contains(*inode)
                .then(|| drops.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{model}, {nproc} logical CPUs shared with other work (load average at start {})",
        load.join(" ")
    )
}

/// What one call looked like afterwards, from the database and its recording.
#[derive(Default)]
struct CallCheck {
    /// Per direction (caller→callee, callee→caller): packets that reached callscope.
    received: [u64; 2],
    /// Sequence gaps on arrival (RFC 3550 cumulative lost).
    lost: [i64; 2],
    /// Received but not sent on to the other leg.
    not_forwarded: [i64; 2],
    send_errors: [u64; 2],
    jitter_ms: [f64; 2],
    max_jitter_ms: [f64; 2],
    recorder_dropped: u64,
    call_ms: f64,
    recording_ms: Option<f64>,
    /// Silent stretches (≥ one 20 ms frame) inside each channel's active span.
    gaps: [usize; 2],
    gap_ms: [f64; 2],
    /// Active span of each channel (first to last sounding frame), seconds.
    active_s: [f64; 2],
}

fn leg_figures(media: &serde_json::Value, check: &mut CallCheck) {
    // Direction 0: the caller's audio (received on the caller leg, sent on the callee leg).
    for (dir, (from, to)) in [("caller", "callee"), ("callee", "caller")]
        .into_iter()
        .enumerate()
    {
        let f = &media[from];
        let t = &media[to];
        let received = f["packets_received"].as_u64().unwrap_or(0);
        check.received[dir] = received;
        check.lost[dir] = f["lost"].as_i64().unwrap_or(0);
        check.not_forwarded[dir] = received as i64 - t["packets_sent"].as_i64().unwrap_or(0);
        check.send_errors[dir] = t["send_errors"].as_u64().unwrap_or(0);
        check.jitter_ms[dir] = f["jitter_ms"].as_f64().unwrap_or(0.0);
        check.max_jitter_ms[dir] = f["max_jitter_ms"].as_f64().unwrap_or(0.0);
    }
    check.recorder_dropped = media["recording_dropped_frames"].as_u64().unwrap_or(0);
}

/// Silent gaps inside the sounding part of one channel: (count, total ms, active seconds).
fn gaps_of(channel: &Mono) -> (usize, f64, f64) {
    let Some(span) = active_span(channel, 20, GAP_DBFS) else {
        return (0, 0.0, 0.0);
    };
    let inner = channel.slice_s(span.start_s, span.end_s);
    let gaps = silence_intervals(&inner, 20, GAP_DBFS, 0.02);
    let ms = gaps.iter().map(|g| g.len_s() * 1000.0).sum();
    (gaps.len(), ms, span.len_s())
}

fn check_calls(cs: &Callscope, after_rowid: i64) -> Res<Vec<CallCheck>> {
    let rows = cs
        .query(&format!(
            "SELECT c.media_json, c.end_at - c.answer_at, r.path, r.duration_ms \
             FROM call_sip c LEFT JOIN recordings r ON r.call_id = c.call_id \
             WHERE c.rowid > {after_rowid} AND c.answer_at IS NOT NULL ORDER BY c.rowid"
        ))
        .map_err(err("reading the step's calls"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut check = CallCheck::default();
        if let Some(media) = row
            .first()
            .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        {
            leg_figures(&media, &mut check);
        }
        check.call_ms = row.get(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        if let Some(path) = row.get(2).filter(|p| p.as_str() != "NULL") {
            let path = PathBuf::from(path);
            if let Ok(channels) = read_wav_channels(&path) {
                check.recording_ms = channels.first().map(|c| c.duration_s() * 1000.0);
                for (i, ch) in channels.iter().take(2).enumerate() {
                    let (n, ms, active) = gaps_of(ch);
                    check.gaps[i] = n;
                    check.gap_ms[i] = ms;
                    check.active_s[i] = active;
                }
            }
        }
        out.push(check);
    }
    Ok(out)
}

fn max_rowid(cs: &Callscope) -> Res<i64> {
    let rows = cs
        .query("SELECT COALESCE(MAX(rowid), 0) FROM call_sip")
        .map_err(err("reading call_sip"))?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Polls every 500 ms until `done` or `limit` passes; whether `done` held.
fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    done()
}

struct StepResult {
    n: u64,
    ok: u64,
    failed: u64,
    window_s: f64,
    cs_cpu_pct: f64,
    /// callscope's user and system shares of `cs_cpu_pct`.
    cs_user_sys_pct: (f64, f64),
    threads: Vec<(String, f64)>,
    uac_cpu_pct: f64,
    uas_cpu_pct: f64,
    rss_mb: f64,
    relayed_per_s: f64,
    socket_drops: u64,
    calls: Vec<CallCheck>,
}

fn fmt_f(v: f64, digits: usize) -> String {
    format!("{v:.digits$}")
}

#[allow(clippy::too_many_arguments)]
fn run_step(
    cs: &Callscope,
    uas_pid: u32,
    uac_ip: Ipv4Addr,
    raw_uac: &Path,
    n: u64,
    rate: f64,
    call_s: u64,
) -> Res<StepResult> {
    let pid = cs.pid().ok_or("callscope not running")?;
    let before_rowid = max_rowid(cs)?;
    let mut cfg = SippConfig::uac(
        Scenario::Xml(uac_rtp_stream_scenario(raw_uac, G711::Ulaw, call_s * 1000)),
        cs.sip_addr(),
    );
    cfg.local_ip = uac_ip;
    cfg.media_port =
        Some(callscope_testkit::ports::free_port_run(2).map_err(err("a UAC media port"))?);
    cfg.service = Some(DID.into());
    cfg.max_calls = Some(n);
    cfg.rate = Some(rate);
    cfg.limit = Some(n);
    let ramp_s = n as f64 / rate;
    cfg.global_timeout = Some(Duration::from_secs_f64(ramp_s + call_s as f64 + 60.0));
    // -aa: answer callscope's in-dialog keepalive OPTIONS (every 30 s) with 200, as a phone
    // does; without it SIPp aborts the call at the first one.
    cfg.extra_args = vec!["-recv_timeout".into(), "20000".into(), "-aa".into()];
    let t_start = Instant::now();
    let uac = SippRun::start(&cfg).map_err(err("starting the SIPp UAC"))?;

    // All N calls up: SIPp has them in progress and callscope has N media calls.
    let all_up = poll_until(Duration::from_secs_f64(ramp_s + 20.0), || {
        let media = counters(cs).get("media_calls").copied().unwrap_or(0);
        let sipp = uac.outcome_now().map_or(0, |o| o.current_calls);
        media >= n && sipp >= n
    });
    if !all_up {
        eprintln!(
            "bench-media: {n} calls not all up after {:.0} s (callscope media calls {:?})",
            t_start.elapsed().as_secs_f64(),
            counters(cs).get("media_calls")
        );
    }
    // Settle, then measure until shortly before the first call hangs up.
    std::thread::sleep(Duration::from_secs(3));
    let window_end = t_start + Duration::from_secs(call_s).saturating_sub(Duration::from_secs(3));
    let window = window_end.saturating_duration_since(Instant::now());
    if window < Duration::from_secs(5) {
        return Err(format!(
            "no steady window: {n} calls at {rate}/s take {ramp_s:.0} s to set up and calls last \
             {call_s} s; raise BENCH_CALL_S or BENCH_RATE"
        ));
    }
    let relayed0 = counters(cs)
        .get("media_packets_relayed")
        .copied()
        .ok_or("callscope reports no media_packets_relayed counter (older build?)")?;
    let cpu0 = cpu_time_of(pid).map_err(err("callscope CPU"))?;
    let us0 = user_sys_of(pid);
    let threads0 = threads_cpu_ns(pid);
    let uac_cpu0 = cpu_time_of(uac.pid()).map_err(err("UAC CPU"))?;
    let uas_cpu0 = cpu_time_of(uas_pid).map_err(err("UAS CPU"))?;
    let t0 = Instant::now();
    eprintln!(
        "bench-media: {n} calls up; measuring for {:.0} s",
        window.as_secs_f64()
    );
    std::thread::sleep(window);
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_time_of(pid).map_err(err("callscope CPU"))?;
    let us1 = user_sys_of(pid);
    let threads1 = threads_cpu_ns(pid);
    let uac_cpu1 = cpu_time_of(uac.pid()).map_err(err("UAC CPU"))?;
    let uas_cpu1 = cpu_time_of(uas_pid).map_err(err("UAS CPU"))?;
    let rss = rss_bytes_of(pid).map_err(err("callscope RSS"))?;
    let relayed1 = counters(cs)
        .get("media_packets_relayed")
        .copied()
        .unwrap_or(relayed0);
    let socket_drops = socket_drops_of(pid);
    let live_at_end = counters(cs).get("media_calls").copied().unwrap_or(0);
    if live_at_end < n {
        eprintln!("bench-media: only {live_at_end} media calls at the end of the window");
    }

    let pct = |d: Duration| d.as_secs_f64() / wall * 100.0;
    let mut threads: Vec<(String, f64)> = threads1
        .iter()
        .map(|(name, ns)| {
            let before = threads0.get(name).copied().unwrap_or(0);
            (
                name.clone(),
                ns.saturating_sub(before) as f64 / 1e9 / wall * 100.0,
            )
        })
        .filter(|(_, p)| *p >= 0.05)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));

    let out = uac
        .wait(Duration::from_secs_f64(ramp_s + call_s as f64 + 90.0))
        .map_err(err("waiting for the SIPp UAC"))?;
    // Every call closed on callscope's side and its record (media report, recording) stored.
    let settled = poll_until(Duration::from_secs(60), || {
        counters(cs).get("media_calls").copied().unwrap_or(1) == 0
            && cs
                .query(&format!(
                    "SELECT COUNT(*) FROM call_sip c JOIN recordings r ON r.call_id = c.call_id \
                     WHERE c.rowid > {before_rowid} AND c.media_json IS NOT NULL"
                ))
                .ok()
                .and_then(|r| r.first()?.first()?.parse::<u64>().ok())
                .is_some_and(|c| c >= out.successful_calls)
    });
    if !settled {
        eprintln!("bench-media: not every call's media record was stored within 60 s");
    }
    let calls = check_calls(cs, before_rowid)?;
    Ok(StepResult {
        n,
        ok: out.successful_calls,
        failed: out.failed_calls,
        window_s: wall,
        cs_cpu_pct: pct(cpu1.saturating_sub(cpu0)),
        cs_user_sys_pct: (
            (us1.0 - us0.0) / wall * 100.0,
            (us1.1 - us0.1) / wall * 100.0,
        ),
        threads,
        uac_cpu_pct: pct(uac_cpu1.saturating_sub(uac_cpu0)),
        uas_cpu_pct: pct(uas_cpu1.saturating_sub(uas_cpu0)),
        rss_mb: rss as f64 / 1e6,
        relayed_per_s: relayed1.saturating_sub(relayed0) as f64 / wall,
        socket_drops,
        calls,
    })
}

/// Waits for the post-call pipeline to finish the step's jobs (it runs on every recorded
/// call at hangup), so its work does not fall into the next step's window.
fn wait_queue_drained(cs: &Callscope, limit: Duration) -> bool {
    poll_until(limit, || {
        cs.metrics()
            .ok()
            .and_then(|m| m.get("callscope_queue_depth").copied())
            .is_some_and(|d| d == 0.0)
    })
}

/// Deletes the step's recordings once processed (60 s of 8 kHz stereo is 1.9 MB a call),
/// keeping the first one as `keep` if asked.
fn remove_recordings(cs: &Callscope, keep: Option<PathBuf>) {
    let mut keep = keep;
    let dir = cs.data_dir().join("recordings");
    if let Ok(orgs) = std::fs::read_dir(&dir) {
        for org in orgs.flatten() {
            if let Ok(files) = std::fs::read_dir(org.path()) {
                for f in files.flatten() {
                    if f.path().extension().is_some_and(|e| e == "wav") {
                        if let Some(to) = keep.take() {
                            let _ = std::fs::copy(f.path(), to);
                        }
                        let _ = std::fs::remove_file(f.path());
                    }
                }
            }
        }
    }
}

fn sum<T: Copy + std::iter::Sum<T>>(calls: &[CallCheck], f: impl Fn(&CallCheck) -> T) -> T {
    calls.iter().map(f).sum()
}

fn max_f(calls: &[CallCheck], f: impl Fn(&CallCheck) -> f64) -> f64 {
    calls.iter().map(f).fold(0.0, f64::max)
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
    std::thread::sleep(Duration::from_secs(3));
    let idle_rss = rss_bytes_of(pid).map_err(err("RSS"))?;
    let c0 = cpu_time_of(pid).map_err(err("CPU"))?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let idle_cpu_pct = (cpu_time_of(pid).map_err(err("CPU"))? - c0).as_secs_f64()
        / t0.elapsed().as_secs_f64()
        * 100.0;

    let mut results = Vec::new();
    for &n in &steps {
        eprintln!("bench-media: {n} concurrent calls of {call_s} s, set up at {rate}/s");
        let step = run_step(&cs, uas.pid(), uac_ip, &raw_uac, n, rate, call_s)?;
        let lost: i64 = sum(&step.calls, |c| c.lost[0] + c.lost[1]);
        let not_fwd: i64 = sum(&step.calls, |c| c.not_forwarded[0] + c.not_forwarded[1]);
        let gaps: usize = sum(&step.calls, |c| c.gaps[0] + c.gaps[1]);
        let stop = step.failed > 0 || step.ok < n || lost > 0 || not_fwd > 0 || gaps > 0;
        eprintln!(
            "bench-media: {n}: {} ok, {} failed; callscope {:.1} % CPU; lost {lost}, not \
             forwarded {not_fwd}, recording gaps {gaps}",
            step.ok, step.failed, step.cs_cpu_pct
        );
        results.push(step);
        if !wait_queue_drained(&cs, Duration::from_secs(240)) {
            eprintln!("bench-media: the post-call queue did not drain within 240 s");
        }
        remove_recordings(
            &cs,
            keep_dir.as_ref().map(|d| d.join(format!("call-{n}.wav"))),
        );
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
        let sipp = s.uac_cpu_pct + s.uas_cpu_pct;
        r.push_str(&format!(
            "| {} | {} / {} | {:.0} | {:.1} | {:.3} | {:.1} | {:.2} | {:.0} ({:.0}) | {:.1} + {:.1} | {:.3} | {} |\n",
            s.n,
            s.ok,
            s.failed,
            s.window_s,
            s.cs_cpu_pct,
            s.cs_cpu_pct / n,
            s.rss_mb,
            (s.rss_mb - idle_rss as f64 / 1e6) / n,
            s.relayed_per_s,
            n * 2.0 * PACKETS_PER_S,
            s.uac_cpu_pct,
            s.uas_cpu_pct,
            sipp / n,
            if sipp > 0.0 {
                fmt_f(s.cs_cpu_pct / sipp, 2)
            } else {
                "-".into()
            },
        ));
    }
    r.push_str(
        "\nQuality, per direction (caller→callee / callee→caller), from callscope's stored \
         per-leg reports and the recordings:\n\n| calls | packets received | lost on arrival \
         (seq gaps) | received, not sent on | send errors | jitter mean / max (ms) | \
         recordings | max abs(recording − call) (ms) | silent gaps in recordings (count, ms) \
         | recorder dropped frames | kernel drops on callscope's sockets |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
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
            "| {} | {} / {} | {} / {} | {} / {} | {} / {} | {:.2} / {:.2} ; {:.1} / {:.1} | {recs} of {} | {:.0} | {} ({:.0} ms) | {} | {} |\n",
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
            s.socket_drops,
        ));
    }
    r.push_str("\ncallscope CPU over the window (% of a core): user / system, then by thread:\n\n");
    for s in &results {
        let top: Vec<String> = s
            .threads
            .iter()
            .take(6)
            .map(|(name, p)| format!("{name} {p:.1}"))
            .collect();
        r.push_str(&format!(
            "- {} calls: user {:.1} / system {:.1}; {}\n",
            s.n,
            s.cs_user_sys_pct.0,
            s.cs_user_sys_pct.1,
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
    let warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
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
    println!("{r}");
    let _ = uas.stop();
    let _ = cs.stop(Duration::from_secs(10));
    Ok(())
}

//! The SIP benchmark behind `scripts/bench-sip`: SIPp `uac` → `callscope serve` (B2BUA) →
//! SIPp `uas`, on loopback, with calls that answer at once and hang up after a fixed time
//! (no media). Prints a Markdown report on stdout; progress on stderr.
//!
//! Setup, all through the real binary (testkit's `Callscope` harness): an organization, a
//! user (extension 2001) whose registered contact is the SIPp UAS on 127.0.0.200 (registered
//! from the UAS's own port with digest auth), a trunk whose inbound ACL is 127.0.0.0/25, and
//! a DID routed to the user.
//! Calls come in as trunk calls to the DID.
//!
//! Environment (all optional):
//! - `CALLSCOPE_BIN`: the release binary (default `target/release/callscope`)
//! - `BENCH_RATES`: calls/s steps of the ramp, e.g. `100,200,300,500,700`
//! - `BENCH_STEP_S`: seconds per step (default 10)
//! - `BENCH_HOLD_MS`: call duration after answer (default 1000)
//! - `BENCH_SOURCES`: loopback source addresses the load is spread over (127.0.0.1 ...
//!   127.0.0.N, each a separate SIPp; default 1). callscope rate-limits INVITEs per source
//!   IP, so one source measures what a single trunk gets, several measure capacity.
//! - `BENCH_CONCURRENT`: concurrent-dialog levels for the RSS measurement (default
//!   `100,1000`; empty to skip)
//! - `BENCH_LATENCY_RATE`: the rate whose p99 is checked against the 20 ms target (200)
//! - `BENCH_SOURCE_LIMIT`: callscope's per-source INVITE/REGISTER limit for the run
//!   (`CALLSCOPE_SIP_REQUESTS_PER_SECOND`, burst twice that; default 5000). The shipped
//!   default (20/s) is for phones; a trunk carrying hundreds of calls/s needs it raised.

use callscope_testkit::callscope::Callscope;
use callscope_testkit::process::{cpu_time_of, rss_bytes_of};
use callscope_testkit::sipp::{
    Scenario, SippConfig, SippOutcome, SippRun, uac_call_scenario, uas_answer_scenario,
};
use callscope_testkit::stats::percentile;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

const DID: &str = "+12025550100";
const EXT: &str = "2001";
const PASSWORD: &str = "bench-secret-2001";

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
            eprintln!("bench-sip: {e}");
            ExitCode::from(2)
        }
    }
}

/// callscope's SIP counters from `GET /healthz` (live_calls, call_tasks,
/// call_events_dropped, messages_received, ...); empty if unavailable.
fn sip_counters(cs: &Callscope) -> std::collections::BTreeMap<String, u64> {
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

/// The text without ANSI colour sequences (ESC ... 'm').
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// An OPTIONS to `sip` must get a 200: a `serve` without SIP never answers.
fn probe_sip(sip: SocketAddr) -> Res<()> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .map_err(|e| e.to_string())?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    for n in 1..=20 {
        let options = format!(
            "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-probe{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bench@{local}>;tag=p{n}\r\nTo: <sip:{sip}>\r\n\
             Call-ID: probe-{n}@bench\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = sock.send_to(options.as_bytes(), sip);
        let mut buf = [0u8; 4096];
        if let Ok((len, _)) = sock.recv_from(&mut buf)
            && buf[..len].starts_with(b"SIP/2.0 200")
        {
            return Ok(());
        }
    }
    Err(format!(
        "callscope serve did not answer SIP OPTIONS on {sip}: does this build have SIP in \
         `callscope serve`?"
    ))
}

fn own_children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; no other preconditions.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The load of one step: `sources` SIPp UACs started together, each with its share.
struct Step {
    calls: u64,
    ok: u64,
    failed: u64,
    setup_ms: Vec<f64>,
    server_cpu: Duration,
    sipp_cpu: Duration,
    outcomes: Vec<SippOutcome>,
    wall: Duration,
}

fn run_load(
    cs: &Callscope,
    sources: u32,
    rate: f64,
    total_calls: u64,
    hold_ms: u64,
    limit: Option<u64>,
    while_running: &mut dyn FnMut(&[SippRun]) -> Res<()>,
) -> Res<Step> {
    let server_pid = cs.pid().ok_or("callscope not started")?;
    let cpu0 = cpu_time_of(server_pid).map_err(|e| e.to_string())?;
    let children0 = own_children_cpu();
    let t0 = Instant::now();
    let mut runs = Vec::new();
    for s in 0..sources {
        let share = total_calls / u64::from(sources)
            + u64::from(u64::from(s) < total_calls % u64::from(sources));
        if share == 0 {
            continue;
        }
        let mut cfg = SippConfig::uac(
            Scenario::Xml(uac_call_scenario(hold_ms, false)),
            cs.sip_addr(),
        );
        cfg.local_ip = Ipv4Addr::new(127, 0, 0, 1 + s as u8);
        cfg.service = Some(DID.into());
        cfg.max_calls = Some(share);
        cfg.rate = Some(rate / f64::from(sources));
        cfg.limit = limit.map(|l| l.div_ceil(u64::from(sources)));
        cfg.trace_rtt = true;
        cfg.extra_args = vec!["-recv_timeout".into(), "10000".into()];
        let budget = share as f64 / (rate / f64::from(sources)) + hold_ms as f64 / 1000.0 + 60.0;
        cfg.global_timeout = Some(Duration::from_secs_f64(budget));
        runs.push(SippRun::start(&cfg).map_err(|e| e.to_string())?);
    }
    while_running(&runs)?;
    let mut step = Step {
        calls: 0,
        ok: 0,
        failed: 0,
        setup_ms: Vec::new(),
        server_cpu: Duration::ZERO,
        sipp_cpu: Duration::ZERO,
        outcomes: Vec::new(),
        wall: Duration::ZERO,
    };
    for run in runs {
        let budget =
            Duration::from_secs_f64(total_calls as f64 / rate + hold_ms as f64 / 1000.0 + 90.0);
        let out = run.wait(budget).map_err(|e| e.to_string())?;
        step.calls += out.total_calls;
        step.ok += out.successful_calls;
        step.failed += out.failed_calls;
        step.setup_ms.extend_from_slice(out.rtt("setup"));
        step.outcomes.push(out);
    }
    step.wall = t0.elapsed();
    step.server_cpu = cpu_time_of(server_pid).map_err(|e| e.to_string())? - cpu0;
    step.sipp_cpu = own_children_cpu() - children0;
    Ok(step)
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn run() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = std::env::var("CALLSCOPE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/callscope"));
    if !bin.exists() {
        return Err(format!("no callscope binary at {}", bin.display()));
    }
    let rates = env_list("BENCH_RATES", "100,200,300,500,700");
    let step_s: u64 = env_or("BENCH_STEP_S", 10);
    let hold_ms: u64 = env_or("BENCH_HOLD_MS", 1000);
    let sources: u32 = env_or::<u32>("BENCH_SOURCES", 1).clamp(1, 120);
    let concurrent = env_list("BENCH_CONCURRENT", "100,1000");
    let latency_rate: u64 = env_or("BENCH_LATENCY_RATE", 200);

    let source_limit: f64 = env_or("BENCH_SOURCE_LIMIT", 5000.0);
    // The far end lives on 127.0.0.200, outside the trunk's ACL (127.0.0.0/25, where the
    // load comes from): a source inside a trunk's ACL is a trunk and may not REGISTER.
    let uas_ip = Ipv4Addr::new(127, 0, 0, 200);
    let uas_port = callscope_testkit::ports::free_port().map_err(|e| e.to_string())?;
    let uas_addr = SocketAddr::from((uas_ip, uas_port));
    eprintln!("bench-sip: provisioning (org, user {EXT}, trunk, route {DID}) and starting serve");
    let cs = Callscope::builder(&bin)
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
        .map_err(|e| e.to_string())?;
    probe_sip(cs.sip_addr())?;
    eprintln!(
        "bench-sip: callscope serve is answering SIP on {}",
        cs.sip_addr()
    );

    // The far end registers as the user from the port it will answer on. SIPp 3.6 only
    // computes MD5 from the first challenge, so the testkit's own digest client registers.
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
    .map_err(|e| format!("registering {EXT}: {e}"))?;
    if reg.status != 200 {
        return Err(format!(
            "registering {EXT} with digest auth got {}:\n{}",
            reg.status, reg.final_response
        ));
    }
    let mut uas_cfg = SippConfig::uas(Scenario::Xml(uas_answer_scenario()));
    uas_cfg.local_port = uas_port;
    uas_cfg.local_ip = uas_ip;
    let mut uas = SippRun::start(&uas_cfg).map_err(|e| e.to_string())?;
    uas.wait_ready(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let server_pid = cs.pid().ok_or("callscope not started")?;

    let mut report = String::new();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    report.push_str(&format!(
        "SIPp uac → callscope serve (B2BUA) → SIPp uas on 127.0.0.1; {nproc} cores shared by \
         all processes; load from {sources} source address(es); calls held {hold_ms} ms after \
         answer, no media.\n\n"
    ));

    // 1) RSS per concurrent dialog, on a fresh server (the allocator keeps freed memory,
    // so this must come before the ramp).
    if !concurrent.is_empty() {
        report.push_str("| concurrent dialogs | RSS before (MB) | RSS held (MB) | per dialog (KB) | calls ok / failed |\n|---|---|---|---|---|\n");
    }
    for &n in &concurrent {
        let rate = 200.0_f64.min(n as f64);
        let ramp_s = n as f64 / rate;
        let hold = ((ramp_s + 8.0) * 1000.0) as u64;
        std::thread::sleep(Duration::from_secs(2));
        let before = rss_bytes_of(server_pid).map_err(|e| e.to_string())?;
        let mut held = 0u64;
        let mut reached = 0u64;
        eprintln!("bench-sip: holding {n} concurrent dialogs");
        let step = run_load(&cs, sources, rate, n, hold, Some(n), &mut |runs| {
            let deadline = Instant::now() + Duration::from_secs_f64(ramp_s + 6.0);
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                let current: u64 = runs
                    .iter()
                    .filter_map(|r| r.outcome_now().ok())
                    .map(|o| o.successful_calls + o.current_calls)
                    .sum();
                let live: u64 = runs
                    .iter()
                    .filter_map(|r| r.outcome_now().ok())
                    .map(|o| o.current_calls)
                    .sum();
                if live >= n && current >= n {
                    // Give the last answers a moment to settle, then measure.
                    std::thread::sleep(Duration::from_secs(1));
                    held = rss_bytes_of(server_pid).map_err(|e| e.to_string())?;
                    reached = live;
                    return Ok(());
                }
            }
            held = rss_bytes_of(server_pid).map_err(|e| e.to_string())?;
            Ok(())
        })?;
        let per = held.saturating_sub(before) as f64 / n as f64 / 1024.0;
        report.push_str(&format!(
            "| {n}{} | {:.1} | {:.1} | {per:.1} | {} / {} |\n",
            if reached >= n {
                ""
            } else {
                " (not all reached)"
            },
            before as f64 / 1e6,
            held as f64 / 1e6,
            step.ok,
            step.failed
        ));
    }

    // 2) The ramp.
    report.push_str("\n| target cps | calls | ok | failed | achieved cps | setup p50 (ms) | setup p99 (ms) | callscope CPU s / 1000 calls | SIPp CPU s / 1000 calls | failures seen | call events dropped | call events queued at load end | live calls after drain |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut best: Option<u64> = None;
    let mut best_complete: Option<u64> = None;
    // A rate counts as "complete" only if every lower step was complete too.
    let mut complete_so_far = true;
    let mut latency_line = String::new();
    for &rate in &rates {
        let total = rate * step_s;
        eprintln!("bench-sip: {rate} calls/s for {step_s} s");
        let uas_cpu0 = cpu_time_of(uas.pid()).map_err(|e| e.to_string())?;
        let dropped0 = sip_counters(&cs)
            .get("call_events_dropped")
            .copied()
            .unwrap_or(0);
        let step = run_load(&cs, sources, rate as f64, total, hold_ms, None, &mut |_| {
            Ok(())
        })?;
        // The consumer's backlog as the last calls end: near zero when the database keeps
        // up, large when the channel is only buffering what it cannot apply ("?": a server
        // without the counter).
        let queued = sip_counters(&cs)
            .get("call_events_queued")
            .map_or("?".into(), u64::to_string);
        let uas_cpu = cpu_time_of(uas.pid()).map_err(|e| e.to_string())? - uas_cpu0;
        let p50 = percentile(&step.setup_ms, 50.0);
        let p99 = percentile(&step.setup_ms, 99.0);
        let per_k = |d: Duration| d.as_secs_f64() * 1000.0 / step.calls.max(1) as f64;
        let achieved =
            step.calls as f64 / (step.wall.as_secs_f64() - hold_ms as f64 / 1000.0).max(0.001);
        let failures: Vec<String> = step
            .outcomes
            .iter()
            .flat_map(|o| {
                o.raw
                    .iter()
                    .filter(|(k, v)| {
                        k.starts_with("Failed")
                            && k.ends_with("(C)")
                            && k.as_str() != "FailedCall(C)"
                            && v.as_str() != "0"
                    })
                    .map(|(k, v)| {
                        format!(
                            "{}={v}",
                            k.trim_start_matches("Failed").trim_end_matches("(C)")
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        // Let this step's dialogs end, then see what the server still holds.
        std::thread::sleep(Duration::from_millis(hold_ms + 2000));
        let counters = sip_counters(&cs);
        let dropped = counters
            .get("call_events_dropped")
            .map_or("?".into(), |d| (d - dropped0.min(*d)).to_string());
        let live = counters
            .get("live_calls")
            .map_or("?".into(), u64::to_string);
        report.push_str(&format!(
            "| {rate} | {} | {} | {} | {achieved:.0} | {} | {} | {:.3} | {:.3} | {} | {dropped} | {queued} | {live} |\n",
            step.calls,
            step.ok,
            step.failed,
            fmt_ms(p50),
            fmt_ms(p99),
            per_k(step.server_cpu),
            per_k(step.sipp_cpu + uas_cpu),
            if failures.is_empty() {
                "-".into()
            } else {
                failures.join(", ")
            }
        ));
        if rate == latency_rate {
            latency_line = format!(
                "setup latency at {rate} calls/s: p50 {} ms, p99 {} ms (target p99 ≤ 20 ms)",
                fmt_ms(p50),
                fmt_ms(p99)
            );
        }
        if step.failed == 0 && step.ok == total {
            best = Some(rate);
            complete_so_far &= dropped == "0";
            if complete_so_far {
                best_complete = Some(rate);
            }
        } else {
            eprintln!("bench-sip: failures at {rate} calls/s; stopping the ramp");
            break;
        }
    }
    report.push_str(&format!(
        "\nHighest step with zero failed calls: {} (target ≥ 500 calls/s); with zero failed \
         calls and no call event dropped (every call's record complete): {}.\n",
        best.map_or("none".into(), |b| format!("{b} calls/s")),
        best_complete.map_or("none".into(), |b| format!("{b} calls/s"))
    ));
    if !latency_line.is_empty() {
        report.push_str(&format!("{latency_line}.\n"));
    }
    let counters = cs.log();
    let warns: Vec<&str> = counters
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    report.push_str(&format!(
        "callscope log: {} WARN/ERROR lines.\n",
        warns.len()
    ));
    // The most frequent kinds: the text after the level, digits dropped (ids, times).
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for w in &warns {
        let w = strip_ansi(w);
        let w = w.as_str();
        let text: String = w
            .split_once("WARN")
            .or_else(|| w.split_once("ERROR"))
            .map_or(w, |(_, t)| t)
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(160)
            .collect();
        // Group by message, not by the call it names.
        let text = text
            .split("call_id=")
            .next()
            .unwrap_or_default()
            .to_string();
        *kinds.entry(text).or_default() += 1;
    }
    let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    for (text, n) in kinds.iter().take(3) {
        report.push_str(&format!("- {n} × `{}`\n", text.trim()));
    }
    println!("{report}");
    let _ = uas.stop();
    drop(cs);
    Ok(())
}

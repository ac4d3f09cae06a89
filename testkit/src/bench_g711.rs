//! One step of the G.711 media load (`scripts/bench-media`, and the reference that
//! `scripts/bench-webrtc` measures in the same run): N concurrent calls from a SIPp UAC
//! streaming PCMU to a DID routed to a user whose registered contact is a SIPp UAS
//! streaming PCMU back; callscope relays and records them. Measured over the steady window
//! (all N calls up, until shortly before the first hangs up).

use crate::bench::{
    CallCheck, Window, WindowFigures, check_calls, counters, max_rowid, media_calls, poll_until,
    wait_calls_stored,
};
use crate::callscope::Callscope;
use crate::sipp::{G711, Scenario, SippConfig, SippRun, uac_rtp_stream_scenario};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The fixed parts of the load: where it comes from and what it calls.
pub struct G711Load {
    /// The SIPp UAS answering the calls (its CPU is measured with the UAC's).
    pub uas_pid: u32,
    /// Source address of the UAC (inside the trunk's inbound ACL: trunk calls).
    pub uac_ip: Ipv4Addr,
    /// Headerless PCMU the UAC streams (looped).
    pub raw_uac: PathBuf,
    /// The DID the UAC calls.
    pub did: String,
    /// Calls set up per second while the step ramps up.
    pub rate: f64,
    /// Seconds of each call.
    pub call_s: u64,
}

/// What one step measured.
pub struct G711Step {
    pub n: u64,
    pub ok: u64,
    pub failed: u64,
    /// callscope over the window; `peers_pct` is [UAC, UAS].
    pub window: WindowFigures,
    pub relayed_per_s: f64,
    pub calls: Vec<CallCheck>,
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Runs `n` concurrent calls and returns the window's figures and every call's checks.
pub fn run_g711_step(cs: &Callscope, load: &G711Load, n: u64) -> Result<G711Step, String> {
    let (rate, call_s) = (load.rate.max(1.0), load.call_s);
    let pid = cs.pid().ok_or("callscope not running")?;
    let before_rowid = max_rowid(cs).map_err(err("reading call_sip"))?;
    let mut cfg = SippConfig::uac(
        Scenario::Xml(uac_rtp_stream_scenario(
            &load.raw_uac,
            G711::Ulaw,
            call_s * 1000,
        )),
        cs.sip_addr(),
    );
    cfg.local_ip = load.uac_ip;
    cfg.media_port = Some(crate::ports::free_port_run(2).map_err(err("a UAC media port"))?);
    cfg.service = Some(load.did.clone());
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
        let sipp = uac.outcome_now().map_or(0, |o| o.current_calls);
        media_calls(cs) >= n && sipp >= n
    });
    if !all_up {
        eprintln!(
            "bench: {n} G.711 calls not all up after {:.0} s (callscope media calls {})",
            t_start.elapsed().as_secs_f64(),
            media_calls(cs)
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
    let measuring = Window::start(pid, &[uac.pid(), load.uas_pid]).map_err(err("CPU"))?;
    eprintln!(
        "bench: {n} G.711 calls up; measuring for {:.0} s",
        window.as_secs_f64()
    );
    std::thread::sleep(window);
    let figures = measuring.finish().map_err(err("CPU"))?;
    let relayed1 = counters(cs)
        .get("media_packets_relayed")
        .copied()
        .unwrap_or(relayed0);
    let live_at_end = media_calls(cs);
    if live_at_end < n {
        eprintln!("bench: only {live_at_end} media calls at the end of the window");
    }

    let out = uac
        .wait(Duration::from_secs_f64(ramp_s + call_s as f64 + 90.0))
        .map_err(err("waiting for the SIPp UAC"))?;
    // Every call closed on callscope's side and its record (media report, recording) stored.
    if !wait_calls_stored(
        cs,
        before_rowid,
        out.successful_calls,
        Duration::from_secs(60),
    ) {
        eprintln!("bench: not every call's media record was stored within 60 s");
    }
    let calls = check_calls(cs, before_rowid).map_err(err("reading the step's calls"))?;
    Ok(G711Step {
        n,
        ok: out.successful_calls,
        failed: out.failed_calls,
        relayed_per_s: relayed1.saturating_sub(relayed0) as f64 / figures.wall_s,
        window: figures,
        calls,
    })
}

//! One step of the G.711 media load (`scripts/bench-media`, and the reference that
//! `scripts/bench-webrtc` measures in the same run): N concurrent calls from a SIPp UAC
//! streaming PCMU to a DID routed to a user whose registered contact is a SIPp UAS
//! streaming PCMU back; callscope relays and records them. Measured over the steady window
//! (all N calls up, until shortly before the first hangs up).

use crate::audio_compare::{read_wav_channels, to_pcm16_wav, wav_encoding};
use crate::bench::{
    CallCheck, Window, WindowFigures, check_calls, counters, gaps_of, max_rowid, media_calls,
    poll_until, wait_calls_stored,
};
use crate::callscope::Callscope;
use crate::sipp::{G711, Scenario, SippConfig, SippRun, uac_rtp_stream_scenario};
use std::net::{Ipv4Addr, SocketAddr};
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

impl G711Load {
    /// Calls set up per second, at least one.
    fn rate(&self) -> f64 {
        self.rate.max(1.0)
    }

    /// Seconds it takes to set up `n` calls.
    fn ramp_s(&self, n: u64) -> f64 {
        n as f64 / self.rate()
    }

    /// How long to wait for the UAC of `n` calls to finish once the window is over.
    fn finish_within(&self, n: u64) -> Duration {
        Duration::from_secs_f64(self.ramp_s(n) + self.call_s as f64 + 90.0)
    }
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
    let pid = cs.pid().ok_or("callscope not running")?;
    let before_rowid = max_rowid(cs).map_err(err("reading call_sip"))?;
    // All N calls up: SIPp has them in progress and callscope has N media calls.
    let (uac, t_start) = start_calls(cs.sip_addr(), load, n, &|| media_calls(cs) >= n)?;
    if media_calls(cs) < n {
        eprintln!(
            "bench: callscope has {} media calls of {n}",
            media_calls(cs)
        );
    }
    let window = steady_window(t_start, load, n)?;
    let relayed0 = counters(cs)
        .get("media_packets_relayed")
        .copied()
        .ok_or("callscope reports no media_packets_relayed counter (older build?)")?;
    let figures = measure(pid, &uac, load, window, &format!("{n} G.711 calls"))?;
    let relayed1 = counters(cs)
        .get("media_packets_relayed")
        .copied()
        .unwrap_or(relayed0);
    let live_at_end = media_calls(cs);
    if live_at_end < n {
        eprintln!("bench: only {live_at_end} media calls at the end of the window");
    }

    let out = uac
        .wait(load.finish_within(n))
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

/// Starts the UAC of a step (`n` calls to `target` at the load's rate, each streaming for
/// the load's call length) and waits, bounded, until SIPp has all of them in progress and
/// `server_up` agrees. Returns the UAC and when it started.
fn start_calls(
    target: SocketAddr,
    load: &G711Load,
    n: u64,
    server_up: &dyn Fn() -> bool,
) -> Result<(SippRun, Instant), String> {
    let uac_cfg = uac_config(target, load, n)?;
    let t_start = Instant::now();
    let uac = SippRun::start(&uac_cfg).map_err(err("starting the SIPp UAC"))?;
    let all_up = poll_until(Duration::from_secs_f64(load.ramp_s(n) + 20.0), || {
        uac.outcome_now().map_or(0, |o| o.current_calls) >= n && server_up()
    });
    if !all_up {
        eprintln!(
            "bench: {n} calls to {target} not all up after {:.0} s",
            t_start.elapsed().as_secs_f64()
        );
    }
    Ok((uac, t_start))
}

/// The UAC of a step: `n` calls to `target` at the load's rate, each streaming for the
/// load's call length.
fn uac_config(target: SocketAddr, load: &G711Load, n: u64) -> Result<SippConfig, String> {
    let (rate, call_s) = (load.rate(), load.call_s);
    let mut cfg = SippConfig::uac(
        Scenario::Xml(uac_rtp_stream_scenario(
            &load.raw_uac,
            G711::Ulaw,
            call_s * 1000,
        )),
        target,
    );
    cfg.local_ip = load.uac_ip;
    cfg.media_port = Some(crate::ports::free_port_run(2).map_err(err("a UAC media port"))?);
    cfg.service = Some(load.did.clone());
    cfg.max_calls = Some(n);
    cfg.rate = Some(rate);
    cfg.limit = Some(n);
    cfg.global_timeout = Some(Duration::from_secs_f64(
        load.ramp_s(n) + call_s as f64 + 60.0,
    ));
    // -aa: answer in-dialog keepalive OPTIONS (callscope's every 30 s) with 200, as a phone
    // does; without it SIPp aborts the call at the first one.
    cfg.extra_args = vec!["-recv_timeout".into(), "20000".into(), "-aa".into()];
    Ok(cfg)
}

/// Settles for 3 s, then says how long to measure: until shortly before the first call
/// (started at `t_start`) hangs up.
fn steady_window(t_start: Instant, load: &G711Load, n: u64) -> Result<Duration, String> {
    let (rate, call_s, ramp_s) = (load.rate(), load.call_s, load.ramp_s(n));
    std::thread::sleep(Duration::from_secs(3));
    let window_end = t_start + Duration::from_secs(call_s).saturating_sub(Duration::from_secs(3));
    let window = window_end.saturating_duration_since(Instant::now());
    if window < Duration::from_secs(5) {
        return Err(format!(
            "no steady window: {n} calls at {rate}/s take {ramp_s:.0} s to set up and calls last \
             {call_s} s; raise BENCH_CALL_S or BENCH_RATE"
        ));
    }
    Ok(window)
}

/// The server's (`pid`) and both SIPps' CPU over `window`, from now.
fn measure(
    pid: u32,
    uac: &SippRun,
    load: &G711Load,
    window: Duration,
    what: &str,
) -> Result<WindowFigures, String> {
    let measuring = Window::start(pid, &[uac.pid(), load.uas_pid]).map_err(err("CPU"))?;
    eprintln!(
        "bench: {what} up; measuring for {:.0} s",
        window.as_secs_f64()
    );
    std::thread::sleep(window);
    measuring.finish().map_err(err("CPU"))
}

/// One recording of the peer, as the benchmark reads callscope's: length and the silent
/// gaps inside each channel's sounding part.
pub struct PeerRecording {
    /// The WAV's sample encoding (`PCM`, `μ-law`, ...).
    pub encoding: &'static str,
    pub duration_s: f64,
    pub channels: usize,
    pub rate: u32,
    pub gaps: usize,
    pub gap_ms: f64,
}

/// What one step against the peer measured.
pub struct PeerStep {
    pub n: u64,
    pub ok: u64,
    pub failed: u64,
    /// The peer over the window; `peers_pct` is SIPp [UAC, UAS].
    pub window: WindowFigures,
    pub recordings: Vec<PeerRecording>,
    /// Recordings that could not be read.
    pub unreadable: usize,
}

/// The same load as [`run_g711_step`] against another SIP server (`peer_pid`, listening
/// on `peer_sip`, forwarding to the same SIPp UAS): its CPU and RSS over the same steady
/// window, SIPp's outcome, and the recordings `recordings` lists after the step, if the
/// peer writes files per call (the peer's own statistics are not read: only what can be
/// measured from outside).
pub fn run_peer_step(
    peer_pid: u32,
    peer_sip: SocketAddr,
    load: &G711Load,
    n: u64,
    recordings: Option<&dyn Fn() -> Vec<PathBuf>>,
) -> Result<PeerStep, String> {
    let (uac, t_start) = start_calls(peer_sip, load, n, &|| true)?;
    let window = steady_window(t_start, load, n)?;
    let what = format!("{n} calls through the peer");
    let figures = measure(peer_pid, &uac, load, window, &what)?;
    let out = uac
        .wait(load.finish_within(n))
        .map_err(err("waiting for the SIPp UAC"))?;
    let mut step = PeerStep {
        n,
        ok: out.successful_calls,
        failed: out.failed_calls,
        window: figures,
        recordings: Vec::new(),
        unreadable: 0,
    };
    if let Some(recordings) = recordings {
        (step.recordings, step.unreadable) =
            read_peer_recordings(recordings, out.successful_calls)?;
    }
    Ok(step)
}

/// Reads the recordings `list` finds once the peer has finished them: it writes its files
/// after the calls end, so this waits (bounded) until there are `expected` of them and their
/// sizes stop changing. Returns each readable one's figures and how many could not be read.
pub fn read_peer_recordings(
    list: &dyn Fn() -> Vec<PathBuf>,
    expected: u64,
) -> Result<(Vec<PeerRecording>, usize), String> {
    let mut last: Vec<u64> = Vec::new();
    poll_until(Duration::from_secs(60), || {
        let sizes: Vec<u64> = list()
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        let settled = sizes.len() as u64 >= expected && sizes == last;
        last = sizes;
        settled
    });
    let scratch = tempfile::tempdir().map_err(err("a temp dir"))?;
    let pcm = scratch.path().join("pcm16.wav");
    let (mut read, mut unreadable) = (Vec::new(), 0);
    for path in list() {
        // Not every server writes 16-bit PCM: read anything else through sox.
        let channels = read_wav_channels(&path).or_else(|_| {
            to_pcm16_wav(&path, &pcm)?;
            read_wav_channels(&pcm)
        });
        match channels {
            Ok(channels) if !channels.is_empty() => {
                let (mut gaps, mut gap_ms) = (0, 0.0);
                for channel in &channels {
                    let (count, ms, _) = gaps_of(channel);
                    gaps += count;
                    gap_ms += ms;
                }
                read.push(PeerRecording {
                    encoding: wav_encoding(&path),
                    duration_s: channels[0].duration_s(),
                    channels: channels.len(),
                    rate: channels[0].rate,
                    gaps,
                    gap_ms,
                });
            }
            _ => unreadable += 1,
        }
    }
    Ok((read, unreadable))
}

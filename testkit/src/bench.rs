//! What the load benchmarks (`scripts/bench-media`, `scripts/bench-webrtc`) share: reading
//! knobs from the environment, measuring processes over a steady window from /proc, reading
//! callscope's counters and its stored per-call media reports and recordings, and the
//! machine line of a report. Blocking and bounded, like the rest of the testkit.

use crate::audio_compare::{Mono, active_span, read_wav_channels, silence_intervals};
use crate::callscope::Callscope;
use crate::process::{cpu_time_of, rss_bytes_of};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A 20 ms frame below this level inside a sweep is missing audio (the sweeps sit at about
/// -9 dBFS RMS; G.711 and Opus keep them well above this).
pub const GAP_DBFS: f64 = -40.0;

/// `name` parsed, or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A comma-separated list of numbers (`BENCH_CALLS=10,25,50`).
pub fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// callscope's SIP and media counters from `GET /healthz`.
pub fn counters(cs: &Callscope) -> BTreeMap<String, u64> {
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

/// callscope's live media calls (the `media_calls` counter), 0 when unreadable.
pub fn media_calls(cs: &Callscope) -> u64 {
    counters(cs).get("media_calls").copied().unwrap_or(0)
}

/// Field `field` of each thread's schedstat (0: CPU time in ns, 2: times scheduled onto a
/// CPU) of process `pid`, with the thread's name (digits dropped, so `callscope-rec-12` groups
/// with its kind).
fn threads_schedstat(pid: u32, field: usize) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let name = comm
                .trim_end()
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
                .to_string();
            let value = std::fs::read_to_string(task.path().join("schedstat"))
                .unwrap_or_default()
                .split_whitespace()
                .nth(field)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            (name, value)
        })
        .collect()
}

/// CPU time in ns per thread name of process `pid`, from schedstat: exact, not rounded to
/// clock ticks.
pub fn threads_cpu_ns(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (name, ns) in threads_schedstat(pid, 0) {
        *out.entry(name).or_default() += ns;
    }
    out
}

/// How many times the threads of process `pid` were scheduled onto a CPU (schedstat's third
/// field, summed): each wake-up of a sleeping thread is one. A count, so it does not depend on
/// how busy the rest of the machine is, unlike CPU time.
pub fn schedules_of(pid: u32) -> u64 {
    threads_schedstat(pid, 2).into_iter().map(|(_, n)| n).sum()
}

/// (user, system) CPU seconds of a process, from /proc/PID/stat (fields 14 and 15).
pub fn user_sys_of(pid: u32) -> (f64, f64) {
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
pub fn socket_drops_of(pid: u32) -> u64 {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
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

/// The CPU model and load, for the first line of a report.
pub fn machine() -> String {
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

/// Polls every 500 ms until `done` or `limit` passes; whether `done` held.
pub fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    done()
}

/// CPU counters of callscope and of the load generators at the start of a window.
pub struct Window {
    callscope: u32,
    peers: Vec<u32>,
    t0: Instant,
    cpu0: Duration,
    user_sys0: (f64, f64),
    threads0: BTreeMap<String, u64>,
    schedules0: u64,
    peers0: Vec<Duration>,
}

/// What a [`Window`] measured, in % of one core over its wall time.
#[derive(Debug, Clone, Default)]
pub struct WindowFigures {
    pub wall_s: f64,
    pub cpu_pct: f64,
    pub user_sys_pct: (f64, f64),
    /// Per thread kind, largest first (only those ≥ 0.05 %).
    pub threads: Vec<(String, f64)>,
    /// Each peer process's CPU, in the order given to [`Window::start`].
    pub peers_pct: Vec<f64>,
    pub rss_bytes: u64,
    pub socket_drops: u64,
    /// callscope's threads scheduled onto a CPU per second (wake-ups; see [`schedules_of`]).
    pub schedules_per_s: f64,
}

impl Window {
    /// Starts measuring callscope (`callscope` PID) and the load generators (`peers`).
    pub fn start(callscope: u32, peers: &[u32]) -> crate::Result<Window> {
        Ok(Window {
            callscope,
            peers: peers.to_vec(),
            t0: Instant::now(),
            cpu0: cpu_time_of(callscope)?,
            user_sys0: user_sys_of(callscope),
            threads0: threads_cpu_ns(callscope),
            schedules0: schedules_of(callscope),
            peers0: peers
                .iter()
                .map(|&p| cpu_time_of(p))
                .collect::<crate::Result<_>>()?,
        })
    }

    pub fn finish(self) -> crate::Result<WindowFigures> {
        let wall = self.t0.elapsed().as_secs_f64().max(1e-3);
        let cpu1 = cpu_time_of(self.callscope)?;
        let us1 = user_sys_of(self.callscope);
        let threads1 = threads_cpu_ns(self.callscope);
        let schedules1 = schedules_of(self.callscope);
        let pct = |d: Duration| d.as_secs_f64() / wall * 100.0;
        let mut peers_pct = Vec::with_capacity(self.peers.len());
        for (&p, &before) in self.peers.iter().zip(&self.peers0) {
            peers_pct.push(pct(cpu_time_of(p)?.saturating_sub(before)));
        }
        let mut threads: Vec<(String, f64)> = threads1
            .iter()
            .map(|(name, ns)| {
                let before = self.threads0.get(name).copied().unwrap_or(0);
                (
                    name.clone(),
                    ns.saturating_sub(before) as f64 / 1e9 / wall * 100.0,
                )
            })
            .filter(|(_, p)| *p >= 0.05)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(WindowFigures {
            wall_s: wall,
            cpu_pct: pct(cpu1.saturating_sub(self.cpu0)),
            user_sys_pct: (
                (us1.0 - self.user_sys0.0) / wall * 100.0,
                (us1.1 - self.user_sys0.1) / wall * 100.0,
            ),
            threads,
            peers_pct,
            rss_bytes: rss_bytes_of(self.callscope)?,
            socket_drops: socket_drops_of(self.callscope),
            schedules_per_s: schedules1.saturating_sub(self.schedules0) as f64 / wall,
        })
    }
}

/// What one call looked like afterwards, from the database and its recording.
#[derive(Debug, Clone, Default)]
pub struct CallCheck {
    /// Per direction (caller→callee, callee→caller): packets that reached callscope.
    pub received: [u64; 2],
    /// Sequence gaps on arrival (RFC 3550 cumulative lost).
    pub lost: [i64; 2],
    /// Received but not sent on to the other leg.
    pub not_forwarded: [i64; 2],
    /// Packets sent on the leg the direction goes out of.
    pub sent: [u64; 2],
    /// Received packets the jitter buffer threw away (transcoded legs only).
    pub discarded: [u64; 2],
    pub send_errors: [u64; 2],
    pub jitter_ms: [f64; 2],
    pub max_jitter_ms: [f64; 2],
    pub recorder_dropped: u64,
    /// Received audio that missed its place in the recording (late or overrun), ms, both
    /// channels.
    pub recording_lost_ms: u64,
    pub call_ms: f64,
    pub recording_ms: Option<f64>,
    /// The recording's sample rate (Hz).
    pub recording_rate: Option<u32>,
    /// Silent stretches (≥ one 20 ms frame) inside each channel's active span.
    pub gaps: [usize; 2],
    pub gap_ms: [f64; 2],
    /// Active span of each channel (first to last sounding frame), seconds.
    pub active_s: [f64; 2],
    /// Which leg callscope took as the agent's (`caller` or `callee`), if any.
    pub agent_leg: Option<String>,
    /// Opus packets callscope received on either leg, by coding mode: SILK, hybrid, CELT.
    pub opus_modes: [u64; 3],
    /// Payload bytes and packets received on the call's Opus leg(s).
    pub opus_bytes: u64,
    pub opus_packets: u64,
}

impl CallCheck {
    /// Swaps the per-direction figures (not the recording's channels), so direction 0
    /// can be a given party's audio whichever leg called.
    pub fn swap_directions(&mut self) {
        self.received.swap(0, 1);
        self.lost.swap(0, 1);
        self.not_forwarded.swap(0, 1);
        self.sent.swap(0, 1);
        self.discarded.swap(0, 1);
        self.send_errors.swap(0, 1);
        self.jitter_ms.swap(0, 1);
        self.max_jitter_ms.swap(0, 1);
    }
}

/// Fills the per-direction figures of `check` from a stored `call_sip.media_json`.
pub fn leg_figures(media: &serde_json::Value, check: &mut CallCheck) {
    // Direction 0: the caller's audio (received on the caller leg, sent on the callee leg).
    for (dir, (from, to)) in [("caller", "callee"), ("callee", "caller")]
        .into_iter()
        .enumerate()
    {
        let f = &media[from];
        let t = &media[to];
        let received = f["packets_received"].as_u64().unwrap_or(0);
        let sent = t["packets_sent"].as_u64().unwrap_or(0);
        check.received[dir] = received;
        check.sent[dir] = sent;
        check.lost[dir] = f["lost"].as_i64().unwrap_or(0);
        check.discarded[dir] = f["discarded"].as_u64().unwrap_or(0);
        check.not_forwarded[dir] = received as i64 - sent as i64;
        check.send_errors[dir] = t["send_errors"].as_u64().unwrap_or(0);
        check.jitter_ms[dir] = f["jitter_ms"].as_f64().unwrap_or(0.0);
        check.max_jitter_ms[dir] = f["max_jitter_ms"].as_f64().unwrap_or(0.0);
    }
    check.recorder_dropped = media["recording_dropped_frames"].as_u64().unwrap_or(0);
    let loss = &media["recording_loss"];
    check.recording_lost_ms = ["agent", "customer"]
        .iter()
        .flat_map(|ch| ["late_ms", "overrun_ms"].map(|k| loss[ch][k].as_u64().unwrap_or(0)))
        .sum();
    check.agent_leg = media["agent_leg"].as_str().map(str::to_string);
    for leg in ["caller", "callee"] {
        let modes = &media[leg]["opus_modes_received"];
        if modes.is_null() {
            continue;
        }
        for (i, mode) in ["silk", "hybrid", "celt"].iter().enumerate() {
            check.opus_modes[i] += modes[*mode].as_u64().unwrap_or(0);
        }
        check.opus_bytes += media[leg]["bytes_received"].as_u64().unwrap_or(0);
        check.opus_packets += media[leg]["packets_received"].as_u64().unwrap_or(0);
    }
}

/// Silent gaps inside the sounding part of one channel: (count, total ms, active seconds).
pub fn gaps_of(channel: &Mono) -> (usize, f64, f64) {
    let Some(span) = active_span(channel, 20, GAP_DBFS) else {
        return (0, 0.0, 0.0);
    };
    let inner = channel.slice_s(span.start_s, span.end_s);
    let gaps = silence_intervals(&inner, 20, GAP_DBFS, 0.02);
    let ms = gaps.iter().map(|g| g.len_s() * 1000.0).sum();
    (gaps.len(), ms, span.len_s())
}

/// The answered calls stored after `after_rowid`, each with its media report and
/// recording checked.
pub fn check_calls(cs: &Callscope, after_rowid: i64) -> crate::Result<Vec<CallCheck>> {
    let rows = cs.query(&format!(
        "SELECT c.media_json, c.end_at - c.answer_at, r.path, r.duration_ms \
         FROM call_sip c LEFT JOIN recordings r ON r.call_id = c.call_id \
         WHERE c.rowid > {after_rowid} AND c.answer_at IS NOT NULL ORDER BY c.rowid"
    ))?;
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
                check.recording_rate = channels.first().map(|c| c.rate);
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

/// The last `call_sip` rowid, so a step reads only its own calls.
pub fn max_rowid(cs: &Callscope) -> crate::Result<i64> {
    let rows = cs.query("SELECT COALESCE(MAX(rowid), 0) FROM call_sip")?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Whether at least `count` calls after `after_rowid` have their media report and
/// recording stored and no media call is live, within `limit`.
pub fn wait_calls_stored(cs: &Callscope, after_rowid: i64, count: u64, limit: Duration) -> bool {
    poll_until(limit, || {
        counters(cs).get("media_calls").copied().unwrap_or(1) == 0
            && cs
                .query(&format!(
                    "SELECT COUNT(*) FROM call_sip c JOIN recordings r ON r.call_id = c.call_id \
                     WHERE c.rowid > {after_rowid} AND c.media_json IS NOT NULL"
                ))
                .ok()
                .and_then(|r| r.first()?.first()?.parse::<u64>().ok())
                .is_some_and(|c| c >= count)
    })
}

/// Waits for the post-call pipeline to finish the step's jobs (it runs on every recorded
/// call at hangup), so its work does not fall into the next step's window.
pub fn wait_queue_drained(cs: &Callscope, limit: Duration) -> bool {
    poll_until(limit, || {
        cs.metrics()
            .ok()
            .and_then(|m| m.get("callscope_queue_depth").copied())
            .is_some_and(|d| d == 0.0)
    })
}

/// Deletes the step's recordings once processed (60 s of 8 kHz stereo is 1.9 MB a call),
/// keeping the first one as `keep` if asked.
pub fn remove_recordings(cs: &Callscope, keep: Option<PathBuf>) {
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

/// Sum of `f` over `calls`.
pub fn sum<T: Copy + std::iter::Sum<T>>(calls: &[CallCheck], f: impl Fn(&CallCheck) -> T) -> T {
    calls.iter().map(f).sum()
}

/// Largest `f` over `calls` (0 when empty).
pub fn max_f(calls: &[CallCheck], f: impl Fn(&CallCheck) -> f64) -> f64 {
    calls.iter().map(f).fold(0.0, f64::max)
}

/// The WARN/ERROR lines of callscope's log, for the end of a report.
pub fn log_warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect()
}

/// What a process costs at rest: its RSS after 3 s of settling, and its CPU (% of a core)
/// over the next 5 s. The baseline every per-call figure is measured against.
pub fn idle_figures(pid: u32) -> crate::Result<(u64, f64)> {
    std::thread::sleep(Duration::from_secs(3));
    let rss = crate::process::rss_bytes_of(pid)?;
    let c0 = crate::process::cpu_time_of(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let cpu = (crate::process::cpu_time_of(pid)? - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    Ok((rss, cpu * 100.0))
}

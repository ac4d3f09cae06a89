//! RustPBX, the peer the media benchmarks measure callscope against in the same run.
//!
//! The brief's reference figures for a bridged, recorded call are RustPBX's; figures from
//! another day or machine cannot be compared on this shared VM, whose load moves a run by
//! ±15 %. So `scripts/bench-media` and `scripts/bench-webrtc` can start a RustPBX binary the
//! user built (`BENCH_RUSTPBX_BIN`; nothing of RustPBX is in this repository, and nothing
//! here builds it) and put it through the same load next to callscope's, step by step: SIPp's
//! G.711 calls, or aiortc's WebRTC offers sent in plain SIP INVITEs (RustPBX tells a WebRTC
//! leg by its SDP), transcoded to the same PCMU far end.
//!
//! The configuration is written from RustPBX's documented options (docs/config in its
//! repository): a B2BUA that anchors every call's RTP (`media_proxy = "all"`, relaying the
//! payload when both legs share a codec, as callscope does), records every call (a local
//! WAV file, or the packets in its SIP flow store: [`Recorder`]), takes the load's INVITEs
//! from 127.0.0.1 and forwards every number to one trunk, the far-end SIPp. Its console
//! and CDR uploads stay off; logging is at `warn`, as callscope's is in the benchmark.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::{ChildGuard, wait_until};

/// A running RustPBX, killed by PID when dropped.
pub struct RustPbx {
    guard: ChildGuard,
    dir: tempfile::TempDir,
    sip: SocketAddr,
    recorder: Recorder,
}

/// Where RustPBX listens and where it sends the calls.
pub struct RustPbxSetup {
    /// SIP over UDP (RustPBX binds the address and port given).
    pub sip: SocketAddr,
    /// Its HTTP API (not used by the benchmark, but it always binds one).
    pub http: SocketAddr,
    /// The far end every call is forwarded to.
    pub far_end: SocketAddr,
    /// Its RTP port range, as its `rtp_start_port` and `rtp_end_port`.
    pub rtp_ports: (u16, u16),
    pub recorder: Recorder,
    /// Its `media_worker_threads` (None: its default, which is one on a 2-CPU machine).
    pub media_workers: Option<usize>,
}

/// How RustPBX keeps each call's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorder {
    /// Its live WAV recorder: a two-channel file per call, as callscope writes.
    Wav,
    /// Its SIP flow store: the RTP packets themselves, in its local packet store (SQLite
    /// shards under `sipflow/`); a WAV is only made when one is exported. No files to check
    /// per call.
    SipFlow,
}

impl RustPbx {
    /// Writes the configuration into a temporary directory and starts `bin` there; waits
    /// (bounded) until its SIP port answers an OPTIONS.
    pub fn start(bin: &Path, setup: &RustPbxSetup) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rustpbx-")
            .tempdir()
            .map_err(|e| Error::io("creating the RustPBX directory", e))?;
        let config = config_toml(dir.path(), setup);
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config)
            .map_err(|e| Error::io("writing the RustPBX configuration", e))?;
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .arg("--conf")
            .arg(&config_path);
        let guard = ChildGuard::spawn_logged("rustpbx", &mut cmd, &dir.path().join("rustpbx.log"))?;
        let mut pbx = RustPbx {
            guard,
            dir,
            sip: setup.sip,
            recorder: setup.recorder,
        };
        pbx.wait_sip(Duration::from_secs(30))?;
        Ok(pbx)
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    pub fn recorder(&self) -> Recorder {
        self.recorder
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Every WAV file under its recording directory.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        collect_wavs(&self.dir.path().join("recordings"), &mut found, 4);
        found.sort();
        found
    }

    /// Deletes the recordings made so far (between steps), keeping one if asked.
    pub fn remove_recordings(&self, keep: Option<&Path>) {
        for (i, path) in self.recordings().iter().enumerate() {
            if i == 0
                && let Some(keep) = keep
            {
                let _ = std::fs::copy(path, keep);
            }
            let _ = std::fs::remove_file(path);
        }
    }

    /// Polls the SIP port with OPTIONS until something answers, within `limit`; fails at
    /// once, with the log's last lines, if RustPBX exits first.
    fn wait_sip(&mut self, limit: Duration) -> Result<()> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| Error::io("binding a probe socket", e))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(250)))
            .map_err(|e| Error::io("probe socket timeout", e))?;
        let local = socket
            .local_addr()
            .map_err(|e| Error::io("probe socket address", e))?;
        let log = self.guard.log().map(Path::to_path_buf);
        let dir = self.dir.path();
        let (sip, guard) = (self.sip, &mut self.guard);
        let mut buf = [0u8; 4096];
        let mut attempt = 0u32;
        wait_until(
            &format!("RustPBX to answer OPTIONS on {sip}"),
            limit,
            log.as_deref(),
            || {
                if let Some(status) = guard.try_status()? {
                    return Err(Error::ExitedEarly {
                        tool: "rustpbx",
                        status: format!("{status}; last lines:\n{}", tail(&read_log(dir), 40)),
                        log: log.clone(),
                    });
                }
                attempt += 1;
                let _ = socket.send_to(options_probe(sip, local, attempt).as_bytes(), sip);
                let answered = socket
                    .recv_from(&mut buf)
                    .is_ok_and(|(n, _)| buf[..n].starts_with(b"SIP/2.0 "));
                Ok(answered.then_some(()))
            },
        )
    }
}

/// Starts `bin` the way both benchmarks run it: SIP and HTTP on free ports of 127.0.0.1,
/// RTP on 20000–29999 (below the range the benchmarks give callscope), every call forwarded
/// to `far_end`; the recorder and media threads as the benchmark's environment says
/// (`BENCH_RUSTPBX_RECORDER`, `BENCH_RUSTPBX_MEDIA_WORKERS`).
pub fn start_on_loopback(bin: &Path, far_end: SocketAddr) -> Result<RustPbx> {
    if !bin.exists() {
        return Err(Error::ToolMissing {
            tool: "rustpbx",
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no RustPBX binary at {}", bin.display()),
            ),
        });
    }
    let setup = RustPbxSetup {
        sip: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, crate::ports::free_port()?)),
        http: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, crate::ports::free_port()?)),
        far_end,
        rtp_ports: (20000, 29999),
        recorder: recorder_from_env()?,
        media_workers: media_workers_from_env()?,
    };
    RustPbx::start(bin, &setup)
}

/// `BENCH_RUSTPBX_MEDIA_WORKERS`: RustPBX's media worker threads, if set. Its default on
/// this 2-CPU machine is one, which it fills near 400 relayed or 25–50 transcoded calls.
fn media_workers_from_env() -> Result<Option<usize>> {
    match std::env::var("BENCH_RUSTPBX_MEDIA_WORKERS") {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::Parse {
                what: "BENCH_RUSTPBX_MEDIA_WORKERS".into(),
                detail: format!("a positive number of threads, not {v:?}"),
            }),
        },
    }
}

/// The recorder `BENCH_RUSTPBX_RECORDER` names (`wav`, the default, or `sipflow`).
fn recorder_from_env() -> Result<Recorder> {
    match std::env::var("BENCH_RUSTPBX_RECORDER").as_deref() {
        Ok("sipflow") => Ok(Recorder::SipFlow),
        Ok("wav") | Err(_) => Ok(Recorder::Wav),
        Ok(other) => Err(Error::Parse {
            what: "BENCH_RUSTPBX_RECORDER".into(),
            detail: format!("wav or sipflow, not {other:?}"),
        }),
    }
}

/// RustPBX's log in `dir` (empty if there is none yet).
fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("rustpbx.log")).unwrap_or_default()
}

fn collect_wavs(dir: &Path, found: &mut Vec<PathBuf>, depth: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth > 0 {
            collect_wavs(&path, found, depth - 1);
        } else if path.extension().is_some_and(|e| e == "wav") {
            found.push(path);
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An OPTIONS request from `from` to `to`; `attempt` (from 1) keeps each one's transaction
/// apart.
fn options_probe(to: SocketAddr, from: SocketAddr, attempt: u32) -> String {
    format!(
        "OPTIONS sip:probe@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-bench-probe-{attempt}\r\n\
         From: <sip:bench@{from}>;tag=probe{attempt}\r\n\
         To: <sip:probe@{to}>\r\n\
         Call-ID: bench-probe-{attempt}@{from}\r\n\
         CSeq: {attempt} OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The configuration (TOML), every path inside `dir`.
fn config_toml(dir: &Path, s: &RustPbxSetup) -> String {
    let d = dir.display();
    format!(
        r#"http_addr = "{http}"
log_level = "warn"
database_url = "sqlite://{d}/rustpbx.sqlite3"
external_ip = "{ip}"
rtp_start_port = {rtp_start}
rtp_end_port = {rtp_end}

[proxy]
modules = ["acl", "call"]
addr = "{ip}"
udp_port = {sip_port}
media_proxy = "all"
{media_workers}generated_dir = "{d}/generated"
routes_files = []
trunks_files = []
acl_rules = ["allow all"]
acl_files = []
ensure_user = false

[proxy.trunks.load]
dest = "sip:127.0.0.1:5060"
direction = "inbound"
inbound_hosts = ["127.0.0.1"]

[proxy.trunks.far]
dest = "sip:{far}"
direction = "outbound"

[[proxy.routes]]
name = "everything to the far end"
priority = 100
action = "forward"
dest = "far"

[proxy.routes.match]
"to.user" = ".*"

{recording}"#,
        http = s.http,
        ip = s.sip.ip(),
        sip_port = s.sip.port(),
        far = s.far_end,
        rtp_start = s.rtp_ports.0,
        rtp_end = s.rtp_ports.1,
        recording = recording_toml(dir, s.recorder),
        media_workers = s
            .media_workers
            .map(|n| format!("media_worker_threads = {n}\n"))
            .unwrap_or_default(),
    )
}

/// The `[recording]` section (and `[sipflow]` for its packet store).
fn recording_toml(dir: &Path, recorder: Recorder) -> String {
    let d = dir.display();
    let (kind, rest) = match recorder {
        Recorder::Wav => (
            "local",
            format!("path = \"{d}/recordings\"\nsubdir = \"none\"\nsignaling = false\n"),
        ),
        Recorder::SipFlow => (
            "sipflow",
            format!("\n[sipflow]\ntype = \"local\"\nroot = \"{d}/sipflow\"\nsubdirs = \"none\"\n"),
        ),
    };
    format!("\n[recording]\nenabled = true\nauto_start = true\ntype = \"{kind}\"\n{rest}")
}

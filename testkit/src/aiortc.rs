//! aiortc as the browser in the WebRTC tests and benchmarks: an independent WebRTC stack
//! (Python, from PyPI) in a cached venv, driven through `testkit/aiortc_peer.py` over
//! stdin/stdout; one process can run many peers. Every wait is bounded; the process is
//! killed by PID when the peer is dropped. Async (tokio), unlike the rest of the testkit:
//! from blocking code, drive it with a runtime's `block_on`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The venv's python with aiortc 1.16 importable; created on first use and reused by later
/// runs (`$CALLSCOPE_VENV`, else `$HOME/.cache/callscope-venv`).
pub fn aiortc_python() -> PathBuf {
    let venv = std::env::var_os("CALLSCOPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            PathBuf::from(home).join(".cache/callscope-venv")
        });
    let python = venv.join("bin/python");
    if imports_aiortc(&python) {
        return python;
    }
    // Test binaries run in parallel: one of them builds the venv, the others wait on the
    // lock directory (bounded).
    let lock = venv.with_extension("lock");
    for _ in 0..600 {
        if std::fs::create_dir(&lock).is_ok() {
            let built = build_venv(&venv, &python);
            let _ = std::fs::remove_dir(&lock);
            built.expect("creating the aiortc venv");
            return python;
        }
        std::thread::sleep(Duration::from_secs(1));
        if imports_aiortc(&python) {
            return python;
        }
    }
    panic!(
        "timed out waiting for another test to build {}",
        venv.display()
    );
}

fn imports_aiortc(python: &Path) -> bool {
    python.exists()
        && std::process::Command::new(python)
            .args(["-c", "import aiortc, aioice, av"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn build_venv(venv: &Path, python: &Path) -> Result<(), String> {
    if imports_aiortc(python) {
        return Ok(());
    }
    let run = |cmd: &mut std::process::Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    if !python.exists() {
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv))?;
    }
    run(std::process::Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "aiortc==1.16.*",
    ]))
}

/// The Python side (`testkit/aiortc_peer.py`).
pub fn script() -> PathBuf {
    crate::workspace_root()
        .join("testkit")
        .join("aiortc_peer.py")
}

/// How to start the Python side.
#[derive(Debug, Clone)]
pub struct AiortcOptions {
    /// The microphone: a WAV (any rate; aiortc resamples).
    pub play: PathBuf,
    /// What peers after the first play (default: `play`).
    pub play_others: Option<PathBuf>,
    /// Peer 0 records here, peer i > 0 to `<record>.<i>.wav`; None records nothing.
    pub record: Option<PathBuf>,
    /// Seconds to run after the answers, then report and close.
    pub seconds: f64,
    /// One codec forced (e.g. "PCMU"), or "" for aiortc's default (Opus first).
    pub codec: String,
    pub peers: usize,
    /// Play the file(s) in a loop (for calls longer than the file).
    pub looped: bool,
    /// Send `play` (an Ogg Opus file of 20 ms frames, long enough for the call) packet by
    /// packet without decoding or encoding it: the load generator's cost per peer drops to
    /// packetizing, SRTP and receiving.
    pub passthrough: bool,
    /// Drop what is received undecoded (RTP counters still kept): no recording possible.
    pub no_decode: bool,
    /// Print each peer's RTP counters before closing (see [`AiortcPeer::finish_with_stats`]).
    pub stats: bool,
}

impl AiortcOptions {
    pub fn new(play: &Path, record: Option<&Path>, seconds: f64) -> AiortcOptions {
        AiortcOptions {
            play: play.to_path_buf(),
            play_others: None,
            record: record.map(Path::to_path_buf),
            seconds,
            codec: String::new(),
            peers: 1,
            looped: false,
            passthrough: false,
            no_decode: false,
            stats: false,
        }
    }
}

/// One peer's RTP counters, from aiortc's own `getStats()`.
#[derive(Debug, Clone, Default)]
pub struct PeerRtpStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: i64,
    pub jitter_ms: f64,
}

/// One aiortc peer: it has made its offer and waits for the answer.
pub struct AiortcPeer {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pub offer: String,
    /// Every peer's offer (one unless started with [`AiortcPeer::start_many`]).
    pub offers: Vec<String>,
    pub states: Vec<String>,
}

impl AiortcPeer {
    /// Starts the peer playing `play` and recording to `record` for `seconds` after the
    /// answer; `codec` forces one codec (e.g. "PCMU") or "" for aiortc's default (Opus first).
    pub async fn start(play: &Path, record: &Path, seconds: f64, codec: &str) -> AiortcPeer {
        Self::start_many(play, record, seconds, codec, 1).await
    }

    /// `peers` peers in one Python process (load tests); peer i > 0 records to
    /// `<record>.<i>.wav`.
    pub async fn start_many(
        play: &Path,
        record: &Path,
        seconds: f64,
        codec: &str,
        peers: usize,
    ) -> AiortcPeer {
        Self::start_with(play, None, record, seconds, codec, peers).await
    }

    /// Like [`AiortcPeer::start_many`], peers after the first playing `play_others`.
    pub async fn start_with(
        play: &Path,
        play_others: Option<&Path>,
        record: &Path,
        seconds: f64,
        codec: &str,
        peers: usize,
    ) -> AiortcPeer {
        let mut options = AiortcOptions::new(play, Some(record), seconds);
        options.play_others = play_others.map(Path::to_path_buf);
        options.codec = codec.to_string();
        options.peers = peers;
        Self::start_opts(&options).await
    }

    /// Starts the Python side as `options` say and waits (bounded) for its offers.
    pub async fn start_opts(options: &AiortcOptions) -> AiortcPeer {
        let python = tokio::task::spawn_blocking(aiortc_python)
            .await
            .expect("venv task");
        let peers = options.peers;
        let mut command = Command::new(python);
        command
            .arg(script())
            .arg("--play")
            .arg(&options.play)
            .arg("--record")
            .arg(options.record.as_deref().unwrap_or(Path::new("")))
            .args(["--seconds", &options.seconds.to_string()])
            .args(["--codec", &options.codec])
            .args(["--peers", &peers.to_string()]);
        if let Some(others) = &options.play_others {
            command.arg("--play-others").arg(others);
        }
        if options.looped {
            command.arg("--loop");
        }
        if options.passthrough {
            command.arg("--passthrough");
        }
        if options.no_decode {
            command.arg("--no-decode");
        }
        if options.stats {
            command.arg("--stats");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start aiortc peer");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut peer = AiortcPeer {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            offer: String::new(),
            offers: Vec::new(),
            states: Vec::new(),
        };
        let msg = peer
            .next_message(Duration::from_secs(30 + 2 * peers as u64), "offer")
            .await
            .expect("aiortc made no offer");
        peer.offer = msg["offer"].as_str().expect("offer sdp").to_string();
        peer.offers = msg["offers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        peer
    }

    pub async fn answer(&mut self, sdp: &str) {
        self.answer_all(&[sdp.to_string()]).await
    }

    pub async fn answer_all(&mut self, sdps: &[String]) {
        let line = serde_json::json!({ "answers": sdps }).to_string() + "\n";
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("send answer");
        self.stdin.flush().await.expect("flush");
    }

    /// The next message carrying `key`, remembering connection states on the way; None on
    /// timeout or end of output.
    pub async fn next_message(&mut self, within: Duration, key: &str) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + within;
        for _ in 0..1000 {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .ok()?
                .ok()??;
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(state) = msg.get("state").and_then(|s| s.as_str()) {
                self.states.push(state.to_string());
            }
            if msg.get(key).is_some() {
                return Some(msg);
            }
        }
        None
    }

    /// Waits for the peer to finish (recording closed) and exit.
    pub async fn finish(mut self, within: Duration) -> Vec<String> {
        let done = self.next_message(within, "done").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.start_kill();
        assert!(
            done.is_some(),
            "aiortc did not finish; states {:?}",
            self.states
        );
        self.states
    }

    /// Waits for the peers' RTP counters (started with `stats`), then for the end.
    pub async fn finish_with_stats(mut self, within: Duration) -> Option<Vec<PeerRtpStats>> {
        let stats = self.next_message(within, "stats").await.map(|msg| {
            msg["stats"]
                .as_array()
                .map(|peers| {
                    peers
                        .iter()
                        .map(|p| PeerRtpStats {
                            packets_sent: p["packets_sent"].as_u64().unwrap_or(0),
                            packets_received: p["packets_received"].as_u64().unwrap_or(0),
                            packets_lost: p["packets_lost"].as_i64().unwrap_or(0),
                            jitter_ms: p["jitter_ms"].as_f64().unwrap_or(0.0),
                        })
                        .collect()
                })
                .unwrap_or_default()
        });
        let _ = self.next_message(within, "done").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.start_kill();
        stats
    }

    /// The Python process's PID (to measure its CPU).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Splits the offer's `a=candidate` lines off (to hand them over by trickle ICE instead).
pub fn strip_candidates(sdp: &str) -> (String, Vec<String>) {
    let mut kept = String::new();
    let mut candidates = Vec::new();
    for line in sdp.lines() {
        if let Some(c) = line.strip_prefix("a=candidate:") {
            candidates.push(format!("candidate:{c}"));
        } else if line != "a=end-of-candidates" {
            kept.push_str(line);
            kept.push_str("\r\n");
        }
    }
    (kept, candidates)
}

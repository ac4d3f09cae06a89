//! aiortc as the browser in the WebRTC tests: an independent WebRTC stack (Python, from
//! PyPI) in a cached venv, driven through `aiortc_peer.py` over stdin/stdout. Every wait is
//! bounded; the process is killed by PID when the peer is dropped.
#![allow(dead_code)]

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

/// The Python side, beside this file (which other packages' tests include by path).
pub fn script() -> PathBuf {
    let beside_this = Path::new(file!()).with_file_name("aiortc_peer.py");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        manifest.join(&beside_this),
        manifest.join("tests/browser/aiortc_peer.py"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or(beside_this)
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
        let python = tokio::task::spawn_blocking(aiortc_python)
            .await
            .expect("venv task");
        let mut child = Command::new(python)
            .arg(script())
            .arg("--play")
            .arg(play)
            .arg("--record")
            .arg(record)
            .args(["--seconds", &seconds.to_string(), "--codec", codec])
            .args(["--peers", &peers.to_string()])
            .args(
                play_others
                    .map(|p| vec!["--play-others".into(), p.as_os_str().to_owned()])
                    .unwrap_or_default(),
            )
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

//! Real browsers on the softphone page: `node tests/browser/softphone-driver.mjs` drives
//! Debian's Chromium through playwright-core, one persistent browser context per agent
//! (own profile, own fake microphone WAV). This side sends the driver one JSON command per
//! line and waits, bounded, for the reply with the same id.
//!
//! ```no_run
//! use callscope_testkit::browser::Softphones;
//! use std::path::Path;
//! let mut phones = Softphones::start().unwrap();
//! phones.open("alice", "http://127.0.0.1:8080", Some(Path::new("/tmp/mic.wav"))).unwrap();
//! let reply = phones.login("alice", "acme.example", "1001", "secret").unwrap();
//! assert_eq!(reply["view"], "phone");
//! phones.wait_attr("alice", "#presence", "data-presence", "away").unwrap();
//! ```
//!
//! Nothing is skipped: without Chromium, node or `tests/browser/node_modules` the start
//! fails and says to run `scripts/setup`. The node process is stopped by its PID when the
//! [`Softphones`] is dropped, and any Chromium it left behind by the PIDs it reported.

use crate::process::{ChildGuard, signal};
use crate::{Error, Result};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one command may take unless told otherwise (a cold Chromium start is the slowest).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long node may take to load playwright-core and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time on top of a command's own timeout: the driver bounds every command by its
/// timeout plus 5 s, so a reply later than this means the driver itself is stuck.
const REPLY_MARGIN: Duration = Duration::from_secs(10);
/// Debian's Chromium; `CALLSCOPE_CHROMIUM` overrides it (the driver reads the same variable).
const CHROMIUM: &str = "/usr/bin/chromium";

/// `tests/browser` of this workspace: the driver and its npm lockfile.
pub fn driver_dir() -> PathBuf {
    let dir = crate::workspace_root().join("tests").join("browser");
    dir.canonicalize().unwrap_or(dir)
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CALLSCOPE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CHROMIUM))
}

/// `<target dir>/softphone-artifacts/<test>`, emptied, for a test's screenshots: pass the
/// test crate's `env!("CARGO_TARGET_TMPDIR")` (`<target dir>/tmp`).
pub fn artifact_dir(target_tmpdir: &Path, test: &str) -> Result<PathBuf> {
    let dir = target_tmpdir
        .parent()
        .unwrap_or(target_tmpdir)
        .join("softphone-artifacts")
        .join(test);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("emptying {}", dir.display()), e)),
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// Checks what the driver needs, naming what is missing.
fn check_setup(dir: &Path) -> Result<()> {
    let chromium = chromium_path();
    if !chromium.is_file() {
        return Err(Error::BrowserSetup {
            what: format!(
                "Chromium not found at {} (Debian package `chromium`)",
                chromium.display()
            ),
        });
    }
    if !dir.join("softphone-driver.mjs").is_file() {
        return Err(Error::BrowserSetup {
            what: format!("the softphone driver is missing from {}", dir.display()),
        });
    }
    if !dir
        .join("node_modules")
        .join("playwright-core")
        .join("package.json")
        .is_file()
    {
        return Err(Error::BrowserSetup {
            what: format!(
                "playwright-core is not installed in {}/node_modules (npm ci)",
                dir.display()
            ),
        });
    }
    crate::tools::require("node", &["--version"])
}

/// The browsers of one test: a node driver process and the agents it has open.
#[derive(Debug)]
pub struct Softphones {
    // Declared before `guard`: stdin closes first, which tells the driver to quit.
    stdin: Option<ChildStdin>,
    guard: ChildGuard,
    replies: mpsc::Receiver<String>,
    next_id: u64,
    log: PathBuf,
    browser_pids: Vec<u32>,
    _dir: tempfile::TempDir,
}

impl Softphones {
    /// Starts the driver and waits until playwright-core is loaded.
    pub fn start() -> Result<Self> {
        let driver = driver_dir();
        check_setup(&driver)?;
        let dir = tempfile::Builder::new()
            .prefix("softphones-")
            .tempdir()
            .map_err(|e| Error::io("creating the driver's dir", e))?;
        let log = dir.path().join("driver.log");
        let stderr = std::fs::File::create(&log)
            .map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
        let mut cmd = Command::new("node");
        cmd.arg("softphone-driver.mjs")
            .current_dir(&driver)
            .env("CALLSCOPE_CHROMIUM", chromium_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut guard = ChildGuard::spawn("node", &mut cmd, Some(log.clone()))?;
        let stdin = guard.child_mut().stdin.take();
        let stdout = guard.child_mut().stdout.take().ok_or_else(|| {
            Error::io(
                "taking the driver's stdout",
                std::io::Error::other("no pipe"),
            )
        })?;
        let (tx, replies) = mpsc::channel();
        // Ends by itself at EOF, when the driver exits.
        std::thread::Builder::new()
            .name("softphone-driver-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io("starting the driver's reader", e))?;
        let mut phones = Softphones {
            stdin,
            guard,
            replies,
            next_id: 1,
            log,
            browser_pids: Vec::new(),
            _dir: dir,
        };
        phones.await_reply(0, "the driver to start", READY_TIMEOUT)?;
        Ok(phones)
    }

    /// The driver's stderr (its own messages and every page's console).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `cmd` with the fields of `args` (a JSON object) and waits at most `timeout`
    /// (plus a margin for the driver) for its reply; a reply with `ok: false` is an error.
    pub fn command(&mut self, cmd: &str, args: Value, timeout: Duration) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = match args {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(Error::CommandFailed {
                    tool: "softphone driver",
                    command: cmd.into(),
                    detail: format!("arguments must be a JSON object, not {other}"),
                });
            }
        };
        message.insert("id".into(), id.into());
        message.insert("cmd".into(), cmd.into());
        message.insert(
            "timeout_ms".into(),
            u64::try_from(timeout.as_millis())
                .unwrap_or(u64::MAX)
                .into(),
        );
        let line = Value::Object(message).to_string();
        let stdin = self.stdin.as_mut().ok_or_else(|| Error::ExitedEarly {
            tool: "softphone driver",
            status: "stdin closed".into(),
            log: Some(self.log.clone()),
        })?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(|e| Error::io(format!("sending {cmd} to the driver"), e))?;
        let reply = self.await_reply(id, cmd, timeout + REPLY_MARGIN)?;
        if reply["ok"] == Value::Bool(true) {
            Ok(reply)
        } else {
            Err(Error::CommandFailed {
                tool: "softphone driver",
                command: line,
                detail: reply["error"].as_str().unwrap_or("no error text").into(),
            })
        }
    }

    fn await_reply(&mut self, id: u64, what: &str, limit: Duration) -> Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.replies.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(Error::Timeout {
                        what: format!("the driver's reply to {what}"),
                        after: limit,
                        log: Some(self.log.clone()),
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self
                        .guard
                        .try_status()?
                        .map_or_else(|| "closed its stdout".into(), |s| s.to_string());
                    return Err(Error::ExitedEarly {
                        tool: "softphone driver",
                        status,
                        log: Some(self.log.clone()),
                    });
                }
            };
            // Anything else is a late reply to a command that already timed out here.
            let Ok(reply) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if reply["id"].as_u64() == Some(id) {
                return Ok(reply);
            }
        }
    }

    /// Opens `agent`'s browser (a fresh profile) on `base_url`'s softphone page with the test
    /// hook (`?test=1`), `mic_wav` as its microphone.
    pub fn open(&mut self, agent: &str, base_url: &str, mic_wav: Option<&Path>) -> Result<Value> {
        let mut args = json!({ "agent": agent, "base_url": base_url });
        if let Some(wav) = mic_wav {
            args["mic_wav"] = wav.display().to_string().into();
        }
        self.open_with(args)
    }

    /// Opens `agent`'s browser on another page of the server (`path`, e.g. `/api/v1/docs`).
    pub fn open_page(&mut self, agent: &str, base_url: &str, path: &str) -> Result<Value> {
        self.open_with(json!({ "agent": agent, "base_url": base_url, "path": path }))
    }

    fn open_with(&mut self, args: Value) -> Result<Value> {
        let reply = self.command("open", args, DEFAULT_TIMEOUT)?;
        if let Some(pids) = reply["browser_pids"].as_array() {
            self.browser_pids.extend(
                pids.iter()
                    .filter_map(|p| p.as_u64().and_then(|p| u32::try_from(p).ok())),
            );
        }
        Ok(reply)
    }

    /// Signs in through the form (Enter submits). The reply's `view` is `phone` on success
    /// (with the page's `state`), `login` with `login_error` otherwise.
    pub fn login(
        &mut self,
        agent: &str,
        domain: &str,
        extension: &str,
        password: &str,
    ) -> Result<Value> {
        self.command(
            "login",
            json!({ "agent": agent, "domain": domain, "extension": extension, "password": password }),
            DEFAULT_TIMEOUT,
        )
    }

    pub fn logout(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "logout")
    }

    /// `available` or `away`, through the page's switch; waits until the page shows it.
    pub fn set_presence(&mut self, agent: &str, status: &str) -> Result<Value> {
        self.command(
            "set_presence",
            json!({ "agent": agent, "status": status }),
            DEFAULT_TIMEOUT,
        )
    }

    /// Waits until `selector`'s attribute `attr` is `value` (e.g. `#call`, `data-state`,
    /// `connected`); the reply carries the page's state.
    pub fn wait_attr(
        &mut self,
        agent: &str,
        selector: &str,
        attr: &str,
        value: &str,
    ) -> Result<Value> {
        self.wait_attr_for(agent, selector, attr, value, DEFAULT_TIMEOUT)
    }

    pub fn wait_attr_for(
        &mut self,
        agent: &str,
        selector: &str,
        attr: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<Value> {
        self.command(
            "wait_for",
            json!({ "agent": agent, "selector": selector, "attr": attr, "value": value }),
            timeout,
        )
    }

    /// Waits until an element matching `selector` and containing `text` is visible.
    pub fn wait_text(&mut self, agent: &str, selector: &str, text: &str) -> Result<Value> {
        self.command(
            "wait_for",
            json!({ "agent": agent, "selector": selector, "text": text }),
            DEFAULT_TIMEOUT,
        )
    }

    /// Waits until `selector` is `state`: `visible`, `hidden`, `attached` or `detached`.
    pub fn wait_state(&mut self, agent: &str, selector: &str, state: &str) -> Result<Value> {
        self.command(
            "wait_for",
            json!({ "agent": agent, "selector": selector, "state": state }),
            DEFAULT_TIMEOUT,
        )
    }

    /// Everything the page shows (view, user, presence, connection, incoming call, call
    /// panel, quality), under `state`, plus the page's last console lines.
    pub fn read_state(&mut self, agent: &str) -> Result<Value> {
        let reply = self.agent_command(agent, "read_state")?;
        Ok(reply["state"].clone())
    }

    /// The page's last console lines and uncaught errors (`type: text`), newest last.
    pub fn console(&mut self, agent: &str) -> Result<Vec<String>> {
        let reply = self.agent_command(agent, "read_state")?;
        Ok(reply["console"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The agent's browser cookies for the page (`name`, `value`, `httpOnly`, `sameSite`, …).
    pub fn cookies(&mut self, agent: &str) -> Result<Vec<Value>> {
        let reply = self.agent_command(agent, "cookies")?;
        Ok(reply["cookies"].as_array().cloned().unwrap_or_default())
    }

    pub fn screenshot(&mut self, agent: &str, path: &Path) -> Result<Value> {
        self.command(
            "screenshot",
            json!({ "agent": agent, "path": path.display().to_string() }),
            DEFAULT_TIMEOUT,
        )
    }

    /// Closes the page's WebSocket as a network failure would; the page reconnects.
    pub fn drop_socket(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "drop_socket")
    }

    pub fn click(&mut self, agent: &str, selector: &str) -> Result<Value> {
        self.command(
            "click",
            json!({ "agent": agent, "selector": selector }),
            DEFAULT_TIMEOUT,
        )
    }

    /// Presses `key` on the focused element, or on `selector` when given.
    pub fn press(&mut self, agent: &str, key: &str, selector: Option<&str>) -> Result<Value> {
        let mut args = json!({ "agent": agent, "key": key });
        if let Some(s) = selector {
            args["selector"] = s.into();
        }
        self.command("press", args, DEFAULT_TIMEOUT)
    }

    /// Answers the ringing call in the banner; the reply carries its `call_id`.
    pub fn answer(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "answer")
    }

    pub fn reject(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "reject")
    }

    /// Types `number` and presses Enter; returns once the call panel left idle.
    pub fn dial(&mut self, agent: &str, number: &str) -> Result<Value> {
        self.command(
            "dial",
            json!({ "agent": agent, "number": number }),
            DEFAULT_TIMEOUT,
        )
    }

    pub fn hangup(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "hangup")
    }

    /// Mute, unmute, hold and resume wait until the server confirms (the call panel's
    /// `data-muted` / `data-held` flips).
    pub fn mute(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "mute")
    }

    pub fn unmute(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "unmute")
    }

    pub fn hold(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "hold")
    }

    pub fn resume(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "resume")
    }

    pub fn transfer(&mut self, agent: &str, target: &str) -> Result<Value> {
        self.command(
            "transfer",
            json!({ "agent": agent, "target": target }),
            DEFAULT_TIMEOUT,
        )
    }

    /// Clicks `digits` (0-9, *, #) on the in-call keypad.
    pub fn dtmf(&mut self, agent: &str, digits: &str) -> Result<Value> {
        self.command(
            "dtmf",
            json!({ "agent": agent, "digits": digits }),
            DEFAULT_TIMEOUT,
        )
    }

    /// Closes the agent's browser.
    pub fn close(&mut self, agent: &str) -> Result<Value> {
        self.agent_command(agent, "close")
    }

    fn agent_command(&mut self, agent: &str, cmd: &str) -> Result<Value> {
        self.command(cmd, json!({ "agent": agent }), DEFAULT_TIMEOUT)
    }
}

/// Whether `pid` is still a Chromium process (not a reused PID of something else).
fn is_chromium(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim_start().starts_with("chrom"))
        .unwrap_or(false)
}

impl Drop for Softphones {
    fn drop(&mut self) {
        // Asked nicely first: the driver closes every browser and exits.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"{\"id\":-1,\"cmd\":\"quit\"}\n");
            let _ = stdin.flush();
        }
        if self.guard.wait_timeout(Duration::from_secs(10)).is_err() {
            // SIGTERM lets Playwright close its browsers; SIGKILL after 3 s.
            let _ = self.guard.terminate(Duration::from_secs(3));
        }
        // Playwright starts each Chromium as the leader of its own process group: whatever
        // of one is left (node killed before it could close it) goes with its group.
        for &pid in &self.browser_pids {
            if is_chromium(pid)
                && let Ok(group) = i32::try_from(pid)
            {
                // SAFETY: kill(2) on a process group we started, checked to still be Chromium.
                unsafe {
                    libc::kill(-group, libc::SIGKILL);
                }
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

//! linphonec 5 (package `linphone-cli`, the belle-sip stack) driven through its stdin
//! commands, with its console output read back line by line.
//!
//! Each instance gets its own HOME (linphone keeps a database under
//! `$HOME/.local/share/linphone` and hangs if that directory is missing) and its own rc
//! file, IPv4 only and bound to 127.0.0.1 so its SDP offers 127.0.0.1 rather than the
//! machine's public addresses.

use crate::process::{ChildGuard, wait_until};
use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct LinphoneConfig {
    /// User part of the identity (used in From and Contact).
    pub user: String,
    /// Answer incoming calls automatically (`linphonec -a`).
    pub auto_answer: bool,
    /// Played as the microphone once a call is up (`soundcard use files` + `play`).
    pub play_wav: Option<PathBuf>,
    /// What linphonec hears is written here (`record`), at the rate linphonec chooses
    /// (compare with [`crate::audio_compare`], which resamples).
    pub record_wav: Option<PathBuf>,
    /// An account registered at start-up (in the rc file), whose proxy every request is
    /// routed through.
    pub account: Option<LinphoneAccount>,
}

/// `sip:USER@domain` registered with digest credentials through `proxy`.
#[derive(Debug, Clone)]
pub struct LinphoneAccount {
    /// The AOR's domain (the server's digest realm), which need not resolve: `proxy` is
    /// also the account's route, so linphonec never looks the domain up.
    pub domain: String,
    pub proxy: std::net::SocketAddr,
    pub password: String,
}

impl LinphoneConfig {
    pub fn new(user: &str) -> Self {
        LinphoneConfig {
            user: user.to_string(),
            auto_answer: true,
            play_wav: None,
            record_wav: None,
            account: None,
        }
    }
}

/// A running linphonec, killed when dropped.
#[derive(Debug)]
pub struct Linphone {
    guard: ChildGuard,
    dir: tempfile::TempDir,
    stdin: ChildStdin,
    out: Arc<Mutex<Output>>,
    /// Index into `lines` up to which `wait_line` has consumed output.
    cursor: usize,
    sip_port: u16,
    user: String,
}

impl Linphone {
    pub fn start(config: &LinphoneConfig) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("linphone-")
            .tempdir()
            .map_err(|e| Error::io("creating linphone temp dir", e))?;
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone"))
            .map_err(|e| Error::io("creating linphone HOME", e))?;
        let sip_port = crate::ports::free_port()?;
        let rtp_port = crate::ports::free_port_run(2)?;
        let rc = dir.path().join("linphonerc");
        std::fs::write(
            &rc,
            format!(
                "[sip]\nsip_port={sip_port}\nsip_tcp_port=-1\nsip_tls_port=-1\n\
                 bind_address=127.0.0.1\nuse_ipv6=0\nipv6_migration_done=1\n\
                 contact=sip:{user}@127.0.0.1\n{default_proxy}\
                 [rtp]\nbind_address=127.0.0.1\naudio_rtp_port={rtp_port}\n\
                 [net]\nnat_address=127.0.0.1\n\
                 [video]\ncapture=0\ndisplay=0\nautomatically_initiate=0\nautomatically_accept=0\n\
                 {account}",
                user = config.user,
                default_proxy = if config.account.is_some() {
                    "default_proxy=0\n"
                } else {
                    ""
                },
                account = config
                    .account
                    .as_ref()
                    .map(|a| account_sections(&config.user, a))
                    .unwrap_or_default(),
            ),
        )
        .map_err(|e| Error::io("writing linphonerc", e))?;
        let log = dir.path().join("linphonec.log");
        let mut cmd = Command::new("linphonec");
        if config.auto_answer {
            cmd.arg("-a");
        }
        cmd.arg("-c")
            .arg(&rc)
            .env("HOME", &home)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard::spawn("linphonec", &mut cmd, Some(log.clone()))?;
        let out = Arc::new(Mutex::new(Output::default()));
        let child = guard.child_mut();
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::io("linphonec stdin", std::io::ErrorKind::BrokenPipe.into()))?;
        // Two reader threads copy stdout and stderr into one line buffer (and the log);
        // they end on their own when linphonec exits and its pipes close.
        if let Some(stdout) = child.stdout.take() {
            spawn_reader(stdout, out.clone(), log.clone());
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, out.clone(), log.clone());
        }
        let mut me = Linphone {
            guard,
            dir,
            stdin,
            out,
            cursor: 0,
            sip_port,
            user: config.user.clone(),
        };
        me.wait_line("linphonec to start", Duration::from_secs(15), |l| {
            l.contains("linphonec>") || l.contains("Ready")
        })?;
        me.send("soundcard use files")?;
        if let Some(wav) = &config.play_wav {
            me.send(&format!("play {}", wav.display()))?;
        }
        if let Some(wav) = &config.record_wav {
            me.send(&format!("record {}", wav.display()))?;
        }
        Ok(me)
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn direct_uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything linphonec printed so far.
    pub fn output(&self) -> String {
        self.out
            .lock()
            .map(|o| format!("{}\n{}", o.lines.join("\n"), o.partial))
            .unwrap_or_default()
    }

    /// Sends one console command.
    pub fn send(&mut self, command: &str) -> Result<()> {
        self.guard.ensure_running()?;
        writeln!(self.stdin, "{command}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| Error::io(format!("sending {command:?} to linphonec"), e))
    }

    /// Registers `user@domain` (the domain is the registrar's realm) through the proxy
    /// `registrar` (`HOST:PORT`) with digest credentials, and waits until linphonec's
    /// `status register` says it is registered (it prints nothing by itself on success).
    pub fn register(&mut self, domain: &str, registrar: &str, password: &str) -> Result<()> {
        let host = registrar.trim_start_matches("sip:");
        self.send(&format!(
            "register sip:{}@{domain} sip:{host} {password}",
            self.user
        ))?;
        self.wait_registered(Duration::from_secs(10))
    }

    /// Waits until `status register` reports the account registered (linphonec prints
    /// nothing of its own when a registration succeeds).
    pub fn wait_registered(&mut self, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.send("status register")?;
            let reply =
                self.wait_line("a `status register` reply", Duration::from_secs(5), |l| {
                    let l = l.trim_start_matches("linphonec> ");
                    l.starts_with("registered")
                        || l.starts_with("registration")
                        || l.contains("unregistered")
                })?;
            if reply
                .trim_start_matches("linphonec> ")
                .starts_with("registered,")
            {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("linphonec registration (last status {reply:?})"),
                    after: timeout,
                    log: Some(self.dir.path().join("linphonec.log")),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Places a call; returns once linphonec reports it connected.
    pub fn call(&mut self, uri: &str, timeout: Duration) -> Result<String> {
        self.send(&format!("call {uri}"))?;
        self.wait_line("the call to connect", timeout, |l| {
            // linphonec's call-state lines: "Call 1 with sip:... connected." / "... error."
            l.contains("Call ")
                && l.contains(" with ")
                && (l.contains("connected")
                    || l.trim_end().ends_with("error.")
                    || l.contains("declined")
                    || l.contains("ended"))
        })
        .and_then(|l| {
            if l.contains("connected") {
                Ok(l)
            } else {
                Err(Error::CommandFailed {
                    tool: "linphonec",
                    command: format!("call {uri}"),
                    detail: l,
                })
            }
        })
    }

    pub fn answer(&mut self) -> Result<()> {
        self.send("answer")
    }

    pub fn terminate_all(&mut self) -> Result<()> {
        self.send("terminate all")
    }

    /// Waits for an output line (after those already consumed) satisfying `pred`. The
    /// unfinished last line is looked at too, without being consumed.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String> {
        let out = self.out.clone();
        let log = self.dir.path().join("linphonec.log");
        let mut cursor = self.cursor;
        let guard = &mut self.guard;
        let found = wait_until(what, timeout, Some(&log), || {
            let o = out.lock().map_err(|_| Error::Parse {
                what: "linphonec output".into(),
                detail: "reader thread panicked".into(),
            })?;
            while let Some(line) = o.lines.get(cursor) {
                cursor += 1;
                if pred(line) {
                    return Ok(Some(line.clone()));
                }
            }
            if pred(&o.partial) {
                return Ok(Some(o.partial.clone()));
            }
            drop(o);
            guard.ensure_running()?;
            Ok(None)
        });
        self.cursor = cursor;
        // The temp dir (and its log) goes away with this instance: put the output's tail
        // into the error so a failed test shows what linphonec said.
        found.map_err(|e| match e {
            Error::Timeout { what, after, .. } => Error::Timeout {
                what: format!("{what}; linphonec's last output:\n{}", self.tail(40)),
                after,
                log: None,
            },
            other => other,
        })
    }

    /// The last `n` lines of output.
    pub fn tail(&self, n: usize) -> String {
        let all = self.output();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Quits politely, then makes sure the process is gone.
    pub fn quit(mut self) -> Result<()> {
        let _ = self.send("terminate all");
        let _ = self.send("quit");
        match self.guard.wait_timeout(Duration::from_secs(5)) {
            Ok(_) => Ok(()),
            Err(_) => self.guard.terminate(Duration::from_secs(1)).map(|_| ()),
        }
    }
}

/// The rc sections of a registered account: the proxy doubles as the route, and the digest
/// credentials are keyed by username and realm.
fn account_sections(user: &str, a: &LinphoneAccount) -> String {
    format!(
        "[proxy_0]\nreg_proxy=<sip:{proxy};transport=udp>\nreg_route=<sip:{proxy};transport=udp;lr>\n\
         reg_identity=<sip:{user}@{domain}>\nreg_expires=3600\nreg_sendregister=1\n\
         [auth_info_0]\nusername={user}\npasswd={pass}\nrealm={domain}\ndomain={domain}\n",
        proxy = a.proxy,
        domain = a.domain,
        pass = a.password,
    )
}

/// Output so far: complete lines, plus the unfinished last line (linphonec prints its
/// `linphonec>` prompt without a newline, and messages can follow it on the same line).
#[derive(Debug, Default)]
struct Output {
    lines: Vec<String>,
    partial: String,
}

fn spawn_reader(
    mut pipe: impl std::io::Read + Send + 'static,
    out: Arc<Mutex<Output>>,
    log: PathBuf,
) {
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .ok();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(f) = file.as_mut() {
                let _ = f.write_all(&chunk[..n]);
            }
            let text = String::from_utf8_lossy(&chunk[..n]);
            let Ok(mut o) = out.lock() else { break };
            for c in text.chars() {
                if c == '\n' {
                    let line = std::mem::take(&mut o.partial);
                    o.lines.push(line);
                } else {
                    o.partial.push(c);
                }
            }
        }
    });
}

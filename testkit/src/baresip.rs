//! baresip 1.0 as a scripted SIP phone: a WAV file as its microphone (`aufile`), what it
//! hears recorded to WAV files (`sndfile`), and remote control over TCP (`ctrl_tcp`, JSON in
//! netstrings) for dial / accept / hangup / hold / resume / transfer, with its events
//! (REGISTER_OK, CALL_INCOMING, CALL_ESTABLISHED, CALL_CLOSED, ...) read back.

use crate::process::{ChildGuard, POLL};
use crate::{Error, Result};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a baresip instance treats incoming calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerMode {
    #[default]
    Auto,
    Manual,
}

/// Registration with a registrar (callscope) using digest authentication.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The registrar, e.g. callscope's SIP address.
    pub registrar: SocketAddr,
    /// Authentication user name (defaults to the account user when empty).
    pub auth_user: String,
    pub password: String,
    /// Registration interval in seconds (baresip re-registers before it lapses).
    pub regint: u32,
}

#[derive(Debug, Clone)]
pub struct BaresipConfig {
    /// User part of the account's AOR.
    pub user: String,
    /// What the phone "says": a WAV file, converted to the first codec's rate and channels
    /// if needed (baresip ends the call when the file runs out, so make it longer than the
    /// call).
    pub source_wav: PathBuf,
    pub answer_mode: AnswerMode,
    /// `None`: a peer-to-peer account addressed directly at its own listen address.
    pub registration: Option<Registration>,
    /// Codec names for the account (`PCMU`, `PCMA`, `opus`, `G722`, ...), preferred first.
    /// RFC 4733 telephone-event is always offered.
    pub audio_codecs: Vec<String>,
    /// Extra `;param=value` text appended to the account line verbatim.
    pub extra_account_params: String,
    /// The loopback address baresip binds (SIP and RTP): another 127.0.0.x makes the phone a
    /// distinct source IP to the server (bans and rate limits are per IP).
    pub bind_ip: std::net::Ipv4Addr,
    /// The AOR's domain when registering (the server's digest realm); the REGISTER and all
    /// requests still go to [`Registration::registrar`] as the account's outbound proxy.
    /// `None`: the registrar's address is the domain.
    pub domain: Option<String>,
    /// Run inside this network namespace (see [`crate::netns`]); `bind_ip` must then be the
    /// namespace's address. ctrl_tcp listens on the namespace's own loopback and the driver
    /// connects to it from inside.
    pub netns: Option<String>,
    /// RTP/RTCP port range (`rtp_ports`), e.g. to aim an iptables loss rule at it.
    pub rtp_ports: Option<(u16, u16)>,
}

impl BaresipConfig {
    pub fn new(user: &str, source_wav: &Path) -> Self {
        BaresipConfig {
            user: user.to_string(),
            source_wav: source_wav.to_path_buf(),
            answer_mode: AnswerMode::Auto,
            registration: None,
            audio_codecs: vec!["PCMU".into()],
            extra_account_params: String::new(),
            bind_ip: std::net::Ipv4Addr::LOCALHOST,
            domain: None,
            netns: None,
            rtp_ports: None,
        }
    }
}

/// One event from baresip's ctrl_tcp stream.
#[derive(Debug, Clone)]
pub struct Event {
    /// e.g. `CALL_ESTABLISHED`.
    pub kind: String,
    /// The call's id, when the event concerns a call.
    pub call_id: Option<String>,
    pub peer_uri: Option<String>,
    pub param: Option<String>,
    pub raw: Value,
}

/// The reply to a ctrl_tcp command.
#[derive(Debug, Clone)]
pub struct Reply {
    pub ok: bool,
    pub data: String,
}

/// A running baresip, killed when dropped.
#[derive(Debug)]
pub struct Baresip {
    guard: ChildGuard,
    dir: tempfile::TempDir,
    sip_port: u16,
    ip: std::net::Ipv4Addr,
    user: String,
    ctrl: TcpStream,
    buf: Vec<u8>,
    events: VecDeque<Event>,
    next_token: u64,
}

const START_TIMEOUT: Duration = Duration::from_secs(10);

impl Baresip {
    /// Writes a config directory and starts baresip bound to 127.0.0.1 on free ports.
    ///
    /// A port found free can be taken by another process before baresip binds it (other
    /// peers, SIPp or the server's RTP ports draw from the same ephemeral range). baresip
    /// then exits with its errno as the status, 98 (EADDRINUSE); that start is retried on
    /// fresh ports, at most three times in all.
    pub fn start(config: &BaresipConfig) -> Result<Self> {
        const ADDRESS_IN_USE: &str = "exit status: 98";
        let mut attempt = 1;
        loop {
            match Self::start_once(config) {
                Err(Error::ExitedEarly { status, .. })
                    if status == ADDRESS_IN_USE && attempt < 3 =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(config: &BaresipConfig) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("baresip-")
            .tempdir()
            .map_err(|e| Error::io("creating baresip temp dir", e))?;
        // baresip binds TLS on the SIP port + 1 even when unused: reserve both.
        // Inside a fresh namespace every port is free, but free ones from the host do too.
        let sip_port = crate::ports::free_port_run(2)?;
        let ctrl_port = crate::ports::free_port()?;
        let ip = config.bind_ip;
        let rec_dir = dir.path().join("recordings");
        std::fs::create_dir_all(&rec_dir).map_err(|e| Error::io("creating recordings dir", e))?;
        let source = source_for_codec(config, dir.path())?;
        let conf = format!(
            "sip_listen {ip}:{sip_port}\n\
             net_interface {ip}\n\
             audio_source aufile,{src}\n\
             audio_player aufile,{play}\n\
             audio_alert aufile,{alert}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module opus.so\n\
             module aufile.so\n\
             module sndfile.so\n\
             module account.so\n\
             module menu.so\n\
             module ctrl_tcp.so\n\
             snd_path {rec}\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n{rtp_ports}",
            src = source.display(),
            play = dir.path().join("play.wav").display(),
            alert = dir.path().join("alert.wav").display(),
            rec = rec_dir.display(),
            rtp_ports = config
                .rtp_ports
                .map(|(lo, hi)| format!("rtp_ports {lo}-{hi}\n"))
                .unwrap_or_default(),
        );
        std::fs::write(dir.path().join("config"), conf)
            .map_err(|e| Error::io("writing baresip config", e))?;
        std::fs::write(dir.path().join("accounts"), account_line(config, sip_port))
            .map_err(|e| Error::io("writing baresip accounts", e))?;

        let log = dir.path().join("baresip.log");
        let mut cmd = match &config.netns {
            // `ip netns exec` execs baresip: the guarded PID is baresip's own.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "baresip"]);
                c
            }
            None => Command::new("baresip"),
        };
        cmd.arg("-f").arg(dir.path()).stdin(Stdio::null());
        let mut guard = ChildGuard::spawn_logged("baresip", &mut cmd, &log)?;
        let ctrl_addr = SocketAddr::from(([127, 0, 0, 1], ctrl_port));
        let ctrl = crate::process::wait_until(
            "baresip's ctrl_tcp to accept connections",
            START_TIMEOUT,
            Some(&log),
            || {
                guard.ensure_running()?;
                let t = Duration::from_millis(200);
                Ok(match &config.netns {
                    Some(ns) => crate::netns::connect_tcp_in(ns, ctrl_addr, t).ok(),
                    None => TcpStream::connect_timeout(&ctrl_addr, t).ok(),
                })
            },
        )?;
        ctrl.set_nodelay(true)
            .map_err(|e| Error::io("configuring ctrl_tcp socket", e))?;
        Ok(Baresip {
            guard,
            dir,
            sip_port,
            ip,
            user: config.user.clone(),
            ctrl,
            buf: Vec::new(),
            events: VecDeque::new(),
            next_token: 1,
        })
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.sip_port))
    }

    /// The URI that reaches this phone directly (peer to peer).
    pub fn direct_uri(&self) -> String {
        format!("sip:{}@{}:{}", self.user, self.ip, self.sip_port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("baresip.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path())
            .map(|s| s.replace('\r', "\n"))
            .unwrap_or_default()
    }

    /// Where `sndfile` writes `dump-*-dec.wav` (heard) and `dump-*-enc.wav` (sent).
    pub fn recordings_dir(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }

    /// The WAV files of what this phone heard (one per call).
    pub fn received_recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.recordings_dir())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        v.sort();
        v
    }

    /// The WAV files of what this phone sent (its source after encoding's input side).
    pub fn sent_recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.recordings_dir())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-enc.wav"))
            .collect();
        v.sort();
        v
    }

    /// Sends DTMF digits (`0-9*#A-D`) on the current call as RFC 4733 telephone-events
    /// (baresip's `sndcode`), one after the other.
    pub fn send_dtmf(&mut self, digits: &str) -> Result<Reply> {
        if let Some(bad) = digits
            .chars()
            .find(|c| !(c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')))
        {
            return Err(Error::CommandFailed {
                tool: "baresip",
                command: format!("sndcode {digits}"),
                detail: format!("{bad:?} is not a DTMF digit"),
            });
        }
        self.command_ok("sndcode", Some(digits))
    }

    /// baresip's `audio_debug` text for the current call (codec, RTP counters, jitter).
    pub fn audio_debug(&mut self) -> Result<String> {
        self.command_ok("audio_debug", None).map(|r| r.data)
    }

    /// RTP counters of the current call, from `audio_debug`.
    pub fn rtp_stats(&mut self) -> Result<RtpStats> {
        let text = self.audio_debug()?;
        parse_rtp_stats(&text).ok_or_else(|| Error::Parse {
            what: "baresip audio_debug".into(),
            detail: format!("no RTCP member line in {text:?}"),
        })
    }

    /// Sends a ctrl_tcp command and waits for its reply; events arriving meanwhile are
    /// queued for [`Baresip::wait_event`].
    pub fn command(&mut self, command: &str, params: Option<&str>) -> Result<Reply> {
        let token = self.next_token.to_string();
        self.next_token += 1;
        let mut msg = json!({"command": command, "token": token});
        if let Some(p) = params {
            msg["params"] = json!(p);
        }
        let body = msg.to_string();
        let frame = format!("{}:{},", body.len(), body);
        self.ctrl
            .write_all(frame.as_bytes())
            .map_err(|e| Error::io("writing to baresip ctrl_tcp", e))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            while let Some(v) = self.next_message(deadline)? {
                if v.get("response").and_then(Value::as_bool) == Some(true) {
                    if v.get("token").and_then(Value::as_str) != Some(token.as_str()) {
                        continue;
                    }
                    let reply = Reply {
                        ok: v.get("ok").and_then(Value::as_bool).unwrap_or(false),
                        data: v
                            .get("data")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    };
                    return Ok(reply);
                }
                self.queue_event(v);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("baresip's reply to {command}"),
                    after: Duration::from_secs(5),
                    log: Some(self.log_path()),
                });
            }
        }
    }

    /// Like [`Baresip::command`], failing when baresip answers `ok: false`.
    pub fn command_ok(&mut self, command: &str, params: Option<&str>) -> Result<Reply> {
        let reply = self.command(command, params)?;
        if reply.ok {
            Ok(reply)
        } else {
            Err(Error::CommandFailed {
                tool: "baresip",
                command: command.to_string(),
                detail: reply.data,
            })
        }
    }

    pub fn dial(&mut self, uri: &str) -> Result<Reply> {
        self.command_ok("dial", Some(uri))
    }
    pub fn accept(&mut self) -> Result<Reply> {
        self.command_ok("accept", None)
    }
    pub fn hangup(&mut self) -> Result<Reply> {
        self.command_ok("hangup", None)
    }
    /// Puts the current call on hold (re-INVITE with `sendonly`).
    pub fn hold(&mut self) -> Result<Reply> {
        self.command_ok("hold", None)
    }
    pub fn resume(&mut self) -> Result<Reply> {
        self.command_ok("resume", None)
    }
    /// Blind transfer of the current call (REFER).
    pub fn transfer(&mut self, uri: &str) -> Result<Reply> {
        self.command_ok("transfer", Some(uri))
    }

    /// Waits until the account's registration is up, asking baresip (`reginfo`) rather than
    /// waiting for `REGISTER_OK`: that event is often sent before ctrl_tcp is connected.
    pub fn wait_registered(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let reply = self.command_ok("reginfo", None)?;
            // One line per account, e.g. `1001@realm ... OK` (colour codes around "OK").
            if reply.data.contains("OK") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("baresip registration (reginfo: {:?})", reply.data),
                    after: timeout,
                    log: Some(self.log_path()),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the next event of `kind` (earlier events of other kinds are consumed).
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Result<Event> {
        self.wait_event_where(kind, timeout, |e| e.kind == kind)
    }

    /// Waits for the next event matching `pred`; `what` names it in the timeout error.
    pub fn wait_event_where(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Result<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(e) = self.events.pop_front() {
                if pred(&e) {
                    return Ok(e);
                }
            }
            if let Some(v) = self.next_message(deadline)? {
                self.queue_event(v);
                continue;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("baresip event {what}"),
                    after: timeout,
                    log: Some(self.log_path()),
                });
            }
        }
    }

    /// Events received and not yet consumed.
    pub fn drain_events(&mut self) -> Result<Vec<Event>> {
        while let Some(v) = self.next_message(Instant::now() + POLL)? {
            self.queue_event(v);
        }
        Ok(self.events.drain(..).collect())
    }

    fn queue_event(&mut self, v: Value) {
        if v.get("event").and_then(Value::as_bool) != Some(true) {
            return;
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        self.events.push_back(Event {
            kind: s("type").unwrap_or_default(),
            call_id: s("id"),
            peer_uri: s("peeruri"),
            param: s("param"),
            raw: v,
        });
    }

    /// Reads one netstring-framed JSON message, or `None` if none arrives before `deadline`.
    fn next_message(&mut self, deadline: Instant) -> Result<Option<Value>> {
        loop {
            if let Some((msg, used)) = parse_netstring(&self.buf)? {
                self.buf.drain(..used);
                let v: Value = serde_json::from_slice(&msg).map_err(|e| Error::Parse {
                    what: "baresip ctrl_tcp message".into(),
                    detail: e.to_string(),
                })?;
                return Ok(Some(v));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.ctrl
                .set_read_timeout(Some(wait))
                .map_err(|e| Error::io("setting ctrl_tcp timeout", e))?;
            let mut chunk = [0u8; 8192];
            match self.ctrl.read(&mut chunk) {
                Ok(0) => {
                    self.guard.ensure_running()?;
                    return Err(Error::io(
                        "reading baresip ctrl_tcp",
                        std::io::Error::new(ErrorKind::UnexpectedEof, "connection closed"),
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("reading baresip ctrl_tcp", e)),
            }
        }
    }

    /// Asks baresip to quit, then makes sure it is gone.
    pub fn quit(mut self) -> Result<()> {
        let _ = self.command("quit", None);
        self.guard.terminate(Duration::from_secs(2)).map(|_| ())
    }
}

/// What baresip counts for a call's audio stream (its RTCP session view).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RtpStats {
    /// RTP packets this phone sent.
    pub sent: u64,
    /// RTP packets received from the far end.
    pub received: u64,
    /// Packets missing from the far end's sequence numbers.
    pub lost: i64,
    /// Interarrival jitter (RFC 3550) of the far end's stream, milliseconds.
    pub jitter_ms: f64,
}

/// Pulls [`RtpStats`] out of baresip 1.0's `audio_debug` text, whose RTCP section reads
/// `member 0x..: lost=N Jitter=Xms RTT=..` / `IP=.. psent=.. rcvd=N` / `TX: packets=N, ..`.
pub fn parse_rtp_stats(text: &str) -> Option<RtpStats> {
    fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        let start = text.find(key)? + key.len();
        let rest = text.get(start..)?;
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        rest.get(..end)
    }
    let member = text.get(text.find("member ")?..)?;
    Some(RtpStats {
        lost: field(member, "lost=")?.parse().ok()?,
        jitter_ms: field(member, "Jitter=")?.parse().ok()?,
        received: field(member, "rcvd=")?.parse().ok()?,
        sent: field(text, "TX: packets=")?.parse().ok()?,
    })
}

/// baresip's `aufile` refuses a WAV whose rate and channel count differ from the codec's
/// (opus: 48 kHz stereo; G.722: 16 kHz; G.711: 8 kHz mono), so the source is converted with
/// sox for the account's first codec when it does not already fit.
fn source_for_codec(config: &BaresipConfig, dir: &Path) -> Result<PathBuf> {
    let first = config.audio_codecs.first().map(|c| c.to_ascii_lowercase());
    let (rate, channels) = match first.as_deref().and_then(|c| c.split('/').next()) {
        Some("opus") => (48000, 2),
        Some("g722") => (16000, 1),
        _ => (8000, 1),
    };
    let fits = crate::audio_compare::wav_info(&config.source_wav)
        .is_ok_and(|i| i.rate == rate && i.channels == channels && i.bits == 16 && !i.float);
    if fits {
        return Ok(config.source_wav.clone());
    }
    let out = dir.join("source.wav");
    let status = Command::new("sox")
        .arg(&config.source_wav)
        .args(["-r", &rate.to_string(), "-c", &channels.to_string()])
        .args(["-b", "16", "-e", "signed"])
        .arg(&out)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| Error::ToolMissing {
            tool: "sox",
            source,
        })?;
    if !status.success() {
        return Err(Error::CommandFailed {
            tool: "sox",
            command: format!("converting {} for baresip", config.source_wav.display()),
            detail: status.to_string(),
        });
    }
    Ok(out)
}

fn account_line(config: &BaresipConfig, sip_port: u16) -> String {
    let answer = match config.answer_mode {
        AnswerMode::Auto => "auto",
        AnswerMode::Manual => "manual",
    };
    // baresip matches `name/rate/channels` with 8000/1 as the default, so a bare `opus`
    // matches nothing; telephone-event is always offered and is no codec of its own.
    let codecs = config
        .audio_codecs
        .iter()
        .filter(|c| !c.eq_ignore_ascii_case("telephone-event"))
        .map(|c| {
            if c.eq_ignore_ascii_case("opus") {
                "opus/48000/2".to_string()
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    match &config.registration {
        None => format!(
            "<sip:{user}@{ip}:{sip_port}>;regint=0;answermode={answer};audio_codecs={codecs}{extra}\n",
            user = config.user,
            ip = config.bind_ip,
            extra = config.extra_account_params,
        ),
        Some(r) => {
            let auth_user = if r.auth_user.is_empty() {
                &config.user
            } else {
                &r.auth_user
            };
            // With a domain, the registrar becomes the outbound proxy every request goes to.
            let (aor_host, outbound) = match &config.domain {
                Some(d) => (d.clone(), format!(";outbound=\"sip:{};lr\"", r.registrar)),
                None => (r.registrar.to_string(), String::new()),
            };
            format!(
                "<sip:{user}@{aor_host};transport=udp>;auth_user={auth_user};auth_pass={pass}{outbound};\
                 regint={regint};answermode={answer};\
                 audio_codecs={codecs}{extra}\n",
                user = config.user,
                pass = r.password,
                regint = r.regint,
                extra = config.extra_account_params,
            )
        }
    }
}

/// Splits one `LEN:PAYLOAD,` netstring off the front of `buf`: `Some((payload, bytes
/// used))`, or `None` when more bytes are needed.
pub fn parse_netstring(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>> {
    let Some(colon) = buf.iter().position(|&b| b == b':') else {
        if buf.len() > 20 {
            return Err(Error::Parse {
                what: "netstring".into(),
                detail: "no length prefix".into(),
            });
        }
        return Ok(None);
    };
    let len: usize = std::str::from_utf8(&buf[..colon])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::Parse {
            what: "netstring".into(),
            detail: format!("bad length {:?}", String::from_utf8_lossy(&buf[..colon])),
        })?;
    let end = colon + 1 + len;
    if buf.len() < end + 1 {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err(Error::Parse {
            what: "netstring".into(),
            detail: "missing ',' terminator".into(),
        });
    }
    Ok(Some((buf[colon + 1..end].to_vec(), end + 1)))
}

#[cfg(test)]
mod tests {
    use super::parse_netstring;

    #[test]
    fn rtp_stats_from_audio_debug() {
        let text = "RTP debug:\n----- RTCP Session: -----\n  cname=x SSRC=0x1/1 rx=8000Hz\n  \
            member 0x5687c1fc: lost=12 Jitter=1.5ms RTT=0.0ms\n  IP=127.0.0.1:4578 psent=249 \
            rcvd=401\n  TX: packets=402, octets=99618\n";
        let s = super::parse_rtp_stats(text).unwrap();
        assert_eq!((s.sent, s.received, s.lost), (402, 401, 12));
        assert!((s.jitter_ms - 1.5).abs() < 1e-9);
        assert!(super::parse_rtp_stats("no stats here").is_none());
    }

    #[test]
    fn netstrings_split_and_wait_for_more() {
        let (p, used) = parse_netstring(b"3:abc,5:hello,").unwrap().unwrap();
        assert_eq!((p.as_slice(), used), (&b"abc"[..], 6));
        assert!(parse_netstring(b"5:hel").unwrap().is_none());
        assert!(parse_netstring(b"3:abcX").is_err());
        assert!(parse_netstring(b"x:abc,").is_err());
    }
}

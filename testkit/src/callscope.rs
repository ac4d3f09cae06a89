//! The real `callscope` binary as a test peer's counterpart: CLI administration against a
//! throw-away data directory, and `callscope serve` with SIP on loopback, ready once it
//! answers an OPTIONS.

use crate::process::{ChildGuard, wait_until};
use crate::{Error, Result};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A callscope data directory plus, once started, the server.
#[derive(Debug)]
pub struct Callscope {
    bin: PathBuf,
    data: tempfile::TempDir,
    sip: SocketAddr,
    http: SocketAddr,
    extra_env: Vec<(String, String)>,
    guard: Option<ChildGuard>,
}

impl Callscope {
    /// A fresh data directory for `bin` (e.g. `env!("CARGO_BIN_EXE_callscope")`), with free
    /// loopback ports for SIP (UDP) and HTTP.
    pub fn new(bin: &Path) -> Result<Self> {
        Ok(Callscope {
            bin: bin.to_path_buf(),
            data: tempfile::Builder::new()
                .prefix("callscope-")
                .tempdir()
                .map_err(|e| Error::io("creating callscope data dir", e))?,
            sip: SocketAddr::from(([127, 0, 0, 1], crate::ports::free_port()?)),
            http: SocketAddr::from(([127, 0, 0, 1], crate::ports::free_port()?)),
            extra_env: Vec::new(),
            guard: None,
        })
    }

    /// An extra `CALLSCOPE_*` variable for `serve` (and the CLI).
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.extra_env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(ChildGuard::pid)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data.path().join("serve.log")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("CALLSCOPE_DATA_DIR", self.data.path())
            .env("CALLSCOPE_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .env_remove("CALLSCOPE_CONFIG")
            .env_remove("CALLSCOPE_DATABASE_URL");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI command (`["user", "create", ...]`) and returns its trimmed stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|e| Error::io(format!("running {}", self.bin.display()), e))?;
        if !out.status.success() {
            return Err(Error::CommandFailed {
                tool: "callscope",
                command: args.join(" "),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Starts `callscope serve` with SIP on UDP only, and waits until an OPTIONS is
    /// answered 200. A build without SIP in `serve` fails here with a clear error.
    pub fn serve(&mut self, timeout: Duration) -> Result<()> {
        let log = self.log_path();
        let mut cmd = self.command();
        cmd.arg("serve")
            .env("CALLSCOPE_HTTP_ADDR", self.http.to_string())
            .env("CALLSCOPE_SIP_ENABLED", "true")
            .env("CALLSCOPE_SIP_UDP_ADDR", self.sip.to_string())
            .env("CALLSCOPE_SIP_TCP_ADDR", "");
        if !self
            .extra_env
            .iter()
            .any(|(k, _)| k == "CALLSCOPE_SIP_RTP_PORTS")
        {
            cmd.env("CALLSCOPE_SIP_RTP_PORTS", "30000-59999");
        }
        let guard = self
            .guard
            .insert(ChildGuard::spawn_logged("callscope", &mut cmd, &log)?);
        let sip = self.sip;
        let probe = UdpSocket::bind("127.0.0.1:0").map_err(|e| Error::io("binding probe", e))?;
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| Error::io("probe timeout", e))?;
        let local = probe
            .local_addr()
            .map_err(|e| Error::io("probe address", e))?;
        let mut n = 0u32;
        wait_until(
            "callscope serve to answer SIP OPTIONS (is SIP wired into `serve`?)",
            timeout,
            Some(&log),
            || {
                guard.ensure_running()?;
                n += 1;
                let _ = probe.send_to(options(sip, local, n).as_bytes(), sip);
                let mut buf = [0u8; 4096];
                Ok(match probe.recv_from(&mut buf) {
                    Ok((len, _)) if buf[..len].starts_with(b"SIP/2.0 200") => Some(()),
                    _ => None,
                })
            },
        )
    }

    /// Stops the server (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&mut self, grace: Duration) -> Result<()> {
        if let Some(mut g) = self.guard.take() {
            g.terminate(grace)?;
        }
        Ok(())
    }
}

fn options(to: SocketAddr, from: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-probe{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{from}>;tag=p{n}\r\nTo: <sip:{to}>\r\n\
         Call-ID: probe-{n}-{port}@testkit\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n",
        port = from.port()
    )
}

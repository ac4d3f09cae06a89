//! A real `callscope serve` for end-to-end tests: a fresh data directory, an organization and
//! SIP users created with the CLI, the server on free 127.0.0.1 ports, its /metrics read over
//! HTTP and its database read with sqlx. Stopped (SIGTERM, then SIGKILL) by PID on drop.
//!
//! Temporary: replaced by the shared harness in `callscope_testkit` when that lands.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use callscope_testkit::process::{ChildGuard, wait_until};

pub const BIN: &str = env!("CARGO_BIN_EXE_callscope");

/// What the server is started with (the TOML `[sip.auth]`/`[sip.security]` sections).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// e.g. `["MD5"]`: baresip 1.0 gives up when a SHA-256 challenge is present.
    pub challenge_algorithms: Vec<String>,
    pub auth_failures_before_ban: u32,
    pub ban_duration_s: u64,
    pub requests_per_second: f64,
    pub request_burst: f64,
    /// `[sip.calls]`: keepalive OPTIONS interval and timeout (seconds; 0 disables).
    pub keepalive_interval_s: u64,
    pub keepalive_timeout_s: u64,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            challenge_algorithms: vec!["MD5".into()],
            auth_failures_before_ban: 10,
            ban_duration_s: 600,
            requests_per_second: 20.0,
            request_burst: 40.0,
            keepalive_interval_s: 30,
            keepalive_timeout_s: 10,
        }
    }
}

pub struct Server {
    guard: Option<ChildGuard>,
    dir: tempfile::TempDir,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub org: String,
    pub realm: String,
}

fn cli(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("CALLSCOPE_DATA_DIR", data)
        .env("CALLSCOPE_LOG", "warn")
        .env_remove("CALLSCOPE_CONFIG")
        .env_remove("CALLSCOPE_DATABASE_URL");
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().expect("run callscope");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Server {
    /// Creates the organization and `users` (name, extension, password), then starts serving.
    pub fn start(options: &ServerOptions, users: &[(&str, &str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let org = run_ok(cli(&data).args(["org", "create", "E2E Org"]));
        let realm = run_ok(cli(&data).args(["org", "realm", "--org", &org]));
        for (name, ext, pw) in users {
            run_ok(cli(&data).args([
                "user",
                "create",
                "--org",
                &org,
                "--name",
                name,
                "--extension",
                ext,
                "--password",
                pw,
            ]));
        }
        let sip_port = callscope_testkit::ports::free_port().unwrap();
        let http_port = callscope_testkit::ports::free_port().unwrap();
        let rtp = callscope_testkit::ports::free_port_run(40).unwrap();
        let sip = SocketAddr::from(([127, 0, 0, 1], sip_port));
        let http = SocketAddr::from(([127, 0, 0, 1], http_port));
        let algs = options
            .challenge_algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "data_dir = {data:?}\n\
             [http]\naddr = \"{http}\"\n\
             [sip]\nenabled = true\nudp_addr = \"{sip}\"\ntcp_addr = \"{sip}\"\n\
             rtp_port_min = {rtp}\nrtp_port_max = {rtp_max}\n\
             [sip.auth]\nchallenge_algorithms = [{algs}]\n\
             [sip.security]\nauth_failures_before_ban = {ban}\nban_duration_s = {ban_s}\n\
             requests_per_second = {rps:?}\nrequest_burst = {burst:?}\n\
             [sip.calls]\nkeepalive_interval_s = {ka}\nkeepalive_timeout_s = {ka_t}\n",
            ka = options.keepalive_interval_s,
            ka_t = options.keepalive_timeout_s,
            data = data.display().to_string(),
            rtp_max = rtp + 39,
            ban = options.auth_failures_before_ban,
            ban_s = options.ban_duration_s,
            rps = options.requests_per_second,
            burst = options.request_burst,
        );
        let config_path = dir.path().join("callscope.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("serve.log");
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env("CALLSCOPE_LOG", "info,callscope_sip=debug")
            .env_remove("CALLSCOPE_DATA_DIR")
            .env_remove("CALLSCOPE_DATABASE_URL");
        let mut guard = ChildGuard::spawn_logged("callscope", &mut cmd, &log).unwrap();
        wait_until(
            "callscope /healthz",
            Duration::from_secs(30),
            Some(&log),
            || {
                guard.ensure_running()?;
                Ok(http_get(http, "/healthz").ok().filter(|(s, _)| *s == 200))
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "callscope did not start: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Server {
            guard: Some(guard),
            dir,
            sip,
            http,
            org,
            realm,
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.as_ref().map(|g| g.pid()).unwrap_or(0)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Every `callscope_sip_*` gauge (and any other unlabelled sample) from /metrics.
    pub fn metrics(&self) -> HashMap<String, f64> {
        let (status, body) = http_get(self.http, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    pub fn metric(&self, name: &str) -> f64 {
        self.metrics().get(name).copied().unwrap_or(0.0)
    }

    /// Open file descriptors (sockets included) of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Open sockets of the server process (listeners, dialogs' transports, HTTP clients).
    pub fn socket_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|t| t.to_string_lossy().starts_with("socket:"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// What each open descriptor points to (`socket:[…]`, a file path, `anon_inode:…`).
    pub fn fd_targets(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .map(|t| t.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Names of the server's OS threads (`tokio-runtime-w`, `sqlx-sqlite-wor`, ...).
    pub fn thread_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                    .map(|n| n.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// OS threads of the server process.
    pub fn thread_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Rows of a query over the server's database, each column rendered as text.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let url = format!(
            "sqlite://{}?mode=ro",
            self.dir.path().join("data/callscope.db").display()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Row;
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_all(&pool)
                .await
                .unwrap();
            let out = rows
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            r.try_get::<Option<String>, _>(i)
                                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                                .or_else(|_| {
                                    r.try_get::<Option<i64>, _>(i)
                                        .map(|v| v.map_or("NULL".into(), |v| v.to_string()))
                                })
                                .unwrap_or_else(|e| format!("<{e}>"))
                        })
                        .collect()
                })
                .collect();
            pool.close().await;
            out
        })
    }

    /// Polls `query` until `pred` holds for its rows (bounded by `timeout`).
    pub fn wait_rows(
        &self,
        what: &str,
        sql: &str,
        timeout: Duration,
        mut pred: impl FnMut(&[Vec<String>]) -> bool,
    ) -> Vec<Vec<String>> {
        let mut last = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            last = self.query(sql);
            if pred(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; last rows {last:?}");
    }

    /// Stops the server (SIGTERM) and checks it exits cleanly.
    pub fn stop(mut self) {
        if let Some(mut g) = self.guard.take() {
            let status = g.terminate(Duration::from_secs(15)).unwrap();
            assert!(status.success(), "callscope exited with {status}");
        }
    }
}

/// A minimal HTTP/1.1 GET over a plain socket (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

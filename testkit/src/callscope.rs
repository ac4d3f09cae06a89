//! The real `callscope` binary as a test fixture: a fresh data directory provisioned through
//! the CLI (`migrate`, `org create`, `apikey create`, `user create`, `trunk create`,
//! `route create`), then `callscope serve` with HTTP and SIP on free loopback ports.
//!
//! ```no_run
//! use callscope_testkit::callscope::Callscope;
//! // In the root crate's integration tests: env!("CARGO_BIN_EXE_callscope").
//! let cs = Callscope::builder("target/debug/callscope")
//!     .user("1001", "alice-secret-1")
//!     .trunk("127.0.0.2:5090".parse().unwrap(), &["127.0.0.2"])
//!     .route_to_user("+14155550100", "1001")
//!     .start()
//!     .unwrap();
//! let (status, call) = cs.http().get("/api/v1/calls?limit=5").unwrap();
//! ```
//!
//! The binary path only exists in the root crate's integration tests
//! (`env!("CARGO_BIN_EXE_callscope")`), so the caller passes it in.
//!
//! Trunk traffic is told apart by source address: give the trunk's ACL and its far end
//! (e.g. a SIPp on 127.0.0.2) a different loopback address from the phones (127.0.0.1), or
//! every phone's INVITE looks like it came from the trunk.

use crate::process::{ChildGuard, wait_until};
use crate::{Error, Result};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long `serve` may take to answer `/healthz` (a debug build, a cold SQLite file).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// RTP ports reserved per server.
const RTP_PORTS: u16 = 40;

/// A SIP user (agent) created with `callscope user create`.
#[derive(Debug, Clone)]
pub struct UserSpec {
    pub extension: String,
    pub password: String,
    pub name: String,
}

/// A trunk created with `callscope trunk create`.
#[derive(Debug, Clone)]
pub struct TrunkSpec {
    pub name: String,
    /// Where outbound calls go (the far end, e.g. a SIPp `uas`).
    pub host: SocketAddr,
    /// Source addresses/networks allowed to send inbound calls.
    pub inbound_acl: Vec<String>,
    /// Outbound digest credentials.
    pub credentials: Option<(String, String)>,
}

/// The target of an inbound route (`callscope route create`).
#[derive(Debug, Clone)]
pub enum RouteTarget {
    User(String),
    RingGroup {
        extensions: Vec<String>,
        strategy: &'static str,
        timeout_s: u32,
    },
    Reject(u16),
}

/// What to provision before `serve` starts.
#[derive(Debug, Clone)]
pub struct CallscopeBuilder {
    bin: PathBuf,
    org_name: String,
    users: Vec<UserSpec>,
    trunks: Vec<TrunkSpec>,
    routes: Vec<(String, RouteTarget)>,
    env: Vec<(String, String)>,
    config_toml: Option<String>,
}

impl CallscopeBuilder {
    /// Adds a user whose extension is also its SIP username.
    pub fn user(mut self, extension: &str, password: &str) -> Self {
        self.users.push(UserSpec {
            extension: extension.into(),
            password: password.into(),
            name: format!("Agent {extension}"),
        });
        self
    }

    /// Adds a trunk named `carrier-N` without outbound credentials.
    pub fn trunk(mut self, host: SocketAddr, inbound_acl: &[&str]) -> Self {
        let name = format!("carrier-{}", self.trunks.len() + 1);
        self.trunks.push(TrunkSpec {
            name,
            host,
            inbound_acl: inbound_acl.iter().map(|s| s.to_string()).collect(),
            credentials: None,
        });
        self
    }

    /// Adds a fully specified trunk.
    pub fn trunk_spec(mut self, spec: TrunkSpec) -> Self {
        self.trunks.push(spec);
        self
    }

    /// Routes `did` to the user with `extension`.
    pub fn route_to_user(self, did: &str, extension: &str) -> Self {
        self.route(did, RouteTarget::User(extension.into()))
    }

    pub fn route(mut self, did: &str, target: RouteTarget) -> Self {
        self.routes.push((did.into(), target));
        self
    }

    /// An extra environment variable for every invocation (e.g. `CALLSCOPE_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A configuration file (TOML, e.g. `[sip.security]` or `[sip.calls]` sections) for every
    /// invocation, passed as `CALLSCOPE_CONFIG`. The harness's own settings (addresses, data
    /// directory, RTP ports) are environment variables, which take precedence over the file.
    pub fn config_toml(mut self, toml: &str) -> Self {
        self.config_toml = Some(toml.into());
        self
    }

    /// Provisions a fresh data directory through the CLI and starts `serve`.
    pub fn start(self) -> Result<Callscope> {
        let dir = tempfile::Builder::new()
            .prefix("callscope-e2e-")
            .tempdir()
            .map_err(|e| Error::io("creating the data dir", e))?;
        let http_port = crate::ports::free_port()?;
        let sip_port = crate::ports::free_port()?;
        // A run of ports of its own, so tests running in parallel never share RTP ports.
        let rtp_min = crate::ports::free_port_run(RTP_PORTS)?;
        let mut env = vec![(
            "CALLSCOPE_SIP_RTP_PORTS".to_string(),
            format!("{rtp_min}-{}", rtp_min + RTP_PORTS - 1),
        )];
        if let Some(toml) = &self.config_toml {
            let path = dir.path().join("callscope.toml");
            std::fs::write(&path, toml).map_err(|e| Error::io("writing the config file", e))?;
            env.push(("CALLSCOPE_CONFIG".into(), path.display().to_string()));
        }
        env.extend(self.env.iter().cloned());
        let mut cs = Callscope {
            bin: self.bin.clone(),
            data_dir: dir.path().join("data"),
            log_path: dir.path().join("serve.log"),
            dir,
            env,
            http_addr: SocketAddr::from(([127, 0, 0, 1], http_port)),
            sip_addr: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            org_id: String::new(),
            realm: String::new(),
            api_key: String::new(),
            user_ids: Vec::new(),
            trunk_ids: Vec::new(),
            route_ids: Vec::new(),
            server: None,
            starts: 0,
        };
        cs.cli(&["migrate"])?;
        cs.org_id = cs.cli(&["org", "create", &self.org_name])?;
        cs.realm = cs.cli(&["org", "realm", "--org", &cs.org_id.clone()])?;
        cs.api_key = cs.cli(&["apikey", "create", "--org", &cs.org_id.clone()])?;
        let org = cs.org_id.clone();
        for u in &self.users {
            let id = cs.cli(&[
                "user",
                "create",
                "--org",
                &org,
                "--name",
                &u.name,
                "--extension",
                &u.extension,
                "--password",
                &u.password,
            ])?;
            cs.user_ids.push((u.extension.clone(), id));
        }
        for t in &self.trunks {
            let host = t.host.to_string();
            let mut args: Vec<&str> = vec![
                "trunk", "create", "--org", &org, "--name", &t.name, "--host", &host,
            ];
            if let Some((user, pass)) = &t.credentials {
                args.extend(["--username", user, "--password", pass]);
            }
            for acl in &t.inbound_acl {
                args.extend(["--inbound-acl", acl]);
            }
            let id = cs.cli(&args)?;
            cs.trunk_ids.push((t.name.clone(), id));
        }
        for (did, target) in &self.routes {
            let mut args: Vec<String> = ["route", "create", "--org", &org, "--did", did]
                .iter()
                .map(|s| s.to_string())
                .collect();
            match target {
                RouteTarget::User(ext) => args.extend(["--user".into(), ext.clone()]),
                RouteTarget::RingGroup {
                    extensions,
                    strategy,
                    timeout_s,
                } => args.extend([
                    "--ring-group".into(),
                    extensions.join(","),
                    "--strategy".into(),
                    strategy.to_string(),
                    "--timeout".into(),
                    timeout_s.to_string(),
                ]),
                RouteTarget::Reject(code) => args.extend(["--reject".into(), code.to_string()]),
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let id = cs.cli(&refs)?;
            cs.route_ids.push((did.clone(), id));
        }
        cs.spawn_server()?;
        Ok(cs)
    }
}

/// A provisioned, running `callscope serve`; killed by PID when dropped.
#[derive(Debug)]
pub struct Callscope {
    bin: PathBuf,
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    env: Vec<(String, String)>,
    http_addr: SocketAddr,
    sip_addr: SocketAddr,
    org_id: String,
    realm: String,
    api_key: String,
    user_ids: Vec<(String, String)>,
    trunk_ids: Vec<(String, String)>,
    route_ids: Vec<(String, String)>,
    server: Option<ChildGuard>,
    starts: u32,
}

impl Callscope {
    /// A builder for one organization ("E2E Org") with nothing else provisioned yet.
    pub fn builder(bin: impl Into<PathBuf>) -> CallscopeBuilder {
        CallscopeBuilder {
            bin: bin.into(),
            org_name: "E2E Org".into(),
            users: Vec::new(),
            trunks: Vec::new(),
            routes: Vec::new(),
            env: Vec::new(),
            config_toml: None,
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(self.dir.path())
            .env("CALLSCOPE_DATA_DIR", &self.data_dir)
            .env("CALLSCOPE_HTTP_ADDR", self.http_addr.to_string())
            .env("CALLSCOPE_SIP_ENABLED", "true")
            .env("CALLSCOPE_SIP_UDP_ADDR", self.sip_addr.to_string())
            .env("CALLSCOPE_SIP_TCP_ADDR", self.sip_addr.to_string())
            .env("CALLSCOPE_WORKERS", "1")
            // The tests' webhook receivers listen on loopback, which callscope refuses to
            // connect to by default.
            .env("CALLSCOPE_EGRESS_ALLOW_PRIVATE_NETWORKS", "true")
            .env("CALLSCOPE_LOG", "info,rsipstack=warn")
            .env("RUST_BACKTRACE", "1")
            .env_remove("CALLSCOPE_CONFIG")
            .env_remove("CALLSCOPE_DATABASE_URL")
            .env_remove("CALLSCOPE_ASR_MODEL_PATH");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs a CLI subcommand on this data directory; its trimmed stdout on success.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => Error::ToolMissing {
                    tool: "callscope",
                    source,
                },
                _ => Error::io("running callscope", source),
            })?;
        if !out.status.success() {
            return Err(Error::CommandFailed {
                tool: "callscope",
                command: args.join(" "),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn spawn_server(&mut self) -> Result<()> {
        self.starts += 1;
        // One log per start, so a restart does not truncate the first run's evidence.
        self.log_path = self.dir.path().join(format!("serve-{}.log", self.starts));
        let mut cmd = self.command();
        cmd.arg("serve").stdin(std::process::Stdio::null());
        let mut guard = ChildGuard::spawn_logged("callscope", &mut cmd, &self.log_path)?;
        let http = self.http();
        let log = self.log_path.clone();
        wait_until("callscope /healthz", START_TIMEOUT, Some(&log), || {
            guard.ensure_running()?;
            if TcpStream::connect_timeout(&self.http_addr, Duration::from_millis(200)).is_err() {
                return Ok(None);
            }
            Ok(matches!(http.get("/healthz"), Ok((200, _))).then_some(()))
        })?;
        self.server = Some(guard);
        Ok(())
    }

    /// SIGKILLs the server (no shutdown work at all), reaping it.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut guard) = self.server.take() {
            crate::process::signal(guard.pid(), libc::SIGKILL);
            guard.wait_timeout(Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&mut self, grace: Duration) -> Result<()> {
        self.shutdown(grace).map(|_| ())
    }

    /// Stops the server like [`Self::stop`] and returns how it exited (`None` when it was not
    /// running), so a test can insist on a clean shutdown.
    pub fn shutdown(&mut self, grace: Duration) -> Result<Option<std::process::ExitStatus>> {
        match self.server.take() {
            Some(mut guard) => guard.terminate(grace).map(Some),
            None => Ok(None),
        }
    }

    /// Starts `serve` again on the same data directory and ports (after [`Self::kill9`] or
    /// [`Self::stop`]; a running server is stopped first).
    pub fn restart(&mut self) -> Result<()> {
        self.stop(Duration::from_secs(10))?;
        self.spawn_server()
    }

    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(ChildGuard::pid)
    }

    /// Where SIP listens (UDP and TCP), 127.0.0.1.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The organization's SIP digest realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The id of the user with `extension`.
    pub fn user_id(&self, extension: &str) -> Option<&str> {
        find(&self.user_ids, extension)
    }

    /// The id of the trunk named `name` (`carrier-1`, ... for [`CallscopeBuilder::trunk`]).
    pub fn trunk_id(&self, name: &str) -> Option<&str> {
        find(&self.trunk_ids, name)
    }

    /// The id of the route created for `did` (as given to the builder).
    pub fn route_id(&self, did: &str) -> Option<&str> {
        find(&self.route_ids, did)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The current server's log (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A blocking JSON client for this server's API, authenticated with the API key.
    pub fn http(&self) -> crate::http::HttpClient {
        crate::http::HttpClient::new(self.base_url(), Some(self.api_key.clone()))
    }

    /// Polls `GET /api/v1/calls/{id}` until `done(call)` holds (e.g. an `ended_at` is set).
    pub fn wait_call(
        &self,
        id: &str,
        timeout: Duration,
        mut done: impl FnMut(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let http = self.http();
        let path = format!("/api/v1/calls/{id}");
        wait_until(
            &format!("call {id}"),
            timeout,
            Some(&self.log_path),
            || match http.get(&path)? {
                (200, v) if done(&v) => Ok(Some(v)),
                _ => Ok(None),
            },
        )
    }
}

fn find<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Callscope {
    /// Registers `receiver` as a webhook endpoint for `events` (empty: all) and hands it the
    /// secret the API returns. Returns the endpoint id.
    pub fn register_webhook(
        &self,
        receiver: &crate::webhook::WebhookReceiver,
        events: &[&str],
    ) -> Result<String> {
        let events: serde_json::Value = if events.is_empty() {
            "*".into()
        } else {
            events.iter().map(|e| serde_json::Value::from(*e)).collect()
        };
        let (status, body) = self.http().post(
            "/api/v1/webhook-endpoints",
            &serde_json::json!({ "url": receiver.url(), "events": events }),
        )?;
        let (Some(id), Some(secret)) = (body["id"].as_str(), body["secret"].as_str()) else {
            return Err(Error::Parse {
                what: "webhook endpoint creation".into(),
                detail: format!("status {status}: {body}"),
            });
        };
        receiver.set_secret(secret);
        Ok(id.to_string())
    }
}

/// Looking inside the running server: its metrics, its process and its database.
impl Callscope {
    /// Every unlabelled sample of `/metrics` (`callscope_sip_*` counters and gauges).
    pub fn metrics(&self) -> Result<HashMap<String, f64>> {
        let (status, body) = self.http().get_text("/metrics")?;
        if status != 200 {
            return Err(Error::Parse {
                what: "GET /metrics".into(),
                detail: format!("status {status}: {body}"),
            });
        }
        Ok(parse_metrics(&body))
    }

    /// One sample of `/metrics`; 0 when absent (a counter not yet incremented).
    pub fn metric(&self, name: &str) -> Result<f64> {
        Ok(self.metrics()?.get(name).copied().unwrap_or(0.0))
    }

    /// What each open descriptor of the server points to (`socket:[…]`, a path,
    /// `anon_inode:…`), sorted; empty when the server is not running.
    pub fn fd_targets(&self) -> Vec<String> {
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .map(|t| t.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Open sockets of the server (listeners, transports, HTTP and database connections).
    pub fn socket_count(&self) -> usize {
        self.fd_targets()
            .iter()
            .filter(|t| t.starts_with("socket:"))
            .count()
    }

    /// Names of the server's OS threads (`tokio-runtime-w`, `sqlx-sqlite-wor`, ...), sorted.
    pub fn thread_names(&self) -> Vec<String> {
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                    .map(|n| n.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Rows of a read-only query over the server's SQLite database, every column rendered
    /// as text (`NULL` for null). For checking what the server stored that the API does not
    /// show (the SIP leg of a record, timeline kinds).
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let url = format!(
            "sqlite://{}?mode=ro",
            self.data_dir.join("callscope.db").display()
        );
        let sql = sql.to_string();
        crate::http::runtime()?.block_on(async move {
            use sqlx::Row;
            let db_err =
                |e: sqlx::Error| Error::io("querying the database", std::io::Error::other(e));
            let pool = sqlx::SqlitePool::connect(&url).await.map_err(db_err)?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .map_err(db_err);
            pool.close().await;
            Ok(rows?
                .iter()
                .map(|r| (0..r.len()).map(|i| column_text(r, i)).collect())
                .collect())
        })
    }

    /// Polls [`Self::query`] every 100 ms until `done` holds for its rows (bounded by
    /// `timeout`); the rows that satisfied it.
    pub fn wait_rows(
        &self,
        what: &str,
        sql: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Vec<String>]) -> bool,
    ) -> Result<Vec<Vec<String>>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let rows = self.query(sql)?;
            if done(&rows) {
                return Ok(rows);
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{what} (last rows {rows:?})"),
                    after: timeout,
                    log: Some(self.log_path.clone()),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn column_text(row: &sqlx::sqlite::SqliteRow, i: usize) -> String {
    use sqlx::Row;
    row.try_get::<Option<String>, _>(i)
        .map(|v| v.unwrap_or_else(|| "NULL".into()))
        .or_else(|_| {
            row.try_get::<Option<i64>, _>(i)
                .map(|v| v.map_or("NULL".into(), |v| v.to_string()))
        })
        .or_else(|_| {
            row.try_get::<Option<f64>, _>(i)
                .map(|v| v.map_or("NULL".into(), |v| v.to_string()))
        })
        .unwrap_or_else(|e| format!("<{e}>"))
}

/// `name value` lines of the Prometheus text format (labelled samples keep their labels in
/// the name); comments and unparsable lines are skipped.
fn parse_metrics(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

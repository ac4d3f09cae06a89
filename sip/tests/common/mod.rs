//! The call tests' setup: callscope's real SIP server (`SipServer::start`) on 127.0.0.1 with
//! the B2BUA as call handler, in-memory implementations of the directory and location
//! traits (real implementations over maps, not doubles of something that could run here),
//! and SIPp processes driven by scenarios the tests write.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callscope_sip::call::{CallConfig, CallManager};
use callscope_sip::config::SipConfig;
use callscope_sip::directory::{Destination, DirResult, Directory, RouteTarget, SipTrunk, SipUser};
use callscope_sip::events::CallEvent;
use callscope_sip::handler::{CallHandler, Locator, RegisteredContact, SipContext};
use callscope_sip::server::SipServer;
use callscope_sip::signalling_media::{SignallingMediaConfig, SignallingOnlyMedia};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

pub const ORG: &str = "org-1";

#[derive(Default)]
pub struct MemDirectory {
    pub trunk: Mutex<Option<SipTrunk>>,
    pub dids: Mutex<HashMap<String, Destination>>,
    pub extensions: Mutex<HashMap<String, String>>, // extension -> user id
}

impl Directory for MemDirectory {
    fn user_by_username<'a>(
        &'a self,
        _realm: &'a str,
        _username: &'a str,
    ) -> BoxFuture<'a, DirResult<Option<SipUser>>> {
        async { Ok(None) }.boxed()
    }
    fn trunk_by_source(&self, source: IpAddr) -> BoxFuture<'_, DirResult<Option<SipTrunk>>> {
        let trunk = self.trunk.lock().unwrap().clone();
        async move { Ok(trunk.filter(|t| t.inbound_acl.iter().any(|(ip, _)| *ip == source))) }
            .boxed()
    }
    fn route_from_user<'a>(
        &'a self,
        _org_id: &'a str,
        dialled: &'a str,
    ) -> BoxFuture<'a, DirResult<Destination>> {
        let found = self.extensions.lock().unwrap().get(dialled).cloned();
        let did = self.dids.lock().unwrap().get(dialled).cloned();
        async move {
            Ok(match (found, did) {
                (Some(user_id), _) => Destination::Internal(RouteTarget::User { user_id }),
                (None, Some(destination)) => destination,
                _ => Destination::NotFound,
            })
        }
        .boxed()
    }
    fn route_inbound<'a>(
        &'a self,
        _trunk: &'a SipTrunk,
        did: &'a str,
    ) -> BoxFuture<'a, DirResult<Destination>> {
        let destination = self
            .dids
            .lock()
            .unwrap()
            .get(did)
            .cloned()
            .unwrap_or(Destination::NotFound);
        async move { Ok(destination) }.boxed()
    }
    fn realm_of_org<'a>(&'a self, _org_id: &'a str) -> BoxFuture<'a, DirResult<Option<String>>> {
        async { Ok(Some("test.callscope".to_string())) }.boxed()
    }
}

#[derive(Default)]
pub struct MemLocator {
    pub contacts: Mutex<HashMap<String, Vec<RegisteredContact>>>,
}

impl MemLocator {
    pub fn register(&self, user_id: &str, user: &str, addr: SocketAddr) {
        self.contacts
            .lock()
            .unwrap()
            .entry(user_id.to_string())
            .or_default()
            .push(RegisteredContact {
                uri: format!("sip:{user}@{addr}"),
                received: addr,
                transport: rsipstack::sip::Transport::Udp,
                expires_at_ms: i64::MAX,
            });
    }
}

impl Locator for MemLocator {
    fn contacts(&self, _org_id: &str, user_id: &str) -> Vec<RegisteredContact> {
        self.contacts
            .lock()
            .unwrap()
            .get(user_id)
            .cloned()
            .unwrap_or_default()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub manager: CallManager,
    pub events: mpsc::Receiver<CallEvent>,
    pub media: Arc<SignallingOnlyMedia>,
    pub directory: Arc<MemDirectory>,
    pub locator: Arc<MemLocator>,
    server: Option<SipServer>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            tokio::spawn(server.shutdown());
        }
    }
}

/// The real SIP server (`SipServer::start`: UDP transport on an ephemeral loopback port,
/// transactions, the dispatcher, the digest/ACL authenticator and the flood guard) with the
/// B2BUA as its call handler. The B2BUA finds users' contacts through an in-memory
/// location service: the SIPp phones here do not REGISTER, their contacts are set by the
/// test. Loopback is exempt from the flood guard so that load tests measure calls.
pub async fn start_server(config: CallConfig) -> TestServer {
    let directory = Arc::new(MemDirectory::default());
    *directory.trunk.lock().unwrap() = Some(SipTrunk {
        org_id: ORG.into(),
        trunk_id: "trunk-1".into(),
        name: "loopback".into(),
        outbound_proxy: "127.0.0.1:9".parse().unwrap(),
        username: None,
        password: None,
        inbound_acl: vec![(IpAddr::from([127, 0, 0, 1]), 32)],
    });
    let locator = Arc::new(MemLocator::default());
    let media = Arc::new(SignallingOnlyMedia::new(SignallingMediaConfig::loopback(
        30000, 30999,
    )));
    let (events_tx, events) = mpsc::channel(10_000);
    let mut sip_config = SipConfig {
        udp_addr: Some("127.0.0.1:0".parse().unwrap()),
        tcp_addr: None,
        ..SipConfig::default()
    };
    sip_config.security.exempt = vec![IpAddr::from([127, 0, 0, 1])];
    let slot: Arc<Mutex<Option<CallManager>>> = Arc::default();
    let manager_slot = slot.clone();
    let call_locator = locator.clone();
    let server = SipServer::start(
        sip_config,
        directory.clone(),
        media.clone(),
        events_tx,
        move |ctx| {
            let own = SipContext {
                endpoint: ctx.endpoint.clone(),
                dialog_layer: ctx.dialog_layer.clone(),
                directory: ctx.directory.clone(),
                locator: call_locator,
                authenticator: ctx.authenticator.clone(),
                media: ctx.media.clone(),
                events: ctx.events.clone(),
                public_addr: ctx.public_addr,
            };
            let manager = CallManager::new(own, config);
            *manager_slot.lock().unwrap() = Some(manager.clone());
            Arc::new(manager) as Arc<dyn CallHandler>
        },
    )
    .await
    .expect("SIP server starts on loopback");
    let manager = slot.lock().unwrap().take().expect("call handler created");
    let addr = server.udp_addr().expect("UDP address");
    TestServer {
        addr,
        manager,
        events,
        media,
        directory,
        locator,
        server: Some(server),
    }
}

/// A free UDP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn scenario_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("callscope-sipp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write_scenario(name: &str, xml: &str) -> PathBuf {
    let path = scenario_dir().join(name);
    std::fs::write(&path, xml).unwrap();
    path
}

/// A SIPp process stopped (by PID) when dropped. Never started with `-bg`: a daemonised
/// SIPp is no longer our child and would outlive the test.
pub struct Sipp {
    child: Child,
    workdir: PathBuf,
}

impl Sipp {
    pub fn spawn(args: &[&str], workdir: &Path) -> Sipp {
        let child = Command::new("sipp")
            .args(args)
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp (Debian package sip-tester) must be installed");
        Sipp {
            child,
            workdir: workdir.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL by PID (a phone that dies without a word).
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }

    /// Wait (bounded) for exit; returns the exit code.
    pub async fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIPp's logs of this process (`-trace_msg`, `-trace_err`), concatenated.
    fn trace(&self) -> String {
        let marker = format!("_{}_", self.pid());
        let mut trace = String::new();
        if let Ok(entries) = std::fs::read_dir(&self.workdir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.contains(&marker) {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    trace.push_str(&format!("==== {name}\n{text}\n"));
                }
            }
        }
        trace
    }

    /// Wait (bounded) and panic with SIPp's own message trace unless it exited 0 (every
    /// call of its scenario succeeded). Returns the trace for further checks.
    pub async fn expect_success(mut self, limit: Duration, what: &str) -> String {
        let code = self.wait(limit).await;
        let trace = self.trace();
        assert_eq!(code, Some(0), "SIPp {what} failed, trace:\n{trace}");
        trace
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
        }
        self.child.wait().ok();
    }
}

/// A SIPp UAS playing `xml` for one call on a free port of 127.0.0.1, answering stray
/// OPTIONS/NOTIFY/INFO/UPDATE itself (`-aa`). Returns it and its address.
pub async fn sipp_uas(name: &str, xml: &str) -> (Sipp, SocketAddr) {
    let scenario = write_scenario(&format!("{name}.xml"), xml);
    let port = free_port();
    let port_s = port.to_string();
    let sipp = Sipp::spawn(
        &[
            "-sf",
            scenario.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-p",
            &port_s,
            "-m",
            "1",
            "-aa",
            "-nostdin",
            "-trace_msg",
            "-trace_err",
            "-timeout",
            "40s",
            "-timeout_error",
        ],
        &scenario_dir(),
    );
    // Let it bind before anything is sent to it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (sipp, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A SIPp UAC playing `xml` once against `server`, dialling `service`.
pub fn sipp_uac(name: &str, xml: &str, server: SocketAddr, service: &str) -> Sipp {
    let scenario = write_scenario(&format!("{name}.xml"), xml);
    let port_s = free_port().to_string();
    let target = server.to_string();
    Sipp::spawn(
        &[
            "-sf",
            scenario.to_str().unwrap(),
            &target,
            "-s",
            service,
            "-i",
            "127.0.0.1",
            "-p",
            &port_s,
            "-m",
            "1",
            "-aa",
            "-nostdin",
            "-trace_msg",
            "-trace_err",
            "-timeout",
            "40s",
            "-timeout_error",
        ],
        &scenario_dir(),
    )
}

/// Collect events until `Ended` for `n` calls or the limit passes.
pub async fn collect_events(
    events: &mut mpsc::Receiver<CallEvent>,
    ended: usize,
    limit: Duration,
) -> Vec<CallEvent> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut seen = 0;
    while seen < ended {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                if matches!(event, CallEvent::Ended { .. }) {
                    seen += 1;
                }
                out.push(event);
            }
            _ => break,
        }
    }
    out
}

/// Wait (bounded) until the manager has no calls and no tasks left.
pub async fn wait_idle(server: &TestServer, limit: Duration) -> (usize, usize) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let state = (server.manager.live_calls(), server.manager.live_tasks());
        if state == (0, 0) || std::time::Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn quiet_config() -> CallConfig {
    CallConfig {
        no_answer_timeout: Duration::from_secs(5),
        keepalive_interval: None,
        ..CallConfig::default()
    }
}

//! The SIP server: binds the UDP/TCP transports, runs rsipstack's endpoint (RFC 3261
//! transactions and timers, `rport`/`received` per RFC 3581) and dispatches each new server
//! transaction: REGISTER → registrar, OPTIONS → 200, call-related methods → the
//! [`CallHandler`], anything else → 405.
//!
//! What happens to malformed input, per transport:
//! - UDP: every datagram goes through [`crate::validate::classify_message`] inside our
//!   socket wrapper, before rsipstack parses it. A refused request that can be addressed
//!   (Via, From, To, Call-ID and CSeq lines present) gets a stateless 400 (or 416/505/513)
//!   sent to the datagram's source address and port; anything else (a refused response, an
//!   ACK, an unaddressable request) is dropped. Both are counted in `parse_errors`.
//! - TCP: rsipstack frames and parses the stream itself. A message it cannot frame or parse
//!   makes it close the connection (counted nowhere by rsipstack; we cannot see those
//!   bytes). A message that parses but fails [`crate::validate::validate_parsed`] (missing
//!   or broken mandatory headers) is answered with 400 on the connection and counted.
//! - Packets from banned sources are dropped before parsing (UDP) and new TCP connections
//!   from them are refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::headers::Header;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Method, Request, Response, SipMessage, StatusCode};
use rsipstack::transaction::endpoint::{EndpointInnerRef, TransportEventInspector};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{TransportEvent, TransportLayer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::DigestAuthenticator;
use crate::config::SipConfig;
use crate::directory::Directory;
use crate::events::CallEvent;
use crate::handler::{CallHandler, Locator, RequestAuthenticator, SipContext};
use crate::media::MediaControl;
use crate::registrar::{LocationService, Registrar};
use crate::security::{Admission, SharedGuard};
use crate::validate::{MAX_MESSAGE_BYTES, bad_request_for, classify_message, validate_parsed};

/// Methods we answer (the Allow header of OPTIONS and 405 responses).
pub const ALLOWED_METHODS: &str =
    "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, REFER, UPDATE, INFO, NOTIFY, PRACK";
/// Body types we accept.
pub const ACCEPTED_BODIES: &str = "application/sdp";
/// Extensions we support (Supported header of OPTIONS).
pub const SUPPORTED_EXTENSIONS: &str = "timer, replaces";

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot bind {transport} on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no transport configured (udp_addr and tcp_addr are both unset)")]
    NoTransport,
    #[error("SIP stack error: {0}")]
    Stack(String),
}

/// Counters for /metrics. All monotonic.
#[derive(Debug, Default)]
pub struct SipCounters {
    /// Messages received (UDP datagrams that were not keep-alives, TCP messages parsed).
    pub messages_received: AtomicU64,
    /// Messages refused by validation (malformed, missing mandatory headers).
    pub parse_errors: AtomicU64,
    /// Stateless 400/416/505/513 responses sent for refused requests.
    pub bad_requests_sent: AtomicU64,
    /// Digest authentications that failed (wrong password or unknown user).
    pub auth_failures: AtomicU64,
    /// Sources banned.
    pub bans: AtomicU64,
    /// Packets or connections dropped because their source is banned.
    pub banned_drops: AtomicU64,
    /// REGISTER/INVITE answered 503 by the per-source rate limit.
    pub rate_limited: AtomicU64,
    /// Requests answered 405.
    pub method_not_allowed: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SipCountersSnapshot {
    pub messages_received: u64,
    pub parse_errors: u64,
    pub bad_requests_sent: u64,
    pub auth_failures: u64,
    pub bans: u64,
    pub banned_drops: u64,
    pub rate_limited: u64,
    pub method_not_allowed: u64,
}

impl SipCounters {
    pub fn snapshot(&self) -> SipCountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SipCountersSnapshot {
            messages_received: get(&self.messages_received),
            parse_errors: get(&self.parse_errors),
            bad_requests_sent: get(&self.bad_requests_sent),
            auth_failures: get(&self.auth_failures),
            bans: get(&self.bans),
            banned_drops: get(&self.banned_drops),
            rate_limited: get(&self.rate_limited),
            method_not_allowed: get(&self.method_not_allowed),
        }
    }
}

/// A final (or provisional) response to `request` with the headers RFC 3261 §8.2.6.2 copies,
/// a To tag on final responses, and our Server header.
pub fn response_for(request: &Request, status: StatusCode, server: &str) -> Response {
    let mut headers = rsipstack::sip::Headers::default();
    for header in request.headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone())
            }
            Header::To(to) => {
                let needs_tag =
                    status.code() >= 200 && status.code() != 100 && matches!(to.tag(), Ok(None));
                if needs_tag {
                    headers.push(Header::To(to.with_tag(rsipstack::transaction::make_tag())));
                } else {
                    headers.push(header.clone());
                }
            }
            _ => {}
        }
    }
    headers.push(Header::Server(rsipstack::sip::headers::Server::new(server)));
    headers.push(Header::ContentLength(
        rsipstack::sip::headers::ContentLength::new("0"),
    ));
    Response {
        status_code: status,
        wire_reason: None,
        version: rsipstack::sip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The address a server transaction's request really came from.
pub fn transaction_source(tx: &Transaction) -> Option<SocketAddr> {
    tx.connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
}

/// Our UDP socket as rsipstack sees it: validates and ban-filters every datagram before
/// rsipstack's parser (which would drop malformed ones without a word).
struct GuardedUdpSocket {
    socket: tokio::net::UdpSocket,
    guard: Arc<SharedGuard>,
    counters: Arc<SipCounters>,
    server_name: String,
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for GuardedUdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, source) = self.socket.recv_from(buf).await?;
            let packet = buf.get(..len).unwrap_or_default();
            // Keep-alives (CRLF, CRLFCRLF) and blank datagrams: rsipstack answers those.
            if packet.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok((len, source));
            }
            if self.guard.is_banned(source.ip()) {
                self.counters.banned_drops.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.counters
                .messages_received
                .fetch_add(1, Ordering::Relaxed);
            match classify_message(packet) {
                Ok(()) => return Ok((len, source)),
                Err(rejection) => {
                    self.counters.parse_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%source, %rejection, "refused malformed SIP datagram");
                    if let Some(reply) = bad_request_for(packet, &rejection, &self.server_name)
                        && self.socket.send_to(&reply, source).await.is_ok()
                    {
                        self.counters
                            .bad_requests_sent
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.socket.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

/// Sees every parsed message before the transaction layer: validates what came over TCP
/// (UDP was validated in the socket) and drops messages from banned sources.
struct StreamInspector {
    guard: Arc<SharedGuard>,
    counters: Arc<SipCounters>,
    server_name: String,
}

#[async_trait::async_trait]
impl TransportEventInspector for StreamInspector {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        let TransportEvent::Incoming(message, connection, from) = event else {
            return Some(event);
        };
        if !connection.is_reliable() {
            return Some(TransportEvent::Incoming(message, connection, from));
        }
        let source_ip = from.get_socketaddr().ok().map(|a| a.ip());
        if source_ip.is_some_and(|ip| self.guard.is_banned(ip)) {
            self.counters.banned_drops.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.counters
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        if let Err(rejection) = validate_parsed(&message) {
            self.counters.parse_errors.fetch_add(1, Ordering::Relaxed);
            if let SipMessage::Request(request) = &message {
                let bytes = request.to_bytes();
                if let Some(reply) = bad_request_for(&bytes, &rejection, &self.server_name)
                    && let Ok(reply) = SipMessage::try_from(reply.as_slice())
                    && connection.send(reply, None).await.is_ok()
                {
                    self.counters
                        .bad_requests_sent
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            return None;
        }
        Some(TransportEvent::Incoming(message, connection, from))
    }
}

/// A running SIP server. Dropping it does not stop it: call [`SipServer::shutdown`].
pub struct SipServer {
    context: Arc<SipContext>,
    registrar: Arc<Registrar>,
    location: Arc<LocationService>,
    guard: Arc<SharedGuard>,
    counters: Arc<SipCounters>,
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl SipServer {
    pub async fn start(
        config: SipConfig,
        directory: Arc<dyn Directory>,
        media: Arc<dyn MediaControl>,
        events: mpsc::Sender<CallEvent>,
        make_call_handler: impl FnOnce(Arc<SipContext>) -> Arc<dyn CallHandler>,
    ) -> Result<SipServer, SipError> {
        if config.udp_addr.is_none() && config.tcp_addr.is_none() {
            return Err(SipError::NoTransport);
        }
        let cancel = CancellationToken::new();
        let counters = Arc::new(SipCounters::default());
        let guard = Arc::new(SharedGuard::new(config.security.clone()));
        let server_name = config.user_agent.clone();
        let transport_layer = TransportLayer::new(cancel.clone());

        let mut udp_addr = None;
        if let Some(addr) = config.udp_addr {
            let socket =
                tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|source| SipError::Bind {
                        transport: "UDP",
                        addr,
                        source,
                    })?;
            let local = socket.local_addr().map_err(|source| SipError::Bind {
                transport: "UDP",
                addr,
                source,
            })?;
            udp_addr = Some(local);
            let guarded: Arc<dyn rsipstack::platform::net::UdpSocket> =
                Arc::new(GuardedUdpSocket {
                    socket,
                    guard: guard.clone(),
                    counters: counters.clone(),
                    server_name: server_name.clone(),
                });
            let external = config.public_addr;
            let connection =
                UdpConnection::from_socket(guarded, external, Some(cancel.child_token()))
                    .await
                    .map_err(|e| SipError::Stack(e.to_string()))?;
            transport_layer.add_transport(connection.into());
        }

        let mut tcp_addr = None;
        if let Some(addr) = config.tcp_addr {
            let addr = pick_tcp_addr(addr, udp_addr)?;
            tcp_addr = Some(addr);
            let external = config
                .public_addr
                .map(|p| SocketAddr::new(p.ip(), addr.port()));
            let listener = TcpListenerConnection::new(addr, external)
                .await
                .map_err(|e| SipError::Stack(e.to_string()))?;
            transport_layer.add_transport(listener.into());
        }

        // New TCP connections from banned sources are refused at accept.
        let whitelist_guard = guard.clone();
        let whitelist_counters = counters.clone();
        transport_layer.set_whitelist(move |ip: IpAddr| {
            let banned = whitelist_guard.is_banned(ip);
            if banned {
                whitelist_counters
                    .banned_drops
                    .fetch_add(1, Ordering::Relaxed);
            }
            async move { !banned }
        });

        let endpoint = EndpointBuilder::new()
            .with_user_agent(&server_name)
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport_layer)
            .with_allows(allowed_methods())
            .with_transport_inspector(Box::new(StreamInspector {
                guard: guard.clone(),
                counters: counters.clone(),
                server_name: server_name.clone(),
            }))
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| SipError::Stack(e.to_string()))?;
        let endpoint_inner: EndpointInnerRef = endpoint.inner.clone();
        let dialog_layer = Arc::new(DialogLayer::new(endpoint_inner.clone()));

        let location = Arc::new(LocationService::new());
        let authenticator = Arc::new(DigestAuthenticator::new(
            &config.auth,
            directory.clone(),
            guard.clone(),
            counters.clone(),
            server_name.clone(),
        ));
        let registrar = Arc::new(Registrar::new(
            config.registrar.clone(),
            authenticator.clone(),
            location.clone(),
            server_name.clone(),
        ));

        let public_addr = config
            .public_addr
            .or(udp_addr)
            .or(tcp_addr)
            .ok_or(SipError::NoTransport)?;
        let context = Arc::new(SipContext {
            endpoint: endpoint_inner.clone(),
            dialog_layer,
            directory,
            locator: location.clone() as Arc<dyn Locator>,
            authenticator: authenticator as Arc<dyn RequestAuthenticator>,
            media,
            events,
            public_addr,
        });
        let call_handler = make_call_handler(context.clone());

        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(async move {
            endpoint.serve().await;
        }));
        tasks.push(tokio::spawn(dispatch_loop(
            incoming,
            Dispatcher {
                registrar: registrar.clone(),
                call_handler,
                guard: guard.clone(),
                counters: counters.clone(),
                server_name,
            },
            cancel.clone(),
        )));
        tasks.push(tokio::spawn(sweep_loop(location.clone(), cancel.clone())));
        if let Some(addr) = tcp_addr {
            wait_until_listening(addr).await?;
        }

        Ok(SipServer {
            context,
            registrar,
            location,
            guard,
            counters,
            udp_addr,
            tcp_addr,
            cancel,
            tasks,
        })
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    pub fn context(&self) -> &Arc<SipContext> {
        &self.context
    }

    pub fn counters(&self) -> SipCountersSnapshot {
        self.counters.snapshot()
    }

    pub fn location(&self) -> &Arc<LocationService> {
        &self.location
    }

    pub fn registrar(&self) -> &Arc<Registrar> {
        &self.registrar
    }

    /// Source IPs currently tracked by the rate limiter / ban list.
    pub fn tracked_sources(&self) -> usize {
        self.guard.tracked_sources()
    }

    /// Stop listening, end the dispatcher and wait for the server's tasks.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

fn allowed_methods() -> Vec<Method> {
    vec![
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Options,
        Method::Register,
        Method::Refer,
        Method::Update,
        Method::Info,
        Method::Notify,
        Method::PRack,
    ]
}

/// rsipstack binds its TCP listener only when the endpoint starts (and only logs a failure
/// then), so the address is chosen and checked here: port 0 becomes the UDP port when free
/// (SIP's usual same-port layout), else an ephemeral port.
fn pick_tcp_addr(addr: SocketAddr, udp: Option<SocketAddr>) -> Result<SocketAddr, SipError> {
    let bind_err = |source| SipError::Bind {
        transport: "TCP",
        addr,
        source,
    };
    if addr.port() != 0 {
        std::net::TcpListener::bind(addr).map_err(bind_err)?;
        return Ok(addr);
    }
    if let Some(udp) = udp {
        let same = SocketAddr::new(addr.ip(), udp.port());
        if std::net::TcpListener::bind(same).is_ok() {
            return Ok(same);
        }
    }
    let probe = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    probe.local_addr().map_err(bind_err)
}

/// rsipstack binds the TCP listener inside its serve task; return only once it accepts,
/// so callers (and tests) can connect as soon as `start` returns. Probing by connecting (and
/// closing at once) cannot disturb rsipstack's bind, unlike a probing bind would.
async fn wait_until_listening(addr: SocketAddr) -> Result<(), SipError> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err(SipError::Bind {
        transport: "TCP",
        addr,
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "listener did not come up within 2 s",
        ),
    })
}

struct Dispatcher {
    registrar: Arc<Registrar>,
    call_handler: Arc<dyn CallHandler>,
    guard: Arc<SharedGuard>,
    counters: Arc<SipCounters>,
    server_name: String,
}

impl Dispatcher {
    fn dispatch(&self, mut tx: Transaction) {
        let Some(source) = transaction_source(&tx) else {
            tracing::debug!("transaction without a source address; dropped");
            return;
        };
        let method = tx.original.method;
        let initial = matches!(tx.original.to_header().map(|t| t.tag()), Ok(Ok(None)));
        if matches!(method, Method::Register) || (method == Method::Invite && initial) {
            match self.guard.admit_request(source.ip()) {
                Admission::Allow => {}
                Admission::Banned => {
                    self.counters.banned_drops.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Admission::RateLimited { retry_after_s } => {
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let mut response = response_for(
                        &tx.original,
                        StatusCode::ServiceUnavailable,
                        &self.server_name,
                    );
                    response
                        .headers
                        .push(Header::RetryAfter(retry_after_s.to_string().into()));
                    tokio::spawn(async move {
                        let _ = tx.respond(response).await;
                    });
                    return;
                }
            }
        }
        match method {
            Method::Register => {
                let registrar = self.registrar.clone();
                tokio::spawn(async move { registrar.handle(tx, source).await });
            }
            Method::Options => {
                let mut response = response_for(&tx.original, StatusCode::OK, &self.server_name);
                push_capabilities(&mut response);
                tokio::spawn(async move {
                    let _ = tx.respond(response).await;
                });
            }
            Method::Invite
            | Method::Ack
            | Method::Bye
            | Method::Cancel
            | Method::Refer
            | Method::Update
            | Method::Info
            | Method::Notify
            | Method::PRack => {
                tokio::spawn(self.call_handler.on_transaction(tx, source));
            }
            _ => {
                self.counters
                    .method_not_allowed
                    .fetch_add(1, Ordering::Relaxed);
                let mut response = response_for(
                    &tx.original,
                    StatusCode::MethodNotAllowed,
                    &self.server_name,
                );
                response
                    .headers
                    .push(Header::Allow(ALLOWED_METHODS.to_string().into()));
                tokio::spawn(async move {
                    let _ = tx.respond(response).await;
                });
            }
        }
    }
}

/// Allow / Accept / Supported, as OPTIONS answers them.
pub fn push_capabilities(response: &mut Response) {
    response
        .headers
        .push(Header::Allow(ALLOWED_METHODS.to_string().into()));
    response
        .headers
        .push(Header::Accept(ACCEPTED_BODIES.to_string().into()));
    response
        .headers
        .push(Header::Supported(SUPPORTED_EXTENSIONS.to_string().into()));
}

async fn dispatch_loop(
    mut incoming: rsipstack::transaction::TransactionReceiver,
    dispatcher: Dispatcher,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            tx = incoming.recv() => match tx {
                Some(tx) => dispatcher.dispatch(tx),
                None => break,
            },
        }
    }
}

async fn sweep_loop(location: Arc<LocationService>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => location.sweep(crate::registrar::now_ms()),
        }
    }
}

/// Keep `MAX_MESSAGE_BYTES` visible to users of the server module (buffer sizing).
pub const MAX_SIP_MESSAGE_BYTES: usize = MAX_MESSAGE_BYTES;

/// A [`CallHandler`] boxed future type alias, for implementors.
pub type HandlerFuture = BoxFuture<'static, ()>;

//! Shared by the registrar/auth/security tests: an in-memory directory (a real
//! implementation of the trait), a call handler that answers every INVITE 486 Busy Here, a
//! media side that refuses media (these tests negotiate none), and a raw SIP-over-UDP
//! client that computes digest responses itself with the md-5/sha2 crates.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use callscope_sip::SipServer;
use callscope_sip::config::SipConfig;
use callscope_sip::directory::{Destination, DirResult, Directory, SipTrunk, SipUser};
use callscope_sip::handler::{CallHandler, SipContext};
use callscope_sip::media::{Direction, LegRole, MediaControl, MediaError};
use futures::future::BoxFuture;
use md5::Md5;
use rsipstack::sip::StatusCode;
use rsipstack::transaction::transaction::Transaction;
use sha2::{Digest, Sha256};
use tokio::net::UdpSocket;

pub const REALM: &str = "acme.test";

pub fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[derive(Default)]
pub struct MemoryDirectory {
    users: HashMap<(String, String), SipUser>,
    trunks: Vec<SipTrunk>,
}

impl MemoryDirectory {
    pub fn with_user(mut self, realm: &str, ext: &str, password: &str) -> Self {
        let user = SipUser {
            org_id: format!("org-{realm}"),
            user_id: format!("user-{ext}"),
            extension: ext.into(),
            display_name: ext.into(),
            ha1_md5: md5_hex(&format!("{ext}:{realm}:{password}")),
            ha1_sha256: sha256_hex(&format!("{ext}:{realm}:{password}")),
        };
        self.users.insert((realm.into(), ext.into()), user);
        self
    }

    pub fn with_trunk(mut self, trunk: SipTrunk) -> Self {
        self.trunks.push(trunk);
        self
    }
}

impl Directory for MemoryDirectory {
    fn user_by_username<'a>(
        &'a self,
        realm: &'a str,
        username: &'a str,
    ) -> BoxFuture<'a, DirResult<Option<SipUser>>> {
        let user = self.users.get(&(realm.into(), username.into())).cloned();
        Box::pin(async move { Ok(user) })
    }
    fn trunk_by_source(&self, source: IpAddr) -> BoxFuture<'_, DirResult<Option<SipTrunk>>> {
        let trunk = self
            .trunks
            .iter()
            .find(|t| t.inbound_acl.iter().any(|(ip, _)| *ip == source))
            .cloned();
        Box::pin(async move { Ok(trunk) })
    }
    fn route_from_user<'a>(
        &'a self,
        _org_id: &'a str,
        _dialled: &'a str,
    ) -> BoxFuture<'a, DirResult<Destination>> {
        Box::pin(async { Ok(Destination::NotFound) })
    }
    fn route_inbound<'a>(
        &'a self,
        _trunk: &'a SipTrunk,
        _did: &'a str,
    ) -> BoxFuture<'a, DirResult<Destination>> {
        Box::pin(async { Ok(Destination::NotFound) })
    }
    fn realm_of_org<'a>(&'a self, org_id: &'a str) -> BoxFuture<'a, DirResult<Option<String>>> {
        let realm = org_id.strip_prefix("org-").map(str::to_string);
        Box::pin(async move { Ok(realm) })
    }
}

/// Answers every call-related request 486 Busy Here (ACKs are absorbed by the stack).
pub struct BusyHandler;

impl CallHandler for BusyHandler {
    fn on_transaction(&self, mut tx: Transaction, _source: SocketAddr) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if tx.original.method != rsipstack::sip::Method::Ack {
                let _ = tx.reply(StatusCode::BusyHere).await;
            }
        })
    }
}

/// These tests negotiate no media: every request for it is refused.
pub struct NoMedia;

impl MediaControl for NoMedia {
    fn open_leg<'a>(
        &'a self,
        _call_id: &'a str,
        _leg: LegRole,
        _remote_sdp: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        Box::pin(async { Err(MediaError::Other("no media in these tests".into())) })
    }
    fn remote_answer<'a>(
        &'a self,
        _call_id: &'a str,
        _leg: LegRole,
        _remote_sdp: &'a str,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        Box::pin(async { Err(MediaError::Other("no media in these tests".into())) })
    }
    fn set_direction<'a>(
        &'a self,
        _call_id: &'a str,
        _leg: LegRole,
        _direction: Direction,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        Box::pin(async { Err(MediaError::Other("no media in these tests".into())) })
    }
    fn close_call<'a>(&'a self, _call_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

pub fn test_config() -> SipConfig {
    SipConfig {
        udp_addr: Some("127.0.0.1:0".parse().unwrap()),
        tcp_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    }
}

pub async fn start(config: SipConfig, directory: MemoryDirectory) -> SipServer {
    let (events, _rx) = tokio::sync::mpsc::channel(16);
    SipServer::start(
        config,
        Arc::new(directory),
        Arc::new(NoMedia),
        events,
        |_ctx: Arc<SipContext>| Arc::new(BusyHandler) as Arc<dyn CallHandler>,
    )
    .await
    .expect("server starts")
}

/// A parsed response: status, and header lines by lower-case name.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub raw: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn parse(raw: &str) -> Reply {
        let mut lines = raw.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Reply {
            status,
            raw: raw.to_string(),
            headers,
        }
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn first(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }
    /// Header names and values that do not vary per request (for indistinguishability).
    pub fn shape(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(k, v)| match k.as_str() {
                "www-authenticate" | "proxy-authenticate" => {
                    // Keep everything but the nonce/opaque values.
                    let mut v = v.clone();
                    for p in ["nonce=\"", "opaque=\""] {
                        if let Some(start) = v.find(p) {
                            let from = start + p.len();
                            if let Some(len) = v[from..].find('"') {
                                v.replace_range(from..from + len, "*");
                            }
                        }
                    }
                    format!("{k}: {v}")
                }
                "via" | "from" | "to" | "call-id" | "cseq" => format!("{k}: <per request>"),
                _ => format!("{k}: {v}"),
            })
            .collect()
    }
}

/// Parse `Digest a="b", c=d` from a challenge.
pub fn challenge_params(value: &str) -> HashMap<String, String> {
    let rest = value.trim().strip_prefix("Digest").unwrap_or(value).trim();
    let mut out = HashMap::new();
    for part in rest.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            out.insert(
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            );
        }
    }
    out
}

/// A minimal UDP SIP user agent for tests.
pub struct UdpPhone {
    pub socket: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub realm: String,
    pub call_id: String,
    pub cseq: u32,
    pub from_tag: String,
}

impl UdpPhone {
    pub async fn new(server: SocketAddr, user: &str, realm: &str) -> UdpPhone {
        Self::bind("127.0.0.1:0", server, user, realm).await
    }

    pub async fn bind(local: &str, server: SocketAddr, user: &str, realm: &str) -> UdpPhone {
        let socket = UdpSocket::bind(local).await.expect("bind test socket");
        let n: u64 = rand_u64();
        UdpPhone {
            socket,
            server,
            user: user.into(),
            realm: realm.into(),
            call_id: format!("{n:x}@test"),
            cseq: 0,
            from_tag: format!("{:x}", n.rotate_left(17)),
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    /// Wait for one datagram (None on timeout).
    pub async fn recv(&self, wait: Duration) -> Option<Reply> {
        let mut buf = vec![0u8; 65_535];
        match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(Reply::parse(&String::from_utf8_lossy(&buf[..n]))),
            _ => None,
        }
    }

    /// Wait for a final response (skipping 1xx).
    pub async fn recv_final(&self, wait: Duration) -> Option<Reply> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let reply = self.recv(left).await?;
            if reply.status >= 200 {
                return Some(reply);
            }
        }
    }

    /// Build a request; `extra` header lines end with CRLF.
    pub fn request(&mut self, method: &str, uri: &str, to_user: &str, extra: &str) -> String {
        self.cseq += 1;
        let branch = format!("z9hG4bK{:x}", rand_u64());
        let local = self.local();
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{realm}>;tag={tag}\r\n\
             To: <sip:{to_user}@{realm}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             User-Agent: callscope-test\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n",
            user = self.user,
            realm = self.realm,
            tag = self.from_tag,
            call_id = self.call_id,
            cseq = self.cseq,
        )
    }

    pub fn register_request(&mut self, extra: &str) -> String {
        let uri = format!("sip:{}", self.realm);
        let user = self.user.clone();
        self.request("REGISTER", &uri, &user, extra)
    }

    /// Send and wait for the final response.
    pub async fn transact(&self, request: &str) -> Option<Reply> {
        self.send_raw(request.as_bytes()).await;
        self.recv_final(Duration::from_secs(3)).await
    }

    /// The Authorization value answering `challenge` with `password` (qop=auth).
    pub fn authorization(
        &self,
        challenge: &str,
        method: &str,
        uri: &str,
        password: &str,
        nc: u32,
    ) -> String {
        let p = challenge_params(challenge);
        let algorithm = p.get("algorithm").cloned().unwrap_or_else(|| "MD5".into());
        let h = |s: &str| {
            if algorithm.eq_ignore_ascii_case("SHA-256") {
                sha256_hex(s)
            } else {
                md5_hex(s)
            }
        };
        let realm = &p["realm"];
        let nonce = &p["nonce"];
        let cnonce = format!("{:x}", rand_u64());
        let nc = format!("{nc:08x}");
        let ha1 = h(&format!("{}:{realm}:{password}", self.user));
        let ha2 = h(&format!("{method}:{uri}"));
        let response = h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={algorithm}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
            self.user
        );
        if let Some(opaque) = p.get("opaque") {
            v.push_str(&format!(", opaque=\"{opaque}\""));
        }
        v
    }

    /// Full REGISTER with digest: returns (challenge reply, final reply).
    pub async fn register(
        &mut self,
        password: &str,
        algorithm: &str,
        contact_and_expires: &str,
    ) -> (Reply, Reply) {
        let req = self.register_request(contact_and_expires);
        let challenge = self.transact(&req).await.expect("challenge");
        assert_eq!(challenge.status, 401, "{}", challenge.raw);
        let chosen = challenge
            .all("www-authenticate")
            .into_iter()
            .find(|c| c.contains(&format!("algorithm={algorithm}")))
            .expect("challenge for algorithm")
            .to_string();
        let uri = format!("sip:{}", self.realm);
        let auth = self.authorization(&chosen, "REGISTER", &uri, password, 1);
        let req = self.register_request(&format!("{contact_and_expires}Authorization: {auth}\r\n"));
        let reply = self.transact(&req).await.expect("final");
        (challenge, reply)
    }
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

//! Digest authentication (RFC 3261 §22 with RFC 8760's SHA-256) and trunk ACLs.
//!
//! Realm ↔ organization: the digest realm is the domain the request is addressed in — the
//! To URI host for REGISTER (the address-of-record being registered), the From URI host
//! for other requests (the caller's own domain). That domain is the organization's SIP
//! domain (`Directory::realm_of_org`), and users are looked up with
//! `Directory::user_by_username(realm, username)`. On loopback tests packets go to
//! 127.0.0.1 while the URIs say e.g. `sip:alice@acme.test`.
//!
//! No extension enumeration: for an unknown user a dummy HA1 is derived from a process
//! secret and the same hash work is done, and the failure answer (`403 Forbidden`, same
//! headers) is identical to a wrong password. Requests without credentials all get the same
//! challenge whatever the username.
//!
//! Nonces are stateless: `hex(timestamp_ms | random) . hex(HMAC-SHA256(secret, ...))`,
//! verified by recomputing the MAC; expired nonces get a fresh challenge with `stale=true`
//! (not counted as a failure). `nc` values are remembered per nonce (bounded map) and a
//! repeated or decreasing `nc` is answered with a fresh stale challenge: replaying a
//! captured REGISTER does not re-register it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use rsipstack::sip::headers::{Header, ProxyAuthenticate, WwwAuthenticate};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::config::AuthConfig;
use crate::directory::{Directory, SipUser};
use crate::handler::{AuthOutcome, RequestAuthenticator};
use crate::security::SharedGuard;
use crate::server::{SipCounters, response_for};

/// Bound on remembered (nonce → last nc) pairs.
const MAX_TRACKED_NONCES: usize = 100_000;
const RANDOM_LEN: usize = 8;
const MAC_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    fn parse(s: Option<&str>) -> Option<Self> {
        match s {
            None => Some(Self::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Self::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Self::Sha256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Self::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// HA1 = H(username ":" realm ":" password), for storing users (the api crate uses it).
pub fn compute_ha1(
    algorithm: DigestAlgorithm,
    username: &str,
    realm: &str,
    password: &str,
) -> String {
    algorithm.hash(&format!("{username}:{realm}:{password}"))
}

/// The parameters of one `Digest` credentials header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub params: HashMap<String, String>,
}

impl DigestCredentials {
    /// Parse `Digest k=v, k="v", ...`. `None` for another scheme or garbage.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut params = HashMap::new();
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && (bytes[i] == b',' || bytes[i].is_ascii_whitespace()) {
                i += 1;
            }
            let key_start = i;
            while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b',' {
                i += 1;
            }
            let key = rest.get(key_start..i)?.trim().to_ascii_lowercase();
            if i >= bytes.len() || bytes[i] != b'=' {
                if key.is_empty() {
                    break;
                }
                return None;
            }
            i += 1; // '='
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let val = if i < bytes.len() && bytes[i] == b'"' {
                i += 1;
                let mut out = String::new();
                let mut closed = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' if i + 1 < bytes.len() => {
                            out.push(char::from(bytes[i + 1]));
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            closed = true;
                            break;
                        }
                        _ => {
                            // Multi-byte UTF-8 is copied through the str slice below.
                            let ch_len = rest.get(i..)?.chars().next()?.len_utf8();
                            out.push_str(rest.get(i..i + ch_len)?);
                            i += ch_len;
                        }
                    }
                }
                if !closed {
                    return None;
                }
                out
            } else {
                let start = i;
                while i < bytes.len() && bytes[i] != b',' {
                    i += 1;
                }
                rest.get(start..i)?.trim().to_string()
            };
            if key.is_empty() {
                return None;
            }
            params.insert(key, val);
        }
        Some(Self { params })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

/// Why a credentials header did not prove anything (each maps to a response).
enum Verdict {
    Ok(SipUser),
    /// Send a (re-)challenge; `stale` when the nonce was ours but too old or replayed.
    Challenge {
        stale: bool,
    },
    /// Wrong credentials (or unknown user): 403, counted towards a ban.
    Failed,
    /// The directory failed: 503 (nothing learnt about the user).
    Unavailable,
}

pub struct DigestAuthenticator {
    directory: Arc<dyn Directory>,
    guard: Arc<SharedGuard>,
    counters: Arc<SipCounters>,
    secret: Vec<u8>,
    nonce_ttl: Duration,
    /// nonce → (highest nc seen, first seen); bounded.
    nonce_counts: Mutex<HashMap<String, (u32, Instant)>>,
    server_name: String,
    challenge_algorithms: Vec<DigestAlgorithm>,
}

impl DigestAuthenticator {
    pub fn new(
        config: &AuthConfig,
        directory: Arc<dyn Directory>,
        guard: Arc<SharedGuard>,
        counters: Arc<SipCounters>,
        server_name: String,
    ) -> Self {
        let secret = if config.nonce_secret.is_empty() {
            rand::random::<[u8; 32]>().to_vec()
        } else {
            config.nonce_secret.as_bytes().to_vec()
        };
        Self {
            directory,
            guard,
            counters,
            secret,
            nonce_ttl: Duration::from_secs(config.nonce_ttl_s.max(1)),
            nonce_counts: Mutex::new(HashMap::new()),
            server_name,
            challenge_algorithms: parse_algorithms(&config.challenge_algorithms),
        }
    }

    fn mac(&self, payload: &[u8], realm: &str) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail; fall back to a plain hash
        // rather than unwrap.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret) {
            Ok(mut mac) => {
                mac.update(payload);
                mac.update(realm.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Sha256::digest([payload, realm.as_bytes()].concat()).to_vec(),
        }
    }

    /// A fresh nonce for `realm`, valid for the configured time.
    pub fn make_nonce(&self, realm: &str, now_ms: u64) -> String {
        let mut payload = now_ms.to_be_bytes().to_vec();
        payload.extend_from_slice(&rand::random::<[u8; RANDOM_LEN]>());
        let mac = self.mac(&payload, realm);
        format!(
            "{}{}",
            hex::encode(&payload),
            hex::encode(mac.get(..MAC_LEN).unwrap_or_default())
        )
    }

    /// `Some(age)` when the nonce is one of ours for `realm`; `None` when forged/garbled.
    fn nonce_age(&self, nonce: &str, realm: &str, now_ms: u64) -> Option<Duration> {
        let raw = hex::decode(nonce).ok()?;
        if raw.len() != 8 + RANDOM_LEN + MAC_LEN {
            return None;
        }
        let (payload, mac) = raw.split_at(8 + RANDOM_LEN);
        let expected = self.mac(payload, realm);
        if !constant_time_eq(mac, expected.get(..MAC_LEN)?) {
            return None;
        }
        let ts = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
        Some(Duration::from_millis(now_ms.saturating_sub(ts)))
    }

    /// Remember `nc` for `nonce`; false when it does not increase (replay).
    fn accept_nc(&self, nonce: &str, nc: u32) -> bool {
        let mut map = self.nonce_counts.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= MAX_TRACKED_NONCES && !map.contains_key(nonce) {
            let ttl = self.nonce_ttl;
            map.retain(|_, (_, first)| now.duration_since(*first) < ttl);
            if map.len() >= MAX_TRACKED_NONCES {
                map.clear(); // all young: forget them rather than grow
            }
        }
        match map.get_mut(nonce) {
            Some((last, _)) if nc <= *last => false,
            Some((last, _)) => {
                *last = nc;
                true
            }
            None => {
                map.insert(nonce.to_string(), (nc, now));
                true
            }
        }
    }

    /// The 401/407 challenge: SHA-256 first, then MD5 (RFC 8760 §2.4: most preferred first).
    pub fn challenge(&self, request: &Request, realm: &str, proxy: bool, stale: bool) -> Response {
        let status = if proxy {
            StatusCode::ProxyAuthenticationRequired
        } else {
            StatusCode::Unauthorized
        };
        let mut response = response_for(request, status, &self.server_name);
        let nonce = self.make_nonce(realm, unix_ms());
        let opaque = hex::encode(&self.mac(nonce.as_bytes(), "opaque")[..8]);
        for &algorithm in &self.challenge_algorithms {
            let mut value = format!(
                "Digest realm=\"{realm}\", nonce=\"{nonce}\", opaque=\"{opaque}\", algorithm={}, qop=\"auth\"",
                algorithm.name()
            );
            if stale {
                value.push_str(", stale=true");
            }
            response.headers.push(if proxy {
                Header::ProxyAuthenticate(ProxyAuthenticate::new(value))
            } else {
                Header::WwwAuthenticate(WwwAuthenticate::new(value))
            });
        }
        response
    }

    async fn verify(
        &self,
        request: &Request,
        realm: &str,
        credentials: &DigestCredentials,
    ) -> Verdict {
        let (Some(username), Some(nonce), Some(response), Some(uri)) = (
            credentials.get("username"),
            credentials.get("nonce"),
            credentials.get("response"),
            credentials.get("uri"),
        ) else {
            return Verdict::Challenge { stale: false };
        };
        let Some(algorithm) = DigestAlgorithm::parse(credentials.get("algorithm")) else {
            return Verdict::Challenge { stale: false };
        };
        match self.nonce_age(nonce, realm, unix_ms()) {
            None => return Verdict::Challenge { stale: false },
            Some(age) if age > self.nonce_ttl => return Verdict::Challenge { stale: true },
            Some(_) => {}
        }
        let user = match self.directory.user_by_username(realm, username).await {
            Ok(user) => user,
            Err(e) => {
                tracing::warn!(error = %e, "directory lookup failed during digest auth");
                return Verdict::Unavailable;
            }
        };
        // Unknown user: a dummy HA1 so the work (and time) matches a known user's.
        let ha1 = match (&user, algorithm) {
            (Some(u), DigestAlgorithm::Md5) => u.ha1_md5.to_ascii_lowercase(),
            (Some(u), DigestAlgorithm::Sha256) => u.ha1_sha256.to_ascii_lowercase(),
            (None, _) => {
                let dummy = hex::encode(&self.secret);
                compute_ha1(algorithm, username, realm, &dummy)
            }
        };
        let ha2 = algorithm.hash(&format!("{}:{uri}", request.method));
        let qop = credentials.get("qop");
        let expected = match qop {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (credentials.get("nc"), credentials.get("cnonce"))
                else {
                    return Verdict::Challenge { stale: false };
                };
                algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
            }
            Some(_) => return Verdict::Challenge { stale: false },
            None => algorithm.hash(&format!("{ha1}:{nonce}:{ha2}")),
        };
        let matches = constant_time_eq(
            expected.as_bytes(),
            response.trim().to_ascii_lowercase().as_bytes(),
        );
        match user {
            Some(user) if matches => {
                if qop.is_some() {
                    let nc = credentials
                        .get("nc")
                        .and_then(|nc| u32::from_str_radix(nc, 16).ok());
                    match nc {
                        Some(nc) if self.accept_nc(nonce, nc) => {}
                        _ => return Verdict::Challenge { stale: true },
                    }
                }
                Verdict::Ok(user)
            }
            _ => Verdict::Failed,
        }
    }

    /// Digest-authenticate a user request (REGISTER: 401, others: 407).
    pub async fn authenticate_user(
        &self,
        request: &Request,
        source: SocketAddr,
        proxy: bool,
    ) -> AuthOutcome {
        let Some(realm) = request_realm(request) else {
            return AuthOutcome::Respond(response_for(
                request,
                StatusCode::BadRequest,
                &self.server_name,
            ));
        };
        let credentials = request.headers.iter().find_map(|h| {
            let value = match (h, proxy) {
                (Header::Authorization(a), false) => a.value(),
                (Header::ProxyAuthorization(a), true) => a.value(),
                _ => return None,
            };
            let parsed = DigestCredentials::parse(value)?;
            parsed
                .get("realm")
                .is_some_and(|r| r.eq_ignore_ascii_case(&realm))
                .then_some(parsed)
        });
        let Some(credentials) = credentials else {
            return AuthOutcome::Respond(self.challenge(request, &realm, proxy, false));
        };
        match self.verify(request, &realm, &credentials).await {
            Verdict::Ok(user) => AuthOutcome::User(user),
            Verdict::Challenge { stale } => {
                AuthOutcome::Respond(self.challenge(request, &realm, proxy, stale))
            }
            Verdict::Failed => {
                self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
                if self.guard.record_auth_failure(source.ip()) {
                    self.counters.bans.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(source = %source.ip(), "source banned after repeated authentication failures");
                }
                AuthOutcome::Respond(response_for(
                    request,
                    StatusCode::Forbidden,
                    &self.server_name,
                ))
            }
            Verdict::Unavailable => AuthOutcome::Respond(response_for(
                request,
                StatusCode::ServiceUnavailable,
                &self.server_name,
            )),
        }
    }
}

impl RequestAuthenticator for DigestAuthenticator {
    fn authenticate<'a>(
        &'a self,
        request: &'a Request,
        source: SocketAddr,
        proxy: bool,
    ) -> BoxFuture<'a, AuthOutcome> {
        Box::pin(async move {
            // Calls from a trunk's addresses are inbound calls: the ACL is their credential.
            if request.method == Method::Invite {
                match self.directory.trunk_by_source(source.ip()).await {
                    Ok(Some(trunk)) => return AuthOutcome::Trunk(trunk),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "trunk lookup failed");
                        return AuthOutcome::Respond(response_for(
                            request,
                            StatusCode::ServiceUnavailable,
                            &self.server_name,
                        ));
                    }
                }
            }
            self.authenticate_user(request, source, proxy).await
        })
    }
}

/// Configured algorithm names, unknown ones skipped; never empty (falls back to both).
fn parse_algorithms(names: &[String]) -> Vec<DigestAlgorithm> {
    let mut out: Vec<DigestAlgorithm> = names
        .iter()
        .filter_map(|n| DigestAlgorithm::parse(Some(n)))
        .collect();
    out.dedup();
    if out.is_empty() {
        out = vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5];
    }
    out
}

/// The digest realm of a request: the To host for REGISTER, the From host otherwise,
/// lower-cased (domains are case-insensitive).
pub fn request_realm(request: &Request) -> Option<String> {
    let uri = if request.method == Method::Register {
        request.to_header().ok()?.uri().ok()?
    } else {
        request.from_header().ok()?.uri().ok()?
    };
    let host = uri.host_with_port.host.to_string().to_ascii_lowercase();
    // Realm goes back inside a quoted string: refuse anything but host characters.
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
    ok.then_some(host)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_bare_params() {
        let c = DigestCredentials::parse(
            r#"Digest username="alice", realm="acme.test", nonce="abc", uri="sip:acme.test", response="ff", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="x,y""#,
        )
        .unwrap();
        assert_eq!(c.get("username"), Some("alice"));
        assert_eq!(c.get("algorithm"), Some("SHA-256"));
        assert_eq!(c.get("nc"), Some("00000001"));
        assert_eq!(c.get("cnonce"), Some("x,y"));
        assert!(DigestCredentials::parse("Basic dXNlcjpwYXNz").is_none());
        assert!(DigestCredentials::parse(r#"Digest username="unterminated"#).is_none());
    }

    #[test]
    fn rfc_2617_md5_example_ha1() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life
        assert_eq!(
            compute_ha1(
                DigestAlgorithm::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life"
            ),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn garbage_credentials_never_panic() {
        for s in [
            "",
            "Digest",
            "Digest =",
            "Digest a=\"\\",
            "Digest ,,,,",
            "Digest a=\"é\"",
            "Digest x",
        ] {
            let _ = DigestCredentials::parse(s);
        }
    }
}

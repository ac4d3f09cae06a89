//! The SIP server's settings: one typed struct with laptop-friendly defaults (loopback,
//! port 5060), deserialised from the application's TOML `[sip]` section.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const DEFAULT_ADDR: &str = "127.0.0.1:5060";

fn default_addr() -> Option<SocketAddr> {
    DEFAULT_ADDR.parse().ok()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SipConfig {
    /// UDP listener; `None` disables UDP. Port 0 picks an ephemeral port (tests).
    pub udp_addr: Option<SocketAddr>,
    /// TCP listener; `None` disables TCP.
    pub tcp_addr: Option<SocketAddr>,
    /// Our address as peers must see it (Via, Contact, Record-Route). Defaults to the UDP
    /// (else TCP) listener's bound address.
    pub public_addr: Option<SocketAddr>,
    /// User-Agent / Server header value.
    pub user_agent: String,
    pub registrar: RegistrarConfig,
    pub security: SecurityConfig,
    pub auth: AuthConfig,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            udp_addr: default_addr(),
            tcp_addr: default_addr(),
            public_addr: None,
            user_agent: format!("callscope/{}", env!("CARGO_PKG_VERSION")),
            registrar: RegistrarConfig::default(),
            security: SecurityConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistrarConfig {
    /// Below this a REGISTER gets 423 Interval Too Brief with Min-Expires.
    pub min_expires: u32,
    /// Longer requested expiries are shortened to this.
    pub max_expires: u32,
    /// When the REGISTER states no expiry at all.
    pub default_expires: u32,
    /// Most bindings kept per user (oldest dropped first).
    pub max_contacts_per_user: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts_per_user: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// How long a nonce we issued stays valid; an older one gets a fresh challenge with
    /// `stale=true` (the client retries without asking its user).
    pub nonce_ttl_s: u64,
    /// HMAC key for nonces (hex or any text). Empty: a random key per process, so nonces do
    /// not survive a restart (clients just get re-challenged).
    pub nonce_secret: String,
    /// Challenges offered, most preferred first (RFC 8760 §2.4): "SHA-256", "MD5".
    /// baresip 1.0.0 (libre) fails with ENOSYS as soon as any SHA-256 challenge is present,
    /// even beside an MD5 one: deployments with such phones set `["MD5"]`.
    pub challenge_algorithms: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            nonce_ttl_s: 300,
            nonce_secret: String::new(),
            challenge_algorithms: vec!["SHA-256".into(), "MD5".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// Failed authentications from one IP within `auth_failure_window_s` that get it banned.
    pub auth_failures_before_ban: u32,
    pub auth_failure_window_s: u64,
    /// How long a banned source is ignored (its packets are dropped unanswered).
    pub ban_duration_s: u64,
    /// Token bucket per source IP for REGISTER and INVITE: sustained rate and burst.
    pub requests_per_second: f64,
    pub request_burst: f64,
    /// Most source IPs tracked at once; the least recently seen are forgotten first.
    pub max_tracked_sources: usize,
    /// Sources never limited or banned (e.g. a trusted SBC), as exact IPs.
    pub exempt: Vec<std::net::IpAddr>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            auth_failures_before_ban: 10,
            auth_failure_window_s: 60,
            ban_duration_s: 600,
            requests_per_second: 20.0,
            request_burst: 40.0,
            max_tracked_sources: 65_536,
            exempt: Vec::new(),
        }
    }
}

impl SecurityConfig {
    pub fn ban_duration(&self) -> Duration {
        Duration::from_secs(self.ban_duration_s)
    }
}

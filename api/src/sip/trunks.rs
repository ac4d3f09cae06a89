//! Upstream SIP trunks: where outbound calls go, with what credentials, and which source
//! networks may send us inbound calls (the ACL). The outbound password is stored as given
//! (see the migration): it is never logged, never returned by the API, and only read here to
//! hand to the SIP side.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;
use sqlx::SqlitePool;

use crate::ids::{new_id, now_ms};

pub const DEFAULT_SIP_PORT: u16 = 5060;

/// A source network, normalised (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host).
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) && l.len() <= 3 => {
                l.parse::<u8>().ok().filter(|&n| n <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        Some(Cidr {
            network: mask(addr, prefix_len),
            prefix_len,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may show up as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix_len) == self.network
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// `host`, `host:port`, `1.2.3.4:5060` or `[2001:db8::1]:5060` → (host, port).
pub fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip.to_string(), DEFAULT_SIP_PORT));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|&p| p > 0)?),
        None => (s, DEFAULT_SIP_PORT),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    host_ok.then(|| (host.to_ascii_lowercase(), port))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Trunk {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    pub name: String,
    pub host: String,
    pub port: i64,
    pub transport: String,
    pub username: Option<String>,
    /// Never serialised: write-only.
    #[serde(skip)]
    pub password: Option<String>,
    pub created_at: i64,
}

impl Trunk {
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
}

/// A trunk with its ACL.
#[derive(Debug, Clone)]
pub struct TrunkWithAcl {
    pub trunk: Trunk,
    pub acl: Vec<Cidr>,
}

pub struct NewTrunk<'a> {
    pub name: &'a str,
    /// `host[:port]`
    pub host: &'a str,
    pub transport: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub inbound_acl: &'a [String],
}

#[derive(Debug, thiserror::Error)]
pub enum TrunkError {
    #[error("name must be 1 to 100 characters")]
    InvalidName,
    #[error("host must be host[:port] (a host name or an IP address)")]
    InvalidHost,
    #[error("transport must be udp or tcp")]
    InvalidTransport,
    #[error("invalid CIDR {0:?} (expected e.g. 203.0.113.0/24 or 2001:db8::/32)")]
    InvalidCidr(String),
    #[error("username and password must be 1 to 128 characters without control characters")]
    InvalidCredential,
    #[error("a password needs a username")]
    PasswordWithoutUsername,
    #[error("a trunk named {0:?} already exists in this organization")]
    NameTaken(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn valid_credential(s: &str) -> bool {
    let n = s.chars().count();
    (1..=128).contains(&n) && !s.chars().any(char::is_control)
}

pub async fn create_trunk(
    pool: &SqlitePool,
    org_id: &str,
    new: &NewTrunk<'_>,
) -> Result<TrunkWithAcl, TrunkError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(TrunkError::InvalidName);
    }
    let (host, port) = parse_host_port(new.host).ok_or(TrunkError::InvalidHost)?;
    let transport = new.transport.trim().to_ascii_lowercase();
    if transport != "udp" && transport != "tcp" {
        return Err(TrunkError::InvalidTransport);
    }
    for c in [new.username, new.password].into_iter().flatten() {
        if !valid_credential(c) {
            return Err(TrunkError::InvalidCredential);
        }
    }
    if new.password.is_some() && new.username.is_none() {
        return Err(TrunkError::PasswordWithoutUsername);
    }
    let mut acl = Vec::new();
    for raw in new.inbound_acl {
        let c = Cidr::parse(raw).ok_or_else(|| TrunkError::InvalidCidr(raw.clone()))?;
        if !acl.contains(&c) {
            acl.push(c);
        }
    }

    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let id = new_id();
    let inserted = sqlx::query(
        "INSERT INTO sip_trunks (id, org_id, name, host, port, transport, username, password, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (org_id, name) DO NOTHING",
    )
    .bind(&id)
    .bind(org_id)
    .bind(name)
    .bind(&host)
    .bind(i64::from(port))
    .bind(&transport)
    .bind(new.username)
    .bind(new.password)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Err(TrunkError::NameTaken(name.to_string()));
    }
    for c in &acl {
        sqlx::query(
            "INSERT INTO sip_trunk_acl (trunk_id, org_id, network, prefix_len) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(org_id)
        .bind(c.network.to_string())
        .bind(i64::from(c.prefix_len))
        .execute(&mut *tx)
        .await?;
    }
    let trunk: Trunk = sqlx::query_as("SELECT * FROM sip_trunks WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(TrunkWithAcl { trunk, acl })
}

async fn acl_of(pool: &SqlitePool, org_id: &str, trunk_id: &str) -> Result<Vec<Cidr>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT network, prefix_len FROM sip_trunk_acl WHERE org_id = $1 AND trunk_id = $2
         ORDER BY network, prefix_len",
    )
    .bind(org_id)
    .bind(trunk_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(row_to_cidr).collect())
}

fn row_to_cidr((network, len): (String, i64)) -> Option<Cidr> {
    Some(Cidr {
        network: network.parse().ok()?,
        prefix_len: u8::try_from(len).ok()?,
    })
}

pub async fn get_trunk(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
) -> Result<Option<TrunkWithAcl>, sqlx::Error> {
    let trunk: Option<Trunk> =
        sqlx::query_as("SELECT * FROM sip_trunks WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(pool)
            .await?;
    match trunk {
        Some(trunk) => {
            let acl = acl_of(pool, org_id, &trunk.id).await?;
            Ok(Some(TrunkWithAcl { trunk, acl }))
        }
        None => Ok(None),
    }
}

/// The organization's trunks, oldest first (the first is the default for outbound calls).
pub async fn list_trunks(
    pool: &SqlitePool,
    org_id: &str,
) -> Result<Vec<TrunkWithAcl>, sqlx::Error> {
    let trunks: Vec<Trunk> =
        sqlx::query_as("SELECT * FROM sip_trunks WHERE org_id = $1 ORDER BY created_at, id")
            .bind(org_id)
            .fetch_all(pool)
            .await?;
    let mut out = Vec::with_capacity(trunks.len());
    for trunk in trunks {
        let acl = acl_of(pool, org_id, &trunk.id).await?;
        out.push(TrunkWithAcl { trunk, acl });
    }
    Ok(out)
}

pub async fn delete_trunk(pool: &SqlitePool, org_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sip_trunks WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The trunk whose ACL holds `source`, across all organizations: this is how an inbound call
/// from a carrier finds its organization. The most specific network wins; between equally
/// specific ones, the oldest trunk (stable, and a later tenant cannot take over an earlier
/// tenant's carrier address by adding the same network).
pub async fn trunk_by_source(
    pool: &SqlitePool,
    source: IpAddr,
) -> Result<Option<TrunkWithAcl>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT a.org_id, a.trunk_id, a.network, a.prefix_len FROM sip_trunk_acl a
         JOIN sip_trunks t ON t.id = a.trunk_id ORDER BY t.created_at, t.id",
    )
    .fetch_all(pool)
    .await?;
    let mut best: Option<(u8, String, String)> = None;
    for (org_id, trunk_id, network, len) in rows {
        let Some(c) = row_to_cidr((network, len)) else {
            continue;
        };
        if c.contains(source) && best.as_ref().is_none_or(|(l, _, _)| c.prefix_len > *l) {
            best = Some((c.prefix_len, org_id, trunk_id));
        }
    }
    match best {
        Some((_, org_id, trunk_id)) => get_trunk(pool, &org_id, &trunk_id).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("203.0.113.77/24").unwrap();
        assert_eq!(c.to_string(), "203.0.113.0/24");
        assert!(c.contains("203.0.113.1".parse().unwrap()));
        assert!(!c.contains("203.0.114.1".parse().unwrap()));
        assert!(c.contains("::ffff:203.0.113.9".parse().unwrap()));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(host.prefix_len, 32);
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let any = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        assert!(!any.contains("::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        for bad in [
            "",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "::/129",
            "host/8",
            "1.2.3/8",
        ] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            parse_host_port("127.0.0.1:5070"),
            Some(("127.0.0.1".into(), 5070))
        );
        assert_eq!(
            parse_host_port("sip.Carrier.example"),
            Some(("sip.carrier.example".into(), 5060))
        );
        assert_eq!(parse_host_port("[::1]:5080"), Some(("::1".into(), 5080)));
        assert_eq!(parse_host_port("::1"), Some(("::1".into(), 5060)));
        assert_eq!(parse_host_port("host:0"), None);
        assert_eq!(parse_host_port("host:99999"), None);
        assert_eq!(parse_host_port("bad host"), None);
        assert_eq!(parse_host_port(""), None);
    }
}

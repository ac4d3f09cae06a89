//! Where callscope may send requests that an organization's data chooses: recording
//! downloads (`recording_url`), webhook deliveries and WhatsApp Graph API sends. By default
//! only public internet addresses: a URL naming (or resolving to) loopback, a private or
//! link-local network, the cloud metadata address and the like is refused, so an API key
//! cannot make the server reach into the network it runs in (SSRF). Operators whose PBX or
//! receivers live on a private network set `[egress] allow_private_networks = true`.
//!
//! The check runs where the address is used, not where the URL is accepted: a resolver
//! installed in the HTTP client drops forbidden addresses from every lookup (so a DNS answer
//! that changes between a check and the connection cannot slip a private address in), and
//! URLs with an IP-literal host, which never reach the resolver, are checked before sending
//! and on every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which destinations are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressPolicy {
    pub allow_private_networks: bool,
}

impl EgressPolicy {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private_networks || is_public(ip)
    }

    /// Refuses a URL whose host is an IP literal this policy forbids (hostnames are checked
    /// by [`GuardedResolver`] when they are resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), EgressRefused> {
        // The URL parser has normalised IP literals (decimal, hex and short IPv4 forms
        // included); IPv6 ones come bracketed.
        let host = url.host_str().unwrap_or_default();
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        if self.allows(ip) {
            Ok(())
        } else {
            Err(EgressRefused(ip.to_string()))
        }
    }

    /// A client builder whose lookups keep only allowed addresses.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().dns_resolver(Arc::new(GuardedResolver { policy: *self }))
    }
}

/// A destination the policy forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is a private, loopback or link-local address; callscope only connects to public addresses unless [egress] allow_private_networks is set"
)]
pub struct EgressRefused(pub String);

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Carrier-grade NAT, 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24; benchmarking 198.18.0.0/15.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10 (deprecated).
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32; NAT64 64:ff9b::/96 may reach IPv4 private space.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b))
}

/// Resolves with the system resolver, then keeps only the addresses the policy allows; a
/// name left with none fails the connection with [`EgressRefused`].
struct GuardedResolver {
    policy: EgressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                let shown = found
                    .first()
                    .map_or_else(|| host.clone(), |a| format!("{host} ({})", a.ip()));
                return Err(
                    Box::new(EgressRefused(shown)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip(s)), "{s}");
        }
        for s in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip(s)), "{s}");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_hostnames_left_to_the_resolver() {
        let strict = EgressPolicy {
            allow_private_networks: false,
        };
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(strict.check_url(&url("http://127.0.0.1:8080/x")).is_err());
        assert!(strict.check_url(&url("http://[::1]/x")).is_err());
        // Decimal and other IPv4 spellings are normalised by the URL parser.
        assert!(strict.check_url(&url("http://2130706433/x")).is_err());
        assert!(strict.check_url(&url("http://0x7f.1/x")).is_err());
        assert!(strict.check_url(&url("https://93.184.216.34/x")).is_ok());
        assert!(strict.check_url(&url("https://pbx.example.com/x")).is_ok());
        let open = EgressPolicy {
            allow_private_networks: true,
        };
        assert!(open.check_url(&url("http://127.0.0.1/x")).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_forbidden_answers() {
        let strict = GuardedResolver {
            policy: EgressPolicy {
                allow_private_networks: false,
            },
        };
        let err = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("localhost"), "{err}");
        let open = GuardedResolver {
            policy: EgressPolicy {
                allow_private_networks: true,
            },
        };
        let addrs: Vec<SocketAddr> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}

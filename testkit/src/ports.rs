//! Free loopback ports for peers. The kernel picks a candidate (bind to port 0); we then
//! check the whole run of ports the peer needs on both UDP and TCP, and never hand out the
//! same port twice within one test process (tests run in parallel threads).

use crate::{Error, Result};
use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::{Mutex, OnceLock};

const ATTEMPTS: u32 = 200;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

fn free_on_both(port: u16) -> bool {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
    let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
    udp.is_ok() && tcp.is_ok()
}

/// A port free on 127.0.0.1 for both UDP and TCP (SIP listens on both).
pub fn free_port() -> Result<u16> {
    free_port_run(1)
}

/// The first of `n` consecutive ports all free on UDP and TCP. baresip needs two (its TLS
/// transport takes the SIP port + 1); RTP needs an even/odd pair.
pub fn free_port_run(n: u16) -> Result<u16> {
    let n = n.max(1);
    for _ in 0..ATTEMPTS {
        let candidate = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|s| s.local_addr())
            .map_err(|e| Error::io("binding a probe socket", e))?
            .port();
        let Some(last) = candidate.checked_add(n - 1) else {
            continue;
        };
        let mut taken = handed_out().lock().unwrap_or_else(|p| p.into_inner());
        if (candidate..=last).any(|p| taken.contains(&p)) {
            continue;
        }
        if (candidate..=last).all(free_on_both) {
            taken.extend(candidate..=last);
            return Ok(candidate);
        }
    }
    Err(Error::NoFreePort { attempts: ATTEMPTS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_free_and_distinct() {
        let a = free_port_run(2).unwrap();
        let b = free_port_run(2).unwrap();
        assert!(a.abs_diff(b) >= 2, "runs overlap: {a} {b}");
        assert!(free_on_both(a) && free_on_both(a + 1));
        let l = UdpSocket::bind((Ipv4Addr::LOCALHOST, a)).unwrap();
        assert!(!free_on_both(a), "a bound port must not count as free");
        drop(l);
    }
}

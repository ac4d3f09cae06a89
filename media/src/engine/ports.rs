//! RTP/RTCP port pairs from the configured range.
//!
//! RTP takes even ports and RTCP the odd port above (RFC 3550 §11). Free pairs wait in a FIFO
//! queue and freed pairs join its back, so a port just released is the last to be handed out
//! again: stray packets of the old call then cannot land in a new one. Ports the OS refuses
//! (used by another program) are put back at the end and skipped.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use super::socket::MediaSocket;
use super::types::EngineError;

/// A leg's two sockets as bound, not yet tied to any runtime: the call's task adopts them
/// on the runtime it runs on (the engine's media threads, or the caller's), so readiness
/// is reported to the thread that reads them.
#[derive(Debug)]
pub struct BoundPair {
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    pub port: u16,
}

/// The two sockets of one leg.
#[derive(Debug)]
pub struct LegSockets {
    pub rtp: MediaSocket,
    pub rtcp: MediaSocket,
    pub port: u16,
}

impl LegSockets {
    /// Registers a bound pair with the current runtime's reactor (call from inside the
    /// task that reads them). On failure the sockets are closed and the port is returned
    /// so it can go back to the pool.
    pub fn adopt(pair: BoundPair) -> Result<LegSockets, (u16, std::io::Error)> {
        let BoundPair { rtp, rtcp, port } = pair;
        let rtp = MediaSocket::adopt(rtp).map_err(|e| (port, e))?;
        let rtcp = MediaSocket::adopt(rtcp).map_err(|e| (port, e))?;
        Ok(LegSockets { rtp, rtcp, port })
    }
}

/// Binds one non-blocking UDP socket (as the reactor needs it).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[derive(Debug)]
pub struct PortPool {
    bind_ip: IpAddr,
    min: u16,
    max: u16,
    free: Mutex<VecDeque<u16>>,
    in_use: Mutex<usize>,
}

impl PortPool {
    pub fn new(bind_ip: IpAddr, min: u16, max: u16) -> Result<Self, EngineError> {
        if min > max {
            return Err(EngineError::Config(format!(
                "port_min {min} is above port_max {max}"
            )));
        }
        let first = if min.is_multiple_of(2) {
            min
        } else {
            min.saturating_add(1)
        };
        let free: VecDeque<u16> = (first..max).step_by(2).collect();
        if free.is_empty() {
            return Err(EngineError::Config(format!(
                "range {min}..={max} holds no even/odd port pair"
            )));
        }
        Ok(PortPool {
            bind_ip,
            min,
            max,
            free: Mutex::new(free),
            in_use: Mutex::new(0),
        })
    }

    /// A pool with no ports (an unusable configuration): every allocation fails.
    pub fn empty(bind_ip: IpAddr, min: u16, max: u16) -> Self {
        PortPool {
            bind_ip,
            min,
            max,
            free: Mutex::new(VecDeque::new()),
            in_use: Mutex::new(0),
        }
    }

    fn take_candidate(&self) -> Option<u16> {
        self.free.lock().ok()?.pop_front()
    }

    fn put_back(&self, port: u16) {
        if let Ok(mut free) = self.free.lock() {
            free.push_back(port);
        }
    }

    /// Binds the next free pair; tries each free pair at most once.
    pub fn allocate(&self) -> Result<BoundPair, EngineError> {
        let attempts = self.free.lock().map(|f| f.len()).unwrap_or(0);
        for _ in 0..attempts {
            let Some(port) = self.take_candidate() else {
                break;
            };
            let rtp = bind(SocketAddr::new(self.bind_ip, port));
            let rtcp = bind(SocketAddr::new(self.bind_ip, port.wrapping_add(1)));
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => {
                    if let Ok(mut n) = self.in_use.lock() {
                        *n += 2;
                    }
                    return Ok(BoundPair { rtp, rtcp, port });
                }
                (rtp, rtcp) => {
                    tracing::debug!(
                        port,
                        rtp_ok = rtp.is_ok(),
                        rtcp_ok = rtcp.is_ok(),
                        "port pair refused by the OS; skipped"
                    );
                    drop((rtp, rtcp));
                    self.put_back(port);
                }
            }
        }
        Err(EngineError::NoPorts {
            min: self.min,
            max: self.max,
        })
    }

    /// Returns a pair whose sockets have been dropped.
    pub fn release(&self, port: u16) {
        self.put_back(port);
        if let Ok(mut n) = self.in_use.lock() {
            *n = n.saturating_sub(2);
        }
    }

    /// UDP ports currently bound (two per leg).
    pub fn in_use(&self) -> usize {
        self.in_use.lock().map(|n| *n).unwrap_or(0)
    }
}

//! `SignallingOnlyMedia`: a [`MediaControl`] that negotiates media but moves none.
//!
//! It allocates RTP port numbers from a configured range, answers and writes SDP that points
//! at callscope's media address, and tracks each leg's codecs and direction — so calls set
//! up, hold and resume exactly as they will with real media. It opens NO sockets and relays
//! NO RTP: the two parties of a call hear nothing from each other through it. The media
//! crate (issue 4) replaces it with a relay that binds these ports for real.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::media::{Codec, Direction, LegRole, MediaControl, MediaError};
use crate::negotiation::Negotiator;
use crate::sdp;

#[derive(Debug, Clone)]
pub struct SignallingMediaConfig {
    /// The address written into c= lines (where RTP would be sent to us).
    pub address: IpAddr,
    /// First and last RTP port (inclusive); only even ports are used, RTCP = RTP + 1.
    pub port_min: u16,
    pub port_max: u16,
    /// Codecs we accept, in our preference order.
    pub codecs: Vec<Codec>,
}

impl SignallingMediaConfig {
    pub fn loopback(port_min: u16, port_max: u16) -> Self {
        Self {
            address: IpAddr::from([127, 0, 0, 1]),
            port_min,
            port_max,
            codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus, Codec::TelephoneEvent],
        }
    }
}

#[derive(Default)]
struct PortPool {
    /// Even ports in use.
    used: BTreeSet<u16>,
    /// Where the next search starts, so freed ports are not reused at once.
    next: u16,
}

struct State {
    ports: PortPool,
    sessions: Negotiator,
}

/// Signalling-only media (see the module documentation: no RTP is relayed).
pub struct SignallingOnlyMedia {
    config: SignallingMediaConfig,
    state: Mutex<State>,
}

impl SignallingOnlyMedia {
    pub fn new(config: SignallingMediaConfig) -> Self {
        let ports = PortPool {
            used: BTreeSet::new(),
            next: config.port_min,
        };
        let sessions = Negotiator::new(config.address, config.codecs.clone());
        Self {
            config,
            state: Mutex::new(State { ports, sessions }),
        }
    }

    /// Ports currently allocated (each leg holds one RTP port; RTCP is the next one).
    pub fn ports_in_use(&self) -> usize {
        self.lock().ports.used.len()
    }

    /// Calls with at least one open leg.
    pub fn open_calls(&self) -> usize {
        self.lock().sessions.open_calls()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the port sets stay
        // consistent enough to keep serving (worst case a port is leaked).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn allocate_port(&self, state: &mut PortPool) -> Result<u16, MediaError> {
        let min = self
            .config
            .port_min
            .saturating_add(self.config.port_min % 2);
        let max = self.config.port_max.saturating_sub(1); // RTCP needs port + 1
        if min > max {
            return Err(MediaError::NoPorts);
        }
        let span = u32::from(max - min) / 2 + 1;
        let mut candidate = if state.next < min || state.next > max {
            min
        } else {
            state.next - (state.next - min) % 2
        };
        for _ in 0..span {
            if !state.used.contains(&candidate) {
                state.used.insert(candidate);
                state.next = if candidate.saturating_add(2) > max {
                    min
                } else {
                    candidate + 2
                };
                return Ok(candidate);
            }
            candidate = if candidate.saturating_add(2) > max {
                min
            } else {
                candidate + 2
            };
        }
        Err(MediaError::NoPorts)
    }

    fn open_leg_sync(
        &self,
        call_id: &str,
        role: LegRole,
        remote_sdp: Option<&str>,
    ) -> Result<String, MediaError> {
        // Parse outside the lock: hostile SDP costs only its own parse.
        let offer = match remote_sdp {
            Some(text) => Some(
                sdp::parse(text.as_bytes())
                    .map_err(|e| MediaError::NotAcceptable(e.to_string()))?,
            ),
            None => None,
        };
        let mut state = self.lock();
        let state = &mut *state;
        // Re-opening a leg (e.g. after a transfer put a new party in this slot) keeps its
        // port: only the far end changed.
        let port = match state.sessions.leg_port(call_id, role) {
            Some(port) => port,
            None => self.allocate_port(&mut state.ports)?,
        };
        match state.sessions.open_leg(call_id, role, offer.as_ref(), port) {
            Ok((body, _)) => Ok(body),
            Err(e) => {
                if state.sessions.leg_port(call_id, role).is_none() {
                    state.ports.used.remove(&port);
                }
                Err(e)
            }
        }
    }

    fn remote_answer_sync(
        &self,
        call_id: &str,
        role: LegRole,
        remote_sdp: &str,
    ) -> Result<(), MediaError> {
        let answer = sdp::parse(remote_sdp.as_bytes())
            .map_err(|e| MediaError::NotAcceptable(e.to_string()))?;
        self.lock()
            .sessions
            .remote_answer(call_id, role, &answer)
            .map(|_| ())
    }

    fn set_direction_sync(
        &self,
        call_id: &str,
        role: LegRole,
        direction: Direction,
    ) -> Result<String, MediaError> {
        self.lock()
            .sessions
            .set_direction(call_id, role, direction)
            .map(|(body, _)| body)
    }

    /// Our current direction and remote RTP port of a leg, for tests and diagnostics.
    pub fn leg_status(&self, call_id: &str, role: LegRole) -> Option<(Direction, Option<u16>)> {
        self.lock()
            .sessions
            .leg(call_id, role)
            .map(|leg| (leg.direction, leg.remote.as_ref().map(|r| r.port)))
    }
}

impl MediaControl for SignallingOnlyMedia {
    fn open_leg<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        remote_sdp: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        let result = self.open_leg_sync(call_id, leg, remote_sdp);
        async move { result }.boxed()
    }

    fn remote_answer<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        remote_sdp: &'a str,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        let result = self.remote_answer_sync(call_id, leg, remote_sdp);
        async move { result }.boxed()
    }

    fn set_direction<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        direction: Direction,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        let result = self.set_direction_sync(call_id, leg, direction);
        async move { result }.boxed()
    }

    fn close_call<'a>(&'a self, call_id: &'a str) -> BoxFuture<'a, ()> {
        let mut state = self.lock();
        for port in state.sessions.close_call(call_id) {
            state.ports.used.remove(&port);
        }
        drop(state);
        async {}.boxed()
    }
}

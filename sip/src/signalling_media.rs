//! `SignallingOnlyMedia`: a [`MediaControl`] that negotiates media but moves none.
//!
//! It allocates RTP port numbers from a configured range, answers and writes SDP that points
//! at callscope's media address, and tracks each leg's codecs and direction — so calls set
//! up, hold and resume exactly as they will with real media. It opens NO sockets and relays
//! NO RTP: the two parties of a call hear nothing from each other through it. The media
//! crate (issue 4) replaces it with a relay that binds these ports for real.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::media::{Codec, Direction, LegRole, MediaControl, MediaError};
use crate::sdp::{self, LocalSdp, PayloadFormat};

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

#[derive(Debug, Clone)]
struct LegState {
    port: u16,
    formats: Vec<PayloadFormat>,
    direction: Direction,
    version: u64,
    remote_port: Option<u16>,
}

#[derive(Default)]
struct State {
    /// Even ports in use.
    used: BTreeSet<u16>,
    /// Where the next search starts, so freed ports are not reused at once.
    next: u16,
    calls: HashMap<String, HashMap<LegRoleKey, LegState>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LegRoleKey {
    Caller,
    Callee,
}

impl From<LegRole> for LegRoleKey {
    fn from(role: LegRole) -> Self {
        match role {
            LegRole::Caller => LegRoleKey::Caller,
            LegRole::Callee => LegRoleKey::Callee,
        }
    }
}

/// Signalling-only media (see the module documentation: no RTP is relayed).
pub struct SignallingOnlyMedia {
    config: SignallingMediaConfig,
    state: Mutex<State>,
}

impl SignallingOnlyMedia {
    pub fn new(config: SignallingMediaConfig) -> Self {
        let next = config.port_min;
        Self {
            config,
            state: Mutex::new(State {
                next,
                ..State::default()
            }),
        }
    }

    /// Ports currently allocated (each leg holds one RTP port; RTCP is the next one).
    pub fn ports_in_use(&self) -> usize {
        self.lock().used.len()
    }

    /// Calls with at least one open leg.
    pub fn open_calls(&self) -> usize {
        self.lock().calls.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the port sets stay
        // consistent enough to keep serving (worst case a port is leaked).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn allocate_port(&self, state: &mut State) -> Result<u16, MediaError> {
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

    fn render(&self, leg: &LegState, session_id: u64) -> String {
        sdp::build(&LocalSdp {
            session_id,
            version: leg.version,
            address: self.config.address,
            port: leg.port,
            formats: leg.formats.clone(),
            direction: leg.direction,
            ptime: Some(20),
        })
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
        let key = LegRoleKey::from(role);
        // Re-opening a leg (e.g. after a transfer put a new party in this slot) keeps its
        // port: only the far end changed.
        let existing = state
            .calls
            .get(call_id)
            .and_then(|legs| legs.get(&key))
            .map(|leg| (leg.port, leg.version));
        let (formats, direction, remote_port) = match &offer {
            Some(offer) => {
                let negotiated = sdp::answer_formats(offer, &self.config.codecs)
                    .map_err(|e| MediaError::NotAcceptable(e.to_string()))?;
                let remote_port = offer.audio().map(|a| a.port);
                (
                    negotiated.formats,
                    sdp::answer_direction(offer.audio_direction()),
                    remote_port,
                )
            }
            None => {
                // Our offer: if the other leg already negotiated, offer its codecs first so
                // that a later relay need not transcode.
                let other = match key {
                    LegRoleKey::Caller => LegRoleKey::Callee,
                    LegRoleKey::Callee => LegRoleKey::Caller,
                };
                let mut codecs: Vec<Codec> = state
                    .calls
                    .get(call_id)
                    .and_then(|legs| legs.get(&other))
                    .map(|leg| leg.formats.iter().filter_map(|f| f.codec()).collect())
                    .unwrap_or_default();
                for codec in &self.config.codecs {
                    if !codecs.contains(codec) {
                        codecs.push(*codec);
                    }
                }
                (sdp::default_formats(&codecs), Direction::SendRecv, None)
            }
        };
        // A re-opened leg continues its o= version: if the far end stays (a transfer that
        // fails), a version going backwards would be a protocol error (RFC 3264 §8).
        let (port, version) = match existing {
            Some((port, version)) => (port, version.saturating_add(1)),
            None => (self.allocate_port(&mut state)?, 1),
        };
        let session_id = session_id_for(call_id);
        let leg = LegState {
            port,
            formats,
            direction,
            version,
            remote_port,
        };
        let body = self.render(&leg, session_id);
        state
            .calls
            .entry(call_id.to_string())
            .or_default()
            .insert(key, leg);
        Ok(body)
    }

    fn remote_answer_sync(
        &self,
        call_id: &str,
        role: LegRole,
        remote_sdp: &str,
    ) -> Result<(), MediaError> {
        let answer = sdp::parse(remote_sdp.as_bytes())
            .map_err(|e| MediaError::NotAcceptable(e.to_string()))?;
        let mut state = self.lock();
        let leg = state
            .calls
            .get_mut(call_id)
            .and_then(|legs| legs.get_mut(&LegRoleKey::from(role)))
            .ok_or_else(|| MediaError::Other(format!("no open {role:?} leg for this call")))?;
        // The answer (or a re-offer) must keep at least one codec we listed.
        let ours: Vec<Codec> = leg.formats.iter().filter_map(|f| f.codec()).collect();
        let negotiated = sdp::answer_formats(&answer, &ours)
            .map_err(|e| MediaError::NotAcceptable(e.to_string()))?;
        leg.formats = negotiated.formats;
        leg.remote_port = answer.audio().map(|a| a.port);
        Ok(())
    }

    fn set_direction_sync(
        &self,
        call_id: &str,
        role: LegRole,
        direction: Direction,
    ) -> Result<String, MediaError> {
        let mut state = self.lock();
        let leg = state
            .calls
            .get_mut(call_id)
            .and_then(|legs| legs.get_mut(&LegRoleKey::from(role)))
            .ok_or_else(|| MediaError::Other(format!("no open {role:?} leg for this call")))?;
        leg.direction = direction;
        // A changed session must carry a new o= version (RFC 3264 §8).
        leg.version = leg.version.saturating_add(1);
        let leg = leg.clone();
        Ok(self.render(&leg, session_id_for(call_id)))
    }

    /// Our current direction and remote RTP port of a leg, for tests and diagnostics.
    pub fn leg_status(&self, call_id: &str, role: LegRole) -> Option<(Direction, Option<u16>)> {
        let state = self.lock();
        state
            .calls
            .get(call_id)
            .and_then(|legs| legs.get(&LegRoleKey::from(role)))
            .map(|leg| (leg.direction, leg.remote_port))
    }
}

/// A stable o= session id per call (any 63-bit number is fine; stable across versions).
fn session_id_for(call_id: &str) -> u64 {
    // FNV-1a: small, deterministic, no dependency.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in call_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash >> 1
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
        if let Some(legs) = state.calls.remove(call_id) {
            for leg in legs.values() {
                state.used.remove(&leg.port);
            }
        }
        drop(state);
        async {}.boxed()
    }
}

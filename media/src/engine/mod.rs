//! The tokio shell that makes calls carry audio: one task per call owns both legs' sockets
//! and drives the sans-IO cores (RTP/RTCP, jitter buffer, codecs, DTMF, recorder timeline).
//!
//! Use from call control (the B2BUA):
//! 1. `allocate_leg(call, A)` / `(call, B)` before writing SDP: the RTP port (even; RTCP is
//!    port + 1) is bound when this returns. Asking again gives the same port.
//! 2. `configure_leg` with what the offer/answer settled, and again on every re-INVITE
//!    (hold → `direction`, new codec, new far end). Same codec family on both legs → relay
//!    (payload bytes untouched, our own SSRC/sequence/timestamp); otherwise transcode.
//! 3. `start_recording` once both legs are configured (the file's rate is the higher of the
//!    legs' native rates known at that moment), `pause_recording`/`resume_recording` any time.
//! 4. `subscribe_taps` for the transcription side (16 kHz mono per role, bounded; a slow
//!    reader loses frames, counted and announced by `MediaEvent::TapOverflow`).
//! 5. `close_call` at hangup: the report carries per-leg quality, the finished recording
//!    (fsynced and renamed), pauses, DTMF and drop counters; the ports go back to the pool.
//!
//! WebRTC legs (browsers): instead of steps 1–2 for that leg, `open_webrtc_leg(call, side,
//! offer)` binds the port, answers the browser's offer (ICE-lite, DTLS-SRTP passive, Opus
//! preferred, PCMU/PCMA fallback, telephone-event) and returns the answer SDP; trickled
//! browser candidates go to `add_remote_candidate`. Do not `allocate_leg` that side first.
//! `MediaEvent::WebRtc` reports connected / disconnected / failed (with the reason, e.g. a
//! DTLS fingerprint mismatch); `LegQuality::webrtc` carries the same state. Everything else
//! (recording, taps, DTMF, relay to another Opus leg or transcoding) is as for SIP legs.
//!
//! Live controls while the call is up (the softphone's buttons, transfers, click-to-call):
//! `set_muted` (silence from one side, continuous stream to the other), `send_dtmf` (RFC 4733
//! digits in the leg's own stream), `play_tone` (ringback generated into a leg) and
//! `release_leg` (close one leg; a new leg on that side bridges again, any codec, same
//! recording). Hold is mute of both sides plus the SIP re-INVITE's direction.
//!
//! Roles: the recording's left channel (and `Channel::Agent` taps) is `agent_side`; before a
//! recording names it, taps treat leg B (the callee) as the agent.
//!
//! Modules, one job each:
//! - `types`: the public vocabulary (config, leg parameters, events, reports).
//! - `ports`: RTP/RTCP port pairs from the configured range.
//! - `call`: the per-call task (sockets + control channel + timers, polled as they fire).
//! - `wake_set`: one waker per source a call task waits on, so a pass polls only those that fired.
//! - `threads`: the media threads the call tasks run on (or the caller's runtime).
//! - `grid`: the process-wide 20 ms grid every call's timers tick on.
//! - `leg`: per-leg state (latching, stats, outbound stream, DTMF).
//! - `rewrite`: the continuous outbound stream (SSRC/sequence/timestamp rewriting).
//! - `transcode`: jitter buffer → decode → resample → encode for one direction.
//! - `generate`: what callscope itself sends a leg (sent digits, tones, mute silence).
//! - `audio`, `disk`: recording timeline + taps, and the writer threads they share.
//! - `recv_batch`: batched socket reads (`recvmmsg`) that clear readiness themselves, each
//!   datagram stamped with its kernel arrival time.
//! - `socket`: a leg's UDP socket, registered with the reactor for reading only, or, while
//!   the call transcodes, off the reactor and read on the call's 20 ms playout tick.
//! - `rtcp_session`: our reports and what the far end's reports tell us.
//! - `resample`: sample-rate conversion for those paths (`codec::Resampler` inside).
//! - `webrtc`: a WebRTC leg's str0m session (ICE-lite, DTLS-SRTP, RTP mode).
//!
//! The engine's own methods only touch a map of calls under a mutex (control path); the
//! packet path never takes it.

mod audio;
mod call;
mod disk;
mod generate;
mod grid;
mod leg;
mod playback_rate;
mod ports;
mod recv_batch;
pub mod resample;
mod rewrite;
mod rtcp_session;
mod socket;
mod threads;
mod transcode;
mod types;
mod wake_set;
mod webrtc;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::codec::{CodecSpec, decoder_for, encoder_for};
use crate::recorder::{RecordingWriter, WriterConfig};

pub use rewrite::{OutboundStream, Rewritten};
pub use types::{
    CallMediaReport, CallMediaSnapshot, DtmfRecord, EngineConfig, EngineError, LegParams,
    LegQuality, LegSide, MediaDirection, MediaEvent, MuteRecord, OpusModeCounts, PauseRecord,
    RecordingLoss, RecordingSpec, ReleasedLeg, TapFrame, Tone, WebRtcError, WebRtcState,
};

/// Most digits one `send_dtmf` call may carry.
pub const MAX_DTMF_DIGITS: usize = 32;

use call::{CallTask, Control};
use disk::DiskPool;
use ports::PortPool;
use threads::Spawner;

struct CallEntry {
    control: mpsc::UnboundedSender<Control>,
    ports: [Option<u16>; 2],
    codecs: [Option<CodecSpec>; 2],
    /// Each leg's negotiated telephone-event payload type (for `send_dtmf`'s early error).
    telephone_events: [Option<u8>; 2],
    recording: bool,
    paused: bool,
    snapshot: Arc<Mutex<CallMediaSnapshot>>,
}

struct Inner {
    config: Arc<EngineConfig>,
    /// DTLS certificate and crypto for WebRTC legs, made on first use.
    webrtc_identity: std::sync::OnceLock<Result<webrtc::WebRtcIdentity, WebRtcError>>,
    ports: PortPool,
    calls: Mutex<HashMap<String, CallEntry>>,
    events: mpsc::Sender<MediaEvent>,
    seeds: RandomState,
    /// RTP packets sent to the far leg by all calls (each call adds its count every
    /// housekeeping tick and at close).
    relayed: Arc<AtomicU64>,
    /// The threads that write recordings.
    disk: DiskPool,
    /// Where call tasks run (declared last: dropped after everything above).
    spawner: Spawner,
}

/// Handle to the media engine; cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

impl MediaEngine {
    /// Builds the engine and the receiver of its events. An invalid port range yields an
    /// engine whose `allocate_leg` always fails with the reason (no panic).
    pub fn new(config: EngineConfig) -> (MediaEngine, mpsc::Receiver<MediaEvent>) {
        let (events, rx) = mpsc::channel(config.event_capacity.max(1));
        let ports =
            PortPool::new(config.bind_ip, config.port_min, config.port_max).unwrap_or_else(|e| {
                tracing::error!(error = %e, "media port range unusable");
                PortPool::empty(config.bind_ip, config.port_min, config.port_max)
            });
        let spawner = Spawner::new(config.media_threads);
        let disk = DiskPool::start(config.recording_threads);
        let inner = Inner {
            config: Arc::new(config),
            webrtc_identity: std::sync::OnceLock::new(),
            ports,
            calls: Mutex::new(HashMap::new()),
            events,
            seeds: RandomState::new(),
            relayed: Arc::new(AtomicU64::new(0)),
            disk,
            spawner,
        };
        (
            MediaEngine {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    fn with_call<T>(
        &self,
        call_id: &str,
        f: impl FnOnce(&mut CallEntry) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let mut calls = self
            .inner
            .calls
            .lock()
            .map_err(|_| EngineError::CallEnded)?;
        let entry = calls
            .get_mut(call_id)
            .ok_or_else(|| EngineError::UnknownCall(call_id.to_string()))?;
        f(entry)
    }

    /// Binds the leg's RTP and RTCP sockets now, so the port written into SDP is ours;
    /// asking again for the same call and side returns the same port.
    pub async fn allocate_leg(&self, call_id: &str, side: LegSide) -> Result<u16, EngineError> {
        if let Ok(Some(port)) = self.with_call(call_id, |e| Ok(e.ports[side.index()])) {
            return Ok(port);
        }
        let sockets = self.inner.ports.allocate()?;
        let port = sockets.port;
        let mut calls = self
            .inner
            .calls
            .lock()
            .map_err(|_| EngineError::CallEnded)?;
        let entry = calls.entry(call_id.to_string()).or_insert_with(|| {
            let (control, rx) = mpsc::unbounded_channel();
            let snapshot = Arc::new(Mutex::new(CallMediaSnapshot::default()));
            let task = CallTask {
                control: rx,
                call_id: call_id.to_string(),
                config: self.inner.config.clone(),
                events: self.inner.events.clone(),
                snapshot: snapshot.clone(),
                seed: self.inner.seeds.hash_one(call_id),
                relayed_total: self.inner.relayed.clone(),
                disk: self.inner.disk.clone(),
            };
            self.inner.spawner.spawn(task.run());
            CallEntry {
                control,
                ports: [None, None],
                codecs: [None, None],
                telephone_events: [None, None],
                recording: false,
                paused: false,
                snapshot,
            }
        });
        if let Some(existing) = entry.ports[side.index()] {
            // Lost a race with a concurrent call for the same leg: keep the first.
            drop(calls);
            drop(sockets);
            self.inner.ports.release(port);
            return Ok(existing);
        }
        entry.ports[side.index()] = Some(port);
        entry
            .control
            .send(Control::AddLeg(side, sockets))
            .map_err(|_| EngineError::CallEnded)?;
        Ok(port)
    }

    /// Opens a WebRTC leg for a browser's offer and returns our answer SDP: ICE-lite with one
    /// host candidate (the engine's bind address or `webrtc_public_ip`, on the leg's port),
    /// DTLS-SRTP with `a=setup:passive`, audio only (Opus preferred, PCMU/PCMA fallback,
    /// telephone-event). The leg then bridges like any other (relay to an Opus leg, else
    /// transcoding); its connection progress arrives as [`MediaEvent::WebRtc`]. Trickled
    /// browser candidates go to [`MediaEngine::add_remote_candidate`].
    pub async fn open_webrtc_leg(
        &self,
        call_id: &str,
        side: LegSide,
        offer_sdp: &str,
    ) -> Result<String, EngineError> {
        let identity = self
            .inner
            .webrtc_identity
            .get_or_init(webrtc::WebRtcIdentity::generate)
            .clone()?;
        if self
            .with_call(call_id, |e| Ok(e.ports[side.index()].is_some()))
            .unwrap_or(false)
        {
            // One session per leg: a renegotiation would need str0m's re-offer handling.
            return Err(
                WebRtcError::Setup(format!("leg {side:?} of {call_id} is already open")).into(),
            );
        }
        let port = self.allocate_leg(call_id, side).await?;
        let ip = self
            .inner
            .config
            .webrtc_public_ip
            .unwrap_or(self.inner.config.bind_ip);
        let local = std::net::SocketAddr::new(ip, port);
        let accepted = match webrtc::WebRtcSession::accept_offer(
            &identity,
            local,
            offer_sdp,
            self.inner.config.webrtc_audio_rate,
            std::time::Instant::now(),
        ) {
            Ok(a) => a,
            Err(e) => {
                // The leg's ports go back with the call if nothing else uses it.
                self.drop_leg_if_alone(call_id);
                return Err(e.into());
            }
        };
        let webrtc::Accepted {
            session,
            answer_sdp,
            params,
        } = accepted;
        self.with_call(call_id, |e| {
            e.codecs[side.index()] = Some(params.codec);
            e.telephone_events[side.index()] = params.telephone_event_pt;
            e.control
                .send(Control::AttachWebRtc(side, Box::new(session), params))
                .map_err(|_| EngineError::CallEnded)
        })?;
        Ok(answer_sdp)
    }

    /// Adds a candidate the browser trickled (`candidate:…`, with or without `a=`; an empty
    /// line, the end-of-candidates marker, is accepted and ignored).
    pub fn add_remote_candidate(
        &self,
        call_id: &str,
        side: LegSide,
        candidate_line: &str,
    ) -> Result<(), EngineError> {
        let line = candidate_line.trim();
        if line.is_empty() || line == "a=end-of-candidates" || line == "end-of-candidates" {
            return Ok(());
        }
        let candidate = webrtc::parse_candidate(line)?;
        self.with_call(call_id, |e| {
            if e.ports[side.index()].is_none() || e.codecs[side.index()].is_none() {
                return Err(EngineError::NotWebRtc {
                    call_id: call_id.to_string(),
                    side,
                });
            }
            e.control
                .send(Control::RemoteCandidate(side, candidate))
                .map_err(|_| EngineError::CallEnded)
        })
    }

    /// After a failed `open_webrtc_leg` that created the call: no leg is left half-made.
    fn drop_leg_if_alone(&self, call_id: &str) {
        let only_this = self
            .with_call(call_id, |e| {
                Ok(e.ports.iter().flatten().count() == 1 && e.codecs.iter().all(Option::is_none))
            })
            .unwrap_or(false);
        if only_this {
            let engine = self.clone();
            let id = call_id.to_string();
            tokio::spawn(async move {
                engine.close_call(&id).await;
            });
        }
    }

    /// Applies a leg's negotiated parameters; call again on every re-INVITE.
    pub fn configure_leg(
        &self,
        call_id: &str,
        side: LegSide,
        params: LegParams,
    ) -> Result<(), EngineError> {
        // Refuse a codec this build cannot handle before touching the call.
        decoder_for(&params.codec)?;
        encoder_for(&params.codec)?;
        self.with_call(call_id, |e| {
            if e.ports[side.index()].is_none() {
                return Err(EngineError::UnknownLeg {
                    call_id: call_id.to_string(),
                    side,
                });
            }
            e.codecs[side.index()] = Some(params.codec);
            e.telephone_events[side.index()] = params.telephone_event_pt;
            e.control
                .send(Control::Configure(side, params))
                .map_err(|_| EngineError::CallEnded)
        })
    }

    /// Closes one leg — its RTP/RTCP sockets, or its WebRTC session (DTLS close_notify) —
    /// and returns its port to the pool, while the call, its recording and its other leg go
    /// on. Used when the party on that side changes: a browser answers a ring group whose
    /// SIP offer had already allocated the callee leg, or a transfer to another agent.
    ///
    /// Until a new leg on `side` is configured, the recording gets silence on that side's
    /// channel and the other leg gets encoded silence (its stream stays continuous). Then
    /// `allocate_leg` + `configure_leg` or `open_webrtc_leg` for the same side work again,
    /// with any codec: bridging (relay or transcoding) resumes with the new leg. The released
    /// leg's quality is announced by [`MediaEvent::LegReleased`] and kept in the final
    /// report's `released_legs`; a mute of that side ends with it. Tones and queued digits
    /// towards it are dropped.
    pub async fn release_leg(&self, call_id: &str, side: LegSide) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        let port = self.with_call(call_id, |e| {
            let Some(port) = e.ports[side.index()] else {
                return Err(EngineError::UnknownLeg {
                    call_id: call_id.to_string(),
                    side,
                });
            };
            e.control
                .send(Control::ReleaseLeg(side, reply))
                .map_err(|_| EngineError::CallEnded)?;
            // From here on the side is free: a new allocate_leg queues its AddLeg behind
            // this release on the call's ordered control channel.
            e.ports[side.index()] = None;
            e.codecs[side.index()] = None;
            e.telephone_events[side.index()] = None;
            Ok(port)
        })?;
        // The port goes back only once its sockets are closed, so a new leg cannot get a
        // port still bound. If the task has gone, its sockets went with it.
        let _ = answer.await;
        self.inner.ports.release(port);
        Ok(())
    }

    /// Mutes (or unmutes) the audio coming FROM `side`: it no longer reaches the other leg,
    /// the recording or the taps. The other leg keeps receiving one continuous RTP stream
    /// (encoded silence in its own codec, sequence and timestamps running on: phones record
    /// gaps as faults) and the recording's channel is silence of the right length. Works for
    /// relayed and transcoded calls and for WebRTC legs. Each change that takes effect emits
    /// [`MediaEvent::Muted`] with its time, and the report's `mutes` lists the intervals.
    ///
    /// Hold is muting both sides (plus the SIP re-INVITE, whose direction `configure_leg`
    /// applies): no separate primitive is needed.
    pub fn set_muted(&self, call_id: &str, side: LegSide, muted: bool) -> Result<(), EngineError> {
        self.with_call(call_id, |e| {
            if e.ports[side.index()].is_none() {
                return Err(EngineError::UnknownLeg {
                    call_id: call_id.to_string(),
                    side,
                });
            }
            e.control
                .send(Control::SetMuted(side, muted))
                .map_err(|_| EngineError::CallEnded)
        })
    }

    /// Plays `digits` (0-9, `*`, `#`, A-D; at most [`MAX_DTMF_DIGITS`]) to the leg `to_side`
    /// as RFC 4733 telephone-events with that leg's negotiated payload type: 100 ms per
    /// digit, 80 ms of silence between digits, the end packet sent three times, inside the
    /// same outgoing sequence/timestamp space as the audio relayed or transcoded to that
    /// leg. Used for the agent's keypad (IVRs, extensions). While digits play, the audio
    /// towards that leg is held back; the digits are not written to the recording (PCI).
    /// Each digit is announced by [`MediaEvent::Dtmf`] with `sent: true` once played.
    /// Digits asked for while others play are queued after them.
    pub fn send_dtmf(
        &self,
        call_id: &str,
        to_side: LegSide,
        digits: &str,
    ) -> Result<(), EngineError> {
        let events = parse_digits(digits)?;
        self.with_call(call_id, |e| {
            if e.ports[to_side.index()].is_none() {
                return Err(EngineError::UnknownLeg {
                    call_id: call_id.to_string(),
                    side: to_side,
                });
            }
            if e.telephone_events[to_side.index()].is_none() {
                return Err(EngineError::NoTelephoneEvent {
                    call_id: call_id.to_string(),
                    side: to_side,
                });
            }
            e.control
                .send(Control::SendDtmf(to_side, events))
                .map_err(|_| EngineError::CallEnded)
        })
    }

    /// Generates `tone` into the leg `side` (encoded in its codec; RTP or WebRTC), e.g.
    /// ringback in the agent's browser during click-to-call while the customer's phone rings
    /// without early media. `None` stops it; it also stops by itself as soon as audio from
    /// the other leg arrives for this leg. Either way [`MediaEvent::ToneStopped`] says so.
    /// The tone is not recorded. A leg not yet configured starts it once it is.
    pub fn play_tone(
        &self,
        call_id: &str,
        side: LegSide,
        tone: Option<Tone>,
    ) -> Result<(), EngineError> {
        self.with_call(call_id, |e| {
            if e.ports[side.index()].is_none() {
                return Err(EngineError::UnknownLeg {
                    call_id: call_id.to_string(),
                    side,
                });
            }
            e.control
                .send(Control::PlayTone(side, tone))
                .map_err(|_| EngineError::CallEnded)
        })
    }

    /// Starts the two-channel recording (`.part` file created now).
    pub fn start_recording(&self, call_id: &str, spec: RecordingSpec) -> Result<(), EngineError> {
        let config = &self.inner.config;
        let flush = config.flush_interval;
        self.with_call(call_id, |e| {
            if e.recording {
                return Err(EngineError::AlreadyRecording(call_id.to_string()));
            }
            // The legs' native rate (an Opus leg's as `opus_recording_rate` says); the
            // lower-rate leg is resampled up to it. The call task's timeline picks the same.
            let rate = e
                .codecs
                .iter()
                .flatten()
                .map(|c| config.recording_pcm_rate(c))
                .max()
                .unwrap_or(8000);
            let mut cfg = WriterConfig::new(rate);
            cfg.flush_interval = flush;
            let writer = RecordingWriter::create(&spec.final_path, cfg, std::time::Instant::now())
                .map_err(|err| EngineError::Recording(err.to_string()))?;
            e.control
                .send(Control::StartRecording {
                    writer,
                    agent_side: spec.agent_side,
                })
                .map_err(|_| EngineError::CallEnded)?;
            e.recording = true;
            Ok(())
        })
    }

    /// Pauses the recording: silence is written until `resume_recording`.
    pub fn pause_recording(&self, call_id: &str) -> Result<(), EngineError> {
        self.with_call(call_id, |e| {
            if !e.recording {
                return Err(EngineError::NotRecording(call_id.to_string()));
            }
            if !e.paused {
                e.control
                    .send(Control::Pause)
                    .map_err(|_| EngineError::CallEnded)?;
                e.paused = true;
            }
            Ok(())
        })
    }

    pub fn resume_recording(&self, call_id: &str) -> Result<(), EngineError> {
        self.with_call(call_id, |e| {
            if !e.recording {
                return Err(EngineError::NotRecording(call_id.to_string()));
            }
            if e.paused {
                e.control
                    .send(Control::Resume)
                    .map_err(|_| EngineError::CallEnded)?;
                e.paused = false;
            }
            Ok(())
        })
    }

    /// Whether a call is being recorded and whether that recording is paused, as the last
    /// pause/resume left it (the call's task applies them in order).
    pub fn recording_state(&self, call_id: &str) -> Result<(bool, bool), EngineError> {
        self.with_call(call_id, |e| Ok((e.recording, e.paused)))
    }

    /// Decoded 16 kHz audio per role. Each subscriber gets its own bounded channel; frames
    /// a slow subscriber cannot take are dropped and counted.
    pub fn subscribe_taps(
        &self,
        call_id: &str,
    ) -> Result<mpsc::Receiver<crate::engine::TapFrame>, EngineError> {
        let capacity = self.inner.config.tap_capacity.max(1);
        self.with_call(call_id, |e| {
            let (tx, rx) = mpsc::channel(capacity);
            e.control
                .send(Control::SubscribeTaps(tx))
                .map_err(|_| EngineError::CallEnded)?;
            Ok(rx)
        })
    }

    /// Quality figures as of the call task's last housekeeping tick (≤ 200 ms old).
    pub fn snapshot(&self, call_id: &str) -> Option<CallMediaSnapshot> {
        let calls = self.inner.calls.lock().ok()?;
        let entry = calls.get(call_id)?;
        entry.snapshot.lock().ok().map(|s| s.clone())
    }

    /// Stops the call's media, finishes the recording (fsync + rename) and frees its ports.
    pub async fn close_call(&self, call_id: &str) -> Option<CallMediaReport> {
        let entry = self.inner.calls.lock().ok()?.remove(call_id)?;
        let (reply, answer) = oneshot::channel();
        let sent = entry.control.send(Control::Close(reply)).is_ok();
        let result = if sent { answer.await.ok() } else { None };
        match result {
            Some((report, ports)) => {
                for port in ports {
                    self.inner.ports.release(port);
                }
                Some(report)
            }
            None => {
                // The task is gone (it can only end by a panic): its sockets were dropped
                // with it, so the ports are free again.
                for port in entry.ports.iter().flatten() {
                    self.inner.ports.release(*port);
                }
                None
            }
        }
    }

    pub fn open_calls(&self) -> usize {
        self.inner.calls.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// RTP packets sent on to the other leg (relayed or transcoded) since the engine
    /// started, by all calls; at most one housekeeping tick (200 ms) behind.
    pub fn packets_relayed(&self) -> u64 {
        self.inner.relayed.load(Ordering::Relaxed)
    }

    /// UDP ports currently bound (two per leg: RTP and RTCP).
    pub fn ports_in_use(&self) -> usize {
        self.inner.ports.in_use()
    }
}

/// Validates a `send_dtmf` string into RFC 4733 event codes.
fn parse_digits(digits: &str) -> Result<Vec<u8>, EngineError> {
    let count = digits.chars().count();
    if count == 0 {
        return Err(EngineError::InvalidDigits("no digits".into()));
    }
    if count > MAX_DTMF_DIGITS {
        return Err(EngineError::InvalidDigits(format!(
            "{count} digits, at most {MAX_DTMF_DIGITS} per request"
        )));
    }
    digits
        .chars()
        .map(|c| {
            match c {
                // Flash ('!') is not a key an agent sends.
                '!' => None,
                c => crate::dtmf::symbol_event(c),
            }
            .ok_or_else(|| EngineError::InvalidDigits(format!("{c:?} is not one of 0-9 * # A-D")))
        })
        .collect()
}

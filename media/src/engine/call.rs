//! The task that carries one call's media: it owns both legs' sockets and all per-call state,
//! and waits on the sockets, its control channel and its timers at once. Nothing on the
//! packet path locks, allocates (when relaying) or waits: sends use `try_send_to`, and the
//! recording and taps get their data through bounded channels with `try_send`.
//!
//! Timers: a housekeeping tick (timeline release to disk/taps, RTCP when due, snapshot) and,
//! only while a direction transcodes, a 20 ms pacing tick for jitter-buffer playout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use str0m::Candidate;

use crate::codec::{CodecKind, CodecSpec, packet_audio_rate, packet_mode};
use crate::dtmf::TelephoneEvent;
use crate::recorder::RecordingWriter;
use crate::rtcp::{MuxedKind, classify_muxed};
use crate::rtp::{RtpBuilder, RtpPacket};

use super::audio::{CallAudio, Recording};
use super::disk::{DiskPool, DiskWriter};
use super::generate::{GenPacket, Generator, SentDigit};
use super::grid;
use super::leg::{Leg, SourceVerdict};
use super::ports::{BoundPair, LegSockets};
use super::recv_batch::{DATAGRAM, ReadOutcome, RecvBatch, with_thread_batch};
use super::rtcp_session;
use super::socket::MediaSocket;
use super::transcode::{SYNTHETIC_SSRC, Transcoder};
use super::types::{
    CallMediaReport, CallMediaSnapshot, DtmfRecord, EngineConfig, LegParams, LegSide, MediaEvent,
    MuteRecord, RecordingLoss, ReleasedLeg, TapFrame, Tone,
};
use super::wake_set::{WakeSet, all_bits};
use super::webrtc::{SessionNews, WebRtcSession};

/// Housekeeping period: how often recorded audio moves to its disk thread and the taps.
const HOUSEKEEPING: Duration = Duration::from_millis(200);
/// Transcoding playout cadence.
const PACING: Duration = grid::GRID;
/// Source id of what the generator sends (digits, tones, silence), as the outbound mapper
/// sees it: distinct from relayed and transcoded sources, so every switch is a new run.
const GENERATED_SSRC: u32 = 0x7c0d_9e00;

pub enum Control {
    AddLeg(LegSide, BoundPair),
    /// Makes an added leg a WebRTC leg with what its offer/answer settled.
    AttachWebRtc(LegSide, Box<WebRtcSession>, LegParams),
    RemoteCandidate(LegSide, Candidate),
    Configure(LegSide, LegParams),
    StartRecording {
        writer: RecordingWriter,
        agent_side: LegSide,
    },
    Pause,
    Resume,
    SubscribeTaps(mpsc::Sender<TapFrame>),
    Close(oneshot::Sender<(CallMediaReport, Vec<u16>)>),
    /// Closes one leg (sockets or WebRTC session); replies with its port once the sockets
    /// are dropped, so the engine can put it back in the pool.
    ReleaseLeg(LegSide, oneshot::Sender<Option<u16>>),
    SetMuted(LegSide, bool),
    /// Telephone-event codes (already validated) to play to the leg.
    SendDtmf(LegSide, Vec<u8>),
    PlayTone(LegSide, Option<Tone>),
}

fn to_tokio(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at)
}

/// Which socket a datagram came in on.
#[derive(Clone, Copy)]
enum Port {
    Rtp,
    Rtcp,
}

struct State {
    call_id: String,
    config: Arc<EngineConfig>,
    started: Instant,
    legs: [Option<Leg>; 2],
    /// Per source leg (A, B): the transcoder towards the other leg, when not relaying.
    transcoders: [Option<Transcoder>; 2],
    audio: Option<CallAudio>,
    events: mpsc::Sender<MediaEvent>,
    events_dropped: u64,
    dtmf: Vec<DtmfRecord>,
    snapshot: Arc<Mutex<CallMediaSnapshot>>,
    cname: Vec<u8>,
    out_buf: Vec<u8>,
    pcm: Vec<i16>,
    recording_error: Option<String>,
    seed: u64,
    /// The engine-wide count of RTP packets sent to the other leg (relayed or transcoded).
    /// This call adds its own count at each housekeeping tick, not per packet, so calls
    /// never contend on it.
    relayed_total: Arc<AtomicU64>,
    relayed_unreported: u64,
    /// The engine's recording threads, for a recording this call starts.
    disk: DiskPool,
    /// Per target leg (A, B): what callscope itself sends there (digits, tone, silence).
    generators: [Generator; 2],
    gen_out: Vec<GenPacket>,
    /// Per source side: muted since (ms since media start).
    muted: [Option<u64>; 2],
    mutes: Vec<MuteRecord>,
    /// Per side: the leg was released and no new leg is configured yet; the other leg gets
    /// silence meanwhile so its stream stays continuous.
    released_gap: [bool; 2],
    released_legs: Vec<ReleasedLeg>,
}

pub struct CallTask {
    pub control: mpsc::UnboundedReceiver<Control>,
    pub call_id: String,
    pub config: Arc<EngineConfig>,
    pub events: mpsc::Sender<MediaEvent>,
    pub snapshot: Arc<Mutex<CallMediaSnapshot>>,
    pub seed: u64,
    pub relayed_total: Arc<AtomicU64>,
    /// The engine's recording threads.
    pub disk: DiskPool,
}

/// Which socket a batch came in on, or the error it reported.
type Arrived = (LegSide, Port, std::io::Result<()>);

/// A call's sockets in the order they are read: each leg's RTP, then each leg's RTCP.
const SOCKET_ORDER: [(LegSide, Port); 4] = [
    (LegSide::A, Port::Rtp),
    (LegSide::B, Port::Rtp),
    (LegSide::A, Port::Rtcp),
    (LegSide::B, Port::Rtcp),
];

/// The socket at `SOCKET_ORDER[index]`, if that leg has sockets.
fn socket_at(
    sockets: &[Option<LegSockets>; 2],
    index: usize,
) -> Option<(LegSide, Port, &MediaSocket)> {
    let (side, port) = SOCKET_ORDER[index];
    let socks = sockets[side.index()].as_ref()?;
    let sock = match port {
        Port::Rtp => &socks.rtp,
        Port::Rtcp => &socks.rtcp,
    };
    Some((side, port, sock))
}

/// Reads a batch from a socket the reactor watches, if it has datagrams; otherwise registers
/// `cx`'s waker for its readiness. A clocked socket is never ready this way (see
/// [`clock_sockets`]). A read that finds nothing clears the readiness, so polling again
/// registers the waker. Bounded: readiness that keeps coming back empty (events racing the
/// reads) wakes `cx` to retry at the next poll rather than spinning here.
fn poll_watched_socket(
    cx: &mut Context<'_>,
    sock: &MediaSocket,
    batch: &mut RecvBatch,
) -> Poll<std::io::Result<()>> {
    let mut attempts = 0;
    loop {
        match sock.poll_recv_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => match batch.read(sock) {
                ReadOutcome::Got => return Poll::Ready(Ok(())),
                ReadOutcome::Failed(e) => return Poll::Ready(Err(e)),
                ReadOutcome::Empty => {
                    attempts += 1;
                    if attempts >= 3 {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
            },
        }
    }
}

/// The tick's read: a batch from whichever of the call's sockets holds datagrams, without
/// waiting, clocked sockets included, starting each round at the next socket so a flooded
/// socket cannot starve the others. A clocked socket is not read again in the same tick
/// once it is known to be empty: each bit of `drained` is one of `SOCKET_ORDER`'s sockets,
/// set once a read of it came back short or empty (a second, empty `recvmmsg` per socket
/// and tick was ≈ half of a transcoding call's receive system calls).
fn read_any_socket(
    cx: &mut Context<'_>,
    sockets: &[Option<LegSockets>; 2],
    batch: &mut RecvBatch,
    start: &mut usize,
    drained: &mut u8,
) -> Option<Arrived> {
    for i in 0..SOCKET_ORDER.len() {
        let index = (*start + i) % SOCKET_ORDER.len();
        let Some((side, port, sock)) = socket_at(sockets, index) else {
            continue;
        };
        let outcome = if sock.is_clocked() {
            let bit = 1u8 << index;
            if *drained & bit != 0 {
                continue;
            }
            match batch.read(sock) {
                ReadOutcome::Got => {
                    if batch.drained() {
                        *drained |= bit;
                    }
                    Ok(())
                }
                ReadOutcome::Failed(e) => Err(e),
                ReadOutcome::Empty => {
                    *drained |= bit;
                    continue;
                }
            }
        } else {
            match poll_watched_socket(cx, sock, batch) {
                Poll::Pending => continue,
                Poll::Ready(r) => r,
            }
        };
        *start = (index + 1) % SOCKET_ORDER.len();
        return Some((side, port, outcome));
    }
    None
}

/// Takes the legs' RTP sockets off the reactor while the call transcodes, and puts them
/// back when it relays again (see `socket.rs`): a transcoding call plays out on its pacing
/// tick, which reads them first (`read_queued`), so a wake-up per arriving packet buys
/// nothing. A relaying call forwards each packet as it comes, so its sockets stay on the
/// reactor; RTCP sockets, a packet every few seconds, always do.
/// Returns whether any socket moved (one put back must be polled to register its waker).
fn clock_sockets(sockets: &mut [Option<LegSockets>; 2], clocked: bool) -> bool {
    let mut moved = false;
    for socks in sockets.iter_mut().flatten() {
        if socks.rtp.is_clocked() != clocked {
            moved = true;
            if let Err(error) = socks.rtp.set_clocked(clocked) {
                // Registering again failed: the socket stays clocked and is still read on
                // every pacing tick while there is one; say so once per attempt.
                tracing::warn!(%error, port = socks.port, "cannot watch a media socket again");
            }
        }
    }
    moved
}

/// Most batches `read_queued` takes before a playout tick (bounds a flooded socket's hold).
/// A transcoding call's clocked sockets are read only there, so it must drain a burst
/// (a sender catching up after a stall): 32 batches are up to 128 datagrams per tick.
const QUEUED_BATCHES: usize = 32;

/// Reads, without waiting, what the sockets already hold, clocked ones included. The
/// sockets are polled with a no-op waker, which replaces their own: the call's loop must
/// poll them all again with their own wakers before it next waits (every event that is not
/// a socket's marks every source due).
fn read_queued(state: &mut State, sockets: &[Option<LegSockets>; 2], start: &mut usize) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut drained = 0u8;
    with_thread_batch(|batch| {
        for _ in 0..QUEUED_BATCHES {
            let Some((side, port, r)) =
                read_any_socket(&mut cx, sockets, batch, start, &mut drained)
            else {
                break;
            };
            state.on_batch(side, port, &r, batch, sockets);
        }
    });
}

/// What a call task waits on, one waker each (see `wake_set`): the bit of source `i` is
/// `1 << i`. Sockets are `SOCKET_ORDER`'s, from `FIRST_SOCKET` on.
const SOURCE_CONTROL: u32 = 0;
const FIRST_SOCKET: u32 = 1;
const SOURCE_HOUSEKEEPING: u32 = FIRST_SOCKET + SOCKET_ORDER.len() as u32;
const SOURCE_PACING: u32 = SOURCE_HOUSEKEEPING + 1;
const SOURCE_WEBRTC_TIMER: u32 = SOURCE_PACING + 1;
const SOURCES: u32 = SOURCE_WEBRTC_TIMER + 1;
const SOCKET_SOURCES: u32 = ((1 << SOCKET_ORDER.len()) - 1) << FIRST_SOCKET;

/// What a pass of the call's loop found.
enum Woke {
    Control(Option<Control>),
    Batch(Arrived),
    Housekeeping,
    Pacing,
    WebRtcTimer,
}

impl CallTask {
    pub async fn run(self) {
        let CallTask {
            mut control,
            call_id,
            config,
            events,
            snapshot,
            seed,
            relayed_total,
            disk,
        } = self;
        let now = Instant::now();
        let mut state = State {
            cname: format!("callscope-{call_id}@{}", config.bind_ip).into_bytes(),
            call_id,
            config: config.clone(),
            started: now,
            legs: [None, None],
            transcoders: [None, None],
            audio: None,
            events,
            events_dropped: 0,
            dtmf: Vec::new(),
            snapshot,
            out_buf: Vec::with_capacity(DATAGRAM),
            pcm: Vec::with_capacity(2048),
            recording_error: None,
            seed,
            relayed_total,
            disk,
            relayed_unreported: 0,
            generators: [Generator::new(seed), Generator::new(seed.rotate_left(32))],
            gen_out: Vec::with_capacity(4),
            muted: [None, None],
            mutes: Vec::new(),
            released_gap: [false, false],
            released_legs: Vec::new(),
        };
        let mut sockets: [Option<LegSockets>; 2] = [None, None];
        // Ports whose sockets never became a leg: handed back with the others at close.
        let mut unadopted_ports: Vec<u16> = Vec::new();
        let mut start = 0usize;
        // Both periodic timers tick on the process-wide grid (see `grid`), so every call's
        // ticks share the runtime's wake-ups.
        let mut housekeeping = tokio::time::interval_at(to_tokio(grid::after(now)), HOUSEKEEPING);
        // Skip (not Delay) keeps a late tick's successors on the grid.
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut pacing = tokio::time::interval_at(to_tokio(grid::after(now)), PACING);
        pacing.set_missed_tick_behavior(MissedTickBehavior::Burst);

        // str0m's timers (ICE, DTLS, RTCP) for the call's WebRTC legs, reset as they move.
        let webrtc_timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(webrtc_timer);
        let mut webrtc_deadline: Option<Instant> = None;

        let wake = WakeSet::new(SOURCES);
        // Sources to poll at the next pass besides those whose wakers fired: one that was
        // ready (it registered nothing), or that something else polled or changed. All at
        // first, so each registers its waker.
        let mut due = all_bits(SOURCES);
        let mut next_source = 0u32;
        let mut was_pacing = false;
        let reply = loop {
            let transcoding = state.transcoders.iter().any(Option::is_some);
            let pacing_on = transcoding || state.generating();
            if pacing_on && !was_pacing {
                // Start the 20 ms cadence at the next grid point rather than bursting the
                // ticks missed while off.
                pacing.reset_at(to_tokio(grid::after(Instant::now())));
                due |= 1 << SOURCE_PACING;
            }
            was_pacing = pacing_on;
            if clock_sockets(&mut sockets, transcoding) {
                due |= SOCKET_SOURCES;
            }
            let deadline = state.webrtc_deadline();
            if deadline != webrtc_deadline {
                webrtc_deadline = deadline;
                if let Some(at) = deadline {
                    // str0m's deadlines (ICE checks, DTLS retransmits, RTCP) tolerate the
                    // few milliseconds it takes to reach the next grid point.
                    webrtc_timer.as_mut().reset(to_tokio(grid::at_or_after(at)));
                    due |= 1 << SOURCE_WEBRTC_TIMER;
                }
            }
            // One pass: poll the sources that fired or are due, each with its own waker,
            // starting after the last one that was ready (so none starves the others), until
            // one is ready. The rest stay due for the next pass, which runs at once.
            let woke = std::future::poll_fn(|cx| {
                due |= wake.take(cx);
                for i in 0..SOURCES {
                    let source = (next_source + i) % SOURCES;
                    let bit = 1u32 << source;
                    if due & bit == 0 {
                        continue;
                    }
                    due &= !bit;
                    let mut scx = Context::from_waker(wake.waker(source));
                    let polled = match source {
                        SOURCE_CONTROL => control.poll_recv(&mut scx).map(Woke::Control),
                        SOURCE_HOUSEKEEPING => {
                            housekeeping.poll_tick(&mut scx).map(|_| Woke::Housekeeping)
                        }
                        SOURCE_PACING if pacing_on => {
                            pacing.poll_tick(&mut scx).map(|_| Woke::Pacing)
                        }
                        SOURCE_WEBRTC_TIMER if webrtc_deadline.is_some() => webrtc_timer
                            .as_mut()
                            .poll(&mut scx)
                            .map(|_| Woke::WebRtcTimer),
                        SOURCE_PACING | SOURCE_WEBRTC_TIMER => Poll::Pending,
                        socket => match socket_at(&sockets, (socket - FIRST_SOCKET) as usize) {
                            Some((side, port, sock)) => with_thread_batch(|batch| {
                                poll_watched_socket(&mut scx, sock, batch)
                            })
                            .map(|r| Woke::Batch((side, port, r))),
                            None => Poll::Pending,
                        },
                    };
                    if let Poll::Ready(woke) = polled {
                        due |= bit;
                        next_source = (source + 1) % SOURCES;
                        return Poll::Ready(woke);
                    }
                }
                Poll::Pending
            })
            .await;
            match woke {
                Woke::Batch((side, port, r)) => {
                    // The datagrams wait in the thread's batch: nothing ran on this thread
                    // since the pass read them (a task's poll is not interrupted).
                    with_thread_batch(|batch| state.on_batch(side, port, &r, batch, &sockets));
                    // The socket that was ready is already due; nothing else moved.
                    continue;
                }
                Woke::Control(msg) => match msg {
                    None => break None,
                    Some(Control::Close(reply)) => {
                        // What already arrived belongs to the call (a clocked socket still
                        // holds up to a tick of it): take it in before the report.
                        read_queued(&mut state, &sockets, &mut start);
                        break Some(reply);
                    }
                    Some(Control::AddLeg(side, pair)) => {
                        let slot = &mut sockets[side.index()];
                        if slot.is_none() {
                            match LegSockets::adopt(pair) {
                                Ok(socks) => {
                                    state.legs[side.index()] =
                                        Some(Leg::new(state.next_seed(), Instant::now()));
                                    *slot = Some(socks);
                                }
                                Err((port, error)) => {
                                    tracing::warn!(%error, port, "cannot register leg sockets");
                                    unadopted_ports.push(port);
                                }
                            }
                        } else {
                            unadopted_ports.push(pair.port);
                        }
                    }
                    Some(Control::AttachWebRtc(side, session, params)) => {
                        state.attach_webrtc(side, session, params, &sockets)
                    }
                    Some(Control::RemoteCandidate(side, candidate)) => {
                        state.remote_candidate(side, candidate, &sockets)
                    }
                    Some(Control::ReleaseLeg(side, reply)) => {
                        let port = state.release_leg(side, &mut sockets);
                        let _ = reply.send(port);
                    }
                    Some(other) => state.on_control(other),
                },
                Woke::Housekeeping => {
                    // The tick releases recorded audio up to the playout delay before now:
                    // after a stall longer than that delay, packets still queued in a socket
                    // (a clocked one always holds up to a tick) would find their place already
                    // written as silence. Take them in first.
                    read_queued(&mut state, &sockets, &mut start);
                    state.housekeeping(&sockets);
                }
                Woke::Pacing => {
                    // Datagrams that arrived with this tick belong before its playout: read
                    // them first, so the jitter buffer does not find them late.
                    read_queued(&mut state, &sockets, &mut start);
                    state.pace(&sockets);
                }
                Woke::WebRtcTimer => {
                    webrtc_deadline = None;
                    state.webrtc_timeout(&sockets);
                }
            }
            // Anything but a packet may have polled the sockets with another waker
            // (`read_queued`), added or released a leg, or moved a timer: every source is due
            // again. These events come a few times a second, packets a hundred.
            due = all_bits(SOURCES);
        };
        state.close_webrtc(&sockets);
        let report = state.close().await;
        let mut ports: Vec<u16> = sockets.iter().flatten().map(|s| s.port).collect();
        ports.append(&mut unadopted_ports);
        // Sockets closed before the ports are handed back.
        drop(sockets);
        if let Some(reply) = reply {
            let _ = reply.send((report, ports));
        }
    }
}

impl State {
    fn next_seed(&mut self) -> u64 {
        // splitmix64: distinct, well-mixed SSRC/sequence/timestamp seeds per leg.
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_millis() as u64
    }

    fn emit(&mut self, event: MediaEvent) {
        if self.events.try_send(event).is_err() {
            self.events_dropped += 1;
        }
    }

    fn on_control(&mut self, msg: Control) {
        match msg {
            Control::Configure(side, params) => {
                if self.legs[side.index()].is_some() {
                    self.generators[side.index()]
                        .set_codec(params.codec, params.telephone_event_pt);
                    self.released_gap[side.index()] = false;
                }
                let rate = self.config.recording_pcm_rate(&params.codec);
                let codec_changed = self.legs[side.index()]
                    .as_mut()
                    .is_some_and(|leg| leg.configure(params, rate));
                if codec_changed && let Some(audio) = self.audio.as_mut() {
                    audio.restart_leg(side);
                }
                self.rebuild_bridge();
                self.publish_snapshot(Instant::now());
            }
            Control::StartRecording { writer, agent_side } => {
                self.start_recording(writer, agent_side)
            }
            Control::Pause => {
                let now = Instant::now();
                if let Some(audio) = self.audio.as_mut()
                    && let Err(e) = audio.pause(now)
                {
                    tracing::debug!(error = e, "pause refused");
                }
            }
            Control::Resume => {
                let now = Instant::now();
                if let Some(audio) = self.audio.as_mut()
                    && let Err(e) = audio.resume(now)
                {
                    tracing::debug!(error = e, "resume refused");
                }
            }
            Control::SubscribeTaps(tx) => {
                if let Some(audio) = self.ensure_audio(None) {
                    audio.add_tap(tx);
                }
            }
            Control::SetMuted(side, muted) => self.set_muted(side, muted, Instant::now()),
            Control::SendDtmf(side, events) => {
                if self.legs[side.index()].is_some() {
                    let dropped = self.generators[side.index()].queue_digits(&events);
                    if dropped > 0 {
                        tracing::warn!(dropped, "DTMF queue full; digits dropped");
                    }
                }
            }
            Control::PlayTone(side, tone) => {
                if self.legs[side.index()].is_none() {
                    return;
                }
                let generator = &mut self.generators[side.index()];
                let old = generator.tone();
                generator.set_tone(tone);
                if let Some(old) = old
                    && tone.is_none()
                {
                    let at_ms = self.now_ms(Instant::now());
                    let call_id = self.call_id.clone();
                    self.emit(MediaEvent::ToneStopped {
                        call_id,
                        side,
                        tone: old,
                        at_ms,
                        by_media: false,
                    });
                }
            }
            Control::AddLeg(..)
            | Control::AttachWebRtc(..)
            | Control::RemoteCandidate(..)
            | Control::ReleaseLeg(..)
            | Control::Close(_) => {}
        }
    }

    /// Takes in every datagram of a batch the loop or `read_queued` read from one socket.
    /// A failed read (ICMP port unreachable and the like) leaves nothing to do.
    fn on_batch(
        &mut self,
        side: LegSide,
        port: Port,
        read: &std::io::Result<()>,
        batch: &RecvBatch,
        sockets: &[Option<LegSockets>; 2],
    ) {
        if read.is_ok() {
            for (data, src, arrived) in batch.datagrams() {
                self.on_datagram(side, port, src, data, arrived, sockets);
            }
        }
    }

    /// The PCM rate of the timeline: the higher of the legs' native rates (an Opus leg's
    /// as `opus_recording_rate` says).
    fn audio_rate(&self) -> u32 {
        self.legs
            .iter()
            .flatten()
            .filter_map(|l| {
                l.params
                    .as_ref()
                    .map(|p| self.config.recording_pcm_rate(&p.codec))
            })
            .max()
            .unwrap_or(8000)
    }

    fn ensure_audio(&mut self, agent_side: Option<LegSide>) -> Option<&mut CallAudio> {
        if self.audio.is_none() {
            let now = Instant::now();
            let origin_ms = self.now_ms(now);
            match CallAudio::new(
                self.audio_rate(),
                now,
                origin_ms,
                agent_side.unwrap_or(LegSide::B),
            ) {
                Ok(a) => self.audio = Some(a),
                Err(e) => tracing::warn!(error = e, "cannot start call audio"),
            }
        }
        let audio = self.audio.as_mut()?;
        if let Some(side) = agent_side {
            audio.set_agent_side(side);
        }
        Some(audio)
    }

    fn start_recording(&mut self, writer: RecordingWriter, agent_side: LegSide) {
        let call_id = self.call_id.clone();
        let events = self.events.clone();
        let disk = self.disk.clone();
        let Some(audio) = self.ensure_audio(Some(agent_side)) else {
            return;
        };
        if audio.recording.is_some() {
            return;
        }
        match DiskWriter::open(&disk, writer, audio.rate(), call_id.clone(), events) {
            Ok(disk) => {
                let start_frame = audio.emitted_frames();
                audio.recording = Some(Recording {
                    disk,
                    start_frame,
                    agent_side,
                });
            }
            Err(error) => {
                self.recording_error = Some(error.clone());
                self.emit(MediaEvent::RecordingFailed { call_id, error });
            }
        }
    }

    /// Relay when both legs speak compatible codecs, else one transcoder per direction.
    fn rebuild_bridge(&mut self) {
        let codecs: [Option<CodecSpec>; 2] = [
            self.legs[0]
                .as_ref()
                .and_then(|l| l.params.as_ref().map(|p| p.codec)),
            self.legs[1]
                .as_ref()
                .and_then(|l| l.params.as_ref().map(|p| p.codec)),
        ];
        let [Some(a), Some(b)] = codecs else {
            self.transcoders = [None, None];
            return;
        };
        if a.relay_compatible(&b) {
            self.transcoders = [None, None];
            return;
        }
        // Rebuilt on every change (re-INVITEs are rare): fresh buffers for the new codecs.
        let jitter = &self.config.jitter;
        for (i, (from, to)) in [(a, b), (b, a)].iter().enumerate() {
            let decode_rate = self.config.recording_pcm_rate(from);
            let complexity = self.config.transcode_opus_complexity;
            self.transcoders[i] = match Transcoder::new(from, to, jitter, complexity, decode_rate) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot transcode");
                    None
                }
            };
        }
    }

    fn on_datagram(
        &mut self,
        side: LegSide,
        port: Port,
        src: SocketAddr,
        data: &[u8],
        arrived: Instant,
        sockets: &[Option<LegSockets>; 2],
    ) {
        // The packet's arrival (a clocked socket is read up to a tick later) for jitter,
        // playout and the recording; str0m keeps its own clock and gets the present.
        let now = arrived;
        if let Some(leg) = self.legs[side.index()].as_mut()
            && let Some(session) = leg.webrtc.as_mut()
        {
            // WebRTC multiplexes STUN, DTLS, SRTP and SRTCP on the one port (RFC 7983);
            // its RTCP port is unused, so anything there is noise.
            match (port, sockets[side.index()].as_ref()) {
                (Port::Rtp, Some(socks)) => {
                    session.on_datagram(data, src, Instant::now(), &socks.rtp);
                    self.after_webrtc(side, src, now, sockets);
                }
                _ => leg.malformed += 1,
            }
            return;
        }
        let kind = classify_muxed(data);
        match (port, kind) {
            (_, MuxedKind::Rtcp) => {
                if let Some(leg) = self.legs[side.index()].as_mut() {
                    if matches!(port, Port::Rtcp) {
                        leg.latched_rtcp = Some(src);
                    }
                    rtcp_session::on_rtcp(leg, data, now);
                }
                self.apply_loss_report(side);
            }
            (Port::Rtp, MuxedKind::Rtp) => self.on_rtp(side, src, data, now, sockets),
            _ => {
                if let Some(leg) = self.legs[side.index()].as_mut() {
                    leg.malformed += 1;
                }
            }
        }
    }

    fn on_rtp(
        &mut self,
        side: LegSide,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
        sockets: &[Option<LegSockets>; 2],
    ) {
        let now_ms = self.now_ms(now);
        let [la, lb] = &mut self.legs;
        let (leg, other) = match side {
            LegSide::A => (la.as_mut(), lb.as_mut()),
            LegSide::B => (lb.as_mut(), la.as_mut()),
        };
        let Some(leg) = leg else { return };
        let Some(params) = leg.params.as_ref() else {
            leg.unconfigured += 1;
            return;
        };
        let codec = params.codec;
        let te_pt = params.telephone_event_pt;
        let receives = params.direction.receives();
        let Ok(pkt) = RtpPacket::parse(data) else {
            leg.malformed += 1;
            return;
        };
        let is_event = te_pt == Some(pkt.payload_type);
        if !is_event && pkt.payload_type != codec.payload_type {
            leg.wrong_payload_type += 1;
            return;
        }
        let verdict = if leg.webrtc.is_some() {
            // ICE and SRTP already vouched for the source.
            SourceVerdict::Accept
        } else {
            leg.check_source(src)
        };
        match verdict {
            SourceVerdict::Accept => {}
            SourceVerdict::Relatched => {
                let event = MediaEvent::Relatched {
                    call_id: self.call_id.clone(),
                    side,
                    remote: src,
                };
                if self.events.try_send(event).is_err() {
                    self.events_dropped += 1;
                }
            }
            SourceVerdict::Reject => {
                leg.foreign_source += 1;
                return;
            }
        }
        if !receives {
            leg.dropped_by_direction += 1;
            return;
        }
        leg.stats.on_packet(
            pkt.ssrc,
            pkt.sequence,
            pkt.timestamp,
            pkt.payload.len(),
            now_ms,
        );
        if !is_event
            && codec.kind == CodecKind::Opus
            && let (Some(rate), Some(mode)) =
                (packet_audio_rate(pkt.payload), packet_mode(pkt.payload))
        {
            leg.audio_rate_received = leg.audio_rate_received.max(Some(rate));
            leg.opus_modes_received.count(mode);
        }
        if leg.inbound_ssrc != Some(pkt.ssrc) {
            if leg.inbound_ssrc.is_some() {
                // A new stream (transfer, re-INVITE): its clocks start elsewhere.
                leg.dtmf = crate::dtmf::DtmfDetector::new(codec.clock_rate.max(1));
                leg.dtmf_first = None;
                leg.dtmf_span = None;
                if let Some(audio) = self.audio.as_mut() {
                    audio.restart_leg(side);
                }
            }
            leg.inbound_ssrc = Some(pkt.ssrc);
        }

        // Where the packet may go: the other leg, if it is configured and we send to it.
        let target = other.and_then(|o| {
            let sends = o.params.as_ref().is_some_and(|p| p.direction.sends());
            let dest = o.rtp_destination();
            match (sends, dest) {
                (true, Some(dest)) => Some((o, dest)),
                _ => None,
            }
        });
        let out_socket = sockets[side.other().index()].as_ref().map(|s| &s.rtp);
        let muted = self.muted[side.index()].is_some();
        let other_silence = muted || self.released_gap[side.index()];

        if !is_event && let Some(tone) = self.generators[side.other().index()].tone() {
            // The other side has media now: its audio replaces our ringback.
            self.generators[side.other().index()].set_tone(None);
            let event = MediaEvent::ToneStopped {
                call_id: self.call_id.clone(),
                side: side.other(),
                tone,
                at_ms: now_ms,
                by_media: true,
            };
            if self.events.try_send(event).is_err() {
                self.events_dropped += 1;
            }
        }
        let other_generated = self.generators[side.other().index()].owns_stream(other_silence);

        if is_event {
            if leg.dtmf_first.is_none_or(|(ts, _)| ts != pkt.timestamp) {
                leg.dtmf_first = Some((pkt.timestamp, now_ms));
            }
            let _ = leg.dtmf.on_packet(pkt.sequence, pkt.timestamp, pkt.payload);
            if let Ok(ev) = TelephoneEvent::parse(pkt.payload) {
                // The press covers [timestamp, timestamp + duration) on the audio clock too:
                // audio sent over it stays out of the recording (PCI).
                let end = pkt.timestamp.wrapping_add(u32::from(ev.duration));
                leg.dtmf_span = match leg.dtmf_span {
                    Some((start, old_end)) if start == pkt.timestamp => {
                        Some((start, if ts_after(end, old_end) { end } else { old_end }))
                    }
                    _ => Some((pkt.timestamp, end)),
                };
            }
            let clock = codec.clock_rate.max(1);
            while let Some(digit) = leg.dtmf.next_digit() {
                let Some(symbol) = digit.symbol() else {
                    continue;
                };
                let duration_ms = u64::from(digit.duration) * 1000 / u64::from(clock);
                let start_ms = match leg.dtmf_first {
                    Some((ts, at)) if ts == digit.start_timestamp => at,
                    _ => now_ms.saturating_sub(duration_ms),
                };
                leg.dtmf_events += 1;
                self.dtmf.push(DtmfRecord {
                    side,
                    digit: symbol,
                    start_ms,
                    duration_ms,
                    sent: false,
                });
                let event = MediaEvent::Dtmf {
                    call_id: self.call_id.clone(),
                    side,
                    digit: symbol,
                    start_ms,
                    duration_ms,
                    sent: false,
                };
                if self.events.try_send(event).is_err() {
                    self.events_dropped += 1;
                }
            }
            // Relay with the other leg's telephone-event PT; without one, drop. Nothing from
            // a muted side, nor into a stream the generator owns (it may be sending digits).
            if self.muted[side.index()].is_some() || other_generated {
                return;
            }
            let Some((o, dest)) = target else { return };
            let Some(o_pt) = o.params.as_ref().and_then(|p| p.telephone_event_pt) else {
                return;
            };
            self.out_buf.clear();
            let written = match self.transcoders[side.index()].as_mut() {
                None => {
                    let r = o.out.map(pkt.ssrc, pkt.sequence, pkt.timestamp, now_ms);
                    RtpBuilder {
                        marker: pkt.marker || r.new_run,
                        payload_type: o_pt,
                        sequence: r.sequence,
                        timestamp: r.timestamp,
                        ssrc: o.out.ssrc(),
                        payload: pkt.payload,
                        ..RtpBuilder::default()
                    }
                    .write(&mut self.out_buf)
                }
                Some(t) => {
                    let Ok(mut ev) = TelephoneEvent::parse(pkt.payload) else {
                        return;
                    };
                    ev.duration = t.scale_duration(ev.duration);
                    let Ok(bytes) = ev.to_bytes() else { return };
                    let (seq, ts) = t.map_event(pkt.timestamp);
                    let r = o.out.map(SYNTHETIC_SSRC, seq, ts, now_ms);
                    RtpBuilder {
                        marker: pkt.marker || r.new_run,
                        payload_type: o_pt,
                        sequence: r.sequence,
                        timestamp: r.timestamp,
                        ssrc: o.out.ssrc(),
                        payload: &bytes,
                        ..RtpBuilder::default()
                    }
                    .write(&mut self.out_buf)
                }
            };
            if written.is_ok()
                && send(
                    o,
                    out_socket,
                    &self.out_buf,
                    dest,
                    crate::dtmf::TELEPHONE_EVENT_LEN,
                )
            {
                self.relayed_unreported += 1;
            }
            return;
        }

        // Audio. Stale DTMF presses end by timeout on the audio clock.
        leg.dtmf.poll(pkt.timestamp);
        let in_dtmf = leg.dtmf.in_progress().is_some()
            || leg.dtmf_span.is_some_and(|(start, end)| {
                !ts_after(start, pkt.timestamp) && ts_after(end, pkt.timestamp)
            });
        if muted {
            // Muted: neither the other leg, the recording nor the taps get this audio (the
            // timeline writes silence for the stretch; the generator feeds the other leg).
            return;
        }
        let record = !in_dtmf;
        if let Some(t) = self.transcoders[side.index()].as_mut()
            && t.decodes_on_arrival()
        {
            // One decode for the recording and the transcoder (see transcode.rs).
            let rate = t.decoded_rate();
            let pcm = t.insert_decoding(pkt.ssrc, pkt.sequence, pkt.timestamp, pkt.payload, now_ms);
            if let (Some(audio), Some(pcm), true) = (self.audio.as_mut(), pcm, record) {
                audio.push(side, pkt.timestamp, codec.clock_rate, rate, pcm, now);
            }
            return;
        }
        if let Some(audio) = self.audio.as_mut()
            && record
            && let Some(decoder) = leg.decoder.as_mut()
        {
            self.pcm.clear();
            let decoded = decoder.decode(
                pkt.ssrc,
                pkt.sequence,
                pkt.timestamp,
                pkt.payload,
                &mut self.pcm,
            );
            if decoded.is_ok() {
                audio.push(
                    side,
                    pkt.timestamp,
                    codec.clock_rate,
                    decoder.sample_rate(),
                    &self.pcm,
                    now,
                );
            }
        }

        match self.transcoders[side.index()].as_mut() {
            Some(t) => {
                let _ = t.insert(pkt.ssrc, pkt.sequence, pkt.timestamp, pkt.payload, now_ms);
            }
            None => {
                if other_generated {
                    return;
                }
                let Some((o, dest)) = target else { return };
                let Some(o_pt) = o.params.as_ref().map(|p| p.codec.payload_type) else {
                    return;
                };
                let r = o.out.map(pkt.ssrc, pkt.sequence, pkt.timestamp, now_ms);
                self.out_buf.clear();
                let built = RtpBuilder {
                    marker: pkt.marker || r.new_run,
                    payload_type: o_pt,
                    sequence: r.sequence,
                    timestamp: r.timestamp,
                    ssrc: o.out.ssrc(),
                    payload: pkt.payload,
                    ..RtpBuilder::default()
                }
                .write(&mut self.out_buf);
                if built.is_ok() && send(o, out_socket, &self.out_buf, dest, pkt.payload.len()) {
                    self.relayed_unreported += 1;
                }
            }
        }
    }

    /// Transcoding playout: every 20 ms, each direction plays what is due.
    fn pace(&mut self, sockets: &[Option<LegSockets>; 2]) {
        let now = Instant::now();
        let now_ms = self.now_ms(now);
        for source in [LegSide::A, LegSide::B] {
            let target_side = source.other();
            if self.generators[target_side.index()].owns_stream(self.silence_wanted(target_side)) {
                // The generator speaks to that leg: play the transcoder out (its clock and
                // buffer keep up) but send nothing from it.
                if let Some(t) = self.transcoders[source.index()].as_mut() {
                    t.poll(now_ms, |_| {});
                }
                self.generate(target_side, now_ms, sockets);
                continue;
            }
            let Some(t) = self.transcoders[source.index()].as_mut() else {
                continue;
            };
            let Some(o) = self.legs[target_side.index()].as_mut() else {
                continue;
            };
            let pt = o.params.as_ref().map(|p| p.codec.payload_type);
            let sends = o.params.as_ref().is_some_and(|p| p.direction.sends());
            let dest = o.rtp_destination();
            let socket = sockets[target_side.index()].as_ref().map(|s| &s.rtp);
            let out_buf = &mut self.out_buf;
            let relayed = &mut self.relayed_unreported;
            t.poll(now_ms, |frame| {
                let (Some(pt), true, Some(dest)) = (pt, sends, dest) else {
                    return;
                };
                let r = o.out.map(SYNTHETIC_SSRC, frame.seq, frame.ts, now_ms);
                out_buf.clear();
                let built = RtpBuilder {
                    marker: r.new_run,
                    payload_type: pt,
                    sequence: r.sequence,
                    timestamp: r.timestamp,
                    ssrc: o.out.ssrc(),
                    payload: frame.payload,
                    ..RtpBuilder::default()
                }
                .write(out_buf);
                if built.is_ok() && send(o, socket, out_buf, dest, frame.payload.len()) {
                    *relayed += 1;
                }
            });
        }
    }

    /// Whether `target` should get silence: the other side is muted or was released.
    fn silence_wanted(&self, target: LegSide) -> bool {
        let source = target.other().index();
        self.muted[source].is_some() || self.released_gap[source]
    }

    /// Whether any leg's stream is fed by the generator (the pacing tick must run).
    fn generating(&self) -> bool {
        [LegSide::A, LegSide::B].into_iter().any(|t| {
            self.legs[t.index()].is_some()
                && self.generators[t.index()].owns_stream(self.silence_wanted(t))
        })
    }

    /// One 20 ms slot of generated packets to `target`, through its continuous stream.
    fn generate(&mut self, target: LegSide, now_ms: u64, sockets: &[Option<LegSockets>; 2]) {
        let silence = self.silence_wanted(target);
        let Some(o) = self.legs[target.index()].as_mut() else {
            return;
        };
        let sends = o.params.as_ref().is_some_and(|p| p.direction.sends());
        let (true, Some(dest)) = (sends, o.rtp_destination()) else {
            // Nowhere to send yet (a WebRTC leg still connecting, a held leg): keep digits
            // and the tone's cadence for when it can hear them.
            self.generators[target.index()].idle();
            return;
        };
        let mut out = std::mem::take(&mut self.gen_out);
        let finished = self.generators[target.index()].slot(now_ms, silence, &mut out);
        let socket = sockets[target.index()].as_ref().map(|s| &s.rtp);
        for p in &out {
            if p.restart {
                o.out.break_run();
            }
            let r = o.out.map(GENERATED_SSRC, p.seq, p.ts, now_ms);
            self.out_buf.clear();
            let built = RtpBuilder {
                marker: p.marker || r.new_run,
                payload_type: p.payload_type,
                sequence: r.sequence,
                timestamp: r.timestamp,
                ssrc: o.out.ssrc(),
                payload: &p.payload,
                ..RtpBuilder::default()
            }
            .write(&mut self.out_buf);
            if built.is_ok() {
                send(o, socket, &self.out_buf, dest, p.payload.len());
            }
        }
        self.gen_out = out;
        if let Some(digit) = finished {
            self.digit_sent(target, digit);
        }
    }

    fn digit_sent(&mut self, side: LegSide, digit: SentDigit) {
        self.dtmf.push(DtmfRecord {
            side,
            digit: digit.symbol,
            start_ms: digit.start_ms,
            duration_ms: digit.duration_ms,
            sent: true,
        });
        let call_id = self.call_id.clone();
        self.emit(MediaEvent::Dtmf {
            call_id,
            side,
            digit: digit.symbol,
            start_ms: digit.start_ms,
            duration_ms: digit.duration_ms,
            sent: true,
        });
    }

    fn set_muted(&mut self, side: LegSide, muted: bool, now: Instant) {
        if self.legs[side.index()].is_none() {
            return;
        }
        let at_ms = self.now_ms(now);
        let slot = &mut self.muted[side.index()];
        match (muted, *slot) {
            (true, None) => *slot = Some(at_ms),
            (false, Some(start_ms)) => {
                *slot = None;
                self.mutes.push(MuteRecord {
                    side,
                    start_ms,
                    end_ms: at_ms,
                });
            }
            // Already in that state: no event.
            _ => return,
        }
        let call_id = self.call_id.clone();
        self.emit(MediaEvent::Muted {
            call_id,
            side,
            muted,
            at_ms,
        });
    }

    /// Closes one leg while the call goes on; returns its port (sockets already dropped).
    fn release_leg(&mut self, side: LegSide, sockets: &mut [Option<LegSockets>; 2]) -> Option<u16> {
        let i = side.index();
        let now = Instant::now();
        let at_ms = self.now_ms(now);
        if let (Some(leg), Some(socks)) = (self.legs[i].as_mut(), sockets[i].as_ref())
            && let Some(session) = leg.webrtc.as_mut()
        {
            session.close(now, &socks.rtp);
        }
        let quality = self.leg_quality(side, at_ms);
        // A mute of that side ends with its leg: a new agent starts unmuted.
        self.set_muted(side, false, now);
        self.legs[i] = None;
        let port = sockets[i].take().map(|s| s.port);
        self.generators[i] = Generator::new(self.next_seed());
        self.released_gap[i] = true;
        self.rebuild_bridge();
        if let Some(audio) = self.audio.as_mut() {
            // The next leg's stream is anchored afresh; until then the channel is silence.
            audio.restart_leg(side);
        }
        if let Some(quality) = quality {
            self.released_legs.push(ReleasedLeg {
                side,
                at_ms,
                quality: quality.clone(),
            });
            let call_id = self.call_id.clone();
            self.emit(MediaEvent::LegReleased {
                call_id,
                side,
                at_ms,
                quality: Box::new(quality),
            });
        }
        self.publish_snapshot(now);
        port
    }

    fn housekeeping(&mut self, sockets: &[Option<LegSockets>; 2]) {
        let now = Instant::now();
        let now_ms = self.now_ms(now);
        if let Some(audio) = self.audio.as_mut() {
            audio.tick(now, &self.call_id, &self.events);
        }
        let interval = self.config.rtcp_interval;
        for (i, leg) in self.legs.iter_mut().enumerate() {
            let Some(leg) = leg.as_mut() else { continue };
            if now < leg.next_rtcp || leg.params.is_none() || leg.webrtc.is_some() {
                // str0m sends a WebRTC leg's RTCP (SRTCP) itself.
                continue;
            }
            leg.next_rtcp = now + interval;
            let Some(socks) = sockets[i].as_ref() else {
                continue;
            };
            let mux = leg.params.as_ref().is_some_and(|p| p.rtcp_mux);
            let (socket, dest) = if mux {
                (&socks.rtp, leg.rtp_destination())
            } else {
                (&socks.rtcp, leg.rtcp_destination())
            };
            let Some(dest) = dest else { continue };
            rtcp_session::build_report(leg, now, now_ms, &self.cname, &mut self.out_buf);
            if self.out_buf.is_empty() {
                continue;
            }
            match socket.try_send_to(&self.out_buf, dest) {
                Ok(_) => leg.rtcp_sent += 1,
                Err(_) => leg.send_errors += 1,
            }
        }
        self.publish_snapshot(now);
        self.report_relayed();
    }

    fn report_relayed(&mut self) {
        if self.relayed_unreported > 0 {
            self.relayed_total
                .fetch_add(self.relayed_unreported, Ordering::Relaxed);
            self.relayed_unreported = 0;
        }
    }

    fn attach_webrtc(
        &mut self,
        side: LegSide,
        session: Box<WebRtcSession>,
        params: LegParams,
        sockets: &[Option<LegSockets>; 2],
    ) {
        let Some(leg) = self.legs[side.index()].as_mut() else {
            return;
        };
        leg.webrtc = Some(session);
        self.on_control(Control::Configure(side, params));
        self.after_webrtc(
            side,
            SocketAddr::from(([0, 0, 0, 0], 0)),
            Instant::now(),
            sockets,
        );
    }

    fn remote_candidate(
        &mut self,
        side: LegSide,
        candidate: Candidate,
        sockets: &[Option<LegSockets>; 2],
    ) {
        let now = Instant::now();
        let (Some(leg), Some(socks)) = (
            self.legs[side.index()].as_mut(),
            sockets[side.index()].as_ref(),
        ) else {
            return;
        };
        if let Some(session) = leg.webrtc.as_mut() {
            session.add_remote_candidate(candidate, now, &socks.rtp);
        }
    }

    /// The earliest str0m deadline over the call's WebRTC legs.
    fn webrtc_deadline(&self) -> Option<Instant> {
        self.legs
            .iter()
            .flatten()
            .filter_map(|l| l.webrtc.as_ref().map(|w| w.next_timeout()))
            .min()
    }

    fn webrtc_timeout(&mut self, sockets: &[Option<LegSockets>; 2]) {
        let now = Instant::now();
        for side in [LegSide::A, LegSide::B] {
            let (Some(leg), Some(socks)) = (
                self.legs[side.index()].as_mut(),
                sockets[side.index()].as_ref(),
            ) else {
                continue;
            };
            let Some(session) = leg.webrtc.as_mut() else {
                continue;
            };
            if session.next_timeout() <= now {
                session.on_timeout(now, &socks.rtp);
                self.after_webrtc(side, SocketAddr::from(([0, 0, 0, 0], 0)), now, sockets);
            }
        }
    }

    /// Feeds what a WebRTC session decrypted into the common RTP path and reports its news.
    fn after_webrtc(
        &mut self,
        side: LegSide,
        src: SocketAddr,
        now: Instant,
        sockets: &[Option<LegSockets>; 2],
    ) {
        let Some(session) = self.legs[side.index()]
            .as_mut()
            .and_then(|l| l.webrtc.as_mut())
        else {
            return;
        };
        let packets = session.take_inbound();
        let news = std::mem::take(&mut session.news);
        if let Some(loss) = session.loss_report.take()
            && let Some(leg) = self.legs[side.index()].as_mut()
        {
            leg.loss_report = Some(loss);
            self.apply_loss_report(side);
        }
        let had_news = !news.is_empty();
        for packet in &packets {
            self.on_rtp(side, src, packet, now, sockets);
        }
        if let Some(session) = self.legs[side.index()]
            .as_mut()
            .and_then(|l| l.webrtc.as_mut())
        {
            session.recycle(packets);
        }
        // The snapshot goes first: whoever reacts to the event must already see the new state.
        if had_news {
            self.publish_snapshot(now);
        }
        for SessionNews::State(state, error) in news {
            let call_id = self.call_id.clone();
            self.emit(MediaEvent::WebRtc {
                call_id,
                side,
                state,
                error,
            });
        }
    }

    /// Hands the loss `side`'s far end reported to the encoder of the direction that sends
    /// to it (Opus turns in-band FEC on while there is loss, off when there is none).
    fn apply_loss_report(&mut self, side: LegSide) {
        let Some(loss) = self.legs[side.index()]
            .as_mut()
            .and_then(|l| l.loss_report.take())
        else {
            return;
        };
        if let Some(t) = self.transcoders[side.other().index()].as_mut() {
            t.set_reported_loss(loss);
        }
    }

    fn close_webrtc(&mut self, sockets: &[Option<LegSockets>; 2]) {
        let now = Instant::now();
        for (leg, socks) in self.legs.iter_mut().zip(sockets) {
            if let (Some(leg), Some(socks)) = (leg.as_mut(), socks.as_ref())
                && let Some(session) = leg.webrtc.as_mut()
            {
                session.close(now, &socks.rtp);
            }
        }
    }

    fn leg_quality(&self, side: LegSide, now_ms: u64) -> Option<super::types::LegQuality> {
        let leg = self.legs[side.index()].as_ref()?;
        let t = self.transcoders[side.index()].as_ref();
        let discards = t.map_or(0, Transcoder::discards);
        let delay = t.map_or(0.0, |t| t.delay_ms(now_ms));
        Some(leg.quality(discards, delay))
    }

    fn publish_snapshot(&self, now: Instant) {
        let now_ms = self.now_ms(now);
        let snap = CallMediaSnapshot {
            a: self.leg_quality(LegSide::A, now_ms),
            b: self.leg_quality(LegSide::B, now_ms),
            recording: self.audio.as_ref().is_some_and(|a| a.recording.is_some()),
            recording_paused: self.audio.as_ref().is_some_and(CallAudio::paused),
        };
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snap;
        }
    }

    async fn close(mut self) -> CallMediaReport {
        self.report_relayed();
        let now = Instant::now();
        let now_ms = self.now_ms(now);
        let mut recording = None;
        let mut agent_side = None;
        let mut pauses = Vec::new();
        let mut tap_drops = [0, 0];
        let mut recording_dropped_frames = 0;
        let mut recording_loss = RecordingLoss::default();
        if let Some(mut audio) = self.audio.take() {
            audio.finish(now, &self.call_id, &self.events);
            pauses = audio.pause_records();
            tap_drops = audio.tap_drops();
            recording_loss = audio.recording_loss();
            if let Some(rec) = audio.recording.take() {
                agent_side = Some(rec.agent_side);
                recording_dropped_frames = rec.disk.dropped_frames;
                match rec.disk.finish().await {
                    Ok(done) => recording = Some(done),
                    Err(e) => self.recording_error = Some(e),
                }
            }
        }
        for side in [LegSide::A, LegSide::B] {
            if let Some(start_ms) = self.muted[side.index()].take() {
                self.mutes.push(MuteRecord {
                    side,
                    start_ms,
                    end_ms: now_ms,
                });
            }
        }
        CallMediaReport {
            mutes: std::mem::take(&mut self.mutes),
            released_legs: std::mem::take(&mut self.released_legs),
            a: self.leg_quality(LegSide::A, now_ms),
            b: self.leg_quality(LegSide::B, now_ms),
            recording,
            agent_side,
            recording_error: self.recording_error.take(),
            pauses,
            dtmf: std::mem::take(&mut self.dtmf),
            tap_drops,
            recording_dropped_frames,
            recording_loss,
            events_dropped: self.events_dropped,
            duration: now.saturating_duration_since(self.started),
        }
    }
}

/// `a` is later than `b` on a wrapping 32-bit RTP clock.
fn ts_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Hands one packet to the socket without waiting; counts refusals. True if it went out.
fn send(
    leg: &mut Leg,
    socket: Option<&MediaSocket>,
    packet: &[u8],
    dest: SocketAddr,
    payload_len: usize,
) -> bool {
    let Some(socket) = socket else { return false };
    if let Some(session) = leg.webrtc.as_mut() {
        if session.send_rtp(packet, Instant::now(), socket) {
            leg.out.count_sent(payload_len);
            return true;
        }
        leg.send_errors += 1;
        return false;
    }
    match socket.try_send_to(packet, dest) {
        Ok(_) => {
            leg.out.count_sent(payload_len);
            true
        }
        Err(_) => {
            leg.send_errors += 1;
            false
        }
    }
}

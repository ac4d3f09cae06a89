//! The engine's public vocabulary: configuration, leg parameters, events, tap frames and the
//! quality figures it reports. Plain data only; behaviour lives in the other modules.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::codec::{CodecError, CodecKind, CodecSpec, OpusMode};
use crate::jitter::JitterConfig;
use crate::recorder::{Channel, FinishedRecording};

pub use super::webrtc::WebRtcState;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address the RTP/RTCP sockets bind to (and that SDP announces).
    pub bind_ip: IpAddr,
    /// Inclusive port range; RTP takes the even ports, RTCP the odd one above.
    pub port_min: u16,
    pub port_max: u16,
    /// Jitter buffer settings for transcoded streams (clock rate is set per leg).
    pub jitter: JitterConfig,
    /// Frames each tap channel holds before new ones are dropped.
    pub tap_capacity: usize,
    /// Period of RTCP reports on each leg (RFC 3550 suggests 5 s).
    pub rtcp_interval: Duration,
    /// Longest time recorded audio may wait before it reaches the file (≤ 1 s).
    pub flush_interval: Duration,
    /// Capacity of the [`MediaEvent`] channel; events beyond it are dropped and counted.
    pub event_capacity: usize,
    /// Address WebRTC legs announce as their ICE host candidate when `bind_ip` is not what
    /// browsers can reach (a wildcard bind, 1:1 NAT); None: `bind_ip`.
    pub webrtc_public_ip: Option<IpAddr>,
    /// libopus complexity (0..=10) when transcoding narrowband audio (G.711, G.722) to Opus.
    /// That encoder is the largest single cost of a transcoded call. Default 0:
    /// `scripts/bench-opus-encoder` scores real speech through G.711 at 32 kbit/s with the
    /// same PESQ at 0 as at 1 and 3 (CELT 4.40–4.41 against 4.38–4.41; SILK, used while the
    /// browser reports loss, 4.45–4.48 against 4.45–4.49) for 23 % less encoder time.
    pub transcode_opus_complexity: u8,
    /// PCM rate at which an Opus leg's audio is decoded for the recording and the taps, and
    /// so the recording's rate when the call has an Opus leg: 48000 (default, Opus' native
    /// rate) or 16000 (wideband: the voice band Opus carries for speech, a third of the
    /// samples; libopus renders at 16 kHz for less than at 48 kHz, a G.711 leg is resampled
    /// 8 → 16 kHz instead of 8 → 48 kHz, and the 16 kHz taps need no resampling). Other
    /// values are taken as 48000. A leg that negotiated wideband (see `webrtc_audio_rate`)
    /// is decoded at 16 kHz whatever this says: there is nothing above it to keep.
    pub opus_recording_rate: u32,
    /// The highest audio rate a browser is asked to send: the Opus `maxplaybackrate` of our
    /// SDP answer (RFC 7587). 16000 (default): wideband, which is all a call bridged to the
    /// phone network or transcribed at 16 kHz can use; the browser's encoder sends less,
    /// and the call is decoded and recorded at 16 kHz. 48000: no limit announced (full band,
    /// recorded at `opus_recording_rate`). Other values are clamped to 8000–48000.
    pub webrtc_audio_rate: u32,
    /// Threads dedicated to call tasks (see `threads.rs`); 0 runs them on the runtime of
    /// whoever creates the calls. Default: one per two logical CPUs (at least one), so
    /// media leaves room for signalling, the API and the post-call pipeline.
    pub media_threads: usize,
    /// Threads that write every call's recording to disk (see `disk.rs`), shared by all
    /// recordings. Default: one per two logical CPUs, at least two, so one file's fsync at
    /// a call's end does not hold every other recording's writes.
    pub recording_threads: usize,
}

impl EngineConfig {
    /// The rate a leg speaking `codec` is decoded at for the recording and the taps: the
    /// codec's own PCM rate, except Opus at [`EngineConfig::opus_recording_rate`], or at
    /// 16 kHz when the leg negotiated no more than wideband ([`CodecSpec::audio_rate`]).
    pub(crate) fn recording_pcm_rate(&self, codec: &CodecSpec) -> u32 {
        match codec.kind {
            CodecKind::Opus if self.opus_recording_rate == 16000 || codec.audio_rate <= 16000 => {
                16000
            }
            _ => codec.pcm_rate(),
        }
    }
}

/// One media thread per two logical CPUs, at least one.
fn default_media_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// One recording thread per two logical CPUs, at least two.
fn default_recording_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| (n.get() / 2).max(2))
}

impl EngineConfig {
    /// Loopback defaults that run anywhere: ports 20000–20999.
    pub fn local(bind_ip: IpAddr) -> Self {
        EngineConfig {
            bind_ip,
            port_min: 20000,
            port_max: 20999,
            jitter: JitterConfig::default(),
            tap_capacity: 64,
            rtcp_interval: Duration::from_secs(5),
            flush_interval: Duration::from_secs(1),
            event_capacity: 1024,
            webrtc_public_ip: None,
            transcode_opus_complexity: 0,
            opus_recording_rate: 48000,
            webrtc_audio_rate: 16000,
            media_threads: default_media_threads(),
            recording_threads: default_recording_threads(),
        }
    }
}

/// Which leg of a bridged call.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
pub enum LegSide {
    /// The caller's leg.
    A,
    /// The callee's leg.
    B,
}

impl LegSide {
    pub fn other(self) -> LegSide {
        match self {
            LegSide::A => LegSide::B,
            LegSide::B => LegSide::A,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            LegSide::A => 0,
            LegSide::B => 1,
        }
    }
}

/// OUR direction on a leg, as our SDP towards that leg says.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum MediaDirection {
    SendRecv,
    /// We send, and drop what arrives.
    SendOnly,
    /// We receive, and send nothing.
    RecvOnly,
    Inactive,
}

impl MediaDirection {
    pub fn sends(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::RecvOnly)
    }
}

/// What the SDP exchange on one leg settled.
#[derive(Debug, Clone, PartialEq)]
pub struct LegParams {
    /// The far end's RTP address from SDP (None until known, e.g. a delayed offer).
    pub remote_rtp: Option<SocketAddr>,
    /// The far end's RTCP address (a=rtcp); default: RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    pub codec: CodecSpec,
    /// Payload type of telephone-event on this leg, if negotiated.
    pub telephone_event_pt: Option<u8>,
    pub direction: MediaDirection,
}

/// Where and how to record a call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSpec {
    /// The finished file's path; `<path>.part` while recording.
    pub final_path: PathBuf,
    /// The leg recorded on the left channel (the agent); the other leg goes right.
    pub agent_side: LegSide,
}

/// Decoded audio of one party for transcription: 16 kHz mono.
#[derive(Debug, Clone, PartialEq)]
pub struct TapFrame {
    pub role: Channel,
    /// Position of the first sample, in ms since the call's media started.
    pub start_ms: u64,
    pub samples: Vec<i16>,
}

/// A tone callscope generates into a leg itself (`MediaEngine::play_tone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tone {
    /// Ringback as in most of Europe (ETSI TR 101 041): 425 Hz, 1 s on, 4 s off.
    Ringback,
    /// North American ringback: 440 + 480 Hz, 2 s on, 4 s off.
    RingbackUs,
}

/// Something the media side tells call control (more kinds may come: match with `_`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// One key press (RFC 4733) received on `side`, or (`sent`) one digit callscope played
    /// to `side` for `MediaEngine::send_dtmf`.
    Dtmf {
        call_id: String,
        side: LegSide,
        digit: char,
        /// Arrival of the press's first packet (or when we sent our first), ms since
        /// media start.
        start_ms: u64,
        duration_ms: u64,
        /// True for digits callscope sent to `side`; false for digits received from it.
        sent: bool,
    },
    /// Audio from `side` stopped (`muted`) or started again reaching the other leg, the
    /// recording and the taps (`MediaEngine::set_muted`).
    Muted {
        call_id: String,
        side: LegSide,
        muted: bool,
        /// When it took effect, ms since media start.
        at_ms: u64,
    },
    /// A leg was closed by `MediaEngine::release_leg` while the call goes on: its quality
    /// as it stood then (the final report only describes the leg in place at the end).
    LegReleased {
        call_id: String,
        side: LegSide,
        at_ms: u64,
        quality: Box<LegQuality>,
    },
    /// A tone started by `MediaEngine::play_tone` ended: asked to (`by_media` false) or
    /// because audio from the other leg began flowing to `side` (`by_media` true).
    ToneStopped {
        call_id: String,
        side: LegSide,
        tone: Tone,
        at_ms: u64,
        by_media: bool,
    },
    /// A tap consumer lags: frames were dropped (reported at the first drop and then at most
    /// once a second while drops continue).
    TapOverflow {
        call_id: String,
        role: Channel,
        dropped_total: u64,
    },
    /// The recording could not be written (disk full, permissions…); the call goes on.
    RecordingFailed { call_id: String, error: String },
    /// The far end's source address changed and the leg now sends there.
    Relatched {
        call_id: String,
        side: LegSide,
        remote: SocketAddr,
    },
    /// A WebRTC leg's connection changed state (connected, lost, failed with the reason,
    /// e.g. a DTLS fingerprint that does not match).
    WebRtc {
        call_id: String,
        side: LegSide,
        state: WebRtcState,
        error: Option<String>,
    },
}

/// Quality of one leg as received from (and sent to) its far end.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LegQuality {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub expected: u64,
    pub lost: i64,
    pub loss_percent: f64,
    /// Received packets thrown away by the jitter buffer (transcoding only).
    pub discarded: u64,
    /// RFC 3550 interarrival jitter.
    pub jitter_ms: f64,
    pub max_jitter_ms: f64,
    /// E-model estimate (None before any packet arrived).
    pub mos: Option<f64>,
    pub r_factor: Option<f64>,
    /// Last round-trip time measured from RTCP report blocks.
    pub rtt_ms: Option<f64>,
    #[serde(serialize_with = "codec_name")]
    pub codec: Option<CodecKind>,
    /// Opus legs: the widest audio the far end's packets carried, as the sample rate that
    /// holds it (8000 narrowband … 16000 wideband … 48000 full band). Shows whether a
    /// browser kept to the `maxplaybackrate` we asked for.
    pub audio_rate_received: Option<u32>,
    /// Opus legs: the far end's packets by the coding mode each one's first byte names.
    /// Together with the bytes per packet this says what the far end's encoder chose
    /// (a browser's speech at wideband is mostly SILK; music or a high bitrate, CELT).
    pub opus_modes_received: Option<OpusModeCounts>,
    /// Where the far end's RTP really comes from (symmetric RTP).
    pub latched_remote: Option<SocketAddr>,
    pub ssrc_changes: u64,
    pub rtcp_received: u64,
    pub rtcp_sent: u64,
    /// Datagrams that were not valid RTP/RTCP.
    pub malformed: u64,
    /// RTP with a payload type not negotiated on this leg.
    pub wrong_payload_type: u64,
    /// RTP from an address other than the latched one (before a re-latch confirmed it).
    pub foreign_source: u64,
    /// Packets dropped because our direction on the leg does not receive (hold).
    pub dropped_by_direction: u64,
    /// Sends the OS refused (socket buffer full): the media path never waits.
    pub send_errors: u64,
    pub dtmf_events: u64,
    /// Set on WebRTC legs: ICE/DTLS progress.
    pub webrtc: Option<WebRtcState>,
}

/// Opus packets counted by coding mode (RFC 6716 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct OpusModeCounts {
    /// Linear-prediction frames, what speech at narrow- and wideband usually takes.
    pub silk: u64,
    /// SILK below 8 kHz with CELT above it (super-wideband and full band only).
    pub hybrid: u64,
    /// Transform frames: music, high bitrates, or an encoder told to use them.
    pub celt: u64,
}

impl OpusModeCounts {
    pub fn count(&mut self, mode: OpusMode) {
        match mode {
            OpusMode::Silk => self.silk += 1,
            OpusMode::Hybrid => self.hybrid += 1,
            OpusMode::Celt => self.celt += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.silk + self.hybrid + self.celt
    }
}

/// `CodecKind` lives in `codec` (no serde there): written as its name, e.g. "Pcmu".
fn codec_name<S: serde::Serializer>(codec: &Option<CodecKind>, s: S) -> Result<S::Ok, S::Error> {
    match codec {
        Some(kind) => s.serialize_some(&format!("{kind:?}")),
        None => s.serialize_none(),
    }
}

/// Both legs' quality while the call runs.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct CallMediaSnapshot {
    pub a: Option<LegQuality>,
    pub b: Option<LegQuality>,
    pub recording: bool,
    pub recording_paused: bool,
}

/// A key press, as kept in the call report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DtmfRecord {
    pub side: LegSide,
    pub digit: char,
    pub start_ms: u64,
    pub duration_ms: u64,
    /// Sent by callscope to `side` (`send_dtmf`) rather than received from it.
    pub sent: bool,
}

/// A stretch during which audio from `side` was muted, ms since media start (`end_ms` is
/// the call's end if it was still muted then, or the leg's release).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MuteRecord {
    pub side: LegSide,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// A leg closed during the call (`release_leg`), with its quality at that moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedLeg {
    pub side: LegSide,
    pub at_ms: u64,
    pub quality: LegQuality,
}

/// A paused stretch of the recording, ms from the recording's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PauseRecord {
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Audio that reached callscope but not the recording, per channel (agent, customer), in ms
/// of recording: packets that arrived after their place had been written (as silence), and
/// packets so far ahead of the clock that they could not be held. Zero on a healthy call;
/// anything else tells a reviewer the file has holes the far end did not send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordingLoss {
    pub late_ms: [u64; 2],
    pub overrun_ms: [u64; 2],
}

impl RecordingLoss {
    pub fn is_none(&self) -> bool {
        *self == RecordingLoss::default()
    }
}

/// Everything known about a call's media once it is closed.
#[derive(Debug, Clone, PartialEq)]
pub struct CallMediaReport {
    pub a: Option<LegQuality>,
    pub b: Option<LegQuality>,
    pub recording: Option<FinishedRecording>,
    /// Which leg is on the left channel of `recording`.
    pub agent_side: Option<LegSide>,
    pub recording_error: Option<String>,
    pub pauses: Vec<PauseRecord>,
    pub dtmf: Vec<DtmfRecord>,
    /// Muted stretches per side, in order.
    pub mutes: Vec<MuteRecord>,
    /// Legs released during the call (a transfer, a ring group answered by a browser).
    pub released_legs: Vec<ReleasedLeg>,
    /// Tap frames dropped because a consumer lagged, per role (agent, customer).
    pub tap_drops: [u64; 2],
    /// Recorded audio dropped because the writer lagged (frames).
    pub recording_dropped_frames: u64,
    /// Received audio that missed its place in the recording.
    pub recording_loss: RecordingLoss,
    /// Events that did not fit into the event channel.
    pub events_dropped: u64,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no free port pair in {min}..={max}")]
    NoPorts { min: u16, max: u16 },
    #[error("unknown call {0}")]
    UnknownCall(String),
    #[error("call {call_id} has no leg {side:?} (allocate it first)")]
    UnknownLeg { call_id: String, side: LegSide },
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    #[error("recording already started for call {0}")]
    AlreadyRecording(String),
    #[error("call {0} is not being recorded")]
    NotRecording(String),
    #[error("recording: {0}")]
    Recording(String),
    #[error("the call's media task has ended")]
    CallEnded,
    #[error("invalid engine config: {0}")]
    Config(String),
    #[error("webrtc: {0}")]
    WebRtc(#[from] WebRtcError),
    #[error("call {call_id} leg {side:?} has no telephone-event payload type negotiated")]
    NoTelephoneEvent { call_id: String, side: LegSide },
    #[error("invalid DTMF digits: {0}")]
    InvalidDigits(String),
    #[error("call {call_id} leg {side:?} is not a WebRTC leg")]
    NotWebRtc { call_id: String, side: LegSide },
}

/// Why a WebRTC leg could not be set up or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebRtcError {
    #[error("unusable offer: {0}")]
    Offer(String),
    #[error("bad ICE candidate: {0}")]
    Candidate(String),
    #[error("cannot set up the session: {0}")]
    Setup(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opus_leg_is_recorded_at_the_rate_it_negotiated() {
        let mut config = EngineConfig::local("127.0.0.1".parse().unwrap());
        let full_band = CodecSpec::opus(111);
        let wideband = CodecSpec::opus(111).with_audio_rate(16000);
        let super_wideband = CodecSpec::opus(111).with_audio_rate(24000);
        assert_eq!(config.recording_pcm_rate(&full_band), 48000);
        assert_eq!(config.recording_pcm_rate(&wideband), 16000);
        // libopus could decode at 24 kHz, but the recorder's rates are 16 and 48 kHz:
        // rounding down would lose audio the browser was allowed to send.
        assert_eq!(config.recording_pcm_rate(&super_wideband), 48000);
        // Fixed-rate codecs are never touched.
        assert_eq!(config.recording_pcm_rate(&CodecSpec::pcmu()), 8000);
        assert_eq!(config.recording_pcm_rate(&CodecSpec::g722()), 16000);

        config.opus_recording_rate = 16000;
        assert_eq!(config.recording_pcm_rate(&full_band), 16000);
        assert_eq!(config.recording_pcm_rate(&wideband), 16000);
        assert_eq!(config.recording_pcm_rate(&CodecSpec::pcmu()), 8000);
    }

    #[test]
    fn audio_rate_stays_within_what_the_codec_can_carry() {
        assert_eq!(
            CodecSpec::opus(111).with_audio_rate(96000).audio_rate,
            48000
        );
        assert_eq!(CodecSpec::opus(111).with_audio_rate(1000).audio_rate, 8000);
        assert_eq!(CodecSpec::pcmu().with_audio_rate(16000).audio_rate, 8000);
        // The bound is not part of what decides relay against transcode.
        let wideband = CodecSpec::opus(111).with_audio_rate(16000);
        assert!(wideband.relay_compatible(&CodecSpec::opus(111)));
    }
}

//! State of one leg inside the call task: what SDP said, where the far end really is
//! (symmetric RTP latching), receive statistics, our outbound stream, DTMF detection and
//! RTCP bookkeeping. No sockets here: the call task owns them.

use std::net::SocketAddr;
use std::time::Instant;

use crate::codec::{ArrivalDecoder, CodecKind, decoder_at_rate};
use crate::dtmf::DtmfDetector;
use crate::mos::{self, CodecImpairment, QualityInput};
use crate::stats::ReceiveStats;

use super::rewrite::OutboundStream;
use super::types::{LegParams, LegQuality, OpusModeCounts};
use super::webrtc::WebRtcSession;

/// Consecutive packets from a new address needed to move the latch there (NAT rebinding,
/// a transfer); one stray packet from elsewhere must not hijack the stream.
const RELATCH_PACKETS: u32 = 3;

/// What latching decided about a packet's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceVerdict {
    Accept,
    /// Accepted, and the latch moved to this address.
    Relatched,
    Reject,
}

pub struct Leg {
    pub params: Option<LegParams>,
    latched_rtp: Option<SocketAddr>,
    candidate: Option<(SocketAddr, u32)>,
    pub latched_rtcp: Option<SocketAddr>,
    pub stats: ReceiveStats,
    pub inbound_ssrc: Option<u32>,
    pub out: OutboundStream,
    pub dtmf: DtmfDetector,
    /// The press being received: its RTP timestamp and the arrival of its first packet.
    pub dtmf_first: Option<(u32, u64)>,
    /// RTP span [start, end) of the latest press, for keeping its audio out of recordings.
    pub dtmf_span: Option<(u32, u32)>,
    /// Decoder for the recording/taps (separate from any transcoder's), fed in stream order.
    pub decoder: Option<ArrivalDecoder>,
    /// The SR last received: its compact NTP time and when it arrived (for DLSR).
    pub last_sr: Option<(u32, Instant)>,
    pub rtt_ms: Option<f64>,
    /// Loss (percent) in the far end's latest receiver report on what we send, not yet
    /// handed to the transcoder encoding for this leg (it tunes Opus FEC to it).
    pub loss_report: Option<u8>,
    pub next_rtcp: Instant,
    pub malformed: u64,
    pub wrong_payload_type: u64,
    pub foreign_source: u64,
    pub dropped_by_direction: u64,
    pub send_errors: u64,
    pub rtcp_received: u64,
    pub rtcp_sent: u64,
    pub dtmf_events: u64,
    pub unconfigured: u64,
    /// Opus: the widest audio bandwidth seen in the far end's packets (see
    /// `LegQuality::audio_rate_received`).
    pub audio_rate_received: Option<u32>,
    /// Opus: the far end's packets by coding mode (`LegQuality::opus_modes_received`).
    pub opus_modes_received: OpusModeCounts,
    /// Set when the leg is WebRTC: its datagrams go through this session, not plain RTP.
    pub webrtc: Option<Box<WebRtcSession>>,
}

impl Leg {
    pub fn new(seed: u64, now: Instant) -> Self {
        Leg {
            params: None,
            latched_rtp: None,
            candidate: None,
            latched_rtcp: None,
            stats: ReceiveStats::new(8000),
            inbound_ssrc: None,
            out: OutboundStream::new(seed, 8000),
            dtmf: DtmfDetector::new(8000),
            dtmf_first: None,
            dtmf_span: None,
            decoder: None,
            last_sr: None,
            rtt_ms: None,
            loss_report: None,
            next_rtcp: now,
            malformed: 0,
            wrong_payload_type: 0,
            foreign_source: 0,
            dropped_by_direction: 0,
            send_errors: 0,
            rtcp_received: 0,
            rtcp_sent: 0,
            dtmf_events: 0,
            unconfigured: 0,
            audio_rate_received: None,
            opus_modes_received: OpusModeCounts::default(),
            webrtc: None,
        }
    }

    /// Applies new SDP parameters (first answer or any re-INVITE); true when the codec
    /// changed (the leg's decoded stream starts afresh).
    pub fn configure(&mut self, params: LegParams, recording_rate: u32) -> bool {
        let old = self.params.take();
        let clock = params.codec.clock_rate.max(1);
        let far_end_moved = old
            .as_ref()
            .is_none_or(|o| o.remote_rtp != params.remote_rtp);
        if far_end_moved {
            // A new far end: latch afresh to whatever it sends from.
            self.latched_rtp = None;
            self.latched_rtcp = None;
            self.candidate = None;
        }
        let codec_changed = old.as_ref().is_none_or(|o| o.codec != params.codec);
        if codec_changed {
            // Stats survive a re-INVITE unless the clock (and so the jitter unit) changes.
            if old.as_ref().is_none_or(|o| o.codec.clock_rate != clock) {
                self.stats = ReceiveStats::new(clock);
            }
            self.out.set_clock_rate(clock);
            self.dtmf = DtmfDetector::new(clock);
            self.dtmf_span = None;
            self.decoder = decoder_at_rate(&params.codec, recording_rate)
                .ok()
                .map(|d| ArrivalDecoder::new(d, clock));
        }
        self.params = Some(params);
        codec_changed
    }

    /// Where RTP for this leg goes: the latched source, else the SDP address.
    pub fn rtp_destination(&self) -> Option<SocketAddr> {
        if let Some(session) = self.webrtc.as_ref() {
            // ICE decides where a WebRTC leg's media goes; nothing before it is connected.
            return session.peer();
        }
        self.latched_rtp
            .or_else(|| self.params.as_ref().and_then(|p| p.remote_rtp))
    }

    /// Where RTCP for this leg goes (without rtcp-mux).
    pub fn rtcp_destination(&self) -> Option<SocketAddr> {
        if let Some(a) = self.latched_rtcp {
            return Some(a);
        }
        if let Some(a) = self.params.as_ref().and_then(|p| p.remote_rtcp) {
            return Some(a);
        }
        self.rtp_destination().map(|mut a| {
            a.set_port(a.port().wrapping_add(1));
            a
        })
    }

    /// Symmetric RTP: latch to the first valid packet's source; move only when another
    /// source sends several packets in a row.
    pub fn check_source(&mut self, src: SocketAddr) -> SourceVerdict {
        match self.latched_rtp {
            None => {
                self.latched_rtp = Some(src);
                SourceVerdict::Relatched
            }
            Some(l) if l == src => {
                self.candidate = None;
                SourceVerdict::Accept
            }
            Some(_) => {
                let count = match self.candidate {
                    Some((c, n)) if c == src => n + 1,
                    _ => 1,
                };
                if count >= RELATCH_PACKETS {
                    self.latched_rtp = Some(src);
                    self.candidate = None;
                    SourceVerdict::Relatched
                } else {
                    self.candidate = Some((src, count));
                    SourceVerdict::Reject
                }
            }
        }
    }

    pub fn quality(&self, extra_discards: u64, extra_delay_ms: f64) -> LegQuality {
        let s = self.stats.snapshot();
        let codec = self.params.as_ref().map(|p| p.codec.kind);
        let impairment = match codec {
            Some(CodecKind::Opus) => CodecImpairment::OPUS_PROVISIONAL,
            _ => CodecImpairment::G711_PLC,
        };
        let estimate = (s.packets > 0).then(|| {
            let rtt = self.webrtc.as_ref().and_then(|w| w.rtt_ms).or(self.rtt_ms);
            let delay = rtt.map_or(0.0, |r| r / 2.0) + 20.0 + extra_delay_ms;
            mos::estimate(QualityInput {
                codec: impairment,
                loss_percent: s.loss_percent,
                one_way_delay_ms: delay,
            })
        });
        LegQuality {
            packets_received: s.packets,
            packets_sent: self.out.packets,
            bytes_received: s.bytes,
            bytes_sent: self.out.octets,
            expected: s.expected,
            lost: s.lost,
            loss_percent: s.loss_percent,
            discarded: s.discards + extra_discards,
            jitter_ms: s.jitter_ms,
            max_jitter_ms: s.max_jitter_ms,
            mos: estimate.map(|e| e.mos),
            r_factor: estimate.map(|e| e.r_factor),
            rtt_ms: self.webrtc.as_ref().and_then(|w| w.rtt_ms).or(self.rtt_ms),
            codec,
            audio_rate_received: self.audio_rate_received,
            opus_modes_received: (self.opus_modes_received.total() > 0)
                .then_some(self.opus_modes_received),
            latched_remote: self.latched_rtp,
            ssrc_changes: s.ssrc_changes,
            rtcp_received: self.rtcp_received,
            rtcp_sent: self.rtcp_sent,
            malformed: self.malformed
                + self.unconfigured
                + self.webrtc.as_ref().map_or(0, |w| w.rejected),
            wrong_payload_type: self.wrong_payload_type,
            foreign_source: self.foreign_source,
            dropped_by_direction: self.dropped_by_direction,
            send_errors: self.send_errors,
            dtmf_events: self.dtmf_events,
            webrtc: self.webrtc.as_ref().map(|w| w.state()),
        }
    }
}

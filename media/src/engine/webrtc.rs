//! A WebRTC leg: str0m (sans-IO) in RTP mode between the leg's UDP socket and the engine.
//!
//! The browser offers; we answer as an ICE-lite agent whose only candidate is the leg's bound
//! RTP socket, DTLS passive (`a=setup:passive`), audio only: Opus preferred, PCMU/PCMA as
//! fallback, telephone-event at 48 and 8 kHz. Once ICE and DTLS-SRTP are up, str0m hands us
//! each decrypted RTP packet, which the call task re-serialises as plain RTP and feeds into
//! the same path as a SIP leg's (relay, transcode, record, taps, DTMF). Outgoing RTP goes the
//! other way: the call task builds a plain packet as for any leg, and this session writes its
//! header fields and payload through str0m's direct API (SRTP-protected on the wire). RTCP
//! (reports, TWCC feedback) is str0m's business on this leg.
//!
//! Why RTP mode rather than str0m's frame API: the engine already owns jitter buffering,
//! concealment and codec work, and relays payloads untouched when both legs speak Opus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::codec::{CodecKind, CodecSpec};
use crate::rtp::{RtpBuilder, RtpPacket};

use super::playback_rate::announce_max_playback_rate;
use super::types::{LegParams, MediaDirection, WebRtcError};

/// Payload types we offer for telephone-event if the browser's offer does not name its own
/// (the answer always uses the offer's numbers).
const TELE_PT_48K: u8 = 110;
const TELE_PT_8K: u8 = 126;
/// Most outputs drained after one input: a bound on work per datagram or timer, far above
/// what one input produces (a DTLS flight is a handful of datagrams).
const MAX_OUTPUTS: usize = 256;
/// How often str0m reports stats (RTT from RTCP feeds the leg's quality).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Crypto and certificate shared by all WebRTC legs of an engine: generating a certificate
/// per call would cost a key generation each time; one per process is what servers do.
#[derive(Clone)]
pub struct WebRtcIdentity {
    provider: Arc<CryptoProvider>,
    cert: DtlsCert,
}

impl WebRtcIdentity {
    pub fn generate() -> Result<Self, WebRtcError> {
        let provider = Arc::new(str0m::crypto::from_feature_flags());
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| WebRtcError::Setup("cannot generate a DTLS certificate".into()))?;
        Ok(WebRtcIdentity { provider, cert })
    }
}

/// Connection progress of a WebRTC leg, as call control sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum WebRtcState {
    /// Answer given; ICE/DTLS not yet done.
    Connecting,
    /// ICE and DTLS-SRTP are up: media flows.
    Connected,
    /// ICE consent lost (the browser went away or its network changed).
    Disconnected,
    /// DTLS failed (e.g. a fingerprint that does not match the certificate) or str0m
    /// refused the session: the leg carries no media any more.
    Failed,
}

/// What happened on the session that the call task must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionNews {
    State(WebRtcState, Option<String>),
}

/// The outcome of accepting an offer: the answer and what the leg speaks.
pub struct Accepted {
    pub session: WebRtcSession,
    pub answer_sdp: String,
    pub params: LegParams,
}

pub struct WebRtcSession {
    rtc: Rtc,
    mid: Mid,
    /// Our host candidate: the leg's RTP socket address.
    local: SocketAddr,
    /// The address str0m last sent to (the nominated ICE pair's remote).
    peer: Option<SocketAddr>,
    state: WebRtcState,
    /// Extended outgoing sequence (SRTP's rollover counter is its upper bits).
    out_seq: Option<(u16, u64)>,
    next_timeout: Instant,
    /// Decrypted RTP packets, plain-serialised, waiting for the call task.
    pub inbound: Vec<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    pub news: Vec<SessionNews>,
    /// Datagrams str0m could not parse or refused (not STUN/DTLS/SRTP of this session).
    pub rejected: u64,
    /// RTT from RTCP as str0m measured it.
    pub rtt_ms: Option<f64>,
    /// Loss (percent) the browser's receiver reports show on what we send, since the last
    /// stats event; taken by the call task (see `Leg::loss_report`).
    pub loss_report: Option<u8>,
    pub last_error: Option<String>,
}

impl WebRtcSession {
    /// Builds the session for a browser's offer and returns our answer. `audio_rate`: the
    /// highest Opus audio rate we ask the browser for (`EngineConfig::webrtc_audio_rate`).
    pub fn accept_offer(
        identity: &WebRtcIdentity,
        local: SocketAddr,
        offer_sdp: &str,
        audio_rate: u32,
        now: Instant,
    ) -> Result<Accepted, WebRtcError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| WebRtcError::Offer(e.to_string()))?;
        let mut config = RtcConfig::new()
            .set_crypto_provider(identity.provider.clone())
            .set_dtls_cert(identity.cert.clone())
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_stats_interval(Some(STATS_INTERVAL))
            .clear_codecs()
            .enable_opus(true, false)
            .enable_pcmu(true, false)
            .enable_pcma(true, false);
        let codecs = config.codec_config();
        for (pt, rate) in [
            (TELE_PT_48K, Frequency::FORTY_EIGHT_KHZ),
            (TELE_PT_8K, Frequency::EIGHT_KHZ),
        ] {
            codecs.add_config(
                pt.into(),
                None,
                Codec::Tele,
                rate,
                None,
                FormatParams::parse_line("0-16"),
            );
        }
        let mut rtc = config.build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| WebRtcError::Setup(e.to_string()))?;
        if rtc.add_local_candidate(candidate).is_none() {
            return Err(WebRtcError::Setup(format!(
                "candidate {local} refused by the ICE agent"
            )));
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Offer(e.to_string()))?;
        let mut answer_sdp = answer.to_sdp_string();

        let (mid, direction) = first_audio(&rtc, offer_sdp)
            .ok_or_else(|| WebRtcError::Offer("the offer has no audio we can take".into()))?;
        let mut params = negotiated_params(&rtc, mid, direction, &answer_sdp)
            .ok_or_else(|| WebRtcError::Offer("no common audio codec (Opus, PCMU, PCMA)".into()))?;
        if params.codec.kind == CodecKind::Opus && audio_rate < params.codec.pcm_rate() {
            params.codec = params.codec.with_audio_rate(audio_rate);
            answer_sdp = announce_max_playback_rate(
                &answer_sdp,
                params.codec.payload_type,
                params.codec.audio_rate,
            );
        }
        let mut session = WebRtcSession {
            rtc,
            mid,
            local,
            peer: None,
            state: WebRtcState::Connecting,
            out_seq: None,
            next_timeout: now,
            inbound: Vec::new(),
            spare: Vec::new(),
            news: Vec::new(),
            rejected: 0,
            rtt_ms: None,
            loss_report: None,
            last_error: None,
        };
        session.drain(now, None);
        Ok(Accepted {
            session,
            answer_sdp,
            params,
        })
    }

    pub fn state(&self) -> WebRtcState {
        self.state
    }

    /// Where media for the browser goes once connected (None before: nothing is sent).
    pub fn peer(&self) -> Option<SocketAddr> {
        match self.state {
            WebRtcState::Connected => self.peer,
            _ => None,
        }
    }

    pub fn next_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// A trickled remote candidate (parsed by [`parse_candidate`]).
    pub fn add_remote_candidate(
        &mut self,
        candidate: Candidate,
        now: Instant,
        socket: &super::socket::MediaSocket,
    ) {
        self.rtc.add_remote_candidate(candidate);
        self.drain(now, Some(socket));
    }

    /// One datagram from the leg's socket.
    pub fn on_datagram(
        &mut self,
        data: &[u8],
        source: SocketAddr,
        now: Instant,
        socket: &super::socket::MediaSocket,
    ) {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, data) else {
            self.rejected += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            self.rejected += 1;
            return;
        }
        if let Err(e) = self.rtc.handle_input(input) {
            self.fail(e.to_string());
        }
        self.drain(now, Some(socket));
    }

    /// str0m's timer (ICE consent, DTLS retransmits, RTCP reports, stats).
    pub fn on_timeout(&mut self, now: Instant, socket: &super::socket::MediaSocket) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.fail(e.to_string());
        }
        self.drain(now, Some(socket));
    }

    /// Sends one plain RTP packet built by the call task, SRTP-protected. Returns false when
    /// it could not go out (not connected, no send stream, bad packet).
    pub fn send_rtp(
        &mut self,
        packet: &[u8],
        now: Instant,
        socket: &super::socket::MediaSocket,
    ) -> bool {
        if self.state != WebRtcState::Connected {
            return false;
        }
        let Ok(pkt) = RtpPacket::parse(packet) else {
            return false;
        };
        let seq = self.extend_seq(pkt.sequence);
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(self.mid, None) else {
            return false;
        };
        let write = RtpWrite::new(
            pkt.payload_type.into(),
            SeqNo::from(seq),
            pkt.timestamp,
            now,
            pkt.payload,
        )
        .marker(pkt.marker);
        stream.write_rtp(write);
        self.drain(now, Some(socket));
        true
    }

    /// Our extended sequence number: str0m derives SRTP's rollover counter from it.
    fn extend_seq(&mut self, seq: u16) -> u64 {
        let ext = match self.out_seq {
            None => u64::from(seq),
            Some((last, ext)) => {
                let delta = i64::from(seq.wrapping_sub(last) as i16);
                ext.saturating_add_signed(delta)
            }
        };
        self.out_seq = Some((seq, ext));
        ext
    }

    fn fail(&mut self, error: String) {
        tracing::info!(%error, "webrtc leg failed");
        self.last_error = Some(error.clone());
        if self.state != WebRtcState::Failed {
            self.state = WebRtcState::Failed;
            self.news
                .push(SessionNews::State(WebRtcState::Failed, Some(error)));
        }
        self.rtc.disconnect();
    }

    fn set_state(&mut self, state: WebRtcState) {
        if self.state != state && self.state != WebRtcState::Failed {
            self.state = state;
            self.news.push(SessionNews::State(state, None));
        }
    }

    /// Polls str0m until it only has a timeout left: sends its datagrams, keeps its RTP.
    fn drain(&mut self, now: Instant, socket: Option<&super::socket::MediaSocket>) {
        for _ in 0..MAX_OUTPUTS {
            let output = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    self.fail(e.to_string());
                    // A closed session has nothing more to say; look again in a while.
                    self.next_timeout = now + Duration::from_secs(1);
                    return;
                }
            };
            match output {
                Output::Timeout(at) => {
                    self.next_timeout = at;
                    return;
                }
                Output::Transmit(t) => {
                    self.peer = Some(t.destination);
                    if let Some(socket) = socket {
                        let _ = socket.try_send_to(&t.contents, t.destination);
                    }
                }
                Output::Event(event) => self.on_event(event),
            }
        }
        // Still busy after the bound: continue on the next timer turn, very soon.
        self.next_timeout = now + Duration::from_millis(1);
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::IceConnectionStateChange(ice) => {
                tracing::debug!(local = %self.local, ?ice, "webrtc leg ICE state")
            }
            Event::Connected => tracing::debug!(local = %self.local, "webrtc leg DTLS-SRTP up"),
            _ => {}
        }
        match event {
            Event::Connected => self.set_state(WebRtcState::Connected),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.set_state(WebRtcState::Disconnected)
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if self.rtc.is_connected() => self.set_state(WebRtcState::Connected),
            Event::RtpPacket(pkt) => {
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.clear();
                let built = RtpBuilder {
                    marker: pkt.header.marker,
                    payload_type: *pkt.header.payload_type,
                    sequence: pkt.header.sequence_number,
                    timestamp: pkt.header.timestamp,
                    ssrc: *pkt.header.ssrc,
                    payload: &pkt.payload,
                    ..RtpBuilder::default()
                }
                .write(&mut buf);
                if built.is_ok() {
                    self.inbound.push(buf);
                }
            }
            Event::MediaEgressStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                }
                // None: no receiver report since the last event; keep what we had.
                if let Some(loss) = s.loss {
                    self.loss_report = Some(super::rtcp_session::loss_percent(loss));
                }
            }
            Event::MediaIngressStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
                }
            }
            _ => {}
        }
    }

    /// Hands the inbound packets to the caller, keeping the buffers for reuse.
    pub fn take_inbound(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.inbound)
    }

    pub fn recycle(&mut self, mut bufs: Vec<Vec<u8>>) {
        // Bounded pool: a burst does not keep its buffers forever.
        bufs.truncate(32usize.saturating_sub(self.spare.len()));
        self.spare.append(&mut bufs);
    }

    /// Ends the session politely (DTLS close_notify, RTCP BYE) on the way out.
    pub fn close(&mut self, now: Instant, socket: &super::socket::MediaSocket) {
        if self.rtc.close().is_ok() {
            self.drain(now, Some(socket));
        }
    }
}

/// Parses a trickled candidate line (`candidate:…`, with or without `a=`).
pub fn parse_candidate(line: &str) -> Result<Candidate, WebRtcError> {
    let line = line.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    Candidate::from_sdp_string(line).map_err(|e| WebRtcError::Candidate(e.to_string()))
}

/// The first audio m-line of the offer that str0m took, and our direction on it.
fn first_audio(rtc: &Rtc, offer_sdp: &str) -> Option<(Mid, Direction)> {
    // Mids in offer order; str0m keeps the offerer's mids.
    let offer = SdpOffer::from_sdp_string(offer_sdp).ok()?;
    offer.media_lines.iter().find_map(|m| {
        let media = rtc.media(m.mid())?;
        (media.kind() == MediaKind::Audio).then(|| (media.mid(), media.direction()))
    })
}

/// The codec the browser will send: the first in our answer's m-line that we speak (a
/// sender uses the first codec of the answer), and the telephone-event on its clock.
fn negotiated_params(
    rtc: &Rtc,
    mid: Mid,
    direction: Direction,
    answer_sdp: &str,
) -> Option<LegParams> {
    let media = rtc.media(mid)?;
    let remote = media.remote_pts();
    let config = rtc.codec_config();
    let spec_of = |pt: u8| {
        config
            .find(|p| *p.pt() == pt)
            .map(|p| (p.spec().codec, p.spec().clock_rate.get()))
    };
    let answer_order = answer_sdp
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .map(|l| {
            l.split_whitespace()
                .skip(3)
                .filter_map(|f| f.parse::<u8>().ok())
                .collect::<Vec<u8>>()
        })
        .unwrap_or_default();
    let codec = answer_order
        .iter()
        .copied()
        .filter(|pt| remote.iter().any(|r| **r == *pt))
        .find_map(|pt| match spec_of(pt) {
            Some((Codec::Opus, _)) => Some(CodecSpec::opus(pt)),
            Some((Codec::PCMU, _)) => Some(CodecSpec {
                payload_type: pt,
                ..CodecSpec::pcmu()
            }),
            Some((Codec::PCMA, _)) => Some(CodecSpec {
                payload_type: pt,
                ..CodecSpec::pcma()
            }),
            _ => None,
        })?;
    let telephone_event_pt = remote
        .iter()
        .map(|p| **p)
        .find(|&pt| matches!(spec_of(pt), Some((Codec::Tele, rate)) if rate == codec.clock_rate));
    let direction = match direction {
        Direction::SendRecv => MediaDirection::SendRecv,
        Direction::SendOnly => MediaDirection::SendOnly,
        Direction::RecvOnly => MediaDirection::RecvOnly,
        Direction::Inactive => MediaDirection::Inactive,
    };
    Some(LegParams {
        remote_rtp: None,
        remote_rtcp: None,
        rtcp_mux: true,
        codec,
        telephone_event_pt,
        direction,
    })
}

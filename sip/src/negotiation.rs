//! SDP offer/answer state of each call's two legs, independent of how media is moved.
//!
//! Both [`MediaControl`](crate::media::MediaControl) implementations share it: the
//! signalling-only one (ports and SDP, no RTP) and the RTP one (the media engine). Given a
//! leg's local port, it answers offers, writes our offers, applies answers and direction
//! changes, and keeps what a media engine needs to know about the far end.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::media::{Codec, Direction, LegRole, MediaError};
use crate::sdp::{self, LocalSdp, PayloadFormat, SessionDescription};

/// Where and how the far end of a leg takes its media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// The c= address (None when the SDP had none we could read).
    pub address: Option<IpAddr>,
    pub port: u16,
    /// `a=rtcp:` port when given; otherwise RTP port + 1.
    pub rtcp_port: Option<u16>,
    /// Both sides agreed on RTP and RTCP on one port.
    pub rtcp_mux: bool,
}

/// One leg's negotiated media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegMedia {
    /// Our RTP port on this leg.
    pub port: u16,
    /// The formats of the last SDP exchange: the voice codec first, telephone-event if any.
    pub formats: Vec<PayloadFormat>,
    /// Our direction on this leg.
    pub direction: Direction,
    /// o= version of our last SDP on this leg.
    pub version: u64,
    /// The far end, once an offer or answer from it was applied.
    pub remote: Option<RemoteMedia>,
}

impl LegMedia {
    /// The voice codec in use (the first format that is not telephone-event).
    pub fn voice_format(&self) -> Option<&PayloadFormat> {
        self.formats
            .iter()
            .find(|f| !matches!(f.codec(), Some(Codec::TelephoneEvent) | None))
    }

    /// The telephone-event format, when both sides have it.
    pub fn telephone_event(&self) -> Option<&PayloadFormat> {
        self.formats
            .iter()
            .find(|f| f.codec() == Some(Codec::TelephoneEvent))
    }
}

/// Offer/answer state of every open call.
pub struct Negotiator {
    /// The address written into c= lines.
    address: IpAddr,
    /// Codecs we accept, in our preference order.
    codecs: Vec<Codec>,
    calls: HashMap<String, [Option<LegMedia>; 2]>,
}

/// Keep one voice codec (the offerer's first that we speak) and telephone-event. A single
/// codec in the answer means the far end sends exactly what we decode, and a transfer or a
/// relay never meets a payload type switch mid-call.
/// telephone-event on the voice codec's clock is preferred: it shares the stream's
/// timestamps (RFC 4733 §2.1); another clock is kept only when nothing else was offered.
fn settle(formats: Vec<PayloadFormat>) -> Vec<PayloadFormat> {
    let mut voice: Option<PayloadFormat> = None;
    let mut dtmf: Vec<PayloadFormat> = Vec::new();
    for format in formats {
        match format.codec() {
            Some(Codec::TelephoneEvent) => dtmf.push(format),
            None => {}
            Some(_) if voice.is_none() => voice = Some(format),
            Some(_) => {}
        }
    }
    let clock = voice.as_ref().map(|v| v.clock_rate);
    let chosen = match dtmf.iter().position(|f| Some(f.clock_rate) == clock) {
        Some(i) => Some(dtmf.swap_remove(i)),
        None => dtmf.into_iter().next(),
    };
    voice.into_iter().chain(chosen).collect()
}

fn remote_of(description: &SessionDescription, we_mux: bool) -> Option<RemoteMedia> {
    let audio = description.audio()?;
    Some(RemoteMedia {
        address: description.audio_address(),
        port: audio.port,
        rtcp_port: audio.rtcp_port,
        rtcp_mux: we_mux && audio.rtcp_mux,
    })
}

/// A stable o= session id per call (any 63-bit number is fine; stable across versions).
pub fn session_id_for(call_id: &str) -> u64 {
    // FNV-1a: small, deterministic, no dependency.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in call_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash >> 1
}

impl Negotiator {
    pub fn new(address: IpAddr, codecs: Vec<Codec>) -> Self {
        Self {
            address,
            codecs,
            calls: HashMap::new(),
        }
    }

    /// Our port on a leg that is already open.
    pub fn leg_port(&self, call_id: &str, role: LegRole) -> Option<u16> {
        self.leg(call_id, role).map(|leg| leg.port)
    }

    pub fn leg(&self, call_id: &str, role: LegRole) -> Option<&LegMedia> {
        self.calls
            .get(call_id)
            .and_then(|legs| legs[role.index()].as_ref())
    }

    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    fn render(&self, call_id: &str, leg: &LegMedia) -> String {
        sdp::build(&LocalSdp {
            session_id: session_id_for(call_id),
            version: leg.version,
            address: self.address,
            port: leg.port,
            formats: leg.formats.clone(),
            direction: leg.direction,
            ptime: Some(20),
            // Offered always; in an answer only when the offer had it.
            rtcp_mux: leg.remote.as_ref().is_none_or(|r| r.rtcp_mux),
        })
    }

    /// Open (or re-open) a leg on `port`. With `offer`, answer it; without, write our offer
    /// (listing the other leg's codec first, so that a relay need not transcode).
    pub fn open_leg(
        &mut self,
        call_id: &str,
        role: LegRole,
        offer: Option<&SessionDescription>,
        port: u16,
    ) -> Result<(String, LegMedia), MediaError> {
        // A re-opened leg continues its o= version: if the far end stays (a transfer that
        // fails), a version going backwards would be a protocol error (RFC 3264 §8).
        let version = self
            .leg(call_id, role)
            .map_or(1, |leg| leg.version.saturating_add(1));
        let leg = match offer {
            Some(offer) => {
                let negotiated = sdp::answer_formats(offer, &self.codecs)
                    .map_err(|e| MediaError::NotAcceptable(e.to_string()))?;
                LegMedia {
                    port,
                    formats: settle(negotiated.formats),
                    direction: sdp::answer_direction(offer.audio_direction()),
                    version,
                    remote: remote_of(offer, true),
                }
            }
            None => {
                let mut codecs: Vec<Codec> = self
                    .leg(call_id, role.other())
                    .map(|leg| leg.formats.iter().filter_map(|f| f.codec()).collect())
                    .unwrap_or_default();
                for codec in &self.codecs {
                    if !codecs.contains(codec) {
                        codecs.push(*codec);
                    }
                }
                LegMedia {
                    port,
                    formats: sdp::default_formats(&codecs),
                    direction: Direction::SendRecv,
                    version,
                    remote: None,
                }
            }
        };
        let body = self.render(call_id, &leg);
        self.calls.entry(call_id.to_string()).or_default()[role.index()] = Some(leg.clone());
        Ok((body, leg))
    }

    /// The far end answered our offer (or re-offered on an open leg): apply its SDP.
    pub fn remote_answer(
        &mut self,
        call_id: &str,
        role: LegRole,
        answer: &SessionDescription,
    ) -> Result<LegMedia, MediaError> {
        let leg = self
            .calls
            .get_mut(call_id)
            .and_then(|legs| legs[role.index()].as_mut())
            .ok_or_else(|| MediaError::Other(format!("no open {role:?} leg for this call")))?;
        // The answer must keep at least one codec we listed.
        let ours: Vec<Codec> = leg.formats.iter().filter_map(|f| f.codec()).collect();
        let negotiated = sdp::answer_formats(answer, &ours)
            .map_err(|e| MediaError::NotAcceptable(e.to_string()))?;
        leg.formats = settle(negotiated.formats);
        leg.remote = remote_of(answer, true);
        Ok(leg.clone())
    }

    /// Change our direction on a leg (hold/resume); returns the SDP to offer or answer with.
    pub fn set_direction(
        &mut self,
        call_id: &str,
        role: LegRole,
        direction: Direction,
    ) -> Result<(String, LegMedia), MediaError> {
        let leg = self
            .calls
            .get_mut(call_id)
            .and_then(|legs| legs[role.index()].as_mut())
            .ok_or_else(|| MediaError::Other(format!("no open {role:?} leg for this call")))?;
        leg.direction = direction;
        // A changed session must carry a new o= version (RFC 3264 §8).
        leg.version = leg.version.saturating_add(1);
        let leg = leg.clone();
        Ok((self.render(call_id, &leg), leg))
    }

    /// Forget one leg (its media is being replaced); the next `open_leg` starts it afresh.
    pub fn forget_leg(&mut self, call_id: &str, role: LegRole) {
        if let Some(legs) = self.calls.get_mut(call_id) {
            legs[role.index()] = None;
        }
    }

    /// Forget a call; returns the ports its legs held.
    pub fn close_call(&mut self, call_id: &str) -> Vec<u16> {
        self.calls
            .remove(call_id)
            .map(|legs| legs.into_iter().flatten().map(|leg| leg.port).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(extra: &str) -> SessionDescription {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{extra}"
        );
        sdp::parse(text.as_bytes()).expect("test offer parses")
    }

    fn negotiator() -> Negotiator {
        Negotiator::new(
            IpAddr::from([127, 0, 0, 1]),
            vec![Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent],
        )
    }

    #[test]
    fn answer_keeps_the_offerers_first_codec_and_dtmf() {
        let mut n = negotiator();
        let (body, leg) = n
            .open_leg("c1", LegRole::Caller, Some(&offer("")), 30000)
            .unwrap();
        assert_eq!(leg.voice_format().unwrap().encoding, "PCMA");
        assert_eq!(leg.telephone_event().unwrap().payload_type, 101);
        assert_eq!(leg.formats.len(), 2);
        let remote = leg.remote.unwrap();
        assert_eq!(remote.port, 4000);
        assert_eq!(remote.address, Some(IpAddr::from([10, 0, 0, 9])));
        assert!(!remote.rtcp_mux);
        assert!(body.contains("m=audio 30000 RTP/AVP 8 101"));
        assert!(
            !body.contains("rtcp-mux"),
            "no mux in an answer to an offer without it"
        );
    }

    #[test]
    fn dtmf_on_the_voice_clock_is_chosen() {
        let mut n = Negotiator::new(
            IpAddr::from([127, 0, 0, 1]),
            vec![Codec::Opus, Codec::Pcmu, Codec::TelephoneEvent],
        );
        let text = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 111 0 101 110\r\na=rtpmap:111 opus/48000/2\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=rtpmap:110 telephone-event/48000\r\n";
        let offer = sdp::parse(text.as_bytes()).unwrap();
        let (body, leg) = n
            .open_leg("c", LegRole::Caller, Some(&offer), 30000)
            .unwrap();
        assert_eq!(leg.voice_format().unwrap().encoding, "opus");
        assert_eq!(leg.telephone_event().unwrap().payload_type, 110);
        assert!(body.contains("m=audio 30000 RTP/AVP 111 110\r\n"), "{body}");
        // Our own offer carries both clocks when Opus is in it.
        let (ours, _) = n.open_leg("c", LegRole::Callee, None, 30002).unwrap();
        assert!(ours.contains("telephone-event/48000") && ours.contains("telephone-event/8000"));
        // With PCMU first, the 8000 one is kept.
        let text = text.replace("111 0 101 110", "0 111 101 110");
        let offer = sdp::parse(text.as_bytes()).unwrap();
        let (_, leg) = n
            .open_leg("d", LegRole::Caller, Some(&offer), 30004)
            .unwrap();
        assert_eq!(leg.telephone_event().unwrap().payload_type, 101);
    }

    #[test]
    fn mux_is_answered_only_when_offered_and_offered_always() {
        let mut n = negotiator();
        let (body, leg) = n
            .open_leg("c1", LegRole::Caller, Some(&offer("a=rtcp-mux\r\n")), 30000)
            .unwrap();
        assert!(leg.remote.unwrap().rtcp_mux);
        assert!(body.contains("a=rtcp-mux"));
        let (our_offer, callee) = n.open_leg("c1", LegRole::Callee, None, 30002).unwrap();
        assert!(our_offer.contains("a=rtcp-mux"));
        // The caller's codec leads our offer to the callee.
        assert_eq!(callee.formats[0].encoding, "PCMA");
    }

    #[test]
    fn answer_to_our_offer_settles_one_codec_and_reopen_bumps_version() {
        let mut n = negotiator();
        n.open_leg("c1", LegRole::Callee, None, 30002).unwrap();
        let leg = n.remote_answer("c1", LegRole::Callee, &offer("")).unwrap();
        assert_eq!(leg.voice_format().unwrap().encoding, "PCMA");
        assert_eq!(leg.version, 1);
        let (_, again) = n.open_leg("c1", LegRole::Callee, None, 30002).unwrap();
        assert_eq!(again.version, 2);
        let (body, held) = n
            .set_direction("c1", LegRole::Callee, Direction::SendOnly)
            .unwrap();
        assert_eq!(held.version, 3);
        assert!(body.contains("a=sendonly"));
        assert_eq!(n.close_call("c1"), vec![30002]);
        assert!(
            n.set_direction("c1", LegRole::Callee, Direction::SendRecv)
                .is_err()
        );
    }
}

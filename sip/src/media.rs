//! The narrow seam to the media side: the B2BUA asks for a media endpoint per leg, gives it
//! the remote SDP and gets a local SDP back. The media crate (issue 4) implements this with
//! real RTP sockets, relay and recording; until then an implementation that only allocates
//! ports and writes SDP lets calls be negotiated.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// Codecs callscope negotiates on SIP legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
    /// G.722 wideband (RTP clock 8000 by RFC 3551's historical rule, audio at 16 kHz).
    G722,
    TelephoneEvent,
}

impl Codec {
    /// A codec by its SDP encoding name (case-insensitive), as configuration writes it.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name.to_ascii_lowercase().as_str() {
            "pcmu" => Some(Codec::Pcmu),
            "pcma" => Some(Codec::Pcma),
            "opus" => Some(Codec::Opus),
            "g722" => Some(Codec::G722),
            "telephone-event" => Some(Codec::TelephoneEvent),
            _ => None,
        }
    }
}

/// Which side of the B2BUA a leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegRole {
    /// The leg that sent us the INVITE.
    Caller,
    /// The leg we sent the INVITE to.
    Callee,
}

impl LegRole {
    /// The leg's place in a call's two-slot arrays (caller first).
    pub fn index(self) -> usize {
        match self {
            LegRole::Caller => 0,
            LegRole::Callee => 1,
        }
    }

    /// The other leg of the call.
    pub fn other(self) -> LegRole {
        match self {
            LegRole::Caller => LegRole::Callee,
            LegRole::Callee => LegRole::Caller,
        }
    }
}

/// Media direction of a leg (hold = sendonly/inactive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("unacceptable SDP: {0}")]
    NotAcceptable(String),
    #[error("no media port available")]
    NoPorts,
    #[error("media error: {0}")]
    Other(String),
}

/// What the media side learns when a call is answered: enough to decide whether and how to
/// record it (which leg is the agent, whose policy applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredCall {
    pub org_id: String,
    pub direction: crate::events::CallDirection,
    /// The trunk the call came in on or goes out through.
    pub trunk_id: Option<String>,
    /// The leg of callscope's user (the agent): recorded on the left channel.
    pub agent_leg: LegRole,
    /// What the caller dialled (a DID for inbound calls), for per-route policies.
    pub dialled: Option<String>,
}

/// One call's media as the B2BUA sees it. Ids are the SIP call's own id.
pub trait MediaControl: Send + Sync + 'static {
    /// Create the media endpoint of a leg. With `remote_sdp` (an offer), return our answer;
    /// without, return our offer.
    fn open_leg<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        remote_sdp: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, MediaError>>;
    /// The far end answered our offer (or re-offered): apply its SDP.
    fn remote_answer<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        remote_sdp: &'a str,
    ) -> BoxFuture<'a, Result<(), MediaError>>;
    /// A re-INVITE changed a leg's direction (hold/resume): return the SDP to answer with.
    fn set_direction<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        direction: Direction,
    ) -> BoxFuture<'a, Result<String, MediaError>>;
    /// Both legs are connected (the callee answered): start recording if the policy says so.
    /// Media that only negotiates has nothing to do.
    fn call_answered<'a>(&'a self, call_id: &'a str, call: &'a AnsweredCall) -> BoxFuture<'a, ()> {
        let _ = (call_id, call);
        Box::pin(async {})
    }
    /// Release both legs' ports.
    fn close_call<'a>(&'a self, call_id: &'a str) -> BoxFuture<'a, ()>;

    /// A browser's WebRTC offer for `leg`: open a WebRTC leg there and return our answer.
    /// Media that cannot do WebRTC refuses.
    fn open_browser_leg<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        offer: &'a str,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        let _ = (call_id, leg, offer);
        Box::pin(async { Err(unsupported("WebRTC")) })
    }
    /// A candidate the browser of `leg` trickled.
    fn add_browser_candidate(
        &self,
        call_id: &str,
        leg: LegRole,
        candidate: &str,
    ) -> Result<(), MediaError> {
        let _ = (call_id, leg, candidate);
        Err(unsupported("WebRTC"))
    }
    /// Close one leg's media (its port goes back) while the call and its recording go on:
    /// the leg is about to be replaced by another (a browser answering, a transfer).
    fn release_leg<'a>(&'a self, call_id: &'a str, leg: LegRole) -> BoxFuture<'a, ()> {
        let _ = (call_id, leg);
        Box::pin(async {})
    }
    /// Audio from `leg` stops reaching the other leg and the recording (silence instead).
    fn set_muted(&self, call_id: &str, leg: LegRole, muted: bool) -> Result<(), MediaError> {
        let _ = (call_id, leg, muted);
        Err(unsupported("muting"))
    }
    /// Play DTMF digits to `leg` (RFC 4733 events).
    fn send_dtmf(&self, call_id: &str, leg: LegRole, digits: &str) -> Result<(), MediaError> {
        let _ = (call_id, leg, digits);
        Err(unsupported("sending DTMF"))
    }
    /// Ringback tone into `leg` while the other party rings (stops by itself when the
    /// other leg's audio starts).
    fn play_ringback(&self, call_id: &str, leg: LegRole, on: bool) -> Result<(), MediaError> {
        let _ = (call_id, leg, on);
        Err(unsupported("tones"))
    }
}

fn unsupported(what: &str) -> MediaError {
    MediaError::Other(format!("{what} is not supported by this media"))
}

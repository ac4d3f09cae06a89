//! `RtpMedia`: the [`MediaControl`] that moves real audio. SDP offer/answer is the shared
//! [`Negotiator`]; every leg's port is a socket pair bound by the media engine, and every
//! settled SDP exchange becomes the engine's [`LegParams`] (far end, codec, telephone-event,
//! rtcp-mux, direction). At answer the recording policy decides whether the call is recorded;
//! at the end the engine's report (quality, recording, DTMF) goes to the application.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callscope_media::codec::{CodecKind, CodecSpec};
use callscope_media::engine::{
    CallMediaReport, EngineError, LegParams, LegSide, MediaDirection, MediaEngine, RecordingSpec,
    TapFrame, Tone,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::media::{AnsweredCall, Codec, Direction, LegRole, MediaControl, MediaError};
use crate::negotiation::{LegMedia, Negotiator};
use crate::sdp::{self, PayloadFormat};

/// Decides whether an answered call is recorded, and where its file goes.
pub trait RecordingPolicy: Send + Sync + 'static {
    /// The final path of the call's recording, or None to leave it unrecorded.
    fn recording_path(&self, call_id: &str, call: &AnsweredCall) -> Option<PathBuf>;
}

/// Takes a call's live audio (16 kHz per role, from the engine's taps) from answer to hangup:
/// live transcription and talk-turn detection run behind it. The receiver ends when the call
/// does; a consumer that lags loses frames (counted by the engine), never delays the media.
pub trait LiveAudioSink: Send + Sync + 'static {
    fn call_answered(&self, call_id: &str, call: &AnsweredCall, taps: mpsc::Receiver<TapFrame>);
}

/// A call's media after it ended, for the application to store.
#[derive(Debug, Clone)]
pub struct ClosedCallMedia {
    pub call_id: String,
    /// What the answered call was (None if it never got answered).
    pub answered: Option<AnsweredCall>,
    pub report: CallMediaReport,
}

/// How long `close_call` waits for room in the report channel before giving the report up.
/// The wait is on the ending call's own task, never on the media path.
const REPORT_SEND_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RtpMedia {
    engine: MediaEngine,
    sessions: Mutex<Negotiator>,
    policy: Arc<dyn RecordingPolicy>,
    reports: mpsc::Sender<ClosedCallMedia>,
    answered: Mutex<std::collections::HashMap<String, AnsweredCall>>,
    live: Option<Arc<dyn LiveAudioSink>>,
    /// What a softphone hears while the number it dialled rings.
    ringback: Tone,
}

fn side(role: LegRole) -> LegSide {
    match role {
        LegRole::Caller => LegSide::A,
        LegRole::Callee => LegSide::B,
    }
}

fn engine_error(e: EngineError) -> MediaError {
    match e {
        EngineError::NoPorts { .. } => MediaError::NoPorts,
        other => MediaError::Other(other.to_string()),
    }
}

fn direction(d: Direction) -> MediaDirection {
    match d {
        Direction::SendRecv => MediaDirection::SendRecv,
        Direction::SendOnly => MediaDirection::SendOnly,
        Direction::RecvOnly => MediaDirection::RecvOnly,
        Direction::Inactive => MediaDirection::Inactive,
    }
}

/// The engine's description of a negotiated voice format.
fn codec_spec(format: &PayloadFormat) -> Option<CodecSpec> {
    let kind = match format.codec()? {
        Codec::Pcmu => CodecKind::Pcmu,
        Codec::Pcma => CodecKind::Pcma,
        Codec::Opus => CodecKind::Opus,
        Codec::G722 => CodecKind::G722,
        Codec::TelephoneEvent => return None,
    };
    Some(CodecSpec {
        kind,
        payload_type: format.payload_type,
        clock_rate: format.clock_rate,
        channels: format.channels.unwrap_or(1).max(1),
        // SIP legs announce no `maxplaybackrate`: their audio is what the codec carries.
        audio_rate: kind.pcm_rate(),
    })
}

/// Whether this build can decode and encode a voice codec (telephone-event always works).
pub fn codec_available(codec: Codec) -> bool {
    let format = sdp::default_formats(&[codec]);
    match format.first().and_then(codec_spec) {
        Some(spec) => {
            callscope_media::codec::decoder_for(&spec).is_ok()
                && callscope_media::codec::encoder_for(&spec).is_ok()
        }
        None => codec == Codec::TelephoneEvent,
    }
}

/// What the engine needs for a leg whose SDP exchange is complete (None while only our
/// offer is out, or if no voice codec survived).
pub fn leg_params(leg: &LegMedia) -> Option<LegParams> {
    let codec = codec_spec(leg.voice_format()?)?;
    let remote = leg.remote.as_ref()?;
    // Port 0 or c=0.0.0.0 (an old-style hold) name no destination: latching still works.
    let remote_rtp = remote
        .address
        .filter(|a| !a.is_unspecified() && remote.port != 0)
        .map(|a| SocketAddr::new(a, remote.port));
    let remote_rtcp = remote_rtp.map(|rtp| {
        let port = if remote.rtcp_mux {
            rtp.port()
        } else {
            remote
                .rtcp_port
                .unwrap_or_else(|| rtp.port().saturating_add(1))
        };
        SocketAddr::new(rtp.ip(), port)
    });
    Some(LegParams {
        remote_rtp,
        remote_rtcp,
        rtcp_mux: remote.rtcp_mux,
        codec,
        telephone_event_pt: leg.telephone_event().map(|f| f.payload_type),
        direction: direction(leg.direction),
    })
}

impl RtpMedia {
    /// `address` is written into SDP (the engine binds its own configured address);
    /// `codecs` is our preference order.
    pub fn new(
        engine: MediaEngine,
        address: IpAddr,
        codecs: Vec<Codec>,
        policy: Arc<dyn RecordingPolicy>,
        reports: mpsc::Sender<ClosedCallMedia>,
    ) -> Self {
        Self {
            engine,
            sessions: Mutex::new(Negotiator::new(address, codecs)),
            policy,
            reports,
            answered: Mutex::default(),
            live: None,
            ringback: Tone::RingbackUs,
        }
    }

    /// The ringback tone softphones hear (North American by default).
    pub fn with_ringback(mut self, tone: Tone) -> Self {
        self.ringback = tone;
        self
    }

    /// Hand every answered call's live audio to `sink`.
    pub fn with_live_audio(mut self, sink: Arc<dyn LiveAudioSink>) -> Self {
        self.live = Some(sink);
        self
    }

    pub fn engine(&self) -> &MediaEngine {
        &self.engine
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Negotiator> {
        // Poisoning only means a panic elsewhere mid-update; the state is still usable.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answered_calls(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, AnsweredCall>> {
        self.answered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand a settled leg to the engine.
    fn apply(&self, call_id: &str, role: LegRole, leg: &LegMedia) -> Result<(), MediaError> {
        match leg_params(leg) {
            Some(params) => self
                .engine
                .configure_leg(call_id, side(role), params)
                .map_err(engine_error),
            None => Ok(()),
        }
    }

    async fn open_leg_async(
        &self,
        call_id: &str,
        role: LegRole,
        remote_sdp: Option<&str>,
    ) -> Result<String, MediaError> {
        let offer = match remote_sdp {
            Some(text) => Some(
                sdp::parse(text.as_bytes())
                    .map_err(|e| MediaError::NotAcceptable(e.to_string()))?,
            ),
            None => None,
        };
        // The engine keeps a leg's port for the call's life: asking again for the same
        // (call, side) returns the same port, so a re-opened leg keeps its sockets.
        let port = self
            .engine
            .allocate_leg(call_id, side(role))
            .await
            .map_err(engine_error)?;
        let (body, leg) = self
            .sessions()
            .open_leg(call_id, role, offer.as_ref(), port)?;
        self.apply(call_id, role, &leg)?;
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
        let leg = self.sessions().remote_answer(call_id, role, &answer)?;
        self.apply(call_id, role, &leg)
    }

    fn set_direction_sync(
        &self,
        call_id: &str,
        role: LegRole,
        direction: Direction,
    ) -> Result<String, MediaError> {
        let (body, leg) = self.sessions().set_direction(call_id, role, direction)?;
        self.apply(call_id, role, &leg)?;
        Ok(body)
    }

    fn start_recording(&self, call_id: &str, call: &AnsweredCall) {
        self.answered_calls()
            .insert(call_id.to_string(), call.clone());
        let Some(final_path) = self.policy.recording_path(call_id, call) else {
            debug!(call_id, "recording off for this call");
            return;
        };
        let spec = RecordingSpec {
            final_path,
            agent_side: side(call.agent_leg),
        };
        if let Err(e) = self.engine.start_recording(call_id, spec) {
            warn!(call_id, error = %e, "cannot start the recording; the call goes on");
        }
    }

    fn start_live_audio(&self, call_id: &str, call: &AnsweredCall) {
        let Some(sink) = &self.live else { return };
        match self.engine.subscribe_taps(call_id) {
            Ok(taps) => sink.call_answered(call_id, call, taps),
            Err(e) => warn!(call_id, error = %e, "no live audio for this call"),
        }
    }

    async fn close(&self, call_id: &str) {
        self.sessions().close_call(call_id);
        let answered = self.answered_calls().remove(call_id);
        let Some(report) = self.engine.close_call(call_id).await else {
            return;
        };
        let closed = ClosedCallMedia {
            call_id: call_id.to_string(),
            answered,
            report,
        };
        match tokio::time::timeout(REPORT_SEND_TIMEOUT, self.reports.send(closed)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => debug!(call_id, "no one takes media reports any more"),
            // The recording is still on disk under its final name: only the row is missing.
            Err(_) => warn!(
                call_id,
                "media report dropped: the application is not keeping up"
            ),
        }
    }
}

impl MediaControl for RtpMedia {
    fn open_leg<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        remote_sdp: Option<&'a str>,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        self.open_leg_async(call_id, leg, remote_sdp).boxed()
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

    fn call_answered<'a>(&'a self, call_id: &'a str, call: &'a AnsweredCall) -> BoxFuture<'a, ()> {
        self.start_recording(call_id, call);
        self.start_live_audio(call_id, call);
        async {}.boxed()
    }

    fn close_call<'a>(&'a self, call_id: &'a str) -> BoxFuture<'a, ()> {
        self.close(call_id).boxed()
    }

    fn open_browser_leg<'a>(
        &'a self,
        call_id: &'a str,
        leg: LegRole,
        offer: &'a str,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        async move {
            self.engine
                .open_webrtc_leg(call_id, side(leg), offer)
                .await
                .map_err(|e| match e {
                    EngineError::WebRtc(e) => MediaError::NotAcceptable(e.to_string()),
                    other => engine_error(other),
                })
        }
        .boxed()
    }

    fn add_browser_candidate(
        &self,
        call_id: &str,
        leg: LegRole,
        candidate: &str,
    ) -> Result<(), MediaError> {
        self.engine
            .add_remote_candidate(call_id, side(leg), candidate)
            .map_err(engine_error)
    }

    fn release_leg<'a>(&'a self, call_id: &'a str, leg: LegRole) -> BoxFuture<'a, ()> {
        async move {
            self.sessions().forget_leg(call_id, leg);
            if let Err(e) = self.engine.release_leg(call_id, side(leg)).await {
                debug!(call_id, ?leg, error = %e, "nothing to release");
            }
        }
        .boxed()
    }

    fn set_muted(&self, call_id: &str, leg: LegRole, muted: bool) -> Result<(), MediaError> {
        self.engine
            .set_muted(call_id, side(leg), muted)
            .map_err(engine_error)
    }

    fn send_dtmf(&self, call_id: &str, leg: LegRole, digits: &str) -> Result<(), MediaError> {
        self.engine
            .send_dtmf(call_id, side(leg), digits)
            .map_err(engine_error)
    }

    fn play_ringback(&self, call_id: &str, leg: LegRole, on: bool) -> Result<(), MediaError> {
        self.engine
            .play_tone(call_id, side(leg), on.then_some(self.ringback))
            .map_err(engine_error)
    }
}

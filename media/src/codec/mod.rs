//! Audio codecs of the media path behind one pair of traits, so the bridge can relay or
//! transcode without knowing which codec a leg speaks.
//!
//! A decoder turns one RTP payload into 16-bit PCM at the codec's own rate (8 kHz for G.711,
//! the configured rate for Opus) and can conceal a lost frame; an encoder turns exactly one
//! frame of PCM into one payload. Frames are 20 ms everywhere on the media path.
//!
//! Codecs: G.711 µ/A-law, Opus (libopus, any SDP channel count decoded to mono, PLC,
//! in-band FEC, DTX), G.722 64 kbit/s (own implementation, bit-exact with FFmpeg).
//! [`Resampler`] converts between 8/12/16/24/32/48 kHz for transcoding and the 16 kHz taps.

mod arrival;
mod float_pcm;
mod g711_codec;
mod g722;
mod opus;
mod resample;

use crate::g711;

pub use arrival::{ArrivalDecoder, ArrivalOrder};
pub use g711_codec::{G711Decoder, G711Encoder, G711Law};
pub use g722::{G722Decoder, G722Encoder};
pub use opus::{
    OpusDecoder, OpusEncoder, OpusEncoderConfig, OpusMode, packet_audio_rate, packet_has_lbrr,
    packet_mode,
};
pub use resample::Resampler;

/// Codecs the media path speaks (telephone-event is not audio and is handled by `dtmf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    Opus,
    G722,
}

impl CodecKind {
    /// The rate of the PCM this codec's decoder gives and its encoder takes.
    pub fn pcm_rate(self) -> u32 {
        match self {
            CodecKind::Pcmu | CodecKind::Pcma => 8000,
            CodecKind::G722 => 16000,
            CodecKind::Opus => 48000,
        }
    }
}

/// What a leg negotiated: enough to build its decoder and encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodecSpec {
    pub kind: CodecKind,
    pub payload_type: u8,
    /// The RTP clock rate (8000 for G.711 and G.722 by RFC 3551's historical rule, 48000
    /// for Opus whatever its audio rate).
    pub clock_rate: u32,
    /// Channels on the wire (Opus may be 2; callscope mixes to mono).
    pub channels: u8,
    /// The highest audio sample rate the sender may put in the stream, as negotiated: the
    /// codec's PCM rate, except an Opus stream whose receiver announced a lower
    /// `maxplaybackrate` (RFC 7587), e.g. a softphone leg callscope asked for wideband. Audio
    /// above it is not there to record, so it bounds the recording's rate (see
    /// `EngineConfig::recording_pcm_rate`).
    pub audio_rate: u32,
}

impl CodecSpec {
    pub fn pcmu() -> Self {
        Self {
            kind: CodecKind::Pcmu,
            payload_type: 0,
            clock_rate: 8000,
            channels: 1,
            audio_rate: 8000,
        }
    }

    pub fn pcma() -> Self {
        Self {
            kind: CodecKind::Pcma,
            payload_type: 8,
            clock_rate: 8000,
            channels: 1,
            audio_rate: 8000,
        }
    }

    /// Opus as SDP always describes it (`opus/48000/2`, RFC 7587): the clock is 48 kHz and
    /// the channel count 2 whatever the stream really carries.
    pub fn opus(payload_type: u8) -> Self {
        Self {
            kind: CodecKind::Opus,
            payload_type,
            clock_rate: 48000,
            channels: 2,
            audio_rate: 48000,
        }
    }

    /// The same codec with its audio bounded at `hz` (Opus' `maxplaybackrate`), never above
    /// the codec's PCM rate nor below 8 kHz (RFC 7587's range).
    pub fn with_audio_rate(self, hz: u32) -> Self {
        Self {
            audio_rate: hz.clamp(8000, self.pcm_rate()),
            ..self
        }
    }

    /// G.722 (`G722/8000`, payload type 9): 16 kHz audio on an 8 kHz RTP clock.
    pub fn g722() -> Self {
        Self {
            kind: CodecKind::G722,
            payload_type: 9,
            clock_rate: 8000,
            channels: 1,
            audio_rate: 16000,
        }
    }

    /// Whether two legs can exchange payloads unchanged (relay instead of transcode).
    pub fn relay_compatible(&self, other: &CodecSpec) -> bool {
        self.kind == other.kind
            && self.clock_rate == other.clock_rate
            && self.channels == other.channels
    }

    /// The rate of the PCM this codec's decoder gives and its encoder takes.
    pub fn pcm_rate(&self) -> u32 {
        self.kind.pcm_rate()
    }

    /// RTP timestamp units per 20 ms frame.
    pub fn timestamp_step_20ms(&self) -> u32 {
        self.clock_rate / 50
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("codec {0:?} is not supported by this build")]
    Unsupported(CodecKind),
    #[error("corrupt payload: {0}")]
    Corrupt(String),
    #[error("encoder needs {expected} samples per frame, got {got}")]
    FrameSize { expected: usize, got: usize },
    #[error("codec library error: {0}")]
    Library(String),
    #[error("no resampler from {from} Hz to {to} Hz")]
    UnsupportedRates { from: u32, to: u32 },
}

/// Payload → mono PCM at [`AudioDecoder::sample_rate`].
pub trait AudioDecoder: Send {
    fn sample_rate(&self) -> u32;
    /// Appends the decoded samples of one payload to `out`; returns how many were appended.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError>;
    /// Appends `samples` samples standing in for a lost frame (PLC where the codec has it,
    /// silence otherwise).
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
    /// Like [`AudioDecoder::conceal`], but the decoder decodes its next packets as if
    /// nothing had been concealed: for a decoder that has already decoded packets after the
    /// lost frame (an Opus source decoded on arrival, concealed later, at playout), where
    /// concealment slipped in between two decoded packets corrupts what follows. Calls in a
    /// row continue one concealment (fading as PLC does); the next decode ends it. Defaults
    /// to plain concealment, right for decoders that concealment leaves as they were (G.711).
    fn conceal_apart(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.conceal(samples, out);
    }
    /// Like [`AudioDecoder::decode`], but the decoder decodes its next packets as if this one
    /// had not come: for a packet older than one already decoded (reordered, duplicated),
    /// which in stream order would have gone before. Its audio is decoded on what the later
    /// packets left, so it is close but not exact. Defaults to plain decoding, right for
    /// decoders without memory (G.711).
    fn decode_apart(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        self.decode(payload, out)
    }
    /// Accounts, in stream order, for `samples` lost just before `next_payload`, which is
    /// decoded next: a codec whose decoding builds on the frames before (Opus predicts each
    /// frame's band energies from the last) conceals the gap, or rebuilds it from the FEC
    /// in `next_payload`, and drops that output, so the next packet decodes as after a
    /// loss. Defaults to nothing: G.711 has no memory, and G.722's concealment is silence
    /// that leaves its state as it was.
    fn skip_lost(&mut self, samples: usize, next_payload: &[u8]) {
        let _ = (samples, next_payload);
    }
    /// Like [`AudioDecoder::conceal`], but the packet after the lost one is already here:
    /// codecs with in-band FEC (Opus) rebuild the lost frame from it. Call it before
    /// decoding `next_payload` itself. Defaults to plain concealment.
    fn conceal_with_next(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) {
        let _ = next_payload;
        self.conceal(samples, out);
    }
}

/// Mono PCM at [`AudioEncoder::sample_rate`] → payload, one frame at a time.
pub trait AudioEncoder: Send {
    fn sample_rate(&self) -> u32;
    /// Samples in one frame (20 ms).
    fn frame_samples(&self) -> usize;
    /// Encodes exactly one frame; replaces `out`'s contents with the payload.
    fn encode(&mut self, frame: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// The loss the receiver reports, in percent (0: none). Codecs with in-band FEC (Opus)
    /// spend bits and CPU on it only while there is loss; the others ignore it.
    fn set_reported_loss(&mut self, percent: u8) {
        let _ = percent;
    }
}

/// Builds the decoder for a negotiated codec, producing PCM at [`CodecSpec::pcm_rate`].
pub fn decoder_for(spec: &CodecSpec) -> Result<Box<dyn AudioDecoder>, CodecError> {
    decoder_at_rate(spec, spec.pcm_rate())
}

/// Builds a decoder producing PCM at `rate`. Opus renders natively at 8, 12, 16, 24 or
/// 48 kHz, which saves a resampler when the consumer wants 8 kHz (a G.711 peer) or 16 kHz
/// (a tap); the other codecs only decode at their own rate.
pub fn decoder_at_rate(spec: &CodecSpec, rate: u32) -> Result<Box<dyn AudioDecoder>, CodecError> {
    if spec.kind != CodecKind::Opus && rate != spec.pcm_rate() {
        return Err(CodecError::UnsupportedRates {
            from: spec.pcm_rate(),
            to: rate,
        });
    }
    match spec.kind {
        CodecKind::Pcmu => Ok(Box::new(G711Decoder::new(G711Law::Ulaw))),
        CodecKind::Pcma => Ok(Box::new(G711Decoder::new(G711Law::Alaw))),
        CodecKind::Opus => Ok(Box::new(OpusDecoder::new(rate)?)),
        CodecKind::G722 => Ok(Box::new(G722Decoder::new())),
    }
}

/// Builds the encoder for a negotiated codec, taking PCM at [`CodecSpec::pcm_rate`] (Opus
/// with [`OpusEncoderConfig::default`]: 48 kHz, 32 kbit/s, in-band FEC on).
pub fn encoder_for(spec: &CodecSpec) -> Result<Box<dyn AudioEncoder>, CodecError> {
    encoder_at_rate(spec, spec.pcm_rate())
}

/// Builds an encoder taking PCM at `rate`. Opus accepts 8, 12, 16, 24 or 48 kHz: feeding a
/// G.711 leg's 8 kHz audio straight in skips an 8k→48k resampler and makes libopus' work
/// several times cheaper (see `examples/bench_codecs.rs`); the other codecs only take
/// their own rate.
pub fn encoder_at_rate(spec: &CodecSpec, rate: u32) -> Result<Box<dyn AudioEncoder>, CodecError> {
    if spec.kind != CodecKind::Opus && rate != spec.pcm_rate() {
        return Err(CodecError::UnsupportedRates {
            from: rate,
            to: spec.pcm_rate(),
        });
    }
    match spec.kind {
        CodecKind::Pcmu => Ok(Box::new(G711Encoder::new(G711Law::Ulaw))),
        CodecKind::Pcma => Ok(Box::new(G711Encoder::new(G711Law::Alaw))),
        CodecKind::Opus => Ok(Box::new(OpusEncoder::new(OpusEncoderConfig {
            rate,
            ..OpusEncoderConfig::default()
        })?)),
        CodecKind::G722 => Ok(Box::new(G722Encoder::new())),
    }
}

/// Silence in a codec's own payload, for keeping a relayed stream's clock running.
pub fn g711_silence(law: G711Law, samples: usize, out: &mut Vec<u8>) {
    let code = match law {
        G711Law::Ulaw => g711::linear_to_ulaw(0),
        G711Law::Alaw => g711::linear_to_alaw(0),
    };
    out.clear();
    out.resize(samples, code);
}

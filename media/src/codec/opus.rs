//! Opus behind the codec traits, on libopus (bundled and built by `opusic-sys`).
//!
//! Decoding: always to mono. A mono libopus decoder downmixes stereo packets itself (it
//! decodes both channels and averages them), so an SDP `opus/48000/2` leg costs nothing
//! extra here. The decoder may run at 8, 12, 16, 24 or 48 kHz: libopus renders at the rate
//! asked, which is cheaper and better than decoding at 48 kHz and resampling down (for a
//! G.711 peer or a 16 kHz tap, build it with [`OpusDecoder::new`] at that rate).
//!
//! Loss: [`AudioDecoder::conceal`] runs libopus' packet-loss concealment;
//! [`AudioDecoder::conceal_with_next`] rebuilds the lost frame from the in-band FEC
//! (LBRR) data carried in the following packet when the sender put it there. DTX frames
//! (1–2 byte packets) decode as comfort noise / silence like any other packet; an empty
//! payload is treated as a lost 20 ms frame.
//!
//! Cost (libopus 1.6.1 bundled, `examples/bench_codecs.rs`, busy 2-core EPYC VM, per 20 ms
//! frame): decode ≈ 4 µs at 8 kHz, 7 µs at 16 kHz, 12–20 µs at 48 kHz; encode at 24 kbit/s
//! ≈ 19/55/66/88 µs at 8 kHz for complexity 0/3/5/10, 29/101/122/178 µs at 16 kHz and
//! 44/107/131/185 µs at 48 kHz. Encoding dominates any Opus transcode, so a G.711 peer's
//! audio should go in at 8 kHz and the complexity is configurable.
//!
//! Safety: with `engine/recv_batch.rs` (one `recvmmsg`), `engine/socket.rs` (one reactor
//! registration) and the SIMD kernels of `resample.rs` and `float_pcm.rs`, the only
//! `unsafe` in the media crate. Every pointer handed to libopus comes from a live slice
//! whose length is passed alongside (capacity checked before the call), every return code
//! is checked, and the states are freed exactly once in `Drop`.

use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

use opusic_sys as ffi;

use super::{AudioDecoder, AudioEncoder, CodecError, float_pcm};

/// Rates libopus can decode to and encode from.
const RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];
/// Longest Opus packet: 120 ms (at 48 kHz, 5760 samples per channel).
const MAX_PACKET_MS: usize = 120;
/// libopus' recommended ceiling for one encoded packet (RFC 6716 §3.2.1 frames ≤ 1275
/// bytes; six frames in a packet plus framing stay below this).
const MAX_PAYLOAD: usize = 4000;

fn check_rate(rate: u32) -> Result<(), CodecError> {
    if RATES.contains(&rate) {
        Ok(())
    } else {
        Err(CodecError::UnsupportedRates {
            from: rate,
            to: rate,
        })
    }
}

fn library_error(what: &str, code: c_int) -> CodecError {
    // SAFETY: opus_strerror returns a pointer to a static NUL-terminated string for any code.
    let text = unsafe { CStr::from_ptr(ffi::opus_strerror(code)) };
    CodecError::Library(format!("{what}: {} ({code})", text.to_string_lossy()))
}

/// libopus reports bad packets with these codes; everything else is our misuse or
/// an internal failure.
fn decode_error(code: c_int) -> CodecError {
    if code == ffi::OPUS_INVALID_PACKET || code == ffi::OPUS_BUFFER_TOO_SMALL {
        let what = if code == ffi::OPUS_INVALID_PACKET {
            "invalid Opus packet"
        } else {
            "Opus packet longer than 120 ms"
        };
        CodecError::Corrupt(what.to_string())
    } else {
        library_error("opus_decode", code)
    }
}

/// Whether an Opus packet carries in-band FEC (LBRR) data for the frame before it.
/// Malformed or empty packets carry none.
pub fn packet_has_lbrr(packet: &[u8]) -> bool {
    let Ok(len) = i32::try_from(packet.len()) else {
        return false;
    };
    if len == 0 {
        return false;
    }
    // SAFETY: pointer and length come from a live slice; libopus only reads `len` bytes and
    // reports malformed packets with a negative code.
    unsafe { ffi::opus_packet_has_lbrr(packet.as_ptr(), len) == 1 }
}

/// Which of Opus' coding modes a packet uses (RFC 6716 §3.1: the TOC byte's configuration
/// number, 0–11 SILK, 12–15 hybrid, 16–31 CELT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusMode {
    Silk,
    Hybrid,
    Celt,
}

/// The mode of an Opus packet, from its first byte; None for an empty packet.
pub fn packet_mode(packet: &[u8]) -> Option<OpusMode> {
    let config = packet.first()? >> 3;
    Some(match config {
        0..=11 => OpusMode::Silk,
        12..=15 => OpusMode::Hybrid,
        _ => OpusMode::Celt,
    })
}

/// The audio bandwidth an Opus packet carries, from its first byte (RFC 6716 §3.1), as the
/// sample rate that holds it: 8000 (narrowband), 12000 (medium), 16000 (wideband), 24000
/// (super-wideband) or 48000 (full band); None for an empty packet.
pub fn packet_audio_rate(packet: &[u8]) -> Option<u32> {
    let config = packet.first()? >> 3;
    Some(match config {
        0..=3 | 16..=19 => 8000,
        4..=7 => 12000,
        8..=11 | 20..=23 => 16000,
        12..=13 | 24..=27 => 24000,
        _ => 48000,
    })
}

/// libopus' request to pin the coding mode, and its CELT-only value. Both come from
/// `opus_private.h`, which the public header does not export; they have been the same since
/// libopus 1.0 (opus_demo's `-forcemode` uses them), and the library is the one bundled by
/// `opusic-sys` at the version Cargo.lock pins, so they cannot drift under us.
const OPUS_SET_FORCE_MODE_REQUEST: c_int = 11002;
const MODE_CELT_ONLY: c_int = 1002;

/// A mono Opus decoder.
pub struct OpusDecoder {
    state: NonNull<ffi::OpusDecoder>,
    rate: u32,
    /// Samples in the last frame decoded (what a lost frame most likely held).
    last_frame: usize,
    /// libopus renders into this, then `float_pcm` converts (see there for why).
    float: Vec<f32>,
    /// A copy of `state` that [`AudioDecoder::conceal_apart`] runs PLC on, so that what it
    /// conceals never changes how the next packets decode. 16-byte words: at least the
    /// alignment libopus' own allocation gives the state.
    twin: Vec<u128>,
    /// Whether `twin` still equals `state` as it was after the last decode, concealment on
    /// the twin aside (so consecutive concealments continue one another and fade).
    twin_current: bool,
    /// What [`AudioDecoder::skip_lost`] concealed (dropped; kept to reuse the allocation).
    skipped: Vec<i16>,
}

/// Which of an [`OpusDecoder`]'s two states a libopus call works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The decoder's own: every packet goes through it, in arrival order.
    Live,
    /// The copy that detached concealment runs on.
    Twin,
}

// SAFETY: an OpusDecoder state is plain memory owned by this value and only reached through
// `&mut self`; libopus keeps no thread-local or global state tied to it.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// A decoder producing mono PCM at `rate` (8000, 12000, 16000, 24000 or 48000) from mono
    /// or stereo packets.
    pub fn new(rate: u32) -> Result<Self, CodecError> {
        check_rate(rate)?;
        let mut error: c_int = ffi::OPUS_OK;
        // SAFETY: plain call with a valid out-pointer for the error code.
        let raw = unsafe { ffi::opus_decoder_create(rate as i32, 1, &mut error) };
        let state = NonNull::new(raw).ok_or_else(|| library_error("opus_decoder_create", error))?;
        let decoder = Self {
            state,
            rate,
            last_frame: (rate / 50) as usize,
            float: Vec::new(),
            twin: Vec::new(),
            twin_current: false,
            skipped: Vec::new(),
        };
        if error != ffi::OPUS_OK {
            // `decoder` frees the state on drop.
            return Err(library_error("opus_decoder_create", error));
        }
        Ok(decoder)
    }

    fn max_frame(&self) -> usize {
        self.rate as usize * MAX_PACKET_MS / 1000
    }

    /// 2.5 ms, the granularity libopus accepts for concealment and FEC lengths.
    fn quantum(&self) -> usize {
        self.rate as usize / 400
    }

    /// The libopus state `which` names.
    fn state_ptr(&mut self, which: State) -> *mut ffi::OpusDecoder {
        match which {
            State::Live => {
                self.twin_current = false;
                self.state.as_ptr()
            }
            State::Twin => self.twin.as_mut_ptr().cast(),
        }
    }

    /// Makes the twin a copy of the live state, unless it already is one (with only
    /// concealment run on it since). False if libopus cannot size its state: then there is
    /// no twin to name.
    fn refresh_twin(&mut self) -> bool {
        if self.twin_current {
            return true;
        }
        // SAFETY: plain query; the decoder was created with one channel.
        let size = usize::try_from(unsafe { ffi::opus_decoder_get_size(1) }).unwrap_or(0);
        if size == 0 {
            return false;
        }
        self.twin.resize(size.div_ceil(size_of::<u128>()), 0);
        // SAFETY: the live state is `size` bytes (opus_decoder_create allocated exactly
        // opus_decoder_get_size(1) for it), the twin holds at least `size` bytes and does not
        // overlap it, and opus.h documents the decoder state as "position independent and
        // can be freely copied" (its one pointer leads to static mode tables).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.state.as_ptr().cast::<u8>(),
                self.twin.as_mut_ptr().cast::<u8>(),
                size,
            );
        }
        self.twin_current = true;
        true
    }

    /// One `opus_decode` call on state `which`, appending at most `frame_size` samples to
    /// `out`. `payload` None runs PLC.
    fn decode_into(
        &mut self,
        which: State,
        payload: Option<&[u8]>,
        frame_size: usize,
        fec: bool,
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        let mut frame_size = frame_size.min(self.max_frame());
        let state = self.state_ptr(which);
        let (data, len) = match payload {
            Some(p) => {
                let len = i32::try_from(p.len())
                    .map_err(|_| CodecError::Corrupt("Opus payload too large".to_string()))?;
                (p.as_ptr(), len)
            }
            None => (std::ptr::null(), 0),
        };
        if payload.is_some() && !fec {
            // Size the output to what the packet holds (20 ms, typically) instead of
            // zero-filling room for 120 ms on every packet; a packet libopus cannot size is
            // left to opus_decode to refuse.
            // SAFETY: pointer/length from a live slice; libopus only reads the TOC bytes.
            let samples = unsafe { ffi::opus_decoder_get_nb_samples(state, data, len) };
            if let Ok(samples) = usize::try_from(samples)
                && samples > 0
            {
                frame_size = frame_size.min(samples);
            }
        }
        self.float.resize(frame_size, 0.0);
        // SAFETY: `self.float` holds exactly `frame_size` samples (mono decoder, one
        // channel), the payload pointer/length pair comes from a live slice (or null/0 for
        // PLC, which libopus defines as loss), and the state is valid until drop (the twin
        // is only named once `refresh_twin` has filled it and said so).
        let result = unsafe {
            ffi::opus_decode_float(
                state,
                data,
                len,
                self.float.as_mut_ptr(),
                frame_size as c_int,
                c_int::from(fec),
            )
        };
        if result < 0 {
            return Err(decode_error(result));
        }
        let produced = (result as usize).min(frame_size);
        let start = out.len();
        out.resize(start + produced, 0);
        float_pcm::to_pcm16(&self.float[..produced], &mut out[start..]);
        Ok(produced)
    }

    /// Appends exactly `samples` samples of concealment: PLC in 2.5 ms multiples (what
    /// libopus accepts), the last partial quantum trimmed; silence if libopus refuses.
    fn plc(&mut self, which: State, samples: usize, out: &mut Vec<i16>) {
        let target = out.len() + samples;
        let quantum = self.quantum();
        while out.len() < target {
            let want = (target - out.len()).div_ceil(quantum) * quantum;
            let chunk = want.min(self.last_frame.max(quantum));
            match self.decode_into(which, None, chunk, false, out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out.truncate(target);
        out.resize(target, 0);
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed exactly once here.
        unsafe { ffi::opus_decoder_destroy(self.state.as_ptr()) }
    }
}

impl AudioDecoder for OpusDecoder {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            // Some senders mark DTX with empty payloads; the timeline still needs a frame.
            let frame = self.last_frame;
            self.plc(State::Live, frame, out);
            return Ok(frame);
        }
        let max = self.max_frame();
        let produced = self.decode_into(State::Live, Some(payload), max, false, out)?;
        if produced > 0 {
            self.last_frame = produced;
        }
        Ok(produced)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.plc(State::Live, samples, out);
    }

    fn skip_lost(&mut self, samples: usize, next_payload: &[u8]) {
        // Beyond 120 ms PLC has faded to silence; the decoder's state is then that of a
        // long loss however long it was.
        let samples = samples.min(self.max_frame());
        let mut skipped = std::mem::take(&mut self.skipped);
        skipped.clear();
        // FEC can only rebuild the frame just before `next_payload`; earlier ones are PLC.
        let rebuildable = samples.min(self.last_frame);
        self.plc(State::Live, samples - rebuildable, &mut skipped);
        self.conceal_with_next(next_payload, rebuildable, &mut skipped);
        self.skipped = skipped;
    }

    fn conceal_apart(&mut self, samples: usize, out: &mut Vec<i16>) {
        if self.refresh_twin() {
            self.plc(State::Twin, samples, out);
        } else {
            out.resize(out.len() + samples, 0);
        }
    }

    fn decode_apart(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            let frame = self.last_frame;
            self.conceal_apart(frame, out);
            return Ok(frame);
        }
        if !self.refresh_twin() {
            return Err(CodecError::Library(
                "opus_decoder_get_size gave no size".to_string(),
            ));
        }
        let max = self.max_frame();
        self.decode_into(State::Twin, Some(payload), max, false, out)
    }

    fn conceal_with_next(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) {
        let quantum = self.quantum();
        // FEC can only rebuild whole 2.5 ms multiples and only when `next_payload` carries
        // LBRR data (if it does not, libopus itself falls back to PLC).
        if samples > 0 && samples.is_multiple_of(quantum) && !next_payload.is_empty() {
            let start = out.len();
            if self.decode_into(State::Live, Some(next_payload), samples, true, out) == Ok(samples)
            {
                return;
            }
            out.truncate(start);
        }
        self.plc(State::Live, samples, out);
    }
}

/// How an [`OpusEncoder`] is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusEncoderConfig {
    /// PCM rate the encoder takes (8000, 12000, 16000, 24000 or 48000).
    pub rate: u32,
    /// Target bitrate in bit/s (libopus accepts 500..=512000).
    pub bitrate: u32,
    /// Put in-band FEC (LBRR) for the previous frame into each packet.
    pub inband_fec: bool,
    /// Loss the FEC is tuned for, in percent (FEC is only emitted when this is > 0).
    pub expected_loss_percent: u8,
    /// Discontinuous transmission: near-silent frames become 1–2 byte packets.
    pub dtx: bool,
    /// 0..=10; 10 is libopus' default and best quality, lower is cheaper.
    pub complexity: u8,
    /// Encode CELT-only frames while no loss is expected (`expected_loss_percent` 0, or
    /// [`OpusEncoder::set_loss`] with 0), and let libopus choose SILK or hybrid again once
    /// loss is reported, because only those modes carry in-band FEC. For narrowband input
    /// (a G.711 leg's 8 kHz audio) CELT costs about 45 % less than SILK at complexity 1
    /// (≈ 14–20 µs against 25–28 µs per 20 ms frame here) and, at the 32 kbit/s default,
    /// renders the 4 kHz band without SILK's parametric coding; the price is bits (CELT
    /// uses the whole bitrate, SILK narrowband about 22 kbit/s of it).
    pub celt_while_clean: bool,
}

impl Default for OpusEncoderConfig {
    fn default() -> Self {
        Self {
            rate: 48000,
            bitrate: 32000,
            inband_fec: true,
            expected_loss_percent: 10,
            dtx: false,
            complexity: 5,
            celt_while_clean: false,
        }
    }
}

/// An Opus encoder for 20 ms frames, tuned for voice (OPUS_APPLICATION_VOIP): mono for RTP
/// legs, stereo (interleaved) for two-channel recordings.
pub struct OpusEncoder {
    state: NonNull<ffi::OpusEncoder>,
    rate: u32,
    channels: u8,
    scratch: Vec<u8>,
    /// What [`OpusEncoder::set_loss`] last set (None: the configuration's FEC settings).
    loss: Option<u8>,
    /// [`OpusEncoderConfig::celt_while_clean`].
    celt_while_clean: bool,
}

// SAFETY: as for OpusDecoder: state owned by this value, only reached through `&mut self`.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    pub fn new(config: OpusEncoderConfig) -> Result<Self, CodecError> {
        Self::with_channels(config, 1)
    }

    /// An encoder for `channels` (1 or 2) interleaved channels.
    pub fn with_channels(config: OpusEncoderConfig, channels: u8) -> Result<Self, CodecError> {
        if !(1..=2).contains(&channels) {
            return Err(CodecError::Library(format!(
                "Opus encoder channels must be 1 or 2, not {channels}"
            )));
        }
        check_rate(config.rate)?;
        if !(500..=512_000).contains(&config.bitrate) {
            return Err(CodecError::Library(format!(
                "Opus bitrate {} outside 500..=512000",
                config.bitrate
            )));
        }
        let mut error: c_int = ffi::OPUS_OK;
        // SAFETY: plain call with a valid out-pointer for the error code.
        let raw = unsafe {
            ffi::opus_encoder_create(
                config.rate as i32,
                c_int::from(channels),
                ffi::OPUS_APPLICATION_VOIP,
                &mut error,
            )
        };
        let state = NonNull::new(raw).ok_or_else(|| library_error("opus_encoder_create", error))?;
        let mut encoder = Self {
            state,
            rate: config.rate,
            channels,
            scratch: vec![0; MAX_PAYLOAD],
            loss: None,
            celt_while_clean: config.celt_while_clean,
        };
        if error != ffi::OPUS_OK {
            return Err(library_error("opus_encoder_create", error));
        }
        encoder.ctl(
            "bitrate",
            ffi::OPUS_SET_BITRATE_REQUEST,
            config.bitrate as c_int,
        )?;
        encoder.ctl(
            "inband FEC",
            ffi::OPUS_SET_INBAND_FEC_REQUEST,
            c_int::from(config.inband_fec),
        )?;
        encoder.ctl(
            "packet loss",
            ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST,
            c_int::from(config.expected_loss_percent.min(100)),
        )?;
        encoder.ctl("DTX", ffi::OPUS_SET_DTX_REQUEST, c_int::from(config.dtx))?;
        encoder.ctl(
            "complexity",
            ffi::OPUS_SET_COMPLEXITY_REQUEST,
            c_int::from(config.complexity.min(10)),
        )?;
        encoder.ctl(
            "signal",
            ffi::OPUS_SET_SIGNAL_REQUEST,
            ffi::OPUS_SIGNAL_VOICE,
        )?;
        encoder.pin_mode(config.expected_loss_percent)?;
        Ok(encoder)
    }

    /// With `celt_while_clean`: CELT-only at no loss, libopus' own choice otherwise.
    fn pin_mode(&mut self, loss_percent: u8) -> Result<(), CodecError> {
        if !self.celt_while_clean {
            return Ok(());
        }
        let mode = if loss_percent == 0 {
            MODE_CELT_ONLY
        } else {
            ffi::OPUS_AUTO
        };
        self.ctl("mode", OPUS_SET_FORCE_MODE_REQUEST, mode)
    }

    /// One SET request with an int argument (all the requests used here take one).
    fn ctl(&mut self, what: &str, request: c_int, value: c_int) -> Result<(), CodecError> {
        // SAFETY: every request passed here is a SET request documented to take exactly
        // one opus_int32 argument, which `value` is.
        let result = unsafe { ffi::opus_encoder_ctl(self.state.as_ptr(), request, value) };
        if result == ffi::OPUS_OK {
            Ok(())
        } else {
            Err(library_error(what, result))
        }
    }

    /// Switches in-band FEC on, tuned for `percent` loss, or off when `percent` is 0. What
    /// the receiver's reports show, not a guess: the LBRR copy is a second quantisation of
    /// every frame (a fifth of a narrowband encode) and its bits come out of the primary
    /// frame's. Only calls libopus when something changes.
    pub fn set_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        let percent = percent.min(100);
        if self.loss == Some(percent) {
            return Ok(());
        }
        self.ctl(
            "inband FEC",
            ffi::OPUS_SET_INBAND_FEC_REQUEST,
            c_int::from(percent > 0),
        )?;
        self.ctl(
            "packet loss",
            ffi::OPUS_SET_PACKET_LOSS_PERC_REQUEST,
            c_int::from(percent),
        )?;
        self.pin_mode(percent)?;
        self.loss = Some(percent);
        Ok(())
    }

    /// Encoder look-ahead in samples at the encoder's rate: decoded audio lags the input by
    /// this much.
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        let mut value: i32 = 0;
        // SAFETY: GET_LOOKAHEAD takes one opus_int32* argument, a live local here.
        let result = unsafe {
            ffi::opus_encoder_ctl(
                self.state.as_ptr(),
                ffi::OPUS_GET_LOOKAHEAD_REQUEST,
                &mut value as *mut i32,
            )
        };
        if result != ffi::OPUS_OK {
            return Err(library_error("lookahead", result));
        }
        Ok(usize::try_from(value).unwrap_or(0))
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed exactly once here.
        unsafe { ffi::opus_encoder_destroy(self.state.as_ptr()) }
    }
}

impl AudioEncoder for OpusEncoder {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Samples in one 20 ms frame, all channels interleaved.
    fn frame_samples(&self) -> usize {
        (self.rate / 50) as usize * usize::from(self.channels)
    }

    fn encode(&mut self, frame: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let expected = self.frame_samples();
        let per_channel = expected / usize::from(self.channels);
        if frame.len() != expected {
            return Err(CodecError::FrameSize {
                expected,
                got: frame.len(),
            });
        }
        // SAFETY: `frame` holds exactly `per_channel` samples for each of the encoder's
        // channels, interleaved (checked above: opus_encode's frame size counts samples per
        // channel), and `scratch` is MAX_PAYLOAD bytes long, the size passed.
        let result = unsafe {
            ffi::opus_encode(
                self.state.as_ptr(),
                frame.as_ptr(),
                per_channel as c_int,
                self.scratch.as_mut_ptr(),
                MAX_PAYLOAD as i32,
            )
        };
        if result < 0 {
            return Err(library_error("opus_encode", result));
        }
        let len = (result as usize).min(self.scratch.len());
        out.clear();
        out.extend_from_slice(&self.scratch[..len]);
        Ok(())
    }

    fn set_reported_loss(&mut self, percent: u8) {
        if let Err(e) = self.set_loss(percent) {
            tracing::debug!(error = %e, "cannot retune Opus FEC");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stereo libopus encoder, only to produce the stereo packets a WebRTC or SIP peer
    /// with `opus/48000/2` may send; callscope itself only encodes mono.
    struct StereoEncoder(NonNull<ffi::OpusEncoder>);

    impl StereoEncoder {
        fn new() -> Self {
            let mut error = 0;
            // SAFETY: valid out-pointer; result checked for null below.
            let raw = unsafe {
                ffi::opus_encoder_create(48000, 2, ffi::OPUS_APPLICATION_AUDIO, &mut error)
            };
            let encoder = Self(NonNull::new(raw).expect("stereo encoder"));
            assert_eq!(error, ffi::OPUS_OK);
            // SAFETY: SET_BITRATE takes one opus_int32.
            let r = unsafe {
                ffi::opus_encoder_ctl(encoder.0.as_ptr(), ffi::OPUS_SET_BITRATE_REQUEST, 96000)
            };
            assert_eq!(r, ffi::OPUS_OK);
            encoder
        }

        fn encode(&mut self, interleaved: &[i16]) -> Vec<u8> {
            assert_eq!(interleaved.len(), 1920);
            let mut out = vec![0u8; MAX_PAYLOAD];
            // SAFETY: 960 stereo frames in `interleaved`, `out` is MAX_PAYLOAD long.
            let n = unsafe {
                ffi::opus_encode(
                    self.0.as_ptr(),
                    interleaved.as_ptr(),
                    960,
                    out.as_mut_ptr(),
                    MAX_PAYLOAD as i32,
                )
            };
            assert!(n > 0, "stereo encode failed: {n}");
            out.truncate(n as usize);
            out
        }
    }

    impl Drop for StereoEncoder {
        fn drop(&mut self) {
            // SAFETY: created by opus_encoder_create, destroyed once.
            unsafe { ffi::opus_encoder_destroy(self.0.as_ptr()) }
        }
    }

    fn tone(freq: f64, n: usize, amplitude: f64) -> impl Iterator<Item = i16> {
        (0..n).map(move |i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / 48000.0).sin()) as i16
        })
    }

    #[test]
    fn packet_audio_rate_reads_the_bandwidth_of_every_configuration() {
        // RFC 6716 table 2: configurations 0–11 SILK (NB, MB, WB), 12–15 hybrid (SWB, FB),
        // 16–31 CELT (NB, WB, SWB, FB), four frame sizes each (two for hybrid).
        let expected: Vec<u32> = [
            [8000; 4],
            [12000; 4],
            [16000; 4],
            [24000, 24000, 48000, 48000],
            [8000; 4],
            [16000; 4],
            [24000; 4],
            [48000; 4],
        ]
        .concat();
        for (config, want) in expected.iter().enumerate() {
            // The low three bits (stereo flag, frame count code) must not matter.
            for low in [0u8, 0b101, 0b111] {
                let toc = ((config as u8) << 3) | low;
                assert_eq!(
                    packet_audio_rate(&[toc, 0xAA]),
                    Some(*want),
                    "config {config}"
                );
            }
        }
        assert_eq!(packet_audio_rate(&[]), None);
    }

    #[test]
    fn packets_from_a_band_limited_encoder_read_as_that_band() {
        for rate in [8000u32, 16000] {
            let mut encoder = OpusEncoder::new(OpusEncoderConfig {
                rate,
                ..OpusEncoderConfig::default()
            })
            .unwrap();
            let frame: Vec<i16> = (0..rate as usize / 50)
                .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
                .collect();
            for _ in 0..10 {
                let mut packet = Vec::new();
                encoder.encode(&frame, &mut packet).unwrap();
                let carried = packet_audio_rate(&packet).unwrap();
                assert!(
                    carried <= rate,
                    "{rate} Hz input sent as {carried} Hz audio"
                );
            }
        }
    }

    #[test]
    fn stereo_packets_decode_to_the_mix_of_both_channels() {
        // Left carries 440 Hz, right 1300 Hz: the mono output must hold both, at about half
        // amplitude each (libopus averages the channels).
        let left: Vec<i16> = tone(440.0, 48000, 12000.0).collect();
        let right: Vec<i16> = tone(1300.0, 48000, 12000.0).collect();
        let mut encoder = StereoEncoder::new();
        let mut decoder = OpusDecoder::new(48000).unwrap();
        let mut mono = Vec::new();
        for f in 0..50 {
            let mut interleaved = Vec::with_capacity(1920);
            for i in f * 960..(f + 1) * 960 {
                interleaved.push(left[i]);
                interleaved.push(right[i]);
            }
            let packet = encoder.encode(&interleaved);
            assert_eq!(packet[0] & 0x04, 0x04, "TOC says stereo");
            assert_eq!(decoder.decode(&packet, &mut mono), Ok(960));
        }
        assert_eq!(mono.len(), 48000);
        let settled = &mono[4800..];
        let amplitude = |freq: f64| {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, &s) in settled.iter().enumerate() {
                let phase = 2.0 * std::f64::consts::PI * freq * n as f64 / 48000.0;
                re += f64::from(s) * phase.cos();
                im += f64::from(s) * phase.sin();
            }
            2.0 * (re * re + im * im).sqrt() / settled.len() as f64
        };
        for freq in [440.0, 1300.0] {
            let a = amplitude(freq);
            assert!(
                (4800.0..=7200.0).contains(&a),
                "{freq} Hz at amplitude {a:.0}"
            );
        }
    }
}

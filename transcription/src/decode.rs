//! Streaming audio decoding with symphonia: one packet at a time, channels kept apart.
//!
//! Nothing here holds more than one decoded packet (plus symphonia's 64 KiB read buffer), so a
//! 60-minute recording costs the same memory as a 6-second one. Every failure of the input is
//! mapped to a [`TranscriptionError`]; damaged files yield what can be recovered before the
//! damage, and the duration reported is the one actually decoded, never the header's claim.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::LazyLock;

use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::g711::{G711Law, expand_interleaved};
use crate::types::{Result, TranscriptionError};

/// After this many packets in a row fail to decode we stop: the rest of the file is noise.
const MAX_CONSECUTIVE_DECODE_ERRORS: u32 = 64;
/// A channel count above this is not a call recording; refusing it bounds per-packet memory.
const MAX_CHANNELS: usize = 16;
/// How many leading bytes are sniffed to tell "damaged known format" from "not audio at all".
const SNIFF_LEN: usize = 64;

/// symphonia's own decoders plus libopus (symphonia 0.6 has no Opus decoder of its own).
static CODECS: LazyLock<CodecRegistry> = LazyLock::new(|| {
    let mut registry = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut registry);
    registry.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
    registry
});

/// What the container and codec say about the stream, learned before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// e.g. "wav", "mp3", "ogg", "webm", "matroska", "mp4", "flac".
    pub container: String,
    /// e.g. "pcm_s16le", "pcm_mulaw", "adpcm_ima_wav", "mp3", "opus", "aac", "flac".
    pub codec: String,
    pub channels: u16,
    pub sample_rate: u32,
    /// Frames the container claims (may be absent, may lie).
    pub claimed_frames: Option<u64>,
}

impl StreamInfo {
    /// The container's claimed duration in ms, 0 when unknown.
    pub fn claimed_ms(&self) -> u64 {
        match self.claimed_frames {
            Some(frames) if self.sample_rate > 0 => {
                frames.saturating_mul(1000) / u64::from(self.sample_rate)
            }
            _ => 0,
        }
    }
}

/// A pull-based decoder: call [`StreamDecoder::next_chunk`] until it returns `false`.
pub struct StreamDecoder {
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    /// G.711 streams are expanded here by table lookup instead of by `decoder` (see `g711`).
    g711: Option<G711Law>,
    track_id: u32,
    info: StreamInfo,
    frames_decoded: u64,
    /// Decode errors seen (skipped packets); reported when nothing at all could be decoded.
    decode_errors: u64,
    last_error: Option<String>,
    finished: bool,
}

impl std::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("info", &self.info)
            .field("frames_decoded", &self.frames_decoded)
            .finish()
    }
}

impl StreamDecoder {
    /// Open a file for streaming decode.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(TranscriptionError::EmptyAudio);
        }
        let head = read_head(&mut file)?;
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        Self::from_source(Box::new(file), &head, hint)
    }

    /// Decode from bytes already in memory (used by fuzzing and tests).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        if bytes.is_empty() {
            return Err(TranscriptionError::EmptyAudio);
        }
        let head = bytes.iter().take(SNIFF_LEN).copied().collect::<Vec<u8>>();
        Self::from_source(Box::new(Cursor::new(bytes)), &head, Hint::new())
    }

    fn from_source(source: Box<dyn MediaSource>, head: &[u8], hint: Hint) -> Result<Self> {
        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let probed = guarded(|| {
            symphonia::default::get_probe().probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
        })?;
        let reader = probed.map_err(|e| probe_error(e, head))?;

        let track = reader
            .default_track(TrackType::Audio)
            .or_else(|| reader.first_track(TrackType::Audio))
            .ok_or_else(|| TranscriptionError::UnsupportedFormat("no audio track".into()))?;
        let track_id = track.id;
        let Some(CodecParameters::Audio(params)) = track.codec_params.as_ref() else {
            return Err(TranscriptionError::UnsupportedFormat(
                "audio track without codec parameters".into(),
            ));
        };
        let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
        let sample_rate = params.sample_rate.unwrap_or(0);
        let codec = codec_name(params.codec, params.bits_per_sample);
        if sample_rate == 0 {
            return Err(TranscriptionError::CorruptAudio(
                "stream declares no sample rate".into(),
            ));
        }
        if channels > MAX_CHANNELS {
            return Err(TranscriptionError::UnsupportedFormat(format!(
                "{channels} channels"
            )));
        }
        let container = container_name(reader.format_info().short_name, head);
        let claimed_frames = track.num_frames;

        let decoder = CODECS
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| TranscriptionError::UnsupportedFormat(format!("codec {codec}: {e}")))?;
        // The fast path needs the channel count up front (WAV always declares it); symphonia's
        // decoder was still made above so the stream is validated the same way either way.
        let g711 = match params.codec {
            CODEC_ID_PCM_MULAW if channels > 0 => Some(G711Law::MuLaw),
            CODEC_ID_PCM_ALAW if channels > 0 => Some(G711Law::ALaw),
            _ => None,
        };

        let info = StreamInfo {
            container,
            codec,
            // Some containers (raw ADTS, a few MP3s) only reveal the layout in the first packet;
            // `next_chunk` corrects this from the decoded buffer.
            channels: u16::try_from(channels).unwrap_or(0),
            sample_rate,
            claimed_frames,
        };
        Ok(Self {
            reader,
            decoder,
            g711,
            track_id,
            info,
            frames_decoded: 0,
            decode_errors: 0,
            last_error: None,
            finished: false,
        })
    }

    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Frames (samples per channel) decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }

    /// Milliseconds decoded so far.
    pub fn decoded_ms(&self) -> u64 {
        if self.info.sample_rate == 0 {
            return 0;
        }
        self.frames_decoded.saturating_mul(1000) / u64::from(self.info.sample_rate)
    }

    /// Decode the next packet into `out` (one `Vec` per channel, all the same length, replaced
    /// not appended). Returns `Ok(false)` at the end of the stream. An error is returned only when
    /// nothing at all could be decoded; damage after good audio ends the stream early instead.
    pub fn next_chunk(&mut self, out: &mut Vec<Vec<f32>>) -> Result<bool> {
        let mut consecutive_errors = 0u32;
        while !self.finished {
            let reader = &mut self.reader;
            let next = match guarded(|| reader.next_packet()) {
                Ok(next) => next,
                Err(e) => return self.stop_after_panic(e),
            };
            let packet = match next {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    self.finished = true;
                    break;
                }
                // Truncated files, WAV headers that promise more than is there and browser
                // MediaRecorder WebM with unknown sizes all end in UnexpectedEof: that is the end.
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    self.finished = true;
                    break;
                }
                Err(e) => {
                    // Demuxer damage: keep what we have, if anything.
                    self.note_error(&e);
                    self.finished = true;
                    break;
                }
            };
            if packet.track_id != self.track_id {
                continue;
            }
            if let Some(law) = self.g711 {
                let channels = usize::from(self.info.channels);
                let frames = expand_interleaved(law, &packet.data, channels, out);
                if frames == 0 {
                    continue;
                }
                self.frames_decoded += frames as u64;
                return Ok(true);
            }
            let decoder = &mut self.decoder;
            let decoded =
                match guarded(|| decoder.decode(&packet).map(|buf| copy_planes(&buf, out))) {
                    Ok(decoded) => decoded,
                    Err(e) => return self.stop_after_panic(e),
                };
            match decoded {
                Ok((frames, planes)) => {
                    if frames == 0 {
                        continue;
                    }
                    if planes == 0 || planes > MAX_CHANNELS {
                        self.decode_errors += 1;
                        continue;
                    }
                    if self.info.channels == 0 {
                        self.info.channels = u16::try_from(planes).unwrap_or(0);
                    }
                    fit_output(out, usize::from(self.info.channels), frames);
                    self.frames_decoded += frames as u64;
                    return Ok(true);
                }
                Err(e) => {
                    self.note_error(&e);
                    consecutive_errors += 1;
                    if consecutive_errors >= MAX_CONSECUTIVE_DECODE_ERRORS {
                        self.finished = true;
                    }
                }
            }
        }
        if self.frames_decoded == 0 {
            return Err(match &self.last_error {
                Some(msg) => TranscriptionError::CorruptAudio(msg.clone()),
                None => TranscriptionError::EmptyAudio,
            });
        }
        Ok(false)
    }

    /// A panic inside symphonia (a bug on some malformed input) must not take the worker down:
    /// the decoder's state is suspect afterwards, so the stream ends here.
    fn stop_after_panic(&mut self, e: TranscriptionError) -> Result<bool> {
        self.finished = true;
        if self.frames_decoded == 0 {
            return Err(e);
        }
        tracing::warn!(error = %e, "decoder failed mid-stream; keeping the audio decoded so far");
        Ok(false)
    }

    /// Packets that failed to decode and were skipped.
    pub fn skipped_packets(&self) -> u64 {
        self.decode_errors
    }

    fn note_error(&mut self, e: &SymphoniaError) {
        self.decode_errors += 1;
        tracing::debug!(error = %e, "skipping undecodable audio");
        self.last_error = Some(e.to_string());
    }
}

/// Run third-party parsing code, turning a panic into `CorruptAudio`.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| TranscriptionError::CorruptAudio("the decoder rejected malformed data".into()))
}

/// Copy a decoded buffer straight into the caller's planar f32 buffers (one conversion, no
/// intermediate copy); returns (frames, planes).
fn copy_planes(
    buf: &symphonia::core::audio::GenericAudioBufferRef<'_>,
    out: &mut Vec<Vec<f32>>,
) -> (usize, usize) {
    let frames = buf.frames();
    let planes = buf.num_planes();
    if frames > 0 && planes > 0 && planes <= MAX_CHANNELS {
        buf.copy_to_vecs_planar::<f32>(out);
    }
    (frames, planes)
}

/// Make `out` exactly `channels` planes of `frames` finite samples. A packet with fewer planes
/// than the stream declared gets silent channels (more are dropped), so channels stay aligned.
fn fit_output(out: &mut Vec<Vec<f32>>, channels: usize, frames: usize) {
    out.truncate(channels);
    out.resize_with(channels, Vec::new);
    for plane in out.iter_mut() {
        plane.resize(frames, 0.0);
        // Branch-free, so it vectorises: a select per sample instead of a test and a store.
        for s in plane.iter_mut() {
            *s = if s.is_finite() { *s } else { 0.0 };
        }
    }
}

fn read_head(file: &mut File) -> Result<Vec<u8>> {
    let mut head = vec![0u8; SNIFF_LEN];
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    file.seek(SeekFrom::Start(0))?;
    Ok(head)
}

/// A probe failure on bytes that start like a known container means a damaged file (422);
/// anything else is simply not audio we know (415).
fn probe_error(e: SymphoniaError, head: &[u8]) -> TranscriptionError {
    if looks_like_known_container(head) {
        TranscriptionError::CorruptAudio(format!("cannot read the container: {e}"))
    } else {
        TranscriptionError::UnsupportedFormat(format!("not a recognised audio format ({e})"))
    }
}

fn looks_like_known_container(head: &[u8]) -> bool {
    head.starts_with(b"RIFF")
        || head.starts_with(b"RIFX")
        || head.starts_with(b"OggS")
        || head.starts_with(b"fLaC")
        || head.starts_with(b"ID3")
        || head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
        || head.get(4..8) == Some(b"ftyp".as_slice())
}

fn container_name(short_name: &str, head: &[u8]) -> String {
    match short_name {
        // WebM is Matroska with DocType "webm", which sits in the first bytes of the EBML header.
        "matroska" | "mkv" if head.windows(4).any(|w| w == b"webm") => "webm".into(),
        "matroska" | "mkv" => "matroska".into(),
        "isomp4" => "mp4".into(),
        "riff" | "wave" => "wav".into(),
        other => other.to_string(),
    }
}

/// ffmpeg-style codec names, which is what operators recognise.
fn codec_name(id: AudioCodecId, bits: Option<u32>) -> String {
    let name = match id {
        CODEC_ID_PCM_S16LE => "pcm_s16le",
        CODEC_ID_PCM_S24LE => "pcm_s24le",
        CODEC_ID_PCM_S32LE => "pcm_s32le",
        CODEC_ID_PCM_U8 => "pcm_u8",
        CODEC_ID_PCM_F32LE => "pcm_f32le",
        CODEC_ID_PCM_F64LE => "pcm_f64le",
        CODEC_ID_PCM_S16BE => "pcm_s16be",
        CODEC_ID_PCM_S24BE => "pcm_s24be",
        CODEC_ID_PCM_ALAW => "pcm_alaw",
        CODEC_ID_PCM_MULAW => "pcm_mulaw",
        CODEC_ID_ADPCM_IMA_WAV => "adpcm_ima_wav",
        CODEC_ID_ADPCM_MS => "adpcm_ms",
        CODEC_ID_MP1 => "mp1",
        CODEC_ID_MP2 => "mp2",
        CODEC_ID_MP3 => "mp3",
        CODEC_ID_AAC => "aac",
        CODEC_ID_VORBIS => "vorbis",
        CODEC_ID_OPUS => "opus",
        CODEC_ID_FLAC => "flac",
        CODEC_ID_ALAC => "alac",
        other => {
            return match CODECS.get_audio_decoder(other) {
                Some(reg) => reg.codec.info.short_name.to_string(),
                None => match bits {
                    Some(b) => format!("unknown({b} bit)"),
                    None => "unknown".to_string(),
                },
            };
        }
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal WAV: `format_tag` 7 = µ-law, 6 = A-law, 8 bits per sample, 8 kHz.
    fn g711_wav(format_tag: u16, channels: u16, data: &[u8]) -> Vec<u8> {
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(38 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        // 18 bytes: non-PCM formats carry a (here empty) extension size.
        wav.extend_from_slice(&18u32.to_le_bytes());
        wav.extend_from_slice(&format_tag.to_le_bytes());
        wav.extend_from_slice(&channels.to_le_bytes());
        wav.extend_from_slice(&8000u32.to_le_bytes());
        wav.extend_from_slice(&(8000 * u32::from(channels)).to_le_bytes());
        wav.extend_from_slice(&channels.to_le_bytes());
        wav.extend_from_slice(&8u16.to_le_bytes());
        wav.extend_from_slice(&0u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(data);
        wav
    }

    fn decode_all(mut decoder: StreamDecoder) -> Vec<Vec<f32>> {
        let mut all: Vec<Vec<f32>> = Vec::new();
        let mut chunk = Vec::new();
        while decoder.next_chunk(&mut chunk).expect("decodes") {
            all.resize_with(chunk.len(), Vec::new);
            for (dst, src) in all.iter_mut().zip(&chunk) {
                dst.extend_from_slice(src);
            }
        }
        all
    }

    /// The table path gives exactly symphonia's samples for every code of both laws, mono and
    /// stereo (with a stray trailing byte).
    #[test]
    fn g711_table_path_matches_symphonia_decoder() {
        let mut codes: Vec<u8> = (0..=u8::MAX).chain((0..=u8::MAX).rev()).collect();
        codes.push(0x42);
        for (tag, law, name) in [
            (7, G711Law::MuLaw, "pcm_mulaw"),
            (6, G711Law::ALaw, "pcm_alaw"),
        ] {
            for channels in [1u16, 2] {
                let bytes = g711_wav(tag, channels, &codes);
                let fast = StreamDecoder::from_bytes(bytes.clone()).expect("opens");
                assert_eq!(fast.g711, Some(law));
                assert_eq!(fast.info().codec, name);
                let mut reference = StreamDecoder::from_bytes(bytes).expect("opens");
                reference.g711 = None;
                let (fast, reference) = (decode_all(fast), decode_all(reference));
                assert_eq!(fast.len(), usize::from(channels));
                assert_eq!(fast[0].len(), codes.len() / usize::from(channels));
                assert_eq!(fast, reference, "{name}, {channels} channel(s)");
            }
        }
    }
}

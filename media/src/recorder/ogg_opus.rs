//! Crash-safe two-channel Opus-in-Ogg recording (RFC 7845), the compact alternative to WAV
//! (≈ 48 kbit/s for both channels instead of 256 kbit/s at 8 kHz).
//!
//! Like the WAV writer, the file is `<final>.part` until `finish`. The two header pages
//! (OpusHead, OpusTags) are written at creation; audio is encoded in 20 ms stereo packets and
//! each flush appends whole pages, so whatever a crash leaves is a sequence of valid pages
//! followed by at most one partial page. `repair_ogg_opus` cuts that partial page, marks the
//! last page as the end of the stream and renames the file. The granule position of every
//! page counts the 48 kHz samples decoded through it, the encoder's pre-skip included; the
//! last page's says where the real audio ends (RFC 7845 §4), so players get the exact
//! length back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::ogg::{self, FLAG_BOS, FLAG_EOS, MAX_SEGMENTS};
use super::repair::{RepairError, RepairReport};
use super::writer::{
    FinishedRecording, WriterConfig, WriterError, commit_part, create_part_file, frames_duration,
};
use crate::codec::{AudioEncoder, CodecError};
use crate::codec::{OpusEncoder, OpusEncoderConfig};

/// Opus granule positions always count at 48 kHz.
const GRANULE_RATE: u64 = 48_000;
/// Both channels together. Measured with `scripts/bench-opus-encoder` (G.711 speech, PESQ-NB
/// per channel): while one side talks at a time every setting scores like the G.711 input
/// (4.2–4.5); when both talk at once 32 kbit/s falls to 3.4 and 48 kbit/s holds 3.7–3.9, for
/// 4 % more encoder time. Interruptions are what a reviewer replays, so 48. At 16 kHz (a
/// softphone's call, PESQ-WB) 48 kbit/s gains 0.5–0.8 in double talk over 32 as well.
const BITRATE: u32 = 48_000;
/// Encoder complexity (0–10) of recordings. Measured with `scripts/bench-opus-encoder`:
/// complexity 0 scores within 0.01 PESQ of 5 while one side talks and 0.05–0.1 below it
/// while both do, for 40 % of the encoder time (≈ 22 against 54 µs per 20 ms stereo frame
/// of conversation, 38 against 99 of double talk; the writer threads encode every Opus
/// recording).
pub const RECORDING_COMPLEXITY: u8 = 0;
/// Stream serial number; one logical stream per file, so any constant will do.
const SERIAL: u32 = 0x6373_6370;

fn codec_err(path: &Path, e: CodecError) -> WriterError {
    WriterError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// The OpusHead packet: version 1, two channels, pre-skip, the input rate, no gain, mapping 0.
fn opus_head(pre_skip: u16, input_rate: u32) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1);
    head.push(2);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&input_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

fn opus_tags() -> Vec<u8> {
    let vendor = b"callscope";
    let mut tags = Vec::with_capacity(8 + 4 + vendor.len() + 4);
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    tags
}

pub struct OggOpusWriter {
    file: Option<File>,
    part_path: PathBuf,
    final_path: PathBuf,
    config: WriterConfig,
    encoder: OpusEncoder,
    /// Interleaved samples waiting for a whole 20 ms frame.
    pending: Vec<i16>,
    /// Encoded packets not yet on disk, with the granule after each.
    packets: Vec<(Vec<u8>, u64)>,
    /// Input frames (per channel) accepted so far.
    frames_in: u64,
    /// Frames (per channel) encoded so far, padding included.
    frames_encoded: u64,
    frames_per_packet: usize,
    pre_skip: u64,
    sequence: u32,
    scratch: Vec<u8>,
    last_flush: Instant,
}

impl OggOpusWriter {
    /// Creates `<final_path>.part` with the two header pages. The rate must be one Opus
    /// encodes natively (8, 12, 16, 24 or 48 kHz).
    pub fn create(
        final_path: impl Into<PathBuf>,
        config: WriterConfig,
        now: Instant,
    ) -> Result<Self, WriterError> {
        Self::create_with(final_path, config, now, BITRATE, RECORDING_COMPLEXITY)
    }

    /// [`OggOpusWriter::create`] with another bitrate (both channels, bit/s) and encoder
    /// complexity (0–10): how the benchmark compares settings on the writer recordings
    /// really go through.
    pub fn create_with(
        final_path: impl Into<PathBuf>,
        config: WriterConfig,
        now: Instant,
        bitrate: u32,
        complexity: u8,
    ) -> Result<Self, WriterError> {
        let final_path = final_path.into();
        let (mut file, part_path) = create_part_file(&final_path, &config)?;
        // An encoder that cannot be made (an unsupported rate) leaves no empty file behind.
        let discard = |e: WriterError| {
            let _ = std::fs::remove_file(&part_path);
            e
        };
        let mut encoder = OpusEncoder::with_channels(
            OpusEncoderConfig {
                rate: config.sample_rate,
                bitrate,
                // A file has no packet loss to protect against.
                inband_fec: false,
                expected_loss_percent: 0,
                dtx: false,
                complexity,
                celt_while_clean: false,
            },
            2,
        )
        .map_err(|e| discard(codec_err(&part_path, e)))?;
        let lookahead = encoder
            .lookahead()
            .map_err(|e| discard(codec_err(&part_path, e)))? as u64;
        let pre_skip = lookahead * GRANULE_RATE / u64::from(config.sample_rate);
        let io = |source| WriterError::Io {
            path: part_path.clone(),
            source,
        };
        let mut headers = Vec::new();
        let head = opus_head(
            u16::try_from(pre_skip).unwrap_or(u16::MAX),
            config.sample_rate,
        );
        ogg::write_page(&mut headers, FLAG_BOS, 0, SERIAL, 0, &[&head]);
        ogg::write_page(&mut headers, 0, 0, SERIAL, 1, &[&opus_tags()]);
        file.write_all(&headers).map_err(io)?;
        let frames_per_packet = (config.sample_rate / 50) as usize;
        Ok(Self {
            file: Some(file),
            part_path,
            final_path,
            config,
            encoder,
            pending: Vec::new(),
            packets: Vec::new(),
            frames_in: 0,
            frames_encoded: 0,
            frames_per_packet,
            pre_skip,
            sequence: 2,
            scratch: Vec::new(),
            last_flush: now,
        })
    }

    pub fn part_path(&self) -> &Path {
        &self.part_path
    }

    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Frames accepted so far.
    pub fn frames(&self) -> u64 {
        self.frames_in
    }

    /// The granule at which `frames` of input end: the decoder drops `pre_skip` samples
    /// first, so input sample k comes out as decoded sample `pre_skip + k`.
    fn granule_after(&self, frames: u64) -> u64 {
        self.pre_skip + frames * GRANULE_RATE / u64::from(self.config.sample_rate)
    }

    /// Encodes every whole frame waiting in `pending`.
    fn encode_pending(&mut self) -> Result<(), WriterError> {
        let frame_len = self.frames_per_packet * 2;
        let whole = self.pending.len() / frame_len * frame_len;
        for chunk in self.pending[..whole].chunks_exact(frame_len) {
            self.encoder
                .encode(chunk, &mut self.scratch)
                .map_err(|e| codec_err(&self.part_path, e))?;
            self.frames_encoded += self.frames_per_packet as u64;
            // A page's granule counts every sample decoded through it, the pre-skip
            // included (RFC 7845 §4): n packets of 20 ms are n × 960.
            let granule = self.frames_encoded * GRANULE_RATE / u64::from(self.config.sample_rate);
            self.packets.push((self.scratch.clone(), granule));
        }
        self.pending.drain(..whole);
        Ok(())
    }

    /// Buffers interleaved left/right samples; encodes whole frames; flushes on the interval.
    pub fn write(&mut self, interleaved: &[i16], now: Instant) -> Result<(), WriterError> {
        if !interleaved.len().is_multiple_of(2) {
            return Err(WriterError::PartialFrame(interleaved.len()));
        }
        self.pending.extend_from_slice(interleaved);
        self.frames_in += interleaved.len() as u64 / 2;
        self.encode_pending()?;
        if now.saturating_duration_since(self.last_flush) >= self.config.flush_interval {
            self.flush(now)?;
        }
        Ok(())
    }

    /// Writes the encoded packets as whole pages (`last_flags` on the final page).
    fn write_pages(&mut self, last_flags: u8) -> Result<(), WriterError> {
        let part_path = self.part_path.clone();
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        let packets = std::mem::take(&mut self.packets);
        let mut start = 0;
        while start < packets.len() {
            let mut segments = 0;
            let mut end = start;
            while end < packets.len()
                && segments + ogg::segments_for(packets[end].0.len()) <= MAX_SEGMENTS
            {
                segments += ogg::segments_for(packets[end].0.len());
                end += 1;
            }
            // A single packet always fits (Opus packets are < 1276 bytes: 6 segments).
            let end = end.max(start + 1);
            let bodies: Vec<&[u8]> = packets[start..end].iter().map(|p| p.0.as_slice()).collect();
            let granule = packets[end - 1].1;
            let flags = if end == packets.len() { last_flags } else { 0 };
            ogg::write_page(&mut out, flags, granule, SERIAL, self.sequence, &bodies);
            self.sequence = self.sequence.wrapping_add(1);
            start = end;
        }
        if !out.is_empty() {
            file.write_all(&out).map_err(|source| WriterError::Io {
                path: part_path.clone(),
                source,
            })?;
        }
        if self.config.fsync_each_flush {
            file.sync_data().map_err(|source| WriterError::Io {
                path: part_path,
                source,
            })?;
        }
        Ok(())
    }

    /// Appends the encoded packets to the file as whole pages.
    pub fn flush(&mut self, now: Instant) -> Result<(), WriterError> {
        self.last_flush = now;
        self.write_pages(0)
    }

    /// Pads the last frame, drains the encoder's look-ahead, writes the end-of-stream page
    /// whose granule trims the padding, fsyncs and renames.
    pub fn finish(mut self, now: Instant) -> Result<FinishedRecording, WriterError> {
        let frame_len = self.frames_per_packet * 2;
        // Silence to complete the last frame, then one more frame so the look-ahead's worth
        // of real audio leaves the encoder.
        let pad = (frame_len - self.pending.len() % frame_len) % frame_len + frame_len;
        self.pending.resize(self.pending.len() + pad, 0);
        self.encode_pending()?;
        // The last page's granule says where the real audio ends (RFC 7845 §4.5).
        let end_granule = self.granule_after(self.frames_in);
        if let Some(last) = self.packets.last_mut() {
            last.1 = end_granule;
        }
        self.last_flush = now;
        self.write_pages(FLAG_EOS)?;
        if let Some(file) = self.file.take() {
            commit_part(file, &self.part_path, &self.final_path)
                .map_err(|(path, source)| WriterError::Io { path, source })?;
        }
        Ok(FinishedRecording {
            path: self.final_path.clone(),
            frames: self.frames_in,
            duration: frames_duration(self.frames_in, self.config.sample_rate),
        })
    }
}

impl Drop for OggOpusWriter {
    /// Dropped without `finish`: the packets already encoded still reach the `.part` file.
    fn drop(&mut self) {
        if self.file.is_some()
            && let Err(e) = self.write_pages(0)
        {
            tracing::warn!(path = %self.part_path.display(), error = %e, "recording flush on drop failed");
        }
    }
}

/// The longest Opus packet, 120 ms, in granule units.
const MAX_PACKET_GRANULES: u64 = 120 * GRANULE_RATE / 1000;

/// Whether `page` can follow a page that ended at granule `previous` in a file our writer
/// made: same stream, whole packets only, and a granule that advances by no more than its
/// packets can hold. A page with a valid CRC that breaks this was not written by us (or
/// not written whole), so repair cuts there as it does at a bad CRC; trusting its granule
/// would give players and the call's duration a length the audio does not have.
fn continues_stream(page: &ogg::PageInfo, serial: u32, previous: u64) -> bool {
    let most = MAX_PACKET_GRANULES.saturating_mul(page.packets.len() as u64);
    page.serial == serial
        && page.last_complete
        && page.granule >= previous
        && page.granule - previous <= most
}

/// `samples_48k` counted at `rate` per second instead (frames at the input rate, or µs),
/// in u128: the header's rate is whatever the file says, so the product must not overflow.
fn at_rate(samples_48k: u64, rate: u64) -> u64 {
    let scaled = u128::from(samples_48k) * u128::from(rate) / u128::from(GRANULE_RATE);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// Repairs a cut-off Ogg Opus recording: keeps every valid page, cuts what follows, marks the
/// last page end-of-stream, fsyncs and renames `<name>.part` to `<name>`. Pages are valid when
/// their CRC holds and they continue the stream (`continues_stream`).
pub fn repair_ogg_opus(path: &Path, final_path: &Path) -> Result<RepairReport, RepairError> {
    let io = |source| RepairError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(io)?
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let head =
        ogg::read_page(&bytes, 0).ok_or_else(|| RepairError::NoHeader(path.to_path_buf()))?;
    let head_packet = head
        .packets
        .first()
        .and_then(|&(off, len)| bytes.get(off..off + len))
        .ok_or_else(|| RepairError::NotARecording(path.to_path_buf()))?;
    if head_packet.len() < 19 || &head_packet[..8] != b"OpusHead" {
        return Err(RepairError::NotARecording(path.to_path_buf()));
    }
    let channels = u16::from(head_packet[9]);
    let pre_skip = u64::from(u16::from_le_bytes([head_packet[10], head_packet[11]]));
    let input_rate = u32::from_le_bytes([
        head_packet[12],
        head_packet[13],
        head_packet[14],
        head_packet[15],
    ])
    .max(1);
    let mut offset = head.len;
    let mut last = None;
    let mut previous = 0;
    while let Some(page) = ogg::read_page(&bytes, offset) {
        if !continues_stream(&page, head.serial, previous) {
            break;
        }
        offset += page.len;
        previous = page.granule;
        last = Some(page);
    }
    let truncated_bytes = (bytes.len() - offset) as u64;
    bytes.truncate(offset);
    let mut granule = 0;
    match &last {
        Some(page) => {
            granule = page.granule;
            ogg::set_page_flags(&mut bytes, page, page.flags | FLAG_EOS);
        }
        // Only the OpusHead page survived: a stream needs its OpusTags page after it, so
        // one is written, ending the (empty) stream.
        None => ogg::write_page(&mut bytes, FLAG_EOS, 0, head.serial, 1, &[&opus_tags()]),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    commit_part(file, path, final_path)
        .map_err(|(path, source)| RepairError::Io { path, source })?;
    let samples_48k = granule.saturating_sub(pre_skip);
    let frames = at_rate(samples_48k, u64::from(input_rate));
    Ok(RepairReport {
        path: final_path.to_path_buf(),
        channels,
        sample_rate: input_rate,
        frames,
        duration: Duration::from_micros(at_rate(samples_48k, 1_000_000)),
        truncated_bytes,
    })
}

//! Streaming conversion of every channel to 16 kHz (what VAD and whisper expect): 8 kHz
//! (telephony's common case) goes through a dedicated half-band 2× upsampler
//! ([`crate::upsample2x`]), 32–48 kHz (MP3's 44.1 kHz, video's 48 kHz) through a two-stage
//! FIR downsampler ([`crate::downsample32`]), other rates through rubato's FFT resampler. Input arrives in
//! decoder-sized pieces of any length; output is exact: start-up delay is trimmed and the tail
//! is flushed, so sample `n` of the output is time `n / 16000` s of the recording.

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

use crate::downsample32::Downsampler32;
use crate::types::{Result, TranscriptionError};
use crate::upsample2x::Upsampler2x;

pub const TARGET_RATE: u32 = 16_000;
/// Input frames per resampler call: large enough to amortise FFT set-up, small enough to keep
/// latency and memory trivial.
const CHUNK_FRAMES: usize = 1024;

/// Resamples N channels from `input_rate` to 16 kHz, keeping them apart.
pub struct StreamResampler {
    channels: usize,
    engine: Option<Engine>,
    /// Used instead of `engine` for 8 kHz input, one per channel.
    doublers: Vec<Upsampler2x>,
    /// Used instead of `engine` for 32–48 kHz input, one per channel.
    downsamplers: Vec<Downsampler32>,
}

struct Engine {
    fft: Fft<f32>,
    ratio: f64,
    pending: Vec<Vec<f32>>,
    produced: Vec<Vec<f32>>,
    delay_to_trim: usize,
    input_total: u64,
    output_total: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("channels", &self.channels)
            .field(
                "passthrough",
                &(self.engine.is_none()
                    && self.doublers.is_empty()
                    && self.downsamplers.is_empty()),
            )
            .field("half_band_2x", &!self.doublers.is_empty())
            .field("two_stage_fir", &!self.downsamplers.is_empty())
            .finish()
    }
}

impl StreamResampler {
    pub fn new(input_rate: u32, channels: usize) -> Result<Self> {
        if channels == 0 || input_rate == 0 {
            return Err(TranscriptionError::CorruptAudio(format!(
                "cannot resample {channels} channel(s) at {input_rate} Hz"
            )));
        }
        if input_rate == TARGET_RATE {
            return Ok(Self {
                channels,
                engine: None,
                doublers: Vec::new(),
                downsamplers: Vec::new(),
            });
        }
        if input_rate * 2 == TARGET_RATE {
            return Ok(Self {
                channels,
                engine: None,
                doublers: vec![Upsampler2x::new(); channels],
                downsamplers: Vec::new(),
            });
        }
        if let Some(downsamplers) = Downsampler32::for_channels(input_rate, channels) {
            return Ok(Self {
                channels,
                engine: None,
                doublers: Vec::new(),
                downsamplers,
            });
        }
        let fft = Fft::<f32>::new(
            input_rate as usize,
            TARGET_RATE as usize,
            CHUNK_FRAMES,
            channels,
            FixedSync::Input,
        )
        .map_err(|e| {
            TranscriptionError::UnsupportedFormat(format!("sample rate {input_rate} Hz: {e}"))
        })?;
        let delay_to_trim = fft.output_delay();
        let out_max = fft.output_frames_max();
        Ok(Self {
            channels,
            doublers: Vec::new(),
            downsamplers: Vec::new(),
            engine: Some(Engine {
                fft,
                ratio: f64::from(TARGET_RATE) / f64::from(input_rate),
                pending: vec![Vec::with_capacity(CHUNK_FRAMES * 2); channels],
                produced: vec![vec![0.0; out_max]; channels],
                delay_to_trim,
                input_total: 0,
                output_total: 0,
            }),
        })
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Feed one piece of planar audio; 16 kHz output is appended to `out` (one `Vec` per channel).
    pub fn push(&mut self, input: &[Vec<f32>], out: &mut [Vec<f32>]) -> Result<()> {
        let Some(engine) = self.engine.as_mut() else {
            if !self.downsamplers.is_empty() {
                for ((down, dst), src) in
                    self.downsamplers.iter_mut().zip(out.iter_mut()).zip(input)
                {
                    down.push(src, dst);
                }
            } else if self.doublers.is_empty() {
                for (dst, src) in out.iter_mut().zip(input) {
                    dst.extend_from_slice(src);
                }
            } else {
                for ((doubler, dst), src) in self.doublers.iter_mut().zip(out.iter_mut()).zip(input)
                {
                    doubler.push(src, dst);
                }
            }
            return Ok(());
        };
        for (pending, src) in engine.pending.iter_mut().zip(input) {
            pending.extend_from_slice(src);
        }
        engine.input_total += input.first().map_or(0, |c| c.len() as u64);
        engine.drain_full_chunks(out)
    }

    /// Flush the tail: resample what is left and stop at exactly `input × ratio` output frames.
    pub fn finish(&mut self, out: &mut [Vec<f32>]) -> Result<()> {
        let Some(engine) = self.engine.as_mut() else {
            for (doubler, dst) in self.doublers.iter_mut().zip(out.iter_mut()) {
                doubler.finish(dst);
            }
            for (down, dst) in self.downsamplers.iter_mut().zip(out.iter_mut()) {
                down.finish(dst);
            }
            return Ok(());
        };
        engine.drain_full_chunks(out)?;
        let expected = (engine.input_total as f64 * engine.ratio).ceil() as u64;
        let mut partial = engine.pending.first().map_or(0, Vec::len);
        // Bounded: each call yields at least one output frame once the delay is consumed.
        let mut guard = 0;
        while engine.output_total < expected && guard < 64 {
            guard += 1;
            engine.run_once(Some(partial), out, expected)?;
            for p in engine.pending.iter_mut() {
                p.clear();
            }
            partial = 0;
        }
        Ok(())
    }
}

impl Engine {
    fn drain_full_chunks(&mut self, out: &mut [Vec<f32>]) -> Result<()> {
        let mut offset = 0;
        loop {
            let need = self.fft.input_frames_next();
            let available = self.pending.first().map_or(0, Vec::len) - offset;
            if available < need {
                break;
            }
            let consumed = self.process(offset, None, out, u64::MAX)?;
            offset += consumed;
        }
        if offset > 0 {
            for p in self.pending.iter_mut() {
                p.drain(..offset);
            }
        }
        Ok(())
    }

    fn run_once(
        &mut self,
        partial: Option<usize>,
        out: &mut [Vec<f32>],
        limit: u64,
    ) -> Result<usize> {
        self.process(0, partial, out, limit)
    }

    /// One resampler call from `pending[offset..]`; appends at most `limit - output_total` frames.
    fn process(
        &mut self,
        offset: usize,
        partial: Option<usize>,
        out: &mut [Vec<f32>],
        limit: u64,
    ) -> Result<usize> {
        let frames_in = self.pending.first().map_or(0, Vec::len);
        let need = self.fft.input_frames_next();
        // rubato wants an input buffer at least `need` long even for a partial final chunk.
        if frames_in < offset + need {
            for p in self.pending.iter_mut() {
                p.resize(offset + need, 0.0);
            }
        }
        let frames_in = self.pending.first().map_or(0, Vec::len);
        let channels = self.pending.len();
        let input = SequentialSliceOfVecs::new(&self.pending, channels, frames_in)
            .map_err(|e| TranscriptionError::CorruptAudio(format!("resampler input: {e}")))?;
        let out_frames = self.produced.first().map_or(0, Vec::len);
        let mut output =
            SequentialSliceOfVecs::new_mut(&mut self.produced, channels, out_frames)
                .map_err(|e| TranscriptionError::CorruptAudio(format!("resampler output: {e}")))?;
        let indexing = Indexing {
            input_offset: offset,
            output_offset: 0,
            partial_len: partial,
            active_channels_mask: None,
        };
        let (consumed, produced) = self
            .fft
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| TranscriptionError::CorruptAudio(format!("resampler: {e}")))?;
        let skip = self.delay_to_trim.min(produced);
        self.delay_to_trim -= skip;
        let room = limit.saturating_sub(self.output_total);
        let keep = ((produced - skip) as u64).min(room) as usize;
        for (dst, src) in out.iter_mut().zip(self.produced.iter()) {
            dst.extend_from_slice(src.get(skip..skip + keep).unwrap_or(&[]));
        }
        self.output_total += keep as u64;
        Ok(consumed)
    }
}

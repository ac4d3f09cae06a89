//! Short-time features for speaker clustering: log-energy plus MFCCs from a 32 ms window
//! every 16 ms (the VAD's frame rate) on 16 kHz audio, computed as the audio streams past,
//! so the whole recording never has to be held as samples (a 60-minute call keeps about
//! 225 k frames × 13 values ≈ 12 MB of features).

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Samples between frames (16 ms at 16 kHz).
pub const HOP: usize = 256;
/// Analysis window (32 ms).
pub const WINDOW: usize = 512;
/// Values per frame: log-energy then cepstra c1..c12.
pub const DIMS: usize = 13;
const MEL_BANDS: usize = 24;
const SAMPLE_RATE: f32 = 16_000.0;
const PRE_EMPHASIS: f32 = 0.97;

/// Features of a whole channel, frame-major (`DIMS` values per frame).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub data: Vec<f32>,
    /// Frame level in dB full scale (for the diarizer's own speech detection).
    pub level_db: Vec<f32>,
}

impl Features {
    pub fn frames(&self) -> usize {
        self.level_db.len()
    }

    pub fn frame(&self, i: usize) -> &[f32] {
        self.data.get(i * DIMS..(i + 1) * DIMS).unwrap_or(&[])
    }

    /// Frame whose centre is nearest to `ms` (clamped into range).
    pub fn frame_at_ms(ms: u64) -> usize {
        // Frame i spans samples [i*HOP, i*HOP + WINDOW): centre (i*HOP + WINDOW/2)/16 ms.
        let sample = ms.saturating_mul(16);
        (sample.saturating_sub((WINDOW / 2) as u64) / HOP as u64) as usize
    }

    /// Start of the 16 ms the frame stands for (its centre ± 8 ms), in ms.
    pub fn frame_start_ms(i: usize) -> u64 {
        ((i * HOP + WINDOW / 2 - HOP / 2) / 16) as u64
    }
}

/// Streaming extractor: push 16 kHz samples of any length, take the features at the end.
pub struct FeatureExtractor {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// (first FFT bin, weights) per mel band.
    mel: Vec<(usize, Vec<f32>)>,
    /// DCT-II rows for c1..c12 over the mel bands.
    dct: Vec<[f32; MEL_BANDS]>,
    pending: Vec<f32>,
    /// The same window before pre-emphasis (the level is measured on the real signal).
    pending_raw: Vec<f32>,
    last_sample: f32,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    out: Features,
}

impl Default for FeatureExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureExtractor {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(WINDOW);
        let window = (0..WINDOW)
            .map(|n| {
                0.54 - 0.46 * (2.0 * std::f32::consts::PI * n as f32 / (WINDOW - 1) as f32).cos()
            })
            .collect();
        let dct = (1..DIMS)
            .map(|k| {
                let mut row = [0f32; MEL_BANDS];
                for (m, c) in row.iter_mut().enumerate() {
                    *c = (std::f32::consts::PI * k as f32 * (m as f32 + 0.5) / MEL_BANDS as f32)
                        .cos();
                }
                row
            })
            .collect();
        let input = fft.make_input_vec();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            fft,
            window,
            mel: mel_filters(),
            dct,
            pending: Vec::with_capacity(WINDOW * 2),
            pending_raw: Vec::with_capacity(WINDOW * 2),
            last_sample: 0.0,
            input,
            spectrum,
            scratch,
            out: Features::default(),
        }
    }

    /// Feed samples (16 kHz, [-1, 1]).
    pub fn push(&mut self, samples: &[f32]) {
        for &s in samples {
            // Pre-emphasis as samples arrive: flattens the spectral tilt so the cepstra are
            // not dominated by the low bands.
            let s = if s.is_finite() { s } else { 0.0 };
            self.pending.push(s - PRE_EMPHASIS * self.last_sample);
            self.pending_raw.push(s);
            self.last_sample = s;
            if self.pending.len() == WINDOW {
                self.analyse();
                self.pending.drain(..HOP);
                self.pending_raw.drain(..HOP);
            }
        }
    }

    /// End of stream: the features of every complete window.
    pub fn finish(self) -> Features {
        self.out
    }

    fn analyse(&mut self) {
        for ((dst, s), w) in self.input.iter_mut().zip(&self.pending).zip(&self.window) {
            *dst = s * w;
        }
        let energy: f32 = self.pending_raw.iter().map(|s| s * s).sum();
        let level_db = 10.0 * (energy / WINDOW as f32 + 1e-12).log10();
        if self
            .fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .is_err()
        {
            // Only fails on wrong buffer lengths, which are fixed at construction.
            return;
        }
        let mut log_mel = [0f32; MEL_BANDS];
        for (dst, (first, weights)) in log_mel.iter_mut().zip(&self.mel) {
            let bins = self.spectrum.get(*first..).unwrap_or(&[]);
            let e: f32 = weights
                .iter()
                .zip(bins)
                .map(|(w, c)| w * c.norm_sqr())
                .sum();
            *dst = (e + 1e-10).ln();
        }
        self.out
            .data
            .push(level_db * (std::f32::consts::LN_10 / 10.0));
        for row in &self.dct {
            self.out
                .data
                .push(row.iter().zip(&log_mel).map(|(a, b)| a * b).sum());
        }
        self.out.level_db.push(level_db);
    }
}

fn hz_to_mel(hz: f32) -> f32 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f32) -> f32 {
    700.0 * (10f32.powf(mel / 2595.0) - 1.0)
}

/// Triangular mel filters from 60 Hz to 7.6 kHz over the FFT bins.
fn mel_filters() -> Vec<(usize, Vec<f32>)> {
    let bins = WINDOW / 2 + 1;
    let bin_hz = SAMPLE_RATE / WINDOW as f32;
    let (lo, hi) = (hz_to_mel(60.0), hz_to_mel(7_600.0));
    let edges: Vec<f32> = (0..MEL_BANDS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f32 / (MEL_BANDS + 1) as f32))
        .collect();
    edges
        .windows(3)
        .map(|e| {
            let (left, centre, right) = (e[0], e[1], e[2]);
            let first = (left / bin_hz).floor() as usize;
            let last = ((right / bin_hz).ceil() as usize).min(bins - 1);
            let weights = (first..=last)
                .map(|b| {
                    let hz = b as f32 * bin_hz;
                    if hz <= left || hz >= right {
                        0.0
                    } else if hz <= centre {
                        (hz - left) / (centre - left)
                    } else {
                        (right - hz) / (right - centre)
                    }
                })
                .collect();
            (first, weights)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_per_hop_and_finite_values() {
        let mut fx = FeatureExtractor::new();
        let tone: Vec<f32> = (0..16_000)
            .map(|n| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 16_000.0).sin())
            .collect();
        // Odd chunk sizes: framing must not depend on how the audio arrives.
        for chunk in tone.chunks(333) {
            fx.push(chunk);
        }
        fx.push(&[f32::NAN, f32::INFINITY]);
        let f = fx.finish();
        assert_eq!(f.frames(), (16_002 - WINDOW) / HOP + 1);
        assert_eq!(f.data.len(), f.frames() * DIMS);
        assert!(f.data.iter().all(|v| v.is_finite()));
        // A 0.3-amplitude sine is -13.5 dBFS.
        let level = f.level_db[10];
        assert!((-14.0..-13.0).contains(&level), "{level}");
    }

    #[test]
    fn frame_times_round_trip() {
        for i in [0usize, 1, 10, 1000] {
            let ms = Features::frame_start_ms(i) + 8;
            assert_eq!(Features::frame_at_ms(ms), i);
        }
    }
}

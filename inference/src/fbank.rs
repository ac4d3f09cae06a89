//! Kaldi-compatible log mel filter banks ("fbank"), the input most speaker-embedding networks
//! were trained on (WeSpeaker, 3D-Speaker, the sherpa-onnx exports): 25 ms frames every
//! 10 ms, DC offset removed, pre-emphasis 0.97, Povey window, 512-point power spectrum,
//! triangular filters on Kaldi's mel scale from 20 Hz to Nyquist, natural log floored at
//! `f32::EPSILON`, frames that do not fit whole are dropped (Kaldi's `snip_edges`).
//!
//! The test `onnx_speaker` checks these numbers against PyPI's `kaldi-native-fbank`.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

const SAMPLE_RATE: f32 = 16_000.0;
/// 25 ms at 16 kHz.
const FRAME_LENGTH: usize = 400;
/// 10 ms at 16 kHz.
pub const FRAME_SHIFT: usize = 160;
/// FRAME_LENGTH rounded up to a power of two.
const FFT_SIZE: usize = 512;
const PRE_EMPHASIS: f32 = 0.97;
const LOW_FREQ_HZ: f32 = 20.0;
/// Kaldi's window exponent for its "povey" window (a Hann window raised to 0.85).
const POVEY_EXPONENT: f32 = 0.85;

/// Computes fbank frames of 16 kHz audio for one bank size (e.g. 80 bins).
pub struct Fbank {
    bins: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// (first FFT bin, weights) per mel bin.
    filters: Vec<(usize, Vec<f32>)>,
}

impl std::fmt::Debug for Fbank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fbank").field("bins", &self.bins).finish()
    }
}

/// Kaldi's mel scale.
fn mel(hz: f32) -> f32 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

impl Fbank {
    /// A filter bank of `bins` mel bins (1..=256).
    pub fn new(bins: usize) -> Self {
        let bins = bins.clamp(1, FFT_SIZE / 2);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT_SIZE);
        let window = (0..FRAME_LENGTH)
            .map(|n| {
                let hann = 0.5
                    - 0.5
                        * (2.0 * std::f32::consts::PI * n as f32 / (FRAME_LENGTH - 1) as f32).cos();
                hann.powf(POVEY_EXPONENT)
            })
            .collect();
        Self {
            bins,
            fft,
            window,
            filters: mel_filters(bins),
        }
    }

    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Frames of `samples` (16 kHz; scale them as the model expects, Kaldi-trained models
    /// want 16-bit integer range), frame-major, `bins` values per frame.
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let frames = frame_count(samples.len());
        let mut out = Vec::with_capacity(frames * self.bins);
        let mut input = vec![0f32; FFT_SIZE];
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; FFT_SIZE / 2];
        for f in 0..frames {
            let frame = &samples[f * FRAME_SHIFT..f * FRAME_SHIFT + FRAME_LENGTH];
            let head = &mut input[..FRAME_LENGTH];
            head.copy_from_slice(frame);
            let mean = head.iter().sum::<f32>() / FRAME_LENGTH as f32;
            for x in head.iter_mut() {
                *x -= mean;
            }
            for i in (1..FRAME_LENGTH).rev() {
                head[i] -= PRE_EMPHASIS * head[i - 1];
            }
            head[0] -= PRE_EMPHASIS * head[0];
            for (x, w) in head.iter_mut().zip(&self.window) {
                *x *= w;
            }
            input[FRAME_LENGTH..].fill(0.0);
            // Cannot fail: the buffers come from the plan itself.
            let _ = self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch);
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = power_of(c);
            }
            for (first, weights) in &self.filters {
                let energy: f32 = weights
                    .iter()
                    .zip(&power[*first..])
                    .map(|(w, p)| w * p)
                    .sum();
                out.push(energy.max(f32::EPSILON).ln());
            }
        }
        out
    }
}

fn power_of(c: &Complex<f32>) -> f32 {
    c.re * c.re + c.im * c.im
}

/// Whole frames in `len` samples.
pub fn frame_count(len: usize) -> usize {
    if len < FRAME_LENGTH {
        0
    } else {
        1 + (len - FRAME_LENGTH) / FRAME_SHIFT
    }
}

/// Kaldi's triangular filters over the FFT bins below Nyquist, equally spaced on the mel
/// scale between 20 Hz and Nyquist.
fn mel_filters(bins: usize) -> Vec<(usize, Vec<f32>)> {
    let bin_hz = SAMPLE_RATE / FFT_SIZE as f32;
    let low = mel(LOW_FREQ_HZ);
    let high = mel(SAMPLE_RATE / 2.0);
    let delta = (high - low) / (bins + 1) as f32;
    (0..bins)
        .map(|b| {
            let left = low + b as f32 * delta;
            let centre = left + delta;
            let right = centre + delta;
            let mut first = None;
            let mut weights = Vec::new();
            for i in 0..FFT_SIZE / 2 {
                let m = mel(bin_hz * i as f32);
                if m > left && m < right {
                    first.get_or_insert(i);
                    weights.push(if m <= centre {
                        (m - left) / (centre - left)
                    } else {
                        (right - m) / (right - centre)
                    });
                }
            }
            (first.unwrap_or(0), weights)
        })
        .collect()
}

/// Subtract each bin's mean over the frames (cepstral mean normalisation, as the WeSpeaker
/// recipes do per segment before the network).
pub fn subtract_mean(features: &mut [f32], bins: usize) {
    if bins == 0 {
        return;
    }
    let frames = features.len() / bins;
    if frames == 0 {
        return;
    }
    let mut mean = vec![0f64; bins];
    for frame in features.chunks_exact(bins) {
        for (m, x) in mean.iter_mut().zip(frame) {
            *m += f64::from(*x);
        }
    }
    for m in mean.iter_mut() {
        *m /= frames as f64;
    }
    for frame in features.chunks_exact_mut(bins) {
        for (x, m) in frame.iter_mut().zip(&mean) {
            *x -= *m as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_follows_snip_edges() {
        assert_eq!(frame_count(0), 0);
        assert_eq!(frame_count(399), 0);
        assert_eq!(frame_count(400), 1);
        assert_eq!(frame_count(559), 1);
        assert_eq!(frame_count(560), 2);
        assert_eq!(frame_count(16_000), 98);
    }

    #[test]
    fn a_tone_lands_in_the_filter_around_its_frequency() {
        let fb = Fbank::new(40);
        let tone: Vec<f32> = (0..16_000)
            .map(|n| 8_000.0 * (2.0 * std::f32::consts::PI * 1_000.0 * n as f32 / 16_000.0).sin())
            .collect();
        let feats = fb.compute(&tone);
        let frame = &feats[..40];
        let loudest = frame
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap();
        let (first, weights) = &fb.filters[loudest];
        let lo = *first as f32 * 31.25;
        let hi = (*first + weights.len()) as f32 * 31.25;
        assert!(
            lo <= 1_000.0 && 1_000.0 <= hi,
            "bin {loudest}: {lo}..{hi} Hz"
        );
    }

    #[test]
    fn silence_is_floored_not_minus_infinity() {
        let feats = Fbank::new(80).compute(&[0.0; 4_000]);
        assert!(feats.iter().all(|x| (*x - f32::EPSILON.ln()).abs() < 1e-3));
    }

    #[test]
    fn mean_subtraction_centres_every_bin() {
        let mut f = vec![1.0, 10.0, 3.0, 20.0];
        subtract_mean(&mut f, 2);
        assert_eq!(f, vec![-1.0, -5.0, 1.0, 5.0]);
    }
}

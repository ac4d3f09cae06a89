//! Exact 2× upsampling (8 kHz telephony → 16 kHz) with a linear-phase half-band FIR.
//!
//! Why not the generic FFT resampler: for an integer factor of 2 a half-band filter has every
//! other tap zero and a centre tap of ½, so the even output samples are the input samples
//! themselves and only the odd ones are computed, from `TAPS` symmetric pairs. That is cheaper
//! than rubato's FFT path and has no start-up delay to trim: the filter is applied centred
//! (it looks `TAPS` input samples ahead), so output sample `2n` is input sample `n`.
//!
//! Response (18 tap pairs, Kaiser window β = 7), checked by `tests/resample_quality.rs`: tones
//! at 300 Hz, 1 kHz and 3.5 kHz keep their level within ±0.5 dB, and the image of a 3.5 kHz
//! tone (at 4.5 kHz) is 79 dB down (of 1 kHz, at 7 kHz: 84 dB).

use std::sync::LazyLock;

/// Symmetric tap pairs per odd output sample.
pub const TAPS: usize = 18;
const KAISER_BETA: f64 = 7.0;

/// `COEFFS[i]` weighs the pair `x[n - i]`, `x[n + 1 + i]` for output `2n + 1`.
static COEFFS: LazyLock<[f32; TAPS]> = LazyLock::new(design);

/// Windowed-sinc half-band design: h[k] = ½·sinc(k/2)·w(k); the odd taps, doubled (the
/// zero-stuffing halves the signal's energy), normalised so a constant passes unchanged.
fn design() -> [f32; TAPS] {
    let half_span = (2 * TAPS) as f64; // |k| ≤ 2·TAPS − 1 < half_span: no tap is zeroed
    let mut raw = [0f64; TAPS];
    for (i, c) in raw.iter_mut().enumerate() {
        let k = (2 * i + 1) as f64;
        let sinc = (std::f64::consts::FRAC_PI_2 * k).sin() / (std::f64::consts::FRAC_PI_2 * k);
        let ratio = k / half_span;
        let window = bessel_i0(KAISER_BETA * (1.0 - ratio * ratio).sqrt()) / bessel_i0(KAISER_BETA);
        *c = sinc * window;
    }
    // Odd outputs see each coefficient twice (both sides): make the pairs sum to one.
    let sum: f64 = raw.iter().sum::<f64>() * 2.0;
    let mut out = [0f32; TAPS];
    for (o, r) in out.iter_mut().zip(raw) {
        *o = (r / sum) as f32;
    }
    out
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// small arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let quarter_x2 = x * x / 4.0;
    for k in 1..64 {
        term *= quarter_x2 / (k * k) as f64;
        sum += term;
        if term < 1e-12 * sum {
            break;
        }
    }
    sum
}

/// One channel's 2× upsampler. Push 8 kHz samples, get 16 kHz samples; `finish` flushes the
/// last `TAPS` inputs (against trailing zeros), so `n` inputs give exactly `2n` outputs.
#[derive(Debug, Clone)]
pub struct Upsampler2x {
    /// Input not yet fully used: `TAPS` samples of history before `next`, then the rest.
    buf: Vec<f32>,
    /// Index in `buf` of the next input sample whose two outputs are due.
    next: usize,
    odd: Vec<f32>,
}

impl Default for Upsampler2x {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler2x {
    pub fn new() -> Self {
        // History before the first sample is silence.
        Self {
            buf: vec![0.0; TAPS - 1],
            next: TAPS - 1,
            odd: Vec::new(),
        }
    }

    /// Append 16 kHz output for every input sample whose look-ahead is available.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.buf.extend_from_slice(input);
        self.run(out);
    }

    /// End of stream: the look-ahead past the last sample is silence.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let real_end = self.buf.len();
        self.buf.resize(real_end + TAPS, 0.0);
        self.run(out);
        // Ready for a new stream.
        self.buf.clear();
        self.buf.resize(TAPS - 1, 0.0);
        self.next = TAPS - 1;
    }

    fn run(&mut self, out: &mut Vec<f32>) {
        // Output pair n needs buf[n - (TAPS-1) ..= n + TAPS].
        let ready = self.buf.len().saturating_sub(TAPS);
        if ready <= self.next {
            return;
        }
        let count = ready - self.next;
        let coeffs = &*COEFFS;
        // Odd samples, one tap pair at a time over the whole block: contiguous loops that the
        // compiler vectorises, instead of a short dot product per output.
        self.odd.clear();
        self.odd.resize(count, 0.0);
        let odd = self.odd.as_mut_slice();
        for (i, &c) in coeffs.iter().enumerate() {
            let (Some(behind), Some(ahead)) = (
                self.buf.get(self.next - i..self.next - i + count),
                self.buf.get(self.next + 1 + i..self.next + 1 + i + count),
            ) else {
                return;
            };
            add_scaled_pairs(odd, behind, ahead, c);
        }
        let evens = self.buf.get(self.next..self.next + count).unwrap_or(&[]);
        let at = out.len();
        out.resize(at + 2 * count, 0.0);
        if let Some(dst) = out.get_mut(at..) {
            for ((pair, e), o) in dst.chunks_exact_mut(2).zip(evens).zip(self.odd.iter()) {
                pair[0] = *e;
                pair[1] = *o;
            }
        }
        self.next = ready;
        // Keep only the history the next block needs.
        let drop = self.next - (TAPS - 1);
        if drop > 0 {
            self.buf.drain(..drop);
            self.next -= drop;
        }
    }
}

/// `acc[j] += c · (a[j] + b[j])`, written over equal-length slices so it vectorises.
#[inline]
fn add_scaled_pairs(acc: &mut [f32], a: &[f32], b: &[f32], c: f32) {
    let n = acc.len().min(a.len()).min(b.len());
    let (acc, a, b) = (&mut acc[..n], &a[..n], &b[..n]);
    for j in 0..n {
        acc[j] += c * (a[j] + b[j]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_gives_two_outputs_and_even_samples_pass_through() {
        let input: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5)
            .collect();
        let mut up = Upsampler2x::new();
        let mut out = Vec::new();
        for piece in input.chunks(77) {
            up.push(piece, &mut out);
        }
        up.finish(&mut out);
        assert_eq!(out.len(), 2 * input.len());
        for (n, x) in input.iter().enumerate() {
            assert_eq!(out[2 * n], *x, "sample {n}");
        }
    }

    #[test]
    fn a_constant_passes_unchanged() {
        let mut up = Upsampler2x::new();
        let mut out = Vec::new();
        up.push(&[0.25; 200], &mut out);
        // Away from the start (where history is silence) the odd samples equal the constant.
        for s in &out[2 * TAPS..] {
            assert!((s - 0.25).abs() < 1e-5, "{s}");
        }
    }
}

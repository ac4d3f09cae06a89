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
        // `span[TAPS - 1 + j]` is the input whose outputs are pair j of this call.
        let Some(span) = self.buf.get(self.next + 1 - TAPS..ready + TAPS) else {
            return;
        };
        out.reserve(2 * count);
        let mut done = full_blocks(span, coeffs, count, out);
        // The last few pairs (fewer than a block), one at a time.
        while done < count {
            let Some(window) = span
                .get(done..done + 2 * TAPS)
                .and_then(|w| <&[f32; 2 * TAPS]>::try_from(w).ok())
            else {
                break;
            };
            let mut odd = 0f32;
            for (i, &c) in coeffs.iter().enumerate() {
                odd += c * (window[TAPS - 1 - i] + window[TAPS + i]);
            }
            out.extend_from_slice(&[window[TAPS - 1], odd]);
            done += 1;
        }
        self.next += done;
        // Keep only the history the next block needs.
        let drop = self.next - (TAPS - 1);
        if drop > 0 {
            self.buf.drain(..drop);
            self.next -= drop;
        }
    }
}

/// The whole blocks of `run`, on AVX2 when the CPU has it (see `crate::simd`); returns the
/// pairs done.
fn full_blocks(span: &[f32], coeffs: &[f32; TAPS], count: usize, out: &mut Vec<f32>) -> usize {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2() {
        // SAFETY: the CPU has just been checked to support AVX2, all `full_blocks_avx2` needs.
        return unsafe { full_blocks_avx2(span, coeffs, count, out) };
    }
    full_blocks_generic(span, coeffs, count, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn full_blocks_avx2(span: &[f32], coeffs: &[f32; TAPS], count: usize, out: &mut Vec<f32>) -> usize {
    full_blocks_generic(span, coeffs, count, out)
}

/// Blocks of BLOCK pairs over a fixed-size window: the accumulators stay in registers and every
/// index is a constant the compiler checks, so the tap loop vectorises across the block without
/// a bounds check. (Summing tap by tap in the same order as a plain dot product keeps the
/// result bit-identical to one.)
#[inline(always)]
fn full_blocks_generic(
    span: &[f32],
    coeffs: &[f32; TAPS],
    count: usize,
    out: &mut Vec<f32>,
) -> usize {
    let mut done = 0;
    while done + BLOCK <= count {
        let Some(window) = span
            .get(done..done + BLOCK_WINDOW)
            .and_then(|w| <&[f32; BLOCK_WINDOW]>::try_from(w).ok())
        else {
            break;
        };
        let mut odd = [0f32; BLOCK];
        for (i, &c) in coeffs.iter().enumerate() {
            for (k, acc) in odd.iter_mut().enumerate() {
                *acc += c * (window[TAPS - 1 + k - i] + window[TAPS + k + i]);
            }
        }
        let mut pairs = [0f32; 2 * BLOCK];
        for (k, pair) in pairs.chunks_exact_mut(2).enumerate() {
            pair[0] = window[TAPS - 1 + k];
            pair[1] = odd[k];
        }
        out.extend_from_slice(&pairs);
        done += BLOCK;
    }
    done
}

/// Output pairs computed together (four SSE vectors, or two AVX vectors, of odd samples: 16
/// measured 8 % fewer instructions on the µ-law pipeline than 8, sharing each tap's broadcast).
const BLOCK: usize = 16;
/// Inputs one block of pairs reads: `TAPS - 1` behind the first, `TAPS` ahead of the last.
const BLOCK_WINDOW: usize = BLOCK + 2 * TAPS - 1;

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

    /// The blocked computation equals the plain formula (silence before and after the input),
    /// across odd push sizes that leave partial blocks.
    #[test]
    fn blocked_output_equals_direct_formula() {
        let input: Vec<f32> = (0..1003)
            .map(|i| ((i * 53 % 97) as f32 / 97.0) - 0.5)
            .collect();
        let mut up = Upsampler2x::new();
        let mut out = Vec::new();
        for piece in input.chunks(13) {
            up.push(piece, &mut out);
        }
        up.finish(&mut out);
        let x = |n: isize| {
            usize::try_from(n)
                .ok()
                .and_then(|n| input.get(n))
                .copied()
                .unwrap_or(0.0)
        };
        for n in 0..input.len() {
            let mut odd = 0f32;
            for (i, c) in COEFFS.iter().enumerate() {
                odd += c * (x(n as isize - i as isize) + x(n as isize + 1 + i as isize));
            }
            assert_eq!(out[2 * n + 1], odd, "pair {n}");
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

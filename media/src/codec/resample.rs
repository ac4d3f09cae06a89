//! Streaming sample-rate conversion between the media path's rates (8, 12, 16, 24, 32 and
//! 48 kHz in any direction) by a polyphase FIR with a rational ratio L/M.
//!
//! Why hand-written and not rubato: the media path converts 20 ms chunks of one live call,
//! where latency is heard and the budget for everything a call costs is 0.1 % of a core
//! (20 µs per 20 ms). Measured per 20 ms chunk with `examples/bench_codecs.rs` (release,
//! 2-core AMD EPYC VM shared with other builds, so ±30 %; delay in ms):
//!
//! | path      | this FIR      | rubato 5 `Fft` (FixedSync::Input, 20 ms chunks) |
//! |-----------|---------------|--------------------------------------------------|
//! | 48k→8k    | 2.8–3.7 µs, 2 | 1.9 µs, 3.4                                      |
//! | 8k→48k    | 5.8–6.1 µs, 2 | 2.0 µs, 10                                       |
//! | 8k→16k    | 1.6–1.7 µs, 2 | 0.8 µs, 10                                       |
//! | 16k→8k    | 1.4–1.7 µs, 2 | 0.8 µs, 5                                        |
//! | 48k→16k   | 3.5–4.1 µs, 1 | 5.2 µs, 3.3                                      |
//! | 16k→48k   | 5.4–5.6 µs, 1 | 2.2 µs, 10                                       |
//!
//! rubato's FFT resampler is cheaper for most paths but adds up to 10 ms of delay to the
//! call path each way and only takes whole fixed chunks; this FIR adds 1–2 ms, takes any
//! chunk length and costs at most ≈ 0.03 % of a core per converted direction. Cheaper
//! still is not converting: Opus decodes and encodes natively at 8 and 16 kHz
//! ([`super::decoder_at_rate`], [`super::encoder_at_rate`]).
//!
//! Filter: Kaiser-windowed sinc designed for ≈ 65 dB stop-band attenuation, its transition
//! band one eighth of the lower rate wide and centred just under that rate's Nyquist
//! frequency (for 8 kHz: pass to ≈ 3.25 kHz, stop from ≈ 4.25 kHz), so telephone-band speech
//! passes flat and what cannot be represented at the lower rate is removed before it can
//! alias. The filter length is rounded so the group delay is a whole number of output
//! samples, which [`Resampler::delay_samples`] reports for aligning streams.

use super::CodecError;

/// Stop-band attenuation the filter is designed for, in dB.
const STOPBAND_DB: f64 = 65.0;
/// Largest interpolation or decimation factor accepted: larger ones (e.g. 44.1k↔8k at
/// 80/441) would need tables far beyond what telephony rates require.
const MAX_FACTOR: u32 = 12;

/// Converts a mono i16 stream from one rate to another, chunk by chunk, keeping the filter
/// state between calls so chunk boundaries are inaudible.
#[derive(Debug, Clone)]
pub struct Resampler {
    from_rate: u32,
    to_rate: u32,
    /// Interpolation factor.
    up: usize,
    /// Decimation factor.
    down: usize,
    /// Taps per polyphase branch (some may be zero, see `spans`).
    taps: usize,
    /// `up` branches of `taps` coefficients each, stored time-reversed so each output is a
    /// dot product with a contiguous slice of the history.
    branches: Vec<f32>,
    /// Input history: the last `taps - 1` samples before `next_input`, then unread input.
    history: Vec<f32>,
    /// Index into `history` of the newest input sample the next output depends on.
    next_input: usize,
    /// Polyphase branch of the next output.
    next_phase: usize,
    delay: usize,
    /// For each branch: (input samples to advance, branch of the following output).
    steps: Vec<(usize, usize)>,
    /// For each branch: (offset, length) of the taps holding all its non-zero
    /// coefficients; the rest is skipped.
    spans: Vec<(usize, usize)>,
    /// Pure interpolation (`down` = 1, [`MIN_KERNEL_UP`] ≤ `up` ≤ [`LANES`]): the branches
    /// transposed, tap by tap, `LANES` coefficients per tap (branch `p` in lane `p`, unused
    /// lanes zero), so the `up` outputs of one input position come out of one pass over its
    /// window (see [`interpolate`]). Empty otherwise.
    by_tap: Vec<[f32; LANES]>,
}

/// Lanes of the interpolation kernel: covers every upsampling factor between telephony
/// rates (8 → 48 kHz is 6).
const LANES: usize = 8;
/// Smallest factor for which the kernel pays: it always computes all `LANES` lanes over
/// every tap, while the per-branch path skips the one branch of a Nyquist filter that is a
/// pure delay. Counted with callgrind (`examples/bench_call_path.rs`): 8 → 48 kHz is
/// cheaper through the kernel, 8 → 16 kHz was 4 % dearer for the whole call path.
const MIN_KERNEL_UP: usize = 5;

impl Resampler {
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Self, CodecError> {
        let unsupported = CodecError::UnsupportedRates {
            from: from_rate,
            to: to_rate,
        };
        if from_rate == 0 || to_rate == 0 {
            return Err(unsupported);
        }
        let g = gcd(from_rate, to_rate);
        let (up, down) = (to_rate / g, from_rate / g);
        if up > MAX_FACTOR || down > MAX_FACTOR {
            return Err(unsupported);
        }
        let (up, down) = (up as usize, down as usize);
        if up == 1 && down == 1 {
            return Ok(Self {
                from_rate,
                to_rate,
                up,
                down,
                taps: 1,
                branches: vec![1.0],
                history: Vec::new(),
                next_input: 0,
                next_phase: 0,
                delay: 0,
                steps: vec![(1, 0)],
                spans: vec![(0, 1)],
                by_tap: Vec::new(),
            });
        }

        // The prototype filter runs at the common rate up·from = down·to.
        let common = f64::from(from_rate) * up as f64;
        let low = f64::from(from_rate.min(to_rate));
        let transition = low / 8.0;
        // Decimating, the band edge sits below the output's Nyquist frequency so that what
        // would alias is already in the stop band. Interpolating, it sits exactly at the
        // input's Nyquist frequency: that makes the prototype a Nyquist filter (every up-th
        // tap from the centre is zero), so one branch is a pure delay and costs one tap,
        // while images of content that close to Nyquist only exist for input that has it.
        let cutoff = if up > 1 {
            low / 2.0
        } else {
            low / 2.0 - transition / 4.0
        };
        let delta_omega = 2.0 * std::f64::consts::PI * transition / common;
        let min_len = ((STOPBAND_DB - 8.0) / (2.285 * delta_omega)).ceil() as usize + 1;
        // Length 2·down·d + 1 makes the group delay exactly d output samples.
        let delay = (min_len - 1).div_ceil(2 * down);
        let len = 2 * down * delay + 1;
        let prototype = kaiser_sinc(len, cutoff / common, kaiser_beta(STOPBAND_DB), up);

        let taps = len.div_ceil(up);
        let mut branches = vec![0.0f32; up * taps];
        for phase in 0..up {
            for k in 0..taps {
                let coefficient = prototype.get(phase + k * up).copied().unwrap_or(0.0);
                // Exact zeros (not 1e-17 from sin(kπ)) let `spans` skip them.
                let coefficient = if coefficient.abs() < 1e-9 {
                    0.0
                } else {
                    coefficient
                };
                branches[phase * taps + (taps - 1 - k)] = coefficient as f32;
            }
        }
        let spans = (0..up)
            .map(|phase| nonzero_span(&branches[phase * taps..(phase + 1) * taps]))
            .collect();
        let by_tap = if down == 1 && (MIN_KERNEL_UP..=LANES).contains(&up) {
            (0..taps)
                .map(|k| {
                    let mut lanes = [0.0f32; LANES];
                    for (phase, lane) in lanes.iter_mut().enumerate().take(up) {
                        *lane = branches[phase * taps + k];
                    }
                    lanes
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut resampler = Self {
            from_rate,
            to_rate,
            up,
            down,
            taps,
            branches,
            history: Vec::new(),
            next_input: 0,
            next_phase: 0,
            delay,
            spans,
            by_tap,
            steps: (0..up)
                .map(|phase| ((phase + down) / up, (phase + down) % up))
                .collect(),
        };
        resampler.reset();
        Ok(resampler)
    }

    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// Group delay of the filter in output samples: output sample `n + delay` corresponds
    /// to input time `n` (in output-rate units).
    pub fn delay_samples(&self) -> usize {
        self.delay
    }

    /// Forgets all history, as if newly built (for a new stream or after a long gap).
    pub fn reset(&mut self) {
        self.history.clear();
        self.history.resize(self.taps - 1, 0.0);
        self.next_input = self.taps - 1;
        self.next_phase = 0;
    }

    /// Converts `input` and appends the output to `out`. Over a stream of n input samples
    /// (from the last reset) the total output is exactly ⌈n·to/from⌉ samples.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.up == 1 && self.down == 1 {
            out.extend_from_slice(input);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX, checked just above.
            unsafe { self.convert_avx(input, out) };
            return;
        }
        self.convert(input, out);
    }

    /// [`Self::convert`] compiled for AVX: the release target is baseline x86-64 (SSE2,
    /// four floats a register), so the eight lanes of `interpolate` and `dot` take two
    /// registers and two instructions per step there, one here. Same operations in the
    /// same order (no fused multiply-add), so the output is bit for bit the same.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    fn convert_avx(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.convert(input, out);
    }

    #[inline(always)]
    fn convert(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        let taps = self.taps;
        out.reserve(input.len() * self.up / self.down + 1);
        // Between calls the phase is always 0 (an input position's outputs are produced
        // together), so interpolation can take whole input positions.
        if !self.by_tap.is_empty() && self.next_phase == 0 {
            while self.next_input < self.history.len() {
                let start = self.next_input + 1 - taps;
                let lanes = interpolate(&self.history[start..start + taps], &self.by_tap);
                out.extend(lanes.iter().take(self.up).map(|&v| to_i16(v)));
                self.next_input += 1;
            }
        }
        while self.next_input < self.history.len() {
            let start = self.next_input + 1 - taps;
            let (from, len) = self.spans[self.next_phase];
            let window = &self.history[start + from..start + from + len];
            let at = self.next_phase * taps + from;
            out.push(to_i16(dot(window, &self.branches[at..at + len])));
            // A table instead of `/` and `%`: integer division per output sample costs as
            // much as a short dot product.
            let (advance, phase) = self.steps[self.next_phase];
            self.next_input += advance;
            self.next_phase = phase;
        }
        // Keep only the history the next output still needs.
        let consumed = (self.next_input + 1 - taps).min(self.history.len());
        self.history.drain(..consumed);
        self.next_input -= consumed;
    }
}

#[inline(always)]
fn to_i16(value: f32) -> i16 {
    // Rounds half away from zero like `f32::round`, which on the baseline x86-64 target
    // (no SSE4.1 `roundss`) is a library call per sample: 3 % of a transcoded call's
    // instructions. Adding ±0.5 and truncating is what the cast does anyway (`as`
    // truncates and saturates); it differs from `round` only for the one float just
    // below each .5, which becomes the next integer instead.
    let biased = if value >= 0.0 {
        value + 0.5
    } else {
        value - 0.5
    };
    biased as i16
}

/// The outputs of every branch for one input position: `window` is the history ending at
/// it, `by_tap` the coefficients per tap across branches. A broadcast multiply-add of one
/// input sample into all lanes per tap, which the compiler packs: for 8 → 48 kHz about a
/// fifth of the instructions of six separate dot products of 33 taps.
///
/// Two accumulators, even and odd taps: with one, every tap's add waits for the previous
/// one (a chain of 30-odd dependent adds per input position, which bounds the speed once a
/// register holds all eight lanes).
#[inline(always)]
fn interpolate(window: &[f32], by_tap: &[[f32; LANES]]) -> [f32; LANES] {
    let mut even = [0.0f32; LANES];
    let mut odd = [0.0f32; LANES];
    let (pairs, by_pair) = (window.chunks_exact(2), by_tap.chunks_exact(2));
    if let (Some(&x), Some(coefficients)) = (pairs.remainder().first(), by_pair.remainder().first())
    {
        for (acc, &c) in even.iter_mut().zip(coefficients) {
            *acc += c * x;
        }
    }
    for (x, coefficients) in pairs.zip(by_pair) {
        for ((e, o), (&c0, &c1)) in even
            .iter_mut()
            .zip(odd.iter_mut())
            .zip(coefficients[0].iter().zip(&coefficients[1]))
        {
            *e += c0 * x[0];
            *o += c1 * x[1];
        }
    }
    for (e, o) in even.iter_mut().zip(odd) {
        *e += o;
    }
    even
}

/// Dot product as eight independent lanes over fixed-size chunks so the compiler emits
/// packed multiplies and adds, then the few left over.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((acc, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// (offset, length) of the run of `branch` holding all its non-zero coefficients.
fn nonzero_span(branch: &[f32]) -> (usize, usize) {
    let first = branch.iter().position(|&c| c != 0.0).unwrap_or(0);
    let last = branch.iter().rposition(|&c| c != 0.0).unwrap_or(0);
    (first, last + 1 - first.min(last))
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Kaiser's β for a stop-band attenuation in dB.
fn kaiser_beta(attenuation_db: f64) -> f64 {
    if attenuation_db > 50.0 {
        0.1102 * (attenuation_db - 8.7)
    } else {
        0.5842 * (attenuation_db - 21.0).powf(0.4) + 0.07886 * (attenuation_db - 21.0)
    }
}

/// Low-pass windowed sinc of `len` taps with cutoff `cutoff` (fraction of the sampling
/// rate), scaled to a DC gain of `gain` (the interpolation factor, which zero-stuffing
/// divides out).
fn kaiser_sinc(len: usize, cutoff: f64, beta: f64, gain: usize) -> Vec<f64> {
    let centre = (len - 1) as f64 / 2.0;
    let i0_beta = bessel_i0(beta);
    let mut h: Vec<f64> = (0..len)
        .map(|n| {
            let t = n as f64 - centre;
            let sinc = if t == 0.0 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * t).sin() / (std::f64::consts::PI * t)
            };
            let ratio = if centre > 0.0 { t / centre } else { 0.0 };
            let window = bessel_i0(beta * (1.0 - ratio * ratio).max(0.0).sqrt()) / i0_beta;
            sinc * window
        })
        .collect();
    let sum: f64 = h.iter().sum();
    let scale = gain as f64 / sum;
    for c in &mut h {
        *c *= scale;
    }
    h
}

/// Modified Bessel function of the first kind, order 0, by its power series (converges
/// fast for the β values used here).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [u32; 3] = [8000, 16000, 48000];

    fn tone(freq: f64, rate: u32, samples: usize, amplitude: f64) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    /// Feeds `input` in 20 ms chunks, as the media path does.
    fn run_chunked(r: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let chunk = (r.from_rate() / 50) as usize;
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            r.process(piece, &mut out);
        }
        out
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Amplitude of the component at `freq` (Goertzel-style projection), robust against
    /// the other components the test does not care about.
    fn amplitude_at(x: &[i16], freq: f64, rate: u32) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (n, &s) in x.iter().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate);
            re += f64::from(s) * phase.cos();
            im += f64::from(s) * phase.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    #[test]
    fn sample_counts_are_exact_over_a_long_stream() {
        for &from in &RATES {
            for &to in &RATES {
                let mut r = Resampler::new(from, to).unwrap();
                // 10 s in uneven chunks (7 ms, 13 ms, ...) to exercise the phase bookkeeping.
                let total = from as usize * 10;
                let input = vec![100i16; total];
                let mut out = Vec::new();
                let mut fed = 0;
                let mut step = 1;
                while fed < total {
                    let n = (step * 37 % 300 + 1).min(total - fed);
                    r.process(&input[fed..fed + n], &mut out);
                    fed += n;
                    step += 1;
                    let expected = (fed as u64 * u64::from(to)).div_ceil(u64::from(from));
                    assert_eq!(out.len() as u64, expected, "{from}->{to} after {fed}");
                }
            }
        }
    }

    #[test]
    fn passband_tone_keeps_its_amplitude_in_every_direction() {
        for &from in &RATES {
            for &to in &RATES {
                let mut r = Resampler::new(from, to).unwrap();
                let input = tone(1000.0, from, from as usize, 10000.0);
                let out = run_chunked(&mut r, &input);
                // Skip the start-up transient (filter delay and then some).
                let settled = &out[r.delay_samples() * 2 + 100..];
                let amp = amplitude_at(settled, 1000.0, to);
                let db = 20.0 * (amp / 10000.0).log10();
                eprintln!("{from}->{to}: 1 kHz {db:+.4} dB");
                assert!(db.abs() <= 0.5, "{from}->{to}: 1 kHz changed by {db:.3} dB");
                // And nothing else of note: the output is the tone, not tone + junk.
                let expected_rms = 10000.0 / 2f64.sqrt();
                assert!((rms(settled) / expected_rms - 1.0).abs() < 0.02);
            }
        }
    }

    #[test]
    fn decimation_removes_what_would_alias() {
        // 6 kHz cannot exist at 8 kHz; without filtering it folds down to 2 kHz.
        for (from, to, freq, alias) in [
            (48000, 8000, 6000.0, 2000.0),
            (16000, 8000, 6000.0, 2000.0),
            (48000, 16000, 10000.0, 6000.0),
        ] {
            let mut r = Resampler::new(from, to).unwrap();
            let input = tone(freq, from, from as usize, 10000.0);
            let out = run_chunked(&mut r, &input);
            let settled = &out[r.delay_samples() * 2 + 100..];
            let db = 20.0 * (rms(settled) / (10000.0 / 2f64.sqrt())).log10();
            eprintln!("{from}->{to}: {freq} Hz at {db:.1} dB");
            assert!(db <= -40.0, "{from}->{to}: {freq} Hz only {db:.1} dB down");
            let alias_amp = amplitude_at(settled, alias, to);
            assert!(
                alias_amp < 100.0,
                "{from}->{to}: alias at {alias} Hz = {alias_amp}"
            );
        }
    }

    #[test]
    fn interpolation_leaves_no_images() {
        // 8k→48k of a 3 kHz tone: zero-stuffing would put images at 5, 11, 13 kHz ...
        let mut r = Resampler::new(8000, 48000).unwrap();
        let input = tone(3000.0, 8000, 8000, 10000.0);
        let out = run_chunked(&mut r, &input);
        let settled = &out[r.delay_samples() * 2 + 100..];
        for image in [5000.0, 11000.0, 13000.0, 19000.0] {
            let amp = amplitude_at(settled, image, 48000);
            assert!(amp < 10.0, "image at {image} Hz: {amp}");
        }
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        // The whole signal at once and in 20 ms chunks must give identical samples: no
        // clicks or discontinuities at chunk edges.
        for &from in &RATES {
            for &to in &RATES {
                let input = tone(440.0, from, from as usize / 2, 12000.0);
                let mut whole = Resampler::new(from, to).unwrap();
                let mut all_at_once = Vec::new();
                whole.process(&input, &mut all_at_once);
                let mut chunked = Resampler::new(from, to).unwrap();
                assert_eq!(run_chunked(&mut chunked, &input), all_at_once);
            }
        }
    }

    #[test]
    fn interpolation_kernel_matches_the_branch_by_branch_path() {
        // The tap-by-tap kernel only sums in another order than one dot product per
        // output: the same samples up to float rounding at the last bit.
        for (from, to) in [(8000, 48000), (4000, 24000)] {
            let input = tone(1234.5, from, from as usize, 20000.0);
            let mut fast = Resampler::new(from, to).unwrap();
            assert!(!fast.by_tap.is_empty(), "{from}->{to} takes the kernel");
            let mut generic = Resampler::new(from, to).unwrap();
            generic.by_tap.clear();
            let (a, b) = (
                run_chunked(&mut fast, &input),
                run_chunked(&mut generic, &input),
            );
            assert_eq!(a.len(), b.len());
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs())
                .max();
            assert!(worst <= Some(1), "{from}->{to}: off by {worst:?}");
        }
    }

    /// What `process` picks on a machine with AVX and what it runs on one without are the
    /// same code compiled twice, without fused multiply-adds: the same samples, bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx_build_gives_the_same_samples_as_the_portable_one() {
        if !std::arch::is_x86_feature_detected!("avx") {
            eprintln!("no AVX on this CPU: only the portable build can run here");
            return;
        }
        for &from in &RATES {
            for &to in &RATES {
                let input = tone(1234.5, from, from as usize / 2, 20000.0);
                let mut avx = Resampler::new(from, to).unwrap();
                let mut portable = Resampler::new(from, to).unwrap();
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for piece in input.chunks((from / 50) as usize) {
                    // SAFETY: AVX is present (checked above).
                    unsafe { avx.convert_avx(piece, &mut a) };
                    portable.convert(piece, &mut b);
                }
                assert!(!a.is_empty(), "{from}->{to}");
                assert_eq!(a, b, "{from}->{to}");
            }
        }
    }

    #[test]
    fn delay_samples_is_the_real_delay() {
        // An impulse comes out with its peak exactly `delay_samples` later.
        for &from in &RATES {
            for &to in &RATES {
                let mut r = Resampler::new(from, to).unwrap();
                let ratio = (from / gcd(from, to)) as usize; // input samples per output step
                let mut input = vec![0i16; from as usize / 10];
                // Put the impulse on an input sample that lands exactly on an output sample.
                let at_input = 10 * ratio;
                input[at_input] = 20000;
                let mut out = Vec::new();
                r.process(&input, &mut out);
                let peak = out
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, s)| s.unsigned_abs())
                    .map(|(i, _)| i)
                    .unwrap();
                let at_output = at_input * to as usize / from as usize;
                assert_eq!(peak, at_output + r.delay_samples(), "{from}->{to}");
            }
        }
    }

    #[test]
    fn reset_restarts_the_stream() {
        let input = tone(700.0, 16000, 3200, 8000.0);
        let mut r = Resampler::new(16000, 8000).unwrap();
        let mut first = Vec::new();
        r.process(&input, &mut first);
        r.process(&[5000; 77], &mut Vec::new());
        r.reset();
        let mut second = Vec::new();
        r.process(&input, &mut second);
        assert_eq!(first, second);
    }

    #[test]
    fn full_scale_input_saturates_instead_of_wrapping() {
        let mut r = Resampler::new(8000, 48000).unwrap();
        let square: Vec<i16> = (0..1600)
            .map(|n| {
                if (n / 20) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        let mut out = Vec::new();
        r.process(&square, &mut out);
        // Gibbs overshoot must clip at the rails, never wrap to the opposite sign.
        for pair in out.windows(2) {
            let jump = (i32::from(pair[0]) - i32::from(pair[1])).abs();
            assert!(jump < 40000, "wrapped: {pair:?}");
        }
    }

    #[test]
    fn unsupported_rates_are_an_error() {
        assert!(Resampler::new(0, 8000).is_err());
        assert!(Resampler::new(44100, 8000).is_err());
        assert!(Resampler::new(8000, 8000).is_ok());
        assert!(Resampler::new(24000, 16000).is_ok());
    }
}

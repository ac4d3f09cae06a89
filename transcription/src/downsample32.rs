//! Downsampling from 32–48 kHz (MP3's 44.1 kHz, video's 48 kHz) to 16 kHz in two cheap FIR
//! stages instead of one long one.
//!
//! Why two stages: a direct 44.1 → 16 kHz filter that keeps 0–7 kHz and removes what would fold
//! back below 9 kHz needs a ≈ 2 kHz transition band at 44.1 kHz, ≈ 100 taps per output sample.
//! Going through 32 kHz splits the job:
//!
//! 1. A short polyphase FIR converts to 32 kHz. At 32 kHz, only what lands in 0–9 kHz has to be
//!    clean — everything from 9 to 16 kHz is removed by stage 2 — so this filter may pass
//!    anything up to `STAGE1_STOP_HZ` (23 kHz: what folds from above there lands below 9 kHz).
//!    A 7 → 23 kHz transition needs only ≈ 12 taps at 44.1 kHz.
//! 2. A half-band FIR halves 32 → 16 kHz. Every other tap of a half-band filter is zero and the
//!    centre tap is ½, so each output costs `PAIRS` multiplies of symmetric pairs, computed in
//!    register blocks across outputs (the same shape as [`crate::upsample2x`]).
//!
//! Response (checked by `tests/resample_quality.rs`): flat within ±0.05 dB up to 7 kHz, −6 dB at
//! 8 kHz (the half-band's midpoint), and everything from 9 kHz up, which would fold into the
//! 0–7 kHz speech band, at least 60 dB down. The filters are centred, so there is no delay to
//! trim: output sample `n` is time `n / 16000` s, and `n` inputs give exactly
//! `ceil(n · 16000 / rate)` outputs.

/// Stage 1 passes 0–7 kHz and must stop from here up (see the module notes).
const STAGE1_PASS_HZ: f64 = 7_000.0;
const STAGE1_STOP_HZ: f64 = 23_000.0;
/// Stage 1's target stopband attenuation (Kaiser design), in dB.
const STAGE1_ATTEN_DB: f64 = 70.0;
/// Symmetric tap pairs of the 32 → 16 kHz half-band filter (transition ≈ 7–9 kHz).
const PAIRS: usize = 16;
/// Kaiser β of the half-band filter (≈ 61 dB from 9 kHz up; flat within 0.01 dB to 7 kHz).
const HALF_BAND_BETA: f64 = 6.0;
/// The intermediate rate.
const MID_RATE: u32 = 32_000;
/// Phase tables larger than this (unusual rates whose ratio to 32 kHz does not reduce well)
/// are left to the generic resampler.
const MAX_PHASES: usize = 2_048;
/// Outputs computed together in stage 2 (two SSE vectors).
const BLOCK: usize = 8;
const BLOCK_WINDOW: usize = BLOCK + 2 * PAIRS - 1;

/// Filter tables shared by the channels of one stream.
#[derive(Debug, Clone)]
struct Design {
    /// `up / down` = 32000 / input rate, reduced.
    up: usize,
    down: usize,
    /// Taps of each stage-1 phase (a multiple of 4, so the dot product vectorises).
    taps: usize,
    /// Stage-1 coefficients in output order over one cycle of `cycle` outputs (after which
    /// phases repeat): row `i` (`taps` coefficients) is for the cycle's output `i`, centred
    /// `(i · down mod up) / up` of an input sample after the input it is centred on.
    rows: Vec<f32>,
    /// Input samples to advance after the cycle's output `i`.
    steps: Vec<usize>,
    /// Outputs per cycle: `up`, doubled when odd so a cycle holds whole (even, odd) pairs.
    cycle: usize,
    /// Half-band odd taps: `half[i]` weighs the 32 kHz samples `2i + 1` either side of centre.
    half: [f32; PAIRS],
}

/// One channel's two-stage downsampler to 16 kHz.
#[derive(Debug, Clone)]
pub struct Downsampler32 {
    design: std::sync::Arc<Design>,
    /// Input not yet fully used; `input[0]` is input sample `input_start` (negative indices are
    /// the silence before the stream).
    input: Vec<f32>,
    input_start: i64,
    /// Input samples pushed so far.
    input_total: i64,
    /// The next 32 kHz output is centred on (just after) input sample `base`, and is output
    /// `pos` of the stage-1 cycle (always even: outputs are made in pairs).
    base: i64,
    pos: usize,
    /// 32 kHz samples produced so far.
    mid_total: i64,
    /// 32 kHz samples split by parity: `even[k]` is sample `2(pair_start + k)`, `odd[k]` is
    /// sample `2(pair_start + k) + 1`.
    even: Vec<f32>,
    odd: Vec<f32>,
    pair_start: i64,
    /// The next 16 kHz output (= 32 kHz sample `2 · next_out`).
    next_out: i64,
}

impl Downsampler32 {
    /// `None` when `rate` is outside 32–48 kHz or its ratio to 32 kHz needs too many phases.
    pub fn new(rate: u32) -> Option<Self> {
        Design::new(rate).map(|d| Self::with_design(std::sync::Arc::new(d)))
    }

    /// One downsampler per channel, sharing the filter tables.
    pub fn for_channels(rate: u32, channels: usize) -> Option<Vec<Self>> {
        let design = std::sync::Arc::new(Design::new(rate)?);
        Some(
            (0..channels)
                .map(|_| Self::with_design(design.clone()))
                .collect(),
        )
    }

    fn with_design(design: std::sync::Arc<Design>) -> Self {
        let history = design.taps / 2 - 1;
        Self {
            input: vec![0.0; history],
            input_start: -(history as i64),
            input_total: 0,
            base: 0,
            pos: 0,
            mid_total: 0,
            // Silence before the stream: PAIRS pairs of history for the half-band filter.
            even: vec![0.0; PAIRS],
            odd: vec![0.0; PAIRS],
            pair_start: -(PAIRS as i64),
            next_out: 0,
            design,
        }
    }

    /// Append 16 kHz output for every sample whose filter look-ahead is available.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.input.extend_from_slice(input);
        self.input_total += input.len() as i64;
        self.run_stage1(i64::MAX, false);
        self.run_stage2(out, i64::MAX);
    }

    /// End of stream: the look-ahead past the last sample is silence; the output stops at
    /// exactly `ceil(inputs · 16000 / rate)` samples. Ready for a new stream afterwards.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        // Look-ahead of silence for the last output, for the partner of a last lone even output
        // (one more step, at most 2 inputs), and for the pair window (2 more).
        let d = self.design.clone();
        let pad = d.taps / 2 + 4;
        self.input.resize(self.input.len() + pad, 0.0);
        // 32 kHz outputs are due while their centre lies before the end of the input.
        let real_end = self.mid_total + self.due_before(self.input_total) as i64;
        self.run_stage1(self.input_total, true);
        self.even.resize(self.even.len() + PAIRS + 1, 0.0);
        self.odd.resize(self.odd.len() + PAIRS + 1, 0.0);
        // 16 kHz output j is 32 kHz sample 2j: due while 2j < real_end.
        self.run_stage2(out, (real_end + 1) / 2);
        *self = Self::with_design(d);
    }

    /// Stage-1 outputs from the next one on whose centre is before input sample `limit`.
    fn due_before(&self, limit: i64) -> usize {
        if self.base >= limit {
            return 0;
        }
        let d = &*self.design;
        let phase = (self.pos * d.down) % d.up;
        // Output k from now is centred on base + floor((phase + k·down) / up).
        let span = (limit - self.base) as u128 * d.up as u128 - phase as u128;
        span.div_ceil(d.down as u128) as usize
    }

    /// 32 kHz samples in (even, odd) pairs, appended to `even`/`odd`, while the input holds
    /// their look-ahead (`finishing`: the input is padded, make one pair more for a lone last
    /// output).
    fn run_stage1(&mut self, end: i64, finishing: bool) {
        match self.design.taps {
            12 => self.run_stage1_taps::<12, 14>(end, finishing),
            16 => self.run_stage1_taps::<16, 18>(end, finishing),
            // `Design::new` only makes 12 or 16 taps for 32–48 kHz.
            _ => {}
        }
    }

    /// Stage 1 with the tap count fixed at compile time: the dot product then unrolls into a
    /// few SIMD multiply-adds.
    /// `W = K + 2`: the inputs one (even, odd) pair reads, since consecutive outputs are at most
    /// 2 inputs apart (`down / up` ≤ 1.5 from 32 to 48 kHz).
    fn run_stage1_taps<const K: usize, const W: usize>(&mut self, end: i64, finishing: bool) {
        let d = self.design.clone();
        let behind = (K / 2 - 1) as i64;
        let ahead = (K / 2) as i64;
        let input_end = self.input_start + self.input.len() as i64;
        let limit = end.min(input_end - ahead);
        let due = self.due_before(limit);
        let pairs = if finishing { due.div_ceil(2) } else { due / 2 };
        if pairs == 0 {
            return;
        }
        let (rows, _) = d.rows.as_chunks::<K>();
        let mut from = (self.base - behind - self.input_start) as usize;
        let mut pos = self.pos;
        // Written in place (no push per sample): outputs go to slots made up front, and the
        // input is only read, so nothing inside the loop can move it.
        let (even_from, odd_from) = (self.even.len(), self.odd.len());
        self.even.resize(even_from + pairs, 0.0);
        self.odd.resize(odd_from + pairs, 0.0);
        // Plain slices, so their pointers and lengths stay in registers across the loop.
        let input: &[f32] = &self.input;
        let steps: &[usize] = &d.steps;
        let even = self.even.get_mut(even_from..).unwrap_or_default();
        let odd = self.odd.get_mut(odd_from..).unwrap_or_default();
        let mut made = 0;
        // The cycle's pairs in order, from the current one: pair `p` is the cycle's outputs
        // 2p and 2p + 1 (their coefficient rows and steps).
        let pairs_per_cycle = d.cycle / 2;
        let mut p = pos / 2;
        for (e, o) in even.iter_mut().zip(odd.iter_mut()) {
            let (Some(c0), Some(c1), Some(&s0), Some(&s1)) = (
                rows.get(2 * p),
                rows.get(2 * p + 1),
                steps.get(2 * p),
                steps.get(2 * p + 1),
            ) else {
                break;
            };
            p += 1;
            if p == pairs_per_cycle {
                p = 0;
            }
            // One bounds check for both outputs' windows; the second starts 1 or 2 later.
            let Some(w) = input.get(from..).and_then(|rest| rest.first_chunk::<W>()) else {
                break;
            };
            let x1 = if s0 == 1 {
                sub_window::<K, W, 1>(w)
            } else {
                sub_window::<K, W, 2>(w)
            };
            let (Some(x0), Some(x1)) = (sub_window::<K, W, 0>(w), x1) else {
                break;
            };
            (*e, *o) = dot2(x0, x1, c0, c1);
            from += s0 + s1;
            made += 1;
        }
        pos = (pos + 2 * made) % d.cycle;
        self.even.truncate(even_from + made);
        self.odd.truncate(odd_from + made);
        self.mid_total += 2 * made as i64;
        self.pos = pos;
        self.base = from as i64 + behind + self.input_start;
        // Keep only the inputs the next output looks back at.
        if from > 0 {
            let drop = from.min(self.input.len());
            self.input.drain(..drop);
            self.input_start += drop as i64;
        }
    }

    /// 16 kHz outputs while their look-ahead is in `odd` and their index is below `end`.
    fn run_stage2(&mut self, out: &mut Vec<f32>, end: i64) {
        let half = &self.design.half;
        // Output j is centred on even[o], o = j - pair_start, and reads odd[o - PAIRS .. o + PAIRS].
        let first = self.next_out - self.pair_start;
        let ready_by_odd = self.odd.len() as i64 - PAIRS as i64 + 1;
        let ready = ready_by_odd.min(self.even.len() as i64);
        let count = (ready - first).min(end - self.next_out);
        if count <= 0 {
            return;
        }
        let (first, count) = (first as usize, count as usize);
        let Some(span) = self.odd.get(first - PAIRS..first + count + PAIRS - 1) else {
            return;
        };
        let Some(centres) = self.even.get(first..first + count) else {
            return;
        };
        out.reserve(count);
        let mut done = stage2_blocks(span, centres, half, count, out);
        while done < count {
            let (Some(window), Some(&centre)) = (
                span.get(done..done + 2 * PAIRS)
                    .and_then(|w| <&[f32; 2 * PAIRS]>::try_from(w).ok()),
                centres.get(done),
            ) else {
                break;
            };
            let mut acc = 0f32;
            for (i, &c) in half.iter().enumerate() {
                acc += c * (window[PAIRS - 1 - i] + window[PAIRS + i]);
            }
            out.push(acc + 0.5 * centre);
            done += 1;
        }
        self.next_out += done as i64;
        // Keep PAIRS odd samples of history before the next output's centre.
        let drop = (self.next_out - self.pair_start - PAIRS as i64).max(0) as usize;
        let drop = drop.min(self.odd.len()).min(self.even.len());
        if drop > 0 {
            self.even.drain(..drop);
            self.odd.drain(..drop);
            self.pair_start += drop as i64;
        }
    }
}

/// Stage 2's whole blocks, on AVX2 when the CPU has it (see `crate::simd`); returns the
/// outputs done.
fn stage2_blocks(
    span: &[f32],
    centres: &[f32],
    half: &[f32; PAIRS],
    count: usize,
    out: &mut Vec<f32>,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2() {
        // SAFETY: the CPU has just been checked to support AVX2, all `stage2_blocks_avx2` needs.
        return unsafe { stage2_blocks_avx2(span, centres, half, count, out) };
    }
    stage2_blocks_generic(span, centres, half, count, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn stage2_blocks_avx2(
    span: &[f32],
    centres: &[f32],
    half: &[f32; PAIRS],
    count: usize,
    out: &mut Vec<f32>,
) -> usize {
    stage2_blocks_generic(span, centres, half, count, out)
}

/// Blocks of `BLOCK` outputs over a fixed-size window: the accumulators stay in registers and
/// the tap loop vectorises across the block without bounds checks.
#[inline(always)]
fn stage2_blocks_generic(
    span: &[f32],
    centres: &[f32],
    half: &[f32; PAIRS],
    count: usize,
    out: &mut Vec<f32>,
) -> usize {
    let mut done = 0;
    while done + BLOCK <= count {
        let (Some(window), Some(centre)) = (
            span.get(done..done + BLOCK_WINDOW)
                .and_then(|w| <&[f32; BLOCK_WINDOW]>::try_from(w).ok()),
            centres
                .get(done..done + BLOCK)
                .and_then(|c| <&[f32; BLOCK]>::try_from(c).ok()),
        ) else {
            break;
        };
        let mut acc = [0f32; BLOCK];
        for (i, &c) in half.iter().enumerate() {
            for (k, a) in acc.iter_mut().enumerate() {
                *a += c * (window[PAIRS - 1 + k - i] + window[PAIRS + k + i]);
            }
        }
        for (a, &x) in acc.iter_mut().zip(centre) {
            *a += 0.5 * x;
        }
        out.extend_from_slice(&acc);
        done += BLOCK;
    }
    done
}

/// `w[AT..AT + K]` as a fixed-size array. The sizes are constants (`AT + K <= W`, checked at
/// compile time), so the compiler drops the check and the `None` branch.
#[inline(always)]
fn sub_window<const K: usize, const W: usize, const AT: usize>(w: &[f32; W]) -> Option<&[f32; K]> {
    const { assert!(AT + K <= W) };
    w.get(AT..).and_then(|rest| rest.first_chunk::<K>())
}

/// Two dot products of `K` taps (a multiple of 4), each in four-lane partial sums reduced as
/// (l0 + l2) + (l1 + l3). The compiler does not turn the scalar form into packed SIMD (its
/// reduction order is fixed), so on x86-64 the lanes are SSE vectors explicitly, and the two
/// reductions share their shuffles.
#[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
#[inline]
fn dot2<const K: usize>(x0: &[f32; K], x1: &[f32; K], c0: &[f32; K], c1: &[f32; K]) -> (f32, f32) {
    use std::arch::x86_64::*;
    const { assert!(K.is_multiple_of(4) && K >= 4) };
    // SAFETY: SSE is enabled for the whole build (the `cfg` above; it is part of the x86-64
    // baseline), and every unaligned load reads `v[j..j + 4]` with `j + 4 <= K`, inside the
    // array (`K` is a multiple of 4, checked at compile time).
    unsafe {
        let lanes = |x: &[f32; K], c: &[f32; K]| {
            let (xp, cp) = (x.as_ptr(), c.as_ptr());
            let mut acc = _mm_mul_ps(_mm_loadu_ps(xp), _mm_loadu_ps(cp));
            let mut j = 4;
            while j < K {
                acc = _mm_add_ps(
                    acc,
                    _mm_mul_ps(_mm_loadu_ps(xp.add(j)), _mm_loadu_ps(cp.add(j))),
                );
                j += 4;
            }
            acc
        };
        let (a, b) = (lanes(x0, c0), lanes(x1, c1));
        // [a0 + a2, b0 + b2, a1 + a3, b1 + b3], then lanes 0 and 1 plus lanes 2 and 3.
        let halves = _mm_add_ps(_mm_unpacklo_ps(a, b), _mm_unpackhi_ps(a, b));
        let sums = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        let second = _mm_shuffle_ps::<0b01>(sums, sums);
        (_mm_cvtss_f32(sums), _mm_cvtss_f32(second))
    }
}

/// The same sums in the same order, in scalar code, for other targets.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
#[inline]
fn dot2<const K: usize>(x0: &[f32; K], x1: &[f32; K], c0: &[f32; K], c1: &[f32; K]) -> (f32, f32) {
    let one = |x: &[f32; K], c: &[f32; K]| {
        let mut acc: [f32; 4] = std::array::from_fn(|l| x[l] * c[l]);
        for j in 1..K / 4 {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += x[4 * j + l] * c[4 * j + l];
            }
        }
        (acc[0] + acc[2]) + (acc[1] + acc[3])
    };
    (one(x0, c0), one(x1, c1))
}

impl Design {
    fn new(rate: u32) -> Option<Self> {
        if !(MID_RATE..=48_000).contains(&rate) {
            return None;
        }
        let g = gcd(MID_RATE as usize, rate as usize);
        let (up, down) = (MID_RATE as usize / g, rate as usize / g);
        if up > MAX_PHASES {
            return None;
        }
        let fs = f64::from(rate);
        // Kaiser's estimate of the length for the attenuation and transition, rounded up to a
        // multiple of 4 lanes.
        let transition = (STAGE1_STOP_HZ - STAGE1_PASS_HZ) / fs;
        let estimate = (STAGE1_ATTEN_DB - 7.95) / (14.36 * transition);
        let taps = ((estimate.ceil() as usize).div_ceil(4) * 4).max(4);
        let beta = 0.1102 * (STAGE1_ATTEN_DB - 8.7);
        let cutoff = 0.5 * (STAGE1_PASS_HZ + STAGE1_STOP_HZ) / fs; // cycles per input sample
        let half_span = taps as f64 / 2.0;
        let cycle = if up.is_multiple_of(2) { up } else { 2 * up };
        let mut rows = vec![0f32; cycle * taps];
        let mut steps = vec![0usize; cycle];
        for (i, (row, step)) in rows
            .chunks_exact_mut(taps)
            .zip(steps.iter_mut())
            .enumerate()
        {
            let phase = (i * down) % up;
            *step = (phase + down) / up;
            let frac = phase as f64 / up as f64;
            // Tap j reads input `base - (taps/2 - 1) + j`, at distance `t` from the output time.
            let mut raw = vec![0f64; taps];
            for (j, r) in raw.iter_mut().enumerate() {
                let t = (j as f64 - (half_span - 1.0)) - frac;
                let ratio = t / half_span;
                let window = if ratio.abs() < 1.0 {
                    bessel_i0(beta * (1.0 - ratio * ratio).sqrt()) / bessel_i0(beta)
                } else {
                    0.0
                };
                *r = 2.0 * cutoff * sinc(2.0 * cutoff * t) * window;
            }
            // Every phase passes a constant unchanged, so no phase-dependent gain ripple.
            let sum: f64 = raw.iter().sum();
            for (o, r) in row.iter_mut().zip(raw) {
                *o = (r / sum) as f32;
            }
        }
        // Stage 1 reads each (even, odd) pair from one window of `taps + 2` inputs.
        if steps.iter().any(|&s| !(1..=2).contains(&s)) {
            return None;
        }
        Some(Self {
            up,
            down,
            taps,
            rows,
            steps,
            cycle,
            half: half_band(),
        })
    }
}

/// Windowed-sinc half-band design: odd taps h[k] = sinc(k/2)·w(k), scaled so they sum to ½ on
/// both sides together (with the centre tap ½, a constant passes unchanged).
fn half_band() -> [f32; PAIRS] {
    let half_span = (2 * PAIRS) as f64;
    let mut raw = [0f64; PAIRS];
    for (i, r) in raw.iter_mut().enumerate() {
        let k = (2 * i + 1) as f64;
        let ratio = k / half_span;
        let window =
            bessel_i0(HALF_BAND_BETA * (1.0 - ratio * ratio).sqrt()) / bessel_i0(HALF_BAND_BETA);
        *r = sinc(k / 2.0) * window;
    }
    let sum: f64 = raw.iter().sum::<f64>() * 2.0;
    let mut out = [0f32; PAIRS];
    for (o, r) in out.iter_mut().zip(raw) {
        *o = (0.5 * r / sum) as f32;
    }
    out
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Modified Bessel function of the first kind, order 0 (power series).
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

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: u32, input: &[f32], piece: usize) -> Vec<f32> {
        let mut d = Downsampler32::new(rate).expect("supported rate");
        let mut out = Vec::new();
        for p in input.chunks(piece) {
            d.push(p, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn output_length_is_exact_and_independent_of_piece_size() {
        for rate in [32_000u32, 44_100, 48_000] {
            for n in [0usize, 1, 2, 3, 5, 17, 441, 1000, 4410, 9999] {
                let input: Vec<f32> = (0..n)
                    .map(|i| ((i * 31 % 67) as f32 / 67.0) - 0.5)
                    .collect();
                let whole = run(rate, &input, n.max(1));
                let expected = (n as u64 * 16_000).div_ceil(u64::from(rate)) as usize;
                assert_eq!(whole.len(), expected, "{rate} Hz, {n} inputs");
                for piece in [1, 7, 100, 1153] {
                    assert_eq!(
                        run(rate, &input, piece),
                        whole,
                        "{rate} Hz, pieces of {piece}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_constant_passes_unchanged() {
        let out = run(44_100, &[0.25; 44_100], 1000);
        for s in &out[100..out.len() - 100] {
            assert!((s - 0.25).abs() < 1e-4, "{s}");
        }
    }

    #[test]
    fn other_rates_are_declined() {
        for rate in [8_000, 16_000, 22_050, 31_999, 96_000] {
            assert!(Downsampler32::new(rate).is_none(), "{rate}");
        }
    }
}

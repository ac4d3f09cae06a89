//! Float PCM (full scale ±1.0, what libopus renders) to 16-bit PCM: scaled by 32768,
//! rounded to nearest (ties to even), saturated at the 16-bit limits.
//!
//! libopus' own 16-bit decode (`opus_decode`) runs a soft clipper over every frame before
//! this conversion, ≈ 1 % of a transcoded call's CPU for a step that only matters on
//! samples beyond full scale. The Opus decoder asks for float and converts here instead:
//! the rare overshoot is saturated, as a fixed-point libopus build does.

/// Converts `src` into `dst` (same length).
pub fn to_pcm16(src: &[f32], dst: &mut [i16]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "float and 16-bit frames differ in length"
    );
    #[cfg(target_arch = "x86_64")]
    {
        // SSE2 is part of every x86-64 CPU.
        let whole = src.len() / 8 * 8;
        to_pcm16_sse2(&src[..whole], &mut dst[..whole]);
        to_pcm16_portable(&src[whole..], &mut dst[whole..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    to_pcm16_portable(src, dst);
}

fn to_pcm16_portable(src: &[f32], dst: &mut [i16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        // `as` saturates (and maps NaN to 0).
        *d = (s * 32768.0).round_ties_even() as i16;
    }
}

/// Eight samples at a time: `cvtps2dq` rounds to nearest-even (the default MXCSR mode) and
/// `packssdw` saturates to 16 bits. A tail of fewer than eight samples is left alone (the
/// caller passes whole chunks).
#[cfg(target_arch = "x86_64")]
fn to_pcm16_sse2(src: &[f32], dst: &mut [i16]) {
    use std::arch::x86_64::{
        _mm_cvtps_epi32, _mm_loadu_ps, _mm_mul_ps, _mm_packs_epi32, _mm_set1_ps, _mm_storeu_si128,
    };
    // SAFETY: SSE2 is part of every x86-64 CPU; these intrinsics need nothing else.
    let scale = unsafe { _mm_set1_ps(32768.0) };
    for (s, d) in src.chunks_exact(8).zip(dst.chunks_exact_mut(8)) {
        // SAFETY: SSE2 as above; `s` holds 8 floats and `d` 8 i16s (16 bytes), and the
        // loads and the store are the unaligned forms.
        unsafe {
            let low = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(s.as_ptr()), scale));
            let high = _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(s.as_ptr().add(4)), scale));
            _mm_storeu_si128(d.as_mut_ptr().cast(), _mm_packs_epi32(low, high));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_rounds_to_even_and_saturates() {
        let src = [
            0.0f32,
            0.5 / 32768.0,  // a tie: to 0
            1.5 / 32768.0,  // a tie: to 2
            -2.5 / 32768.0, // a tie: to -2
            0.25,
            -0.25,
            0.999_999,
            1.7,
            -1.0,
            -3.0,
            100.0 / 32768.0,
        ];
        let mut dst = [7i16; 11];
        to_pcm16(&src, &mut dst);
        assert_eq!(
            dst,
            [0, 0, 2, -2, 8192, -8192, 32767, 32767, -32768, -32768, 100]
        );
    }

    /// The SIMD body and the portable tail agree sample for sample on every length.
    #[test]
    fn every_length_converts_the_same_as_the_portable_path() {
        let src: Vec<f32> = (0..203)
            .map(|i| ((i as f32) * 0.731).sin() * 1.2 + (i as f32) * 1e-6)
            .collect();
        for len in 0..src.len() {
            let mut fast = vec![0i16; len];
            let mut portable = vec![0i16; len];
            to_pcm16(&src[..len], &mut fast);
            to_pcm16_portable(&src[..len], &mut portable);
            assert_eq!(fast, portable, "length {len}");
        }
    }
}

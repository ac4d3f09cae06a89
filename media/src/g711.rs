//! G.711 µ-law (PCMU) and A-law (PCMA) per ITU-T G.711, on 16-bit linear samples.
//!
//! Decoding is a 256-entry table built at compile time, since it runs for every received
//! sample of every call; encoding is a few integer operations (a 64 Ki table per law would
//! cost more cache than it saves). Every function is total: any `i16` encodes and any byte
//! decodes.

/// µ-law bias added before segment search so the segments are uniform in the log domain.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law can represent once biased without overflowing the top segment.
const ULAW_CLIP: i32 = 32635;

const fn ulaw_decode_calc(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i32;
    let biased = ((mantissa << 3) + ULAW_BIAS) << exponent;
    let magnitude = biased - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_calc(code: u8) -> i16 {
    // Even bits are inverted on the wire (G.711 §3) so idle lines carry transitions.
    let a = code ^ 0x55;
    let mantissa = ((a & 0x0f) as i32) << 4;
    let segment = (a >> 4) & 0x07;
    let magnitude = match segment {
        0 => mantissa + 8,
        s => (mantissa + 0x108) << (s - 1),
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Builds a decode table at compile time (const fns cannot take function pointers).
const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_calc(i as u8)
        } else {
            ulaw_decode_calc(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_TO_LINEAR: [i16; 256] = build_table(false);
static ALAW_TO_LINEAR: [i16; 256] = build_table(true);

/// Decodes one µ-law byte.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// Decodes one A-law byte.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

/// Encodes one sample as µ-law.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let s = i32::from(sample);
    let (sign, magnitude) = if s < 0 { (0x80u8, -s) } else { (0, s) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // biased is in 0x84..=0x7fff: its top set bit (7..=14) picks the segment.
    let exponent = (31 - biased.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = ((biased >> (exponent + 3)) & 0x0f) as u8;
    !(sign | ((exponent as u8) << 4) | mantissa)
}

/// Encodes one sample as A-law.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13 bits; negative values map to -x-1 so both halves are symmetric.
    let v = i32::from(sample) >> 3;
    let (mask, magnitude) = if v >= 0 { (0xd5u8, v) } else { (0x55, -v - 1) };
    let code = if magnitude >= 0x1000 {
        0x7f
    } else {
        // Segment 0 covers 0..32, then each segment doubles: segment = top bit index - 4.
        let segment = (31 - (magnitude | 0x1f).leading_zeros() as i32 - 4).clamp(0, 7);
        let shift = if segment < 2 { 1 } else { segment };
        ((segment as u8) << 4) | ((magnitude >> shift) & 0x0f) as u8
    };
    code ^ mask
}

/// Decodes a µ-law payload, appending to `out`.
pub fn decode_ulaw(payload: &[u8], out: &mut Vec<i16>) {
    decode_with(&ULAW_TO_LINEAR, payload, out);
}

/// Decodes an A-law payload, appending to `out`.
pub fn decode_alaw(payload: &[u8], out: &mut Vec<i16>) {
    decode_with(&ALAW_TO_LINEAR, payload, out);
}

/// Table lookup of every byte, eight at a time: every recorded G.711 packet goes through
/// here, and fixed-size blocks let the compiler unroll the loop (no capacity or bounds
/// check per sample; a `u8` index cannot leave a 256-entry table).
fn decode_with(table: &[i16; 256], payload: &[u8], out: &mut Vec<i16>) {
    const BLOCK: usize = 8;
    let start = out.len();
    out.resize(start + payload.len(), 0);
    let Some(dst) = out.get_mut(start..) else {
        return;
    };
    let mut src_blocks = payload.chunks_exact(BLOCK);
    let mut dst_blocks = dst.chunks_exact_mut(BLOCK);
    for (d, s) in (&mut dst_blocks).zip(&mut src_blocks) {
        for (d, &c) in d.iter_mut().zip(s) {
            *d = table[usize::from(c)];
        }
    }
    for (d, &c) in dst_blocks
        .into_remainder()
        .iter_mut()
        .zip(src_blocks.remainder())
    {
        *d = table[usize::from(c)];
    }
}

/// Encodes samples as µ-law, appending to `out`.
pub fn encode_ulaw(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| linear_to_ulaw(s)));
}

/// Encodes samples as A-law, appending to `out`.
pub fn encode_alaw(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| linear_to_alaw(s)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes() {
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(ulaw_to_linear(0xff), 0);
        // µ-law has a negative zero too; it decodes to 0 but 0 encodes as 0xFF.
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(linear_to_alaw(0), 0xd5);
        // A-law has no zero level: its smallest steps are ±8.
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(linear_to_alaw(-1), 0x55);
    }

    #[test]
    fn extreme_values() {
        // Largest magnitudes from the G.711 tables: µ-law 8031×4, A-law 4032×8.
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(linear_to_alaw(i16::MAX), 0xaa);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2a);
    }

    #[test]
    fn known_codes() {
        // µ-law levels in 14-bit units are y = (2m+33)·2^e − 33 (G.711 table 2), ×4 for 16 bits.
        for code in 0u8..=255 {
            let u = !code;
            let e = i32::from((u >> 4) & 7);
            let m = i32::from(u & 0x0f);
            let mag = (((2 * m + 33) << e) - 33) * 4;
            let want = if u & 0x80 != 0 { -mag } else { mag };
            assert_eq!(i32::from(ulaw_to_linear(code)), want, "µ-law {code:#04x}");
        }
        // A-law levels in 13-bit units: 2m+1 in segment 0, (2m+33)·2^(s−1) above (G.711 table 1).
        for code in 0u8..=255 {
            let a = code ^ 0x55;
            let s = i32::from((a >> 4) & 7);
            let m = i32::from(a & 0x0f);
            let mag13 = if s == 0 {
                2 * m + 1
            } else {
                (2 * m + 33) << (s - 1)
            };
            let want = if a & 0x80 != 0 { mag13 * 8 } else { -mag13 * 8 };
            assert_eq!(i32::from(alaw_to_linear(code)), want, "A-law {code:#04x}");
        }
    }

    #[test]
    fn every_code_reencodes_to_itself() {
        for code in 0u8..=255 {
            let ulaw_back = linear_to_ulaw(ulaw_to_linear(code));
            if code == 0x7f {
                assert_eq!(ulaw_back, 0xff, "negative zero folds to positive zero");
            } else {
                assert_eq!(ulaw_back, code, "µ-law {code:#04x}");
            }
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
        }
    }

    /// Width of the quantisation interval `code` stands for (G.711 segment step, 16-bit scale).
    fn ulaw_step(code: u8) -> i32 {
        8 << ((!code >> 4) & 7)
    }

    fn alaw_step(code: u8) -> i32 {
        let s = ((code ^ 0x55) >> 4) & 7;
        16 << s.saturating_sub(1)
    }

    #[test]
    fn round_trip_error_within_half_a_step() {
        type Law = (
            &'static str,
            &'static [i16; 256],
            fn(i16) -> u8,
            fn(u8) -> i32,
            i32,
        );
        let laws: [Law; 2] = [
            ("ulaw", &ULAW_TO_LINEAR, linear_to_ulaw, ulaw_step, 32124),
            ("alaw", &ALAW_TO_LINEAR, linear_to_alaw, alaw_step, 32256),
        ];
        for (name, table, enc, step, max) in laws {
            for x in i16::MIN..=i16::MAX {
                let code = enc(x);
                let y = i32::from(table[usize::from(code)]);
                let x = i32::from(x);
                if x.abs() > max {
                    assert_eq!(y.abs(), max, "{name} saturates at {x}");
                    continue;
                }
                let err = (y - x).abs();
                // Decoded levels sit mid-interval, so the error is at most half a step.
                let half = step(code) / 2;
                assert!(
                    err <= half,
                    "{name}: {x} → {code:#04x} → {y} (err {err} > {half})"
                );
            }
        }
    }

    #[test]
    fn decoding_is_monotonic_in_code_order() {
        // Within each sign, larger codes mean smaller magnitude for µ-law (inverted bits).
        let pos: Vec<i16> = (0x80u8..=0xff).map(ulaw_to_linear).collect();
        assert!(pos.windows(2).all(|w| w[0] > w[1]));
        let mut alaw: Vec<i16> = (0u8..=255).map(alaw_to_linear).collect();
        alaw.sort_unstable();
        alaw.dedup();
        assert_eq!(alaw.len(), 256, "A-law levels are all distinct");
    }

    #[test]
    fn slice_helpers_match_scalars() {
        let samples: Vec<i16> = (0..1000)
            .map(|i| ((i * 977) % 65536 - 32768) as i16)
            .collect();
        let mut u = Vec::new();
        encode_ulaw(&samples, &mut u);
        let mut a = Vec::new();
        encode_alaw(&samples, &mut a);
        let mut du = Vec::new();
        decode_ulaw(&u, &mut du);
        let mut da = Vec::new();
        decode_alaw(&a, &mut da);
        for i in 0..samples.len() {
            assert_eq!(u[i], linear_to_ulaw(samples[i]));
            assert_eq!(da[i], alaw_to_linear(a[i]));
            assert_eq!(du[i], ulaw_to_linear(u[i]));
        }
    }

    #[test]
    fn decoding_appends_any_length() {
        // Lengths around the 8-byte blocks, appended after what `out` already holds.
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        for len in 0..=20 {
            let payload = &bytes[100..100 + len];
            let (mut du, mut da) = (vec![7i16, -7], vec![7i16, -7]);
            decode_ulaw(payload, &mut du);
            decode_alaw(payload, &mut da);
            let want_u: Vec<i16> = [7, -7]
                .into_iter()
                .chain(payload.iter().map(|&c| ulaw_to_linear(c)))
                .collect();
            let want_a: Vec<i16> = [7, -7]
                .into_iter()
                .chain(payload.iter().map(|&c| alaw_to_linear(c)))
                .collect();
            assert_eq!(du, want_u, "µ-law, {len} bytes");
            assert_eq!(da, want_a, "A-law, {len} bytes");
        }
    }
}

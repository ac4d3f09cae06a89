//! G.722 at 64 kbit/s (ITU-T G.722, sub-band ADPCM), written from the algorithm description
//! in the Recommendation: a 24-tap QMF splits 16 kHz audio into a lower band coded with
//! 6-bit ADPCM and a higher band coded with 2-bit ADPCM, each at 8 kHz; one byte per
//! 8 kHz tick carries both (`ih << 6 | il`).
//!
//! Arithmetic follows the Recommendation's fixed-point blocks (names in comments: QUANTL,
//! INVQAL, LOGSCL, SCALEL, UPPOL1/2, UPZERO, FILTEP, FILTEZ …) so a stream interoperates
//! with other implementations sample for sample; PCM is 16-bit at both ends (the QMF takes
//! the extra two bits over the Recommendation's 14 in its scaling).
//!
//! The RTP clock of G.722 is 8000 (RFC 3551's historical error) while the audio is 16 kHz:
//! a 20 ms payload is 160 bytes and decodes to 320 samples.

use super::{AudioDecoder, AudioEncoder, CodecError};

const RATE: u32 = 16000;
/// PCM samples in 20 ms.
const FRAME: usize = 320;

/// QMF coefficients h(0)..h(23), scaled by 2¹³ (the Recommendation's Table).
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Lower-band quantiser decision levels Q6(1..30) (×8 to compare with |EL|·2¹⁵/DETL).
const Q6: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// Lower-band 6-bit reconstruction levels by quantiser interval MIL = 1..=30 (index 0
/// unused). The 6-bit code of interval MIL is 62 − MIL when positive; when negative it is
/// 63, 62 for MIL 1, 2 and 34 − MIL above. [`qm6`] turns a code back into a level.
const LEVEL6: [i32; 31] = [
    0, 136, 432, 728, 1040, 1360, 1688, 2032, 2400, 2776, 3168, 3576, 4008, 4464, 4944, 5456, 6000,
    6576, 7192, 7856, 8576, 9360, 10232, 11192, 12280, 13512, 14984, 16704, 19008, 21904, 24808,
];

/// The embedded 4-bit lower-band quantiser (ILR = IL >> 2) used for prediction, so the
/// predictor stays in step whatever bits a decoder drops: its levels are every fourth
/// decision level of the 6-bit quantiser.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// LOGSCL: log scale-factor multipliers by magnitude class RIL42 of the 4-bit code.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Higher band: 2-bit reconstruction levels by code, log-scale multipliers by code.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const WH: [i32; 4] = [798, -214, 798, -214];

/// SCALEL/SCALEH: 2048·2^(i/32), the mantissa of the inverse log of the scale factor.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

fn sat16(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}

/// The 6-bit lower-band reconstruction level of code `il` (codes 0–3 are unused by
/// encoders; the Recommendation decodes them as the smallest negative level).
fn qm6(il: u8) -> i32 {
    let il = i32::from(il & 0x3f);
    match il {
        63 => -LEVEL6[1],
        62 => -LEVEL6[2],
        32..=61 => LEVEL6[(62 - il) as usize],
        4..=31 => -LEVEL6[(34 - il) as usize],
        _ => -LEVEL6[1],
    }
}

/// The adaptive predictor and scale factor of one band (the Recommendation's Block 4 and
/// the band's LOGSCL/SCALEL), identical in encoder and decoder.
#[derive(Debug, Clone, Default)]
struct Band {
    /// Signal estimate S for the current sample (SL / SH).
    s: i32,
    /// Zero-section part of the estimate (SZL / SZH).
    sz: i32,
    /// Log scale factor (NBL / NBH) and scale factor (DETL / DETH).
    nb: i32,
    det: i32,
    /// Pole coefficients A1, A2.
    a: [i32; 3],
    /// Zero coefficients B1..B6.
    b: [i32; 7],
    /// Quantised differences D(n)..D(n−6).
    d: [i32; 7],
    /// Partially reconstructed signals P(n), P(n−1), P(n−2).
    p: [i32; 3],
    /// Reconstructed signals R(n), R(n−1), R(n−2).
    r: [i32; 3],
}

impl Band {
    fn new(det: i32) -> Self {
        Self {
            det,
            ..Self::default()
        }
    }

    /// SCALEL (shift 8) / SCALEH (shift 10): scale factor from the log scale factor.
    fn scale(&mut self, shift: i32) {
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let exponent = shift - (self.nb >> 11);
        let wd3 = if exponent < 0 {
            mantissa << -exponent
        } else {
            mantissa >> exponent
        };
        self.det = wd3 << 2;
    }

    /// LOGSCL / LOGSCH: leak the log scale factor and add the code's multiplier.
    fn adapt_scale(&mut self, multiplier: i32, ceiling: i32, shift: i32) {
        self.nb = (((self.nb * 32512) >> 15) + multiplier).clamp(0, ceiling);
        self.scale(shift);
    }

    /// Everything after inverse quantisation: RECONS, PARREC, UPPOL2, UPPOL1, UPZERO,
    /// DELAYA, FILTEP, FILTEZ, PREDIC. `d` is the quantised difference (DLT / DH).
    fn predict(&mut self, d: i32) {
        // RECONS, PARREC
        let r0 = sat16(self.s + d);
        let p0 = sat16(d + self.sz);
        let negative = |x: i32| x < 0;
        let (sg0, sg1, sg2) = (negative(p0), negative(self.p[1]), negative(self.p[2]));

        // UPPOL2
        let wd1 = sat16(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { sat16(-wd1) } else { wd1 } >> 7;
        let wd3 = if sg0 == sg2 { 128 } else { -128 };
        let ap2 = (wd2 + wd3 + ((self.a[2] * 32512) >> 15)).clamp(-12288, 12288);

        // UPPOL1
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let limit = 15360 - ap2;
        let ap1 = sat16(wd1 + ((self.a[1] * 32640) >> 15)).clamp(-limit, limit);

        // UPZERO
        let step = if d == 0 { 0 } else { 128 };
        for i in 1..7 {
            let wd2 = if negative(d) == negative(self.d[i]) {
                step
            } else {
                -step
            };
            self.b[i] = sat16(wd2 + ((self.b[i] * 32640) >> 15));
        }

        // DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
        }
        self.d[1] = d;
        self.a[1] = ap1;
        self.a[2] = ap2;
        self.p = [0, p0, self.p[1]];
        self.r = [0, r0, self.r[1]];

        // FILTEP
        let wd1 = (self.a[1] * sat16(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * sat16(self.r[2] + self.r[2])) >> 15;
        let sp = sat16(wd1 + wd2);

        // FILTEZ
        let mut sz = 0;
        for i in 1..7 {
            sz = sat16(sz + ((self.b[i] * sat16(self.d[i] + self.d[i])) >> 15));
        }
        self.sz = sz;

        // PREDIC
        self.s = sat16(sp + sz);
    }
}

/// The lower band's coder state (6-bit ADPCM, 4-bit embedded prediction loop).
#[derive(Debug, Clone)]
struct LowerBand(Band);

impl LowerBand {
    fn new() -> Self {
        Self(Band::new(32))
    }

    /// QUANTL: 6-bit code for the prediction error of `xl`.
    fn quantize(&self, xl: i32) -> u8 {
        let el = sat16(xl - self.0.s);
        // Magnitude in one's complement, as the Recommendation computes it.
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mil = (1..30)
            .find(|&i| wd < (Q6[i] * self.0.det) >> 12)
            .unwrap_or(30);
        if el < 0 {
            match mil {
                1 => 63,
                2 => 62,
                m => (34 - m) as u8,
            }
        } else {
            (62 - mil) as u8
        }
    }

    /// INVQAL, LOGSCL, SCALEL and the predictor update for a received code; returns the
    /// 6-bit reconstruction (the decoder's output before LIMIT).
    fn update(&mut self, il: u8) -> i32 {
        let il = il & 0x3f;
        let ril = usize::from(il >> 2);
        let output = sat16(self.0.s + ((self.0.det * qm6(il)) >> 15));
        let dlt = (self.0.det * QM4[ril]) >> 15;
        self.0.adapt_scale(WL[RL42[ril]], 18432, 8);
        self.0.predict(dlt);
        output
    }
}

/// The higher band's coder state (2-bit ADPCM).
#[derive(Debug, Clone)]
struct HigherBand(Band);

impl HigherBand {
    fn new() -> Self {
        Self(Band::new(8))
    }

    /// QUANTH: 2-bit code for the prediction error of `xh`.
    fn quantize(&self, xh: i32) -> u8 {
        let eh = sat16(xh - self.0.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let large = wd >= (564 * self.0.det) >> 12;
        match (eh < 0, large) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        }
    }

    /// INVQAH, LOGSCH, SCALEH and the predictor update; returns the reconstruction.
    fn update(&mut self, ih: u8) -> i32 {
        let ih = usize::from(ih & 3);
        let dh = (self.0.det * QM2[ih]) >> 15;
        let output = sat16(self.0.s + dh);
        self.0.adapt_scale(WH[ih], 22528, 10);
        self.0.predict(dh);
        output
    }
}

/// A G.722 64 kbit/s decoder: each payload byte gives two 16 kHz samples.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    lower: LowerBand,
    higher: HigherBand,
    /// Receive QMF history: XD(n−i) and XS(n−i), newest first.
    xd: [i32; 12],
    xs: [i32; 12],
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    pub fn new() -> Self {
        Self {
            lower: LowerBand::new(),
            higher: HigherBand::new(),
            xd: [0; 12],
            xs: [0; 12],
        }
    }

    fn decode_byte(&mut self, code: u8) -> [i16; 2] {
        // LIMIT: both band outputs are 15-bit.
        let rl = self.lower.update(code & 0x3f).clamp(-16384, 16383);
        let rh = self.higher.update(code >> 6).clamp(-16384, 16383);
        self.xd.copy_within(0..11, 1);
        self.xs.copy_within(0..11, 1);
        self.xd[0] = rl - rh;
        self.xs[0] = rl + rh;
        // Receive QMF: the even output sample comes from the even coefficients and the
        // difference signal, the odd one from the odd coefficients and the sum.
        let (mut even, mut odd) = (0i32, 0i32);
        for i in 0..12 {
            even += QMF[2 * i] * self.xd[i];
            odd += QMF[2 * i + 1] * self.xs[i];
        }
        [sat16(even >> 11) as i16, sat16(odd >> 11) as i16]
    }
}

impl AudioDecoder for G722Decoder {
    fn sample_rate(&self) -> u32 {
        RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        out.reserve(payload.len() * 2);
        for &code in payload {
            out.extend_from_slice(&self.decode_byte(code));
        }
        Ok(payload.len() * 2)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        // No PLC (G.722 Appendix III/IV is far larger than the codec): silence keeps the
        // timeline exact, and the ADPCM state simply continues from before the gap.
        out.resize(out.len() + samples, 0);
    }
}

/// A G.722 64 kbit/s encoder: 20 ms (320 samples at 16 kHz) → 160 bytes.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    lower: LowerBand,
    higher: HigherBand,
    /// Transmit QMF history, newest first: x(j), x(j−1) … x(j−23).
    x: [i32; 24],
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    pub fn new() -> Self {
        Self {
            lower: LowerBand::new(),
            higher: HigherBand::new(),
            x: [0; 24],
        }
    }

    /// Encodes two consecutive samples (older first) into one byte.
    fn encode_pair(&mut self, older: i16, newer: i16) -> u8 {
        self.x.copy_within(0..22, 2);
        self.x[1] = i32::from(older);
        self.x[0] = i32::from(newer);
        // Transmit QMF: XA from even coefficients on even-delayed samples, XB from odd.
        let (mut xa, mut xb) = (0i32, 0i32);
        for i in 0..12 {
            xa += QMF[2 * i] * self.x[2 * i];
            xb += QMF[2 * i + 1] * self.x[2 * i + 1];
        }
        let xl = sat16((xa + xb) >> 14);
        let xh = sat16((xa - xb) >> 14);
        let il = self.lower.quantize(xl);
        let ih = self.higher.quantize(xh);
        self.lower.update(il);
        self.higher.update(ih);
        (ih << 6) | il
    }
}

impl AudioEncoder for G722Encoder {
    fn sample_rate(&self) -> u32 {
        RATE
    }

    fn frame_samples(&self) -> usize {
        FRAME
    }

    fn encode(&mut self, frame: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if frame.len() != FRAME {
            return Err(CodecError::FrameSize {
                expected: FRAME,
                got: frame.len(),
            });
        }
        out.clear();
        out.extend(
            frame
                .chunks_exact(2)
                .map(|pair| self.encode_pair(pair[0], pair[1])),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ilb_is_two_to_the_i_over_32() {
        for (i, &value) in ILB.iter().enumerate() {
            let exact = 2048.0 * 2f64.powf(i as f64 / 32.0);
            assert!((f64::from(value) - exact).abs() <= 0.6, "ILB[{i}]");
        }
    }

    #[test]
    fn code_tables_are_consistent() {
        // Every 4-bit level is a 6-bit decision level, and the 6-bit code of each interval
        // reconstructs inside that interval.
        for (ril, level) in QM4.iter().enumerate().skip(1) {
            let level = level.abs();
            assert!(
                level == 0 || Q6.iter().any(|&q| q * 8 == level),
                "QM4[{ril}]"
            );
        }
        for mil in 1..30usize {
            let (low, high) = (Q6[mil - 1] * 8, Q6[mil] * 8);
            assert!(low < LEVEL6[mil] && LEVEL6[mil] < high, "level {mil}");
        }
        // Positive and negative codes of the same interval mirror each other.
        for il in 4u8..32 {
            assert_eq!(qm6(il), -qm6(il + 28), "code {il}");
        }
    }

    #[test]
    fn frame_is_160_bytes_and_decodes_to_320_samples() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let pcm: Vec<i16> = (0..FRAME)
            .map(|n| (6000.0 * (n as f64 * 0.2).sin()) as i16)
            .collect();
        let mut payload = Vec::new();
        enc.encode(&pcm, &mut payload).unwrap();
        assert_eq!(payload.len(), 160);
        let mut out = Vec::new();
        assert_eq!(dec.decode(&payload, &mut out), Ok(320));
        assert_eq!(out.len(), 320);
        assert!(enc.encode(&pcm[..100], &mut payload).is_err());
    }
}

//! G.711 (µ-law and A-law) expansion by table lookup, straight from a packet's interleaved
//! bytes into planar f32 buffers.
//!
//! Why not symphonia's PCM decoder for these two codecs: it expands each byte with a branchy
//! function into an i16 audio buffer, which is then converted and copied out again. For an 8 kHz
//! telephony recording that per-sample path cost more than the 2× upsampling that follows. One
//! byte indexes a 256-entry table of the final f32 values here, and there is no intermediate
//! buffer. The values are the same as symphonia's (i16 G.711 expansion divided by 32768).

use std::sync::LazyLock;

/// The two companding laws of G.711.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711Law {
    MuLaw,
    ALaw,
}

static MULAW_TABLE: LazyLock<[f32; 256]> = LazyLock::new(|| table(mulaw_to_i16));
static ALAW_TABLE: LazyLock<[f32; 256]> = LazyLock::new(|| table(alaw_to_i16));

fn table(expand: fn(u8) -> i16) -> [f32; 256] {
    let mut out = [0f32; 256];
    for (byte, value) in (0..=u8::MAX).zip(out.iter_mut()) {
        *value = f32::from(expand(byte)) / 32768.0;
    }
    out
}

/// µ-law: the byte is stored inverted; 3 exponent bits pick a segment whose step doubles each
/// time, 4 mantissa bits the step within it. The bias of 0x84 (132) makes the segments join up.
fn mulaw_to_i16(byte: u8) -> i16 {
    let code = !byte;
    let exponent = (code >> 4) & 0x07;
    let mantissa = i32::from(code & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let value = if code & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    };
    // |value| ≤ 32124: always fits.
    i16::try_from(value).unwrap_or(0)
}

/// A-law: even bits are stored inverted (XOR 0x55); segment 0 is linear, later segments double
/// their step; a set sign bit means positive.
fn alaw_to_i16(byte: u8) -> i16 {
    let code = byte ^ 0x55;
    let segment = (code >> 4) & 0x07;
    let mantissa = i32::from(code & 0x0F) << 4;
    let magnitude = match segment {
        0 => mantissa + 0x08,
        1 => mantissa + 0x108,
        s => (mantissa + 0x108) << (s - 1),
    };
    let value = if code & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    };
    // |value| ≤ 32256: always fits.
    i16::try_from(value).unwrap_or(0)
}

/// Expand one packet of interleaved G.711 bytes (`channels` bytes per frame) into `out`, one
/// plane per channel, replacing its contents. A trailing partial frame is dropped (as the
/// container's frame size says it cannot be audio). Returns the number of frames.
pub fn expand_interleaved(
    law: G711Law,
    data: &[u8],
    channels: usize,
    out: &mut Vec<Vec<f32>>,
) -> usize {
    if channels == 0 {
        return 0;
    }
    let table: &[f32; 256] = match law {
        G711Law::MuLaw => &MULAW_TABLE,
        G711Law::ALaw => &ALAW_TABLE,
    };
    let frames = data.len() / channels;
    let data = data.get(..frames * channels).unwrap_or(&[]);
    out.truncate(channels);
    out.resize_with(channels, Vec::new);
    if let [plane] = out.as_mut_slice() {
        plane.clear();
        plane.extend(data.iter().map(|&b| table[usize::from(b)]));
    } else if let [left, right] = out.as_mut_slice() {
        // Stereo, the common call-recording layout: one pass over the bytes for both planes.
        // Sized first and filled in place: no capacity check per sample.
        left.clear();
        right.clear();
        left.resize(frames, 0.0);
        right.resize(frames, 0.0);
        for ((l, r), pair) in left
            .iter_mut()
            .zip(right.iter_mut())
            .zip(data.chunks_exact(2))
        {
            if let [a, b] = pair {
                *l = table[usize::from(*a)];
                *r = table[usize::from(*b)];
            }
        }
    } else {
        for (ch, plane) in out.iter_mut().enumerate() {
            plane.clear();
            plane.extend(
                data.iter()
                    .skip(ch)
                    .step_by(channels)
                    .map(|&b| table[usize::from(b)]),
            );
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_points_of_both_laws() {
        // Values from the G.711 definition: code 0xFF/0x7F is µ-law zero, 0x80 and 0x00 its
        // extremes; A-law's smallest steps are ±8 and its extremes ±32256.
        assert_eq!(mulaw_to_i16(0xFF), 0);
        assert_eq!(mulaw_to_i16(0x7F), 0);
        assert_eq!(mulaw_to_i16(0x80), 32124);
        assert_eq!(mulaw_to_i16(0x00), -32124);
        assert_eq!(alaw_to_i16(0xD5), 8);
        assert_eq!(alaw_to_i16(0x55), -8);
        assert_eq!(alaw_to_i16(0xAA), 32256);
        assert_eq!(alaw_to_i16(0x2A), -32256);
    }

    #[test]
    fn expansion_is_monotonic_within_each_sign() {
        // µ-law positive codes run 0xFF (0) down to 0x80 (max): strictly increasing magnitude.
        let positive: Vec<i16> = (0x80..=0xFFu8).rev().map(mulaw_to_i16).collect();
        assert!(positive.windows(2).all(|w| w[0] < w[1]), "{positive:?}");
    }

    #[test]
    fn interleaved_bytes_split_into_planes() {
        let mut out = vec![vec![9.0; 3]; 5];
        // Three stereo frames and one stray byte (dropped).
        let frames = expand_interleaved(
            G711Law::MuLaw,
            &[0xFF, 0x80, 0x00, 0xFF, 0x80, 0x00, 7],
            2,
            &mut out,
        );
        assert_eq!(frames, 3);
        assert_eq!(out.len(), 2);
        let max = 32124.0 / 32768.0;
        assert_eq!(out[0], [0.0, -max, max]);
        assert_eq!(out[1], [max, 0.0, -max]);
        let frames = expand_interleaved(G711Law::ALaw, &[0xD5, 0x55, 0xAA], 3, &mut out);
        assert_eq!(frames, 1);
        assert_eq!(
            out,
            [
                vec![8.0 / 32768.0],
                vec![-8.0 / 32768.0],
                vec![32256.0 / 32768.0]
            ]
        );
        assert_eq!(expand_interleaved(G711Law::ALaw, &[1, 2], 0, &mut out), 0);
    }
}

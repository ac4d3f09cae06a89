//! G.711 behind the codec traits: stateless, 8 kHz, one byte per sample.

use super::{AudioDecoder, AudioEncoder, CodecError};
use crate::g711;

const RATE: u32 = 8000;
const FRAME: usize = 160;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711Law {
    Ulaw,
    Alaw,
}

pub struct G711Decoder {
    law: G711Law,
}

impl G711Decoder {
    pub fn new(law: G711Law) -> Self {
        Self { law }
    }
}

impl AudioDecoder for G711Decoder {
    fn sample_rate(&self) -> u32 {
        RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        match self.law {
            G711Law::Ulaw => g711::decode_ulaw(payload, out),
            G711Law::Alaw => g711::decode_alaw(payload, out),
        }
        Ok(payload.len())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        // G.711 has no PLC of its own; silence keeps the timeline exact.
        out.resize(out.len() + samples, 0);
    }
}

pub struct G711Encoder {
    law: G711Law,
}

impl G711Encoder {
    pub fn new(law: G711Law) -> Self {
        Self { law }
    }
}

impl AudioEncoder for G711Encoder {
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
        match self.law {
            G711Law::Ulaw => g711::encode_ulaw(frame, out),
            G711Law::Alaw => g711::encode_alaw(frame, out),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_length_and_shape() {
        let pcm: Vec<i16> = (0..FRAME as i32)
            .map(|i| ((i * 400) % 16000 - 8000) as i16)
            .collect();
        for law in [G711Law::Ulaw, G711Law::Alaw] {
            let mut enc = G711Encoder::new(law);
            let mut dec = G711Decoder::new(law);
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).unwrap();
            assert_eq!(payload.len(), FRAME);
            let mut back = Vec::new();
            assert_eq!(dec.decode(&payload, &mut back).unwrap(), FRAME);
            for (a, b) in pcm.iter().zip(&back) {
                // G.711's worst quantisation step near 8000 is 256.
                assert!((i32::from(*a) - i32::from(*b)).abs() <= 256, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn wrong_frame_size_is_an_error() {
        let mut enc = G711Encoder::new(G711Law::Ulaw);
        let err = enc.encode(&[0; 10], &mut Vec::new()).unwrap_err();
        assert_eq!(
            err,
            CodecError::FrameSize {
                expected: FRAME,
                got: 10
            }
        );
    }

    #[test]
    fn conceal_appends_silence() {
        let mut dec = G711Decoder::new(G711Law::Alaw);
        let mut out = vec![5];
        dec.conceal(160, &mut out);
        assert_eq!(out.len(), 161);
        assert!(out[1..].iter().all(|&s| s == 0));
    }
}

//! Streaming sample-rate conversion for the engine's PCM paths (recording at the higher of
//! two legs' rates, taps at 16 kHz, transcoding between codec rates).
//!
//! The polyphase FIR `codec::Resampler` does the work for every pair of telephony rates;
//! a rate pair it refuses (a factor above 12, e.g. 44.1 kHz from a buggy peer) falls back to
//! linear interpolation rather than losing the audio. State is carried across packets, so
//! consecutive packets join without clicks and the output count tracks the input exactly.

use crate::codec::Resampler;

#[derive(Debug, Clone)]
enum Kind {
    Identity,
    Fir(Box<Resampler>),
    Linear {
        /// Last input sample of the previous call (the interpolation's left neighbour).
        prev: i16,
        /// Position of the next output sample after `prev`, in 1/`to` input samples.
        phase: u64,
    },
}

#[derive(Debug, Clone)]
pub struct StreamResampler {
    from: u32,
    to: u32,
    kind: Kind,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Self {
        let (from, to) = (from.max(1), to.max(1));
        let kind = if from == to {
            Kind::Identity
        } else {
            match Resampler::new(from, to) {
                Ok(r) => Kind::Fir(Box::new(r)),
                Err(_) => Kind::Linear { prev: 0, phase: 0 },
            }
        };
        StreamResampler { from, to, kind }
    }

    pub fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    pub fn is_identity(&self) -> bool {
        matches!(self.kind, Kind::Identity)
    }

    /// Appends the converted samples of `input` to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match &mut self.kind {
            Kind::Identity => out.extend_from_slice(input),
            Kind::Fir(r) => r.process(input, out),
            Kind::Linear { prev, phase } => {
                linear(self.from, self.to, prev, phase, input, out);
            }
        }
    }
}

fn linear(from: u32, to: u32, prev: &mut i16, phase: &mut u64, input: &[i16], out: &mut Vec<i16>) {
    if input.is_empty() {
        return;
    }
    let to = u64::from(to);
    let from = u64::from(from);
    let n = input.len() as u64;
    out.reserve((n * to / from) as usize + 1);
    let left_neighbour = *prev;
    // Index 0 is the previous call's last sample, index k ≥ 1 is input[k-1].
    let at = |k: u64| -> i64 {
        if k == 0 {
            i64::from(left_neighbour)
        } else {
            input.get((k - 1) as usize).copied().map_or(0, i64::from)
        }
    };
    let mut t = *phase;
    while t / to < n {
        let k = t / to;
        let frac = (t % to) as i64;
        let (l, r) = (at(k), at(k + 1));
        let y = l + (r - l) * frac / to as i64;
        out.push(y.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16);
        t += from;
    }
    *phase = t - n * to;
    *prev = input.last().copied().unwrap_or(left_neighbour);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_track_the_ratio_across_packets() {
        for (from, to, chunk) in [(8000, 16000, 160), (48000, 16000, 960), (44100, 8000, 882)] {
            let mut r = StreamResampler::new(from, to);
            let mut out = Vec::new();
            for _ in 0..50 {
                r.process(&vec![100; chunk], &mut out);
            }
            let want = (to / 50 * 50) as usize;
            assert!(out.len().abs_diff(want) <= 1, "{from}->{to}: {}", out.len());
        }
    }

    #[test]
    fn linear_fallback_interpolates_between_neighbours() {
        assert!(matches!(
            StreamResampler::new(44100, 8000).kind,
            Kind::Linear { .. }
        ));
        let (mut prev, mut phase) = (0, 0);
        let mut out = Vec::new();
        linear(8000, 16000, &mut prev, &mut phase, &[0, 100, 200], &mut out);
        assert_eq!(out, vec![0, 0, 0, 50, 100, 150]);
        linear(8000, 16000, &mut prev, &mut phase, &[300], &mut out);
        assert_eq!(out[6..], [200, 250]);
    }
}

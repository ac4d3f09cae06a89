//! Streaming sample-rate conversion for the engine's PCM paths (recording at the higher of
//! two legs' rates, taps at 16 kHz, transcoding between codec rates).
//!
//! Interim: linear interpolation with state carried across packets, so consecutive packets
//! join without clicks and the output count tracks the input exactly over time. Good enough
//! for 8 kHz → 16 kHz taps and G.711 ⇄ G.711; downsampling without a low-pass filter aliases,
//! so this is to be swapped for `codec::Resampler` (the codecs branch) behind the same
//! `process` call.

#[derive(Debug, Clone)]
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// Last input sample of the previous call (the interpolation's left neighbour).
    prev: i16,
    /// Position of the next output sample after `prev`, in 1/`to` input samples.
    phase: u64,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Self {
        StreamResampler {
            from: from.max(1),
            to: to.max(1),
            prev: 0,
            phase: 0,
        }
    }

    pub fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    pub fn is_identity(&self) -> bool {
        self.from == self.to
    }

    /// Appends the converted samples of `input` to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        if input.is_empty() {
            return;
        }
        let to = u64::from(self.to);
        let from = u64::from(self.from);
        let n = input.len() as u64;
        out.reserve((n * to / from) as usize + 1);
        // Index 0 is `prev`, index k ≥ 1 is input[k-1].
        let at = |k: u64| -> i32 {
            if k == 0 {
                i32::from(self.prev)
            } else {
                input.get((k - 1) as usize).copied().map_or(0, i32::from)
            }
        };
        let mut t = self.phase;
        while t / to < n {
            let k = t / to;
            let frac = (t % to) as i64;
            let left = i64::from(at(k));
            let right = i64::from(at(k + 1));
            let y = left + (right - left) * frac / to as i64;
            out.push(y.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16);
            t += from;
        }
        self.phase = t - n * to;
        self.prev = input.last().copied().unwrap_or(self.prev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_track_the_ratio_across_packets() {
        let mut up = StreamResampler::new(8000, 16000);
        let mut down = StreamResampler::new(48000, 16000);
        let mut out_up = Vec::new();
        let mut out_down = Vec::new();
        for _ in 0..50 {
            up.process(&[100; 160], &mut out_up);
            down.process(&[100; 960], &mut out_down);
        }
        assert_eq!(out_up.len(), 16000);
        assert_eq!(out_down.len(), 16000);
        // A constant signal stays constant (after the first interpolated sample).
        assert!(out_up[2..].iter().all(|&s| s == 100));
        assert!(out_down[1..].iter().all(|&s| s == 100));
    }

    #[test]
    fn upsampling_interpolates_between_neighbours() {
        let mut up = StreamResampler::new(8000, 16000);
        let mut out = Vec::new();
        up.process(&[0, 100, 200], &mut out);
        assert_eq!(out, vec![0, 0, 0, 50, 100, 150]);
    }
}

//! Decoding RTP packets as they arrive while keeping the decoder in stream order.
//!
//! A decoder with memory (Opus codes each frame's band energies against the frame before)
//! must be told where packets are missing, in order: decoding the packet after a gap as if
//! it followed the last one straight on mispredicts its energies, audibly louder than the
//! source. And a packet older than one it has decoded (reordered, duplicated) cannot go
//! through it without disturbing the frames after it. [`ArrivalDecoder`] sorts each
//! arrival into next, after a gap (the decoder conceals the gap first, or rebuilds it from
//! the packet's FEC) or stale (decoded apart, [`AudioDecoder::decode_apart`], so that it
//! can still take its place in a recording).

use super::{AudioDecoder, CodecError};

/// A gap longer than this many packets is a jump (a restart, a long pause): nothing to
/// conceal in order, the decoder just continues.
const MAX_GAP_PACKETS: u16 = 50;

/// Where a packet stands against the last one decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalOrder {
    /// The next in sequence, the first of a stream, or after a jump: decode it.
    Next,
    /// After `lost_ticks` of missing packets (RTP clock): conceal those, then decode it.
    AfterLoss { lost_ticks: u32 },
    /// Not newer than the last decoded packet: decode it apart from the stream.
    Stale,
}

/// The last packet handed to the decoder.
#[derive(Debug, Clone, Copy)]
struct Decoded {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
}

/// A decoder fed in arrival order, with losses and stale packets sorted out (module docs).
pub struct ArrivalDecoder {
    decoder: Box<dyn AudioDecoder>,
    /// RTP clock of the payload (48000 for Opus whatever its PCM rate).
    clock_rate: u32,
    last: Option<Decoded>,
}

impl ArrivalDecoder {
    pub fn new(decoder: Box<dyn AudioDecoder>, clock_rate: u32) -> Self {
        Self {
            decoder,
            clock_rate: clock_rate.max(1),
            last: None,
        }
    }

    /// The decoder itself, for concealment at playout ([`AudioDecoder::conceal_apart`]) and
    /// for codecs decoded at playout instead.
    pub fn codec(&mut self) -> &mut dyn AudioDecoder {
        self.decoder.as_mut()
    }

    pub fn sample_rate(&self) -> u32 {
        self.decoder.sample_rate()
    }

    /// Sorts a packet against the last one decoded, and takes it as the last when it is
    /// to be decoded.
    pub fn order(&mut self, ssrc: u32, seq: u16, timestamp: u32) -> ArrivalOrder {
        let this = Decoded {
            ssrc,
            seq,
            timestamp,
        };
        let Some(last) = self.last.filter(|l| l.ssrc == ssrc) else {
            self.last = Some(this);
            return ArrivalOrder::Next;
        };
        let step = seq.wrapping_sub(last.seq) as i16;
        if step <= 0 {
            return ArrivalOrder::Stale;
        }
        self.last = Some(this);
        let ticks = timestamp.wrapping_sub(last.timestamp) as i32;
        if step == 1 || step as u16 > MAX_GAP_PACKETS || ticks <= 0 {
            return ArrivalOrder::Next;
        }
        // Spread the timestamp advance evenly over the packets it covers.
        let per_packet = ticks as u32 / step as u32;
        ArrivalOrder::AfterLoss {
            lost_ticks: per_packet * (step as u32 - 1),
        }
    }

    /// Decodes one arrived packet, appending its PCM to `out`; returns the samples
    /// appended. A gap before it is concealed first, its output dropped: the caller's
    /// timeline places audio by timestamp.
    pub fn decode(
        &mut self,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        match self.order(ssrc, seq, timestamp) {
            ArrivalOrder::Stale => return self.decoder.decode_apart(payload, out),
            ArrivalOrder::AfterLoss { lost_ticks } => {
                let samples = u64::from(lost_ticks) * u64::from(self.decoder.sample_rate())
                    / u64::from(self.clock_rate);
                self.decoder
                    .skip_lost(usize::try_from(samples).unwrap_or(usize::MAX), payload);
            }
            ArrivalOrder::Next => {}
        }
        self.decoder.decode(payload, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{G711Decoder, G711Law};

    fn orders(packets: &[(u32, u16, u32)]) -> Vec<ArrivalOrder> {
        let mut d = ArrivalDecoder::new(Box::new(G711Decoder::new(G711Law::Ulaw)), 8000);
        packets
            .iter()
            .map(|&(ssrc, seq, ts)| d.order(ssrc, seq, ts))
            .collect()
    }

    #[test]
    fn packets_in_sequence_are_next_across_the_wrap() {
        let got = orders(&[(1, 65534, 0), (1, 65535, 160), (1, 0, 320), (1, 1, 480)]);
        assert_eq!(got, [ArrivalOrder::Next; 4]);
    }

    #[test]
    fn a_gap_is_the_lost_packets_time() {
        let got = orders(&[(1, 10, 1000), (1, 13, 1480), (1, 14, 1640)]);
        assert_eq!(
            got,
            [
                ArrivalOrder::Next,
                ArrivalOrder::AfterLoss { lost_ticks: 320 },
                ArrivalOrder::Next
            ]
        );
    }

    #[test]
    fn reordered_and_duplicated_packets_are_stale() {
        // 12 comes after 13: the decoder is past it. 13 again: a duplicate.
        let got = orders(&[(1, 11, 160), (1, 13, 480), (1, 12, 320), (1, 13, 480)]);
        assert_eq!(
            got,
            [
                ArrivalOrder::Next,
                ArrivalOrder::AfterLoss { lost_ticks: 160 },
                ArrivalOrder::Stale,
                ArrivalOrder::Stale
            ]
        );
    }

    #[test]
    fn jumps_new_sources_and_odd_timestamps_are_not_losses() {
        let got = orders(&[
            (1, 100, 0),
            (1, 400, 48_000), // a jump far beyond any burst loss
            (2, 7, 5),        // another source starts over
            (2, 9, 5),        // a gap whose timestamp did not advance
        ]);
        assert_eq!(got, [ArrivalOrder::Next; 4]);
    }
}

//! The one continuous RTP stream we send to a leg.
//!
//! Whatever feeds it (the other leg's packets when relaying, the transcoder's frames), the far
//! end sees one SSRC of ours with sequence numbers and timestamps that simply go on. Each
//! source run (an SSRC, or a sequence restart within one) is mapped by fixed offsets, so the
//! source's own reordering, gaps and timestamp steps come through unchanged; when the source
//! changes (transfer, re-INVITE, a new SSRC) new offsets continue our sequence at the next
//! number and our timestamp by the wall time that passed, and the marker bit flags the new
//! talkspurt. This is what a receiving phone's jitter buffer needs to not reset or mute.

/// Largest backward sequence step still taken as reordering (RFC 3550 A.1 MAX_MISORDER).
const MAX_MISORDER: i32 = 100;
/// Largest forward sequence step still taken as loss (RFC 3550 A.1 MAX_DROPOUT).
const MAX_DROPOUT: i32 = 3000;

#[derive(Debug, Clone, Copy)]
struct SourceRun {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    highest_seq: u16,
}

/// Header fields for one outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub sequence: u16,
    pub timestamp: u32,
    /// The source changed: set the marker bit (start of a talkspurt).
    pub new_run: bool,
}

#[derive(Debug, Clone)]
pub struct OutboundStream {
    ssrc: u32,
    clock_rate: u32,
    run: Option<SourceRun>,
    /// Our sequence number for the next packet that advances the stream.
    next_seq: u16,
    /// Timestamp of the newest packet sent, and when (ms since call start).
    last_ts: u32,
    last_sent_ms: u64,
    started: bool,
    pub packets: u64,
    pub octets: u64,
}

impl OutboundStream {
    /// `seed` supplies the random initial SSRC, sequence and timestamp (RFC 3550 §5.1).
    pub fn new(seed: u64, clock_rate: u32) -> Self {
        OutboundStream {
            ssrc: (seed >> 32) as u32 | 1,
            clock_rate: clock_rate.max(1),
            run: None,
            next_seq: (seed >> 16) as u16 & 0x7fff,
            last_ts: seed as u32 & 0x7fff_ffff,
            last_sent_ms: 0,
            started: false,
            packets: 0,
            octets: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The newest timestamp sent (for RTCP sender reports) and when it was sent.
    pub fn last_timestamp(&self) -> (u32, u64) {
        (self.last_ts, self.last_sent_ms)
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// A new codec (clock) on this leg: the next packet starts a new run.
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        let clock_rate = clock_rate.max(1);
        if clock_rate != self.clock_rate {
            self.clock_rate = clock_rate;
            self.run = None;
        }
    }

    /// Forces the next packet to start a new run (e.g. the relay/transcode mode changed).
    pub fn break_run(&mut self) {
        self.run = None;
    }

    /// Maps one source packet's header to ours.
    pub fn map(&mut self, ssrc: u32, seq: u16, ts: u32, now_ms: u64) -> Rewritten {
        let continuing = self.run.filter(|r| {
            let step = i32::from(seq.wrapping_sub(r.highest_seq) as i16);
            r.ssrc == ssrc && (-MAX_MISORDER..=MAX_DROPOUT).contains(&step)
        });
        let (run, new_run) = match continuing {
            Some(run) => (run, false),
            None => {
                let out_ts = if self.started {
                    // Continue our clock by the wall time that passed, at least one 20 ms
                    // frame so the new run never overlaps the old one.
                    let elapsed_ms = now_ms.saturating_sub(self.last_sent_ms);
                    let ticks = elapsed_ms
                        .saturating_mul(u64::from(self.clock_rate))
                        .checked_div(1000)
                        .unwrap_or(0)
                        .max(u64::from(self.clock_rate / 50));
                    self.last_ts.wrapping_add(ticks as u32)
                } else {
                    self.last_ts
                };
                let run = SourceRun {
                    ssrc,
                    seq_offset: self.next_seq.wrapping_sub(seq),
                    ts_offset: out_ts.wrapping_sub(ts),
                    highest_seq: seq.wrapping_sub(1),
                };
                (run, true)
            }
        };
        let sequence = seq.wrapping_add(run.seq_offset);
        let timestamp = ts.wrapping_add(run.ts_offset);
        let mut run = run;
        if (seq.wrapping_sub(run.highest_seq) as i16) > 0 {
            run.highest_seq = seq;
            self.next_seq = sequence.wrapping_add(1);
        }
        if !self.started || (timestamp.wrapping_sub(self.last_ts) as i32) >= 0 {
            self.last_ts = timestamp;
            self.last_sent_ms = now_ms;
        }
        self.started = true;
        self.run = Some(run);
        Rewritten {
            sequence,
            timestamp,
            new_run,
        }
    }

    /// Counts a packet actually handed to the socket (for RTCP sender reports).
    pub fn count_sent(&mut self, payload_len: usize) {
        self.packets += 1;
        self.octets += payload_len as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_across_source_change() {
        let mut s = OutboundStream::new(0x1234_5678_9abc_def0, 8000);
        let a = s.map(111, 1000, 50_000, 0);
        assert!(a.new_run);
        let b = s.map(111, 1001, 50_160, 20);
        assert_eq!(b.sequence, a.sequence.wrapping_add(1));
        assert_eq!(b.timestamp, a.timestamp.wrapping_add(160));
        assert!(!b.new_run);
        // New SSRC with unrelated numbers 20 ms later: sequence continues, clock by 160.
        let c = s.map(222, 7, 9_999_999, 40);
        assert!(c.new_run);
        assert_eq!(c.sequence, b.sequence.wrapping_add(1));
        assert_eq!(c.timestamp, b.timestamp.wrapping_add(160));
        let d = s.map(222, 8, 9_999_999 + 160, 60);
        assert_eq!(d.sequence, c.sequence.wrapping_add(1));
        assert_eq!(d.timestamp, c.timestamp.wrapping_add(160));
        // Reordered old packet keeps its own (earlier) number.
        let e = s.map(222, 7, 9_999_999, 61);
        assert_eq!(e.sequence, c.sequence);
        // Sequence restart on the same SSRC is a new run too.
        let f = s.map(222, 40_000, 5, 1060);
        assert!(f.new_run);
        assert_eq!(f.sequence, d.sequence.wrapping_add(1));
        assert_eq!(f.timestamp, d.timestamp.wrapping_add(8000));
    }
}

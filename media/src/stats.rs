//! Per-stream receive statistics as RFC 3550 defines them (§6.4.1 and Appendix A.1, A.3, A.8):
//! packets, bytes, expected and lost packets (cumulative and the fraction since the last
//! report), discards reported by the jitter buffer, and the interarrival jitter estimate.
//! Sans-IO: the caller feeds each received packet's header fields and arrival time.

use serde::Serialize;

/// RFC 3550 A.1: a forward sequence jump larger than this is not a loss burst but a restart
/// (or a stray packet) and needs a second, consecutive packet to be believed.
pub const MAX_DROPOUT: i64 = 3000;
/// RFC 3550 A.1: packets this far behind the highest sequence are still reordered ones.
pub const MAX_MISORDER: i64 = 100;

/// Sequence number relation of a packet to the highest seen so far, shared with the jitter
/// buffer so both agree on what "in order", "reordered" and "restart" mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqClass {
    /// Within the accepted window; carries the extended sequence number.
    Accepted(i64),
    /// Too far from the stream's position to belong to it (RFC 3550 "bad sequence").
    OutOfWindow,
}

/// Tracks 16-bit sequence numbers as an extended (cycle-counting) sequence. The first packet
/// starts at `65536 + seq` so that reordered packets just before it stay positive.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    highest: Option<(u16, i64)>,
}

impl SeqTracker {
    pub fn highest_ext(&self) -> Option<i64> {
        self.highest.map(|(_, e)| e)
    }

    /// Classifies `seq` without updating the state.
    pub fn classify(&self, seq: u16) -> SeqClass {
        match self.highest {
            None => SeqClass::Accepted(65_536 + i64::from(seq)),
            Some((hs, he)) => {
                let diff = i64::from(seq.wrapping_sub(hs) as i16);
                if (-MAX_MISORDER..=MAX_DROPOUT).contains(&diff) {
                    SeqClass::Accepted(he + diff)
                } else {
                    SeqClass::OutOfWindow
                }
            }
        }
    }

    /// Records an accepted packet; the highest only ever moves forward.
    pub fn observe(&mut self, seq: u16, ext: i64) {
        match self.highest {
            Some((_, he)) if ext <= he => {}
            _ => self.highest = Some((seq, ext)),
        }
    }

    /// Starts over at `seq` (new SSRC or a confirmed restart).
    pub fn restart(&mut self, seq: u16) -> i64 {
        let ext = 65_536 + i64::from(seq);
        self.highest = Some((seq, ext));
        ext
    }
}

/// RFC 3550 A.8 interarrival jitter estimator, J += (|D| - J) / 16, computed in RTP timestamp
/// units. Arithmetic on the relative transit time wraps, so RTP timestamp wrap is harmless.
#[derive(Debug, Clone)]
pub struct InterarrivalJitter {
    clock_rate: u32,
    last_transit: Option<u32>,
    jitter: f64,
    max_jitter: f64,
}

impl InterarrivalJitter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            last_transit: None,
            jitter: 0.0,
            max_jitter: 0.0,
        }
    }

    /// Arrival time in milliseconds expressed in RTP timestamp units (mod 2^32).
    fn arrival_units(&self, arrival_ms: u64) -> u32 {
        let units = u128::from(arrival_ms) * u128::from(self.clock_rate) / 1000;
        // Truncation to 32 bits is intended: only differences matter (RFC 3550 A.8).
        units as u32
    }

    /// Feeds one packet. RFC 3550 says to skip this for packets whose timestamp was not
    /// sampled in order (retransmissions); reordered packets still count, as in the RFC.
    pub fn update(&mut self, rtp_timestamp: u32, arrival_ms: u64) {
        let transit = self.arrival_units(arrival_ms).wrapping_sub(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let d = f64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
            self.max_jitter = self.max_jitter.max(self.jitter);
        }
        self.last_transit = Some(transit);
    }

    /// Jitter in RTP timestamp units (the value an RTCP report block carries).
    pub fn jitter_units(&self) -> f64 {
        self.jitter
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    pub fn max_jitter_ms(&self) -> f64 {
        self.max_jitter * 1000.0 / f64::from(self.clock_rate)
    }

    pub fn reset(&mut self) {
        *self = Self::new(self.clock_rate);
    }
}

/// What RTCP needs for one report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlockFigures {
    /// Lost since the previous report as a fixed-point fraction (x/256).
    pub fraction_lost: u8,
    /// Cumulative lost, clamped to the 24-bit signed range of the wire format.
    pub cumulative_lost: i32,
    /// Cycles in the upper 16 bits, highest sequence number in the lower 16.
    pub extended_highest_seq: u32,
    pub jitter: u32,
}

/// A point-in-time view for the API and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStatsSnapshot {
    pub ssrc: Option<u32>,
    pub packets: u64,
    pub bytes: u64,
    pub expected: u64,
    /// Expected minus received; negative when duplicates outnumber losses (RFC 3550 A.3).
    pub lost: i64,
    pub loss_percent: f64,
    /// Packets the jitter buffer threw away (late, duplicate, overflow).
    pub discards: u64,
    /// Packets outside the sequence window that were not counted as received.
    pub out_of_window: u64,
    pub jitter_units: f64,
    pub jitter_ms: f64,
    pub max_jitter_ms: f64,
    pub ssrc_changes: u64,
}

/// Receive statistics of one inbound stream (one leg). Figures of earlier SSRCs on the same
/// leg are kept in the totals, so a mid-call SSRC change does not erase the call's quality.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    ssrc: Option<u32>,
    seq: SeqTracker,
    base_ext: i64,
    received: u64,
    bytes: u64,
    discards: u64,
    out_of_window: u64,
    /// RFC 3550 A.1 probation: a far jump is believed once the next packet follows it.
    restart_candidate: Option<u16>,
    retired_expected: u64,
    retired_received: u64,
    expected_prior: u64,
    received_prior: u64,
    jitter: InterarrivalJitter,
    ssrc_changes: u64,
}

impl ReceiveStats {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            ssrc: None,
            seq: SeqTracker::default(),
            base_ext: 0,
            received: 0,
            bytes: 0,
            discards: 0,
            out_of_window: 0,
            restart_candidate: None,
            retired_expected: 0,
            retired_received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: InterarrivalJitter::new(clock_rate),
            ssrc_changes: 0,
        }
    }

    /// Feeds one received packet: header fields, payload size and arrival time.
    pub fn on_packet(
        &mut self,
        ssrc: u32,
        seq: u16,
        rtp_timestamp: u32,
        payload_len: usize,
        arrival_ms: u64,
    ) {
        if self.ssrc.is_some_and(|s| s != ssrc) {
            self.retire_stream();
            self.ssrc_changes += 1;
        }
        if self.ssrc != Some(ssrc) {
            self.ssrc = Some(ssrc);
            self.base_ext = self.seq.restart(seq);
            self.jitter.reset();
        } else {
            match self.seq.classify(seq) {
                SeqClass::Accepted(ext) => {
                    self.restart_candidate = None;
                    self.seq.observe(seq, ext);
                }
                SeqClass::OutOfWindow => {
                    if self.restart_candidate == Some(seq.wrapping_sub(1)) {
                        // Two in a row: the sender restarted its sequence. Keep what was
                        // counted so far and continue from here (RFC 3550 A.1 init_seq).
                        self.retire_stream();
                        self.base_ext = self.seq.restart(seq);
                        self.jitter.reset();
                        self.restart_candidate = None;
                    } else {
                        self.restart_candidate = Some(seq);
                        self.out_of_window += 1;
                        return;
                    }
                }
            }
        }
        self.received += 1;
        self.bytes += payload_len as u64;
        self.jitter.update(rtp_timestamp, arrival_ms);
    }

    /// Counts packets the jitter buffer discarded (they were received, then thrown away).
    pub fn record_discards(&mut self, count: u64) {
        self.discards += count;
    }

    /// Moves the current sequence run's counts into the totals before starting a new run.
    fn retire_stream(&mut self) {
        self.retired_expected += self.current_expected();
        self.retired_received += self.received;
        self.received = 0;
    }

    fn current_expected(&self) -> u64 {
        match self.seq.highest_ext() {
            Some(h) if self.received > 0 => (h - self.base_ext + 1).max(0) as u64,
            _ => 0,
        }
    }

    pub fn expected(&self) -> u64 {
        self.retired_expected + self.current_expected()
    }

    pub fn received(&self) -> u64 {
        self.retired_received + self.received
    }

    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received() as i64
    }

    pub fn jitter(&self) -> &InterarrivalJitter {
        &self.jitter
    }

    /// Figures for an RTCP report block; advances the "since last report" interval.
    pub fn take_report_block(&mut self) -> ReportBlockFigures {
        let expected = self.expected();
        let received = self.received();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let cumulative_lost = self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32;
        let extended_highest_seq = self.seq.highest_ext().map_or(0, |e| {
            // The tracker starts at one cycle (65536) to keep reordering positive; the wire
            // value counts cycles from zero.
            (e - 65_536).max(0) as u32
        });
        ReportBlockFigures {
            fraction_lost,
            cumulative_lost,
            extended_highest_seq,
            jitter: self.jitter.jitter_units().round() as u32,
        }
    }

    pub fn snapshot(&self) -> StreamStatsSnapshot {
        let expected = self.expected();
        let lost = self.lost();
        let loss_percent = if expected == 0 {
            0.0
        } else {
            lost.max(0) as f64 * 100.0 / expected as f64
        };
        StreamStatsSnapshot {
            ssrc: self.ssrc,
            packets: self.received(),
            bytes: self.bytes,
            expected,
            lost,
            loss_percent,
            discards: self.discards,
            out_of_window: self.out_of_window,
            jitter_units: self.jitter.jitter_units(),
            jitter_ms: self.jitter.jitter_ms(),
            max_jitter_ms: self.jitter.max_jitter_ms(),
            ssrc_changes: self.ssrc_changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_matches_hand_computed_a8_sequence() {
        // 8 kHz, 20 ms packets. Arrivals 0, 20, 45, 60 ms → transit (units) 0, 0, 40, 0,
        // so D = 0, 40, 40 and J = 0 → 0 + 40/16 = 2.5 → 2.5 + (40 - 2.5)/16 = 4.84375.
        let mut j = InterarrivalJitter::new(8000);
        for (ts, at) in [(0u32, 0u64), (160, 20), (320, 45), (480, 60)] {
            j.update(ts, at);
        }
        assert_eq!(j.jitter_units(), 4.84375);
        assert_eq!(j.jitter_ms(), 4.84375 / 8.0);
        assert_eq!(j.max_jitter_ms(), 4.84375 / 8.0);
        // A later steady packet lowers J but not the maximum.
        j.update(640, 80);
        assert_eq!(j.jitter_units(), 4.84375 - 4.84375 / 16.0);
        assert_eq!(j.max_jitter_ms(), 4.84375 / 8.0);
    }

    #[test]
    fn jitter_survives_timestamp_wrap() {
        let mut j = InterarrivalJitter::new(8000);
        let start = u32::MAX - 159;
        for i in 0..10u32 {
            j.update(start.wrapping_add(i * 160), 1_000 + u64::from(i) * 20);
        }
        assert_eq!(j.jitter_units(), 0.0);
    }

    #[test]
    fn loss_and_fraction_since_last_report() {
        let mut s = ReceiveStats::new(8000);
        for (i, seq) in [10u16, 11, 13, 14].into_iter().enumerate() {
            s.on_packet(7, seq, u32::from(seq) * 160, 160, i as u64 * 20);
        }
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected, snap.lost), (4, 5, 1));
        assert_eq!(snap.bytes, 640);
        assert_eq!(snap.loss_percent, 20.0);
        let rb = s.take_report_block();
        assert_eq!(rb.fraction_lost, 51); // (1 << 8) / 5
        assert_eq!(rb.cumulative_lost, 1);
        assert_eq!(rb.extended_highest_seq, 14);
        s.on_packet(7, 15, 15 * 160, 160, 100);
        s.on_packet(7, 16, 16 * 160, 160, 120);
        let rb = s.take_report_block();
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.cumulative_lost, 1);
    }

    #[test]
    fn sequence_wrap_counts_cycles() {
        let mut s = ReceiveStats::new(8000);
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            s.on_packet(1, seq, i as u32 * 160, 160, i as u64 * 20);
        }
        assert_eq!(s.expected(), 4);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.take_report_block().extended_highest_seq, 65_537);
    }

    #[test]
    fn reordered_and_duplicate_packets_follow_rfc_counting() {
        let mut s = ReceiveStats::new(8000);
        for seq in [1u16, 3, 2, 2, 4] {
            s.on_packet(1, seq, u32::from(seq) * 160, 160, u64::from(seq) * 20);
        }
        // Duplicates count as received (RFC 3550 A.3), so loss goes negative.
        assert_eq!((s.expected(), s.received(), s.lost()), (4, 5, -1));
        assert_eq!(s.snapshot().loss_percent, 0.0);
    }

    #[test]
    fn ssrc_change_keeps_totals_and_restarts_sequence() {
        let mut s = ReceiveStats::new(8000);
        s.on_packet(1, 1, 0, 160, 0);
        s.on_packet(1, 3, 320, 160, 40);
        s.on_packet(2, 100, 9_000, 160, 60);
        s.on_packet(2, 101, 9_160, 160, 80);
        let snap = s.snapshot();
        assert_eq!(snap.ssrc, Some(2));
        assert_eq!(snap.ssrc_changes, 1);
        assert_eq!((snap.expected, snap.packets, snap.lost), (5, 4, 1));
        // The new stream's timestamps are unrelated to the old ones: no jitter spike.
        assert_eq!(snap.jitter_units, 0.0);
    }

    #[test]
    fn far_sequence_jump_needs_two_packets() {
        let mut s = ReceiveStats::new(8000);
        s.on_packet(1, 10, 0, 160, 0);
        s.on_packet(1, 11, 160, 160, 20);
        s.on_packet(1, 5000, 320, 160, 40); // stray: not counted
        assert_eq!((s.expected(), s.received()), (2, 2));
        assert_eq!(s.snapshot().out_of_window, 1);
        s.on_packet(1, 5001, 480, 160, 60); // confirmed restart
        assert_eq!((s.expected(), s.received(), s.lost()), (3, 3, 0));
    }

    #[test]
    fn discards_are_reported() {
        let mut s = ReceiveStats::new(8000);
        s.on_packet(1, 1, 0, 160, 0);
        s.record_discards(3);
        assert_eq!(s.snapshot().discards, 3);
    }
}

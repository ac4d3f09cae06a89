//! RFC 4733 telephone-events (DTMF over RTP): the 4-byte payload, and a sans-IO detector that
//! turns the packet stream of one leg into one digit per key press.
//!
//! A sender repeats an event's packets while the key is held (same RTP timestamp, growing
//! duration) and sends the final one, with the E bit, three times. Any of these may be lost,
//! duplicated or reordered. The event's RTP timestamp is its identity: it is the start time,
//! is the same in every packet of the event, and survives the loss of the first packets.

use std::collections::VecDeque;
use thiserror::Error;

/// Length of one telephone-event payload block.
pub const TELEPHONE_EVENT_LEN: usize = 4;

/// Why a payload is not a telephone-event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    #[error("telephone-event payload of {0} bytes is shorter than 4")]
    TooShort(usize),
    #[error("volume {0} does not fit in 6 bits")]
    BadVolume(u8),
}

/// One RFC 4733 §2.3 payload block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–9 digits, 10 `*`, 11 `#`, 12–15 A–D, 16 flash.
    pub event: u8,
    /// Set on the final packet(s) of the event.
    pub end: bool,
    /// Power level in −dBm0 (0–63); larger is quieter.
    pub volume: u8,
    /// Duration so far in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first block of `payload`. Extra bytes are ignored: some senders pad.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let Some(&[event, flags, d0, d1]) = payload.first_chunk::<TELEPHONE_EVENT_LEN>() else {
            return Err(DtmfError::TooShort(payload.len()));
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Serialises the block (R bit zero, as RFC 4733 requires of senders).
    pub fn to_bytes(&self) -> Result<[u8; TELEPHONE_EVENT_LEN], DtmfError> {
        if self.volume > 0x3f {
            return Err(DtmfError::BadVolume(self.volume));
        }
        let d = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | self.volume;
        Ok([self.event, flags, d[0], d[1]])
    }

    /// The key this event stands for, if it is a DTMF key or flash (`!`).
    pub fn symbol(&self) -> Option<char> {
        event_symbol(self.event)
    }
}

/// The key for an event code (RFC 4733 §3.2), `!` for hook flash.
pub fn event_symbol(event: u8) -> Option<char> {
    match event {
        0..=9 => char::from_digit(u32::from(event), 10),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + (event - 12))),
        16 => Some('!'),
        _ => None,
    }
}

/// The event code for a key, inverse of [`event_symbol`].
pub fn symbol_event(symbol: char) -> Option<u8> {
    match symbol {
        '0'..='9' => Some(symbol as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(symbol as u8 - b'A' + 12),
        'a'..='d' => Some(symbol as u8 - b'a' + 12),
        '!' => Some(16),
        _ => None,
    }
}

/// How the detector knew a press was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEnd {
    /// A packet with the E bit arrived.
    EndBit,
    /// Every end packet was lost; a later event started.
    NextEvent,
    /// Every end packet was lost; nothing arrived for the timeout.
    Timeout,
}

/// One key press, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    pub event: u8,
    /// RTP timestamp at which the press began.
    pub start_timestamp: u32,
    /// Length in RTP timestamp units (summed over segments for presses over 65535 units).
    pub duration: u32,
    pub volume: u8,
    pub ended_by: DtmfEnd,
}

impl DtmfDigit {
    pub fn symbol(&self) -> Option<char> {
        event_symbol(self.event)
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    event: u8,
    /// Timestamp of the first segment: the press's start.
    start: u32,
    /// Timestamp of the current segment (differs from `start` only for long presses).
    segment_start: u32,
    /// Duration of the segments before the current one.
    earlier_segments: u32,
    segment_duration: u16,
    volume: u8,
}

impl Pending {
    fn total(&self) -> u32 {
        self.earlier_segments + u32::from(self.segment_duration)
    }

    fn finish(self, ended_by: DtmfEnd) -> DtmfDigit {
        DtmfDigit {
            event: self.event,
            start_timestamp: self.start,
            duration: self.total(),
            volume: self.volume,
            ended_by,
        }
    }
}

/// How many finished events are remembered to swallow their late repeats.
const FINISHED_MEMORY: usize = 16;
/// Queue bound: a hostile stream must not grow memory without limit.
const MAX_QUEUED: usize = 64;

/// `a` is earlier than `b` in RTP timestamp order (modulo 2^32).
fn ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Detects key presses in one stream's telephone-event packets. Use one per SSRC: a new
/// SSRC restarts sequence numbers and timestamps, which would read as stale packets.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    pending: Option<Pending>,
    /// Segment timestamps of events already reported.
    finished: VecDeque<u32>,
    /// Latest event start seen; packets of events starting before it are stale.
    latest_start: Option<u32>,
    /// Highest sequence number seen, to tell a sender's timestamp reset from a late packet.
    highest_seq: Option<u16>,
    timeout: u32,
    ready: VecDeque<DtmfDigit>,
    malformed: u64,
}

impl DtmfDetector {
    /// `timeout` is in RTP timestamp units: a press with no packet for that long after its
    /// last reported end is closed (e.g. 8000 = 1 s at the usual 8 kHz event clock).
    pub fn new(timeout: u32) -> Self {
        DtmfDetector {
            pending: None,
            finished: VecDeque::with_capacity(FINISHED_MEMORY),
            latest_start: None,
            highest_seq: None,
            timeout,
            ready: VecDeque::new(),
            malformed: 0,
        }
    }

    /// Payloads that were too short to parse.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The press in progress, if any: (event, start timestamp, duration so far).
    pub fn in_progress(&self) -> Option<(u8, u32, u32)> {
        self.pending.map(|p| (p.event, p.start, p.total()))
    }

    fn emit(&mut self, digit: DtmfDigit, segment_start: u32) {
        if self.finished.len() == FINISHED_MEMORY {
            self.finished.pop_front();
        }
        self.finished.push_back(segment_start);
        if self.ready.len() == MAX_QUEUED {
            self.ready.pop_front();
        }
        self.ready.push_back(digit);
    }

    /// Feeds one telephone-event RTP packet. Events are told apart by timestamp, which
    /// RFC 4733 keeps constant per event; the sequence number only separates a late packet
    /// (old sequence) from a sender whose timestamps jumped backwards (new sequence).
    pub fn on_packet(
        &mut self,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        let ev = match TelephoneEvent::parse(payload) {
            Ok(ev) => ev,
            Err(e) => {
                self.malformed += 1;
                return Err(e);
            }
        };
        let newer_seq = self
            .highest_seq
            .is_none_or(|h| (sequence.wrapping_sub(h) as i16) > 0);
        if newer_seq {
            self.highest_seq = Some(sequence);
        }
        let other_than_pending = self.pending.is_none_or(|p| p.segment_start != timestamp);
        if !newer_seq && other_than_pending {
            // An older packet of a press that is no longer open (reported, or overtaken by a
            // newer press): nothing in it can change what was reported.
            return Ok(());
        }
        let went_back = other_than_pending
            && self
                .latest_start
                .is_some_and(|latest| ts_before(timestamp, latest));
        if went_back {
            // The timeline restarted (new stream after a re-INVITE, a buggy sender): what we
            // remember no longer applies. Close the open press and forget old timestamps.
            if let Some(p) = self.pending.take() {
                self.emit(p.finish(DtmfEnd::NextEvent), p.segment_start);
            }
            self.finished.clear();
            self.latest_start = None;
        }
        if self.finished.contains(&timestamp) {
            return Ok(()); // a repeat of an end packet, or a straggler of a reported press
        }
        match self.pending {
            Some(p) if p.segment_start == timestamp => {
                let mut p = p;
                // Reordered packets carry smaller durations: keep the largest.
                p.segment_duration = p.segment_duration.max(ev.duration);
                p.volume = ev.volume;
                self.pending = Some(p);
            }
            Some(p)
                if p.event == ev.event
                    && timestamp == p.segment_start.wrapping_add(u32::from(p.segment_duration))
                    && p.segment_duration == u16::MAX =>
            {
                // RFC 4733 §2.5.1.3: a press longer than the duration field continues in a
                // new segment starting where the previous one ended.
                self.pending = Some(Pending {
                    segment_start: timestamp,
                    earlier_segments: p.total(),
                    segment_duration: ev.duration,
                    volume: ev.volume,
                    ..p
                });
                self.finished.push_back(p.segment_start);
                if self.finished.len() > FINISHED_MEMORY {
                    self.finished.pop_front();
                }
            }
            previous => {
                if let Some(p) = previous {
                    self.emit(p.finish(DtmfEnd::NextEvent), p.segment_start);
                }
                self.pending = Some(Pending {
                    event: ev.event,
                    start: timestamp,
                    segment_start: timestamp,
                    earlier_segments: 0,
                    segment_duration: ev.duration,
                    volume: ev.volume,
                });
            }
        }
        self.latest_start = Some(timestamp);
        if ev.end
            && let Some(p) = self.pending.take()
        {
            self.emit(p.finish(DtmfEnd::EndBit), p.segment_start);
        }
        Ok(())
    }

    /// Tells the detector the stream's current RTP time (from any packet on the same
    /// clock); closes a press whose end packets were all lost once `timeout` has passed.
    pub fn poll(&mut self, now_timestamp: u32) {
        if let Some(p) = self.pending {
            let last_heard = p.segment_start.wrapping_add(u32::from(p.segment_duration));
            if now_timestamp.wrapping_sub(last_heard) > self.timeout
                && !ts_before(now_timestamp, last_heard)
            {
                self.pending = None;
                self.emit(p.finish(DtmfEnd::Timeout), p.segment_start);
            }
        }
    }

    /// The next finished key press, oldest first.
    pub fn next_digit(&mut self) -> Option<DtmfDigit> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
        .unwrap()
    }

    /// Packets a typical sender emits for one press: every 160 units, then 3 end packets.
    fn press(event: u8, ts: u32, seq: &mut u16, duration: u16) -> Vec<(u16, u32, [u8; 4])> {
        let mut out = Vec::new();
        let mut d = 160;
        while d < duration {
            out.push((*seq, ts, pkt(event, false, d)));
            *seq = seq.wrapping_add(1);
            d += 160;
        }
        for _ in 0..3 {
            out.push((*seq, ts, pkt(event, true, duration)));
            *seq = seq.wrapping_add(1);
        }
        out
    }

    fn run(det: &mut DtmfDetector, pkts: &[(u16, u32, [u8; 4])]) -> Vec<DtmfDigit> {
        let mut got = Vec::new();
        for (s, t, p) in pkts {
            det.on_packet(*s, *t, p).unwrap();
            while let Some(d) = det.next_digit() {
                got.push(d);
            }
        }
        got
    }

    #[test]
    fn payload_known_bytes_and_round_trip() {
        // RFC 4733 §2.3 layout: digit 5, E set, volume 10, duration 800 (100 ms at 8 kHz).
        let bytes = [0x05, 0x8a, 0x03, 0x20];
        let ev = TelephoneEvent::parse(&bytes).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.to_bytes().unwrap(), bytes);
        // The R bit is ignored on receipt.
        assert_eq!(TelephoneEvent::parse(&[11, 0x40, 0, 0]).unwrap().volume, 0);
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::TooShort(3))
        );
        let loud = TelephoneEvent { volume: 64, ..ev };
        assert_eq!(loud.to_bytes(), Err(DtmfError::BadVolume(64)));
    }

    #[test]
    fn symbols() {
        let all: String = (0..=16).filter_map(event_symbol).collect();
        assert_eq!(all, "0123456789*#ABCD!");
        for e in 0..=16 {
            assert_eq!(symbol_event(event_symbol(e).unwrap()), Some(e));
        }
        assert_eq!(event_symbol(17), None);
        assert_eq!(symbol_event('x'), None);
    }

    #[test]
    fn each_digit_once_despite_redundant_ends() {
        let mut det = DtmfDetector::new(8000);
        let mut seq = 100;
        let mut pkts = press(1, 16_000, &mut seq, 800);
        pkts.extend(press(11, 24_000, &mut seq, 1200));
        let got = run(&mut det, &pkts);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].symbol(), got[0].start_timestamp, got[0].duration),
            (Some('1'), 16_000, 800)
        );
        assert_eq!(got[0].ended_by, DtmfEnd::EndBit);
        assert_eq!(
            (got[1].symbol(), got[1].start_timestamp, got[1].duration),
            (Some('#'), 24_000, 1200)
        );
    }

    #[test]
    fn same_digit_twice_is_two_presses() {
        let mut det = DtmfDetector::new(8000);
        let mut seq = 0;
        let mut pkts = press(7, 1000, &mut seq, 640);
        pkts.extend(press(7, 3000, &mut seq, 640));
        let got = run(&mut det, &pkts);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].start_timestamp, 3000);
    }

    #[test]
    fn first_packets_lost_start_still_known() {
        let mut det = DtmfDetector::new(8000);
        let mut seq = 0;
        let pkts = press(3, 50_000, &mut seq, 960);
        // Drop everything but the end packets.
        let got = run(&mut det, &pkts[pkts.len() - 3..]);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].symbol(), got[0].start_timestamp, got[0].duration),
            (Some('3'), 50_000, 960)
        );
    }

    #[test]
    fn retransmits_reordering_and_stragglers_ignored() {
        let mut det = DtmfDetector::new(8000);
        let mut seq = 0;
        let a = press(4, 8000, &mut seq, 800);
        let b = press(5, 16_000, &mut seq, 800);
        // Press A reordered (a middle packet after a later one) and duplicated.
        let mut pkts = vec![a[0], a[2], a[1], a[1]];
        pkts.extend_from_slice(&a[3..]);
        pkts.extend_from_slice(&b[..2]);
        // Stragglers of A arriving during B, then all of B's remainder and a late A end.
        pkts.push(a[0]);
        pkts.push(*a.last().unwrap());
        pkts.extend_from_slice(&b[2..]);
        pkts.push(*a.last().unwrap());
        pkts.push(*b.last().unwrap());
        let got = run(&mut det, &pkts);
        let digits: Vec<_> = got.iter().map(|d| (d.symbol(), d.duration)).collect();
        assert_eq!(digits, [(Some('4'), 800), (Some('5'), 800)]);
    }

    #[test]
    fn lost_end_closed_by_next_event_or_timeout() {
        let mut det = DtmfDetector::new(8000);
        let mut seq = 0;
        let a = press(9, 8000, &mut seq, 800);
        let b = press(0, 20_000, &mut seq, 800);
        let mut pkts: Vec<_> = a[..a.len() - 3].to_vec();
        pkts.extend_from_slice(&b[..b.len() - 3]);
        let got = run(&mut det, &pkts);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ended_by, DtmfEnd::NextEvent);
        assert_eq!((got[0].symbol(), got[0].duration), (Some('9'), 640));
        assert_eq!(det.in_progress(), Some((0, 20_000, 640)));
        det.poll(20_000 + 640 + 8000); // not yet past the timeout
        assert_eq!(det.next_digit(), None);
        det.poll(20_000 + 640 + 8001);
        let d = det.next_digit().unwrap();
        assert_eq!((d.symbol(), d.ended_by), (Some('0'), DtmfEnd::Timeout));
        assert_eq!(det.next_digit(), None);
        // Its late end packets are then swallowed.
        run(&mut det, &b[b.len() - 3..]);
        assert_eq!(det.next_digit(), None);
    }

    #[test]
    fn long_press_segments_are_one_digit() {
        let mut det = DtmfDetector::new(8000);
        let mut pkts = vec![
            (1, 0, pkt(2, false, 40_000)),
            (2, 0, pkt(2, false, u16::MAX)),
        ];
        pkts.push((3, 65_535, pkt(2, false, 1000)));
        pkts.push((4, 65_535, pkt(2, true, 2000)));
        pkts.push((5, 65_535, pkt(2, true, 2000)));
        let got = run(&mut det, &pkts);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].start_timestamp, got[0].duration),
            (0, 65_535 + 2000)
        );
    }

    #[test]
    fn timestamp_reset_with_newer_sequence_is_a_new_press() {
        let mut det = DtmfDetector::new(8000);
        let mut seq = 10;
        let mut pkts = press(1, 900_000, &mut seq, 480);
        // The sender restarts its timestamps lower but keeps counting sequence numbers.
        pkts.extend(press(2, 1000, &mut seq, 480));
        // A late copy of an old end packet (old sequence, old timestamp) changes nothing.
        pkts.push((11, 900_000, pkt(1, true, 480)));
        let got = run(&mut det, &pkts);
        let digits: Vec<_> = got
            .iter()
            .map(|d| (d.symbol(), d.start_timestamp))
            .collect();
        assert_eq!(digits, [(Some('1'), 900_000), (Some('2'), 1000)]);
    }

    #[test]
    fn timestamp_wrap() {
        let mut det = DtmfDetector::new(8000);
        let mut seq = 65_530;
        let mut pkts = press(6, u32::MAX - 100, &mut seq, 480);
        pkts.extend(press(8, 300, &mut seq, 480));
        let got = run(&mut det, &pkts);
        let digits: Vec<_> = got.iter().map(|d| d.symbol()).collect();
        assert_eq!(digits, [Some('6'), Some('8')]);
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn fuzzed_streams_never_panic_and_stay_bounded() {
        let mut rng = 7u64;
        let mut det = DtmfDetector::new(800);
        let mut emitted = 0usize;
        for i in 0..50_000u32 {
            let r = xorshift(&mut rng);
            let len = (r % 7) as usize;
            let payload: Vec<u8> = (0..len).map(|k| (r >> (8 * k)) as u8).collect();
            // Mostly plausible timestamps, sometimes wild ones.
            let ts = if r & 0x100 == 0 {
                (i / 10) * 160
            } else {
                (r >> 32) as u32
            };
            let _ = det.on_packet((r >> 16) as u16, ts, &payload);
            if i % 100 == 0 {
                det.poll(ts);
            }
            while let Some(d) = det.next_digit() {
                emitted += 1;
                assert!(d.duration <= u32::from(u16::MAX) * 50_000);
            }
            assert!(det.ready.len() <= MAX_QUEUED);
            assert!(det.finished.len() <= FINISHED_MEMORY);
        }
        assert!(emitted > 0);
        assert!(det.malformed() > 0);
    }
}

//! What callscope itself sends to a leg instead of the other leg's audio: RFC 4733 digits
//! (`send_dtmf`), a ringback tone (`play_tone`) and encoded silence (while the other side is
//! muted or released). Sans-IO: the call task calls [`Generator::slot`] every 20 ms and
//! sends the packets it returns through the leg's `OutboundStream`, so the far end sees one
//! continuous stream whichever source feeds it.
//!
//! Priority, highest first: digits, tone, silence. While any of them is active the generator
//! owns the leg's outgoing stream and the relayed/transcoded audio towards it is not sent
//! (a receiver must never get two interleaved sources).
//!
//! The generator keeps its own clock: one 20 ms step per slot whether it sends audio or
//! telephone-events, so the audio after a digit starts where the event ended (RFC 4733 §2.5:
//! an event's packets all carry the event's start timestamp).

use std::collections::VecDeque;

use crate::codec::{AudioEncoder, CodecSpec, encoder_for};
use crate::dtmf::{TelephoneEvent, event_symbol};

use super::types::Tone;

/// A digit's tone lasts this many 20 ms slots (100 ms).
const DIGIT_SLOTS: u32 = 5;
/// Silence between digits and after the last one, in 20 ms slots (80 ms).
const GAP_SLOTS: u32 = 4;
/// The final packet of an event is sent this many times (RFC 4733 §2.5.1.4).
const END_REPEATS: usize = 3;
/// Volume of sent events in −dBm0 (RFC 4733: 0–63; phones send about 10).
const EVENT_VOLUME: u8 = 10;
/// Most digits waiting per leg: `send_dtmf` accepts 32 per request; a few requests may queue.
pub const MAX_QUEUED_DIGITS: usize = 128;

/// One packet to send: header fields on the generator's own (synthetic) stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub payload: Vec<u8>,
    /// The generator resumes after an idle stretch: the outbound mapper must start a new run
    /// (its clock continues by wall time, not by the generator's counters).
    pub restart: bool,
}

/// A digit that finished playing: for the `Dtmf` event and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentDigit {
    pub symbol: char,
    pub start_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct DigitPlay {
    event: u8,
    start_ts: u32,
    start_ms: u64,
    slot: u32,
}

struct Encoding {
    codec: CodecSpec,
    encoder: Box<dyn AudioEncoder>,
}

/// Sample position of a tone, so its phase and cadence run on across slots.
#[derive(Debug, Clone, Copy)]
struct ToneState {
    tone: Tone,
    slots: u64,
}

pub struct Generator {
    encoding: Option<Encoding>,
    telephone_event_pt: Option<u8>,
    seq: u16,
    ts: u32,
    tone: Option<ToneState>,
    digits: VecDeque<u8>,
    current: Option<DigitPlay>,
    active: bool,
    pcm: Vec<i16>,
    pub encode_errors: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            encoding: None,
            telephone_event_pt: None,
            seq: seed as u16,
            ts: (seed >> 16) as u32,
            tone: None,
            digits: VecDeque::new(),
            current: None,
            active: false,
            pcm: Vec::with_capacity(960),
            encode_errors: 0,
        }
    }

    /// The leg's negotiated codec and telephone-event payload type (every configure).
    pub fn set_codec(&mut self, codec: CodecSpec, telephone_event_pt: Option<u8>) {
        self.telephone_event_pt = telephone_event_pt;
        if self.encoding.as_ref().is_some_and(|e| e.codec == codec) {
            return;
        }
        self.encoding = match encoder_for(&codec) {
            Ok(encoder) => Some(Encoding { codec, encoder }),
            Err(e) => {
                tracing::warn!(error = %e, "no encoder for generated audio");
                None
            }
        };
        // A new clock: whatever comes next starts a new run on the far end's stream.
        self.active = false;
    }

    pub fn set_tone(&mut self, tone: Option<Tone>) {
        self.tone = tone.map(|tone| ToneState { tone, slots: 0 });
    }

    pub fn tone(&self) -> Option<Tone> {
        self.tone.map(|t| t.tone)
    }

    /// The leg cannot be sent to this slot: nothing is produced, and the next packet starts
    /// a new run (the far end's clock continues by wall time).
    pub fn idle(&mut self) {
        self.active = false;
    }

    /// Queues event codes (already validated); returns how many did not fit.
    pub fn queue_digits(&mut self, events: &[u8]) -> usize {
        let room = MAX_QUEUED_DIGITS.saturating_sub(self.digits.len());
        let taken = events.len().min(room);
        self.digits.extend(events.iter().take(taken));
        events.len() - taken
    }

    /// Whether the generator owns the leg's stream this slot (the relay must stay out).
    pub fn owns_stream(&self, silence_wanted: bool) -> bool {
        self.current.is_some() || !self.digits.is_empty() || self.tone.is_some() || silence_wanted
    }

    /// Produces the packets of one 20 ms slot into `out` (cleared first). Returns the digit
    /// whose end was sent in this slot, if any.
    pub fn slot(
        &mut self,
        now_ms: u64,
        silence_wanted: bool,
        out: &mut Vec<GenPacket>,
    ) -> Option<SentDigit> {
        out.clear();
        let Some(step) = self
            .encoding
            .as_ref()
            .map(|e| e.codec.timestamp_step_20ms().max(1))
        else {
            // Not configured yet: nothing to send in, and digits cannot wait forever.
            return None;
        };
        if self.current.is_none()
            && let Some(event) = self.digits.pop_front()
        {
            self.current = Some(DigitPlay {
                event,
                start_ts: self.ts,
                start_ms: now_ms,
                slot: 0,
            });
        }
        let mut finished = None;
        if let Some(mut play) = self.current.take() {
            if play.slot < DIGIT_SLOTS {
                finished = self.event_packets(&play, step, out);
                if finished.is_none() && out.is_empty() {
                    // No telephone-event on this leg any more (re-INVITE): drop the digits.
                    self.digits.clear();
                    self.finish_slot(step, out);
                    return None;
                }
            } else {
                self.audio_packet(None, out);
            }
            play.slot += 1;
            if play.slot < DIGIT_SLOTS + GAP_SLOTS {
                self.current = Some(play);
            }
        } else if let Some(mut tone) = self.tone {
            self.audio_packet(Some(tone), out);
            tone.slots += 1;
            self.tone = Some(tone);
        } else if silence_wanted {
            self.audio_packet(None, out);
        }
        self.finish_slot(step, out);
        finished
    }

    /// Advances the clock one slot; flags the first packet after an idle stretch.
    fn finish_slot(&mut self, step: u32, out: &mut [GenPacket]) {
        self.ts = self.ts.wrapping_add(step);
        let was_active = self.active;
        self.active = !out.is_empty();
        if !was_active && let Some(first) = out.first_mut() {
            first.restart = true;
        }
    }

    fn next_seq(&mut self) -> u16 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    fn event_packets(
        &mut self,
        play: &DigitPlay,
        step: u32,
        out: &mut Vec<GenPacket>,
    ) -> Option<SentDigit> {
        let pt = self.telephone_event_pt?;
        let end = play.slot + 1 == DIGIT_SLOTS;
        let duration = u16::try_from((play.slot + 1) * step).unwrap_or(u16::MAX);
        let payload = TelephoneEvent {
            event: play.event,
            end,
            volume: EVENT_VOLUME,
            duration,
        }
        .to_bytes()
        .ok()?;
        let repeats = if end { END_REPEATS } else { 1 };
        for _ in 0..repeats {
            let seq = self.next_seq();
            out.push(GenPacket {
                payload_type: pt,
                marker: play.slot == 0,
                seq,
                ts: play.start_ts,
                payload: payload.to_vec(),
                restart: false,
            });
        }
        let clock = self.encoding.as_ref().map_or(8000, |e| e.codec.clock_rate);
        end.then(|| SentDigit {
            symbol: event_symbol(play.event).unwrap_or('?'),
            start_ms: play.start_ms,
            duration_ms: u64::from(duration) * 1000 / u64::from(clock.max(1)),
        })
    }

    /// One 20 ms audio frame: the tone's samples, or silence.
    fn audio_packet(&mut self, tone: Option<ToneState>, out: &mut Vec<GenPacket>) {
        let seq_ts = (self.seq, self.ts);
        let Some(enc) = self.encoding.as_mut() else {
            return;
        };
        let frame = enc.encoder.frame_samples();
        let rate = enc.encoder.sample_rate();
        self.pcm.clear();
        match tone {
            Some(t) => fill_tone(t.tone, t.slots, rate, frame, &mut self.pcm),
            None => self.pcm.resize(frame, 0),
        }
        let mut payload = Vec::new();
        if enc.encoder.encode(&self.pcm, &mut payload).is_err() {
            self.encode_errors += 1;
            return;
        }
        let payload_type = enc.codec.payload_type;
        self.seq = self.seq.wrapping_add(1);
        out.push(GenPacket {
            payload_type,
            marker: false,
            seq: seq_ts.0,
            ts: seq_ts.1,
            payload,
            restart: false,
        });
    }
}

/// Cadence and frequencies of a tone: (on ms, off ms, frequencies in Hz).
fn tone_plan(tone: Tone) -> (u64, u64, &'static [f64]) {
    match tone {
        // ETSI TR 101 041 / most of Europe: 425 Hz, 1 s on, 4 s off.
        Tone::Ringback => (1000, 4000, &[425.0]),
        // North America (ANSI T1.401): 440 + 480 Hz, 2 s on, 4 s off.
        Tone::RingbackUs => (2000, 4000, &[440.0, 480.0]),
    }
}

/// Appends `frame` samples at `rate` of slot `slot` (20 ms each) of the tone's cadence.
fn fill_tone(tone: Tone, slot: u64, rate: u32, frame: usize, pcm: &mut Vec<i16>) {
    let (on_ms, off_ms, freqs) = tone_plan(tone);
    let period_slots = (on_ms + off_ms) / 20;
    let on = (slot % period_slots.max(1)) < on_ms / 20;
    if !on {
        pcm.resize(pcm.len() + frame, 0);
        return;
    }
    // About −13 dBm0 in total, split between the frequencies.
    let amplitude = 6000.0 / freqs.len() as f64;
    let first = slot * frame as u64;
    let rate = f64::from(rate.max(1));
    for i in 0..frame as u64 {
        let t = (first + i) as f64 / rate;
        let v: f64 = freqs
            .iter()
            .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
            .sum();
        pcm.push((amplitude * v).round() as i16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711;

    fn energy(payload: &[u8]) -> f64 {
        let mut pcm = Vec::new();
        g711::decode_ulaw(payload, &mut pcm);
        pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64
    }

    #[test]
    fn ringback_cadences_at_faster_than_real_time() {
        for (tone, on_slots, period_slots) in
            [(Tone::Ringback, 50, 250), (Tone::RingbackUs, 100, 300)]
        {
            let mut g = Generator::new(7);
            g.set_codec(CodecSpec::pcmu(), None);
            g.set_tone(Some(tone));
            let mut out = Vec::new();
            for slot in 0..(period_slots + on_slots + 10) {
                g.slot(slot * 20, false, &mut out);
                assert_eq!(out.len(), 1, "one frame per slot");
                let on = slot % period_slots < on_slots;
                let e = energy(&out[0].payload);
                if on {
                    assert!(e > 1e6, "{tone:?} slot {slot}: energy {e}");
                } else {
                    assert!(e < 10.0, "{tone:?} slot {slot}: energy {e}");
                }
            }
        }
    }

    #[test]
    fn digits_then_gap_then_idle_on_one_clock() {
        let mut g = Generator::new(1 << 16);
        g.set_codec(CodecSpec::pcmu(), Some(101));
        assert_eq!(g.queue_digits(&[1, 11]), 0);
        let mut out = Vec::new();
        let mut all = Vec::new();
        let mut finished = Vec::new();
        for slot in 0..30u64 {
            if let Some(d) = g.slot(slot * 20, false, &mut out) {
                finished.push(d);
            }
            all.extend(out.iter().cloned());
        }
        // Per digit: 4 progress + 3 end packets, then 4 silence frames.
        assert_eq!(all.len(), 2 * (4 + 3 + 4));
        for w in all.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        }
        assert!(all[0].restart && all[1..].iter().all(|p| !p.restart));
        let first = &all[..7];
        assert!(
            first
                .iter()
                .all(|p| p.payload_type == 101 && p.ts == all[0].ts)
        );
        assert!(first[0].marker && first[1..].iter().all(|p| !p.marker));
        let durations: Vec<u16> = first
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap().duration)
            .collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        // The gap's audio starts where the event ended.
        assert_eq!(all[7].payload_type, 0);
        assert_eq!(all[7].ts, all[0].ts.wrapping_add(800));
        assert_eq!(all[11].ts, all[0].ts.wrapping_add(1440));
        assert_eq!(TelephoneEvent::parse(&all[11].payload).unwrap().event, 11);
        assert_eq!(finished.len(), 2);
        assert_eq!((finished[0].symbol, finished[0].duration_ms), ('1', 100));
        assert_eq!(finished[1].start_ms, 9 * 20);
        assert!(!g.owns_stream(false));
    }

    #[test]
    fn digits_without_telephone_event_are_dropped() {
        let mut g = Generator::new(3);
        g.set_codec(CodecSpec::pcmu(), None);
        g.queue_digits(&[1, 2, 3]);
        let mut out = Vec::new();
        assert!(g.slot(0, false, &mut out).is_none());
        assert!(out.is_empty());
        assert!(!g.owns_stream(false));
    }
}

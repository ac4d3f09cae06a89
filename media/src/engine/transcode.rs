//! One transcoding direction: packets from one leg → jitter buffer → decode (or conceal) →
//! resample → encode 20 ms frames for the other leg.
//!
//! An Opus source is decoded once, on arrival ([`Transcoder::insert_decoding`]): the same
//! PCM goes to the recording and taps (at the decoder's full rate) and, through the jitter
//! buffer, to the encoder (resampled down). libopus renders CELT and hybrid packets through
//! a full-band synthesis whatever the output rate, so a second decoder at the encoder's
//! rate cost nearly a second full decode per packet.
//!
//! The frames it produces carry a synthetic source (its own SSRC, a sequence and timestamp
//! advancing one frame at a time); the receiving leg's `OutboundStream` maps them like any
//! source, so switching between relaying and transcoding keeps one continuous stream.

use crate::codec::{
    ArrivalDecoder, AudioEncoder, CodecError, CodecKind, CodecSpec, OpusEncoder, OpusEncoderConfig,
    decoder_at_rate, decoder_for, encoder_for,
};
use crate::jitter::{Arrival, InsertOutcome, JitterBuffer, JitterConfig, Playout};

use super::resample::StreamResampler;

/// Source id of transcoded frames, as the outbound mapper sees them.
pub const SYNTHETIC_SSRC: u32 = 0x7c0d_ec00;
/// Most playout slots handled per pacing tick (catching up after a stall stays bounded).
const MAX_SLOTS_PER_TICK: usize = 10;
/// Consecutive packets whose timestamps agree on another packet duration before the jitter
/// buffer's slots follow it (a pause under silence suppression is not periodic, a sender's
/// ptime is).
const DURATION_CONFIRMATIONS: u8 = 3;

/// The sender's packet duration as its timestamps show it, for the jitter buffer's slots.
/// A transcoding direction plays out on a 20 ms tick, but not every sender packs 20 ms:
/// a gateway that ignores our `ptime:20` may send 30 ms, a browser 40 or 60 ms of Opus. A
/// buffer walking a 20 ms timeline would find every third slot of a 30 ms stream empty and
/// conceal it, adding a third more audio than arrived.
#[derive(Default)]
struct PacketDuration {
    last: Option<(u32, u16, u32)>,
    candidate_ms: u32,
    seen: u8,
}

impl PacketDuration {
    /// The duration (ms) that `DURATION_CONFIRMATIONS` consecutive packets agree on, once
    /// they do; None otherwise. Only whole multiples of 10 ms from 10 to 120 ms count.
    fn observe(&mut self, ssrc: u32, seq: u16, timestamp: u32, clock_rate: u32) -> Option<u32> {
        let previous = self.last.replace((ssrc, seq, timestamp));
        let (last_ssrc, last_seq, last_ts) = previous?;
        let ticks = u64::from(timestamp.wrapping_sub(last_ts)) * 1000;
        let clock = u64::from(clock_rate.max(1));
        let ms = ticks / clock;
        if last_ssrc != ssrc
            || seq != last_seq.wrapping_add(1)
            || ticks % clock != 0
            || ms % 10 != 0
            || !(10..=120).contains(&ms)
        {
            self.seen = 0;
            return None;
        }
        let ms = ms as u32;
        if ms == self.candidate_ms {
            self.seen = self.seen.saturating_add(1);
        } else {
            self.candidate_ms = ms;
            self.seen = 1;
        }
        (self.seen >= DURATION_CONFIRMATIONS).then_some(ms)
    }
}

pub struct Transcoder {
    jitter: JitterBuffer,
    /// The jitter buffer's settings, its slot length following the sender (`PacketDuration`).
    jitter_config: JitterConfig,
    packet_duration: PacketDuration,
    /// Discards counted by jitter buffers replaced when the slot length changed.
    earlier_discards: u64,
    decoder: ArrivalDecoder,
    encoder: Box<dyn AudioEncoder>,
    resampler: StreamResampler,
    decoded: Vec<i16>,
    /// Encoder-rate samples waiting to fill a frame.
    pending: Vec<i16>,
    payload: Vec<u8>,
    seq: u16,
    ts: u32,
    /// Output clock ticks per frame.
    step: u32,
    in_clock: u32,
    out_clock: u32,
    /// The event being relayed: (its timestamp on the source clock, ours).
    event_map: Option<(u32, u32)>,
    /// Slots the last frame played already filled: it held more than one slot's audio (a
    /// sender's longer packets, before its packet duration is known), so the buffer finds
    /// the slots after it empty; concealing them would stretch time.
    covered_slots: usize,
    /// Arrival of the newest packet: `idle_after_ms` without one counts as the source being
    /// silent (hold, DTX, the far end gone).
    last_arrival_ms: Option<u64>,
    /// Packets are decoded as they arrive and the jitter buffer holds their PCM (i16
    /// little-endian) instead of the payload: see the module docs.
    decodes_on_arrival: bool,
    /// PCM of the packet decoded last on arrival (what the recorder takes).
    arrived_pcm: Vec<i16>,
    pub decode_errors: u64,
}

/// One encoded frame ready for the outbound mapper.
pub struct Encoded<'a> {
    pub seq: u16,
    pub ts: u32,
    pub payload: &'a [u8],
}

impl Transcoder {
    pub fn new(
        from: &CodecSpec,
        to: &CodecSpec,
        jitter: &JitterConfig,
        opus_complexity: u8,
        opus_decode_rate: u32,
    ) -> Result<Self, CodecError> {
        // Opus takes any telephony rate: encode a narrower source at its own rate (a G.711
        // leg's 8 kHz) instead of resampling it up to 48 kHz, which is both a resampler less
        // and several times less libopus work for the same audio.
        let encoder: Box<dyn AudioEncoder> = match (to.kind, from.kind) {
            (CodecKind::Opus, CodecKind::Pcmu | CodecKind::Pcma | CodecKind::G722) => {
                Box::new(OpusEncoder::new(OpusEncoderConfig {
                    rate: from.pcm_rate(),
                    complexity: opus_complexity,
                    // No FEC until the receiver reports loss (`set_reported_loss`), and
                    // until then CELT frames, the cheapest encode of narrowband audio;
                    // SILK comes back with the FEC it alone can carry.
                    inband_fec: false,
                    expected_loss_percent: 0,
                    celt_while_clean: true,
                    ..OpusEncoderConfig::default()
                })?)
            }
            _ => encoder_for(to)?,
        };
        // One decoder at the codec's own PCM rate. An Opus source is decoded on arrival
        // and shared with the recording (its full rate is what the recording wants); other
        // codecs decode at playout (cheap, and nothing to share).
        // `opus_decode_rate`: the recording's rate for an Opus leg (see
        // `EngineConfig::opus_recording_rate`); other codecs decode at their own.
        let decodes_on_arrival = from.kind == CodecKind::Opus;
        let decoder = if decodes_on_arrival {
            decoder_at_rate(from, opus_decode_rate)?
        } else {
            decoder_for(from)?
        };
        let mut cfg = jitter.clone();
        cfg.clock_rate = from.clock_rate.max(1);
        let resampler = StreamResampler::new(decoder.sample_rate(), encoder.sample_rate());
        Ok(Transcoder {
            jitter: JitterBuffer::new(cfg.clone()),
            jitter_config: cfg,
            packet_duration: PacketDuration::default(),
            earlier_discards: 0,
            resampler,
            decoder: ArrivalDecoder::new(decoder, from.clock_rate),
            encoder,
            decoded: Vec::with_capacity(2048),
            pending: Vec::with_capacity(4096),
            payload: Vec::with_capacity(1500),
            seq: 0,
            ts: 0,
            step: to.timestamp_step_20ms().max(1),
            in_clock: from.clock_rate.max(1),
            out_clock: to.clock_rate.max(1),
            event_map: None,
            covered_slots: 0,
            last_arrival_ms: None,
            decodes_on_arrival,
            arrived_pcm: Vec::with_capacity(2048),
            decode_errors: 0,
        })
    }

    pub fn insert(
        &mut self,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
        arrival_ms: u64,
    ) -> InsertOutcome {
        self.follow_packet_duration(ssrc, seq, timestamp);
        self.last_arrival_ms = Some(arrival_ms);
        self.jitter.insert(Arrival {
            ssrc,
            seq,
            timestamp,
            arrival_ms,
            payload: payload.to_vec(),
        })
    }

    /// Whether this direction decodes on arrival: use [`Transcoder::insert_decoding`].
    pub fn decodes_on_arrival(&self) -> bool {
        self.decodes_on_arrival
    }

    /// PCM rate of what [`Transcoder::insert_decoding`] returns.
    pub fn decoded_rate(&self) -> u32 {
        self.decoder.sample_rate()
    }

    /// Decodes `payload` now and queues its PCM for playout; returns the PCM (at
    /// [`Transcoder::decoded_rate`]) for the recording, or None when it did not decode
    /// (playout then conceals that slot). For a direction that does not decode on arrival,
    /// queues the payload as [`Transcoder::insert`] does and returns None.
    pub fn insert_decoding(
        &mut self,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        payload: &[u8],
        arrival_ms: u64,
    ) -> Option<&[i16]> {
        if !self.decodes_on_arrival {
            self.insert(ssrc, seq, timestamp, payload, arrival_ms);
            return None;
        }
        self.follow_packet_duration(ssrc, seq, timestamp);
        self.last_arrival_ms = Some(arrival_ms);
        self.arrived_pcm.clear();
        // In stream order (see `ArrivalDecoder`).
        let decoded = self
            .decoder
            .decode(ssrc, seq, timestamp, payload, &mut self.arrived_pcm)
            .is_ok();
        if !decoded {
            self.decode_errors += 1;
            self.arrived_pcm.clear();
        }
        // An empty entry is a packet that did not decode: concealed at playout.
        let mut bytes = vec![0u8; self.arrived_pcm.len() * 2];
        for (b, s) in bytes.chunks_exact_mut(2).zip(&self.arrived_pcm) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        self.jitter.insert(Arrival {
            ssrc,
            seq,
            timestamp,
            arrival_ms,
            payload: bytes,
        });
        decoded.then_some(self.arrived_pcm.as_slice())
    }

    /// The loss the receiving leg reports (percent): the encoder tunes its FEC to it.
    pub fn set_reported_loss(&mut self, percent: u8) {
        self.encoder.set_reported_loss(percent);
    }

    /// Packets the jitter buffer threw away so far.
    pub fn discards(&self) -> u64 {
        self.earlier_discards + self.jitter.counters().discards()
    }

    /// Samples one playout slot (the sender's packet duration) holds at the decoder's rate:
    /// what concealing a missing slot must produce.
    fn slot_samples(&self) -> usize {
        (self.decoder.sample_rate() * self.jitter_config.ptime_ms / 1000) as usize
    }

    /// How long after the last packet the direction counts as quiet and stops concealing:
    /// the longest playout delay and three slots.
    fn idle_after_ms(&self) -> u64 {
        u64::from(self.jitter_config.max_delay_ms) + 3 * u64::from(self.jitter_config.ptime_ms)
    }

    /// Gives the jitter buffer slots of the sender's packet duration once its timestamps
    /// have shown it (`PacketDuration`). The new buffer starts empty: the few packets that
    /// showed the duration, once per stream, are dropped rather than misplaced.
    fn follow_packet_duration(&mut self, ssrc: u32, seq: u16, timestamp: u32) {
        let clock = self.jitter_config.clock_rate;
        let Some(ms) = self.packet_duration.observe(ssrc, seq, timestamp, clock) else {
            return;
        };
        if ms == self.jitter_config.ptime_ms {
            return;
        }
        self.earlier_discards += self.jitter.counters().discards();
        self.jitter_config.ptime_ms = ms;
        self.jitter = JitterBuffer::new(self.jitter_config.clone());
    }

    /// Current playout delay (for the one-way delay in the MOS estimate).
    pub fn delay_ms(&self, now_ms: u64) -> f64 {
        self.jitter.current_delay_ms(now_ms)
    }

    /// Plays out what is due and hands each encoded frame to `send`.
    pub fn poll(&mut self, now_ms: u64, mut send: impl FnMut(Encoded<'_>)) {
        let silent = self
            .last_arrival_ms
            .is_none_or(|at| now_ms.saturating_sub(at) > self.idle_after_ms());
        let slot_samples = self.slot_samples();
        for _ in 0..MAX_SLOTS_PER_TICK {
            let Some(slot) = self.jitter.pop(now_ms) else {
                break;
            };
            self.decoded.clear();
            let missing = matches!(slot, Playout::Missing { .. });
            if missing && self.covered_slots > 0 {
                self.covered_slots -= 1;
                continue;
            }
            if silent && missing {
                // The source stopped: send nothing (as DTX would) instead of concealment
                // forever, but let our clock run (a slot is the sender's packet duration,
                // `step` our 20 ms) so the next talkspurt is placed right.
                self.ts = self
                    .ts
                    .wrapping_add(self.step * self.jitter_config.ptime_ms / 20);
                continue;
            }
            match slot {
                // A source decoded on arrival has its decoder past this slot already:
                // concealing on it would slip PLC in between packets it has decoded, and
                // corrupt the next ones (up to clipping, with Opus).
                Playout::Frame { payload, .. } if self.decodes_on_arrival => {
                    if payload.is_empty() {
                        self.decoder
                            .codec()
                            .conceal_apart(slot_samples, &mut self.decoded);
                    } else {
                        self.decoded.extend(
                            payload
                                .chunks_exact(2)
                                .map(|b| i16::from_le_bytes([b[0], b[1]])),
                        );
                    }
                }
                Playout::Frame { payload, .. } => {
                    if self
                        .decoder
                        .codec()
                        .decode(&payload, &mut self.decoded)
                        .is_err()
                    {
                        self.decode_errors += 1;
                        self.decoded.clear();
                        self.decoder
                            .codec()
                            .conceal(slot_samples, &mut self.decoded);
                    }
                }
                Playout::Missing { .. } if self.decodes_on_arrival => {
                    self.decoder
                        .codec()
                        .conceal_apart(slot_samples, &mut self.decoded);
                }
                Playout::Missing { .. } => {
                    self.decoder
                        .codec()
                        .conceal(slot_samples, &mut self.decoded);
                }
            }
            self.covered_slots = if missing {
                0
            } else {
                (self.decoded.len() / slot_samples.max(1)).saturating_sub(1)
            };
            self.resampler.process(&self.decoded, &mut self.pending);
            let frame = self.encoder.frame_samples().max(1);
            while self.pending.len() >= frame {
                let encoded = self
                    .pending
                    .get(..frame)
                    .map(|f| self.encoder.encode(f, &mut self.payload));
                self.pending.drain(..frame);
                if let Some(Ok(())) = encoded {
                    send(Encoded {
                        seq: self.seq,
                        ts: self.ts,
                        payload: &self.payload,
                    });
                    self.seq = self.seq.wrapping_add(1);
                    self.ts = self.ts.wrapping_add(self.step);
                } else {
                    self.decode_errors += 1;
                }
            }
        }
    }

    /// Header fields for a relayed telephone-event packet: a sequence number in this
    /// stream and the event's start on our clock (the event keeps one timestamp, RFC 4733).
    pub fn map_event(&mut self, event_ts: u32) -> (u16, u32) {
        let out_ts = match self.event_map {
            Some((src, ours)) if src == event_ts => ours,
            _ => {
                self.event_map = Some((event_ts, self.ts));
                self.ts
            }
        };
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        (seq, out_ts)
    }

    /// Converts an event duration from the source clock to ours.
    pub fn scale_duration(&self, duration: u16) -> u16 {
        let scaled = u64::from(duration) * u64::from(self.out_clock) / u64::from(self.in_clock);
        u16::try_from(scaled).unwrap_or(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::PacketDuration;

    /// Feeds packets `(seq, timestamp)` of one SSRC at 8 kHz; what each one returned.
    fn observe_all(packets: &[(u16, u32)]) -> Vec<Option<u32>> {
        let mut duration = PacketDuration::default();
        packets
            .iter()
            .map(|&(seq, ts)| duration.observe(7, seq, ts, 8000))
            .collect()
    }

    #[test]
    fn a_steady_30ms_sender_is_seen_after_three_agreeing_packets() {
        let seen = observe_all(&[(1, 0), (2, 240), (3, 480), (4, 720), (5, 960)]);
        assert_eq!(seen, [None, None, None, Some(30), Some(30)]);
    }

    #[test]
    fn pauses_losses_and_odd_steps_are_not_a_packet_duration() {
        // 20 ms packets with one 60 ms pause (silence suppression keeps the sequence).
        let pause = observe_all(&[(1, 0), (2, 160), (3, 640), (4, 800), (5, 960)]);
        assert!(
            pause.iter().all(|d| d.is_none_or(|ms| ms == 20)),
            "{pause:?}"
        );
        // Lost packets: the step over a sequence gap says nothing.
        assert_eq!(
            observe_all(&[(1, 0), (3, 480), (5, 960), (7, 1440)]),
            [None; 4]
        );
        // 25 ms (not a multiple of 10) and 200 ms (beyond 120) are not taken.
        assert_eq!(
            observe_all(&[(1, 0), (2, 200), (3, 400), (4, 600), (5, 800)]),
            [None; 5]
        );
        assert_eq!(
            observe_all(&[(1, 0), (2, 1600), (3, 3200), (4, 4800), (5, 6400)]),
            [None; 5]
        );
    }

    #[test]
    fn a_new_ssrc_starts_counting_again() {
        let mut duration = PacketDuration::default();
        for (seq, ts) in [(1, 0), (2, 240), (3, 480)] {
            assert_eq!(duration.observe(1, seq, ts, 8000), None);
        }
        // Another source continues the numbers: not the same stream.
        assert_eq!(duration.observe(2, 4, 720, 8000), None);
        assert_eq!(duration.observe(2, 5, 960, 8000), None);
    }
}

//! Decoded audio of both legs on one timeline, for the recording and the taps.
//!
//! Each leg's PCM (resampled to the timeline's rate when the legs' rates differ) is placed
//! by its RTP timestamp and the wall clock (`recorder::Timeline`), so loss, DTX and DTMF
//! (whose packets are never pushed: PCI) become silence of the right length and the two
//! channels cannot drift. At every tick the frames the timeline releases go to the disk
//! thread (when recording) and, split per role and resampled to 16 kHz, to the taps.
//! A recording pause is a timeline pause: the file and the taps get silence for it.

use std::time::Instant;

use tokio::sync::mpsc;

use crate::recorder::{Channel, StreamTime, Timeline, TimelineConfig};

use super::disk::DiskWriter;
use super::resample::StreamResampler;
use super::types::{LegSide, MediaEvent, PauseRecord, RecordingLoss, TapFrame};

/// The rate the taps deliver.
pub const TAP_RATE: u32 = 16_000;

struct TapRole {
    resampler: StreamResampler,
    /// 16 kHz samples delivered or dropped so far: the next frame's position.
    position: u64,
    dropped: u64,
    last_overflow_event: Option<Instant>,
}

pub struct Recording {
    pub disk: DiskWriter,
    /// Timeline frame at which the file starts.
    pub start_frame: u64,
    pub agent_side: LegSide,
}

pub struct CallAudio {
    timeline: Timeline,
    rate: u32,
    /// Timeline origin, ms after media start.
    origin_ms: u64,
    agent_side: LegSide,
    /// Per leg (A, B): converts the leg's PCM rate to the timeline's.
    leg_resamplers: [StreamResampler; 2],
    pub recording: Option<Recording>,
    taps: Vec<mpsc::Sender<TapFrame>>,
    tap_roles: [TapRole; 2],
    resampled: Vec<i16>,
    released: Vec<i16>,
    role_buf: Vec<i16>,
}

impl CallAudio {
    pub fn new(
        rate: u32,
        now: Instant,
        origin_ms: u64,
        agent_side: LegSide,
    ) -> Result<Self, String> {
        let timeline = Timeline::new(TimelineConfig::new(rate), now).map_err(|e| e.to_string())?;
        let tap_role = || TapRole {
            resampler: StreamResampler::new(rate, TAP_RATE),
            position: 0,
            dropped: 0,
            last_overflow_event: None,
        };
        Ok(CallAudio {
            timeline,
            rate,
            origin_ms,
            agent_side,
            leg_resamplers: [
                StreamResampler::new(rate, rate),
                StreamResampler::new(rate, rate),
            ],
            recording: None,
            taps: Vec::new(),
            tap_roles: [tap_role(), tap_role()],
            resampled: Vec::with_capacity(2048),
            released: Vec::with_capacity(8192),
            role_buf: Vec::with_capacity(4096),
        })
    }

    fn role_of(&self, side: LegSide) -> Channel {
        if side == self.agent_side {
            Channel::Agent
        } else {
            Channel::Customer
        }
    }

    /// Changes which leg is the agent (left); both channels re-anchor.
    pub fn set_agent_side(&mut self, side: LegSide) {
        if side != self.agent_side {
            self.agent_side = side;
            self.timeline.restart_channel(Channel::Agent);
            self.timeline.restart_channel(Channel::Customer);
        }
    }

    pub fn add_tap(&mut self, tx: mpsc::Sender<TapFrame>) {
        self.taps.push(tx);
    }

    /// The leg's stream changed (new SSRC or codec): anchor it afresh.
    pub fn restart_leg(&mut self, side: LegSide) {
        let role = self.role_of(side);
        self.timeline.restart_channel(role);
    }

    /// Places one packet's decoded PCM (at `pcm_rate`) from `side`.
    pub fn push(
        &mut self,
        side: LegSide,
        timestamp: u32,
        clock_rate: u32,
        pcm_rate: u32,
        pcm: &[i16],
        now: Instant,
    ) {
        let role = self.role_of(side);
        let idx = side.index();
        let rate = self.rate;
        let Some(resampler) = self.leg_resamplers.get_mut(idx) else {
            return;
        };
        if resampler.rates() != (pcm_rate, rate) {
            *resampler = StreamResampler::new(pcm_rate, rate);
        }
        let time = StreamTime::Rtp {
            timestamp,
            clock_rate,
        };
        let result = if resampler.is_identity() {
            self.timeline.push(role, time, pcm, now)
        } else {
            self.resampled.clear();
            resampler.process(pcm, &mut self.resampled);
            self.timeline.push(role, time, &self.resampled, now)
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "timeline refused a packet");
        }
    }

    pub fn pause(&mut self, now: Instant) -> Result<(), String> {
        self.timeline
            .pause(now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub fn resume(&mut self, now: Instant) -> Result<(), String> {
        self.timeline
            .resume(now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    pub fn paused(&self) -> bool {
        self.timeline
            .pauses()
            .last()
            .is_some_and(|p| p.end_frame.is_none())
    }

    /// Pauses as ms from the recording's start.
    pub fn pause_records(&self) -> Vec<PauseRecord> {
        let start = self.recording.as_ref().map_or(0, |r| r.start_frame);
        let rate = u64::from(self.rate.max(1));
        let ms = |frame: u64| frame.saturating_sub(start) * 1000 / rate;
        self.timeline
            .pauses()
            .iter()
            .map(|p| PauseRecord {
                start_ms: ms(p.start_frame),
                end_ms: ms(p.end_frame.unwrap_or(p.start_frame)),
            })
            .collect()
    }

    /// Frames per second of the timeline (and so of the recording).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn emitted_frames(&self) -> u64 {
        self.timeline.stats().emitted_frames
    }

    /// Releases what the wall clock allows to the disk and the taps.
    pub fn tick(&mut self, now: Instant, call_id: &str, events: &mpsc::Sender<MediaEvent>) {
        self.released.clear();
        let mut released = std::mem::take(&mut self.released);
        self.timeline.advance(now, &mut released);
        self.deliver(&released, now, call_id, events);
        self.released = released;
    }

    /// Ends the timeline (everything buffered is released).
    pub fn finish(&mut self, now: Instant, call_id: &str, events: &mpsc::Sender<MediaEvent>) {
        let mut released = std::mem::take(&mut self.released);
        released.clear();
        self.timeline.finish(now, &mut released);
        self.deliver(&released, now, call_id, events);
        self.released = released;
    }

    fn deliver(
        &mut self,
        interleaved: &[i16],
        now: Instant,
        call_id: &str,
        events: &mpsc::Sender<MediaEvent>,
    ) {
        if interleaved.is_empty() {
            return;
        }
        if let Some(rec) = self.recording.as_mut() {
            rec.disk.write(interleaved);
        }
        if self.taps.is_empty() {
            return;
        }
        self.taps.retain(|t| !t.is_closed());
        for role in [Channel::Agent, Channel::Customer] {
            let ch = match role {
                Channel::Agent => 0,
                Channel::Customer => 1,
            };
            self.role_buf.clear();
            let Some(tap) = self.tap_roles.get_mut(ch) else {
                continue;
            };
            let mono = interleaved
                .chunks_exact(2)
                .filter_map(|f| f.get(ch).copied());
            if tap.resampler.is_identity() {
                self.role_buf.extend(mono);
            } else {
                // Small stack-free detour: collect mono, then resample into role_buf.
                self.resampled.clear();
                self.resampled.extend(mono);
                tap.resampler.process(&self.resampled, &mut self.role_buf);
            }
            if self.role_buf.is_empty() {
                continue;
            }
            let start_ms = self.origin_ms + tap.position * 1000 / u64::from(TAP_RATE);
            tap.position += self.role_buf.len() as u64;
            for sender in &self.taps {
                let frame = TapFrame {
                    role,
                    start_ms,
                    samples: self.role_buf.clone(),
                };
                if sender.try_send(frame).is_err() {
                    tap.dropped += 1;
                    let due = tap
                        .last_overflow_event
                        .is_none_or(|t| now.saturating_duration_since(t).as_secs() >= 1);
                    if due {
                        tap.last_overflow_event = Some(now);
                        let _ = events.try_send(MediaEvent::TapOverflow {
                            call_id: call_id.to_string(),
                            role,
                            dropped_total: tap.dropped,
                        });
                    }
                }
            }
        }
    }

    /// What the timeline could not place, per channel, in ms at its rate.
    pub fn recording_loss(&self) -> RecordingLoss {
        let stats = self.timeline.stats();
        let rate = u64::from(self.rate.max(1));
        let ms = |samples: u64| samples * 1000 / rate;
        RecordingLoss {
            late_ms: stats.late_samples.map(ms),
            overrun_ms: stats.overrun_samples.map(ms),
        }
    }

    pub fn tap_drops(&self) -> [u64; 2] {
        [self.tap_roles[0].dropped, self.tap_roles[1].dropped]
    }
}

//! Sans-IO recording timeline.
//!
//! Each channel's first packet is anchored to the wall clock (the timeline's origin is the
//! moment recording started); later packets are placed by their own media timestamps relative
//! to that anchor. So loss, DTX and silence suppression leave holes that are emitted as
//! silence of exactly the right length, reordered packets land where they belong, and a leg
//! that starts later begins with silence instead of being shifted against the other one.
//!
//! Frames are emitted once the wall clock has passed them by `playout_delay` (time for late
//! and reordered packets to arrive); anything older is dropped and counted. If a sender's
//! timestamps stray from the wall clock by more than `resync_threshold` (clock drift, a
//! timestamp jump, a new stream), the channel is re-anchored to the wall clock, so neither
//! channel can drift away from the other or from real time.

use std::time::{Duration, Instant};

use super::pending::{CHANNELS, PendingSamples};

/// Which side of the call a packet belongs to; also its place in the stereo frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Left channel.
    Agent,
    /// Right channel.
    Customer,
}

impl Channel {
    fn index(self) -> usize {
        match self {
            Channel::Agent => 0,
            Channel::Customer => 1,
        }
    }
}

/// Where a packet's first sample sits on its stream's own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamTime {
    /// An RTP timestamp (wraps at 2^32) on a clock of `clock_rate` Hz (e.g. 8000 for G.711,
    /// 48000 for Opus whatever the decoded rate).
    Rtp { timestamp: u32, clock_rate: u32 },
    /// Media time since the stream's own (arbitrary) epoch, for sources without RTP.
    Media(Duration),
}

/// Timeline settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineConfig {
    /// Samples per second of the recording: 8000, 16000 or 48000. Pushed PCM must be mono at
    /// this rate (the caller decodes and resamples).
    pub sample_rate: u32,
    /// How long after its wall-clock time a frame is held for late packets before emission.
    pub playout_delay: Duration,
    /// How far a packet's timestamp-derived position may stray from the wall clock before the
    /// channel is re-anchored.
    pub resync_threshold: Duration,
    /// Longest packet accepted (longer ones are refused rather than buffered without bound).
    pub max_packet: Duration,
}

impl TimelineConfig {
    /// Defaults suited to telephony: 200 ms playout delay, 1 s resync threshold, 1 s packets.
    pub fn new(sample_rate: u32) -> Self {
        TimelineConfig {
            sample_rate,
            playout_delay: Duration::from_millis(200),
            resync_threshold: Duration::from_secs(1),
            max_packet: Duration::from_secs(1),
        }
    }
}

/// Why a push or a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimelineError {
    #[error("unsupported sample rate {0} Hz (expected 8000, 16000 or 48000)")]
    UnsupportedRate(u32),
    #[error("RTP clock rate must be non-zero")]
    ZeroClockRate,
    #[error("packet of {samples} samples is longer than the {max} allowed")]
    PacketTooLong { samples: usize, max: u64 },
    #[error("recording is not paused")]
    NotPaused,
    #[error("recording is already paused")]
    AlreadyPaused,
    #[error("timeline has finished")]
    Finished,
}

/// What happened to one pushed packet, in samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Samples stored for emission.
    pub placed: u64,
    /// Samples that arrived after their place had been emitted.
    pub late: u64,
    /// Samples whose place was already filled (duplicated packets).
    pub duplicate: u64,
    /// Samples dropped because they lay further ahead than the buffer may hold.
    pub overrun: u64,
    /// Whether this packet (re-)anchored its channel to the wall clock.
    pub anchored: bool,
}

/// Running counters over the whole recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineStats {
    pub placed_samples: [u64; 2],
    pub late_samples: [u64; 2],
    pub duplicate_samples: [u64; 2],
    pub overrun_samples: [u64; 2],
    /// Re-anchorings after the first (timestamp jumps or drift beyond the threshold).
    pub resyncs: [u64; 2],
    /// Frames emitted so far (each frame is one sample per channel).
    pub emitted_frames: u64,
}

/// A paused stretch of the recording, in frames from the start of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseInterval {
    pub start_frame: u64,
    /// `None` while still paused.
    pub end_frame: Option<u64>,
}

impl PauseInterval {
    fn contains(&self, frame: u64) -> bool {
        frame >= self.start_frame && self.end_frame.is_none_or(|end| frame < end)
    }
}

/// Where a channel's stream clock is pinned to the timeline.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Timeline frame of the anchoring packet's first sample (may be negative in principle:
    /// kept signed so arithmetic never underflows).
    frame: i64,
    /// That packet's extended stream time, in stream clock ticks.
    ticks: i64,
    clock_rate: u32,
    /// Last RTP timestamp seen, to extend the 32-bit timestamp across wraps.
    last_rtp: u32,
    last_ticks: i64,
}

#[derive(Debug, Default)]
struct ChannelState {
    anchor: Option<Anchor>,
    /// Samples for frames `emitted..emitted+len` (holes are silence).
    pending: PendingSamples,
}

/// The two-channel recording timeline. Feed it packets with [`Timeline::push`], call
/// [`Timeline::advance`] regularly (e.g. every 20 ms) to collect interleaved frames ready to
/// write, and [`Timeline::finish`] at hangup.
#[derive(Debug)]
pub struct Timeline {
    config: TimelineConfig,
    origin: Instant,
    channels: [ChannelState; 2],
    /// Frames handed out so far; everything before this is final.
    emitted: u64,
    pauses: Vec<PauseInterval>,
    /// First pause interval that may still cover frames not yet emitted (intervals are in
    /// order and never overlap), so emission does not rescan a long pause history per frame.
    pause_cursor: usize,
    stats: TimelineStats,
    finished: bool,
}

impl Timeline {
    /// Starts a timeline whose frame 0 is `now` (the moment recording began).
    pub fn new(config: TimelineConfig, now: Instant) -> Result<Self, TimelineError> {
        if !matches!(config.sample_rate, 8000 | 16000 | 48000) {
            return Err(TimelineError::UnsupportedRate(config.sample_rate));
        }
        Ok(Timeline {
            config,
            origin: now,
            channels: [ChannelState::default(), ChannelState::default()],
            emitted: 0,
            pauses: Vec::new(),
            pause_cursor: 0,
            stats: TimelineStats::default(),
            finished: false,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.config.sample_rate
    }

    pub fn stats(&self) -> TimelineStats {
        self.stats
    }

    /// Paused intervals so far (the last may still be open).
    pub fn pauses(&self) -> &[PauseInterval] {
        &self.pauses
    }

    /// Converts a frame position to time from the start of the recording.
    pub fn frame_time(&self, frame: u64) -> Duration {
        let rate = u64::from(self.config.sample_rate);
        Duration::from_secs(frame / rate)
            + Duration::from_nanos((frame % rate) * 1_000_000_000 / rate)
    }

    fn duration_frames(&self, d: Duration) -> u64 {
        let frames = d.as_nanos() * u128::from(self.config.sample_rate) / 1_000_000_000;
        u64::try_from(frames).unwrap_or(u64::MAX)
    }

    /// Most frames held per channel: the playout delay, the resync slack and two packets.
    fn max_span(&self) -> u64 {
        let c = &self.config;
        self.duration_frames(
            c.playout_delay
                .saturating_add(c.resync_threshold)
                .saturating_add(c.max_packet.saturating_mul(2)),
        )
    }

    /// The frame the wall clock is at (a clock that went backwards reads as the origin).
    fn wall_frame(&self, now: Instant) -> u64 {
        self.duration_frames(now.saturating_duration_since(self.origin))
    }

    /// Forgets a channel's anchor so its next packet is pinned to the wall clock afresh; call
    /// it when the leg's stream changes (new SSRC, re-INVITE to another codec).
    pub fn restart_channel(&mut self, channel: Channel) {
        if let Some(state) = self.channels.get_mut(channel.index()) {
            state.anchor = None;
        }
    }

    /// Places one packet of mono PCM (at the timeline's rate) for `channel`.
    pub fn push(
        &mut self,
        channel: Channel,
        time: StreamTime,
        samples: &[i16],
        now: Instant,
    ) -> Result<PushOutcome, TimelineError> {
        if self.finished {
            return Err(TimelineError::Finished);
        }
        let max = self.duration_frames(self.config.max_packet);
        if samples.len() as u64 > max {
            return Err(TimelineError::PacketTooLong {
                samples: samples.len(),
                max,
            });
        }
        let (ticks, clock_rate) = self.stream_ticks(channel, time)?;
        let len = samples.len() as i64;
        let wall = self.wall_frame(now) as i64;
        // The packet's last sample was captured about when it arrived, so the wall clock puts
        // its first sample one packet-length earlier.
        // Never anchor into frames already emitted (at the very start `wall - len` is
        // negative): the packet would be dropped as late for no fault of its own.
        let wall_start = (wall - len).max(self.emitted as i64);
        let resync = self.duration_frames(self.config.resync_threshold) as i64;

        let mut outcome = PushOutcome::default();
        let idx = channel.index();
        let anchored_start = self.channels[idx].anchor.map(|a| {
            a.frame.saturating_add(scale(
                ticks.saturating_sub(a.ticks),
                clock_rate,
                self.config.sample_rate,
            ))
        });
        let start = match anchored_start {
            Some(start) if start.abs_diff(wall_start) <= resync as u64 => start,
            previous => {
                if previous.is_some() {
                    self.stats.resyncs[idx] += 1;
                }
                outcome.anchored = true;
                let last_rtp = match time {
                    StreamTime::Rtp { timestamp, .. } => timestamp,
                    StreamTime::Media(_) => 0,
                };
                self.channels[idx].anchor = Some(Anchor {
                    frame: wall_start,
                    ticks,
                    clock_rate,
                    last_rtp,
                    last_ticks: ticks,
                });
                wall_start
            }
        };

        let emitted = self.emitted as i64;
        let span = self.max_span() as i64;
        let state = &mut self.channels[idx];
        // The packet splits into samples whose frames were already emitted (late), those
        // that fit the buffer, and those beyond what it may hold (only reachable when the
        // caller stopped calling `advance`: refused rather than buffered without bound).
        let first_fit = emitted.saturating_sub(start).clamp(0, len);
        let end_fit = emitted
            .saturating_add(span)
            .saturating_sub(start)
            .clamp(first_fit, len);
        outcome.late = first_fit as u64;
        outcome.overrun = (len - end_fit) as u64;
        if let Some(run) = samples.get(first_fit as usize..end_fit as usize)
            && !run.is_empty()
        {
            let offset = (start.saturating_add(first_fit) - emitted) as usize;
            state.pending.ensure_len(offset + run.len());
            let (placed, duplicate) = state.pending.place(offset, run);
            outcome.placed = placed;
            outcome.duplicate = duplicate;
        }
        self.stats.placed_samples[idx] += outcome.placed;
        self.stats.late_samples[idx] += outcome.late;
        self.stats.duplicate_samples[idx] += outcome.duplicate;
        self.stats.overrun_samples[idx] += outcome.overrun;
        Ok(outcome)
    }

    /// Extends the packet's stream time to a monotonic tick count on its own clock.
    fn stream_ticks(
        &mut self,
        channel: Channel,
        time: StreamTime,
    ) -> Result<(i64, u32), TimelineError> {
        let state = &mut self.channels[channel.index()];
        match time {
            StreamTime::Rtp { clock_rate: 0, .. } => Err(TimelineError::ZeroClockRate),
            StreamTime::Rtp {
                timestamp,
                clock_rate,
            } => {
                match state.anchor.as_mut() {
                    Some(anchor) if anchor.clock_rate == clock_rate => {
                        // The signed 32-bit difference carries the timestamp across wraps and
                        // lets reordered (slightly older) packets go backwards.
                        let delta = i64::from(timestamp.wrapping_sub(anchor.last_rtp) as i32);
                        let ticks = anchor.last_ticks + delta;
                        if delta > 0 {
                            anchor.last_rtp = timestamp;
                            anchor.last_ticks = ticks;
                        }
                        Ok((ticks, clock_rate))
                    }
                    Some(_) => {
                        // A different clock means a different stream: anchor afresh.
                        state.anchor = None;
                        Ok((0, clock_rate))
                    }
                    None => Ok((0, clock_rate)),
                }
            }
            StreamTime::Media(d) => {
                let rate = self.config.sample_rate;
                if state.anchor.is_some_and(|a| a.clock_rate != rate) {
                    state.anchor = None;
                }
                let ticks = d.as_nanos() * u128::from(rate) / 1_000_000_000;
                Ok((i64::try_from(ticks).unwrap_or(i64::MAX / 2), rate))
            }
        }
    }

    /// Starts a paused interval at the current wall-clock position: frames from here on are
    /// written as silence until [`Timeline::resume`].
    pub fn pause(&mut self, now: Instant) -> Result<PauseInterval, TimelineError> {
        if self.pauses.last().is_some_and(|p| p.end_frame.is_none()) {
            return Err(TimelineError::AlreadyPaused);
        }
        // Never reach back into frames already handed out: they are on disk.
        // nor before the previous interval's end (a clock stepping back must not make
        // intervals overlap or go out of order).
        let previous_end = self.pauses.last().and_then(|p| p.end_frame).unwrap_or(0);
        let start_frame = self.wall_frame(now).max(self.emitted).max(previous_end);
        let interval = PauseInterval {
            start_frame,
            end_frame: None,
        };
        self.pauses.push(interval);
        Ok(interval)
    }

    /// Closes the open paused interval at the current wall-clock position.
    pub fn resume(&mut self, now: Instant) -> Result<PauseInterval, TimelineError> {
        let wall = self.wall_frame(now);
        match self.pauses.last_mut() {
            Some(p) if p.end_frame.is_none() => {
                p.end_frame = Some(wall.max(p.start_frame));
                Ok(*p)
            }
            _ => Err(TimelineError::NotPaused),
        }
    }

    /// Appends to `out` (interleaved left/right) every frame the wall clock has passed by
    /// the playout delay; returns how many frames were appended.
    pub fn advance(&mut self, now: Instant, out: &mut Vec<i16>) -> u64 {
        let delay = self.duration_frames(self.config.playout_delay);
        let horizon = self.wall_frame(now).saturating_sub(delay);
        self.emit_until(horizon, out)
    }

    /// Ends the recording: emits everything up to the wall clock or the last received
    /// sample, whichever is later. Later pushes are refused.
    pub fn finish(&mut self, now: Instant, out: &mut Vec<i16>) -> u64 {
        let buffered = self
            .channels
            .iter()
            .map(|c| c.pending.len() as u64)
            .max()
            .unwrap_or(0);
        let end = self.wall_frame(now).max(self.emitted + buffered);
        let n = self.emit_until(end, out);
        if let Some(p) = self.pauses.last_mut()
            && p.end_frame.is_none()
        {
            p.end_frame = Some(end.max(p.start_frame));
        }
        self.finished = true;
        n
    }

    fn emit_until(&mut self, end: u64, out: &mut Vec<i16>) -> u64 {
        if end <= self.emitted {
            return 0;
        }
        let count = end - self.emitted;
        let Ok(frames) = usize::try_from(count) else {
            return 0;
        };
        let base = out.len();
        out.resize(base + frames.saturating_mul(CHANNELS), 0);
        let Some(dest) = out.get_mut(base..) else {
            return 0;
        };
        // In runs between pause boundaries: a paused run is discarded (its output stays
        // silent), any other is copied out channel by channel.
        let mut written = 0usize;
        while self.emitted < end {
            let frame = self.emitted;
            while self
                .pauses
                .get(self.pause_cursor)
                .and_then(|p| p.end_frame)
                .is_some_and(|e| e <= frame)
            {
                self.pause_cursor += 1;
            }
            let (paused, run_end) = match self.pauses.get(self.pause_cursor) {
                Some(p) if p.contains(frame) => (true, p.end_frame.unwrap_or(end)),
                Some(p) => (false, p.start_frame),
                None => (false, end),
            };
            let run_end = run_end.clamp(frame + 1, end);
            let run = (run_end - frame) as usize;
            for (ch, state) in self.channels.iter_mut().enumerate() {
                let target = if paused {
                    None
                } else {
                    dest.get_mut(written * CHANNELS..).map(|d| (d, ch))
                };
                state.pending.take_front(run, target);
            }
            written += run;
            self.emitted = run_end;
        }
        self.stats.emitted_frames = self.emitted;
        count
    }
}

/// Converts a tick difference on a `from`-Hz clock to frames at `to` Hz (rounding toward
/// negative infinity keeps consecutive packets contiguous).
fn scale(ticks: i64, from: u32, to: u32) -> i64 {
    if from == to {
        return ticks;
    }
    let scaled = i128::from(ticks) * i128::from(to);
    let from = i128::from(from);
    i64::try_from(scaled.div_euclid(from)).unwrap_or(if ticks < 0 {
        i64::MIN / 2
    } else {
        i64::MAX / 2
    })
}

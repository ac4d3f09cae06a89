//! Live talk turns from a call in progress: the media side hands over decoded 16 kHz audio
//! per role as it arrives (the engine's taps), and this finds the utterances with the same VAD
//! and segmenter the post-call pipeline uses, so a turn seen live and the same turn found
//! after the call agree.
//!
//! Sans-IO: push frames, get finished utterances. Frames carry their position on the call's
//! timeline; a gap (frames the media side dropped because this consumer lagged) is filled with
//! silence of its length, so later turns keep their true times.

use crate::SpeakerRole;
use crate::segment::{FinishedUtterance, SegmentParams, Segmenter};
use crate::vad::{VadParams, VadStream};

const RATE: u64 = 16_000;
/// A gap longer than this is not filled sample by sample: the channel restarts at the new
/// position (nothing can be said about a minute of missing audio anyway).
const MAX_FILLED_GAP_MS: u64 = 10_000;

/// A talk turn found live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveUtterance {
    pub role: SpeakerRole,
    /// Speech start and end on the call's media timeline, ms.
    pub start_ms: u64,
    pub end_ms: u64,
}

struct Channel {
    role: SpeakerRole,
    vad: VadStream,
    segmenter: Segmenter,
    /// Where on the call's timeline this channel's 16 kHz sample 0 lies (changes after a
    /// restart over a long gap).
    origin_ms: u64,
    /// Samples fed so far since `origin_ms`.
    fed: u64,
    scratch: Vec<f32>,
}

impl Channel {
    fn new(role: SpeakerRole, vad: &VadParams, segment: &SegmentParams, origin_ms: u64) -> Self {
        Self {
            role,
            vad: VadStream::earshot(vad.clone()),
            segmenter: Segmenter::new(segment.clone(), false),
            origin_ms,
            fed: 0,
            scratch: Vec::new(),
        }
    }

    fn position_ms(&self) -> u64 {
        self.origin_ms + self.fed * 1000 / RATE
    }

    fn feed(&mut self, samples: &[f32], closed: &mut Vec<FinishedUtterance>) {
        let (vad, seg) = (&mut self.vad, &mut self.segmenter);
        vad.push(samples, &mut |d, f| seg.push_frame(d, f, closed));
        self.fed += samples.len() as u64;
    }

    fn finish(&mut self, closed: &mut Vec<FinishedUtterance>) {
        let (vad, seg) = (&mut self.vad, &mut self.segmenter);
        vad.finish(&mut |d, f| seg.push_frame(d, f, closed));
        seg.finish(closed);
    }

    fn emit(&self, closed: &mut Vec<FinishedUtterance>, out: &mut Vec<LiveUtterance>) {
        for u in closed.drain(..) {
            out.push(LiveUtterance {
                role: self.role,
                start_ms: self.origin_ms + u.start_ms(),
                end_ms: self.origin_ms + u.end_ms(),
            });
        }
    }
}

/// Live utterance finder for the two parties of a call.
pub struct LiveUtterances {
    vad: VadParams,
    segment: SegmentParams,
    channels: Vec<Channel>,
    closed: Vec<FinishedUtterance>,
}

impl LiveUtterances {
    pub fn new(vad: VadParams, segment: SegmentParams) -> Self {
        Self {
            vad,
            segment,
            channels: Vec::new(),
            closed: Vec::new(),
        }
    }

    fn channel(&mut self, role: SpeakerRole, start_ms: u64) -> usize {
        match self.channels.iter().position(|c| c.role == role) {
            Some(i) => i,
            None => {
                // Both channels count from the call's media start, as the recording does, so
                // their VAD frames fall where the post-call pipeline's fall; a first frame
                // arriving late is preceded by silence (filled by `push`).
                let origin = if start_ms <= MAX_FILLED_GAP_MS {
                    0
                } else {
                    start_ms
                };
                self.channels
                    .push(Channel::new(role, &self.vad, &self.segment, origin));
                self.channels.len() - 1
            }
        }
    }

    /// Feeds one frame of 16 kHz mono audio of `role` starting at `start_ms` on the call's
    /// timeline; utterances that ended are appended to `out`.
    pub fn push(
        &mut self,
        role: SpeakerRole,
        start_ms: u64,
        samples: &[i16],
        out: &mut Vec<LiveUtterance>,
    ) {
        let i = self.channel(role, start_ms);
        let channel = &mut self.channels[i];
        let at = channel.position_ms();
        if start_ms + 1 < at {
            // Older than what was already fed (a duplicate or reordered frame): skip it.
            return;
        }
        let gap_ms = start_ms.saturating_sub(at);
        if gap_ms > MAX_FILLED_GAP_MS {
            channel.finish(&mut self.closed);
            channel.emit(&mut self.closed, out);
            *channel = Channel::new(role, &self.vad, &self.segment, start_ms);
        } else if gap_ms > 1 {
            let silence = vec![0.0f32; (gap_ms * RATE / 1000) as usize];
            channel.feed(&silence, &mut self.closed);
        }
        let mut scratch = std::mem::take(&mut channel.scratch);
        scratch.clear();
        scratch.extend(samples.iter().map(|&s| f32::from(s) / 32768.0));
        channel.feed(&scratch, &mut self.closed);
        channel.scratch = scratch;
        channel.emit(&mut self.closed, out);
    }

    /// The call ended: closes open utterances.
    pub fn finish(&mut self, out: &mut Vec<LiveUtterance>) {
        for channel in &mut self.channels {
            channel.finish(&mut self.closed);
            channel.emit(&mut self.closed, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` taps of 20 ms silence from `from_ms` on.
    fn silent_taps(from_ms: u64, n: u64) -> Vec<(u64, Vec<i16>)> {
        (0..n)
            .map(|i| (from_ms + i * 20, vec![0i16; 320]))
            .collect()
    }

    #[test]
    fn gaps_are_filled_and_old_frames_ignored() {
        let mut live = LiveUtterances::new(VadParams::default(), SegmentParams::default());
        let mut out = Vec::new();
        // Every other tap lost: the channel still reaches the last tap's end.
        for (t, s) in silent_taps(0, 50).iter().step_by(2) {
            live.push(SpeakerRole::Agent, *t, s, &mut out);
        }
        assert_eq!(live.channels[0].position_ms(), 980);
        // A duplicate of an old tap changes nothing.
        live.push(SpeakerRole::Agent, 0, &[0; 320], &mut out);
        assert_eq!(live.channels[0].position_ms(), 980);
        live.finish(&mut out);
        assert!(out.is_empty(), "silence is no talk turn: {out:?}");
    }

    #[test]
    fn a_long_gap_restarts_the_channel_at_the_new_position() {
        let mut live = LiveUtterances::new(VadParams::default(), SegmentParams::default());
        let mut out = Vec::new();
        for (t, s) in silent_taps(0, 5) {
            live.push(SpeakerRole::Customer, t, &s, &mut out);
        }
        live.push(SpeakerRole::Customer, 60_000, &[0; 320], &mut out);
        assert_eq!(live.channels[0].origin_ms, 60_000);
        assert_eq!(live.channels[0].position_ms(), 60_020);
    }
}

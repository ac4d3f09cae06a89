//! Voice activity detection, per channel, on 16 kHz audio.
//!
//! Split in two so another model (e.g. Silero over ONNX) can be added later without touching
//! the rest: a [`SpeechScorer`] turns one fixed-size frame into a speech probability, and
//! [`VadStream`] is the sans-IO state machine around it (framing of arbitrary-sized input,
//! score smoothing, hysteresis). [`VadStream`] emits one decision per frame; cutting those into
//! utterances is `segment`'s job.

use std::collections::VecDeque;

/// Scores one frame of 16 kHz mono audio in [-1, 1] as a speech probability in [0, 1].
pub trait SpeechScorer: Send {
    /// Samples per frame this scorer wants (earshot: 256 = 16 ms).
    fn frame_len(&self) -> usize;
    fn score(&mut self, frame: &[f32]) -> f32;
    fn reset(&mut self);
}

/// The built-in pure-Rust scorer: earshot's small neural VAD.
pub struct EarshotScorer {
    detector: Box<earshot::Detector>,
    pcm: Vec<i16>,
}

impl Default for EarshotScorer {
    fn default() -> Self {
        Self {
            // The detector is ~8 KiB of state; keep it off the stack.
            detector: Box::default(),
            pcm: vec![0; EARSHOT_FRAME],
        }
    }
}

const EARSHOT_FRAME: usize = 256;

impl SpeechScorer for EarshotScorer {
    fn frame_len(&self) -> usize {
        EARSHOT_FRAME
    }

    fn score(&mut self, frame: &[f32]) -> f32 {
        // i16 input: earshot's f32 entry point debug-asserts the [-1, 1] range, and decoded
        // audio can overshoot slightly (MP3/AAC); clamping while converting avoids both issues.
        for (dst, s) in self.pcm.iter_mut().zip(frame) {
            *dst = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
        }
        let p = self.detector.predict_i16(&self.pcm);
        if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn reset(&mut self) {
        self.detector.reset();
    }
}

/// Tuning of the smoothing and hysteresis around the scorer.
#[derive(Debug, Clone, PartialEq)]
pub struct VadParams {
    /// Smoothed score at or above which a silent channel switches to speech.
    pub start_threshold: f32,
    /// Smoothed score below which a speaking channel switches to silence (lower than
    /// `start_threshold`: hysteresis keeps one word's dips from flapping the state).
    pub end_threshold: f32,
    /// Scores averaged over this many frames (16 ms each) before thresholds apply.
    pub smoothing_frames: usize,
    /// Frames that must stay below `end_threshold` before speech ends (hangover).
    pub hangover_frames: usize,
    /// Frames quieter than this RMS are silence whatever the model says: digital silence and
    /// line hiss should never open an utterance.
    pub min_rms: f32,
    /// Energy gate: the model only runs on frames at least this many dB above the channel's
    /// tracked noise floor (plus a few frames after, so endings are judged by the model).
    /// Stationary noise and comfort noise then cost almost nothing. `None` runs the model on
    /// every frame above `min_rms`.
    pub gate_margin_db: Option<f32>,
    /// Inside confirmed speech (the model's last score at or above `start_threshold`) on frames
    /// well above the noise floor (gate margin + 10 dB, or gate margin + 5 dB when no more than
    /// 6 dB below the last frame the model confirmed), the model is re-checked only every this
    /// many frames; in between the last score stands. A larger energy drop, or more than 3
    /// frames under the gate, ends the skipping at once, so fading endings and pauses are still
    /// judged by the model frame by frame. 0 scores every frame.
    pub sustain_frames: usize,
}

impl Default for VadParams {
    fn default() -> Self {
        Self {
            start_threshold: 0.5,
            end_threshold: 0.3,
            smoothing_frames: 3,
            hangover_frames: 4,
            min_rms: 0.002,
            gate_margin_db: Some(5.0),
            sustain_frames: 48,
        }
    }
}

/// One VAD decision for one frame, with the frame's audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameDecision {
    /// Index of the frame's first sample on the channel's 16 kHz timeline.
    pub start_sample: u64,
    pub speech: bool,
    /// The frame itself scored as speech (false in hangover frames, which only bridge dips):
    /// lets `segment` end an utterance at the last voiced frame rather than after the hangover.
    pub voiced: bool,
    /// RMS energy of the frame (used by `segment` to pick quiet cut points).
    pub rms: f32,
}

/// Sans-IO VAD state machine for one channel: push 16 kHz samples of any length, read decisions.
pub struct VadStream<S: SpeechScorer = EarshotScorer> {
    scorer: S,
    params: VadParams,
    frame: Vec<f32>,
    next_frame_start: u64,
    recent: VecDeque<f32>,
    speaking: bool,
    quiet_run: usize,
    /// Consecutive frames not loud enough for the model (below `min_rms` or the gate).
    quiet_frames: usize,
    gate: NoiseFloor,
    /// Loud speech frames left to skip before the model is asked again.
    sustain_left: usize,
    /// The last score the model gave (stands in for frames it skips).
    last_score: f32,
    /// Level (dB) of the frame the model last confirmed speech on, while sustaining.
    sustain_ref_db: f32,
    /// How many of the latest frames the model has not seen (0: it saw the frame just before
    /// this one, so its sample window and feature context are continuous). Before it next
    /// scores, it is first shown the last of them from `history` (at most `HISTORY_FRAMES`).
    frames_unseen: usize,
    /// The last `HISTORY_FRAMES` frames, oldest first (warm-up audio for the model).
    history: Vec<f32>,
    history_frames: usize,
}

/// Frames replayed to the model before scoring after it skipped some: earshot looks at a 48 ms
/// window (three 16 ms frames), so two earlier frames make the window and feature context real.
const HISTORY_FRAMES: usize = 2;

/// A per-channel noise-floor tracker on frame levels in dB: it follows drops quickly and rises
/// slowly (≈ 3 dB/s), so it settles on the line's background level (hiss, hum, comfort noise)
/// and speech, which keeps dipping to that floor between syllables, hardly moves it.
#[derive(Debug, Clone)]
struct NoiseFloor {
    floor_db: f32,
    min_db: f32,
}

/// Skipping the model inside speech needs the frame this far above the gate as well: speech
/// endings fade towards the floor, and there the model must judge every frame, or utterance
/// ends drift late on noisy lines.
const SUSTAIN_EXTRA_DB: f32 = 10.0;

/// A dip of at most this many frames that are too quiet for the gate (48 ms: stop closures and
/// the digital silence some codecs and TTS put inside words) does not end the sustain: the
/// smoothing and hangover keep the channel speaking through it anyway, so re-asking the model
/// (with its warm-up frames) when the sound returns would only confirm what it said before.
/// Dips longer than this, where an utterance may end, reset it.
const SUSTAIN_DIP_FRAMES: usize = 3;

/// Inside the sustain, a frame less than `SUSTAIN_EXTRA_DB` above the gate may still skip the
/// model if it is at least this far above the gate and no more than `SUSTAIN_DROP_DB` quieter
/// than the frame the model last confirmed as speech: quiet vowels and voiced consonants sit
/// there for many frames and the model's verdict on a frame of the same level stands. A drop of
/// more than that (where speech fades out towards the floor) asks the model again at once, so
/// utterance ends are still judged frame by frame.
const SUSTAIN_NEAR_DB: f32 = 5.0;
const SUSTAIN_DROP_DB: f32 = 6.0;

/// Share of the gap closed per frame when a frame is below the floor.
const FLOOR_FALL: f32 = 0.2;
/// Rise per 16 ms frame.
const FLOOR_RISE_DB_PER_FRAME: f32 = 0.05;

impl NoiseFloor {
    fn new(min_rms: f32) -> Self {
        let min_db = level_db(min_rms);
        Self {
            floor_db: min_db,
            min_db,
        }
    }

    /// Returns how far above the floor (before this frame) the frame is, then updates the floor.
    fn observe(&mut self, frame_db: f32) -> f32 {
        let above = frame_db - self.floor_db;
        if frame_db < self.floor_db {
            // Falls fast but not at once, so the floor sits among the noise's quieter frames
            // rather than at its single quietest one. Never below `min_rms`: digital silence
            // must not make every later frame "loud".
            self.floor_db += FLOOR_FALL * (frame_db - self.floor_db);
            self.floor_db = self.floor_db.max(self.min_db);
        } else {
            self.floor_db += FLOOR_RISE_DB_PER_FRAME;
        }
        above
    }
}

fn level_db(rms: f32) -> f32 {
    20.0 * rms.max(1e-9).log10()
}

/// Quiet frames still shown to the model before it is paused (128 ms: beyond its context).
const QUIET_FRAMES_SCORED: usize = 8;

impl VadStream<EarshotScorer> {
    pub fn earshot(params: VadParams) -> Self {
        Self::new(EarshotScorer::default(), params)
    }
}

impl<S: SpeechScorer> VadStream<S> {
    pub fn new(scorer: S, params: VadParams) -> Self {
        let len = scorer.frame_len().max(1);
        Self {
            scorer,
            frame: Vec::with_capacity(len),
            next_frame_start: 0,
            recent: VecDeque::with_capacity(params.smoothing_frames.max(1)),
            gate: NoiseFloor::new(params.min_rms),
            params,
            speaking: false,
            quiet_run: 0,
            quiet_frames: 0,
            sustain_left: 0,
            last_score: 0.0,
            sustain_ref_db: 0.0,
            frames_unseen: 0,
            history: vec![0.0; len * HISTORY_FRAMES],
            history_frames: 0,
        }
    }

    pub fn frame_len(&self) -> usize {
        self.scorer.frame_len().max(1)
    }

    /// Feed samples; `on_frame(decision, frame_audio)` is called for every completed frame.
    pub fn push(&mut self, samples: &[f32], on_frame: &mut dyn FnMut(FrameDecision, &[f32])) {
        let len = self.frame_len();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (len - self.frame.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.frame.extend_from_slice(head);
            rest = tail;
            if self.frame.len() == len {
                let decision = self.decide();
                on_frame(decision, &self.frame);
                self.frame.clear();
            }
        }
    }

    /// End of stream: a last partial frame is padded with silence so its audio is not lost.
    pub fn finish(&mut self, on_frame: &mut dyn FnMut(FrameDecision, &[f32])) {
        if self.frame.is_empty() {
            return;
        }
        let real = self.frame.len();
        self.frame.resize(self.frame_len(), 0.0);
        let decision = self.decide();
        on_frame(decision, &self.frame[..real]);
        self.frame.clear();
    }

    fn decide(&mut self) -> FrameDecision {
        let rms = rms(&self.frame);
        let frame_db = level_db(rms);
        let above_floor = self.gate.observe(frame_db);
        let loud = rms >= self.params.min_rms
            && self
                .params
                .gate_margin_db
                .is_none_or(|margin| above_floor >= margin);
        // Frames that are not loud are silence whatever the model says, except that during speech
        // the model still judges the first few above `min_rms` (soft word tails and endings over
        // line noise); after that it is skipped and reset, as if the stream started again at the next
        // sound. Digitally quiet frames are never scored: the model is shown the frames it
        // missed just before it is next needed. On a call each channel is quiet while the
        // other party talks, and noisy lines sit at their floor, so this removes most frames.
        let raw = if !loud {
            // The sustain survives a short dip (see `SUSTAIN_DIP_FRAMES`); a longer one ends it.
            if self.quiet_frames >= SUSTAIN_DIP_FRAMES {
                self.sustain_left = 0;
            }
            self.quiet_frames += 1;
            if self.speaking
                && rms >= self.params.min_rms
                && self.quiet_frames <= QUIET_FRAMES_SCORED
            {
                // Between `min_rms` and the gate: soft tails of words, the model decides.
                self.score_frame()
            } else {
                if self.quiet_frames == QUIET_FRAMES_SCORED + 1 {
                    self.scorer.reset();
                }
                self.frames_unseen = self.frames_unseen.saturating_add(1);
                0.0
            }
        } else {
            let dip = self.quiet_frames;
            self.quiet_frames = 0;
            let margin = self.params.gate_margin_db.unwrap_or(0.0);
            // After a dip the sustain only carries on if the model still called the audio
            // speech (frames in the dip above `min_rms` were scored and updated `last_score`).
            let sustained = self.sustain_left > 0
                && self.speaking
                && (dip == 0 || self.last_score >= self.params.start_threshold);
            let steady = above_floor >= margin + SUSTAIN_EXTRA_DB
                || (above_floor >= margin + SUSTAIN_NEAR_DB
                    && frame_db >= self.sustain_ref_db - SUSTAIN_DROP_DB);
            if sustained && steady {
                // Confirmed speech, still loud: the last score stands.
                self.sustain_left -= 1;
                self.frames_unseen = self.frames_unseen.saturating_add(1);
                self.last_score
            } else {
                let score = self.score_frame();
                self.sustain_ref_db = frame_db;
                self.sustain_left = if self.speaking && score >= self.params.start_threshold {
                    self.params.sustain_frames
                } else {
                    0
                };
                score
            }
        };
        self.remember_frame();
        let window = self.params.smoothing_frames.max(1);
        if self.recent.len() == window {
            self.recent.pop_front();
        }
        self.recent.push_back(raw);
        let smoothed = self.recent.iter().sum::<f32>() / self.recent.len() as f32;

        if self.speaking {
            if smoothed < self.params.end_threshold {
                self.quiet_run += 1;
                if self.quiet_run > self.params.hangover_frames {
                    self.speaking = false;
                    self.quiet_run = 0;
                }
            } else {
                self.quiet_run = 0;
            }
        } else if smoothed >= self.params.start_threshold {
            self.speaking = true;
            self.quiet_run = 0;
        }
        let decision = FrameDecision {
            start_sample: self.next_frame_start,
            speech: self.speaking,
            voiced: self.speaking && smoothed >= self.params.end_threshold,
            rms,
        };
        self.next_frame_start += self.frame.len() as u64;
        decision
    }
}

impl<S: SpeechScorer> VadStream<S> {
    /// Score the current frame. Before an onset (the channel not speaking), the frames the model
    /// missed are replayed first (up to `HISTORY_FRAMES`, only those it has not seen), so its
    /// window holds real, continuous audio when it decides whether speech starts. Inside speech
    /// (resuming after a sustain skip or a short dip) it scores straight away: its window and
    /// feature context then start with the speech it saw last. On the benchmark calls this left
    /// every utterance edge of the µ-law call where it was and moved two ends of the MP3 call
    /// by one 16 ms frame, while the replays cost two of every three model calls there.
    fn score_frame(&mut self) -> f32 {
        let replay = if self.speaking {
            0
        } else {
            self.frames_unseen
                .min(HISTORY_FRAMES)
                .min(self.history_frames)
        };
        let len = self.frame.len();
        for i in HISTORY_FRAMES - replay..HISTORY_FRAMES {
            if let Some(previous) = self.history.get(i * len..(i + 1) * len) {
                self.scorer.score(previous);
            }
        }
        self.frames_unseen = 0;
        self.last_score = self.scorer.score(&self.frame);
        self.last_score
    }

    fn remember_frame(&mut self) {
        let len = self.frame.len();
        if self.history.len() != len * HISTORY_FRAMES {
            return;
        }
        self.history.copy_within(len.., 0);
        if let Some(slot) = self.history.get_mut((HISTORY_FRAMES - 1) * len..) {
            slot.copy_from_slice(&self.frame);
        }
        self.history_frames = (self.history_frames + 1).min(HISTORY_FRAMES);
    }
}

fn rms(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    // Eight partial sums, so the loop vectorises (a single running sum fixes the order and
    // keeps it scalar).
    let mut lanes = [0f32; 8];
    let mut chunks = frame.chunks_exact(8);
    for chunk in &mut chunks {
        for (acc, s) in lanes.iter_mut().zip(chunk) {
            *acc += s * s;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|s| s * s).sum();
    let sum = lanes.iter().sum::<f32>() + tail;
    (sum / frame.len() as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scorer that calls loud frames speech: lets the state machine be tested on its own.
    struct LoudnessScorerDouble;
    impl SpeechScorer for LoudnessScorerDouble {
        fn frame_len(&self) -> usize {
            160
        }
        fn score(&mut self, frame: &[f32]) -> f32 {
            if rms(frame) > 0.1 { 1.0 } else { 0.0 }
        }
        fn reset(&mut self) {}
    }

    #[test]
    fn hysteresis_and_hangover_shape_decisions() {
        let params = VadParams {
            smoothing_frames: 1,
            hangover_frames: 2,
            ..VadParams::default()
        };
        let mut vad = VadStream::new(LoudnessScorerDouble, params);
        let mut audio = vec![0.0f32; 160 * 3];
        audio.extend(std::iter::repeat_n(0.5f32, 160 * 4));
        audio.extend(std::iter::repeat_n(0.0f32, 160 * 5));
        let mut speech = Vec::new();
        // Odd push sizes check framing across calls.
        for piece in audio.chunks(37) {
            vad.push(piece, &mut |d, f| {
                assert_eq!(f.len(), 160);
                speech.push(d.speech)
            });
        }
        assert_eq!(
            speech,
            [
                false, false, false, true, true, true, true, true, true, false, false, false
            ]
        );
    }
}

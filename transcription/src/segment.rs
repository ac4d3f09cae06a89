//! Cutting one channel's VAD decisions into utterances: a turn ends at a pause, very short
//! blips are dropped, and speech longer than whisper's 30 s window is split at its quietest
//! point. Only the current utterance's audio is held, so memory is bounded by
//! `max_utterance_ms` whatever the length of the recording.

use std::collections::VecDeque;

use crate::resample::TARGET_RATE;
use crate::vad::FrameDecision;

const SAMPLES_PER_MS: u64 = (TARGET_RATE / 1000) as u64;

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentParams {
    /// A pause at least this long ends an utterance.
    pub min_silence_ms: u64,
    /// Utterances with less speech than this are dropped (clicks, breaths, coughs).
    pub min_speech_ms: u64,
    /// Hard cap on one utterance's audio, padding included (whisper's window is 30 s).
    pub max_utterance_ms: u64,
    /// Audio kept before and after the speech handed to ASR, so word edges are not clipped.
    pub padding_ms: u64,
}

impl Default for SegmentParams {
    fn default() -> Self {
        Self {
            min_silence_ms: 500,
            min_speech_ms: 200,
            max_utterance_ms: 30_000,
            padding_ms: 200,
        }
    }
}

/// One finished utterance of one channel (sample indices on the channel's 16 kHz timeline).
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedUtterance {
    /// First sample of speech.
    pub speech_start: u64,
    /// One past the last sample of speech.
    pub speech_end: u64,
    /// Sample index of `audio[0]` (speech start minus padding).
    pub audio_start: u64,
    /// Padded audio (empty when the segmenter was built without `keep_audio`).
    pub audio: Vec<f32>,
}

impl FinishedUtterance {
    pub fn start_ms(&self) -> u64 {
        self.speech_start / SAMPLES_PER_MS
    }
    pub fn end_ms(&self) -> u64 {
        self.speech_end.div_ceil(SAMPLES_PER_MS)
    }
    pub fn audio_start_ms(&self) -> u64 {
        self.audio_start / SAMPLES_PER_MS
    }
}

struct Current {
    audio_start: u64,
    audio: Vec<f32>,
    speech_start: u64,
    last_speech_end: u64,
    /// (frame start sample, rms) of every frame so far: where to split an over-long turn.
    frames: Vec<(u64, f32)>,
}

/// Per-channel utterance builder. Feed it [`FrameDecision`]s in order.
pub struct Segmenter {
    params: SegmentParams,
    keep_audio: bool,
    preroll: VecDeque<f32>,
    current: Option<Current>,
    pos: u64,
}

impl Segmenter {
    pub fn new(params: SegmentParams, keep_audio: bool) -> Self {
        Self {
            params,
            keep_audio,
            preroll: VecDeque::new(),
            current: None,
            pos: 0,
        }
    }

    fn samples(&self, ms: u64) -> u64 {
        ms.saturating_mul(SAMPLES_PER_MS)
    }

    /// Feed one frame; finished utterances are pushed onto `out`.
    pub fn push_frame(
        &mut self,
        decision: FrameDecision,
        frame: &[f32],
        out: &mut Vec<FinishedUtterance>,
    ) {
        let frame_start = decision.start_sample;
        let frame_end = frame_start + frame.len() as u64;
        let pad = self.samples(self.params.padding_ms) as usize;
        let max_len = self
            .samples(self.params.max_utterance_ms)
            .max(self.samples(1000));
        let min_silence = self.samples(self.params.min_silence_ms);
        self.pos = frame_end;

        match self.current.as_mut() {
            None => {
                if decision.speech {
                    let preroll_len = self.preroll.len() as u64;
                    let mut audio = Vec::new();
                    if self.keep_audio {
                        audio.extend(self.preroll.drain(..));
                        audio.extend_from_slice(frame);
                    }
                    self.preroll.clear();
                    self.current = Some(Current {
                        audio_start: frame_start.saturating_sub(preroll_len),
                        audio,
                        speech_start: frame_start,
                        last_speech_end: frame_end,
                        frames: vec![(frame_start, decision.rms)],
                    });
                } else if self.keep_audio {
                    self.preroll.extend(frame.iter().copied());
                    while self.preroll.len() > pad {
                        self.preroll.pop_front();
                    }
                } else {
                    // Without audio the preroll is only a length.
                    self.preroll
                        .resize((self.preroll.len() + frame.len()).min(pad), 0.0);
                }
            }
            Some(cur) => {
                if self.keep_audio {
                    cur.audio.extend_from_slice(frame);
                }
                cur.frames.push((frame_start, decision.rms));
                if decision.speech && decision.voiced {
                    cur.last_speech_end = frame_end;
                }
                let silence = frame_end - cur.last_speech_end;
                if silence >= min_silence {
                    self.close(out);
                } else if frame_end - cur.audio_start >= max_len {
                    self.split(out);
                }
            }
        }
    }

    /// End of the channel: close any open utterance.
    pub fn finish(&mut self, out: &mut Vec<FinishedUtterance>) {
        self.close(out);
    }

    /// Close the open utterance at its last speech, keeping the trailing padding.
    fn close(&mut self, out: &mut Vec<FinishedUtterance>) {
        let Some(mut cur) = self.current.take() else {
            return;
        };
        let pad = self.samples(self.params.padding_ms);
        let audio_end = (cur.last_speech_end + pad).min(self.pos);
        // The audio after the padding becomes the preroll of the next utterance.
        let keep = (audio_end - cur.audio_start) as usize;
        self.preroll.clear();
        if self.keep_audio {
            let tail = cur.audio.get(keep..).unwrap_or(&[]);
            let from = tail.len().saturating_sub(pad as usize);
            self.preroll
                .extend(tail.get(from..).unwrap_or(&[]).iter().copied());
            cur.audio.truncate(keep);
        } else {
            let tail_len = (self.pos - audio_end).min(pad) as usize;
            self.preroll.resize(tail_len, 0.0);
        }
        if cur.last_speech_end - cur.speech_start >= self.samples(self.params.min_speech_ms) {
            out.push(FinishedUtterance {
                speech_start: cur.speech_start,
                speech_end: cur.last_speech_end,
                audio_start: cur.audio_start,
                audio: cur.audio,
            });
        }
    }

    /// Speech has run to the length cap: cut at the quietest frame of the second half and
    /// carry on with the rest as a new utterance.
    fn split(&mut self, out: &mut Vec<FinishedUtterance>) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let half = cur.audio_start + (self.pos - cur.audio_start) / 2;
        let cut = cur
            .frames
            .iter()
            .filter(|(start, _)| *start >= half && *start > cur.speech_start)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(self.pos, |(start, _)| *start);
        let split_at = (cut - cur.audio_start) as usize;
        let mut audio = cur.audio;
        let rest = if self.keep_audio {
            audio.split_off(split_at.min(audio.len()))
        } else {
            Vec::new()
        };
        let speech_end = cur.last_speech_end.min(cut);
        if speech_end - cur.speech_start >= self.samples(self.params.min_speech_ms) {
            out.push(FinishedUtterance {
                speech_start: cur.speech_start,
                speech_end,
                audio_start: cur.audio_start,
                audio,
            });
        }
        let frames: Vec<(u64, f32)> = cur.frames.into_iter().filter(|(s, _)| *s >= cut).collect();
        self.current = Some(Current {
            audio_start: cut,
            audio: rest,
            speech_start: cut,
            last_speech_end: cur.last_speech_end.max(cut),
            frames,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 256;

    fn run(pattern: &[(bool, usize)], params: SegmentParams) -> Vec<FinishedUtterance> {
        let mut seg = Segmenter::new(params, true);
        let mut out = Vec::new();
        let mut pos = 0u64;
        for &(speech, frames) in pattern {
            for _ in 0..frames {
                let value = if speech { 0.5 } else { 0.0 };
                let frame = vec![value; FRAME];
                let d = FrameDecision {
                    start_sample: pos,
                    speech,
                    voiced: speech,
                    rms: value,
                };
                seg.push_frame(d, &frame, &mut out);
                pos += FRAME as u64;
            }
        }
        seg.finish(&mut out);
        out
    }

    #[test]
    fn short_pauses_join_long_pauses_cut() {
        // 1 s speech, 256 ms pause (joined), 1 s speech, 1 s pause (cut), 0.5 s speech.
        let out = run(
            &[
                (false, 10),
                (true, 62),
                (false, 16),
                (true, 62),
                (false, 62),
                (true, 31),
                (false, 5),
            ],
            SegmentParams::default(),
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].speech_start, 10 * 256);
        assert_eq!(out[0].speech_end, (10 + 62 + 16 + 62) * 256);
        // Padding: 200 ms before (3200 samples), and the audio stops 200 ms after the speech.
        assert_eq!(out[0].audio_start, 10 * 256 - 2560);
        assert_eq!(
            out[0].audio.len() as u64,
            out[0].speech_end + 3200 - out[0].audio_start
        );
        assert_eq!(out[1].speech_start, (10 + 62 + 16 + 62 + 62) * 256);
    }

    #[test]
    fn blips_are_dropped() {
        let out = run(
            &[(false, 10), (true, 3), (false, 100)],
            SegmentParams::default(),
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn long_speech_is_split_within_the_cap() {
        // 70 s of speech with no pause: must come out in pieces of at most 30 s.
        let out = run(&[(true, 70_000 / 16)], SegmentParams::default());
        assert!(out.len() >= 3, "{}", out.len());
        for u in &out {
            assert!(u.audio.len() as u64 <= 30 * 16_000, "{}", u.audio.len());
        }
        // Pieces tile the speech without gaps.
        for pair in out.windows(2) {
            assert_eq!(pair[0].speech_end, pair[1].speech_start);
        }
        assert_eq!(out.last().map(|u| u.speech_end), Some(70_000 / 16 * 256));
    }
}

//! `ScriptRecognizerDouble`: a stand-in for a speech model (none can run here). It knows the
//! rendered audio of every line of the script, and nothing else: given a chunk of audio it
//! finds which line(s) the chunk holds by normalised cross-correlation and writes their text,
//! with times relative to the chunk. It is never told where a chunk sits in the call or which
//! channel it came from, so the times the server stores are the ones the pipeline derived.

use std::sync::Mutex;

use callscope_transcription::{AsrEngine, AsrSegment, Word};

use super::script::PlacedLine;

/// 10 ms envelope frames at 16 kHz.
const FRAME: usize = 160;
/// Envelope frames above this RMS are speech (espeak's speech is far louder).
const SPEECH_RMS: f32 = 0.01;
/// Decimation for the waveform check: 4 kHz keeps the formants and survives an 8 kHz call.
const DECIMATE: usize = 4;
/// How far (in envelope frames) a line may stick out of the chunk: the pipeline's padding
/// could clip a quiet first or last sound.
const SLACK_FRAMES: usize = 20;
/// Least envelope correlation for a candidate, and least waveform correlation to accept it.
const MIN_ENVELOPE_NCC: f32 = 0.6;
const MIN_WAVEFORM_NCC: f32 = 0.5;

struct Template {
    text: String,
    /// (phrase text, start, end) in ms from the line's start.
    phrases: Vec<(String, u64, u64)>,
    envelope: Vec<f32>,
    decimated: Vec<f32>,
    len_samples: usize,
}

/// What the double made of one chunk (for the test's diagnostics and assertions).
#[derive(Debug, Clone)]
pub struct ChunkReport {
    pub chunk_ms: u64,
    /// (line index in the double's list, chunk offset ms, waveform correlation).
    pub found: Vec<(usize, i64, f32)>,
    /// Speech in the chunk (ms) that no line explains.
    pub unexplained_ms: u64,
}

pub struct ScriptRecognizerDouble {
    templates: Vec<Template>,
    reports: Mutex<Vec<ChunkReport>>,
}

fn envelope(audio: &[f32]) -> Vec<f32> {
    audio
        .chunks(FRAME)
        .map(|c| (c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32).sqrt())
        .collect()
}

fn decimate(audio: &[f32]) -> Vec<f32> {
    audio
        .chunks(DECIMATE)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect()
}

/// Normalised cross-correlation of `b` placed at `offset` in `a`, over their overlap
/// (means removed). `None` when the overlap is shorter than `min_overlap`.
fn ncc_at(a: &[f32], b: &[f32], offset: i64, min_overlap: usize) -> Option<f32> {
    let a_from = offset.max(0) as usize;
    let b_from = (-offset).max(0) as usize;
    if a_from >= a.len() || b_from >= b.len() {
        return None;
    }
    let n = (a.len() - a_from).min(b.len() - b_from);
    if n < min_overlap.max(2) {
        return None;
    }
    let (xa, xb) = (&a[a_from..a_from + n], &b[b_from..b_from + n]);
    let ma = xa.iter().sum::<f32>() / n as f32;
    let mb = xb.iter().sum::<f32>() / n as f32;
    let (mut sab, mut saa, mut sbb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in xa.iter().zip(xb) {
        let (dx, dy) = (f64::from(x - ma), f64::from(y - mb));
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return None;
    }
    Some((sab / (saa * sbb).sqrt()) as f32)
}

impl ScriptRecognizerDouble {
    /// Knows the lines of all the given calls.
    pub fn new<'a>(lines: impl IntoIterator<Item = &'a PlacedLine>) -> Self {
        let templates = lines
            .into_iter()
            .map(|l| Template {
                text: l.text(),
                phrases: l
                    .phrases
                    .iter()
                    .map(|p| {
                        (
                            p.text.to_string(),
                            p.start_ms - l.start_ms,
                            p.end_ms - l.start_ms,
                        )
                    })
                    .collect(),
                envelope: envelope(&l.audio),
                decimated: decimate(&l.audio),
                len_samples: l.audio.len(),
            })
            .collect();
        Self {
            templates,
            reports: Mutex::new(Vec::new()),
        }
    }

    pub fn reports(&self) -> Vec<ChunkReport> {
        self.reports.lock().unwrap().clone()
    }

    /// The best line not yet found in this chunk, placed where it does not overlap lines
    /// already found: (template, envelope offset, envelope correlation).
    fn best_candidate(
        &self,
        env: &[f32],
        taken: &[(i64, i64)],
        rejected: &[usize],
    ) -> Option<(usize, i64, f32)> {
        let mut best: Option<(usize, i64, f32)> = None;
        for (t, tpl) in self.templates.iter().enumerate() {
            if rejected.contains(&t) || tpl.envelope.len() > env.len() + 2 * SLACK_FRAMES {
                continue;
            }
            let min_overlap = tpl.envelope.len().saturating_sub(SLACK_FRAMES);
            let lo = -(SLACK_FRAMES as i64);
            let hi = env.len() as i64 - tpl.envelope.len() as i64 + SLACK_FRAMES as i64;
            for off in lo..=hi {
                let end = off + tpl.envelope.len() as i64;
                let clashes = taken
                    .iter()
                    .any(|&(s, e)| off.max(s) < end.min(e) - SLACK_FRAMES as i64);
                if clashes {
                    continue;
                }
                if let Some(c) = ncc_at(env, &tpl.envelope, off, min_overlap)
                    && c >= MIN_ENVELOPE_NCC
                    && best.is_none_or(|b| c > b.2)
                {
                    best = Some((t, off, c));
                }
            }
        }
        best
    }

    /// Refines an envelope offset on the decimated waveform: (sample offset, correlation).
    fn verify(&self, dec: &[f32], t: usize, env_off: i64) -> Option<(i64, f32)> {
        let tpl = &self.templates[t];
        let centre = env_off * (FRAME / DECIMATE) as i64;
        let reach = (FRAME / DECIMATE) as i64 * 2;
        let min_overlap = tpl
            .decimated
            .len()
            .saturating_sub(SLACK_FRAMES * FRAME / DECIMATE);
        (centre - reach..=centre + reach)
            .filter_map(|o| ncc_at(dec, &tpl.decimated, o, min_overlap).map(|c| (o, c)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|&(_, c)| c >= MIN_WAVEFORM_NCC)
            .map(|(o, c)| (o * DECIMATE as i64, c))
    }

    fn segment(&self, t: usize, offset_samples: i64, chunk_ms: u64) -> AsrSegment {
        let tpl = &self.templates[t];
        let at = |ms_in_line: u64| -> u64 {
            let ms = offset_samples / (FRAME as i64 / 10) + ms_in_line as i64;
            (ms.max(0) as u64).min(chunk_ms)
        };
        // Words share their phrase's time in proportion to their length (a recogniser's
        // word times are about this good).
        let mut words = Vec::new();
        for (text, start, end) in &tpl.phrases {
            let parts: Vec<&str> = text.split_whitespace().collect();
            let weight: usize = parts.iter().map(|w| w.len() + 1).sum();
            let mut pos = 0usize;
            for w in parts {
                let ws = start + (end - start) * pos as u64 / weight as u64;
                pos += w.len() + 1;
                let we = start + (end - start) * pos as u64 / weight as u64;
                words.push(Word {
                    text: w.to_string(),
                    start_ms: at(ws),
                    end_ms: at(we),
                    probability: Some(0.95),
                });
            }
        }
        AsrSegment {
            start_ms: at(0),
            end_ms: at((tpl.len_samples / (FRAME / 10)) as u64),
            text: tpl.text.clone(),
            confidence: Some(0.95),
            words,
        }
    }
}

impl AsrEngine for ScriptRecognizerDouble {
    fn name(&self) -> &str {
        "script-recognizer-double"
    }

    fn transcribe(
        &self,
        audio_16k: &[f32],
        _language: Option<&str>,
    ) -> callscope_transcription::Result<Vec<AsrSegment>> {
        let chunk_ms = (audio_16k.len() / (FRAME / 10)) as u64;
        let env = envelope(audio_16k);
        let dec = decimate(audio_16k);
        let mut taken: Vec<(i64, i64)> = Vec::new();
        let mut rejected: Vec<usize> = Vec::new();
        let mut found: Vec<(usize, i64, f32)> = Vec::new();
        // Bounded: a chunk holds a few lines at most.
        for _ in 0..(self.templates.len() + 8) {
            let Some((t, env_off, _)) = self.best_candidate(&env, &taken, &rejected) else {
                break;
            };
            rejected.push(t);
            let Some((offset, c)) = self.verify(&dec, t, env_off) else {
                continue;
            };
            let frames = self.templates[t].envelope.len() as i64;
            let start = offset / FRAME as i64;
            taken.push((start, start + frames));
            found.push((t, offset, c));
        }
        let explained = |f: usize| {
            let f = f as i64;
            taken.iter().any(|&(s, e)| f >= s && f < e)
        };
        let unexplained_ms = env
            .iter()
            .enumerate()
            .filter(|&(f, &e)| e > SPEECH_RMS && !explained(f))
            .count() as u64
            * 10;
        found.sort_by_key(|f| f.1);
        let segments = found
            .iter()
            .map(|&(t, off, _)| self.segment(t, off, chunk_ms))
            .collect();
        self.reports.lock().unwrap().push(ChunkReport {
            chunk_ms,
            found: found
                .iter()
                .map(|&(t, off, c)| (t, off / (FRAME as i64 / 10), c))
                .collect(),
            unexplained_ms,
        });
        Ok(segments)
    }
}

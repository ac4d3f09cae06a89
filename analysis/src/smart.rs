//! Smart trackers: a tracker described by a few example sentences matches the parts of turns
//! that mean the same thing, whatever the words ("please close my account" for an example
//! "I want to cancel my subscription"). Meaning is compared through sentence embeddings
//! from a [`SentenceEncoder`] (the model lives in the `callscope-inference` crate; this
//! module only segments text, asks for vectors and compares them), so the matching logic is
//! pure and testable without a model.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::types::{Role, TimeSpan, Turn};

/// Similarity a segment must reach to count as a hit when the tracker does not say.
/// Calibrated with all-MiniLM-L6-v2 on a written set of call-centre sentences
/// (`inference/tests/data/smart_calibration.json`, 23 paraphrases of five trackers'
/// examples, 30 ordinary call sentences): at 0.50 precision 0.95 and recall 0.78 (F1 0.86,
/// the best of 0.45–0.65); at 0.55 precision 0.94, recall 0.70; ordinary sentences reached
/// at most 0.496. MiniLM similarities are modest: a tracker needs two or three differently
/// worded examples to catch most paraphrases.
pub const DEFAULT_SMART_THRESHOLD: f32 = 0.5;

/// Longest piece of a turn compared at once, in words. Sentence embeddings of long texts
/// average many ideas together, so a one-sentence match inside a long monologue would be
/// diluted below the threshold; long sentences are cut into overlapping windows instead.
/// 16 words is about two example sentences: a 6-word paraphrase inside a 16-word window
/// lost 0.04 of similarity with MiniLM, inside a 24-word one 0.11.
pub const WINDOW_WORDS: usize = 16;

/// Sentences shorter than this ("Yes.", "Okay, sure.") carry too little meaning on their
/// own to be compared; they are joined to a neighbouring sentence of the same turn.
const MIN_SEGMENT_WORDS: usize = 3;

/// How many texts go to the encoder in one call: big enough to amortise a model call,
/// small enough to keep padding and memory bounded.
const ENCODER_BATCH: usize = 32;

/// Something that turns sentences into vectors whose cosine similarity reflects meaning.
pub trait SentenceEncoder {
    /// One vector per text, in order, all of the same length.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError>;
}

/// Why an encoder could not embed (the model failed, bad input for it…).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("sentence encoder failed: {0}")]
pub struct EncoderError(pub String);

/// A semantic tracker of an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartTracker {
    pub id: String,
    pub name: String,
    /// competitor, pricing, objection, feature or custom (the same categories as keyword
    /// trackers).
    pub category: String,
    pub active: bool,
    /// A few sentences that say what the tracker is about.
    pub examples: Vec<String>,
    /// Cosine similarity in (0, 1] a segment must reach.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Only turns of this role are searched; `None` searches every turn.
    #[serde(default)]
    pub role: Option<Role>,
}

fn default_threshold() -> f32 {
    DEFAULT_SMART_THRESHOLD
}

impl SmartTracker {
    /// Checks what the API must refuse before storing a tracker.
    pub fn validate(&self) -> Result<(), SmartTrackerError> {
        if self.examples.iter().all(|e| e.trim().is_empty()) {
            return Err(SmartTrackerError::NoExamples(self.id.clone()));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(SmartTrackerError::BadThreshold {
                tracker: self.id.clone(),
                threshold: self.threshold,
            });
        }
        Ok(())
    }

    fn searches(&self, role: Role) -> bool {
        self.active && self.role.is_none_or(|r| r == role)
    }
}

/// One place where a smart tracker matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartHit {
    pub tracker_id: String,
    /// Index of the turn ([`Turn::index`]).
    pub turn: usize,
    pub role: Role,
    pub speaker: String,
    /// The example sentence closest to the segment.
    pub example: String,
    /// The part of the turn that matched (a sentence or a window of a long sentence).
    pub matched_text: String,
    /// Cosine similarity between the segment and `example`.
    pub similarity: f32,
    /// The turn's time span.
    pub time: TimeSpan,
}

/// What smart tracking gives a call: hits, or the reason it could not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SmartTracking {
    Available { hits: Vec<SmartHit> },
    Unavailable { reason: String },
}

/// The reason shown when no sentence-embedding model is installed.
pub const UNAVAILABLE_NO_MODEL: &str = "smart trackers unavailable: model not installed";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmartTrackerError {
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    #[error("the encoder returned {got} vectors for {expected} texts")]
    WrongCount { expected: usize, got: usize },
    #[error("the encoder returned vectors of {got} dimensions, expected {expected}")]
    WrongDimension { expected: usize, got: usize },
    #[error("the encoder returned a vector that is empty, zero or not finite")]
    BadVector,
    #[error("smart tracker {0} has no example sentence")]
    NoExamples(String),
    #[error("smart tracker {tracker}: threshold {threshold} is not in (0, 1]")]
    BadThreshold { tracker: String, threshold: f32 },
}

/// Runs every active tracker over the turns. Without an encoder the result says smart
/// trackers are unavailable instead of pretending nothing matched.
pub fn track_smart(
    turns: &[Turn],
    trackers: &[SmartTracker],
    encoder: Option<&dyn SentenceEncoder>,
) -> Result<SmartTracking, SmartTrackerError> {
    match encoder {
        None => Ok(SmartTracking::Unavailable {
            reason: UNAVAILABLE_NO_MODEL.to_string(),
        }),
        Some(encoder) => Ok(SmartTracking::Available {
            hits: find_smart_hits(turns, trackers, encoder)?,
        }),
    }
}

/// The best match of each active tracker in each turn it searches, at or above the
/// tracker's threshold, ordered by turn then tracker. Examples are embedded once; segments
/// are embedded in batches, each distinct text once.
pub fn find_smart_hits(
    turns: &[Turn],
    trackers: &[SmartTracker],
    encoder: &dyn SentenceEncoder,
) -> Result<Vec<SmartHit>, SmartTrackerError> {
    let trackers: Vec<&SmartTracker> = trackers
        .iter()
        .filter(|t| t.active && t.examples.iter().any(|e| !e.trim().is_empty()))
        .collect();
    if trackers.is_empty() {
        return Ok(Vec::new());
    }
    for tracker in &trackers {
        tracker.validate()?;
    }

    // Examples: one flat list, each tracker owning a range of it.
    let mut example_texts: Vec<&str> = Vec::new();
    let mut example_ranges = Vec::with_capacity(trackers.len());
    for tracker in &trackers {
        let start = example_texts.len();
        example_texts.extend(
            tracker
                .examples
                .iter()
                .map(|e| e.trim())
                .filter(|e| !e.is_empty()),
        );
        example_ranges.push(start..example_texts.len());
    }
    let mut dimension = None;
    let example_vectors = embed_normalised(encoder, &example_texts, &mut dimension)?;

    // Segments of the turns some tracker searches; identical texts are embedded once.
    let mut segments: Vec<(usize, String)> = Vec::new();
    for (position, turn) in turns.iter().enumerate() {
        if trackers.iter().any(|t| t.searches(turn.role)) {
            segments.extend(segment_turn(&turn.text).into_iter().map(|s| (position, s)));
        }
    }
    let mut distinct: Vec<&str> = Vec::new();
    let mut slot_of: HashMap<&str, usize> = HashMap::new();
    let segment_slots: Vec<usize> = segments
        .iter()
        .map(|(_, text)| {
            *slot_of.entry(text.as_str()).or_insert_with(|| {
                distinct.push(text.as_str());
                distinct.len() - 1
            })
        })
        .collect();
    let mut segment_vectors = Vec::with_capacity(distinct.len());
    for batch in distinct.chunks(ENCODER_BATCH) {
        segment_vectors.extend(embed_normalised(encoder, batch, &mut dimension)?);
    }

    // Best (similarity, example, segment) per (turn, tracker).
    let mut best: HashMap<(usize, usize), (f32, usize, usize)> = HashMap::new();
    for (segment_index, (turn_position, _)) in segments.iter().enumerate() {
        let Some(turn) = turns.get(*turn_position) else {
            continue;
        };
        let Some(vector) = segment_slots
            .get(segment_index)
            .and_then(|slot| segment_vectors.get(*slot))
        else {
            continue;
        };
        for (tracker_index, tracker) in trackers.iter().enumerate() {
            if !tracker.searches(turn.role) {
                continue;
            }
            let Some(range) = example_ranges.get(tracker_index) else {
                continue;
            };
            for example_index in range.clone() {
                let Some(example) = example_vectors.get(example_index) else {
                    continue;
                };
                let similarity = dot(vector, example);
                if similarity < tracker.threshold {
                    continue;
                }
                let entry = best.entry((*turn_position, tracker_index)).or_insert((
                    f32::MIN,
                    example_index,
                    segment_index,
                ));
                if similarity > entry.0 {
                    *entry = (similarity, example_index, segment_index);
                }
            }
        }
    }

    let mut keys: Vec<(usize, usize)> = best.keys().copied().collect();
    keys.sort_unstable();
    let mut hits = Vec::with_capacity(keys.len());
    for key in keys {
        let (Some(&(similarity, example_index, segment_index)), Some(turn), Some(tracker)) =
            (best.get(&key), turns.get(key.0), trackers.get(key.1))
        else {
            continue;
        };
        let (Some(example), Some((_, matched_text))) = (
            example_texts.get(example_index),
            segments.get(segment_index),
        ) else {
            continue;
        };
        hits.push(SmartHit {
            tracker_id: tracker.id.clone(),
            turn: turn.index,
            role: turn.role,
            speaker: turn.speaker.clone(),
            example: (*example).to_string(),
            matched_text: matched_text.clone(),
            similarity: similarity.min(1.0),
            time: TimeSpan {
                start_ms: turn.start_ms,
                end_ms: turn.end_ms,
            },
        });
    }
    Ok(hits)
}

/// Embeds `texts` and scales each vector to unit length, checking what the encoder gave
/// back (count, one common dimension, finite non-zero values) so a faulty model yields an
/// error, not nonsense similarities.
fn embed_normalised(
    encoder: &dyn SentenceEncoder,
    texts: &[&str],
    dimension: &mut Option<usize>,
) -> Result<Vec<Vec<f32>>, SmartTrackerError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let vectors = encoder.embed(texts)?;
    if vectors.len() != texts.len() {
        return Err(SmartTrackerError::WrongCount {
            expected: texts.len(),
            got: vectors.len(),
        });
    }
    vectors
        .into_iter()
        .map(|mut v| {
            let expected = *dimension.get_or_insert(v.len());
            if v.len() != expected {
                return Err(SmartTrackerError::WrongDimension {
                    expected,
                    got: v.len(),
                });
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if v.is_empty() || !norm.is_finite() || norm == 0.0 {
                return Err(SmartTrackerError::BadVector);
            }
            v.iter_mut().for_each(|x| *x /= norm);
            Ok(v)
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Cuts a turn's text into the pieces compared with the examples: its sentences, short
/// ones joined to a neighbour, long ones cut into their clauses and into overlapping windows of
/// [`WINDOW_WORDS`] words (half a window apart, so a phrase across a cut is still whole in
/// one window). A short turn of several sentences is also compared whole, because an idea
/// can span two short sentences ("No. I don't want it anymore.").
pub fn segment_turn(text: &str) -> Vec<String> {
    let sentences = join_short_sentences(split_sentences(text));
    let mut pieces = Vec::new();
    for sentence in &sentences {
        let words: Vec<&str> = sentence.split_whitespace().collect();
        if words.len() <= WINDOW_WORDS {
            pieces.push(words.join(" "));
            continue;
        }
        // Clauses of a long sentence are natural units (ASR punctuation puts commas where
        // speakers pause), and windows catch what clauses miss.
        for clause in sentence.split([',', ';', ':']) {
            let n = clause.split_whitespace().count();
            if (MIN_SEGMENT_WORDS..=WINDOW_WORDS).contains(&n) {
                pieces.push(clause.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        let step = WINDOW_WORDS / 2;
        let mut start = 0;
        loop {
            let end = (start + WINDOW_WORDS).min(words.len());
            if let Some(window) = words.get(start..end) {
                pieces.push(window.join(" "));
            }
            if end == words.len() {
                break;
            }
            start += step;
        }
    }
    let total_words = text.split_whitespace().count();
    if sentences.len() > 1 && total_words <= WINDOW_WORDS {
        pieces.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    pieces
}

/// Sentences end at `.`, `!`, `?`, `…` and their CJK/Arabic forms, or at a line break.
fn split_sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == '\n' || c == '\r' {
            push_sentence(&mut sentences, &mut current);
            continue;
        }
        current.push(c);
        if matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '؟' | '۔') {
            push_sentence(&mut sentences, &mut current);
        }
    }
    push_sentence(&mut sentences, &mut current);
    sentences
}

fn push_sentence(sentences: &mut Vec<String>, current: &mut String) {
    let trimmed = current.trim();
    if trimmed.chars().any(char::is_alphanumeric) {
        sentences.push(trimmed.to_string());
    } else if let Some(last) = sentences.last_mut() {
        // Stray punctuation ("?!", "...") belongs to the sentence before it.
        last.push_str(trimmed);
    }
    current.clear();
}

fn join_short_sentences(sentences: Vec<String>) -> Vec<String> {
    let mut joined: Vec<String> = Vec::new();
    let mut pending = String::new();
    for sentence in sentences {
        if !pending.is_empty() {
            pending.push(' ');
        }
        pending.push_str(&sentence);
        if pending.split_whitespace().count() >= MIN_SEGMENT_WORDS {
            joined.push(std::mem::take(&mut pending));
        }
    }
    if !pending.is_empty() {
        match joined.last_mut() {
            Some(last) => {
                last.push(' ');
                last.push_str(&pending);
            }
            // The whole turn is short: it is still compared.
            None => joined.push(pending),
        }
    }
    joined
}

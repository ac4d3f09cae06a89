//! Types shared by the analysers and by their callers (the api crate).

use serde::{Deserialize, Serialize};

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Customer,
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Customer => "customer",
            Role::Unknown => "unknown",
        }
    }
}

/// A word with its time, where the transcript has word timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedWord {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// One speaker turn of the transcript: the analysers' input. `index` is the turn's position
/// in the call (0-based, time order) and is how every insight points back at its turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub index: usize,
    pub role: Role,
    /// Display label of the speaker ("Agent", "Speaker 2", …).
    pub speaker: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Empty when no transcript exists for the turn (it still counts as talk time).
    pub text: String,
    /// Word timings, possibly empty.
    pub words: Vec<TimedWord>,
}

impl Turn {
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// A stretch of time in the call, milliseconds from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSpan {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl TimeSpan {
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// The label a sentiment score is summarised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentimentLabel {
    Positive,
    Neutral,
    Negative,
    /// Clearly positive and clearly negative parts in the same text.
    Mixed,
}

/// Sentiment of one piece of text: `score` in [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentScore {
    pub score: f32,
    pub label: SentimentLabel,
}

/// A non-talk instance: nobody speaks for longer than the threshold (3 s by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NonTalk {
    pub start_ms: u64,
    pub end_ms: u64,
}

/// One speaker starting while another is still talking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interruption {
    /// Who started talking over the other.
    pub by: Role,
    /// Who was talking.
    pub interrupted: Role,
    /// Turn index of the interrupting turn and of the interrupted one.
    pub turn: usize,
    pub interrupted_turn: usize,
    /// The overlap: from the interrupter's start to the earlier of the two ends.
    pub start_ms: u64,
    pub end_ms: u64,
}

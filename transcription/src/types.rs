//! Types shared by every stage and by the callers of this crate (the api crate).

use serde::{Deserialize, Serialize};

/// Who a speaker is in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeakerRole {
    Agent,
    Customer,
    Unknown,
}

impl SpeakerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SpeakerRole::Agent => "agent",
            SpeakerRole::Customer => "customer",
            SpeakerRole::Unknown => "unknown",
        }
    }
}

/// How the speakers of a recording map to its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChannelLayout {
    /// Left channel = agent, right channel = customer.
    StereoAgentLeft,
    /// Left channel = customer, right channel = agent.
    StereoAgentRight,
    /// One mixed channel (a stereo file given this layout is down-mixed).
    #[default]
    Mono,
}

/// A word with its time, where the ASR engine gives one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub probability: Option<f32>,
}

/// One speaker turn: an utterance of one channel, with its text when ASR (or an imported
/// transcript) gave one. Times are milliseconds from the start of the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Source channel index in the recording (0 = left / mono).
    pub channel: u16,
    pub role: SpeakerRole,
    /// Display label, e.g. "Agent", "Customer", "Speaker 1".
    pub speaker_label: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// `None` when no ASR ran (no model configured): the segment still carries talk time.
    pub text: Option<String>,
    pub confidence: Option<f32>,
    pub words: Vec<Word>,
}

/// What the decoder learned about a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    /// Container, e.g. "wav", "mp3", "ogg", "webm", "mp4", "flac".
    pub container: String,
    /// Codec, e.g. "pcm_s16le", "pcm_mulaw", "mp3", "opus", "aac".
    pub codec: String,
    pub channels: u16,
    pub sample_rate: u32,
    /// Duration actually decoded (not what a header claims).
    pub duration_ms: u64,
}

/// Errors of this crate. `code()` is the stable machine-readable form used in API errors.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptionError {
    #[error("unsupported audio format: {0}")]
    UnsupportedFormat(String),
    #[error("corrupt or truncated audio: {0}")]
    CorruptAudio(String),
    #[error("the file contains no audio")]
    EmptyAudio,
    #[error("channel layout {layout:?} needs a stereo recording, got {channels} channel(s)")]
    LayoutMismatch {
        layout: ChannelLayout,
        channels: u16,
    },
    #[error("invalid transcript: {0}")]
    InvalidTranscript(String),
    #[error("ASR model error: {0}")]
    Model(String),
    #[error("ASR failed: {0}")]
    Asr(String),
    #[error("cancelled")]
    Cancelled,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl TranscriptionError {
    pub fn code(&self) -> &'static str {
        match self {
            TranscriptionError::UnsupportedFormat(_) => "unsupported_format",
            TranscriptionError::CorruptAudio(_) => "corrupt_audio",
            TranscriptionError::EmptyAudio => "empty_audio",
            TranscriptionError::LayoutMismatch { .. } => "channel_layout_mismatch",
            TranscriptionError::InvalidTranscript(_) => "invalid_transcript",
            TranscriptionError::Model(_) => "model_error",
            TranscriptionError::Asr(_) => "asr_failed",
            TranscriptionError::Cancelled => "cancelled",
            TranscriptionError::Io(_) => "io_error",
        }
    }

    /// True when the input itself is bad (the caller should answer 415/422 and not retry).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            TranscriptionError::UnsupportedFormat(_)
                | TranscriptionError::CorruptAudio(_)
                | TranscriptionError::EmptyAudio
                | TranscriptionError::LayoutMismatch { .. }
                | TranscriptionError::InvalidTranscript(_)
        )
    }
}

pub type Result<T, E = TranscriptionError> = std::result::Result<T, E>;

/// One ASR result, times relative to the start of the audio handed to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsrSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub confidence: Option<f32>,
    pub words: Vec<Word>,
}

/// A speech recogniser. Implementations: `asr::whisper::WhisperEngine` (the real one);
/// test code may define doubles, never the library.
pub trait AsrEngine: Send + Sync {
    /// A short name for logs and the API, e.g. "whisper:ggml-base.en".
    fn name(&self) -> &str;
    /// Transcribe 16 kHz mono f32 audio in [-1, 1].
    fn transcribe(&self, audio_16k: &[f32], language: Option<&str>) -> Result<Vec<AsrSegment>>;
}

/// How the text of a processed recording was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsrOutcome {
    /// An ASR engine transcribed the utterances.
    Transcribed,
    /// No engine is configured: segments carry speaker and times only.
    Unavailable,
    /// A transcript came with the recording; its text was aligned to our utterances.
    Imported,
    /// No speech was found, so nothing was transcribed.
    NoSpeech,
}

/// Stages reported to a progress callback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// Decoded this many ms of `total_ms` (total is the container's claim; may be 0 when unknown).
    Decoding { done_ms: u64, total_ms: u64 },
    /// Transcribed utterance `done` of `total`.
    Transcribing { done: usize, total: usize },
}

/// The result of running the pipeline on a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineOutput {
    pub info: AudioInfo,
    /// Merged over channels, ordered by start time; overlaps kept.
    pub segments: Vec<Segment>,
    pub asr: AsrOutcome,
}

/// A stretch of speech found by VAD on one channel, in recording time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utterance {
    pub channel: u16,
    pub role: SpeakerRole,
    pub start_ms: u64,
    pub end_ms: u64,
}

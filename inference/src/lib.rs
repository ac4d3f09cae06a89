//! Model-backed analysers for callscope, kept out of the pure `analysis` crate: the models
//! read files and run numeric kernels, while `analysis` only sees the traits they implement.
//!
//! - [`MiniLmEncoder`]: all-MiniLM-L6-v2 sentence embeddings (candle, CPU) for smart
//!   trackers, implementing [`callscope_analysis::smart::SentenceEncoder`].
//! - [`OnnxSentimentClassifier`]: a transformer sentiment classifier exported to ONNX, run
//!   by ONNX Runtime loaded at run time (ort `load-dynamic`).
//! - [`OnnxSpeakerEmbedder`]: a speaker-embedding network exported to ONNX, for the mono
//!   diarizer (implements [`callscope_transcription::diarize::SpeakerEmbedder`]), with the
//!   Kaldi-compatible filter banks ([`fbank`]) such networks take.

pub mod discovery;
pub mod fbank;
pub mod minilm;
pub mod onnx_sentiment;
pub mod onnx_speaker;
mod ort_runtime;
pub mod wordpiece;

use std::path::PathBuf;

pub use discovery::{locate_minilm_dir, locate_onnxruntime, venv_python};
pub use minilm::MiniLmEncoder;
pub use onnx_sentiment::{LabelOrder, OnnxSentimentClassifier};
pub use onnx_speaker::{OnnxSpeakerEmbedder, SpeakerInput};
pub use wordpiece::WordPieceTokenizer;

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model not found: {0}")]
    NotFound(String),
    #[error("bad model configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Model(String),
    #[error("onnx runtime: {0}")]
    Onnx(String),
}

impl From<candle_core::Error> for InferenceError {
    fn from(e: candle_core::Error) -> Self {
        InferenceError::Model(e.to_string())
    }
}

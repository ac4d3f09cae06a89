//! Speech recognition engines. The library ships one real engine, whisper.cpp
//! ([`whisper::WhisperEngine`]); callers hold it as a `dyn AsrEngine`.

pub mod ggml_model;
pub mod whisper;

pub use ggml_model::{ModelFileError, ModelSummary, validate_model_file};
pub use whisper::{WhisperConfig, WhisperEngine};

//! callscope's call analysis: everything a QA manager reads about a call, computed from its
//! transcript turns. Pure functions from turns (+ the organization's configuration) to
//! insights; no files, no network, no database. Model-backed analysers (sentence embeddings,
//! ONNX classifiers) are reached through traits so the models can live elsewhere.
//!
//! Each module has one job; `types` holds what they share.

pub mod actions;
pub mod classify;
pub mod llm;
pub mod phrase;
pub mod redact;
pub mod report;
pub mod rules;
pub mod scorecard;
pub mod sentiment;
pub mod smart;
pub mod stats;
pub mod summary;
pub mod text;
pub mod trackers;
pub mod types;

pub use types::*;

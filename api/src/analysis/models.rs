//! The models call analysis may use, loaded on first use and kept for the process's life.
//! A model that is not installed or fails to load is remembered as such (with the reason,
//! shown in the analysis as why that part was unavailable) rather than retried per call.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use callscope_inference::{MiniLmEncoder, OnnxSentimentClassifier, WordPieceTokenizer};

use super::llm_client::ChatCompletionsClient;
use crate::config::AnalysisSettings;

pub struct AnalysisModels {
    settings: AnalysisSettings,
    encoder: OnceLock<Result<Arc<MiniLmEncoder>, String>>,
    sentiment: OnceLock<Result<Arc<OnnxSentimentClassifier>, String>>,
    /// The `[analysis.llm]` endpoint, or why it cannot be used (a bad `base_url`).
    language_model: Result<Option<Arc<ChatCompletionsClient>>, String>,
}

impl AnalysisModels {
    pub fn new(settings: AnalysisSettings) -> Self {
        let language_model = ChatCompletionsClient::from_settings(&settings.llm)
            .map(|c| c.map(Arc::new))
            .inspect_err(|e| tracing::warn!(error = %e, "the language model is not usable"));
        if let Ok(Some(c)) = &language_model {
            tracing::info!(endpoint = %c.endpoint(), model = c.model(), "language model configured for call analysis");
        }
        AnalysisModels {
            settings,
            encoder: OnceLock::new(),
            sentiment: OnceLock::new(),
            language_model,
        }
    }

    /// The chat-completions endpoint for organizations that turn LLM features on, or why
    /// there is none.
    pub fn language_model(&self) -> Result<Arc<ChatCompletionsClient>, String> {
        match &self.language_model {
            Ok(Some(c)) => Ok(c.clone()),
            Ok(None) => Err(
                "no language model is configured on the server ([analysis.llm] base_url and model)"
                    .into(),
            ),
            Err(e) => Err(e.clone()),
        }
    }

    /// The sentence encoder for smart trackers, or why there is none. Blocking (loads the
    /// model the first time): call from a blocking task.
    pub fn encoder(&self) -> Result<Arc<MiniLmEncoder>, String> {
        self.encoder
            .get_or_init(
                || match MiniLmEncoder::discover(self.settings.minilm_dir.as_deref()) {
                    Ok(Some(e)) => {
                        tracing::info!("sentence-embedding model loaded for smart trackers");
                        Ok(Arc::new(e))
                    }
                    Ok(None) => Err(callscope_analysis::smart::UNAVAILABLE_NO_MODEL.to_string()),
                    Err(e) => {
                        tracing::warn!(error = %e, "sentence-embedding model failed to load");
                        Err(format!("smart trackers unavailable: {e}"))
                    }
                },
            )
            .clone()
    }

    /// The configured ONNX sentiment classifier, or why there is none. Blocking.
    pub fn sentiment(&self) -> Result<Arc<OnnxSentimentClassifier>, String> {
        self.sentiment
            .get_or_init(|| match &self.settings.sentiment_model {
                None => Err("no sentiment model configured ([analysis] sentiment_model)".into()),
                Some(path) => load_sentiment(path, self.settings.onnx_runtime.as_deref())
                    .map(Arc::new)
                    .inspect_err(|e| tracing::warn!(error = %e, "sentiment model failed to load")),
            })
            .clone()
    }
}

/// The classifier at `model` with the WordPiece vocabulary beside it.
fn load_sentiment(model: &Path, runtime: Option<&Path>) -> Result<OnnxSentimentClassifier, String> {
    let dir = model
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let tokenizer = WordPieceTokenizer::from_vocab_file(&dir.join("vocab.txt"))
        .map_err(|e| format!("sentiment model's vocabulary: {e}"))?;
    OnnxSentimentClassifier::load_with_runtime(model, tokenizer, runtime)
        .map_err(|e| format!("sentiment model: {e}"))
}

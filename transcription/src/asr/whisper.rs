//! The real speech recogniser: whisper.cpp through whisper-rs.
//!
//! One loaded model ([`WhisperEngine`]) is shared by every caller; each `transcribe` call
//! makes its own decoding state, so calls from several threads run side by side without a
//! lock (whisper.cpp's context is read-only after loading; only states are mutated).

use std::path::Path;
use std::sync::Once;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::ggml_model::{ModelSummary, validate_model_file};
use crate::types::{AsrEngine, AsrSegment, Result, TranscriptionError, Word};

/// How to run a whisper model.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperConfig {
    /// Default spoken language (ISO 639-1, e.g. "en"), or `None`/"auto" to let a multilingual
    /// model detect it. A `language` given to `transcribe` overrides it.
    pub language: Option<String>,
    /// CPU threads per `transcribe` call; 0 picks min(4, available cores).
    pub threads: usize,
    /// Ask whisper for per-token times, which become [`Word`]s. Costs little on CPU.
    pub word_timestamps: bool,
    /// Use a GPU backend when whisper-rs was built with one.
    pub use_gpu: bool,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        WhisperConfig {
            language: Some("en".to_string()),
            threads: 0,
            word_timestamps: true,
            use_gpu: false,
        }
    }
}

/// A loaded whisper model. `Send + Sync`: share it behind an `Arc`.
pub struct WhisperEngine {
    ctx: WhisperContext,
    config: WhisperConfig,
    name: String,
    summary: ModelSummary,
}

impl std::fmt::Debug for WhisperEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperEngine")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("summary", &self.summary)
            .finish()
    }
}

/// Route whisper.cpp's and ggml's log lines (normally printed to stderr) into `tracing`,
/// under the targets `whisper_rs::whisper_logging_hook` / `whisper_rs::ggml_logging_hook`.
fn install_log_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

const SAMPLE_RATE: u64 = 16_000;

impl WhisperEngine {
    /// Load a whisper.cpp ggml model (e.g. `ggml-base.en.bin`).
    ///
    /// The file is checked completely before whisper.cpp reads it (see `ggml_model`), so a
    /// missing, foreign, truncated or weight-less file gives a `Model` error naming the file
    /// and the reason rather than a crash or a model that transcribes garbage.
    pub fn load(path: impl AsRef<Path>, config: WhisperConfig) -> Result<Self> {
        let path = path.as_ref();
        let model_err =
            |why: String| TranscriptionError::Model(format!("{}: {why}", path.display()));
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(model_err("not a regular file".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(model_err(
                    "model file not found (see models/README.md to obtain one)".into(),
                ));
            }
            Err(e) => return Err(model_err(e.to_string())),
        }
        if let Some(lang) = &config.language {
            check_language(lang)?;
        }
        let summary = validate_model_file(path).map_err(|e| model_err(e.to_string()))?;

        install_log_hooks();
        let mut params = WhisperContextParameters::default();
        params.use_gpu(config.use_gpu);
        let path_str = path
            .to_str()
            .ok_or_else(|| model_err("path is not valid UTF-8".into()))?;
        let ctx = WhisperContext::new_with_params(path_str, params)
            .map_err(|e| model_err(format!("whisper.cpp could not load it: {e:?}")))?;

        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        tracing::info!(
            model = %path.display(),
            size = summary.hparams.size_name(),
            multilingual = summary.multilingual,
            tensors = summary.n_tensors,
            "whisper model loaded"
        );
        Ok(WhisperEngine {
            ctx,
            config,
            name: format!("whisper:{stem}"),
            summary,
        })
    }

    /// What the model file declared (size, vocabulary kind, tensor count).
    pub fn summary(&self) -> &ModelSummary {
        &self.summary
    }

    /// The path-independent configuration this engine runs with.
    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    fn threads(&self) -> i32 {
        let n = if self.config.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1)
        } else {
            self.config.threads
        };
        i32::try_from(n.clamp(1, 64)).unwrap_or(1)
    }

    /// Resolve the language for one call: the call's, else the configured one; English-only
    /// models always get "en" (whisper.cpp ignores anything else for them).
    fn language_for<'a>(&'a self, requested: Option<&'a str>) -> Result<Option<&'a str>> {
        let lang = requested.or(self.config.language.as_deref());
        if let Some(l) = lang {
            check_language(l)?;
        }
        if !self.summary.multilingual {
            return Ok(Some("en"));
        }
        Ok(match lang {
            None | Some("auto") => None,
            Some(l) => Some(l),
        })
    }
}

/// Reject language codes whisper.cpp does not know, before they reach code that panics on
/// NUL bytes (whisper-rs's `CString::new(..).expect`).
fn check_language(lang: &str) -> Result<()> {
    if lang == "auto" {
        return Ok(());
    }
    let plausible = !lang.is_empty()
        && lang.len() <= 16
        && lang.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
    if plausible && whisper_rs::get_lang_id(lang).is_some() {
        Ok(())
    } else {
        Err(TranscriptionError::Asr(format!(
            "unknown language code {lang:?} (use an ISO 639-1 code such as \"en\", or \"auto\")"
        )))
    }
}

impl AsrEngine for WhisperEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn transcribe(&self, audio_16k: &[f32], language: Option<&str>) -> Result<Vec<AsrSegment>> {
        if audio_16k.is_empty() {
            return Ok(Vec::new());
        }
        if audio_16k.iter().any(|s| !s.is_finite()) {
            return Err(TranscriptionError::Asr(
                "audio contains NaN or infinite samples".into(),
            ));
        }
        let language = self.language_for(language)?;
        let audio_ms = audio_16k.len() as u64 * 1000 / SAMPLE_RATE;

        let mut state = self
            .ctx
            .create_state()
            .map_err(|e| TranscriptionError::Asr(format!("cannot create whisper state: {e:?}")))?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads());
        params.set_translate(false);
        // Each utterance is independent: carrying text over between calls would leak one
        // caller's words into another's prompt.
        params.set_no_context(true);
        params.set_language(language);
        params.set_token_timestamps(self.config.word_timestamps);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);

        state
            .full(params, audio_16k)
            .map_err(|e| TranscriptionError::Asr(format!("whisper inference failed: {e:?}")))?;

        let eot = self.ctx.token_eot();
        let mut out = Vec::new();
        for segment in state.as_iter() {
            let text = match segment.to_str_lossy() {
                Ok(t) => t.trim().to_string(),
                Err(e) => {
                    return Err(TranscriptionError::Asr(format!(
                        "whisper returned no segment text: {e:?}"
                    )));
                }
            };
            if text.is_empty() {
                continue;
            }
            let start_ms = centis_to_ms(segment.start_timestamp(), audio_ms);
            let end_ms = centis_to_ms(segment.end_timestamp(), audio_ms).max(start_ms);

            let mut probs = Vec::new();
            let mut words: Vec<Word> = Vec::new();
            let mut word_probs: Vec<f32> = Vec::new();
            for i in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(i) else {
                    continue;
                };
                let data = token.token_data();
                // Special tokens (end of text, timestamps, language...) are not speech.
                if data.id >= eot {
                    continue;
                }
                probs.push(data.p);
                if !self.config.word_timestamps {
                    continue;
                }
                let piece = match token.to_str_lossy() {
                    Ok(p) => p.into_owned(),
                    Err(_) => continue,
                };
                let t0 = centis_to_ms(data.t0, audio_ms).max(start_ms);
                let t1 = centis_to_ms(data.t1, audio_ms).clamp(t0, end_ms.max(t0));
                push_token(&mut words, &mut word_probs, &piece, t0, t1, data.p);
            }
            finish_word(&mut words, &mut word_probs);
            words.retain(|w| !w.text.is_empty());

            let confidence = if probs.is_empty() {
                None
            } else {
                Some(probs.iter().sum::<f32>() / probs.len() as f32)
            };
            out.push(AsrSegment {
                start_ms,
                end_ms,
                text,
                confidence,
                words,
            });
        }
        Ok(out)
    }
}

/// whisper times are in centiseconds; clamp them into the audio handed to it.
fn centis_to_ms(t: i64, audio_ms: u64) -> u64 {
    (t.max(0) as u64).saturating_mul(10).min(audio_ms)
}

/// Add one token to the word list: a token starting with a space (whisper's BPE marks word
/// starts that way) opens a new word; other tokens continue the current one.
fn push_token(
    words: &mut Vec<Word>,
    word_probs: &mut Vec<f32>,
    piece: &str,
    t0: u64,
    t1: u64,
    p: f32,
) {
    let starts_word = piece.starts_with(' ') || words.is_empty();
    if starts_word {
        finish_word(words, word_probs);
        words.push(Word {
            text: piece.trim().to_string(),
            start_ms: t0,
            end_ms: t1,
            probability: None,
        });
    } else if let Some(w) = words.last_mut() {
        w.text.push_str(piece);
        w.end_ms = w.end_ms.max(t1);
    }
    word_probs.push(p);
}

/// Close the current word: its probability is the mean over its tokens.
fn finish_word(words: &mut [Word], word_probs: &mut Vec<f32>) {
    if let Some(w) = words.last_mut()
        && w.probability.is_none()
        && !word_probs.is_empty()
    {
        w.probability = Some(word_probs.iter().sum::<f32>() / word_probs.len() as f32);
    }
    word_probs.clear();
}

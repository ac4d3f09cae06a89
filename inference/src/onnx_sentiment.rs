//! A transformer sentiment classifier exported to ONNX, run by ONNX Runtime. The runtime is
//! a shared library loaded at run time (ort's `load-dynamic`), by default the one in PyPI's
//! `onnxruntime` wheel that `scripts/setup` installs, so nothing is downloaded at build time.
//!
//! Supported models: BERT-family classifiers with an uncased WordPiece vocabulary
//! (`vocab.txt`), inputs `input_ids` and `attention_mask` (and optionally
//! `token_type_ids`), int64, shape `[batch, tokens]`, and one float output of shape
//! `[batch, classes]` (logits) with 2, 3 or 5 classes — see [`LabelOrder`]. Export one
//! with Hugging Face optimum, e.g.
//! `optimum-cli export onnx --model distilbert-base-uncased-finetuned-sst-2-english --task text-classification out/`
//! which writes `out/model.onnx`, `out/vocab.txt` and `out/config.json` (whose `id2label`
//! gives the label order).

use std::path::Path;
use std::sync::Mutex;

use callscope_analysis::{SentimentLabel, SentimentScore};
use ort::session::Session;
use ort::value::Tensor;

use crate::InferenceError;
use crate::ort_runtime::open_session;
use crate::wordpiece::WordPieceTokenizer;

/// Inputs longer than this are cut (the usual BERT limit).
const MAX_TOKENS: usize = 512;

/// Both probabilities at least this high make the label `mixed`.
const MIXED_PROBABILITY: f32 = 0.35;

/// What the model's output classes mean, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOrder {
    /// SST-2 style: `[negative, positive]`.
    NegativePositive,
    /// `[negative, neutral, positive]` (cardiffnlp twitter sentiment, most 3-class models).
    NegativeNeutralPositive,
    /// Review stars: `[1 star, …, 5 stars]` (nlptown bert-base-multilingual-uncased-sentiment).
    FiveStars,
}

impl LabelOrder {
    pub fn classes(self) -> usize {
        match self {
            LabelOrder::NegativePositive => 2,
            LabelOrder::NegativeNeutralPositive => 3,
            LabelOrder::FiveStars => 5,
        }
    }

    /// The order a model's `config.json` `id2label` describes, e.g.
    /// `{"0": "NEGATIVE", "1": "POSITIVE"}`; `None` when the names are not recognised
    /// (then the number of classes decides, see [`LabelOrder::for_classes`]).
    pub fn from_id2label(labels: &[String]) -> Option<Self> {
        let lower: Vec<String> = labels.iter().map(|l| l.to_lowercase()).collect();
        let is = |i: usize, word: &str| lower.get(i).is_some_and(|l| l.contains(word));
        match lower.len() {
            2 if is(0, "neg") && is(1, "pos") => Some(LabelOrder::NegativePositive),
            3 if is(0, "neg") && is(1, "neu") && is(2, "pos") => {
                Some(LabelOrder::NegativeNeutralPositive)
            }
            5 if (0..5).all(|i| is(i, &(i + 1).to_string()) && is(i, "star")) => {
                Some(LabelOrder::FiveStars)
            }
            _ => None,
        }
    }

    /// The conventional order for a number of classes.
    pub fn for_classes(classes: usize) -> Option<Self> {
        match classes {
            2 => Some(LabelOrder::NegativePositive),
            3 => Some(LabelOrder::NegativeNeutralPositive),
            5 => Some(LabelOrder::FiveStars),
            _ => None,
        }
    }

    /// Score in [-1, 1] and label from the class probabilities.
    fn summarise(self, p: &[f32]) -> SentimentScore {
        let at = |i: usize| p.get(i).copied().unwrap_or(0.0);
        let (negative, positive, score) = match self {
            LabelOrder::NegativePositive | LabelOrder::NegativeNeutralPositive => {
                let positive = at(self.classes() - 1);
                (at(0), positive, positive - at(0))
            }
            LabelOrder::FiveStars => {
                let stars: f32 = (0..5).map(|i| at(i) * (i as f32 + 1.0)).sum();
                (at(0) + at(1), at(3) + at(4), (stars - 3.0) / 2.0)
            }
        };
        let neutral = (1.0 - negative - positive).max(0.0);
        let label = if negative >= MIXED_PROBABILITY && positive >= MIXED_PROBABILITY {
            SentimentLabel::Mixed
        } else if positive >= negative && positive >= neutral {
            SentimentLabel::Positive
        } else if negative >= neutral {
            SentimentLabel::Negative
        } else {
            SentimentLabel::Neutral
        };
        SentimentScore {
            score: score.clamp(-1.0, 1.0),
            label,
        }
    }
}

/// Sentiment of a text by an ONNX classifier.
pub struct OnnxSentimentClassifier {
    // `Session::run` takes `&mut self` (ONNX Runtime internals are not thread safe); one
    // text at a time is what the analysers need.
    session: Mutex<Session>,
    tokenizer: WordPieceTokenizer,
    labels: LabelOrder,
    wants_token_types: bool,
    output: String,
}

impl std::fmt::Debug for OnnxSentimentClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxSentimentClassifier")
            .field("labels", &self.labels)
            .finish()
    }
}

impl OnnxSentimentClassifier {
    /// Loads `model_path` with the ONNX Runtime found by [`locate_onnxruntime`]. The label
    /// order comes from `config.json` next to the model (`id2label`) when it names the
    /// classes, else from the number of classes.
    pub fn load(model_path: &Path, tokenizer: WordPieceTokenizer) -> Result<Self, InferenceError> {
        Self::load_with_runtime(model_path, tokenizer, None)
    }

    /// As [`load`](Self::load), with an explicit ONNX Runtime library (from the
    /// configuration).
    pub fn load_with_runtime(
        model_path: &Path,
        tokenizer: WordPieceTokenizer,
        runtime: Option<&Path>,
    ) -> Result<Self, InferenceError> {
        let session = open_session(model_path, runtime)?;

        let input_names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for required in ["input_ids", "attention_mask"] {
            if !input_names.contains(&required) {
                return Err(InferenceError::Model(format!(
                    "{}: no input named {required} (inputs: {input_names:?})",
                    model_path.display()
                )));
            }
        }
        let wants_token_types = input_names.contains(&"token_type_ids");
        let output = session
            .outputs()
            .first()
            .map(|o| o.name().to_string())
            .ok_or_else(|| InferenceError::Model(format!("{}: no output", model_path.display())))?;
        let classes = output_classes(&session).ok_or_else(|| {
            InferenceError::Model(format!(
                "{}: output {output} is not [batch, classes] float logits",
                model_path.display()
            ))
        })?;
        let names = label_names_from_config(model_path);
        let named = LabelOrder::from_id2label(&names);
        let names_mean_something = names.iter().any(|n| {
            let n = n.to_lowercase();
            n.contains("pos") || n.contains("neg") || n.contains("star")
        });
        if named.is_none() && names_mean_something {
            // Guessing would silently swap positive and negative.
            return Err(InferenceError::Model(format!(
                "{}: label order {names:?} in config.json is not supported; supported: [negative, positive], [negative, neutral, positive], [1 star … 5 stars]",
                model_path.display()
            )));
        }
        let labels = named
            .filter(|l| l.classes() == classes)
            .or_else(|| LabelOrder::for_classes(classes))
            .ok_or_else(|| {
                InferenceError::Model(format!(
                    "{}: {classes} output classes; supported: 2 (negative, positive), 3 (negative, neutral, positive), 5 (stars)",
                    model_path.display()
                ))
            })?;
        Ok(Self {
            session: Mutex::new(session),
            tokenizer,
            labels,
            wants_token_types,
            output,
        })
    }

    pub fn labels(&self) -> LabelOrder {
        self.labels
    }

    /// Class probabilities (softmax of the logits), in the model's output order.
    pub fn probabilities(&self, text: &str) -> Result<Vec<f32>, InferenceError> {
        let ids: Vec<i64> = self
            .tokenizer
            .encode(text, MAX_TOKENS)
            .ids
            .into_iter()
            .map(i64::from)
            .collect();
        let n = ids.len();
        let tensor = |values: Vec<i64>| {
            Tensor::from_array(([1usize, n], values))
                .map_err(|e| InferenceError::Onnx(e.to_string()))
        };
        let mut inputs = ort::inputs![
            "input_ids" => tensor(ids)?,
            "attention_mask" => tensor(vec![1; n])?,
        ];
        if self.wants_token_types {
            inputs.push(("token_type_ids".into(), tensor(vec![0; n])?.into()));
        }
        let mut session = self
            .session
            .lock()
            .map_err(|_| InferenceError::Onnx("session poisoned by an earlier panic".into()))?;
        let outputs = session
            .run(inputs)
            .map_err(|e| InferenceError::Onnx(e.to_string()))?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| InferenceError::Onnx(format!("no output {}", self.output)))?;
        let (shape, logits) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| InferenceError::Onnx(e.to_string()))?;
        if logits.len() != self.labels.classes() || logits.iter().any(|x| !x.is_finite()) {
            return Err(InferenceError::Onnx(format!(
                "unexpected logits of shape {shape:?}"
            )));
        }
        Ok(softmax(logits))
    }

    /// Sentiment of `text`: score in [-1, 1] (P(positive) − P(negative), or the expected
    /// star rating mapped to [-1, 1]) and its label, `mixed` when both sides are likely.
    // At merge this implements the sentiment module's `SentimentAnalyser` trait.
    pub fn score(&self, text: &str) -> Result<SentimentScore, InferenceError> {
        Ok(self.labels.summarise(&self.probabilities(text)?))
    }
}

fn output_classes(session: &Session) -> Option<usize> {
    let output = session.outputs().first()?;
    match output.dtype() {
        ort::value::ValueType::Tensor { ty, shape, .. }
            if *ty == ort::value::TensorElementType::Float32 && shape.len() == 2 =>
        {
            usize::try_from(*shape.get(1)?).ok()
        }
        _ => None,
    }
}

/// The class names of `config.json`'s `id2label` next to the model, in id order (empty
/// when there is none).
fn label_names_from_config(model_path: &Path) -> Vec<String> {
    let Some(text) = model_path
        .parent()
        .and_then(|dir| std::fs::read_to_string(dir.join("config.json")).ok())
    else {
        return Vec::new();
    };
    let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let Some(map) = config.get("id2label").and_then(|m| m.as_object()) else {
        return Vec::new();
    };
    let mut labels: Vec<(usize, String)> = map
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
        .collect();
    labels.sort();
    labels.into_iter().map(|(_, l)| l).collect()
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let exp: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The ONNX classifier replaces the lexicon wherever the analysis takes a
/// [`SentimentAnalyser`] (an organization that configured a model).
impl callscope_analysis::sentiment::SentimentAnalyser for OnnxSentimentClassifier {
    fn name(&self) -> &str {
        "onnx"
    }

    fn analyse(
        &self,
        text: &str,
    ) -> Result<callscope_analysis::SentimentScore, callscope_analysis::sentiment::SentimentError>
    {
        self.score(text)
            .map_err(|e| callscope_analysis::sentiment::SentimentError::Backend {
                analyser: "onnx".into(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_orders_from_names_and_counts() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            LabelOrder::from_id2label(&names(&["NEGATIVE", "POSITIVE"])),
            Some(LabelOrder::NegativePositive)
        );
        assert_eq!(
            LabelOrder::from_id2label(&names(&["negative", "neutral", "positive"])),
            Some(LabelOrder::NegativeNeutralPositive)
        );
        assert_eq!(
            LabelOrder::from_id2label(&names(&[
                "1 star", "2 stars", "3 stars", "4 stars", "5 stars"
            ])),
            Some(LabelOrder::FiveStars)
        );
        assert_eq!(
            LabelOrder::from_id2label(&names(&["POSITIVE", "NEGATIVE"])),
            None
        );
        assert_eq!(
            LabelOrder::from_id2label(&names(&["LABEL_0", "LABEL_1", "LABEL_2"])),
            None
        );
        assert_eq!(LabelOrder::for_classes(4), None);
    }

    #[test]
    fn probabilities_summarise_to_score_and_label() {
        let three = LabelOrder::NegativeNeutralPositive;
        let s = three.summarise(&[0.1, 0.1, 0.8]);
        assert_eq!(s.label, SentimentLabel::Positive);
        assert!((s.score - 0.7).abs() < 1e-6);
        assert_eq!(
            three.summarise(&[0.7, 0.2, 0.1]).label,
            SentimentLabel::Negative
        );
        assert_eq!(
            three.summarise(&[0.1, 0.8, 0.1]).label,
            SentimentLabel::Neutral
        );
        assert_eq!(
            three.summarise(&[0.45, 0.1, 0.45]).label,
            SentimentLabel::Mixed
        );
        let stars = LabelOrder::FiveStars.summarise(&[0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!((stars.score, stars.label), (1.0, SentimentLabel::Positive));
        let two = LabelOrder::NegativePositive.summarise(&[0.9, 0.1]);
        assert_eq!(two.label, SentimentLabel::Negative);
        assert!((two.score + 0.8).abs() < 1e-6);
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6 && p[2] > p[1]);
    }
}

//! The ONNX classifier's real path — ONNX Runtime from PyPI's wheel loaded at run time, a
//! model file, tokenization, tensors in and logits out — on a small sentiment graph this
//! test builds with the Python `onnx` package (no real sentiment model can be downloaded
//! here). The graph sums a per-token 3-class score table over the attended tokens, so the
//! expected probabilities are known, and Python's onnxruntime computes them too.

mod python;

use std::path::Path;

use callscope_analysis::SentimentLabel;
use callscope_inference::{
    LabelOrder, OnnxSentimentClassifier, WordPieceTokenizer, locate_onnxruntime,
};
use python::python_json;

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "i", "love", "this", "thanks", "terrible", "angry",
    "cancel", "the", "meeting", "is", "on", "tuesday", "but", "great", ",", "!", "##s",
];

/// Builds the model in `dir` and returns the probabilities onnxruntime (Python) gives for
/// each of `id_rows`; `None` with a message when the venv lacks onnx/onnxruntime.
const BUILD_AND_RUN: &str = r#"
import json, sys
import numpy as np
import onnx
from onnx import TensorProto, helper
import onnxruntime as ort

path, vocab_size, rows, with_types = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4] == "1"
# Per-token scores for [negative, neutral, positive].
table = np.zeros((vocab_size, 3), dtype=np.float32)
table[:, 1] = 0.2
for tok, col, val in [(5, 2, 3.0), (7, 2, 2.0), (17, 2, 2.5), (8, 0, 3.0), (9, 0, 2.5), (10, 0, 2.0)]:
    table[tok, col] = val
inputs = [
    helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
    helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
]
if with_types:
    inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "tokens"]))
nodes = [
    helper.make_node("Gather", ["table", "input_ids"], ["per_token"], axis=0),
    helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
    helper.make_node("Unsqueeze", ["mask_f", "last_axis"], ["mask3"]),
    helper.make_node("Mul", ["per_token", "mask3"], ["masked"]),
    helper.make_node("ReduceSum", ["masked", "token_axis"], ["logits"], keepdims=0),
]
graph = helper.make_graph(
    nodes, "tiny_sentiment", inputs,
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
    initializer=[
        helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.flatten().tolist()),
        helper.make_tensor("last_axis", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("token_axis", TensorProto.INT64, [1], [1]),
    ],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, path)

session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
out = []
for ids in rows:
    feed = {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
    if with_types:
        feed["token_type_ids"] = np.zeros((1, len(ids)), dtype=np.int64)
    logits = session.run(None, feed)[0][0]
    e = np.exp(logits - logits.max())
    out.append((e / e.sum()).tolist())
print(json.dumps(out))
"#;

fn tokenizer() -> WordPieceTokenizer {
    WordPieceTokenizer::from_vocab(VOCAB.iter().map(|s| s.to_string())).unwrap()
}

/// Writes the model to `dir/model.onnx`; returns Python's probabilities for `texts`.
fn build_model(dir: &Path, texts: &[&str], with_token_types: bool) -> Option<Vec<Vec<f32>>> {
    if locate_onnxruntime(None).is_none() {
        eprintln!("SKIPPED: ONNX Runtime not installed (run scripts/setup, or set ORT_DYLIB_PATH)");
        return None;
    }
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tokenizer().encode(t, 512).ids)
        .collect();
    let reference = python_json(
        BUILD_AND_RUN,
        &[
            dir.join("model.onnx").display().to_string(),
            VOCAB.len().to_string(),
            serde_json::to_string(&rows).unwrap(),
            if with_token_types { "1" } else { "0" }.to_string(),
        ],
    )?;
    Some(serde_json::from_value(reference).unwrap())
}

#[test]
fn classifies_text_through_onnx_runtime_like_python_does() {
    let texts = [
        "I love this, thanks!",
        "This is terrible, I am angry",
        "The meeting is on Tuesday",
        "I love this but this is terrible",
    ];
    let dir = tempfile::tempdir().unwrap();
    let Some(reference) = build_model(dir.path(), &texts, false) else {
        return;
    };
    let classifier =
        OnnxSentimentClassifier::load(&dir.path().join("model.onnx"), tokenizer()).unwrap();
    assert_eq!(classifier.labels(), LabelOrder::NegativeNeutralPositive);

    for (text, expected) in texts.iter().zip(&reference) {
        let ours = classifier.probabilities(text).unwrap();
        let diff = ours
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{text:?}: rust {ours:?} python {expected:?}");
        assert!(diff < 1e-5, "{text}: {ours:?} vs {expected:?}");
    }
    let labels: Vec<SentimentLabel> = texts
        .iter()
        .map(|t| classifier.score(t).unwrap().label)
        .collect();
    assert_eq!(
        labels,
        vec![
            SentimentLabel::Positive,
            SentimentLabel::Negative,
            SentimentLabel::Neutral,
            SentimentLabel::Mixed
        ]
    );
    let positive = classifier.score(texts[0]).unwrap().score;
    let negative = classifier.score(texts[1]).unwrap().score;
    assert!(positive > 0.9 && negative < -0.9, "{positive} {negative}");
    // The same classifier through the analysis crate's analyser trait: what a call's analysis
    // uses when the organization configured this model instead of the lexicon.
    let as_analyser: &dyn callscope_analysis::sentiment::SentimentAnalyser = &classifier;
    let through_trait = callscope_analysis::sentiment::analyse_call(
        as_analyser,
        &[callscope_analysis::Turn {
            index: 0,
            role: callscope_analysis::Role::Customer,
            speaker: "Customer".into(),
            start_ms: 0,
            end_ms: 2_000,
            text: texts[1].to_string(),
            words: Vec::new(),
        }],
        Some(2_000),
    )
    .unwrap();
    assert_eq!(through_trait.analyser, "onnx");
    assert_eq!(
        through_trait.turns[0].sentiment.label,
        SentimentLabel::Negative
    );
    // Empty and hostile text still gives a score, not a panic.
    for text in [
        "",
        "\u{0}\u{fffd}💥",
        &"x".repeat(10_000),
        &"love ".repeat(2_000),
    ] {
        let s = classifier.score(text).unwrap();
        assert!((-1.0..=1.0).contains(&s.score));
    }
}

#[test]
fn models_with_token_type_ids_and_a_config_label_order_load() {
    let dir = tempfile::tempdir().unwrap();
    let Some(reference) = build_model(dir.path(), &["thanks"], true) else {
        return;
    };
    // A config naming the classes in an order that is not supported is refused rather than
    // guessed (which would swap positive and negative)…
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"id2label": {"0": "positive", "1": "neutral", "2": "negative"}}"#,
    )
    .unwrap();
    let err = OnnxSentimentClassifier::load(&dir.path().join("model.onnx"), tokenizer())
        .unwrap_err()
        .to_string();
    assert!(err.contains("label order"), "{err}");
    // …while LABEL_0.. names fall back to the class count's usual order.
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}}"#,
    )
    .unwrap();
    let classifier =
        OnnxSentimentClassifier::load(&dir.path().join("model.onnx"), tokenizer()).unwrap();
    let ours = classifier.probabilities("thanks").unwrap();
    assert!(
        (ours[2] - reference[0][2]).abs() < 1e-5,
        "{ours:?} vs {reference:?}"
    );
    assert_eq!(
        classifier.score("thanks").unwrap().label,
        SentimentLabel::Positive
    );
}

#[test]
fn bad_models_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = OnnxSentimentClassifier::load(&dir.path().join("nope.onnx"), tokenizer())
        .unwrap_err()
        .to_string();
    assert!(missing.contains("model not found"), "{missing}");

    if locate_onnxruntime(None).is_none() {
        eprintln!("SKIPPED the corrupt-model part: ONNX Runtime not installed");
        return;
    }
    let corrupt = dir.path().join("corrupt.onnx");
    std::fs::write(&corrupt, b"\x08\x07garbage that is not a protobuf model").unwrap();
    let err = OnnxSentimentClassifier::load(&corrupt, tokenizer())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("onnx runtime:"), "{err}");
}

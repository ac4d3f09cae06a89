//! Accuracy, macro-F1 and confusion matrix of the sentiment analysers on callscope's
//! labelled call-centre set (analysis/data/sentiment-eval.tsv), dev and test halves apart.
//! When the VADER-format lexicon fixture is found (CALLSCOPE_FIXTURES or
//! ../shared/fixtures/text/vader_lexicon.txt) it is evaluated too, under the same rules.
//!
//!     cargo run -p callscope-analysis --example sentiment_eval [-- --errors]

use std::path::PathBuf;

use callscope_analysis::sentiment::eval::{Example, evaluate, parse_labelled, split_dev_test};
use callscope_analysis::sentiment::{Lexicon, LexiconAnalyser, SentimentAnalyser};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let show_errors = std::env::args().any(|a| a == "--errors");
    let examples = parse_labelled(include_str!("../data/sentiment-eval.tsv"))?;
    let (dev, test) = split_dev_test(&examples);
    // Written after the lexicon was frozen; reported, never tuned on.
    let heldout = parse_labelled(include_str!("../data/sentiment-heldout.tsv"))?;
    let mut analysers: Vec<Box<dyn SentimentAnalyser>> =
        vec![Box::new(LexiconAnalyser::embedded())];
    match vader_fixture() {
        Some(path) => {
            let lexicon = Lexicon::from_tsv(&std::fs::read_to_string(&path)?)?;
            analysers.push(Box::new(LexiconAnalyser::with_lexicon(
                "vader-words+rules",
                lexicon.clone(),
                false,
            )));
            analysers.push(Box::new(LexiconAnalyser::with_lexicon(
                "vader-words+rules+domain-phrases",
                lexicon,
                true,
            )));
        }
        None => println!("(VADER-format lexicon fixture not found: skipping that comparison)\n"),
    }
    for analyser in &analysers {
        for (half, set) in [
            ("dev", &dev),
            ("test", &test),
            ("all", &examples),
            ("heldout", &heldout),
        ] {
            report(
                analyser.as_ref(),
                half,
                set,
                show_errors && half != "all" && half != "heldout",
            )?;
        }
    }
    Ok(())
}

fn report(
    analyser: &dyn SentimentAnalyser,
    half: &str,
    set: &[Example],
    show_errors: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let r = evaluate(analyser, set)?;
    println!(
        "{} on {half} ({} examples): accuracy {:.3}, macro-F1 {:.3}\n{}",
        analyser.name(),
        r.examples,
        r.accuracy,
        r.macro_f1,
        r.confusion_table()
    );
    if show_errors {
        for (gold, predicted, text) in &r.errors {
            let score = analyser.analyse(text).map(|s| s.score).unwrap_or(f32::NAN);
            println!("  gold {gold:?} predicted {predicted:?} ({score:+.2}): {text}");
        }
        println!();
    }
    Ok(())
}

fn vader_fixture() -> Option<PathBuf> {
    let root = std::env::var_os("CALLSCOPE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    let path = root.join("text/vader_lexicon.txt");
    path.is_file().then_some(path)
}

//! The whole analysis of a 60-minute call, with and without smart trackers.
//! `RAYON_NUM_THREADS=1 taskset -c 0 cargo run --release -p callscope-inference --example bench_analysis [MINUTES]`
//!
//! The call is made of the utterances of `analysis/data/sentiment-eval.tsv` (call-centre
//! sentences written for callscope), agent and customer alternating, 3–7 s turns with pauses,
//! a few overlaps and long silences, each text made distinct by a number. Prints turns per
//! second and the time of each run; the target is under 1 s of one core without smart
//! trackers and under 10 s with them.

use std::time::Instant;

use callscope_analysis::report::{Analysers, AnalysisConfig, CallInput, analyze_call};
use callscope_analysis::smart::{SentenceEncoder, SmartTracker};
use callscope_analysis::{Role, Turn};
use callscope_inference::{MiniLmEncoder, locate_minilm_dir};

fn utterances() -> Vec<String> {
    let set = include_str!("../../analysis/data/sentiment-eval.tsv");
    set.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t').map(|(_, text)| text.to_string()))
        .collect()
}

/// A deterministic call of `minutes` minutes.
fn call(minutes: u64) -> Vec<Turn> {
    let texts = utterances();
    let end = minutes * 60_000;
    let mut turns = Vec::new();
    let mut t = 500u64;
    let mut i = 0usize;
    while t < end {
        let role = if i.is_multiple_of(2) {
            Role::Agent
        } else {
            Role::Customer
        };
        let len = 3_000 + (i as u64 * 7919) % 4_000;
        let text = format!("{} Reference {i}.", texts[i % texts.len()]);
        turns.push(Turn {
            index: i,
            role,
            speaker: if role == Role::Agent {
                "Agent"
            } else {
                "Customer"
            }
            .into(),
            start_ms: t,
            end_ms: (t + len).min(end),
            text,
            words: Vec::new(),
        });
        // Mostly a short pause; every 17th turn is interrupted, every 41st followed by silence.
        t += len
            + if i % 17 == 16 {
                0
            } else if i % 41 == 40 {
                4_500
            } else {
                400
            };
        if i % 17 == 15 {
            t = t.saturating_sub(800);
        }
        i += 1;
    }
    turns
}

fn smart_trackers() -> Vec<SmartTracker> {
    let tracker = |id: &str, category: &str, examples: &[&str]| SmartTracker {
        id: id.into(),
        name: id.into(),
        category: category.into(),
        active: true,
        examples: examples.iter().map(|e| e.to_string()).collect(),
        threshold: 0.5,
        role: None,
    };
    vec![
        tracker(
            "churn",
            "objection",
            &[
                "I want to cancel my subscription",
                "I am going to switch providers",
            ],
        ),
        tracker(
            "pricing",
            "pricing",
            &["How much does it cost per month", "Is there a discount"],
        ),
        tracker(
            "competitor",
            "competitor",
            &["The other company offered me a better deal"],
        ),
        tracker(
            "escalation",
            "custom",
            &["I want to speak to your manager", "This is unacceptable"],
        ),
        tracker(
            "feature",
            "feature",
            &["Does the plan include international calls"],
        ),
    ]
}

fn run(turns: &[Turn], config: &AnalysisConfig, encoder: Option<&dyn SentenceEncoder>) -> f64 {
    let started = Instant::now();
    let analysis = analyze_call(
        &CallInput {
            turns,
            duration_ms: turns.last().map(|t| t.end_ms),
            started_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
            manual_call_type: None,
        },
        config,
        &Analysers {
            sentiment: None,
            encoder,
        },
    );
    let secs = started.elapsed().as_secs_f64();
    let analysis = analysis.analysis;
    // Keep the result alive (and show that it is real).
    eprintln!(
        "  {} non-talk, {} interruptions, sentiment overall {:?}, {} action items, type {:?}, {} tracker hits, {} flags, {} scorecards, degraded {}",
        analysis.stats.non_talk.len(),
        analysis.stats.interruptions.len(),
        analysis.sentiment.overall.map(|s| s.label),
        analysis.action_items.len(),
        analysis.call_type.map(|c| c.call_type),
        analysis.tracker_hits.len(),
        analysis.compliance.len(),
        analysis.scorecard_suggestions.len(),
        analysis.degraded.len()
    );
    secs
}

fn main() {
    let minutes: u64 = std::env::args()
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(60);
    let turns = call(minutes);
    println!("call: {minutes} min, {} turns", turns.len());
    // Keyword trackers as an organization would write them, the default compliance pack,
    // and one scorecard template bound to them.
    let keyword_trackers = serde_json::from_value(serde_json::json!([
        {"id": "price", "name": "Price", "category": "pricing", "phrases": ["price", "how much", "discount", "per month", "cost*"]},
        {"id": "rival", "name": "Competitors", "category": "competitor", "phrases": ["other provider", "another company", "switch* to"]},
        {"id": "cancel", "name": "Cancellation", "category": "objection", "phrases": ["cancel*", "close my account", "not worth it"]},
        {"id": "feature", "name": "Features", "category": "feature", "phrases": ["international calls", "faster plan", "router"]},
        {"id": "thanks", "name": "Thanks", "category": "custom", "phrases": ["thank you", "thanks", "appreciate *"]},
    ]))
    .expect("keyword trackers");
    let scorecard_templates = serde_json::from_value(serde_json::json!([{
        "id": "qa", "name": "QA", "criteria": [
            {"id": "disclosure", "title": "Recording disclosure", "weight": 2.0, "max_score": 1.0,
             "answer_type": {"type": "yes_no"},
             "binding": {"kind": "rule_flag", "rule_id": "recording-disclosure", "present": false}},
            {"id": "thanks", "title": "Thanked the customer", "weight": 1.0, "max_score": 1.0,
             "answer_type": {"type": "yes_no"},
             "binding": {"kind": "tracker_hit", "tracker_id": "thanks", "present": true}}
        ]
    }]))
    .expect("scorecard template");
    let config = AnalysisConfig {
        keyword_trackers,
        smart_trackers: smart_trackers(),
        rules: callscope_analysis::rules::default_rule_pack(),
        scorecard_templates,
        ..AnalysisConfig::default()
    };

    // Without smart trackers: best of three (the first run warms caches).
    let best = (0..3)
        .map(|_| run(&turns, &config, None))
        .fold(f64::INFINITY, f64::min);
    println!(
        "full analysis without smart trackers: {best:.3} s ({:.0} turns/s)",
        turns.len() as f64 / best
    );

    match locate_minilm_dir(None) {
        None => {
            println!("with smart trackers: skipped (all-MiniLM-L6-v2 not installed; scripts/setup)")
        }
        Some(dir) => {
            let load = Instant::now();
            let encoder = MiniLmEncoder::load(&dir).expect("load MiniLM");
            println!("MiniLM loaded in {:.2} s", load.elapsed().as_secs_f64());
            let secs = run(&turns, &config, Some(&encoder));
            println!(
                "full analysis with {} smart trackers: {secs:.2} s ({:.0} turns/s)",
                config.smart_trackers.len(),
                turns.len() as f64 / secs
            );
        }
    }
}

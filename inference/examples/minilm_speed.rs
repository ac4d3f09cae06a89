//! Embedding speed of MiniLmEncoder and the time of smart tracking over a 60-minute call.
//! `RAYON_NUM_THREADS=1 taskset -c 0 cargo run --release -p callscope-inference --example minilm_speed`

use std::time::Instant;

use callscope_analysis::smart::{SmartTracker, find_smart_hits};
use callscope_analysis::{Role, Turn};
use callscope_inference::{MiniLmEncoder, locate_minilm_dir};

const SENTENCES: &[&str] = &[
    "Thank you for calling, my name is Dana, how can I help you today",
    "My internet keeps dropping every evening around eight",
    "I already restarted the router twice and nothing changed",
    "Let me pull up your account, can you confirm your address please",
    "Honestly I am thinking about switching to another provider",
    "The technician can come on Tuesday between eight and noon",
    "Is there any discount you can offer me for the trouble",
    "I will send you a confirmation email right after this call",
    "Okay that works for me, thank you for your help",
    "We also have a faster plan that costs ten dollars more per month",
];

fn main() {
    let Some(dir) = locate_minilm_dir(None) else {
        eprintln!("all-MiniLM-L6-v2 not installed (scripts/setup)");
        std::process::exit(2);
    };
    let encoder = MiniLmEncoder::load(&dir).expect("load MiniLM");
    // Distinct texts (a number each), so nothing is served twice.
    let texts: Vec<String> = (0..512)
        .map(|i| format!("{} for order {i}", SENTENCES[i % SENTENCES.len()]))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    encoder.embed_texts(&refs[..32]).expect("warm up");
    let started = Instant::now();
    encoder.embed_texts(&refs).expect("embed");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "embedded {} sentences (~14 words) in {secs:.2} s: {:.0} sentences/s",
        refs.len(),
        refs.len() as f64 / secs
    );

    // A 60-minute call: a turn every 4 s, alternating roles, two sentences per turn.
    let turns: Vec<Turn> = (0..900)
        .map(|i| Turn {
            index: i,
            role: if i % 2 == 0 {
                Role::Agent
            } else {
                Role::Customer
            },
            speaker: String::new(),
            start_ms: i as u64 * 4_000,
            end_ms: i as u64 * 4_000 + 3_500,
            text: format!(
                "{} for order {i}. {} today.",
                SENTENCES[i % SENTENCES.len()],
                SENTENCES[(i * 7 + 3) % SENTENCES.len()]
            ),
            words: Vec::new(),
        })
        .collect();
    let trackers: Vec<SmartTracker> = ["churn", "price", "callback", "outage", "upsell"]
        .iter()
        .map(|id| SmartTracker {
            id: id.to_string(),
            name: id.to_string(),
            category: "custom".into(),
            active: true,
            examples: vec![
                format!("an example sentence about {id}"),
                format!("the customer talks about {id}"),
            ],
            threshold: 0.55,
            role: None,
        })
        .collect();
    let started = Instant::now();
    let hits = find_smart_hits(&turns, &trackers, &encoder).expect("smart trackers");
    println!(
        "smart trackers (5 trackers) over a 60-minute call of {} turns: {:.2} s, {} hits",
        turns.len(),
        started.elapsed().as_secs_f64(),
        hits.len()
    );
}

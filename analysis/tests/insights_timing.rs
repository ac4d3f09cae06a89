//! Time of the summary, action items, classification and scorecard suggestion on a
//! generated 60-minute call (720 turns of 5 s). Run on its own, in release:
//! `cargo test -p callscope-analysis --release --test insights_timing -- --ignored --nocapture`

use std::time::Instant;

use callscope_analysis::actions::{ActionOptions, DateOrder, extract_action_items};
use callscope_analysis::classify::{CallTypeSet, classify};
use callscope_analysis::scorecard::{
    AnswerType, Binding, Criterion, ScorecardTemplate, ScoringFacts, suggest,
};
use callscope_analysis::summary::{SummaryOptions, extractive_summary};
use callscope_analysis::{Role, Turn};
use chrono::{TimeZone, Utc};

const LINES: &[&str] = &[
    "Thank you for calling, how can I help you today?",
    "I'm calling because my internet keeps dropping every evening around eight.",
    "I'm sorry to hear that, can I have your account number please?",
    "Sure, it is four five six seven eight, under my wife's name.",
    "I can see the router rebooted twelve times this week, which is unusual.",
    "It is still not working even after I restarted it myself twice.",
    "I was also charged twice for this month and I am quite frustrated.",
    "I'll refund the duplicate charge today and email you the receipt.",
    "A technician will visit within 3 business days to replace the router.",
    "Can you send me the confirmation by text as well?",
];

fn sixty_minute_call() -> Vec<Turn> {
    (0..720)
        .map(|i| Turn {
            index: i,
            role: if i % 2 == 0 {
                Role::Agent
            } else {
                Role::Customer
            },
            speaker: String::new(),
            start_ms: i as u64 * 5_000,
            end_ms: i as u64 * 5_000 + 4_800,
            text: format!(
                "{} {}",
                LINES[i % LINES.len()],
                LINES[(i * 7 + 3) % LINES.len()]
            ),
            words: vec![],
        })
        .collect()
}

#[test]
#[ignore = "timing figures; run on its own in release"]
fn timing_of_a_60_minute_call() {
    let turns = sixty_minute_call();
    let options = ActionOptions {
        call_start: Utc
            .with_ymd_and_hms(2026, 11, 18, 9, 0, 0)
            .single()
            .unwrap(),
        date_order: DateOrder::MonthFirst,
    };
    let template = ScorecardTemplate {
        id: "t".into(),
        name: "QA".into(),
        criteria: (0..20)
            .map(|i| Criterion {
                id: format!("c{i}"),
                title: format!("criterion {i}"),
                weight: 1.0,
                max_score: 5.0,
                answer_type: AnswerType::YesNo,
                na_allowed: true,
                auto_fail: None,
                binding: Some(Binding::TrackerHit {
                    tracker_id: format!("t{i}"),
                    present: true,
                }),
            })
            .collect(),
    };
    let facts = ScoringFacts::default();
    let rounds = 10;
    let started = Instant::now();
    let mut found = 0;
    for _ in 0..rounds {
        found += extract_action_items(&turns, &options).len();
    }
    let actions = started.elapsed() / rounds;
    let started = Instant::now();
    let mut kept = 0;
    for _ in 0..rounds {
        kept += extractive_summary(&turns, &[], &SummaryOptions::default())
            .sentences
            .len();
    }
    let summary = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        assert_eq!(
            classify(&turns, &[], &CallTypeSet::default())
                .unwrap()
                .computed_type,
            "support"
        );
    }
    let classification = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        assert_eq!(suggest(&template, &facts).unwrap().criteria.len(), 20);
    }
    let scorecard = started.elapsed() / rounds;
    assert!(found > 0 && kept > 0);
    println!(
        "60-minute call (720 turns): action items {actions:?}, summary {summary:?}, classification {classification:?}, scorecard {scorecard:?}"
    );
}

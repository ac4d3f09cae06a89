//! Hostile and random input through the summary, action-item, classification, scorecard
//! and language-model-parser entry points: no panic, and outputs that stay well-formed
//! (byte ranges on char boundaries, scores finite and in range, JSON round trips).

use callscope_analysis::actions::{ActionOptions, DateOrder, extract_action_items};
use callscope_analysis::classify::{CallTypeSet, ClassificationSignal, SignalSource, classify};
use callscope_analysis::llm::{
    parse_action_items, parse_confirmation, parse_resolution, parse_summary,
};
use callscope_analysis::scorecard::{
    Answer, AnswerType, AutoFail, Criterion, ManualAnswer, ManualReview, ScorecardTemplate,
    ScoringFacts, apply_review, suggest,
};
use callscope_analysis::summary::{
    SummaryOptions, SummarySignal, extractive_summary, resolution_estimate,
};
use callscope_analysis::{Role, TimedWord, Turn};
use chrono::{TimeZone, Utc};

/// Pieces that stress the parsers: scripts, marks, emoji, numbers, date words, triggers.
const FRAGMENTS: &[&str] = &[
    "I'll",
    "send",
    "you",
    "by",
    "Friday",
    "December",
    "31st",
    "3/12",
    "99/99/9999",
    "within",
    "999999",
    "hours",
    "days",
    "business",
    "next",
    "week",
    "the",
    "end",
    "of",
    "?",
    ".",
    "!",
    "…",
    "مرحبا",
    "؟",
    "ّ",
    "\u{301}",
    "你好。",
    "🙂",
    "\0",
    "\n",
    "'",
    "’",
    "can",
    "could",
    "please",
    "not",
    "twenty-first",
    "a",
    "couple",
    "let",
    "me",
    "check",
    "calling",
    "about",
    "refund",
    "charged",
    "twice",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "%",
    "/",
    "0.5",
    "-1",
    "e9",
    "Mr.",
    "3.5",
    "\u{202e}",
    "\u{feff}",
    "in",
    "minutes",
    "tomorrow",
    "day",
    "after",
];

/// Deterministic pseudo-random numbers (64-bit LCG): the same cases on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn text(&mut self) -> String {
        let n = self.below(30);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(FRAGMENTS[self.below(FRAGMENTS.len())]);
            if self.below(3) > 0 {
                s.push(' ');
            }
        }
        s
    }
}

fn random_turns(rng: &mut Lcg) -> Vec<Turn> {
    let count = rng.below(12);
    (0..count)
        .map(|i| {
            let text = rng.text();
            let role = [Role::Agent, Role::Customer, Role::Unknown][rng.below(3)];
            let start = rng.next() % 4_000_000_000;
            // Word timings that may or may not line up with the text, possibly reversed.
            let words = (0..rng.below(5))
                .map(|_| TimedWord {
                    text: "w".into(),
                    start_ms: rng.next() % 100_000,
                    end_ms: rng.next() % 100_000,
                })
                .collect();
            Turn {
                index: i,
                role,
                speaker: String::new(),
                start_ms: start,
                end_ms: if rng.below(4) == 0 {
                    0
                } else {
                    start + rng.next() % 60_000
                },
                text,
                words,
            }
        })
        .collect()
}

#[test]
fn random_calls_do_not_break_the_analysers() {
    let mut rng = Lcg(0x5eed);
    let options = ActionOptions {
        call_start: Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 0)
            .single()
            .unwrap(),
        date_order: DateOrder::DayFirst,
    };
    let (mut items_seen, mut dues_seen, mut sentences_seen) = (0, 0, 0);
    for _ in 0..2_000 {
        let turns = random_turns(&mut rng);
        for item in extract_action_items(&turns, &options) {
            items_seen += 1;
            dues_seen += usize::from(item.due.is_some());
            let turn = turns.iter().find(|t| t.index == item.turn).unwrap();
            assert_eq!(
                turn.text.get(item.text_start..item.text_end),
                Some(item.text.as_str())
            );
        }
        let signals: Vec<SummarySignal> = (0..rng.below(4))
            .map(|_| SummarySignal {
                turn: rng.below(14),
                weight: [f32::MAX, f32::NAN, 1.0, -1.0, 1e30][rng.below(5)],
                source: "fuzz".into(),
            })
            .collect();
        let summary = extractive_summary(
            &turns,
            &signals,
            &SummaryOptions {
                max_sentences: rng.below(8),
            },
        );
        sentences_seen += summary.sentences.len();
        if let Some(r) = resolution_estimate(&turns) {
            assert!((0.0..=1.0).contains(&r), "{r}");
        }
        for s in &summary.sentences {
            assert!(
                s.score.is_finite() && (0.0..=1.0).contains(&s.score),
                "{s:?}"
            );
        }
        let json = serde_json::to_string(&summary).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());

        let class_signals: Vec<ClassificationSignal> = (0..rng.below(4))
            .map(|_| ClassificationSignal {
                label: ["sales", "pricing", "", "complaint"][rng.below(4)].into(),
                weight: [f32::MAX, f32::NAN, 2.0, f32::MIN_POSITIVE][rng.below(4)],
                source: SignalSource::Other("fuzz".into()),
            })
            .collect();
        let c = classify(&turns, &class_signals, &CallTypeSet::default()).unwrap();
        assert!(
            c.confidence.is_finite() && (0.0..=1.0).contains(&c.confidence),
            "{c:?}"
        );
    }
    // The random calls did reach the interesting paths.
    assert!(
        items_seen > 50 && dues_seen > 10 && sentences_seen > 500,
        "{items_seen} {dues_seen} {sentences_seen}"
    );
}

#[test]
fn random_model_answers_do_not_break_the_parsers() {
    let mut rng = Lcg(42);
    let turns = random_turns(&mut rng);
    for _ in 0..3_000 {
        let answer = rng.text();
        let _ = parse_summary(&answer);
        let _ = parse_action_items(&answer, &turns);
        if let Ok(score) = parse_resolution(&answer) {
            assert!((0.0..=1.0).contains(&score), "{answer:?} → {score}");
        }
        let _ = parse_confirmation(&answer);
    }
}

#[test]
fn extreme_scale_scores_stay_finite() {
    let template = ScorecardTemplate {
        id: "t".into(),
        name: "extreme".into(),
        criteria: vec![Criterion {
            id: "c".into(),
            title: "wide".into(),
            weight: 1_000_000.0,
            max_score: 1_000_000.0,
            answer_type: AnswerType::Scale {
                min: i32::MIN,
                max: i32::MAX,
            },
            na_allowed: false,
            auto_fail: Some(AutoFail::AtOrBelow { value: i32::MIN }),
            binding: None,
        }],
    };
    let card = suggest(&template, &ScoringFacts::default()).unwrap();
    let review = ManualReview {
        reviewer: "r".into(),
        overall_comment: None,
        answers: vec![ManualAnswer {
            criterion_id: "c".into(),
            answer: Answer::Scale(i32::MAX),
            note: None,
        }],
    };
    let card = apply_review(&template, card, &review).unwrap();
    assert_eq!(card.totals.percent, Some(100.0));
    assert!(card.totals.total.is_finite());
    let mut too_heavy = template.clone();
    too_heavy.criteria[0].weight = 1e300;
    assert!(suggest(&too_heavy, &ScoringFacts::default()).is_err());
}

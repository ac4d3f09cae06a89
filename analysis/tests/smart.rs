//! Smart-tracker matching, with a word-hashing encoder standing in for the sentence model
//! (the real MiniLM is tested in the inference crate): two texts are similar here exactly
//! when they share words, which makes expected matches easy to state.

use std::cell::RefCell;

use callscope_analysis::smart::{
    EncoderError, SentenceEncoder, SmartTracker, SmartTrackerError, SmartTracking,
    UNAVAILABLE_NO_MODEL, WINDOW_WORDS, find_smart_hits, segment_turn, track_smart,
};
use callscope_analysis::{Role, Turn};

/// Test double for a sentence-embedding model: a bag of lower-cased words hashed into 4096
/// buckets. Records every batch it was asked for.
#[derive(Default)]
struct HashedWordsEncoderDouble {
    batches: RefCell<Vec<Vec<String>>>,
}

impl SentenceEncoder for HashedWordsEncoderDouble {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        self.batches
            .borrow_mut()
            .push(texts.iter().map(|t| t.to_string()).collect());
        Ok(texts
            .iter()
            .map(|text| {
                let mut v = vec![0.0f32; 4096];
                for word in text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    let h = word
                        .to_lowercase()
                        .bytes()
                        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
                    v[(h % 4096) as usize] += 1.0;
                }
                v
            })
            .collect())
    }
}

/// Test double for a broken model: returns whatever it was built with.
struct FixedOutputEncoderDouble(Vec<Vec<f32>>);

impl SentenceEncoder for FixedOutputEncoderDouble {
    fn embed(&self, _texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        Ok(self.0.clone())
    }
}

fn turn(index: usize, role: Role, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: role.as_str().to_string(),
        start_ms: index as u64 * 10_000,
        end_ms: index as u64 * 10_000 + 8_000,
        text: text.to_string(),
        words: Vec::new(),
    }
}

fn tracker(id: &str, examples: &[&str]) -> SmartTracker {
    SmartTracker {
        id: id.to_string(),
        name: id.to_string(),
        category: "custom".to_string(),
        active: true,
        examples: examples.iter().map(|e| e.to_string()).collect(),
        threshold: 0.5,
        role: None,
    }
}

#[test]
fn a_turn_sharing_an_examples_meaning_is_a_hit_with_its_time_and_speaker() {
    let turns = vec![
        turn(
            0,
            Role::Agent,
            "Thank you for calling, how can I help you today?",
        ),
        turn(
            1,
            Role::Customer,
            "I want to cancel my subscription please.",
        ),
        turn(2, Role::Agent, "The weather is nice over here."),
    ];
    let trackers = vec![tracker(
        "churn",
        &["cancel my subscription", "close the account"],
    )];
    let hits = find_smart_hits(&turns, &trackers, &HashedWordsEncoderDouble::default()).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    assert_eq!(hit.tracker_id, "churn");
    assert_eq!(hit.turn, 1);
    assert_eq!(hit.role, Role::Customer);
    assert_eq!(hit.speaker, "customer");
    assert_eq!(hit.example, "cancel my subscription");
    assert_eq!((hit.time.start_ms, hit.time.end_ms), (10_000, 18_000));
    assert!(
        hit.similarity >= 0.5 && hit.similarity <= 1.0,
        "{}",
        hit.similarity
    );
}

#[test]
fn a_match_inside_a_long_monologue_is_found_in_its_window() {
    // Distinct filler words, so only the tracked phrase is shared with the example.
    let filler = |from: usize| {
        (from..from + 60)
            .map(|i| format!("topic{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let long = format!(
        "{} I would like to cancel my subscription {}",
        filler(0),
        filler(100)
    );
    assert!(long.split_whitespace().count() > 4 * WINDOW_WORDS);
    let turns = vec![turn(0, Role::Customer, &long)];
    let mut churn = tracker("churn", &["I would like to cancel my subscription"]);
    churn.threshold = 0.4;
    let trackers = vec![churn];
    // The whole turn, embedded as one text, is far from the example: only a window finds it.
    let encoder = HashedWordsEncoderDouble::default();
    let whole = encoder
        .embed(&[long.as_str(), "I would like to cancel my subscription"])
        .unwrap();
    let cos = |a: &[f32], b: &[f32]| {
        let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        d / (a.iter().map(|x| x * x).sum::<f32>().sqrt()
            * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    assert!(
        cos(&whole[0], &whole[1]) < 0.3,
        "{}",
        cos(&whole[0], &whole[1])
    );

    let hits = find_smart_hits(&turns, &trackers, &encoder).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(
        hits[0].matched_text.contains("cancel my subscription"),
        "{}",
        hits[0].matched_text
    );
    assert!(hits[0].matched_text.split_whitespace().count() <= WINDOW_WORDS);
}

#[test]
fn role_filter_and_inactive_trackers_are_respected() {
    let turns = vec![
        turn(0, Role::Agent, "Our price is lower than Acme pricing."),
        turn(1, Role::Customer, "Acme pricing is lower than your price."),
    ];
    let mut agent_only = tracker("agent-pricing", &["our price is lower than Acme pricing"]);
    agent_only.role = Some(Role::Agent);
    let mut inactive = tracker("off", &["our price is lower than Acme pricing"]);
    inactive.active = false;
    let hits = find_smart_hits(
        &turns,
        &[agent_only, inactive],
        &HashedWordsEncoderDouble::default(),
    )
    .unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        (hits[0].tracker_id.as_str(), hits[0].turn),
        ("agent-pricing", 0)
    );
}

#[test]
fn one_hit_per_tracker_and_turn_with_the_best_example() {
    let turns = vec![turn(
        0,
        Role::Customer,
        "I want to cancel my plan. Also I want to cancel my subscription right now.",
    )];
    let trackers = vec![tracker(
        "churn",
        &[
            "cancel my plan",
            "I want to cancel my subscription right now",
        ],
    )];
    let hits = find_smart_hits(&turns, &trackers, &HashedWordsEncoderDouble::default()).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        hits[0].example,
        "I want to cancel my subscription right now"
    );
    assert!(hits[0].similarity > 0.9, "{}", hits[0].similarity);
}

#[test]
fn examples_are_embedded_once_and_segments_in_bounded_batches_each_text_once() {
    let turns: Vec<Turn> = (0..100)
        .map(|i| {
            let text = if i % 2 == 0 {
                "Can you hold on a moment please.".to_string()
            } else {
                format!("This is distinct sentence number {i} of the call.")
            };
            turn(i, Role::Customer, &text)
        })
        .collect();
    let encoder = HashedWordsEncoderDouble::default();
    let hits = find_smart_hits(
        &turns,
        &[tracker("a", &["hold on"]), tracker("b", &["number"])],
        &encoder,
    )
    .unwrap();
    let batches = encoder.batches.borrow();
    assert_eq!(
        batches[0],
        vec!["hold on", "number"],
        "examples first, once"
    );
    let segments: Vec<&String> = batches[1..].iter().flatten().collect();
    // 50 distinct numbered sentences + 1 repeated one.
    assert_eq!(segments.len(), 51);
    assert!(batches[1..].iter().all(|b| b.len() <= 32 && !b.is_empty()));
    // Embedding a repeated text once still reports it in every turn that says it.
    let hold_hits = hits.iter().filter(|h| h.tracker_id == "a").count();
    assert!(hold_hits == 0 || hold_hits == 50, "{hold_hits}");
}

#[test]
fn without_an_encoder_smart_tracking_says_it_is_unavailable() {
    let turns = vec![turn(0, Role::Customer, "cancel my subscription")];
    let result = track_smart(&turns, &[tracker("churn", &["cancel"])], None).unwrap();
    assert_eq!(
        result,
        SmartTracking::Unavailable {
            reason: UNAVAILABLE_NO_MODEL.to_string()
        }
    );
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["status"], "unavailable");
    assert_eq!(
        json["reason"],
        "smart trackers unavailable: model not installed"
    );

    let encoder = HashedWordsEncoderDouble::default();
    let result = track_smart(
        &turns,
        &[tracker("churn", &["cancel my subscription"])],
        Some(&encoder),
    )
    .unwrap();
    match result {
        SmartTracking::Available { hits } => assert_eq!(hits.len(), 1),
        other => panic!("expected hits, got {other:?}"),
    }
}

#[test]
fn a_faulty_encoder_gives_an_error_not_hits() {
    let turns = vec![turn(0, Role::Customer, "cancel my subscription")];
    let trackers = vec![tracker("churn", &["cancel"])];
    let too_few = FixedOutputEncoderDouble(vec![]);
    assert!(matches!(
        find_smart_hits(&turns, &trackers, &too_few),
        Err(SmartTrackerError::WrongCount {
            expected: 1,
            got: 0
        })
    ));
    let nan = FixedOutputEncoderDouble(vec![vec![f32::NAN, 1.0]]);
    assert!(matches!(
        find_smart_hits(&turns, &trackers, &nan),
        Err(SmartTrackerError::BadVector)
    ));
    let zero = FixedOutputEncoderDouble(vec![vec![0.0, 0.0]]);
    assert!(matches!(
        find_smart_hits(&turns, &trackers, &zero),
        Err(SmartTrackerError::BadVector)
    ));
}

#[test]
fn invalid_trackers_are_refused() {
    let mut bad = tracker("t", &["something"]);
    bad.threshold = 1.5;
    assert!(matches!(
        bad.validate(),
        Err(SmartTrackerError::BadThreshold { .. })
    ));
    bad.threshold = f32::NAN;
    assert!(bad.validate().is_err());
    let empty = tracker("e", &["  "]);
    assert!(matches!(
        empty.validate(),
        Err(SmartTrackerError::NoExamples(_))
    ));
    assert!(tracker("ok", &["fine"]).validate().is_ok());
}

#[test]
fn no_trackers_or_no_text_gives_no_hits_and_no_model_call() {
    let encoder = HashedWordsEncoderDouble::default();
    let hits = find_smart_hits(&[turn(0, Role::Agent, "hello there")], &[], &encoder).unwrap();
    assert!(hits.is_empty());
    assert!(encoder.batches.borrow().is_empty());
    let hits = find_smart_hits(
        &[turn(0, Role::Agent, "")],
        &[tracker("t", &["hello"])],
        &encoder,
    )
    .unwrap();
    assert!(hits.is_empty());
}
#[test]
fn segmentation_joins_short_sentences_and_windows_long_ones() {
    assert_eq!(
        segment_turn("Yes. I want to cancel it. Okay?"),
        vec!["Yes. I want to cancel it. Okay?"]
    );
    assert_eq!(
        segment_turn("No. I don't want it anymore. Please stop calling me now."),
        vec![
            "No. I don't want it anymore.",
            "Please stop calling me now.",
            "No. I don't want it anymore. Please stop calling me now."
        ]
    );
    assert!(segment_turn("").is_empty());
    assert!(segment_turn(" ... ?! ").is_empty());
    assert_eq!(segment_turn("Hi"), vec!["Hi"]);
    assert_eq!(
        segment_turn("line one here\nline two here"),
        vec![
            "line one here",
            "line two here",
            "line one here line two here"
        ]
    );
    let words: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
    let pieces = segment_turn(&words.join(" "));
    assert_eq!(pieces.len(), 6, "{pieces:?}");
    assert!(
        pieces
            .iter()
            .all(|p| p.split_whitespace().count() <= WINDOW_WORDS)
    );
    assert!(pieces[0].starts_with("w0 "));
    assert!(pieces[5].ends_with(" w49"));
    assert!(pieces[4].starts_with("w32 "));
    let clauses = segment_turn(
        "we moved offices in March and the building has a new network, and honestly after \
         all of this I just want to leave you, and there is the old router in a box",
    );
    assert!(
        clauses.contains(&"and honestly after all of this I just want to leave you".to_string()),
        "{clauses:?}"
    );
    assert_eq!(
        segment_turn("مرحبا، أريد إلغاء اشتراكي؟ شكرا لك جزيلا"),
        vec![
            "مرحبا، أريد إلغاء اشتراكي؟",
            "شكرا لك جزيلا",
            "مرحبا، أريد إلغاء اشتراكي؟ شكرا لك جزيلا"
        ]
    );
}

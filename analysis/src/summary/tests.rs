use super::*;

fn turn(index: usize, role: Role, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: match role {
            Role::Agent => "Agent".into(),
            Role::Customer => "Customer".into(),
            Role::Unknown => "Speaker 1".into(),
        },
        start_ms: index as u64 * 5_000,
        end_ms: index as u64 * 5_000 + 4_500,
        text: text.into(),
        words: vec![],
    }
}

fn support_call() -> Vec<Turn> {
    let lines = [
        (
            Role::Agent,
            "Thank you for calling Acme, this is Dana. How can I help you today?",
        ),
        (
            Role::Customer,
            "Hi, yes. I'm calling because my internet keeps dropping every evening.",
        ),
        (
            Role::Agent,
            "I'm sorry to hear that. Can I have your account number?",
        ),
        (Role::Customer, "Sure, it's four five six seven."),
        (
            Role::Agent,
            "Thanks. I can see your router rebooted twelve times this week.",
        ),
        (
            Role::Customer,
            "It is still not working after I restarted the router myself.",
        ),
        (Role::Customer, "And I was charged twice for this month."),
        (
            Role::Agent,
            "I have reset the line and the duplicate charge has been refunded.",
        ),
        (
            Role::Agent,
            "A technician will visit on Friday to replace the router.",
        ),
        (Role::Customer, "Great, thank you."),
        (
            Role::Agent,
            "Is there anything else I can help you with? Have a great day.",
        ),
    ];
    lines
        .iter()
        .enumerate()
        .map(|(i, (role, text))| turn(i, *role, text))
        .collect()
}

#[test]
fn reason_and_resolution_of_a_support_call() {
    let s = extractive_summary(&support_call(), &[], &SummaryOptions::default());
    assert_eq!(s.method, SummaryMethod::Extractive);
    assert_eq!(
        s.reason_for_call.as_deref(),
        Some("My internet keeps dropping every evening.")
    );
    assert_eq!(
        s.resolution.as_deref(),
        Some("A technician will visit on Friday to replace the router.")
    );
    let reason = s
        .sentences
        .iter()
        .find(|x| x.tags.contains(&SentenceTag::ReasonForCall))
        .unwrap();
    assert_eq!((reason.turn, reason.role), (1, Role::Customer));
    assert_eq!(reason.speaker, "Customer");
    let resolution = s
        .sentences
        .iter()
        .find(|x| x.tags.contains(&SentenceTag::Resolution))
        .unwrap();
    assert_eq!(resolution.turn, 8);
    assert!(resolution.start_ms >= 40_000 && resolution.end_ms <= 44_500);
}

#[test]
fn key_sentences_are_bounded_ordered_and_skip_pleasantries() {
    let s = extractive_summary(&support_call(), &[], &SummaryOptions::default());
    assert_eq!(s.sentences.len(), 5);
    let order: Vec<_> = s.sentences.iter().map(|x| (x.turn, x.start_ms)).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "call order");
    assert!(s.sentences.iter().all(|x| x.text != "Great, thank you."));
    assert!(
        s.sentences
            .iter()
            .all(|x| !x.text.starts_with("Have a great day"))
    );
    // Both problem statements are kept as key issues.
    let issues: Vec<_> = s
        .sentences
        .iter()
        .filter(|x| x.tags.contains(&SentenceTag::KeyIssue))
        .map(|x| x.turn)
        .collect();
    assert!(issues.contains(&5) && issues.contains(&6), "{issues:?}");
    assert!(s.sentences.iter().all(|x| (0.0..=1.0).contains(&x.score)));
}

#[test]
fn signals_pull_a_sentence_in() {
    let turns = support_call();
    let without = extractive_summary(&turns, &[], &SummaryOptions { max_sentences: 3 });
    assert!(without.sentences.iter().all(|x| x.turn != 4));
    let signals = [SummarySignal {
        turn: 4,
        weight: 5.0,
        source: "tracker:router".into(),
    }];
    let with = extractive_summary(&turns, &signals, &SummaryOptions { max_sentences: 3 });
    let hit = with.sentences.iter().find(|x| x.turn == 4).unwrap();
    assert!(hit.tags.contains(&SentenceTag::Signal));
}

#[test]
fn bad_signal_weights_are_ignored() {
    let turns = support_call();
    let signals = [
        SummarySignal {
            turn: 3,
            weight: f32::NAN,
            source: "x".into(),
        },
        SummarySignal {
            turn: 3,
            weight: -4.0,
            source: "y".into(),
        },
        SummarySignal {
            turn: 999,
            weight: 1.0,
            source: "z".into(),
        },
    ];
    let a = extractive_summary(&turns, &signals, &SummaryOptions::default());
    let b = extractive_summary(&turns, &[], &SummaryOptions::default());
    let texts = |s: &Summary| {
        s.sentences
            .iter()
            .map(|x| x.text.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&a), texts(&b));
}

#[test]
fn deterministic() {
    let turns = support_call();
    let a = extractive_summary(&turns, &[], &SummaryOptions::default());
    let b = extractive_summary(&turns, &[], &SummaryOptions::default());
    assert_eq!(a, b);
}

#[test]
fn empty_and_one_word_calls() {
    let s = extractive_summary(&[], &[], &SummaryOptions::default());
    assert!(s.sentences.is_empty() && s.reason_for_call.is_none() && s.resolution.is_none());
    let s = extractive_summary(&[turn(0, Role::Agent, "")], &[], &SummaryOptions::default());
    assert!(s.sentences.is_empty());
    let s = extractive_summary(
        &[turn(0, Role::Customer, "Hello?")],
        &[],
        &SummaryOptions::default(),
    );
    assert!(s.sentences.is_empty());
    assert!(s.reason_for_call.is_none());
    let s = extractive_summary(&support_call(), &[], &SummaryOptions { max_sentences: 0 });
    assert!(s.sentences.is_empty());
}

#[test]
fn non_latin_text_is_summarised() {
    let turns = [
        turn(0, Role::Agent, "مرحبا، كيف يمكنني مساعدتك اليوم؟"),
        turn(
            1,
            Role::Customer,
            "لدي مشكلة في الفاتورة الشهرية الخاصة بي.",
        ),
        turn(2, Role::Customer, "الفاتورة الشهرية أعلى من المعتاد."),
        turn(3, Role::Agent, "我们会在明天给您回电话。"),
    ];
    let s = extractive_summary(&turns, &[], &SummaryOptions { max_sentences: 2 });
    assert_eq!(s.sentences.len(), 2);
    assert_eq!(
        s.reason_for_call.as_deref(),
        Some("لدي مشكلة في الفاتورة الشهرية الخاصة بي.")
    );
}

#[test]
fn calls_without_customer_role_use_unknown_speech() {
    let turns = [
        turn(
            0,
            Role::Unknown,
            "Hello, I need to change my delivery address please.",
        ),
        turn(1, Role::Unknown, "Of course."),
    ];
    let s = extractive_summary(&turns, &[], &SummaryOptions::default());
    assert_eq!(
        s.reason_for_call.as_deref(),
        Some("I need to change my delivery address please.")
    );
    assert!(s.resolution.is_none(), "no agent speech, no resolution");
}

#[test]
fn long_reason_is_cut_to_one_line() {
    let long = format!(
        "I'm calling about {}.",
        "the very long story of my bill ".repeat(20)
    );
    let s = extractive_summary(
        &[turn(0, Role::Customer, &long)],
        &[],
        &SummaryOptions::default(),
    );
    let reason = s.reason_for_call.unwrap();
    assert!(reason.chars().count() <= ONE_LINE_MAX_CHARS);
    assert!(reason.ends_with('…'));
    assert!(reason.starts_with("The very long story"));
}

#[test]
fn serialises_snake_case() {
    let s = extractive_summary(&support_call(), &[], &SummaryOptions::default());
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["method"], "extractive");
    assert_eq!(json["sentences"][0]["role"], "customer");
    assert!(
        json["sentences"][0]["tags"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("reason_for_call"))
    );
    let back: Summary = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn resolution_estimate_follows_the_end_of_the_call() {
    // Outcome + commitment, and a satisfied customer at the end.
    let resolved = support_call();
    assert_eq!(resolution_estimate(&resolved), Some(0.9));

    let unresolved = [
        turn(0, Role::Customer, "My router is broken again."),
        turn(1, Role::Agent, "Please restart it and wait a minute."),
        turn(2, Role::Customer, "I did that twice."),
        turn(3, Role::Agent, "Then unplug it for ten seconds."),
        turn(
            4,
            Role::Customer,
            "It is still not working, this is unacceptable.",
        ),
    ];
    assert_eq!(resolution_estimate(&unresolved), Some(0.1));

    let neutral = [
        turn(0, Role::Customer, "What are your opening hours on Sunday?"),
        turn(1, Role::Agent, "We open at ten in the morning on Sundays."),
    ];
    assert_eq!(resolution_estimate(&neutral), Some(0.5));
}

#[test]
fn resolution_estimate_needs_both_sides() {
    assert_eq!(resolution_estimate(&[]), None);
    assert_eq!(
        resolution_estimate(&[turn(0, Role::Agent, "Your refund has been processed.")]),
        None
    );
    assert_eq!(
        resolution_estimate(&[turn(0, Role::Unknown, "Hello there, is anyone there?")]),
        None
    );
}

use super::*;
use crate::types::TimedWord;

fn turn(index: usize, role: Role, start_ms: u64, end_ms: u64, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: role.as_str().to_string(),
        start_ms,
        end_ms,
        text: text.to_string(),
        words: Vec::new(),
    }
}

fn stats(turns: &[Turn]) -> InteractionStats {
    compute_stats(turns, None, &StatsConfig::default())
}

/// A two-minute call with known figures, used by several tests.
fn scripted_call() -> Vec<Turn> {
    use Role::*;
    vec![
        // 2 s of leading silence (below the threshold).
        turn(
            0,
            Agent,
            2_000,
            6_000,
            "Thank you for calling, how can I help you today?",
        ),
        turn(
            1,
            Customer,
            6_500,
            14_000,
            "my internet keeps dropping every evening",
        ),
        // The agent answers after 1 s, then talks in two turns 1 s apart (one monologue).
        turn(
            2,
            Agent,
            15_000,
            25_000,
            "I am sorry to hear that. Let me check the line.",
        ),
        turn(
            3,
            Agent,
            26_000,
            40_000,
            "I can see some errors on your connection",
        ),
        // 10 s of silence: a non-talk instance.
        turn(4, Customer, 50_000, 60_000, "so what do I do now"),
        // The agent cuts in 2 s before the customer ends: an interruption of 2 s.
        turn(
            5,
            Agent,
            58_000,
            70_000,
            "we will send an engineer tomorrow",
        ),
        // The customer says "mm-hmm" over the agent for 200 ms: a backchannel, ignored.
        turn(6, Customer, 65_000, 65_200, "mm-hmm"),
        turn(7, Customer, 71_000, 80_000, "great thanks"),
    ]
}

#[test]
fn talk_time_and_ratio_per_role() {
    let s = compute_stats(&scripted_call(), Some(120_000), &StatsConfig::default());
    let agent = s.role(Role::Agent).expect("agent stats");
    let customer = s.role(Role::Customer).expect("customer stats");
    assert_eq!(agent.talk_ms, 4_000 + 10_000 + 14_000 + 12_000);
    assert_eq!(customer.talk_ms, 7_500 + 10_000 + 200 + 9_000);
    let sum = (agent.talk_ms + customer.talk_ms) as f32;
    assert!((agent.talk_share - agent.talk_ms as f32 / sum).abs() < 1e-6);
    assert!((agent.talk_share + customer.talk_share - 1.0).abs() < 1e-6);
    assert!((agent.call_share - 40_000.0 / 120_000.0).abs() < 1e-6);
    assert_eq!(agent.turns, 4);
    assert_eq!(customer.turns, 4);
    assert!(
        s.role(Role::Unknown).is_none(),
        "no unknown turns, no unknown row"
    );
    assert_eq!(s.call_duration_ms, 120_000);
}

#[test]
fn overlapping_turns_of_one_role_count_once_and_overlap_is_measured() {
    let turns = vec![
        turn(0, Role::Agent, 0, 10_000, "a"),
        turn(1, Role::Agent, 5_000, 12_000, "b"),
        turn(2, Role::Customer, 11_000, 15_000, "c"),
    ];
    let s = stats(&turns);
    assert_eq!(s.role(Role::Agent).map(|r| r.talk_ms), Some(12_000));
    assert_eq!(s.talk_ms, 15_000);
    assert_eq!(s.overlap_ms, 1_000);
}

#[test]
fn non_talk_over_threshold_including_leading_and_trailing_silence() {
    let turns = vec![
        turn(0, Role::Agent, 4_000, 6_000, "hello"),
        turn(1, Role::Customer, 6_500, 8_000, "hi"),
        // exactly 3 s gap: not strictly longer than the threshold
        turn(2, Role::Agent, 11_000, 12_000, "yes"),
        turn(3, Role::Customer, 16_000, 17_000, "ok"),
    ];
    let s = compute_stats(&turns, Some(30_000), &StatsConfig::default());
    assert_eq!(
        s.non_talk,
        vec![
            NonTalk {
                start_ms: 0,
                end_ms: 4_000
            },
            NonTalk {
                start_ms: 12_000,
                end_ms: 16_000
            },
            NonTalk {
                start_ms: 17_000,
                end_ms: 30_000
            },
        ]
    );
    assert_eq!(s.non_talk_total_ms, 4_000 + 4_000 + 13_000);

    let strict = StatsConfig {
        non_talk_min_ms: 10_000,
        ..StatsConfig::default()
    };
    let s = compute_stats(&turns, Some(30_000), &strict);
    assert_eq!(
        s.non_talk,
        vec![NonTalk {
            start_ms: 17_000,
            end_ms: 30_000
        }]
    );
}

#[test]
fn silence_covered_by_another_speaker_is_not_non_talk() {
    let turns = vec![
        turn(0, Role::Agent, 0, 20_000, "long explanation"),
        turn(1, Role::Customer, 5_000, 6_000, "ok"),
        turn(2, Role::Customer, 15_000, 16_000, "right"),
    ];
    assert!(stats(&turns).non_talk.is_empty());
}

#[test]
fn longest_monologue_merges_short_pauses_and_ignores_backchannels() {
    let s = stats(&scripted_call());
    let agent = s
        .role(Role::Agent)
        .and_then(|r| r.longest_monologue)
        .expect("agent monologue");
    assert_eq!((agent.start_ms, agent.end_ms), (15_000, 40_000));
    assert_eq!((agent.first_turn, agent.last_turn), (2, 3));
    // Turn 5 (58–70 s) contains the customer's 200 ms backchannel, which must not split it.
    let customer = s
        .role(Role::Customer)
        .and_then(|r| r.longest_monologue)
        .expect("customer");
    assert_eq!((customer.start_ms, customer.end_ms), (50_000, 60_000));
}

#[test]
fn monologue_pause_longer_than_merge_gap_splits() {
    let turns = vec![
        turn(0, Role::Agent, 0, 10_000, "a"),
        turn(1, Role::Agent, 12_000, 20_000, "b"), // 2 s pause > 1.5 s default
    ];
    let m = stats(&turns)
        .role(Role::Agent)
        .and_then(|r| r.longest_monologue)
        .expect("m");
    assert_eq!((m.start_ms, m.end_ms), (0, 10_000));
    let loose = StatsConfig {
        monologue_merge_gap_ms: 2_000,
        ..StatsConfig::default()
    };
    let m = compute_stats(&turns, None, &loose)
        .role(Role::Agent)
        .and_then(|r| r.longest_monologue)
        .expect("m");
    assert_eq!((m.start_ms, m.end_ms), (0, 20_000));
}

#[test]
fn another_party_taking_the_floor_ends_a_monologue() {
    let turns = vec![
        turn(0, Role::Agent, 0, 5_000, "a"),
        turn(1, Role::Customer, 5_200, 5_800, "b"),
        turn(2, Role::Agent, 6_000, 9_000, "c"),
    ];
    let m = stats(&turns)
        .role(Role::Agent)
        .and_then(|r| r.longest_monologue)
        .expect("m");
    assert_eq!((m.start_ms, m.end_ms, m.first_turn), (0, 5_000, 0));
}

#[test]
fn interruptions_who_whom_count_and_duration() {
    let s = stats(&scripted_call());
    assert_eq!(
        s.interruptions,
        vec![Interruption {
            by: Role::Agent,
            interrupted: Role::Customer,
            turn: 5,
            interrupted_turn: 4,
            start_ms: 58_000,
            end_ms: 60_000,
        }]
    );
    assert_eq!(s.interruption_summary.len(), 1);
    let sum = s.interruption_summary[0];
    assert_eq!(
        (sum.by, sum.interrupted, sum.count, sum.total_ms),
        (Role::Agent, Role::Customer, 1, 2_000)
    );
    assert!((sum.mean_ms - 2_000.0).abs() < 1e-3);
}

#[test]
fn interruption_threshold_is_a_parameter_and_directions_are_separate() {
    let turns = vec![
        turn(0, Role::Agent, 0, 10_000, "a"),
        turn(1, Role::Customer, 9_000, 20_000, "b"), // 1000 ms over the agent
        turn(2, Role::Agent, 19_500, 30_000, "c"),   // 500 ms over the customer
        turn(3, Role::Customer, 29_800, 40_000, "d"), // 200 ms: below default
        turn(4, Role::Agent, 39_000, 45_000, "e"),   // 1000 ms over the customer
    ];
    let s = stats(&turns);
    assert_eq!(s.interruptions.len(), 3);
    let agent_over_customer = s
        .interruption_summary
        .iter()
        .find(|x| x.by == Role::Agent)
        .expect("agent direction");
    assert_eq!(
        (agent_over_customer.count, agent_over_customer.total_ms),
        (2, 1_500)
    );
    assert!((agent_over_customer.mean_ms - 750.0).abs() < 1e-3);
    let customer_over_agent = s
        .interruption_summary
        .iter()
        .find(|x| x.by == Role::Customer)
        .expect("customer direction");
    assert_eq!(
        (customer_over_agent.count, customer_over_agent.total_ms),
        (1, 1_000)
    );

    let all = StatsConfig {
        interruption_min_overlap_ms: 100,
        ..StatsConfig::default()
    };
    assert_eq!(compute_stats(&turns, None, &all).interruptions.len(), 4);
}

#[test]
fn simultaneous_starts_are_not_interruptions() {
    let turns = vec![
        turn(0, Role::Agent, 1_000, 5_000, "a"),
        turn(1, Role::Customer, 1_000, 5_000, "b"),
    ];
    let s = stats(&turns);
    assert!(s.interruptions.is_empty());
    assert_eq!(s.overlap_ms, 4_000);
}

#[test]
fn interactivity_counts_switches_per_minute() {
    let s = stats(&scripted_call());
    // Order by start: A C A A C A C C -> switches: A>C, C>A, A>C, C>A, A>C = 5
    assert_eq!(s.speaker_switches, 5);
    let expected = 5.0 / (80_000.0 / 60_000.0);
    assert!((s.interactivity_per_minute.expect("rate") - expected).abs() < 1e-4);
}

#[test]
fn question_rate_from_marks_and_from_openers_without_punctuation() {
    assert_eq!(count_questions("Can you hear me? Is it ok?"), 2);
    assert_eq!(count_questions("Really?? Wow."), 1);
    assert_eq!(count_questions("can you confirm your date of birth"), 1);
    assert_eq!(count_questions("so what is the account number"), 1);
    assert_eq!(count_questions("I will check that for you"), 0);
    // Punctuated text without '?' asks nothing, even if it starts like a question.
    assert_eq!(count_questions("Do it now."), 0);
    assert_eq!(count_questions(""), 0);

    let s = stats(&scripted_call());
    let agent = s.role(Role::Agent).expect("agent");
    assert_eq!(agent.questions, 1);
    assert!((agent.question_turn_share - 0.25).abs() < 1e-6);
    let per_min = 1.0 / (80_000.0 / 60_000.0);
    assert!((agent.questions_per_minute.expect("rate") - per_min).abs() < 1e-4);
    let customer = s.role(Role::Customer).expect("customer");
    assert_eq!(customer.questions, 1, "'so what do I do now' asks");
}

#[test]
fn patience_is_the_mean_pause_before_the_agent_answers() {
    let s = stats(&scripted_call());
    // Handovers customer→agent: 14 s→15 s (1000 ms) and 60 s→58 s (overlap: 0 ms).
    // The backchannel (65 s) is followed by the customer's own turn, not an answer.
    assert_eq!(s.agent_answers, 2);
    assert!((s.agent_patience_ms.expect("patience") - 500.0).abs() < 1e-3);
}

#[test]
fn talk_speed_uses_word_timings_when_present() {
    let mut t = turn(
        0,
        Role::Agent,
        0,
        30_000,
        "ignored text of eight words in it here",
    );
    t.words = (0..60)
        .map(|i| TimedWord {
            text: format!("w{i}"),
            start_ms: i * 500,
            end_ms: i * 500 + 400,
        })
        .collect();
    let c = turn(
        1,
        Role::Customer,
        30_000,
        60_000,
        "one two three four five six",
    );
    let s = stats(&[t, c]);
    let agent = s.role(Role::Agent).expect("agent");
    assert_eq!(agent.words, 60);
    assert!((agent.words_per_minute.expect("wpm") - 120.0).abs() < 1e-3);
    let customer = s.role(Role::Customer).expect("customer");
    assert!((customer.words_per_minute.expect("wpm") - 12.0).abs() < 1e-3);
}

#[test]
fn untranscribed_turns_count_as_talk_but_not_in_talk_speed() {
    let turns = vec![
        turn(0, Role::Agent, 0, 60_000, ""),
        turn(1, Role::Agent, 60_000, 90_000, "one two three four five"),
    ];
    let agent = stats(&turns).role(Role::Agent).cloned().expect("agent");
    assert_eq!(agent.talk_ms, 90_000);
    assert!((agent.words_per_minute.expect("wpm") - 10.0).abs() < 1e-3);
}

#[test]
fn no_agent_speech() {
    let turns = vec![
        turn(0, Role::Customer, 0, 5_000, "hello is anyone there"),
        turn(1, Role::Customer, 9_000, 12_000, "hello"),
    ];
    let s = stats(&turns);
    let agent = s.role(Role::Agent).expect("agent row always present");
    assert_eq!(
        (agent.talk_ms, agent.turns, agent.words, agent.questions),
        (0, 0, 0, 0)
    );
    assert_eq!(agent.talk_share, 0.0);
    assert!(agent.longest_monologue.is_none());
    assert!(agent.words_per_minute.is_none());
    assert_eq!(s.agent_patience_ms, None);
    assert_eq!(s.role(Role::Customer).map(|c| c.talk_share), Some(1.0));
    assert_eq!(
        s.non_talk,
        vec![NonTalk {
            start_ms: 5_000,
            end_ms: 9_000
        }]
    );
    assert_eq!(s.speaker_switches, 0);
}

#[test]
fn one_turn_call() {
    let s = stats(&[turn(0, Role::Agent, 0, 1_500, "hello")]);
    assert_eq!(s.call_duration_ms, 1_500);
    assert_eq!(s.role(Role::Agent).map(|a| a.talk_share), Some(1.0));
    let m = s
        .role(Role::Agent)
        .and_then(|a| a.longest_monologue)
        .expect("m");
    assert_eq!(m.duration_ms(), 1_500);
    assert!(s.interruptions.is_empty() && s.non_talk.is_empty());
    assert_eq!(s.interactivity_per_minute, Some(0.0));
}

#[test]
fn zero_length_and_empty_calls_do_not_divide_by_zero() {
    let s = stats(&[]);
    assert_eq!(s.call_duration_ms, 0);
    assert!(s.non_talk.is_empty());
    assert_eq!(s.interactivity_per_minute, None);
    assert_eq!(
        s.role(Role::Agent).and_then(|a| a.questions_per_minute),
        None
    );

    let s = stats(&[
        turn(0, Role::Agent, 0, 0, "hi"),
        turn(1, Role::Customer, 0, 0, "hi"),
    ]);
    assert_eq!(s.call_duration_ms, 0);
    assert_eq!(s.talk_ms, 0);
    assert!(
        s.role(Role::Agent)
            .and_then(|a| a.words_per_minute)
            .is_none()
    );
    for r in &s.per_role {
        assert!(r.talk_share.is_finite() && r.call_share.is_finite());
    }

    // A recording with no speech at all is one long non-talk instance.
    let s = compute_stats(&[], Some(10_000), &StatsConfig::default());
    assert_eq!(
        s.non_talk,
        vec![NonTalk {
            start_ms: 0,
            end_ms: 10_000
        }]
    );
}

#[test]
fn reversed_timings_and_unsorted_input_do_not_panic() {
    let turns = vec![
        turn(3, Role::Customer, 20_000, 25_000, "b"),
        turn(0, Role::Agent, 10_000, 5_000, "backwards"),
        turn(1, Role::Agent, 0, 4_000, "a"),
        turn(2, Role::Unknown, u64::MAX - 10, u64::MAX, "far"),
    ];
    let s = stats(&turns);
    assert_eq!(s.role(Role::Agent).map(|a| a.talk_ms), Some(4_000));
    assert_eq!(s.call_duration_ms, u64::MAX);
    assert!(s.role(Role::Unknown).is_some());
}

#[test]
fn unknown_speakers_are_told_apart_by_label() {
    let mut a = turn(0, Role::Unknown, 0, 10_000, "hello there");
    a.speaker = "Speaker 1".into();
    let mut b = turn(1, Role::Unknown, 8_000, 15_000, "sorry to cut in");
    b.speaker = "Speaker 2".into();
    let s = stats(&[a, b]);
    assert_eq!(s.interruptions.len(), 1);
    assert_eq!(s.speaker_switches, 1);
    let unknown = s.role(Role::Unknown).expect("unknown row");
    assert_eq!(unknown.talk_ms, 15_000);
    assert_eq!(
        unknown.longest_monologue.map(|m| m.duration_ms()),
        Some(10_000)
    );
}

#[test]
fn stats_serialise_to_json() {
    let s = stats(&scripted_call());
    let json = serde_json::to_value(&s).expect("serialise");
    assert_eq!(json["per_role"][0]["role"], "agent");
    assert_eq!(json["interruptions"][0]["by"], "agent");
    let back: InteractionStats = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, s);
}

#[test]
fn pseudo_random_turns_never_panic_and_keep_invariants() {
    let mut state: u64 = 42;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    for _ in 0..200 {
        let n = next(12) as usize;
        let turns: Vec<Turn> = (0..n)
            .map(|i| {
                let role = [Role::Agent, Role::Customer, Role::Unknown][next(3) as usize];
                let start = next(60_000);
                let end = start + next(15_000);
                turn(
                    i,
                    role,
                    start,
                    end,
                    ["", "what now", "ok. fine?", "hello there"][next(4) as usize],
                )
            })
            .collect();
        let s = compute_stats(&turns, Some(next(90_000)), &StatsConfig::default());
        assert!(s.talk_ms + s.non_talk_total_ms <= s.call_duration_ms);
        assert!(s.overlap_ms <= s.talk_ms);
        for r in &s.per_role {
            assert!(r.talk_ms <= s.talk_ms);
            assert!((0.0..=1.0).contains(&r.talk_share), "{r:?}");
        }
        for i in &s.interruptions {
            assert!(i.end_ms - i.start_ms >= 300);
        }
    }
}

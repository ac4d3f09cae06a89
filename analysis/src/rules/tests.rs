use super::*;
use crate::types::{SentimentLabel, TimedWord};

fn turn(index: usize, role: Role, start: u64, end: u64, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: capitalized(role.as_str()),
        start_ms: start,
        end_ms: end,
        text: text.into(),
        words: Vec::new(),
    }
}

fn rule(id: &str, condition: RuleCondition) -> Rule {
    Rule {
        id: id.into(),
        name: id.into(),
        category: "Test".into(),
        severity: Severity::Medium,
        condition,
        roles: Vec::new(),
        scope: TimeScope::WholeCall,
        negate: false,
        active: true,
        subject: None,
    }
}

fn said(phrases: &[&str]) -> RuleCondition {
    RuleCondition::PhraseSaid {
        phrases: phrases.iter().map(|p| p.to_string()).collect(),
    }
}

fn absent(phrases: &[&str]) -> RuleCondition {
    RuleCondition::PhraseAbsent {
        phrases: phrases.iter().map(|p| p.to_string()).collect(),
    }
}

fn inputs(turns: &[Turn]) -> RuleInputs<'_> {
    RuleInputs {
        turns,
        sentiments: &[],
        non_talk: &[],
        interruptions: &[],
        call_duration_ms: 0,
    }
}

fn score(score: f32) -> Option<SentimentScore> {
    Some(SentimentScore {
        score,
        label: if score < 0.0 {
            SentimentLabel::Negative
        } else {
            SentimentLabel::Positive
        },
    })
}

fn disclosure() -> Rule {
    Rule {
        roles: vec![Role::Agent],
        scope: TimeScope::First { ms: 15_000 },
        subject: Some("the recording disclosure".into()),
        ..rule("disclosure", absent(&["this call may be recorded"]))
    }
}

#[test]
fn phrase_said_flags_each_occurrence_with_times() {
    let mut t = turn(
        3,
        Role::Agent,
        60_000,
        64_000,
        "These are guaranteed returns, truly.",
    );
    t.words = ["These", "are", "guaranteed", "returns,", "truly."]
        .iter()
        .enumerate()
        .map(|(i, w)| TimedWord {
            text: w.to_string(),
            start_ms: 60_000 + 800 * i as u64,
            end_ms: 60_000 + 800 * (i as u64 + 1),
        })
        .collect();
    let turns = vec![
        t,
        turn(4, Role::Customer, 64_000, 66_000, "guaranteed returns?"),
    ];
    let r = Rule {
        roles: vec![Role::Agent],
        severity: Severity::Critical,
        ..rule("promise", said(&["guaranteed returns"]))
    };
    let flags = evaluate_rules(&[r], &inputs(&turns));
    assert_eq!(
        flags.len(),
        1,
        "customer turn is out of the role scope: {flags:?}"
    );
    let f = &flags[0];
    assert_eq!(f.phrase.as_deref(), Some("guaranteed returns"));
    assert_eq!((f.start_ms, f.end_ms), (61_600, 63_200));
    assert_eq!(
        (f.role, f.turn, f.speaker.as_deref()),
        (Some(Role::Agent), Some(3), Some("Agent"))
    );
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.confidence, 1.0);
    assert_eq!(
        f.rationale,
        "Agent said \"guaranteed returns\" at 1:01 (promise)"
    );
}

#[test]
fn disclosure_said_in_time_is_not_flagged() {
    let turns = vec![
        turn(
            0,
            Role::Agent,
            0,
            4_000,
            "Hello, this call may be recorded.",
        ),
        turn(1, Role::Customer, 4_000, 6_000, "Sure."),
    ];
    assert!(evaluate_rules(&[disclosure()], &inputs(&turns)).is_empty());
}

#[test]
fn disclosure_too_late_or_by_the_wrong_role_is_flagged() {
    let turns = vec![
        turn(
            0,
            Role::Customer,
            0,
            4_000,
            "Is this call may be recorded? whatever",
        ),
        turn(1, Role::Agent, 4_000, 10_000, "Hello, how can I help?"),
        turn(
            2,
            Role::Agent,
            20_000,
            24_000,
            "By the way this call may be recorded.",
        ),
    ];
    let flags = evaluate_rules(&[disclosure()], &inputs(&turns));
    assert_eq!(flags.len(), 1);
    let f = &flags[0];
    assert_eq!(
        f.rationale,
        "Agent did not say the recording disclosure in the first 15 s"
    );
    assert_eq!((f.start_ms, f.end_ms), (0, 15_000));
    assert_eq!(
        (f.role, f.phrase.as_deref(), f.confidence),
        (Some(Role::Agent), None, 1.0)
    );
}

#[test]
fn disclosure_with_no_agent_speech_is_flagged_with_lower_confidence() {
    for turns in [
        vec![turn(0, Role::Customer, 0, 5_000, "hello? anyone?")],
        vec![turn(0, Role::Agent, 0, 5_000, "")],
        vec![],
    ] {
        let flags = evaluate_rules(&[disclosure()], &inputs(&turns));
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].confidence, 0.5);
        assert!(
            flags[0]
                .rationale
                .ends_with("(no transcribed speech in that window)")
        );
    }
}

#[test]
fn negation_flips_phrase_rules() {
    let turns = vec![turn(0, Role::Agent, 0, 2_000, "Thank you for calling")];
    // "Agent must thank the caller": PhraseSaid negated.
    let thank = Rule {
        negate: true,
        roles: vec![Role::Agent],
        ..rule("thanks", said(&["thank you for calling"]))
    };
    assert!(evaluate_rules(std::slice::from_ref(&thank), &inputs(&turns)).is_empty());
    let other = vec![turn(0, Role::Agent, 0, 2_000, "Yes?")];
    let flags = evaluate_rules(&[thank], &inputs(&other));
    assert_eq!(flags.len(), 1);
    assert_eq!(
        flags[0].rationale,
        "Agent did not say \"thank you for calling\" during the call"
    );
    // Absence for anyone, and for two roles.
    let flags = evaluate_rules(&[rule("bye", absent(&["goodbye", "bye"]))], &inputs(&other));
    assert_eq!(
        flags[0].rationale,
        "Nobody said \"goodbye\" (or 1 other phrase) during the call"
    );
    let both = Rule {
        roles: vec![Role::Customer, Role::Agent],
        scope: TimeScope::Last { ms: 1_000 },
        ..rule("bye", absent(&["bye"]))
    };
    let flags = evaluate_rules(&[both], &inputs(&other));
    assert_eq!(
        flags[0].rationale,
        "Agent or customer did not say \"bye\" in the last 1 s"
    );
    assert_eq!(
        (flags[0].start_ms, flags[0].end_ms, flags[0].role),
        (1_000, 2_000, None)
    );
    // PhraseAbsent negated flags occurrences.
    let flags = evaluate_rules(
        &[Rule {
            negate: true,
            ..rule("x", absent(&["thank you"]))
        }],
        &inputs(&turns),
    );
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].phrase.as_deref(), Some("Thank you"));
}

#[test]
fn one_word_calls_and_wildcards() {
    let turns = vec![turn(0, Role::Customer, 0, 800, "Supervisor!")];
    let flags = evaluate_rules(
        &[rule("esc", said(&["supervisor", "manag*"]))],
        &inputs(&turns),
    );
    assert_eq!(flags.len(), 1);
    assert_eq!((flags[0].start_ms, flags[0].end_ms), (0, 800 * 10 / 11));
    let turns = vec![turn(0, Role::Customer, 0, 800, "Managers")];
    let flags = evaluate_rules(
        &[rule("esc", said(&["supervisor", "manag*"]))],
        &inputs(&turns),
    );
    assert_eq!(flags[0].confidence, 0.8, "wildcard matches are looser");
}

#[test]
fn non_latin_rules() {
    let turns = vec![
        turn(0, Role::Customer, 0, 3_000, "أريد التحدث مع المُدير الآن"),
        turn(1, Role::Customer, 3_000, 6_000, "Позовите РУКОВОДИТЕЛЯ"),
    ];
    let flags = evaluate_rules(
        &[rule("esc", said(&["المدير", "руководителя"]))],
        &inputs(&turns),
    );
    let phrases: Vec<_> = flags.iter().filter_map(|f| f.phrase.as_deref()).collect();
    assert_eq!(phrases, ["المُدير", "РУКОВОДИТЕЛЯ"]);
}

#[test]
fn overlapping_speech_is_searched_in_both_turns() {
    let turns = vec![
        turn(
            0,
            Role::Agent,
            0,
            6_000,
            "this call may be recorded for quality",
        ),
        turn(1, Role::Customer, 2_000, 4_000, "I want a supervisor"),
    ];
    let rules = vec![disclosure(), rule("esc", said(&["supervisor"]))];
    let flags = evaluate_rules(&rules, &inputs(&turns));
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].rule_id, "esc");
    assert_eq!(flags[0].turn, Some(1));
}

#[test]
fn sentiment_each_turn_and_average() {
    let turns = vec![
        turn(0, Role::Customer, 0, 1_000, "a"),
        turn(1, Role::Agent, 1_000, 2_000, "b"),
        turn(2, Role::Customer, 2_000, 3_000, "c"),
        turn(3, Role::Customer, 3_000, 4_000, "d"),
    ];
    let sentiments = vec![score(-0.9), score(-0.8), score(0.1), None];
    let inputs = RuleInputs {
        sentiments: &sentiments,
        ..inputs(&turns)
    };
    let low = Rule {
        roles: vec![Role::Customer],
        ..rule(
            "low",
            RuleCondition::Sentiment {
                comparison: Comparison::Below,
                threshold: -0.5,
                aggregate: SentimentAggregate::EachTurn,
            },
        )
    };
    let flags = evaluate_rules(std::slice::from_ref(&low), &inputs);
    assert_eq!(flags.len(), 1);
    assert_eq!((flags[0].turn, flags[0].start_ms), (Some(0), 0));
    assert!((flags[0].confidence - 0.9).abs() < 1e-6);
    assert_eq!(
        flags[0].rationale,
        "Customer sentiment was -0.90 (below -0.5) at 0:00"
    );

    let avg = Rule {
        condition: RuleCondition::Sentiment {
            comparison: Comparison::Below,
            threshold: -0.3,
            aggregate: SentimentAggregate::Average,
        },
        ..low.clone()
    };
    // Customer mean = (-0.9 + 0.1) / 2 = -0.4.
    let flags = evaluate_rules(std::slice::from_ref(&avg), &inputs);
    assert_eq!(flags.len(), 1);
    assert_eq!((flags[0].start_ms, flags[0].end_ms), (0, 3_000));
    assert!(
        flags[0].rationale.contains("(-0.40)"),
        "{}",
        flags[0].rationale
    );

    // Scoped to the last half: only the +0.1 turn is scored.
    let late = Rule {
        scope: TimeScope::Percent {
            from: 50.0,
            to: 100.0,
        },
        ..avg.clone()
    };
    let late_inputs = RuleInputs {
        call_duration_ms: 4_000,
        ..inputs
    };
    assert!(evaluate_rules(&[late], &late_inputs).is_empty());

    let above = Rule {
        condition: RuleCondition::Sentiment {
            comparison: Comparison::Above,
            threshold: 0.0,
            aggregate: SentimentAggregate::EachTurn,
        },
        ..low.clone()
    };
    let flags = evaluate_rules(&[above], &inputs);
    assert_eq!(flags.iter().map(|f| f.turn).collect::<Vec<_>>(), [Some(2)]);

    // Negated: "customer never below -0.95" holds → flag.
    let never = Rule {
        negate: true,
        condition: RuleCondition::Sentiment {
            comparison: Comparison::Below,
            threshold: -0.95,
            aggregate: SentimentAggregate::EachTurn,
        },
        ..low.clone()
    };
    let flags = evaluate_rules(&[never], &inputs);
    assert_eq!(flags.len(), 1);
    assert!(
        flags[0]
            .rationale
            .starts_with("Customer sentiment never went below -0.95")
    );

    // No sentiments given, or NaN: nothing to judge, nothing flagged.
    assert!(evaluate_rules(std::slice::from_ref(&low), &inputs_without(&turns)).is_empty());
    let nan = vec![score(f32::NAN); 4];
    let nan_inputs = RuleInputs {
        sentiments: &nan,
        ..inputs_without(&turns)
    };
    assert!(evaluate_rules(&[low, avg], &nan_inputs).is_empty());
}

fn inputs_without(turns: &[Turn]) -> RuleInputs<'_> {
    inputs(turns)
}

#[test]
fn non_talk_rules() {
    let turns = vec![turn(0, Role::Agent, 0, 100_000, "x")];
    let gaps = [
        NonTalk {
            start_ms: 10_000,
            end_ms: 14_000,
        },
        NonTalk {
            start_ms: 50_000,
            end_ms: 85_000,
        },
    ];
    let inputs = RuleInputs {
        non_talk: &gaps,
        ..inputs(&turns)
    };
    let long = rule("silence", RuleCondition::NonTalk { min_ms: 30_000 });
    let flags = evaluate_rules(std::slice::from_ref(&long), &inputs);
    assert_eq!(flags.len(), 1);
    assert_eq!((flags[0].start_ms, flags[0].end_ms), (50_000, 85_000));
    assert_eq!(flags[0].rationale, "Nobody spoke for 35 s from 0:50");
    assert_eq!(flags[0].role, None);
    // Scoped to the first 20 s: the long gap is outside.
    let early = Rule {
        scope: TimeScope::First { ms: 20_000 },
        ..long.clone()
    };
    assert!(evaluate_rules(&[early], &inputs).is_empty());
    let negated = Rule {
        negate: true,
        condition: RuleCondition::NonTalk { min_ms: 60_000 },
        ..long
    };
    let flags = evaluate_rules(&[negated], &inputs);
    assert_eq!(
        flags[0].rationale,
        "No silence of 60 s or more during the call"
    );
}

#[test]
fn interruption_rules() {
    let turns = vec![turn(0, Role::Agent, 0, 60_000, "x")];
    let i = |by: Role, start: u64, end: u64| Interruption {
        by,
        interrupted: if by == Role::Agent {
            Role::Customer
        } else {
            Role::Agent
        },
        turn: 1,
        interrupted_turn: 0,
        start_ms: start,
        end_ms: end,
    };
    let list = [
        i(Role::Agent, 1_000, 2_000),
        i(Role::Agent, 5_000, 5_200),
        i(Role::Customer, 8_000, 9_000),
        i(Role::Agent, 20_000, 21_000),
        i(Role::Agent, 30_000, 31_500),
    ];
    let inputs = RuleInputs {
        interruptions: &list,
        ..inputs(&turns)
    };
    let r = Rule {
        roles: vec![Role::Agent],
        ..rule(
            "interrupts",
            RuleCondition::Interruptions {
                min_count: 3,
                min_overlap_ms: 500,
            },
        )
    };
    let flags = evaluate_rules(std::slice::from_ref(&r), &inputs);
    assert_eq!(flags.len(), 1);
    assert_eq!((flags[0].start_ms, flags[0].end_ms), (1_000, 31_500));
    assert_eq!(
        flags[0].rationale,
        "Agent interrupted 3 times (threshold 3) during the call"
    );
    let stricter = Rule {
        condition: RuleCondition::Interruptions {
            min_count: 4,
            min_overlap_ms: 500,
        },
        ..r.clone()
    };
    assert!(evaluate_rules(std::slice::from_ref(&stricter), &inputs).is_empty());
    let negated = Rule {
        negate: true,
        ..stricter
    };
    let flags = evaluate_rules(&[negated], &inputs);
    assert_eq!(
        flags[0].rationale,
        "Agent interrupted 3 times (fewer than 4) during the call"
    );
    // Scope: the last 45 s of a 60 s call holds two of them.
    let late = Rule {
        scope: TimeScope::Last { ms: 45_000 },
        condition: RuleCondition::Interruptions {
            min_count: 2,
            min_overlap_ms: 0,
        },
        ..r
    };
    let late_inputs = RuleInputs {
        call_duration_ms: 60_000,
        ..inputs
    };
    let flags = evaluate_rules(&[late], &late_inputs);
    assert_eq!((flags[0].start_ms, flags[0].end_ms), (20_000, 31_500));
    assert!(flags[0].rationale.ends_with("in the last 45 s"));
}

#[test]
fn windows() {
    assert_eq!(TimeScope::WholeCall.window(10_000), (0, 10_000));
    assert_eq!(TimeScope::First { ms: 15_000 }.window(10_000), (0, 15_000));
    assert_eq!(
        TimeScope::Last { ms: 3_000 }.window(10_000),
        (7_000, 10_000)
    );
    assert_eq!(TimeScope::Last { ms: 30_000 }.window(10_000), (0, 10_000));
    assert_eq!(
        TimeScope::Absolute {
            start_ms: 5,
            end_ms: 9
        }
        .window(1),
        (5, 9)
    );
    assert_eq!(
        TimeScope::Percent {
            from: 25.0,
            to: 50.0
        }
        .window(10_000),
        (2_500, 5_000)
    );
    // Absolute scope: a phrase at 0:30 is found between 0:20 and 0:40 only.
    let turns = vec![turn(0, Role::Agent, 30_000, 31_000, "refund")];
    let between = |s: u64, e: u64| Rule {
        scope: TimeScope::Absolute {
            start_ms: s,
            end_ms: e,
        },
        ..rule("r", said(&["refund"]))
    };
    assert_eq!(
        evaluate_rules(&[between(20_000, 40_000)], &inputs(&turns)).len(),
        1
    );
    assert!(evaluate_rules(&[between(0, 20_000)], &inputs(&turns)).is_empty());
}

#[test]
fn validation() {
    assert!(validate_rule(&disclosure()).is_ok());
    let bad = |condition, scope| Rule {
        scope,
        ..rule("bad", condition)
    };
    assert!(matches!(
        validate_rule(&bad(said(&[]), TimeScope::WholeCall)),
        Err(RuleError::NoPhrases { .. })
    ));
    assert!(matches!(
        validate_rule(&bad(said(&["*"]), TimeScope::WholeCall)),
        Err(RuleError::Phrase { .. })
    ));
    let sentiment = |threshold| RuleCondition::Sentiment {
        comparison: Comparison::Below,
        threshold,
        aggregate: SentimentAggregate::EachTurn,
    };
    assert!(matches!(
        validate_rule(&bad(sentiment(f32::NAN), TimeScope::WholeCall)),
        Err(RuleError::Threshold { .. })
    ));
    assert!(matches!(
        validate_rule(&bad(sentiment(-1.5), TimeScope::WholeCall)),
        Err(RuleError::Threshold { .. })
    ));
    assert!(matches!(
        validate_rule(&bad(
            said(&["x"]),
            TimeScope::Percent {
                from: 50.0,
                to: 10.0
            }
        )),
        Err(RuleError::Scope { .. })
    ));
    assert!(matches!(
        validate_rule(&bad(said(&["x"]), TimeScope::First { ms: 0 })),
        Err(RuleError::Scope { .. })
    ));
    assert!(matches!(
        validate_rule(&bad(
            RuleCondition::Interruptions {
                min_count: 0,
                min_overlap_ms: 0
            },
            TimeScope::WholeCall
        )),
        Err(RuleError::ZeroCount { .. })
    ));
    let mut unnamed = disclosure();
    unnamed.category = " ".into();
    assert!(matches!(
        validate_rule(&unnamed),
        Err(RuleError::MissingName { .. })
    ));
    assert!(RuleSet::new(&[disclosure(), unnamed]).is_err());
}

#[test]
fn inactive_rules_flag_nothing() {
    let turns = vec![turn(0, Role::Agent, 0, 1_000, "hi")];
    let off = Rule {
        active: false,
        ..disclosure()
    };
    assert!(evaluate_rules(&[off], &inputs(&turns)).is_empty());
}

#[test]
fn default_pack_is_valid_and_round_trips_as_json() {
    let pack = default_rule_pack();
    assert!(pack.len() >= 8);
    for r in &pack {
        validate_rule(r).unwrap_or_else(|e| panic!("{e}"));
    }
    let json = serde_json::to_string(&pack).unwrap();
    let back: Vec<Rule> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, pack);
    // Configured by hand, defaults fill in.
    let r: Rule = serde_json::from_str(
        r#"{"id":"d","name":"Disclosure","category":"Compliance","severity":"high",
            "condition":{"kind":"phrase_absent","phrases":["may be recorded"]},
            "roles":["agent"],"scope":{"type":"first","ms":15000}}"#,
    )
    .unwrap();
    assert!(r.active && !r.negate);
    assert_eq!(r.scope, TimeScope::First { ms: 15_000 });
}

#[test]
fn default_pack_profanity_is_whole_word() {
    let pack = default_rule_pack();
    let turns = vec![
        turn(
            0,
            Role::Customer,
            0,
            3_000,
            "We assess the Scunthorpe shipment, no crap.",
        ),
        turn(1, Role::Agent, 3_000, 5_000, "This is fucking ridiculous"),
    ];
    let flags = evaluate_rules(&pack, &inputs(&turns));
    let prof: Vec<_> = flags
        .iter()
        .filter(|f| f.category == "Profanity")
        .map(|f| (f.rule_id.as_str(), f.phrase.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        prof,
        [
            ("customer-profanity", "crap"),
            ("agent-profanity", "fucking")
        ]
    );
}

#[test]
fn categories_summarised_by_highest_severity() {
    let turns = vec![
        turn(
            0,
            Role::Agent,
            0,
            20_000,
            "Hi, it's risk free and you can't lose",
        ),
        turn(1, Role::Customer, 20_000, 25_000, "Get me a supervisor"),
    ];
    let flags = evaluate_rules(&default_rule_pack(), &inputs(&turns));
    let summary = summarize_categories(&flags);
    assert_eq!(
        summary,
        [
            CategorySummary {
                category: "Compliance".into(),
                severity: Severity::Critical,
                flags: 3
            },
            CategorySummary {
                category: "Escalation".into(),
                severity: Severity::Medium,
                flags: 1
            },
        ]
    );
}

/// Deterministic xorshift for bounded random inputs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn random_calls_and_unvalidated_rules_never_panic() {
    let words = [
        "supervisor",
        "guaranteed",
        "returns",
        "risk",
        "free",
        "this",
        "call",
        "may",
        "be",
        "recorded",
        "المدير",
        "إلغاء",
        "😀",
        "",
        "  ",
        "fuck",
        "*",
        "\u{0301}",
        "damn",
        "it",
    ];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let weird_scopes = [
        TimeScope::Percent {
            from: f32::NAN,
            to: 200.0,
        },
        TimeScope::Absolute {
            start_ms: u64::MAX,
            end_ms: 0,
        },
        TimeScope::Last { ms: u64::MAX },
        TimeScope::First { ms: 0 },
    ];
    for round in 0..300 {
        let n = rng.below(8) as usize;
        let mut turns = Vec::new();
        let mut sentiments = Vec::new();
        for i in 0..n {
            let text: Vec<&str> = (0..rng.below(12))
                .map(|_| words[rng.below(words.len() as u64) as usize])
                .collect();
            let start = if rng.below(10) == 0 {
                u64::MAX - 1
            } else {
                rng.below(120_000)
            };
            let role = [Role::Agent, Role::Customer, Role::Unknown][rng.below(3) as usize];
            turns.push(turn(
                i,
                role,
                start,
                start.saturating_add(rng.below(9_000)),
                &text.join(" "),
            ));
            sentiments.push(match rng.below(4) {
                0 => None,
                1 => score(f32::NAN),
                _ => score(rng.below(200) as f32 / 100.0 - 1.0),
            });
        }
        let non_talk = [NonTalk {
            start_ms: rng.below(100_000),
            end_ms: rng.below(100_000),
        }];
        let interruptions = [Interruption {
            by: Role::Agent,
            interrupted: Role::Customer,
            turn: 99,
            interrupted_turn: 98,
            start_ms: rng.next(),
            end_ms: rng.next(),
        }];
        let mut rules = default_rule_pack();
        for r in &mut rules {
            if rng.below(3) == 0 {
                r.scope = weird_scopes[rng.below(weird_scopes.len() as u64) as usize];
            }
            r.negate = rng.below(2) == 0;
        }
        rules.push(rule("bad", said(&["*", "", "re*und"])));
        let inputs = RuleInputs {
            turns: &turns,
            sentiments: &sentiments,
            non_talk: &non_talk,
            interruptions: &interruptions,
            call_duration_ms: if round % 2 == 0 { 0 } else { rng.next() },
        };
        for f in evaluate_rules(&rules, &inputs) {
            assert!((0.0..=1.0).contains(&f.confidence), "{f:?}");
            assert!(!f.rationale.is_empty());
        }
    }
}

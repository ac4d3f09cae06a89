use super::*;
use crate::types::{Role, SentimentLabel, Turn};

fn score(text: &str) -> f32 {
    LexiconAnalyser::embedded().score_text(text).score
}

fn label(text: &str) -> SentimentLabel {
    LexiconAnalyser::embedded().score_text(text).label
}

#[test]
fn lexicon_words_give_polarity_and_unknown_words_are_neutral() {
    assert!(score("The service was great") > POSITIVE_MIN);
    assert!(score("The service was terrible") < NEGATIVE_MAX);
    assert_eq!(score("My account number is four five six"), 0.0);
    assert_eq!(label("Please hold while I check"), SentimentLabel::Neutral);
    assert_eq!(score(""), 0.0);
    assert_eq!(label("!!! ??? ..."), SentimentLabel::Neutral);
}

#[test]
fn negation_flips_within_three_words_only() {
    assert!(score("that is good") > 0.0);
    assert!(score("that is not good") < 0.0);
    assert!(score("not bad") > 0.0, "not bad is mildly positive");
    assert!(score("not bad") < score("good"));
    assert!(score("I'm not unhappy") > 0.0);
    // the negator is 4 words before "good": out of scope
    assert!(score("not that it is really good") > 0.0);
    // a clause boundary ends the scope
    assert!(score("no, it is good") > 0.0);
    // apostrophe-less ASR contraction
    assert!(score("it isnt good") < 0.0);
}

#[test]
fn intensifiers_and_dampeners_scale() {
    let plain = score("the agent was helpful");
    assert!(score("the agent was very helpful") > plain);
    assert!(score("the agent was extremely helpful") > score("the agent was very helpful"));
    assert!(score("the agent was slightly helpful") < plain);
    assert!(score("the agent was slightly helpful") > 0.0);
    assert!(score("it is extremely bad") < score("it is bad"));
}

#[test]
fn but_contrast_weights_the_later_clause() {
    let s = score("The agent was nice but the product is terrible");
    assert!(s < NEGATIVE_MAX, "{s}");
    let s = score("The first agent was rude but you have been very helpful");
    assert!(s > POSITIVE_MIN, "{s}");
    // The same words without "but" weigh equally.
    assert!(score("The agent was nice, the product is terrible") > s - 2.0);
    assert!(
        score("The agent was nice but the product is terrible")
            < score("The agent was nice, the product is terrible")
    );
}

#[test]
fn exclamation_amplifies_and_question_softens_positive() {
    assert!(score("great!") > score("great"));
    assert!(score("great!!!") > score("great!"));
    assert_eq!(score("great!!!"), score("great!!!!!!"), "capped at three");
    assert!(score("terrible!") < score("terrible"));
    assert!(score("is it fixed?") < score("it is fixed."));
    assert_eq!(
        label("Is there anything else I can help you with?"),
        SentimentLabel::Neutral
    );
    // A question does not soften a complaint.
    assert_eq!(
        score("why is this so difficult?"),
        score("why is this so difficult.")
    );
}

#[test]
fn all_caps_words_are_emphasised_unless_the_whole_text_shouts() {
    assert!(score("that was GREAT") > score("that was great"));
    assert!(score("THAT WAS GREAT") == score("that was great"));
    assert!(score("This is NOT good") < score("This is not good"));
}

#[test]
fn domain_phrases_score_what_generic_words_miss() {
    for text in [
        "I want to cancel my account",
        "I've been on hold for an hour",
        "it's still not working",
        "this is the third time calling",
        "I got transferred again",
        "thanks for nothing",
        "you keep giving me the runaround",
        "my internet keeps dropping",
        "i have been on hold forever",
    ] {
        assert_eq!(label(text), SentimentLabel::Negative, "{text}");
    }
    for text in [
        "that fixed it",
        "it works perfectly now",
        "you've been very helpful",
        "youve been very helpful",
        "no problem",
        "I can't complain",
        "couldn't be happier",
        "much appreciated",
    ] {
        assert_eq!(label(text), SentimentLabel::Positive, "{text}");
    }
}

#[test]
fn phrases_with_their_own_negation_are_not_negated_again() {
    // "not" sits inside "still not working"; "never" before it must not flip it positive.
    assert!(score("it is never still not working") < 0.0);
    assert!(score("no problem at all") > 0.0);
}

#[test]
fn mixed_needs_strong_parts_on_both_sides() {
    assert_eq!(
        label("Great agent, terrible company."),
        SentimentLabel::Mixed
    );
    assert_eq!(
        label("Good agent, slightly slow."),
        SentimentLabel::Positive
    );
    let s = LexiconAnalyser::embedded().score_text("Great agent, terrible company.");
    assert!(s.score.abs() < MIXED_SCORE_MAX);
}

#[test]
fn scores_stay_in_range_on_long_and_hostile_input() {
    let long = "terrible awful horrible ".repeat(2_000);
    let s = score(&long);
    assert!((-1.0..=-0.99).contains(&s), "{s}");
    for text in [
        "\u{0}\u{1}'''",
        "ما هذا",
        "💥💥💥!!!",
        "n't 's 've",
        "but but but",
    ] {
        let s = score(text);
        assert!((-1.0..=1.0).contains(&s), "{text}: {s}");
    }
}

#[test]
fn loads_a_tsv_lexicon_and_rejects_bad_lines() {
    let lex =
        Lexicon::from_tsv("# comment\nsplendid\t3.1\t0.5\t[3, 3]\nmeh\t-0.8\n\n").expect("parses");
    assert_eq!(lex.len(), 2);
    assert_eq!(lex.valence("splendid"), Some(3.1));
    let a = LexiconAnalyser::with_lexicon("tiny", lex, false);
    assert!(a.score_text("simply splendid").score > 0.0);
    assert_eq!(
        a.score_text("great").score,
        0.0,
        "only the loaded words count"
    );
    assert_eq!(a.name(), "tiny");

    assert!(matches!(
        Lexicon::from_tsv("word only"),
        Err(LexiconError::BadLine { line: 1, .. })
    ));
    assert!(matches!(
        Lexicon::from_tsv("a\t1\nb\tNaN"),
        Err(LexiconError::BadValence { line: 2, .. })
    ));
    assert!(matches!(
        Lexicon::from_tsv("a\t9"),
        Err(LexiconError::BadValence { .. })
    ));
    assert!(matches!(
        Lexicon::from_tsv("\n# nothing\n"),
        Err(LexiconError::Empty)
    ));
}

fn turn(index: usize, role: Role, start_ms: u64, end_ms: u64, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: role.as_str().into(),
        start_ms,
        end_ms,
        text: text.into(),
        words: Vec::new(),
    }
}

#[test]
fn call_aggregates_per_role_quarter_and_trend() {
    let turns = vec![
        turn(
            0,
            Role::Agent,
            0,
            10_000,
            "Thank you for calling, how can I help?",
        ),
        turn(
            1,
            Role::Customer,
            10_000,
            30_000,
            "I've been on hold for an hour and it's still not working.",
        ),
        turn(
            2,
            Role::Agent,
            30_000,
            40_000,
            "I'm sorry about that. Let me check.",
        ),
        turn(3, Role::Customer, 40_000, 42_000, ""),
        turn(
            4,
            Role::Agent,
            50_000,
            70_000,
            "I have reset the line, please try now.",
        ),
        turn(
            5,
            Role::Customer,
            70_000,
            80_000,
            "That fixed it, thank you so much, you've been very helpful!",
        ),
    ];
    let analyser = LexiconAnalyser::embedded();
    let call = analyse_call(&analyser, &turns, Some(80_000)).expect("lexicon never fails");
    assert_eq!(call.analyser, "lexicon");
    assert_eq!(call.turns.len(), 5, "the empty turn is not scored");
    let customer = call
        .per_role
        .iter()
        .find(|r| r.role == Role::Customer)
        .expect("customer");
    assert_eq!(customer.turns, 2);
    // 20 s negative against 10 s positive: duration-weighted, the complaint dominates.
    let first = call
        .turns
        .iter()
        .find(|t| t.turn == 1)
        .expect("turn 1")
        .sentiment
        .score;
    let last = call
        .turns
        .iter()
        .find(|t| t.turn == 5)
        .expect("turn 5")
        .sentiment
        .score;
    let expected = (first * 20.0 + last * 10.0) / 30.0;
    assert!((customer.sentiment.score - expected).abs() < 1e-5);
    assert_eq!(
        customer.sentiment.label,
        SentimentLabel::Mixed,
        "both halves are clear"
    );

    assert_eq!(call.timeline.len(), 4);
    assert_eq!(
        call.timeline[0].span,
        crate::types::TimeSpan {
            start_ms: 0,
            end_ms: 20_000
        }
    );
    let q1_customer = call.timeline[0]
        .per_role
        .iter()
        .find(|r| r.role == Role::Customer)
        .expect("q1");
    assert!((q1_customer.sentiment.score - first).abs() < 1e-6);
    let q4 = call.timeline[3].overall.expect("q4 has speech");
    assert!(q4.score > 0.0);
    // The third quarter (40–60 s) has only the agent's neutral turn.
    assert!(
        call.timeline[2]
            .per_role
            .iter()
            .all(|r| r.role == Role::Agent)
    );

    let trend = call.customer_trend.expect("customer spoke");
    assert_eq!(trend.direction, TrendDirection::Improving);
    assert!((trend.delta - (last - first)).abs() < 1e-6);
    assert!(call.overall.is_some());
    let json = serde_json::to_string(&call).expect("serialises");
    assert!(json.contains("\"customer_trend\""));
}

#[test]
fn aggregates_handle_empty_and_zero_length_calls() {
    let analyser = LexiconAnalyser::embedded();
    let call = analyse_call(&analyser, &[], None).expect("ok");
    assert!(call.turns.is_empty() && call.per_role.is_empty() && call.timeline.is_empty());
    assert_eq!(call.overall, None);
    assert_eq!(call.customer_trend, None);

    let turns = vec![turn(0, Role::Customer, 0, 0, "terrible")];
    let call = analyse_call(&analyser, &turns, None).expect("ok");
    assert_eq!(
        call.overall.map(|s| s.label),
        Some(SentimentLabel::Negative)
    );
    assert!(call.timeline.is_empty());
    let trend = call.customer_trend.expect("one turn");
    assert_eq!(
        (trend.start, trend.direction),
        (trend.end, TrendDirection::Steady)
    );

    // A zero-length turn inside a longer call counts in its quarter.
    let turns = vec![
        turn(0, Role::Agent, 0, 4_000, "hello"),
        turn(1, Role::Customer, 3_500, 3_500, "awful"),
    ];
    let call = analyse_call(&analyser, &turns, None).expect("ok");
    assert!(
        call.timeline[3]
            .per_role
            .iter()
            .any(|r| r.role == Role::Customer)
    );
}

/// A stand-in for a model backend (none can run in unit tests): returns fixed scores,
/// including values a faulty model might produce.
struct ScriptedAnalyserDouble(Vec<f32>);

impl SentimentAnalyser for ScriptedAnalyserDouble {
    fn name(&self) -> &str {
        "scripted-double"
    }
    fn analyse(&self, _text: &str) -> Result<crate::types::SentimentScore, SentimentError> {
        Err(SentimentError::Backend {
            analyser: "scripted-double".into(),
            reason: "batch only".into(),
        })
    }
    fn analyse_batch(
        &self,
        texts: &[&str],
    ) -> Result<Vec<crate::types::SentimentScore>, SentimentError> {
        Ok(self
            .0
            .iter()
            .take(texts.len())
            .map(|&score| crate::types::SentimentScore {
                score,
                label: label_for(score),
            })
            .collect())
    }
}

#[test]
fn another_analyser_plugs_in_and_its_output_is_checked() {
    let turns = vec![
        turn(0, Role::Agent, 0, 1_000, "a"),
        turn(1, Role::Customer, 1_000, 2_000, "b"),
    ];
    let call =
        analyse_call(&ScriptedAnalyserDouble(vec![f32::NAN, 7.0]), &turns, None).expect("ok");
    assert_eq!(call.analyser, "scripted-double");
    assert_eq!(call.turns[0].sentiment.score, 0.0, "NaN becomes neutral");
    assert_eq!(call.turns[1].sentiment.score, 1.0, "clamped to [-1, 1]");
    let short = analyse_call(&ScriptedAnalyserDouble(vec![0.5]), &turns, None);
    assert!(matches!(
        short,
        Err(SentimentError::CountMismatch {
            scores: 1,
            turns: 2
        })
    ));
}

#[test]
fn aggregate_accepts_scores_from_elsewhere_even_with_bad_timings() {
    let turns = vec![
        TurnSentiment {
            turn: 1,
            role: Role::Customer,
            start_ms: 5_000,
            end_ms: 1_000, // reversed: weighs as 1 ms, no panic
            sentiment: crate::types::SentimentScore {
                score: -0.8,
                label: SentimentLabel::Negative,
            },
        },
        TurnSentiment {
            turn: 0,
            role: Role::Agent,
            start_ms: 0,
            end_ms: 4_000,
            sentiment: crate::types::SentimentScore {
                score: 0.5,
                label: SentimentLabel::Positive,
            },
        },
    ];
    let call = aggregate("external", turns, 8_000);
    assert_eq!(call.turns[0].turn, 0, "sorted by start");
    let overall = call.overall.expect("overall");
    let expected = (0.5 * 4_000.0 - 0.8) / 4_001.0;
    assert!((overall.score - expected).abs() < 1e-6);
    assert_eq!(call.timeline.len(), 4);
}

#[test]
fn pseudo_random_text_never_panics_and_stays_in_range() {
    // A fixed linear congruential sequence: reproducible "random" input without a dependency.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet: Vec<char> = "abc NOT n't 's ! ? . , but very not no ﻻ é\u{0} '\u{2019}"
        .chars()
        .collect();
    let analyser = LexiconAnalyser::embedded();
    for _ in 0..500 {
        let len = (state % 80) as usize;
        let text: String = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                alphabet[(state >> 33) as usize % alphabet.len()]
            })
            .collect();
        let s = analyser.score_text(&text);
        assert!((-1.0..=1.0).contains(&s.score), "{text:?}: {}", s.score);
    }
}

//! A scripted two-speaker call with known disclosures (missing), competitor names,
//! objections, a prohibited promise, a card number split over two turns, a CVV, a long
//! silence, interruptions and an escalation: every tracker hit, redaction and rule flag is
//! asserted with its times.
//!
//! Word timings are laid out evenly over each turn (each whitespace word gets an equal slot),
//! so every expected time below can be worked out by hand from the script.

use callscope_analysis::redact::{RedactionConfig, RedactionKind, redact};
use callscope_analysis::rules::{RuleInputs, Severity, default_rule_pack, evaluate_rules};
use callscope_analysis::text::TimeSource;
use callscope_analysis::trackers::{KeywordTracker, TrackerCategory, find_tracker_hits};
use callscope_analysis::{
    Interruption, NonTalk, Role, SentimentLabel, SentimentScore, TimedWord, Turn,
};

fn turn(index: usize, role: Role, start_ms: u64, end_ms: u64, text: &str) -> Turn {
    let words: Vec<&str> = text.split_whitespace().collect();
    let slot = (end_ms - start_ms) / words.len().max(1) as u64;
    Turn {
        index,
        role,
        speaker: if role == Role::Agent { "Sam" } else { "Caller" }.into(),
        start_ms,
        end_ms,
        text: text.into(),
        words: words
            .iter()
            .enumerate()
            .map(|(i, w)| TimedWord {
                text: (*w).into(),
                start_ms: start_ms + slot * i as u64,
                end_ms: start_ms + slot * (i as u64 + 1),
            })
            .collect(),
    }
}

fn script() -> Vec<Turn> {
    use Role::{Agent, Customer};
    vec![
        turn(
            0,
            Agent,
            0,
            4_000,
            "Thank you for calling Acme Bank, my name is Sam.",
        ),
        turn(
            1,
            Customer,
            5_000,
            10_000,
            "I want to cancel my account because Globex is cheaper",
        ),
        turn(
            2,
            Agent,
            10_000,
            14_000,
            "I understand, our fund has guaranteed returns, truly.",
        ),
        turn(3, Customer, 14_500, 17_500, "Fine my card is 4111 1111"),
        turn(4, Agent, 17_600, 18_100, "mhm"),
        turn(5, Customer, 18_200, 20_200, "1111 1111"),
        turn(6, Agent, 20_500, 23_500, "And the security code?"),
        turn(7, Customer, 24_000, 27_000, "one two three"),
        turn(
            8,
            Agent,
            62_000,
            66_000,
            "Sorry for the wait, I will fix it, damn it.",
        ),
        turn(9, Customer, 66_000, 70_000, "I want a supervisor now"),
    ]
}

fn tracker(id: &str, category: TrackerCategory, phrases: &[&str], active: bool) -> KeywordTracker {
    KeywordTracker {
        id: id.into(),
        name: id.into(),
        category,
        active,
        phrases: phrases.iter().map(|p| p.to_string()).collect(),
        roles: None,
    }
}

#[test]
fn tracker_hits_with_times() {
    let turns = script();
    let trackers = vec![
        tracker(
            "competitors",
            TrackerCategory::Competitor,
            &["globex", "initech"],
            true,
        ),
        tracker(
            "objections",
            TrackerCategory::Objection,
            &["cancel * account", "cheaper"],
            true,
        ),
        tracker(
            "pricing",
            TrackerCategory::Pricing,
            &["price*", "cheap*"],
            true,
        ),
        tracker("brand", TrackerCategory::Feature, &["acme"], false),
    ];
    let hits = find_tracker_hits(&turns, &trackers);
    let got: Vec<_> = hits
        .iter()
        .map(|h| {
            (
                h.tracker_id.as_str(),
                h.turn,
                h.phrase.as_str(),
                h.start_ms,
                h.end_ms,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("objections", 1, "cancel my account", 6_500, 8_000),
            ("competitors", 1, "Globex", 8_500, 9_000),
            ("objections", 1, "cheaper", 9_500, 10_000),
            ("pricing", 1, "cheaper", 9_500, 10_000),
        ]
    );
    assert!(
        hits.iter()
            .all(|h| h.time_source == TimeSource::WordTimings)
    );
    assert!(
        hits.iter()
            .all(|h| h.role == Role::Customer && h.speaker == "Caller")
    );
}

#[test]
fn card_and_cvv_redacted_with_times() {
    let turns = script();
    let r = redact(&turns, &RedactionConfig::default());
    let got: Vec<_> = r
        .redactions
        .iter()
        .map(|x| (x.turn, x.kind, x.start_ms, x.end_ms))
        .collect();
    assert_eq!(
        got,
        [
            (3, RedactionKind::CardNumber, 16_500, 17_500),
            (5, RedactionKind::CardNumber, 18_200, 20_200),
            (7, RedactionKind::Cvv, 24_000, 27_000),
        ]
    );
    assert_eq!(r.turns[3].text, "Fine my card is [PCI]");
    assert_eq!(r.turns[5].text, "[PCI]");
    assert_eq!(r.turns[7].text, "[PCI]");
    let words: Vec<_> = r.turns[3].words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(words, ["Fine", "my", "card", "is", "[PCI]", "[PCI]"]);
    // Nothing else changed.
    for i in [0, 1, 2, 4, 6, 8, 9] {
        assert_eq!(r.turns[i], turns[i]);
    }
    // No digit of the card survives anywhere.
    let all: String = r
        .turns
        .iter()
        .flat_map(|t| std::iter::once(t.text.clone()).chain(t.words.iter().map(|w| w.text.clone())))
        .collect();
    assert!(!all.contains("4111") && !all.contains("1111"));
}

#[test]
fn default_rule_pack_flags_with_times_and_rationales() {
    let turns = script();
    let negative = |score| {
        Some(SentimentScore {
            score,
            label: SentimentLabel::Negative,
        })
    };
    let mut sentiments = vec![None; turns.len()];
    sentiments[1] = negative(-0.6);
    sentiments[9] = negative(-0.8);
    let non_talk = [NonTalk {
        start_ms: 27_000,
        end_ms: 62_000,
    }];
    let by_agent = |start_ms, end_ms, turn| Interruption {
        by: Role::Agent,
        interrupted: Role::Customer,
        turn,
        interrupted_turn: turn - 1,
        start_ms,
        end_ms,
    };
    let interruptions = [
        by_agent(10_000, 10_600, 2),
        by_agent(20_500, 21_100, 6),
        by_agent(62_000, 62_700, 8),
    ];
    let inputs = RuleInputs {
        turns: &turns,
        sentiments: &sentiments,
        non_talk: &non_talk,
        interruptions: &interruptions,
        call_duration_ms: 70_000,
    };
    let flags = evaluate_rules(&default_rule_pack(), &inputs);
    let got: Vec<_> = flags
        .iter()
        .map(|f| {
            (
                f.rule_id.as_str(),
                f.severity,
                f.role,
                f.phrase.as_deref(),
                f.start_ms,
                f.end_ms,
            )
        })
        .collect();
    use Severity::*;
    assert_eq!(
        got,
        [
            (
                "recording-disclosure",
                High,
                Some(Role::Agent),
                None,
                0,
                15_000
            ),
            (
                "escalation-request",
                Medium,
                Some(Role::Customer),
                Some("cancel my account"),
                6_500,
                8_000
            ),
            (
                "agent-interrupts",
                Low,
                Some(Role::Agent),
                None,
                10_000,
                62_700
            ),
            (
                "prohibited-promises",
                Critical,
                Some(Role::Agent),
                Some("guaranteed returns"),
                12_500,
                13_500
            ),
            ("long-silence", Low, None, None, 27_000, 62_000),
            (
                "agent-profanity",
                High,
                Some(Role::Agent),
                Some("damn it"),
                65_200,
                66_000
            ),
            (
                "customer-unhappy-at-end",
                Medium,
                Some(Role::Customer),
                None,
                66_000,
                70_000
            ),
            (
                "escalation-request",
                Medium,
                Some(Role::Customer),
                Some("supervisor"),
                68_400,
                69_200
            ),
        ]
    );
    let rationales: Vec<_> = flags.iter().map(|f| f.rationale.as_str()).collect();
    assert_eq!(
        rationales,
        [
            "Agent did not say the recording disclosure in the first 15 s",
            "Customer said \"cancel my account\" at 0:06 (Escalation request)",
            "Agent interrupted 3 times (threshold 3) during the call",
            "Agent said \"guaranteed returns\" at 0:12 (Prohibited promises)",
            "Nobody spoke for 35 s from 0:27",
            "Agent said \"damn it\" at 1:05 (Agent profanity)",
            "Customer average sentiment was below -0.3 (-0.80) in 75–100 % of the call",
            "Customer said \"supervisor\" at 1:08 (Escalation request)",
        ]
    );
    assert!(flags.iter().all(|f| (0.0..=1.0).contains(&f.confidence)));
    // The flags serialize as the API will store them.
    let json = serde_json::to_value(&flags).unwrap();
    assert_eq!(json[0]["severity"], "high");
    assert_eq!(json[0]["role"], "agent");
}

/// A 60-minute call (1,800 two-second turns of ~20 words) through trackers, the default
/// rule pack and redaction with every option on. Prints the time; run with `--ignored`
/// (and `--release` for figures worth quoting).
#[test]
#[ignore]
fn sixty_minute_call_timing() {
    let lines = [
        "Thanks for calling, this call may be recorded for quality and training purposes today",
        "I was charged twice and I want to cancel my account unless you fix it right now",
        "Our premium plan is cheaper than Globex and the price includes support at no extra cost",
        "My card is 4111 1111 1111 1111 and it expires twelve twenty seven okay thank you",
        "Let me check that for you, could you hold for a moment while I look at the notes",
        "You can email me at jane dot doe at example dot com or call 555 123 4567 anytime",
    ];
    let turns: Vec<Turn> = (0..1_800)
        .map(|i| {
            let role = if i % 2 == 0 {
                Role::Agent
            } else {
                Role::Customer
            };
            turn(
                i,
                role,
                i as u64 * 2_000,
                i as u64 * 2_000 + 1_900,
                lines[i % lines.len()],
            )
        })
        .collect();
    let trackers: Vec<KeywordTracker> = (0..20)
        .map(|k| {
            tracker(
                &format!("t{k}"),
                TrackerCategory::Custom,
                &[
                    "globex",
                    "cancel * account",
                    "price*",
                    "charged twice",
                    &format!("word{k}"),
                ],
                true,
            )
        })
        .collect();
    let sentiments = vec![None; turns.len()];
    let inputs = RuleInputs {
        turns: &turns,
        sentiments: &sentiments,
        non_talk: &[],
        interruptions: &[],
        call_duration_ms: 3_600_000,
    };
    let config = RedactionConfig {
        emails: true,
        phones: true,
        ..RedactionConfig::default()
    };
    let t0 = std::time::Instant::now();
    let hits = find_tracker_hits(&turns, &trackers);
    let t1 = std::time::Instant::now();
    let flags = evaluate_rules(&default_rule_pack(), &inputs);
    let t2 = std::time::Instant::now();
    let redacted = redact(&turns, &config);
    let t3 = std::time::Instant::now();
    eprintln!(
        "60-min call, {} turns: trackers {:?} ({} hits), rules {:?} ({} flags), redaction {:?} ({} redactions)",
        turns.len(),
        t1 - t0,
        hits.len(),
        t2 - t1,
        flags.len(),
        t3 - t2,
        redacted.redactions.len()
    );
    // Each of the 20 trackers: "cancel my account" and "charged twice" in line 1, "Globex"
    // and "price" in line 2, each line said 300 times.
    assert_eq!(hits.len(), 20 * 300 * 4);
    // Card + expiry in line 3, email + phone in line 5.
    assert_eq!(redacted.redactions.len(), 300 * 4);
    // Every customer "cancel my account" (line 1 falls on customer turns) is an escalation.
    assert_eq!(flags.len(), 300);
}

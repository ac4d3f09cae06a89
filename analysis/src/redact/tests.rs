use super::*;
use crate::types::TimedWord;

fn turn(index: usize, role: Role, start: u64, end: u64, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: match role {
            Role::Agent => "Agent".into(),
            Role::Customer => "Customer".into(),
            Role::Unknown => "Speaker".into(),
        },
        start_ms: start,
        end_ms: end,
        text: text.into(),
        words: Vec::new(),
    }
}

fn with_word_times(mut t: Turn, step_ms: u64) -> Turn {
    t.words = t
        .text
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| TimedWord {
            text: w.into(),
            start_ms: t.start_ms + step_ms * i as u64,
            end_ms: t.start_ms + step_ms * (i as u64 + 1),
        })
        .collect();
    t
}

fn one(text: &str) -> Redacted {
    redact(
        &[turn(0, Role::Customer, 0, 10_000, text)],
        &RedactionConfig::default(),
    )
}

fn kinds(r: &Redacted) -> Vec<RedactionKind> {
    r.redactions.iter().map(|r| r.kind).collect()
}

#[test]
fn luhn_known_cases() {
    let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<u8>>();
    assert!(luhn_valid(&d("4111111111111111")));
    assert!(luhn_valid(&d("5500000000000004")));
    assert!(luhn_valid(&d("378282246310005")));
    assert!(luhn_valid(&d("6011111111111117")));
    assert!(!luhn_valid(&d("4111111111111112")));
    assert!(!luhn_valid(&d("0000000000000000")), "all zeros is no card");
}

#[test]
fn written_card_numbers_in_any_grouping() {
    for said in [
        "my card is 4111 1111 1111 1111 thanks",
        "my card is 4111-1111-1111-1111 thanks",
        "my card is 4111111111111111 thanks",
        "my card is 4111 1111 uh 1111 1111 thanks",
    ] {
        let r = one(said);
        assert_eq!(r.turns[0].text, "my card is [PCI] thanks", "{said}");
        assert_eq!(kinds(&r), [RedactionKind::CardNumber]);
    }
    // Amex (15 digits) and Mastercard test numbers.
    assert_eq!(one("378282246310005").turns[0].text, "[PCI]");
    assert_eq!(one("5500 0000 0000 0004.").turns[0].text, "[PCI].");
    // Arabic-Indic digits.
    assert_eq!(
        one("رقم البطاقة ٤١١١ ١١١١ ١١١١ ١١١١").turns[0].text,
        "رقم البطاقة [PCI]"
    );
}

#[test]
fn numbers_failing_luhn_or_too_short_stay() {
    for said in [
        "order 4111 1111 1111 1112 shipped",
        "reference 1234 5678 90",
        "it cost 250 dollars",
        "",
        "one",
    ] {
        let r = one(said);
        assert_eq!(r.turns[0].text, said);
        assert!(r.redactions.is_empty(), "{said}: {:?}", r.redactions);
    }
}

#[test]
fn spoken_card_numbers() {
    for said in [
        "four one one one one one one one one one one one one one one one",
        "Four, double one one. Double one double one. One one one one, one one one one",
        "forty one eleven, eleven eleven, eleven eleven, eleven eleven",
        "five five oh oh oh oh oh oh zero zero zero zero oh oh oh four",
        "five five, double oh, triple oh oh, oh oh oh oh, oh oh oh four",
    ] {
        let text = format!("sure it's {said} okay");
        let r = one(&text);
        assert_eq!(r.turns[0].text, "sure it's [PCI] okay", "{said}");
        assert_eq!(kinds(&r), [RedactionKind::CardNumber], "{said}");
    }
}

#[test]
fn arabic_spoken_card_number() {
    // 4111 1111 1111 1111 read out in Arabic, with a hamza and a teh marbuta as written.
    let said = format!("رقم البطاقة أربعة {} شكرا", ["واحد"; 15].join(" "));
    let r = one(&said);
    assert_eq!(r.turns[0].text, "رقم البطاقة [PCI] شكرا");
    assert_eq!(kinds(&r), [RedactionKind::CardNumber]);
}

#[test]
fn card_split_over_turns_of_the_same_speaker() {
    let turns = vec![
        turn(0, Role::Customer, 0, 3_000, "it's 4111 1111"),
        turn(1, Role::Agent, 3_000, 3_500, "mhm"),
        turn(2, Role::Customer, 3_600, 6_000, "1111 1111 and that's it"),
    ];
    let r = redact(&turns, &RedactionConfig::default());
    assert_eq!(r.turns[0].text, "it's [PCI]");
    assert_eq!(r.turns[1].text, "mhm");
    assert_eq!(r.turns[2].text, "[PCI] and that's it");
    let by_turn: Vec<_> = r.redactions.iter().map(|x| (x.turn, x.kind)).collect();
    assert_eq!(
        by_turn,
        [
            (0, RedactionKind::CardNumber),
            (2, RedactionKind::CardNumber)
        ]
    );

    // Spoken, split the same way.
    let turns = vec![
        turn(
            0,
            Role::Customer,
            0,
            3_000,
            "four one one one one one one one",
        ),
        turn(1, Role::Agent, 3_000, 3_500, "okay go on"),
        turn(
            2,
            Role::Customer,
            3_600,
            6_000,
            "one one one one one one one one",
        ),
    ];
    let r = redact(&turns, &RedactionConfig::default());
    assert_eq!(r.turns[0].text, "[PCI]");
    assert_eq!(r.turns[2].text, "[PCI]");

    // Too long a pause: two halves are no card.
    let turns = vec![
        turn(0, Role::Customer, 0, 3_000, "it's 4111 1111"),
        turn(1, Role::Customer, 60_000, 62_000, "1111 1111"),
    ];
    assert!(
        redact(&turns, &RedactionConfig::default())
            .redactions
            .is_empty()
    );

    // Halves said by different speakers are no card.
    let turns = vec![
        turn(0, Role::Customer, 0, 3_000, "it's 4111 1111"),
        turn(1, Role::Agent, 3_000, 5_000, "1111 1111"),
    ];
    assert!(
        redact(&turns, &RedactionConfig::default())
            .redactions
            .is_empty()
    );
}

#[test]
fn cvv_and_expiry_near_a_card() {
    let r = one("4111 1111 1111 1111 and the CVV is 123, it expires 12/27");
    assert_eq!(
        r.turns[0].text,
        "[PCI] and the CVV is [PCI], it expires [PCI]"
    );
    assert_eq!(
        kinds(&r),
        [
            RedactionKind::CardNumber,
            RedactionKind::Cvv,
            RedactionKind::Expiry
        ]
    );

    // A code said straight after the card, with no word between.
    let r = one("4111 1111 1111 1111 123");
    assert_eq!(r.turns[0].text, "[PCI] [PCI]");
    assert_eq!(kinds(&r), [RedactionKind::CardNumber, RedactionKind::Cvv]);
    // Written expiry forms.
    for (said, redacted) in [
        ("4111111111111111 exp 12-27", "[PCI] exp [PCI]"),
        (
            "4111111111111111 valid until 12/2027",
            "[PCI] valid until [PCI]",
        ),
    ] {
        let r = one(said);
        assert_eq!(r.turns[0].text, redacted);
        assert_eq!(
            kinds(&r),
            [RedactionKind::CardNumber, RedactionKind::Expiry]
        );
    }

    // Spoken, in later turns, with keywords, within the time window but many words later.
    let filler = "let me just check that I have everything I need here okay ".repeat(3);
    let turns = vec![
        turn(0, Role::Customer, 0, 5_000, "4111 1111 1111 1111"),
        turn(
            1,
            Role::Agent,
            5_000,
            12_000,
            &format!("{filler} and the security code"),
        ),
        turn(
            2,
            Role::Customer,
            12_000,
            14_000,
            "security code one two three",
        ),
        turn(3, Role::Agent, 14_000, 15_000, "and the expiry date"),
        turn(
            4,
            Role::Customer,
            15_000,
            17_000,
            "expires twelve twenty seven",
        ),
        turn(
            5,
            Role::Customer,
            17_000,
            19_000,
            "valid through December twenty twenty eight",
        ),
    ];
    let r = redact(&turns, &RedactionConfig::default());
    assert_eq!(r.turns[2].text, "security code [PCI]");
    assert_eq!(r.turns[4].text, "expires [PCI]");
    assert_eq!(r.turns[5].text, "valid through [PCI]");
    let k: Vec<_> = r.redactions.iter().map(|x| (x.turn, x.kind)).collect();
    assert_eq!(
        k,
        [
            (0, RedactionKind::CardNumber),
            (2, RedactionKind::Cvv),
            (4, RedactionKind::Expiry),
            (5, RedactionKind::Expiry)
        ]
    );
}

#[test]
fn codes_without_a_card_or_far_from_it_stay() {
    let r = one("the CVV is 123 and it expires 12/27");
    assert!(r.redactions.is_empty());
    // A card, then much later a price: not near in words, no keyword.
    let filler = "word ".repeat(40);
    let turns = vec![
        turn(0, Role::Customer, 0, 5_000, "4111 1111 1111 1111"),
        turn(
            1,
            Role::Agent,
            5_000,
            20_000,
            &format!("{filler} that costs 250 dollars"),
        ),
    ];
    let r = redact(&turns, &RedactionConfig::default());
    assert_eq!(kinds(&r), [RedactionKind::CardNumber]);
    assert!(r.turns[1].text.ends_with("that costs 250 dollars"));
    // A keyword but far beyond the time window.
    let turns = vec![
        turn(0, Role::Customer, 0, 5_000, "4111 1111 1111 1111"),
        turn(1, Role::Agent, 5_000, 20_000, &filler),
        turn(2, Role::Customer, 120_000, 121_000, "the code is 123"),
    ];
    let r = redact(&turns, &RedactionConfig::default());
    assert_eq!(r.turns[2].text, "the code is 123");
}

#[test]
fn emails_and_phones_only_when_asked() {
    let text = "mail jane.doe+x@example.co.uk or jane dot doe at gmail dot com, call 555-123-4567";
    let r = one(text);
    assert_eq!(r.turns[0].text, text);
    let config = RedactionConfig {
        emails: true,
        phones: true,
        ..RedactionConfig::default()
    };
    let r = redact(&[turn(0, Role::Customer, 0, 10_000, text)], &config);
    assert_eq!(r.turns[0].text, "mail [PII] or [PII], call [PII]");
    assert_eq!(
        kinds(&r),
        [
            RedactionKind::Email,
            RedactionKind::Email,
            RedactionKind::Phone
        ]
    );
    // Spoken phone number, and a host said as one token.
    let r = redact(
        &[turn(
            0,
            Role::Customer,
            0,
            10_000,
            "it's five five five one two three four five six seven, or bob at gmail.com",
        )],
        &config,
    );
    assert_eq!(r.turns[0].text, "it's [PII], or [PII]");
    // Not emails: an @ with no domain, "at noon".
    let r = redact(
        &[turn(
            0,
            Role::Customer,
            0,
            1_000,
            "@ home, meet at noon dot",
        )],
        &config,
    );
    assert!(r.redactions.is_empty(), "{:?}", r.redactions);
}

#[test]
fn word_timings_are_redacted_and_give_times() {
    let t = with_word_times(
        turn(
            7,
            Role::Customer,
            10_000,
            20_000,
            "number is 4111 1111 1111 1111 ok",
        ),
        1_000,
    );
    let r = redact(&[t], &RedactionConfig::default());
    let words: Vec<&str> = r.turns[0].words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(
        words,
        ["number", "is", "[PCI]", "[PCI]", "[PCI]", "[PCI]", "ok"]
    );
    let x = r.redactions[0];
    assert_eq!((x.turn, x.start_ms, x.end_ms), (7, 12_000, 16_000));
    assert_eq!(x.time_source, TimeSource::WordTimings);

    // Words the text does not match are still dropped when they overlap the redacted time.
    let mut t = turn(0, Role::Customer, 0, 4_000, "4111 1111 1111 1111");
    t.words = vec![TimedWord {
        text: "4111111111111111".into(),
        start_ms: 0,
        end_ms: 4_000,
    }];
    let r = redact(&[t], &RedactionConfig::default());
    assert_eq!(r.turns[0].words[0].text, "[PCI]");
    assert_eq!(r.redactions[0].time_source, TimeSource::Interpolated);
}

#[test]
fn cards_off_redacts_no_card() {
    let config = RedactionConfig {
        cards: false,
        ..RedactionConfig::default()
    };
    let r = redact(
        &[turn(0, Role::Customer, 0, 1, "4111111111111111")],
        &config,
    );
    assert!(r.redactions.is_empty());
    assert!(redact(&[], &config).turns.is_empty());
}

/// Deterministic xorshift: bounded random input without a test-only dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn random_input_never_panics_and_leaves_no_card() {
    let pieces = [
        "4111",
        "1111",
        "one",
        "four",
        "oh",
        "double",
        "triple",
        "twenty",
        "eleven",
        "1",
        "-",
        "/",
        "@",
        ".",
        "dot",
        "at",
        "com",
        "cvv",
        "expires",
        "12/27",
        "é",
        "\u{0301}",
        "مرحبا",
        "\u{0640}",
        "٤",
        "١",
        "😀",
        "\u{200d}",
        " ",
        "  ",
        "\n",
        "x@y.io",
        "uh",
        "december",
        "5500",
        "0000",
        "0004",
        "and",
    ];
    let config = RedactionConfig {
        emails: true,
        phones: true,
        ..RedactionConfig::default()
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..400 {
        let n_turns = (rng.next() % 5) as usize;
        let mut turns = Vec::new();
        let mut t = 0u64;
        for i in 0..n_turns {
            let n = (rng.next() % 30) as usize;
            let mut text = String::new();
            for _ in 0..n {
                text.push_str(rng.pick(&pieces));
                if rng.next().is_multiple_of(2) {
                    text.push(' ');
                }
            }
            let role = if rng.next().is_multiple_of(2) {
                Role::Agent
            } else {
                Role::Customer
            };
            // Now and then times at the edge of u64, or a turn that ends before it starts.
            let (start, end) = match rng.next() % 8 {
                0 => (u64::MAX - rng.next() % 10, u64::MAX),
                1 => (t + 5_000, t),
                _ => (t, t + rng.next() % 20_000),
            };
            t = end.min(1 << 40);
            let mut turn = turn(i, role, start, end, &text);
            if rng.next().is_multiple_of(2) {
                // Word timings that may or may not match the text, possibly reversed.
                turn.words = text
                    .split(' ')
                    .map(|w| TimedWord {
                        text: w.into(),
                        start_ms: rng.next() % 100_000,
                        end_ms: if rng.next().is_multiple_of(16) {
                            u64::MAX
                        } else {
                            rng.next() % 100_000
                        },
                    })
                    .collect();
            }
            turns.push(turn);
        }
        let first = redact(&turns, &config);
        assert_eq!(first.turns.len(), turns.len());
        let second = redact(&first.turns, &config);
        assert!(
            !second
                .redactions
                .iter()
                .any(|r| r.kind == RedactionKind::CardNumber),
            "card left after redaction: {:?}",
            first.turns
        );
    }
}

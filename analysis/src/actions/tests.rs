use super::*;
use chrono::{NaiveDate, TimeZone};

/// The call starts on Wednesday 2026-11-18 at 09:00 UTC.
fn options() -> ActionOptions {
    ActionOptions {
        call_start: Utc
            .with_ymd_and_hms(2026, 11, 18, 9, 0, 0)
            .single()
            .unwrap(),
        date_order: DateOrder::MonthFirst,
    }
}

fn turn(index: usize, role: Role, text: &str) -> Turn {
    Turn {
        index,
        role,
        speaker: role.as_str().into(),
        start_ms: index as u64 * 10_000,
        end_ms: index as u64 * 10_000 + 8_000,
        text: text.into(),
        words: vec![],
    }
}

fn items(role: Role, text: &str) -> Vec<ActionItem> {
    extract_action_items(&[turn(0, role, text)], &options())
}

fn one(role: Role, text: &str) -> ActionItem {
    let found = items(role, text);
    assert_eq!(found.len(), 1, "{text:?} gave {found:?}");
    found.into_iter().next().unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn i_will_send() {
    let a = one(
        Role::Agent,
        "Sure. I will send you the contract this afternoon.",
    );
    assert_eq!(a.owner, Role::Agent);
    assert_eq!(a.kind, ActionKind::Commitment);
    assert_eq!(a.trigger, "i will send");
    assert_eq!(a.text, "I will send you the contract this afternoon.");
    assert_eq!(a.text_start, 6);
    assert!(a.due.is_none());
}

#[test]
fn contracted_email_with_typographic_apostrophe() {
    let a = one(Role::Agent, "I’ll email the receipt to you today.");
    assert_eq!(a.trigger, "i'll email");
    assert_eq!(a.due.unwrap().date, date(2026, 11, 18));
}

#[test]
fn we_will_call_back_tomorrow() {
    let a = one(Role::Agent, "No problem, we'll call you back tomorrow.");
    assert_eq!(a.owner, Role::Agent);
    let due = a.due.unwrap();
    assert_eq!(
        (due.date, due.phrase.as_str()),
        (date(2026, 11, 19), "tomorrow")
    );
}

#[test]
fn let_me_check_and_get_back_by_friday() {
    let a = one(Role::Agent, "Let me check and get back to you by Friday.");
    assert_eq!(a.trigger, "let me check");
    let due = a.due.unwrap();
    assert_eq!(
        (due.date, due.phrase.as_str()),
        (date(2026, 11, 20), "by friday")
    );
}

#[test]
fn going_to_and_fillers() {
    assert_eq!(
        one(Role::Agent, "I'm going to escalate this next week.")
            .due
            .unwrap()
            .date,
        date(2026, 11, 27)
    );
    assert_eq!(
        one(Role::Agent, "We are going to ship a replacement.").trigger,
        "we are going to ship"
    );
    assert_eq!(
        one(Role::Agent, "I'll go ahead and process the refund.").trigger,
        "i'll go ahead and process"
    );
    assert_eq!(
        one(Role::Agent, "I will personally follow up.").trigger,
        "i will personally follow"
    );
}

#[test]
fn own_side_and_delivery_promises() {
    let a = one(
        Role::Agent,
        "A technician will visit within 3 business days.",
    );
    assert_eq!(
        (a.owner, a.due.unwrap().date),
        (Role::Agent, date(2026, 11, 23))
    );
    let a = one(
        Role::Agent,
        "You'll receive a confirmation email within 24 hours.",
    );
    assert_eq!(a.owner, Role::Agent);
    let due = a.due.unwrap();
    assert_eq!(due.precision, DuePrecision::Time);
    assert_eq!(due.at.unwrap().to_rfc3339(), "2026-11-19T09:00:00+00:00");
}

#[test]
fn customer_commitment_is_owned_by_customer() {
    let a = one(
        Role::Customer,
        "OK, I will send you the photos in two days.",
    );
    assert_eq!((a.owner, a.said_by), (Role::Customer, Role::Customer));
    assert_eq!(a.due.unwrap().date, date(2026, 11, 20));
}

#[test]
fn customer_request_is_owned_by_agent() {
    let a = one(
        Role::Customer,
        "Can you send me a copy of the invoice by December 3rd?",
    );
    assert_eq!(a.kind, ActionKind::Request);
    assert_eq!((a.owner, a.said_by), (Role::Agent, Role::Customer));
    assert_eq!(a.trigger, "can you send");
    assert_eq!(a.due.unwrap().date, date(2026, 12, 3));
    let a = one(Role::Customer, "Would you mind emailing it to me?");
    assert_eq!((a.kind, a.owner), (ActionKind::Request, Role::Agent));
    let a = one(Role::Agent, "Please send us the meter reading by 12/3.");
    assert_eq!(a.owner, Role::Customer);
    assert_eq!(a.due.unwrap().date, date(2026, 12, 3));
}

#[test]
fn unknown_speaker_request_has_unknown_owner() {
    assert_eq!(
        one(Role::Unknown, "Could you call me back?").owner,
        Role::Unknown
    );
}

#[test]
fn negations_are_not_action_items() {
    for text in [
        "I will not send you anything.",
        "I won't call you again.",
        "We'll never cancel your plan.",
        "I'll not email you.",
        "Can you not call me at work?",
    ] {
        assert!(items(Role::Agent, text).is_empty(), "{text}");
    }
}

#[test]
fn past_conditionals_and_questions_are_not_action_items() {
    for text in [
        "I would have sent it yesterday.",
        "I would call them if I were you.",
        "I'll send it to you?",
        "Will I get a refund?",
        "Shall I email you the form?",
        "I called you yesterday.",
        "I'll be right back.",
        "I'll transfer you now.",
        "Can you hold for a moment?",
    ] {
        assert!(items(Role::Agent, text).is_empty(), "{text}");
    }
}

#[test]
fn one_item_per_sentence_and_time_order() {
    let turns = [
        turn(
            0,
            Role::Customer,
            "Hi. Can you check my order and call me back?",
        ),
        turn(
            1,
            Role::Agent,
            "I'll look into it. I'll send you the tracking number. I'll email you the invoice tomorrow.",
        ),
    ];
    let found = extract_action_items(&turns, &options());
    let triggers: Vec<_> = found.iter().map(|a| (a.turn, a.trigger.as_str())).collect();
    assert_eq!(
        triggers,
        vec![(0, "can you check"), (1, "i'll send"), (1, "i'll email")]
    );
    // Later sentence of the turn is later in time (interpolated without word timings).
    assert!(found[2].start_ms > found[1].start_ms);
    assert!(found[2].start_ms >= 10_000 && found[2].end_ms <= 18_000);
}

#[test]
fn due_counts_from_when_it_was_said() {
    // Said 15 h into a call that started at 09:00: "tomorrow" is the day after the call's date + 1.
    let mut late = turn(0, Role::Agent, "I'll call you tomorrow.");
    late.start_ms = 15 * 3_600_000;
    late.end_ms = late.start_ms + 2_000;
    let found = extract_action_items(&[late], &options());
    assert_eq!(found[0].due.as_ref().unwrap().date, date(2026, 11, 20));
}

#[test]
fn empty_and_non_latin_input() {
    assert!(extract_action_items(&[], &options()).is_empty());
    assert!(items(Role::Agent, "").is_empty());
    assert!(items(Role::Agent, "سأرسل لك الفاتورة غدا").is_empty());
    assert!(items(Role::Agent, "?!").is_empty());
}

#[test]
fn serialises_snake_case() {
    let a = one(Role::Customer, "Can you email me by Friday?");
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["owner"], "agent");
    assert_eq!(json["kind"], "request");
    assert_eq!(json["due"]["date"], "2026-11-20");
    assert_eq!(json["due"]["precision"], "day");
    let back: ActionItem = serde_json::from_value(json).unwrap();
    assert_eq!(back, a);
}

#[test]
fn look_ups_and_immediate_actions_done_during_the_call_are_not_items() {
    for text in [
        "Let me check your account.",
        "I'll look into that for you.",
        "I'll process the refund right now.",
        "I'm going to send you the link now.",
        "Let me verify your address.",
    ] {
        assert!(items(Role::Agent, text).is_empty(), "{text}");
    }
    // With a follow-up or a due date they are.
    assert_eq!(
        one(Role::Agent, "Let me look into it and let you know.").trigger,
        "let me look"
    );
    assert_eq!(
        one(Role::Agent, "I'll review the case by Monday.")
            .due
            .unwrap()
            .date,
        date(2026, 11, 23)
    );
    assert_eq!(
        one(Role::Agent, "I'll check with billing and get back to you.").trigger,
        "i'll check"
    );
}

#[test]
fn more_request_and_commitment_forms() {
    let a = one(
        Role::Customer,
        "If you could email me the form, that would be great.",
    );
    assert_eq!(
        (a.kind, a.owner, a.trigger.as_str()),
        (ActionKind::Request, Role::Agent, "you could email")
    );
    let a = one(Role::Agent, "I need you to send us a photo of the meter.");
    assert_eq!((a.kind, a.owner), (ActionKind::Request, Role::Customer));
    let a = one(Role::Agent, "I'll have someone call you back tomorrow.");
    assert_eq!(
        (a.kind, a.owner, a.trigger.as_str()),
        (
            ActionKind::Commitment,
            Role::Agent,
            "i'll have someone call"
        )
    );
    let a = one(Role::Agent, "We'll be sending you a new card.");
    assert_eq!(a.trigger, "we'll be sending");
}

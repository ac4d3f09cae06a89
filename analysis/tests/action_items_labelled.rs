//! A small labelled set of call-centre sentences (written for this test): does the action
//! item extractor find the commitments and requests, and only them? Prints precision and
//! recall; fails if either drops below what was measured when it was written.

use callscope_analysis::actions::{ActionOptions, DateOrder, extract_action_items};
use callscope_analysis::{Role, Turn};
use chrono::{TimeZone, Utc};

/// (speaker, sentence, is an action item, expected owner when it is).
const LABELLED: &[(Role, &str, bool, Role)] = &[
    (
        Role::Agent,
        "I'll send you the cancellation form by email this afternoon.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "We will call you back tomorrow morning with an update.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "Let me check with the billing team and get back to you by Friday.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I'm going to escalate this to our network team today.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "You'll receive a text message once the engineer is on the way.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "A technician will come out on Monday between eight and twelve.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I will credit your account with ten pounds for the trouble.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I'll make sure the late fee is waived on your next bill.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "Our team will review the claim within five working days.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I'll follow up with an email summarising what we agreed.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "Could you send us a photo of the damaged parcel?",
        true,
        Role::Customer,
    ),
    (
        Role::Agent,
        "Please upload the signed contract to the portal by the end of the week.",
        true,
        Role::Customer,
    ),
    (
        Role::Customer,
        "Can you email me a copy of the invoice?",
        true,
        Role::Agent,
    ),
    (
        Role::Customer,
        "Could you call me back after five?",
        true,
        Role::Agent,
    ),
    (
        Role::Customer,
        "I'll send you the meter reading tonight.",
        true,
        Role::Customer,
    ),
    (
        Role::Customer,
        "I will post the old router back to you next week.",
        true,
        Role::Customer,
    ),
    (
        Role::Customer,
        "Would you mind texting me the reference number?",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I'll have someone from the sales team contact you this week.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "We're going to replace the handset free of charge.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I'll book the appointment for the 3rd of December.",
        true,
        Role::Agent,
    ),
    // Not action items.
    (
        Role::Agent,
        "Thank you for calling, how can I help you today?",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "Let me check your account.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I'll put you on hold for a moment.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I will not be able to refund the full amount.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I won't charge you for this call.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I would have sent it sooner if I had known.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "Shall I send it to the same address?",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I'll transfer you to the right department.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I called the warehouse yesterday.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "We sent the replacement last Tuesday.",
        false,
        Role::Unknown,
    ),
    (
        Role::Customer,
        "I already sent you the documents twice.",
        false,
        Role::Unknown,
    ),
    (Role::Customer, "Will I get a refund?", false, Role::Unknown),
    (
        Role::Customer,
        "You never call me back.",
        false,
        Role::Unknown,
    ),
    (
        Role::Customer,
        "I'm calling about my bill.",
        false,
        Role::Unknown,
    ),
    (Role::Customer, "Can you hear me now?", false, Role::Unknown),
    (
        Role::Agent,
        "Can I have your date of birth please?",
        false,
        Role::Unknown,
    ),
    (Role::Agent, "I'll be right with you.", false, Role::Unknown),
    (
        Role::Agent,
        "I'm processing the refund right now.",
        false,
        Role::Unknown,
    ),
    (
        Role::Customer,
        "I would like to upgrade my plan.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "Is there anything else I can help you with?",
        false,
        Role::Unknown,
    ),
];

/// Written after the rules were tuned on `LABELLED`, and not tuned on. Its author knew the
/// rules, so its figures are an optimistic check, not a benchmark.
const HELD_OUT: &[(Role, &str, bool, Role)] = &[
    (
        Role::Agent,
        "I'm gonna ring you on Thursday to see how it's going.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "We'll ship the new modem within two days.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I shall forward your complaint to the store manager.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "Somebody will reach out to you about the installation.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I'll get the paperwork over to you by the end of the day.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "Let me look into why it failed and update you tomorrow.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "We're going to reissue the card and mail it out.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "If you could reply to that email with your order number, that would help.",
        true,
        Role::Customer,
    ),
    (
        Role::Agent,
        "Can you fill in the form we sent and return it?",
        true,
        Role::Customer,
    ),
    (
        Role::Customer,
        "Could you please cancel the direct debit?",
        true,
        Role::Agent,
    ),
    (
        Role::Customer,
        "Please send the technician in the morning.",
        true,
        Role::Agent,
    ),
    (
        Role::Customer,
        "I'll call my bank and ring you back.",
        true,
        Role::Customer,
    ),
    (
        Role::Customer,
        "I'm going to pay the balance on Friday.",
        true,
        Role::Customer,
    ),
    (
        Role::Agent,
        "You will get a confirmation letter in the post.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I'll personally make sure your case is prioritised.",
        true,
        Role::Agent,
    ),
    (
        Role::Agent,
        "I'll note that on your account for next time.",
        true,
        Role::Agent,
    ),
    // Not action items.
    (
        Role::Agent,
        "I can't send that to a different email address.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I'd have called you if we had found it.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "We will never share your data.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I will be honest with you, it's a known issue.",
        false,
        Role::Unknown,
    ),
    (
        Role::Customer,
        "Why did you cancel my order?",
        false,
        Role::Unknown,
    ),
    (
        Role::Customer,
        "You said you would call me back last week.",
        false,
        Role::Unknown,
    ),
    (Role::Customer, "I'll think about it.", false, Role::Unknown),
    (
        Role::Agent,
        "Let me just pull up your details.",
        false,
        Role::Unknown,
    ),
    (Role::Agent, "We'll see.", false, Role::Unknown),
    (
        Role::Customer,
        "Can you see my payment on your screen?",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "I'll read you the terms now.",
        false,
        Role::Unknown,
    ),
    (
        Role::Agent,
        "Would you like me to send it again?",
        false,
        Role::Unknown,
    ),
];

struct Figures {
    precision: f64,
    recall: f64,
    wrong_owner: usize,
    mistakes: Vec<String>,
}

fn measure(set: &[(Role, &str, bool, Role)]) -> Figures {
    let options = ActionOptions {
        call_start: Utc
            .with_ymd_and_hms(2026, 11, 18, 9, 0, 0)
            .single()
            .unwrap(),
        date_order: DateOrder::MonthFirst,
    };
    let (mut tp, mut fp, mut fn_, mut wrong_owner) = (0, 0, 0, 0);
    let mut mistakes = Vec::new();
    for (i, &(role, text, expected, owner)) in set.iter().enumerate() {
        let turn = Turn {
            index: i,
            role,
            speaker: String::new(),
            start_ms: 0,
            end_ms: 3_000,
            text: text.into(),
            words: vec![],
        };
        let found = extract_action_items(&[turn], &options);
        match (expected, found.first()) {
            (true, Some(item)) => {
                tp += 1;
                if item.owner != owner {
                    wrong_owner += 1;
                    mistakes.push(format!("owner {:?} for {text:?}", item.owner));
                }
            }
            (true, None) => {
                fn_ += 1;
                mistakes.push(format!("missed {text:?}"));
            }
            (false, Some(item)) => {
                fp += 1;
                mistakes.push(format!("false {text:?} ({})", item.trigger));
            }
            (false, None) => {}
        }
    }
    Figures {
        precision: tp as f64 / (tp + fp).max(1) as f64,
        recall: tp as f64 / (tp + fn_).max(1) as f64,
        wrong_owner,
        mistakes,
    }
}

#[test]
fn precision_and_recall_on_the_labelled_set() {
    let f = measure(LABELLED);
    println!(
        "action items, tuning set ({} sentences): precision {:.3}, recall {:.3}, wrong owner {}; {:?}",
        LABELLED.len(),
        f.precision,
        f.recall,
        f.wrong_owner,
        f.mistakes
    );
    assert!(
        f.precision >= 0.95 && f.recall >= 0.95 && f.wrong_owner == 0,
        "{:?}",
        f.mistakes
    );
}

#[test]
fn precision_and_recall_on_the_held_out_set() {
    let f = measure(HELD_OUT);
    println!(
        "action items, held-out set ({} sentences): precision {:.3}, recall {:.3}, wrong owner {}; {:?}",
        HELD_OUT.len(),
        f.precision,
        f.recall,
        f.wrong_owner,
        f.mistakes
    );
    // A regression guard below the measured 1.0/1.0: a set this small moves by 0.06 a miss.
    assert!(f.precision >= 0.9 && f.recall >= 0.85, "{:?}", f.mistakes);
}

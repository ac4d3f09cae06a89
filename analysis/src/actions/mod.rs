//! Action items: commitments made in the call ("I'll email you the form", "we'll call you
//! back tomorrow", "let me check and get back to you by Friday") and requests one side puts
//! to the other ("can you send me the invoice?"), each with who owns it and its due date
//! when one is said.
//!
//! Rule-based: a first-person future form (or a request form) followed, after a few filler
//! words, by an action verb. Negated forms ("I will not…", "I won't…"), conditionals ("I
//! would have…") and commitments asked as questions ("I'll send it?") are not action items.

mod due;
mod numbers;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

pub use due::{DateOrder, DueDate, DuePrecision};

use crate::summary::units::{SentenceSpan, span_time, split_sentences, words_lower};
use crate::types::{Role, Turn};

/// Whether the owner promised it or was asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// The speaker (or their side: "our team will…") committed to it.
    Commitment,
    /// The speaker asked the other side to do it; the other side owns it.
    Request,
}

/// One action item found in the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionItem {
    /// Who has to do it.
    pub owner: Role,
    /// Who said it.
    pub said_by: Role,
    pub kind: ActionKind,
    /// The sentence that states it.
    pub text: String,
    /// The words that made it an action item, normalised ("i'll send", "can you send").
    pub trigger: String,
    /// Turn index, and the sentence's byte range in that turn's text.
    pub turn: usize,
    pub text_start: usize,
    pub text_end: usize,
    /// When the sentence was said, ms from the start of the call.
    pub start_ms: u64,
    pub end_ms: u64,
    pub due: Option<DueDate>,
}

/// What action-item extraction needs besides the turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOptions {
    /// When the call started: relative due dates ("tomorrow") count from it.
    pub call_start: DateTime<Utc>,
    /// How "3/12" is read.
    #[serde(default)]
    pub date_order: DateOrder,
}

/// Subjects that commit the speaker's own side.
const FIRST_PERSON: &[&str] = &["i", "we"];
/// Contracted first-person futures.
const CONTRACTED_FUTURE: &[&str] = &["i'll", "we'll", "i'ma"];
/// People on the speaker's side whose "will" is the speaker's side's commitment.
const OWN_SIDE_NOUNS: &[&str] = &[
    "someone",
    "somebody",
    "technician",
    "engineer",
    "specialist",
    "manager",
    "supervisor",
    "team",
    "colleague",
    "department",
    "representative",
    "courier",
];
/// Words that may sit between the future form and the verb.
const FILLERS: &[&str] = &[
    "just",
    "also",
    "personally",
    "definitely",
    "certainly",
    "then",
    "quickly",
    "gladly",
    "now",
    "right",
    "away",
    "immediately",
    "first",
    "please",
    "kindly",
    "still",
    "actually",
    "try",
    "to",
    "go",
    "ahead",
    "and",
    "be",
    "sure",
];
/// Verbs of a follow-up action. In-call actions ("hold", "transfer") are left out on
/// purpose: they are done before the call ends and are no one's to-do.
const ACTION_VERBS: &[&str] = &[
    "send",
    "email",
    "e-mail",
    "mail",
    "call",
    "ring",
    "phone",
    "text",
    "message",
    "follow",
    "get",
    "check",
    "look",
    "escalate",
    "forward",
    "schedule",
    "book",
    "arrange",
    "process",
    "refund",
    "issue",
    "cancel",
    "update",
    "fix",
    "contact",
    "ship",
    "reset",
    "review",
    "confirm",
    "investigate",
    "set",
    "submit",
    "file",
    "raise",
    "open",
    "reach",
    "credit",
    "share",
    "prepare",
    "handle",
    "sort",
    "resolve",
    "waive",
    "activate",
    "replace",
    "order",
    "notify",
    "let",
    "remind",
    "add",
    "remove",
    "change",
    "apply",
    "reply",
    "respond",
    "visit",
    "come",
    "pay",
    "return",
    "provide",
    "log",
    "create",
    "write",
    "give",
    "expedite",
    "chase",
    "verify",
    "reissue",
    "renew",
    "upgrade",
    "install",
    "unlock",
    "release",
    "deliver",
    "post",
    "fax",
    "upload",
    "sign",
    "fill",
    "reschedule",
    "dispatch",
    "note",
    "put",
];
const NEGATIONS: &[&str] = &["not", "never", "no"];
/// Verbs of looking something up: "let me check your account" is done during the call and
/// is an action item only with a follow-up ("…and get back to you") or a due date.
const LOOK_UP_VERBS: &[&str] = &[
    "check",
    "look",
    "verify",
    "review",
    "confirm",
    "investigate",
];
/// Phrases that make a look-up a follow-up.
const FOLLOW_UP_MARKERS: &[&[&str]] = &[
    &["get", "back"],
    &["call", "back"],
    &["call", "you", "back"],
    &["call", "me", "back"],
    &["call", "us", "back"],
    &["back", "to", "you"],
    &["back", "to", "me"],
    &["let", "you", "know"],
    &["let", "me", "know"],
    &["follow", "up"],
    &["email"],
    &["send"],
    &["text"],
    &["update", "you"],
    &["update", "me"],
    &["reach", "out"],
    &["contact", "you"],
];

/// Finds the action items of a call, in time order (at most one per sentence).
pub fn extract_action_items(turns: &[Turn], options: &ActionOptions) -> Vec<ActionItem> {
    let mut items = Vec::new();
    for turn in turns {
        for span in split_sentences(&turn.text) {
            if let Some(item) = action_in_sentence(turn, span, options) {
                items.push(item);
            }
        }
    }
    items
}

fn other_side(role: Role) -> Role {
    match role {
        Role::Agent => Role::Customer,
        Role::Customer => Role::Agent,
        Role::Unknown => Role::Unknown,
    }
}

fn action_in_sentence(
    turn: &Turn,
    span: SentenceSpan,
    options: &ActionOptions,
) -> Option<ActionItem> {
    let sentence = turn.text.get(span.start..span.end)?;
    let words = words_lower(sentence);
    let is_question = sentence.trim_end().ends_with('?');
    let (kind, trigger, verb) = find_trigger(&words, is_question)?;
    let owner = match kind {
        ActionKind::Commitment => turn.role,
        ActionKind::Request => other_side(turn.role),
    };
    let time = span_time(turn, span);
    let said_at = options
        .call_start
        .checked_add_signed(TimeDelta::milliseconds(i64::try_from(time.start_ms).ok()?))?;
    let due = due::find_due(&due::due_tokens(sentence), said_at, options.date_order);
    if due.is_none() && done_during_the_call(&words, &verb) {
        return None;
    }
    Some(ActionItem {
        owner,
        said_by: turn.role,
        kind,
        text: sentence.to_string(),
        trigger,
        turn: turn.index,
        text_start: span.start,
        text_end: span.end,
        start_ms: time.start_ms,
        end_ms: time.end_ms,
        due,
    })
}

fn contains_phrase(words: &[String], phrase: &[&str]) -> bool {
    !phrase.is_empty()
        && words
            .windows(phrase.len())
            .any(|w| w.iter().zip(phrase).all(|(a, b)| a == b))
}

/// An action the sentence shows being done there and then: a look-up without a follow-up
/// ("let me check your account"), or anything done "now" / "right away" / "on hold".
fn done_during_the_call(words: &[String], verb: &str) -> bool {
    let follow_up = FOLLOW_UP_MARKERS.iter().any(|m| contains_phrase(words, m));
    let look_up = LOOK_UP_VERBS.contains(&verb);
    let immediate = contains_phrase(words, &["now"])
        || contains_phrase(words, &["on", "hold"])
        || contains_phrase(words, &["right", "away"])
        || contains_phrase(words, &["at", "the", "moment"]);
    (look_up && !follow_up) || immediate
}

/// The first action trigger among `words`: its kind, the normalised trigger words and the
/// action verb.
fn find_trigger(words: &[String], is_question: bool) -> Option<(ActionKind, String, String)> {
    for i in 0..words.len() {
        if let Some(after) = commitment_form_end(words, i) {
            // A commitment asked back as a question is not a commitment.
            if is_question {
                continue;
            }
            if let Some(verb_at) = action_verb_after(words, after) {
                return Some((
                    ActionKind::Commitment,
                    join(words, i, verb_at + 1),
                    verb_stem(word(words, verb_at)),
                ));
            }
        }
        let request_verb =
            request_form_end(words, i).and_then(|after| action_verb_after(words, after));
        if let Some(verb_at) = request_verb {
            return Some((
                ActionKind::Request,
                join(words, i, verb_at + 1),
                verb_stem(word(words, verb_at)),
            ));
        }
    }
    None
}

fn join(words: &[String], from: usize, to: usize) -> String {
    words.get(from..to).map(|w| w.join(" ")).unwrap_or_default()
}

fn word(words: &[String], i: usize) -> &str {
    words.get(i).map_or("", String::as_str)
}

/// If a first-person future starts at `i` ("i will", "i'll", "we are going to", "let me",
/// "our team will"), the index of the word after it.
fn commitment_form_end(words: &[String], i: usize) -> Option<usize> {
    let w = word(words, i);
    let next = word(words, i + 1);
    if CONTRACTED_FUTURE.contains(&w) {
        return Some(i + 1);
    }
    if w == "let" && matches!(next, "me" | "us") {
        return Some(i + 2);
    }
    if FIRST_PERSON.contains(&w) || OWN_SIDE_NOUNS.contains(&w) {
        if matches!(next, "will" | "shall") {
            return Some(i + 2);
        }
        if OWN_SIDE_NOUNS.contains(&w) && next == "is" && word(words, i + 2) == "going" {
            return (word(words, i + 3) == "to").then_some(i + 4);
        }
        if matches!(next, "am" | "are")
            && word(words, i + 2) == "going"
            && word(words, i + 3) == "to"
        {
            return Some(i + 4);
        }
        if matches!(next, "am" | "are") && word(words, i + 2) == "gonna" {
            return Some(i + 3);
        }
    }
    if matches!(w, "i'm" | "we're") {
        if next == "going" && word(words, i + 2) == "to" {
            return Some(i + 3);
        }
        if next == "gonna" {
            return Some(i + 2);
        }
    }
    // "you will receive / you'll get": a delivery the speaker's side promises.
    if (w == "you'll" || (w == "you" && next == "will"))
        && matches!(
            word(words, if w == "you" { i + 2 } else { i + 1 }),
            "receive" | "get"
        )
    {
        return Some(if w == "you" { i + 2 } else { i + 1 });
    }
    None
}

/// If a request to the other side starts at `i` ("can you", "could you please", "would you
/// mind", "please"), the index of the word after it.
fn request_form_end(words: &[String], i: usize) -> Option<usize> {
    let w = word(words, i);
    let next = word(words, i + 1);
    if matches!(w, "can" | "could" | "would" | "will") && next == "you" {
        if w == "would" && word(words, i + 2) == "mind" {
            return Some(i + 3);
        }
        return Some(i + 2);
    }
    // "if you could send…", "I need you to send…".
    if w == "you" && next == "could" && i > 0 && word(words, i - 1) == "if" {
        return Some(i + 2);
    }
    if matches!(w, "need" | "want") && next == "you" && word(words, i + 2) == "to" {
        return Some(i + 3);
    }
    // "please send me…" at the start of a clause (not "if you please").
    if w == "please"
        && (i == 0
            || matches!(
                word(words, i - 1),
                "so" | "and" | "but" | "then" | "ok" | "okay"
            ))
    {
        return Some(i + 1);
    }
    None
}

/// The index of the action verb after `from`, past filler words; none when a negation or
/// any other word comes first.
fn action_verb_after(words: &[String], from: usize) -> Option<usize> {
    let mut j = from;
    let mut fillers = 0;
    while let Some(w) = words.get(j) {
        let w = w.as_str();
        if NEGATIONS.contains(&w) {
            return None;
        }
        if is_action_verb(w) {
            // "you'll get": the future-delivery form names "get" as its verb already.
            return Some(j);
        }
        // "I'll make sure the fee is waived": a commitment to an outcome.
        if w == "make" && word(words, j + 1) == "sure" {
            return Some(j + 1);
        }
        // "I'll have someone from sales contact you": the verb comes a few words later.
        if w == "have" {
            return (j + 1..j + 7)
                .take_while(|&k| !NEGATIONS.contains(&word(words, k)))
                .find(|&k| is_action_verb(word(words, k)));
        }
        if FILLERS.contains(&w) && fillers < 4 {
            fillers += 1;
            j += 1;
            continue;
        }
        return None;
    }
    None
}

/// The action verb of `w`, without a gerund's "-ing" ("checking" → "check").
fn verb_stem(w: &str) -> String {
    if ACTION_VERBS.contains(&w) {
        return w.to_string();
    }
    w.strip_suffix("ing").unwrap_or(w).to_string()
}

fn is_action_verb(w: &str) -> bool {
    if ACTION_VERBS.contains(&w) || matches!(w, "receive") {
        return true;
    }
    // "would you mind sending…": the gerund of an action verb.
    w.strip_suffix("ing").is_some_and(|stem| {
        ACTION_VERBS.contains(&stem)
            || ACTION_VERBS.iter().any(|v| {
                v.len() > 2 && stem.len() + 1 == v.len() && v.starts_with(stem) && v.ends_with('e')
            })
    })
}

#[cfg(test)]
mod tests;

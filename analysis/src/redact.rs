//! Redaction of payment-card data (PCI) and, optionally, personal data (PII) from a
//! transcript.
//!
//! Card numbers are found the way people say them on a phone: written digits in any grouping
//! ("4111 1111-1111 1111"), spoken digits ("four one one one…", "double four", "oh" for
//! zero, "forty one", teens), with fillers ("uh", "um") in between, and split over
//! consecutive turns of the same speaker (a customer pausing while the agent says "mhm").
//! A run is a card when 13–19 of its digits, taken at word boundaries, pass the Luhn check.
//! Near a card (within a number of words, or of seconds after a keyword such as "CVV" or
//! "expires"), 3–4 digit codes and expiry dates are redacted too. Emails and phone numbers
//! are redacted when the configuration asks for it.
//!
//! The redacted text replaces each found span with `[PCI]` or `[PII]`, and timed words
//! inside a span are replaced the same way so the numbers do not survive in word timings.
//! Nothing here panics on any input; the work per turn is linear in its length.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::text::{TimeSource, Token, TurnTokens, interpolate};
use crate::types::{Role, TimeSpan, Turn};

/// Replacement for payment-card data.
pub const PCI_TAG: &str = "[PCI]";
/// Replacement for personal data.
pub const PII_TAG: &str = "[PII]";

/// What to redact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedactionConfig {
    /// Card numbers and the CVV/expiry said near them.
    pub cards: bool,
    pub emails: bool,
    pub phones: bool,
    /// A 3–4 digit code or an expiry date this many words (tokens, across turns) from a card
    /// number is redacted.
    pub context_words: usize,
    /// …or this many milliseconds from it when a keyword ("CVV", "security code",
    /// "expires"…) comes just before it.
    pub context_ms: u64,
    /// A card number continues into the same speaker's next turn when it starts at most this
    /// long after the previous one ended.
    pub split_gap_ms: u64,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            cards: true,
            emails: false,
            phones: false,
            context_words: 20,
            context_ms: 30_000,
            split_gap_ms: 15_000,
        }
    }
}

/// What a redacted span was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RedactionKind {
    CardNumber,
    Cvv,
    Expiry,
    Email,
    Phone,
}

impl RedactionKind {
    /// The tag that replaces it in the text.
    pub fn tag(self) -> &'static str {
        match self {
            RedactionKind::CardNumber | RedactionKind::Cvv | RedactionKind::Expiry => PCI_TAG,
            RedactionKind::Email | RedactionKind::Phone => PII_TAG,
        }
    }
}

/// One redacted span. Deliberately without the redacted text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    /// `Turn::index` of the turn.
    pub turn: usize,
    pub kind: RedactionKind,
    pub start_ms: u64,
    pub end_ms: u64,
    pub time_source: TimeSource,
}

/// The redacted transcript and what was taken out of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redacted {
    pub turns: Vec<Turn>,
    /// In turn order, then text order.
    pub redactions: Vec<Redaction>,
}

/// Redacts `turns` as `config` asks.
pub fn redact(turns: &[Turn], config: &RedactionConfig) -> Redacted {
    let analysed: Vec<AnalysedTurn> = turns.iter().map(AnalysedTurn::new).collect();
    let mut marks: Vec<Vec<Mark>> = vec![Vec::new(); turns.len()];
    let mut taken: Vec<Vec<bool>> = analysed
        .iter()
        .map(|a| vec![false; a.tokens.tokens.len()])
        .collect();

    if config.cards {
        let cards = find_cards(turns, &analysed, config, &mut marks, &mut taken);
        if !cards.is_empty() {
            find_card_context(turns, &analysed, config, &cards, &mut marks, &mut taken);
        }
    }
    if config.phones {
        find_phones(&analysed, &mut marks, &mut taken);
    }
    if config.emails {
        for (pos, turn) in turns.iter().enumerate() {
            let found = find_emails(&turn.text, &analysed[pos].tokens.tokens);
            if let Some(m) = marks.get_mut(pos) {
                m.extend(found);
            }
        }
    }

    let mut out_turns = Vec::with_capacity(turns.len());
    let mut redactions = Vec::new();
    for ((turn, analysed), turn_marks) in turns.iter().zip(&analysed).zip(marks) {
        let merged = merge_marks(turn_marks);
        let mut spans = Vec::with_capacity(merged.len());
        for m in &merged {
            let (span, time_source) = time_of_bytes(turn, &analysed.tokens, m.start, m.end);
            spans.push(span);
            redactions.push(Redaction {
                turn: turn.index,
                kind: m.kind,
                start_ms: span.start_ms,
                end_ms: span.end_ms,
                time_source,
            });
        }
        out_turns.push(apply_marks(turn, &analysed.tokens, &merged, &spans));
    }
    Redacted {
        turns: out_turns,
        redactions,
    }
}

/// A span of a turn's text to replace (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    start: usize,
    end: usize,
    kind: RedactionKind,
}

/// A number said or written: one or more tokens standing for some digits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NumberItem {
    first: usize,
    last: usize,
    digits: Vec<u8>,
    /// A month name ("December"): part of an expiry, never of a card number.
    month: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Number(NumberItem),
    /// A word that ends a number ("and", "my", anything not a number or a filler).
    Break,
}

struct AnalysedTurn {
    tokens: TurnTokens,
    pieces: Vec<Piece>,
}

impl AnalysedTurn {
    fn new(turn: &Turn) -> Self {
        let tokens = TurnTokens::new(turn);
        let pieces = number_pieces(&tokens.tokens);
        AnalysedTurn { tokens, pieces }
    }
}

fn digit_value(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        // Arabic-Indic and Extended Arabic-Indic digits (NFKD leaves them as they are).
        '\u{0660}'..='\u{0669}' => Some((c as u32 - 0x0660) as u8),
        '\u{06F0}'..='\u{06F9}' => Some((c as u32 - 0x06F0) as u8),
        _ => None,
    }
}

fn written_digits(norm: &str) -> Option<Vec<u8>> {
    let digits: Option<Vec<u8>> = norm.chars().map(digit_value).collect();
    digits.filter(|d| !d.is_empty())
}

/// A digit said as a word: English, and Arabic (normalized spelling, see
/// [`crate::text::normalize`]: teh marbuta as heh, bare alef), with the colloquial forms
/// callers use when reading a card out.
fn unit_word(w: &str) -> Option<u8> {
    Some(match w {
        "zero" | "oh" | "o" | "nought" | "صفر" => 0,
        "one" | "واحد" => 1,
        "two" | "اثنان" | "اثنين" | "اتنين" => 2,
        "three" | "ثلاثه" | "ثلاث" | "تلاته" | "تلات" => 3,
        "four" | "اربعه" | "اربع" => 4,
        "five" | "خمسه" | "خمس" => 5,
        "six" | "سته" | "ست" => 6,
        "seven" | "سبعه" | "سبع" => 7,
        "eight" | "ثمانيه" | "ثماني" | "تمانيه" | "ثمان" => 8,
        "nine" | "تسعه" | "تسع" => 9,
        _ => return None,
    })
}

fn teen_word(w: &str) -> Option<u8> {
    Some(match w {
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    })
}

fn tens_word(w: &str) -> Option<u8> {
    Some(match w {
        "twenty" => 2,
        "thirty" => 3,
        "forty" | "fourty" => 4,
        "fifty" => 5,
        "sixty" => 6,
        "seventy" => 7,
        "eighty" => 8,
        "ninety" => 9,
        _ => return None,
    })
}

fn month_word(w: &str) -> Option<u8> {
    Some(match w {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "may" => 5,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sep" | "sept" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    })
}

fn is_filler(w: &str) -> bool {
    matches!(w, "uh" | "um" | "umm" | "er" | "erm" | "ah" | "hmm" | "mm")
}

/// Words that announce a CVV or an expiry date.
fn is_context_keyword(w: &str) -> bool {
    matches!(
        w,
        "cvv"
            | "cvv2"
            | "cvc"
            | "cvc2"
            | "cv2"
            | "csc"
            | "security"
            | "code"
            | "expiry"
            | "expires"
            | "expire"
            | "expiration"
            | "exp"
            | "valid"
            | "thru"
            | "through"
    )
}

fn is_expiry_keyword(w: &str) -> bool {
    matches!(
        w,
        "expiry" | "expires" | "expire" | "expiration" | "exp" | "valid" | "thru" | "through"
    )
}

fn single_digit(token: &Token) -> Option<u8> {
    unit_word(&token.norm).or_else(|| match written_digits(&token.norm).as_deref() {
        Some([d]) => Some(*d),
        _ => None,
    })
}

/// Reads a turn's tokens as numbers and breaks.
fn number_pieces(tokens: &[Token]) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while let Some(token) = tokens.get(i) {
        let w = token.norm.as_str();
        let next = tokens.get(i + 1);
        let item = |last: usize, digits: Vec<u8>, month: bool| {
            Piece::Number(NumberItem {
                first: i,
                last,
                digits,
                month,
            })
        };
        let (piece, used) = if is_filler(w) {
            i += 1;
            continue;
        } else if let Some(d) = written_digits(w) {
            (item(i, d, false), 1)
        } else if let Some(d) = unit_word(w) {
            (item(i, vec![d], false), 1)
        } else if let Some(n) = teen_word(w) {
            (item(i, vec![n / 10, n % 10], false), 1)
        } else if let Some(t) = tens_word(w) {
            match next.and_then(|n| unit_word(&n.norm)).filter(|u| *u > 0) {
                Some(u) => (item(i + 1, vec![t, u], false), 2),
                None => (item(i, vec![t, 0], false), 1),
            }
        } else if let Some(times) = match w {
            "double" => Some(2),
            "triple" => Some(3),
            _ => None,
        } {
            match next.and_then(single_digit) {
                Some(d) => (item(i + 1, vec![d; times], false), 2),
                None => (Piece::Break, 1),
            }
        } else if let Some(m) = month_word(w) {
            (item(i, vec![m / 10, m % 10], true), 1)
        } else {
            (Piece::Break, 1)
        };
        pieces.push(piece);
        i += used;
    }
    pieces
}

fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10) && digits.iter().any(|d| *d != 0)
}

/// Where a card number was found: global token positions and time.
struct CardPlace {
    first_global: usize,
    last_global: usize,
    span: TimeSpan,
}

/// A speaker: role and display label.
type SpeakerKey<'a> = (Role, &'a str);
/// A speaker's numbers and breaks in call order, and when the speaker last stopped talking.
type SpeakerStream = (Vec<Option<StreamItem>>, u64);

#[derive(Clone)]
struct StreamItem {
    turn_pos: usize,
    item: NumberItem,
}

fn find_cards(
    turns: &[Turn],
    analysed: &[AnalysedTurn],
    config: &RedactionConfig,
    marks: &mut [Vec<Mark>],
    taken: &mut [Vec<bool>],
) -> Vec<CardPlace> {
    let offsets = global_offsets(analysed);
    // One stream of numbers per speaker, so a card split by another speaker's "mhm" is
    // still one run.
    let mut streams: HashMap<SpeakerKey, SpeakerStream> = HashMap::new();
    let mut order: Vec<SpeakerKey> = Vec::new();
    for (pos, (turn, a)) in turns.iter().zip(analysed).enumerate() {
        let key = (turn.role, turn.speaker.as_str());
        let entry = streams.entry(key).or_insert_with(|| {
            order.push(key);
            (Vec::new(), turn.start_ms)
        });
        let (stream, last_end) = entry;
        if turn.start_ms.saturating_sub(*last_end) > config.split_gap_ms {
            stream.push(None);
        }
        for piece in &a.pieces {
            match piece {
                Piece::Number(item) if !item.month => stream.push(Some(StreamItem {
                    turn_pos: pos,
                    item: item.clone(),
                })),
                _ => stream.push(None),
            }
        }
        *last_end = (*last_end).max(turn.end_ms);
    }

    let mut cards = Vec::new();
    for key in order {
        let Some((stream, _)) = streams.get(&key) else {
            continue;
        };
        for run in stream.split(Option::is_none) {
            let items: Vec<&StreamItem> = run.iter().flatten().collect();
            for window in card_windows(&items) {
                let Some(parts) = items.get(window.0..=window.1) else {
                    continue;
                };
                cards.extend(mark_window(
                    turns,
                    analysed,
                    &offsets,
                    parts,
                    RedactionKind::CardNumber,
                    marks,
                    taken,
                ));
            }
        }
    }
    cards
}

/// Item ranges (inclusive) of a run that are card numbers: leftmost first, longest first.
fn card_windows(items: &[&StreamItem]) -> Vec<(usize, usize)> {
    let mut windows = Vec::new();
    let mut i = 0;
    'start: while i < items.len() {
        let mut digits: Vec<u8> = Vec::new();
        let mut candidates = Vec::new();
        // An item has at least one digit, so 19 items bound a card.
        for (j, item) in items.iter().enumerate().skip(i).take(19) {
            digits.extend_from_slice(&item.item.digits);
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13 && luhn_valid(&digits) {
                candidates.push(j);
            }
        }
        if let Some(&j) = candidates.last() {
            windows.push((i, j));
            i = j + 1;
            continue 'start;
        }
        i += 1;
    }
    windows
}

fn global_offsets(analysed: &[AnalysedTurn]) -> Vec<usize> {
    let mut offsets = Vec::with_capacity(analysed.len());
    let mut total = 0usize;
    for a in analysed {
        offsets.push(total);
        total += a.tokens.tokens.len();
    }
    offsets
}

/// Marks the items of one found number (possibly over several turns): one mark per turn.
/// Returns its place for each turn part (for proximity to CVV/expiry).
fn mark_window(
    turns: &[Turn],
    analysed: &[AnalysedTurn],
    offsets: &[usize],
    parts: &[&StreamItem],
    kind: RedactionKind,
    marks: &mut [Vec<Mark>],
    taken: &mut [Vec<bool>],
) -> Vec<CardPlace> {
    let mut places = Vec::new();
    let mut i = 0;
    while let Some(first) = parts.get(i) {
        let pos = first.turn_pos;
        let mut last = first;
        while let Some(next) = parts.get(i + 1).filter(|p| p.turn_pos == pos) {
            last = next;
            i += 1;
        }
        i += 1;
        let (Some(turn), Some(a)) = (turns.get(pos), analysed.get(pos)) else {
            continue;
        };
        let (ft, lt) = (first.item.first, last.item.last);
        let (Some(start_tok), Some(end_tok)) = (a.tokens.tokens.get(ft), a.tokens.tokens.get(lt))
        else {
            continue;
        };
        if let Some(m) = marks.get_mut(pos) {
            m.push(Mark {
                start: start_tok.start,
                end: end_tok.end,
                kind,
            });
        }
        if let Some(t) = taken.get_mut(pos) {
            for flag in t.iter_mut().take(lt + 1).skip(ft) {
                *flag = true;
            }
        }
        let base = offsets.get(pos).copied().unwrap_or(0);
        let (span, _) = a.tokens.time_of_tokens(turn, ft, lt);
        places.push(CardPlace {
            first_global: base + ft,
            last_global: base + lt,
            span,
        });
    }
    places
}

/// Runs of not-yet-redacted numbers within one turn.
fn turn_runs(a: &AnalysedTurn, taken: &[bool], with_months: bool) -> Vec<Vec<NumberItem>> {
    let mut runs = Vec::new();
    let mut run: Vec<NumberItem> = Vec::new();
    for piece in &a.pieces {
        let usable = match piece {
            Piece::Number(item) => {
                let free = !taken
                    .get(item.first..=item.last)
                    .is_some_and(|t| t.contains(&true));
                (free && (with_months || !item.month)).then_some(item)
            }
            Piece::Break => None,
        };
        match usable {
            Some(item) => run.push(item.clone()),
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

fn find_card_context(
    turns: &[Turn],
    analysed: &[AnalysedTurn],
    config: &RedactionConfig,
    cards: &[CardPlace],
    marks: &mut [Vec<Mark>],
    taken: &mut [Vec<bool>],
) {
    let offsets = global_offsets(analysed);
    for (pos, (turn, a)) in turns.iter().zip(analysed).enumerate() {
        let base = offsets.get(pos).copied().unwrap_or(0);
        let runs = turn_runs(a, taken.get(pos).map(Vec::as_slice).unwrap_or(&[]), true);
        for run in runs {
            let (Some(first), Some(last)) = (run.first(), run.last()) else {
                continue;
            };
            let digits: usize = run.iter().map(|i| i.digits.len()).sum();
            let has_month = run.iter().any(|i| i.month);
            let before: Vec<&str> = (first.first.saturating_sub(4)..first.first)
                .filter_map(|t| a.tokens.tokens.get(t).map(|t| t.norm.as_str()))
                .collect();
            let keyword = before.iter().any(|w| is_context_keyword(w));
            let expiry_keyword = before.iter().any(|w| is_expiry_keyword(w));
            let between = match (
                a.tokens.tokens.get(first.first),
                a.tokens.tokens.get(last.last),
            ) {
                (Some(s), Some(e)) => turn.text.get(s.start..e.end).unwrap_or(""),
                _ => "",
            };
            let slash = between.contains('/');
            let spoken_month_year = run.len() == 2
                && first.digits.len() <= 2
                && (1..=12).contains(&digits_value(&first.digits))
                && matches!(last.digits.len(), 2 | 4)
                && digits == first.digits.len() + last.digits.len();
            let expiry_like = has_month || expiry_keyword || slash;
            let qualifies = (3..=4).contains(&digits) || ((5..=6).contains(&digits) && expiry_like);
            if !qualifies || (has_month && run.len() < 2) {
                continue;
            }
            let (g_first, g_last) = (base + first.first, base + last.last);
            let (span, _) = a.tokens.time_of_tokens(turn, first.first, last.last);
            let near = cards.iter().any(|c| {
                let words_apart = if g_last < c.first_global {
                    c.first_global - g_last
                } else {
                    g_first.saturating_sub(c.last_global)
                };
                let ms_apart = if span.end_ms < c.span.start_ms {
                    c.span.start_ms - span.end_ms
                } else {
                    span.start_ms.saturating_sub(c.span.end_ms)
                };
                words_apart <= config.context_words || (keyword && ms_apart <= config.context_ms)
            });
            if !near {
                continue;
            }
            let kind = if expiry_like || spoken_month_year {
                RedactionKind::Expiry
            } else {
                RedactionKind::Cvv
            };
            let (Some(s), Some(e)) = (
                a.tokens.tokens.get(first.first),
                a.tokens.tokens.get(last.last),
            ) else {
                continue;
            };
            if let Some(m) = marks.get_mut(pos) {
                m.push(Mark {
                    start: s.start,
                    end: e.end,
                    kind,
                });
            }
            if let Some(t) = taken.get_mut(pos) {
                for flag in t.iter_mut().take(last.last + 1).skip(first.first) {
                    *flag = true;
                }
            }
        }
    }
}

fn digits_value(digits: &[u8]) -> u64 {
    digits
        .iter()
        .take(18)
        .fold(0u64, |acc, d| acc * 10 + u64::from(*d))
}

/// Phone numbers: 7–15 digits in one turn (written or spoken) not already redacted.
fn find_phones(analysed: &[AnalysedTurn], marks: &mut [Vec<Mark>], taken: &mut [Vec<bool>]) {
    for (pos, a) in analysed.iter().enumerate() {
        let runs = turn_runs(a, taken.get(pos).map(Vec::as_slice).unwrap_or(&[]), false);
        for run in runs {
            let digits: usize = run.iter().map(|i| i.digits.len()).sum();
            let (Some(first), Some(last)) = (run.first(), run.last()) else {
                continue;
            };
            if !(7..=15).contains(&digits) {
                continue;
            }
            let (Some(s), Some(e)) = (
                a.tokens.tokens.get(first.first),
                a.tokens.tokens.get(last.last),
            ) else {
                continue;
            };
            if let Some(m) = marks.get_mut(pos) {
                m.push(Mark {
                    start: s.start,
                    end: e.end,
                    kind: RedactionKind::Phone,
                });
            }
            if let Some(t) = taken.get_mut(pos) {
                for flag in t.iter_mut().take(last.last + 1).skip(first.first) {
                    *flag = true;
                }
            }
        }
    }
}

const SPOKEN_TLDS: &[&str] = &[
    "com", "net", "org", "edu", "gov", "io", "co", "uk", "us", "ca", "de", "fr", "info", "biz",
    "me", "ai", "app", "au", "in",
];

/// Emails written ("jane.doe@example.com") or spoken ("jane dot doe at example dot com").
fn find_emails(text: &str, tokens: &[Token]) -> Vec<Mark> {
    let mut marks = Vec::new();
    let bytes = text.as_bytes();
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b".-".contains(&b);
    for (at, _) in text.match_indices('@') {
        let mut start = at;
        while start > 0 && bytes.get(start - 1).copied().is_some_and(local) {
            start -= 1;
        }
        let mut end = at + 1;
        while bytes.get(end).copied().is_some_and(domain) {
            end += 1;
        }
        while end > at + 1 && bytes.get(end - 1).is_some_and(|b| b"._-".contains(b)) {
            end -= 1;
        }
        let host = text.get(at + 1..end).unwrap_or("");
        let tld_ok = host.rsplit_once('.').is_some_and(|(name, tld)| {
            !name.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if start < at && tld_ok {
            marks.push(Mark {
                start,
                end,
                kind: RedactionKind::Email,
            });
        }
    }
    // Spoken: name (dot name)* at host (dot host)* dot tld — or a host token already
    // written with dots ("gmail.com").
    for (k, token) in tokens.iter().enumerate() {
        if token.norm != "at" || k == 0 {
            continue;
        }
        let mut first = k - 1;
        while first >= 2
            && tokens
                .get(first - 1)
                .is_some_and(|t| matches!(t.norm.as_str(), "dot" | "underscore"))
        {
            first -= 2;
        }
        let mut last = None;
        let mut j = k + 1;
        if let Some(host) = tokens.get(j) {
            if host
                .norm
                .rsplit_once('.')
                .is_some_and(|(_, tld)| SPOKEN_TLDS.contains(&tld))
            {
                last = Some(j);
            }
            while tokens.get(j + 1).is_some_and(|t| t.norm == "dot") {
                let Some(next) = tokens.get(j + 2) else {
                    break;
                };
                j += 2;
                if SPOKEN_TLDS.contains(&next.norm.as_str()) {
                    last = Some(j);
                }
            }
        }
        if let (Some(last), Some(s)) = (last, tokens.get(first))
            && let Some(e) = tokens.get(last)
        {
            marks.push(Mark {
                start: s.start,
                end: e.end,
                kind: RedactionKind::Email,
            });
        }
    }
    marks
}

/// Sorts and merges overlapping marks; where kinds differ, the earlier kind in
/// [`RedactionKind`] order (card data first) names the merged span.
fn merge_marks(mut marks: Vec<Mark>) -> Vec<Mark> {
    marks.sort_by_key(|m| (m.start, m.end));
    let mut merged: Vec<Mark> = Vec::with_capacity(marks.len());
    for m in marks {
        match merged.last_mut() {
            Some(prev) if m.start < prev.end => {
                prev.end = prev.end.max(m.end);
                prev.kind = prev.kind.min(m.kind);
            }
            _ => merged.push(m),
        }
    }
    merged
}

fn time_of_bytes(
    turn: &Turn,
    tokens: &TurnTokens,
    start: usize,
    end: usize,
) -> (TimeSpan, TimeSource) {
    let first = tokens.tokens.iter().position(|t| t.end > start);
    let last = tokens.tokens.iter().rposition(|t| t.start < end);
    match (first, last) {
        (Some(f), Some(l)) if f <= l => tokens.time_of_tokens(turn, f, l),
        _ => (interpolate(turn, start, end), TimeSource::Interpolated),
    }
}

fn apply_marks(turn: &Turn, tokens: &TurnTokens, marks: &[Mark], spans: &[TimeSpan]) -> Turn {
    let mut out = turn.clone();
    if marks.is_empty() {
        return out;
    }
    let mut text = String::with_capacity(turn.text.len());
    let mut at = 0usize;
    for m in marks {
        text.push_str(turn.text.get(at..m.start).unwrap_or(""));
        text.push_str(m.kind.tag());
        at = m.end;
    }
    text.push_str(turn.text.get(at..).unwrap_or(""));
    out.text = text;

    // Timed words: a word goes when one of its tokens lies in a mark, or, when it could not
    // be tied to the text, when it overlaps a redacted time (losing a word beats leaking a
    // card number).
    let mut word_tag: Vec<Option<&'static str>> = vec![None; turn.words.len()];
    for (token, word) in tokens.tokens.iter().zip(&tokens.word_of_token) {
        if let Some(wi) = word
            && let Some(m) = marks
                .iter()
                .find(|m| token.start < m.end && token.end > m.start)
            && let Some(slot) = word_tag.get_mut(*wi)
        {
            *slot = Some(m.kind.tag());
        }
    }
    let aligned: Vec<bool> = (0..turn.words.len())
        .map(|wi| tokens.word_of_token.contains(&Some(wi)))
        .collect();
    for (wi, word) in out.words.iter_mut().enumerate() {
        let overlapping = marks.iter().zip(spans).find(|(_, s)| {
            word.start_ms < s.end_ms.max(s.start_ms.saturating_add(1)) && word.end_ms > s.start_ms
        });
        let tag = match (word_tag.get(wi).copied().flatten(), aligned.get(wi)) {
            (Some(tag), _) => Some(tag),
            (None, Some(false)) => overlapping.map(|(m, _)| m.kind.tag()),
            _ => None,
        };
        if let Some(tag) = tag {
            word.text = tag.to_string();
        }
    }
    out
}

#[cfg(test)]
mod tests;

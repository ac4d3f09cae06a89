//! Extractive call summary: the few sentences a reviewer should read first, the customer's
//! reason for calling and the agent's resolution.
//!
//! Each sentence is scored from what the call itself says is important: its content words
//! weighted by TF-IDF over the call's sentences (words the call keeps coming back to, but
//! not words every sentence has), its position (calls state their purpose early and their
//! outcome late), signals the caller passes in (tracker hits, rule flags on its turn),
//! issue cues ("not working", "charged twice") and a length factor. The reason for the call
//! and the resolution are always kept; the rest are the best-scored, in call order.
//! Deterministic: ties go to the earlier sentence.

pub(crate) mod units;
mod words;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actions::{ActionKind, ActionOptions, DateOrder, extract_action_items};
use crate::types::{Role, Turn};
use units::{SentenceSpan, span_time, split_sentences, words_lower};
use words::{
    has_issue_cue, has_outcome_cue, has_request_cue, has_satisfied_cue, has_unresolved_cue,
    is_formula, is_pleasantry_only, is_stopword, strip_lead_in,
};

/// Something another analyser found on a turn that makes it worth summarising: a tracker
/// hit, a rule flag, a strong sentiment. Decoupled from those analysers' own types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummarySignal {
    pub turn: usize,
    /// How much it matters; negative or non-finite weights are ignored, weights above 1000
    /// count as 1000.
    pub weight: f32,
    /// Where it comes from ("tracker:pricing", "rule:recording-disclosure").
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryOptions {
    /// How many sentences the summary keeps at most (the reason and resolution included).
    pub max_sentences: usize,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions { max_sentences: 5 }
    }
}

/// Why a sentence is in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentenceTag {
    /// The customer's first substantive request.
    ReasonForCall,
    /// The agent's last commitment or outcome.
    Resolution,
    /// States a problem ("it's still not working", "I was charged twice").
    KeyIssue,
    /// Its turn carries tracker/rule signals.
    Signal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummarySentence {
    pub turn: usize,
    pub role: Role,
    pub speaker: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// Importance in [0, 1] (the ordering among candidates).
    pub score: f32,
    pub tags: Vec<SentenceTag>,
}

/// How a summary was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryMethod {
    Extractive,
    /// A language model wrote `abstractive`; the extractive sentences are still there.
    Abstractive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub method: SummaryMethod,
    /// One line: why the customer called.
    pub reason_for_call: Option<String>,
    /// One line: how the call ended for the customer.
    pub resolution: Option<String>,
    /// The key sentences, in call order.
    pub sentences: Vec<SummarySentence>,
    /// A model-written summary, when a language model was used.
    pub abstractive: Option<String>,
}

/// Largest weight one signal counts with: keeps the sums finite.
const MAX_SIGNAL_WEIGHT: f32 = 1_000.0;

/// Longest one-line reason or resolution, in characters.
const ONE_LINE_MAX_CHARS: usize = 160;

/// A sentence of the call with what scoring needs.
struct Candidate<'a> {
    turn: &'a Turn,
    span: SentenceSpan,
    text: &'a str,
    words: Vec<String>,
    content: BTreeSet<String>,
    /// Position among all sentences of the call, 0-based.
    ordinal: usize,
    substantive: bool,
}

/// The extractive summary of a call.
pub fn extractive_summary(
    turns: &[Turn],
    signals: &[SummarySignal],
    options: &SummaryOptions,
) -> Summary {
    let candidates = candidates(turns);
    let reason = reason_for_call(&candidates);
    let resolution = resolution(turns, &candidates);
    let scores = score(&candidates, signals);
    let signal_turns: BTreeSet<usize> = signals
        .iter()
        .filter(|s| s.weight.is_finite() && s.weight > 0.0)
        .map(|s| s.turn)
        .collect();

    let mut chosen: Vec<usize> = Vec::new();
    for must in [reason, resolution].into_iter().flatten() {
        if !chosen.contains(&must) && chosen.len() < options.max_sentences {
            chosen.push(must);
        }
    }
    let mut ranked: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates.get(i).is_some_and(|c| c.substantive))
        .collect();
    ranked.sort_by(|&a, &b| {
        let sa = scores.get(a).copied().unwrap_or(0.0);
        let sb = scores.get(b).copied().unwrap_or(0.0);
        sb.total_cmp(&sa).then(a.cmp(&b))
    });
    for i in ranked {
        if chosen.len() >= options.max_sentences {
            break;
        }
        if chosen.contains(&i) || chosen.iter().any(|&c| near_duplicate(&candidates, c, i)) {
            continue;
        }
        chosen.push(i);
    }
    chosen.sort_unstable();

    let sentences = chosen
        .iter()
        .filter_map(|&i| {
            let c = candidates.get(i)?;
            let mut tags = Vec::new();
            if Some(i) == reason {
                tags.push(SentenceTag::ReasonForCall);
            }
            if Some(i) == resolution {
                tags.push(SentenceTag::Resolution);
            }
            if has_issue_cue(&c.words) {
                tags.push(SentenceTag::KeyIssue);
            }
            if signal_turns.contains(&c.turn.index) {
                tags.push(SentenceTag::Signal);
            }
            let time = span_time(c.turn, c.span);
            Some(SummarySentence {
                turn: c.turn.index,
                role: c.turn.role,
                speaker: c.turn.speaker.clone(),
                start_ms: time.start_ms,
                end_ms: time.end_ms,
                text: c.text.to_string(),
                score: scores.get(i).copied().unwrap_or(0.0),
                tags,
            })
        })
        .collect();

    Summary {
        method: SummaryMethod::Extractive,
        reason_for_call: reason
            .and_then(|i| candidates.get(i))
            .map(|c| capitalise_first(&one_line(strip_lead_in(c.text)))),
        resolution: resolution
            .and_then(|i| candidates.get(i))
            .map(|c| one_line(c.text)),
        sentences,
        abstractive: None,
    }
}

/// A rule-based estimate of how resolved the call is, in [0, 1] (the default when no
/// language model gives a resolution score), two decimals: 0.5, raised by an agent's
/// outcome ("your refund has been processed") or follow-up commitment in the last part of
/// the call and by a satisfied customer after it ("that fixed it", "thanks"), lowered by a
/// customer still unhappy after it ("it's still not working", "I want to cancel"). `None`
/// without both agent and customer speech.
pub fn resolution_estimate(turns: &[Turn]) -> Option<f32> {
    let candidates = candidates(turns);
    let has = |role: Role| candidates.iter().any(|c| c.turn.role == role);
    if !has(Role::Agent) || !has(Role::Customer) {
        return None;
    }
    // The last 40 % of the call's sentences is where the outcome is said; what the customer
    // says after the agent's last outcome or commitment tells whether it satisfied them.
    let tail_from = candidates.len() * 3 / 5;
    let last_outcome = resolution(turns, &candidates);
    let tail = candidates.get(tail_from..).unwrap_or(&[]);
    let agent_outcome = tail
        .iter()
        .any(|c| c.turn.role == Role::Agent && has_outcome_cue(&c.words));
    let agent_commitment = last_outcome.is_some_and(|i| i >= tail_from);
    let reaction_from = last_outcome.map_or(tail_from, |i| tail_from.max(i + 1));
    let reaction: Vec<&Candidate<'_>> = candidates
        .get(reaction_from..)
        .unwrap_or(&[])
        .iter()
        .filter(|c| c.turn.role == Role::Customer)
        .collect();
    let unresolved = reaction.iter().any(|c| has_unresolved_cue(&c.words));
    let satisfied = reaction
        .iter()
        .rev()
        .take(3)
        .any(|c| has_satisfied_cue(&c.words));
    let mut score: f32 = 0.5;
    if agent_outcome {
        score += 0.25;
    } else if agent_commitment {
        score += 0.1;
    }
    if satisfied {
        score += 0.15;
    }
    if unresolved {
        score -= 0.4;
    }
    Some((score.clamp(0.0, 1.0) * 100.0).round() / 100.0)
}

fn candidates(turns: &[Turn]) -> Vec<Candidate<'_>> {
    let mut out = Vec::new();
    for turn in turns {
        for span in split_sentences(&turn.text) {
            let Some(text) = turn.text.get(span.start..span.end) else {
                continue;
            };
            let words = words_lower(text);
            let content: BTreeSet<String> =
                words.iter().filter(|w| !is_stopword(w)).cloned().collect();
            // A sentence of a non-spaced script (Chinese, Japanese) is one "word" long but
            // can say plenty: count its characters instead.
            let long_enough =
                words.len() >= 3 || text.chars().filter(|c| !c.is_ascii()).count() >= 6;
            let substantive = long_enough
                && !content.is_empty()
                && !is_pleasantry_only(&words)
                && !is_formula(&words);
            out.push(Candidate {
                turn,
                span,
                text,
                words,
                content,
                ordinal: out.len(),
                substantive,
            });
        }
    }
    out
}

/// The customer's first substantive request; the first substantive customer sentence when
/// none sounds like a request. Calls without a customer role use unknown-role speech.
fn reason_for_call(candidates: &[Candidate<'_>]) -> Option<usize> {
    let role = if candidates.iter().any(|c| c.turn.role == Role::Customer) {
        Role::Customer
    } else {
        Role::Unknown
    };
    let of_role = || {
        candidates
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.turn.role == role && c.substantive)
    };
    of_role()
        .find(|(_, c)| has_request_cue(&c.words) || has_issue_cue(&c.words))
        .or_else(|| of_role().next())
        .map(|(i, _)| i)
}

/// The agent's last commitment or outcome sentence, ignoring the closing pleasantries.
fn resolution(turns: &[Turn], candidates: &[Candidate<'_>]) -> Option<usize> {
    let options = ActionOptions {
        call_start: DateTime::<Utc>::UNIX_EPOCH,
        date_order: DateOrder::MonthFirst,
    };
    let last_commitment = extract_action_items(turns, &options)
        .into_iter()
        .rfind(|a| a.said_by == Role::Agent && a.kind == ActionKind::Commitment)
        .and_then(|a| {
            candidates
                .iter()
                .position(|c| c.turn.index == a.turn && c.span.start == a.text_start)
        });
    let last_outcome = candidates
        .iter()
        .enumerate()
        .rev()
        .find(|(_, c)| c.turn.role == Role::Agent && c.substantive && has_outcome_cue(&c.words))
        .map(|(i, _)| i);
    match (last_commitment, last_outcome) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Importance of each candidate in [0, 1].
fn score(candidates: &[Candidate<'_>], signals: &[SummarySignal]) -> Vec<f32> {
    let n = candidates.len();
    if n == 0 {
        return Vec::new();
    }
    // Document frequency over sentences and term frequency over the call.
    let mut df: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tf: BTreeMap<&str, usize> = BTreeMap::new();
    for c in candidates {
        for w in &c.content {
            *df.entry(w.as_str()).or_default() += 1;
        }
        for w in c.words.iter().filter(|w| !is_stopword(w)) {
            *tf.entry(w.as_str()).or_default() += 1;
        }
    }
    let weight = |w: &str| -> f32 {
        let df = df.get(w).copied().unwrap_or(1).max(1) as f32;
        let tf = tf.get(w).copied().unwrap_or(0) as f32;
        tf * ((n as f32 / df).ln() + 1.0)
    };
    let content: Vec<f32> = candidates
        .iter()
        .map(|c| {
            if c.content.is_empty() {
                return 0.0;
            }
            let sum: f32 = c.content.iter().map(|w| weight(w)).sum();
            sum / (c.content.len() as f32).sqrt()
        })
        .collect();
    let max_content = content.iter().copied().fold(0.0f32, f32::max);

    let mut per_turn: BTreeMap<usize, f32> = BTreeMap::new();
    for s in signals
        .iter()
        .filter(|s| s.weight.is_finite() && s.weight > 0.0)
    {
        *per_turn.entry(s.turn).or_default() += s.weight.min(MAX_SIGNAL_WEIGHT);
    }
    let max_signal = per_turn.values().copied().fold(0.0f32, f32::max);

    candidates
        .iter()
        .zip(&content)
        .map(|(c, &content)| {
            let content = if max_content > 0.0 {
                content / max_content
            } else {
                0.0
            };
            let p = if n > 1 {
                c.ordinal as f32 / (n - 1) as f32
            } else {
                0.0
            };
            let position = (1.0 - 5.0 * p).max(0.0) + 0.6 * (1.0 - 5.0 * (1.0 - p)).max(0.0);
            let signal = if max_signal > 0.0 {
                per_turn.get(&c.turn.index).copied().unwrap_or(0.0) / max_signal
            } else {
                0.0
            };
            let cue = if has_issue_cue(&c.words) { 1.0 } else { 0.0 };
            let length = match c.words.len() {
                0..=2 => 0.3,
                3..=5 => 0.6,
                6..=35 => 1.0,
                _ => 0.7,
            };
            let raw = 0.45 * content + 0.2 * position + 0.2 * signal + 0.15 * cue;
            (raw * length).clamp(0.0, 1.0)
        })
        .collect()
}

/// Two sentences saying nearly the same thing (most content words shared).
fn near_duplicate(candidates: &[Candidate<'_>], a: usize, b: usize) -> bool {
    let (Some(a), Some(b)) = (candidates.get(a), candidates.get(b)) else {
        return false;
    };
    let shared = a.content.intersection(&b.content).count();
    let union = a.content.union(&b.content).count();
    union > 0 && shared as f32 / union as f32 > 0.7
}

/// `text` with its first letter in upper case (the lead-in removal can leave it lower).
fn capitalise_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `text` on one line, cut at a word boundary to [`ONE_LINE_MAX_CHARS`].
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= ONE_LINE_MAX_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(ONE_LINE_MAX_CHARS - 1).collect();
    let at_word = cut.rfind(' ').map_or(cut.as_str(), |p| &cut[..p]);
    format!("{}…", at_word.trim_end_matches([',', ';', ':']))
}

#[cfg(test)]
mod tests;

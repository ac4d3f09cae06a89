//! Interaction statistics of a call from its diarized turns: talk time and ratio per role,
//! non-talk instances, longest monologues, interruptions, interactivity, question rate,
//! patience and talk speed.
//!
//! Conventions (the contract callers rely on):
//! - The call runs from 0 ms to `max(call_duration_ms, last turn end)`. Leading silence
//!   (before the first turn) and trailing silence (after the last turn, when the caller
//!   gives a longer call duration) count as non-talk: a customer waiting in silence at the
//!   start of a call is exactly what a QA reviewer wants to see.
//! - Turns may arrive in any order and may overlap; a turn whose end precedes its start is
//!   treated as zero-length. Nothing here panics on any input.
//! - Two turns belong to different *parties* when their role or their speaker label differs,
//!   so two `unknown` speakers of a mono recording still interrupt and answer each other.

use serde::{Deserialize, Serialize};

use crate::types::{Interruption, NonTalk, Role, Turn};

/// Thresholds of the statistics, with defaults that follow common call-analytics practice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StatsConfig {
    /// Silence strictly longer than this is a non-talk instance (default 3000 ms).
    pub non_talk_min_ms: u64,
    /// Consecutive turns of one party merge into one monologue when the pause between them
    /// is at most this long (default 1500 ms: a breath or a short pause, not a handover).
    pub monologue_merge_gap_ms: u64,
    /// Overlaps shorter than this are backchannels ("mm-hmm") or turn-taking jitter, not
    /// interruptions (default 300 ms).
    pub interruption_min_overlap_ms: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            non_talk_min_ms: 3000,
            monologue_merge_gap_ms: 1500,
            interruption_min_overlap_ms: 300,
        }
    }
}

/// The longest stretch one role talked without another party taking the floor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Monologue {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Turn indices of the first and last turn merged into it.
    pub first_turn: usize,
    pub last_turn: usize,
}

impl Monologue {
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// Statistics of one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleStats {
    pub role: Role,
    pub turns: usize,
    /// Time this role is talking (overlapping turns of the role counted once).
    pub talk_ms: u64,
    /// `talk_ms` over the summed talk time of all roles (0 when nobody talks).
    pub talk_share: f32,
    /// `talk_ms` over the call duration (0 for a zero-length call).
    pub call_share: f32,
    pub longest_monologue: Option<Monologue>,
    /// Words counted from word timings, else from the whitespace-separated text.
    pub words: usize,
    /// Words per minute over the time of the role's turns that have a transcript; `None`
    /// when the role has no transcribed speech.
    pub words_per_minute: Option<f32>,
    /// Questions asked: '?'-ended sentences, or, for a turn without any sentence
    /// punctuation (raw ASR), one when it opens with a question word ("can you", "what"…).
    pub questions: usize,
    /// Share of the role's turns that ask at least one question (0 when it has no turns).
    pub question_turn_share: f32,
    /// Questions per minute of call (`None` for a zero-length call).
    pub questions_per_minute: Option<f32>,
}

/// Interruptions in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InterruptionSummary {
    pub by: Role,
    pub interrupted: Role,
    pub count: usize,
    pub total_ms: u64,
    pub mean_ms: f32,
}

/// Everything [`compute_stats`] measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionStats {
    pub call_duration_ms: u64,
    /// Time anyone is talking.
    pub talk_ms: u64,
    /// Time at least two parties talk at once.
    pub overlap_ms: u64,
    /// Agent and customer always; unknown only when such turns exist.
    pub per_role: Vec<RoleStats>,
    pub non_talk: Vec<NonTalk>,
    pub non_talk_total_ms: u64,
    pub interruptions: Vec<Interruption>,
    pub interruption_summary: Vec<InterruptionSummary>,
    /// Changes of party between consecutive turns (in start order).
    pub speaker_switches: usize,
    /// Speaker switches per minute of call (`None` for a zero-length call).
    pub interactivity_per_minute: Option<f32>,
    /// Mean pause before the agent answers a customer turn (an agent turn that starts before
    /// the customer finished counts as 0 ms); `None` when the agent never answers a customer.
    pub agent_patience_ms: Option<f32>,
    /// How many customer→agent handovers the patience is the mean of.
    pub agent_answers: usize,
}

impl InteractionStats {
    pub fn role(&self, role: Role) -> Option<&RoleStats> {
        self.per_role.iter().find(|r| r.role == role)
    }
}

/// Computes the interaction statistics of a call. `call_duration_ms` is the recording's
/// length when known; the call is never shorter than its last turn.
pub fn compute_stats(
    turns: &[Turn],
    call_duration_ms: Option<u64>,
    config: &StatsConfig,
) -> InteractionStats {
    let mut ordered: Vec<&Turn> = turns.iter().collect();
    ordered.sort_by_key(|t| (t.start_ms, end_of(t), t.index));

    let last_end = ordered.iter().map(|t| end_of(t)).max().unwrap_or(0);
    let duration = call_duration_ms.unwrap_or(0).max(last_end);
    let minutes = duration as f64 / 60_000.0;
    let per_minute = |n: usize| (duration > 0).then(|| (n as f64 / minutes) as f32);

    let all_spans: Vec<(u64, u64)> = ordered.iter().map(|t| (t.start_ms, end_of(t))).collect();
    let merged_all = merge_spans(&all_spans);
    let talk_ms = merged_all.iter().map(|(s, e)| e - s).sum();
    let non_talk = find_non_talk(&merged_all, duration, config.non_talk_min_ms);
    let non_talk_total_ms = non_talk.iter().map(|n| n.end_ms - n.start_ms).sum();

    let mut roles = vec![Role::Agent, Role::Customer];
    if ordered.iter().any(|t| t.role == Role::Unknown) {
        roles.push(Role::Unknown);
    }
    let role_talk: Vec<u64> = roles
        .iter()
        .map(|&role| {
            let spans: Vec<(u64, u64)> = ordered
                .iter()
                .filter(|t| t.role == role)
                .map(|t| (t.start_ms, end_of(t)))
                .collect();
            merge_spans(&spans).iter().map(|(s, e)| e - s).sum()
        })
        .collect();
    let role_talk_sum: u64 = role_talk.iter().sum();

    let per_role = roles
        .iter()
        .zip(&role_talk)
        .map(|(&role, &talk)| {
            let mine: Vec<&Turn> = ordered.iter().copied().filter(|t| t.role == role).collect();
            let words: usize = mine.iter().map(|t| word_count(t)).sum();
            let transcribed_ms: u64 = mine
                .iter()
                .filter(|t| word_count(t) > 0)
                .map(|t| t.duration_ms())
                .sum();
            let questions: usize = mine.iter().map(|t| count_questions(&t.text)).sum();
            let asking = mine.iter().filter(|t| count_questions(&t.text) > 0).count();
            RoleStats {
                role,
                turns: mine.len(),
                talk_ms: talk,
                talk_share: ratio(talk, role_talk_sum),
                call_share: ratio(talk, duration),
                longest_monologue: longest_monologue(&ordered, role, config),
                words,
                words_per_minute: (transcribed_ms > 0)
                    .then(|| (words as f64 * 60_000.0 / transcribed_ms as f64) as f32),
                questions,
                question_turn_share: ratio(asking as u64, mine.len() as u64),
                questions_per_minute: per_minute(questions),
            }
        })
        .collect();

    let interruptions = find_interruptions(&ordered, config.interruption_min_overlap_ms);
    let interruption_summary = summarise_interruptions(&interruptions);
    let speaker_switches = ordered
        .windows(2)
        .filter(|w| !same_party(w[0], w[1]))
        .count();
    let (agent_patience_ms, agent_answers) = agent_patience(&ordered);

    InteractionStats {
        call_duration_ms: duration,
        talk_ms,
        overlap_ms: overlap_time(&ordered),
        per_role,
        non_talk,
        non_talk_total_ms,
        interruptions,
        interruption_summary,
        speaker_switches,
        interactivity_per_minute: per_minute(speaker_switches),
        agent_patience_ms,
        agent_answers,
    }
}

/// A turn's end, never before its start (bad timings become zero-length turns).
fn end_of(turn: &Turn) -> u64 {
    turn.end_ms.max(turn.start_ms)
}

fn ratio(part: u64, whole: u64) -> f32 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64) as f32
    }
}

fn same_party(a: &Turn, b: &Turn) -> bool {
    a.role == b.role && a.speaker == b.speaker
}

/// Union of spans, sorted, touching spans joined.
fn merge_spans(spans: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut sorted: Vec<(u64, u64)> = spans.iter().copied().filter(|(s, e)| e > s).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn find_non_talk(merged: &[(u64, u64)], duration: u64, min_ms: u64) -> Vec<NonTalk> {
    let mut gaps = Vec::new();
    let mut cursor = 0u64;
    for &(start, end) in merged {
        if start > cursor {
            gaps.push((cursor, start));
        }
        cursor = cursor.max(end);
    }
    if duration > cursor {
        gaps.push((cursor, duration));
    }
    gaps.into_iter()
        .filter(|(s, e)| e - s > min_ms)
        .map(|(start_ms, end_ms)| NonTalk { start_ms, end_ms })
        .collect()
}

/// Time covered by at least two parties at once.
fn overlap_time(ordered: &[&Turn]) -> u64 {
    // Pairwise overlaps of different parties, then the union of those stretches, so three
    // voices at once are not counted twice.
    let mut spans = Vec::new();
    for (i, a) in ordered.iter().enumerate() {
        for b in ordered.iter().skip(i + 1) {
            if b.start_ms >= end_of(a) {
                break;
            }
            if !same_party(a, b) {
                let end = end_of(a).min(end_of(b));
                spans.push((b.start_ms, end));
            }
        }
    }
    merge_spans(&spans).iter().map(|(s, e)| e - s).sum()
}

/// The rule: walk the turns in start order; a run of one role continues through its own
/// turns when the pause before the next one is at most `monologue_merge_gap_ms`, and through
/// another party's turn only when that turn lies wholly inside the run's current span (a
/// backchannel while the role keeps talking). Anything else ends the run.
fn longest_monologue(ordered: &[&Turn], role: Role, config: &StatsConfig) -> Option<Monologue> {
    let mut best: Option<Monologue> = None;
    let mut current: Option<(Monologue, &str)> = None;
    for turn in ordered {
        let end = end_of(turn);
        current = match current {
            Some((mut run, speaker)) if turn.role == role && turn.speaker == speaker => {
                if turn.start_ms <= run.end_ms.saturating_add(config.monologue_merge_gap_ms) {
                    run.end_ms = run.end_ms.max(end);
                    run.last_turn = turn.index;
                    Some((run, speaker))
                } else {
                    best = longer(best, run);
                    Some((new_run(turn), turn.speaker.as_str()))
                }
            }
            Some((run, speaker)) if end <= run.end_ms => Some((run, speaker)),
            Some((run, _)) => {
                best = longer(best, run);
                (turn.role == role).then(|| (new_run(turn), turn.speaker.as_str()))
            }
            None => (turn.role == role).then(|| (new_run(turn), turn.speaker.as_str())),
        };
    }
    if let Some((run, _)) = current {
        best = longer(best, run);
    }
    best
}

fn new_run(turn: &Turn) -> Monologue {
    Monologue {
        start_ms: turn.start_ms,
        end_ms: end_of(turn),
        first_turn: turn.index,
        last_turn: turn.index,
    }
}

fn longer(best: Option<Monologue>, run: Monologue) -> Option<Monologue> {
    match best {
        Some(b) if b.duration_ms() >= run.duration_ms() => Some(b),
        _ => Some(run),
    }
}

/// A turn interrupts when it starts strictly after another party's turn started and before
/// it ended, and the overlap lasts at least `min_overlap_ms`. Turns starting together are a
/// simultaneous start, not an interruption. Each turn interrupts at most once: the turn it
/// overlaps longest.
fn find_interruptions(ordered: &[&Turn], min_overlap_ms: u64) -> Vec<Interruption> {
    let mut found = Vec::new();
    for (i, turn) in ordered.iter().enumerate() {
        let best = ordered
            .iter()
            .take(i)
            .filter(|other| {
                !same_party(other, turn)
                    && other.start_ms < turn.start_ms
                    && turn.start_ms < end_of(other)
            })
            .map(|other| (other, end_of(other).min(end_of(turn))))
            .filter(|(_, end)| end.saturating_sub(turn.start_ms) >= min_overlap_ms.max(1))
            .max_by_key(|(other, end)| (*end, std::cmp::Reverse(other.index)));
        if let Some((other, end_ms)) = best {
            found.push(Interruption {
                by: turn.role,
                interrupted: other.role,
                turn: turn.index,
                interrupted_turn: other.index,
                start_ms: turn.start_ms,
                end_ms,
            });
        }
    }
    found
}

fn summarise_interruptions(interruptions: &[Interruption]) -> Vec<InterruptionSummary> {
    let mut out: Vec<InterruptionSummary> = Vec::new();
    for i in interruptions {
        let ms = i.end_ms.saturating_sub(i.start_ms);
        match out
            .iter_mut()
            .find(|s| s.by == i.by && s.interrupted == i.interrupted)
        {
            Some(s) => {
                s.count += 1;
                s.total_ms += ms;
            }
            None => out.push(InterruptionSummary {
                by: i.by,
                interrupted: i.interrupted,
                count: 1,
                total_ms: ms,
                mean_ms: 0.0,
            }),
        }
    }
    for s in &mut out {
        s.mean_ms = (s.total_ms as f64 / s.count as f64) as f32;
    }
    out.sort_by_key(|s| (s.by, s.interrupted));
    out
}

/// Each agent turn whose predecessor in start order is a customer turn is an answer; its
/// pause is the time from the customer's end to the agent's start (0 when it overlaps).
fn agent_patience(ordered: &[&Turn]) -> (Option<f32>, usize) {
    let gaps: Vec<u64> = ordered
        .windows(2)
        .filter(|w| w[0].role == Role::Customer && w[1].role == Role::Agent)
        .map(|w| w[1].start_ms.saturating_sub(end_of(w[0])))
        .collect();
    if gaps.is_empty() {
        return (None, 0);
    }
    let mean = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
    (Some(mean as f32), gaps.len())
}

fn word_count(turn: &Turn) -> usize {
    if turn.words.is_empty() {
        turn.text.split_whitespace().count()
    } else {
        turn.words
            .iter()
            .filter(|w| !w.text.trim().is_empty())
            .count()
    }
}

/// Words that open a question when ASR gives no punctuation. Two-word openers first.
const QUESTION_OPENERS: &[&str] = &[
    "what", "when", "where", "why", "how", "who", "whom", "whose", "which", "can", "could",
    "would", "will", "shall", "should", "do", "does", "did", "is", "are", "was", "were", "have",
    "has", "may", "might", "am", "isn't", "aren't", "don't", "doesn't", "didn't", "won't", "can't",
    "couldn't", "wouldn't",
];

/// Questions in a turn's text: with sentence punctuation present, the '?'-ended sentences;
/// without any (raw ASR), one when the text opens with a question word.
fn count_questions(text: &str) -> usize {
    let marks = text.matches('?').count();
    if marks > 0 {
        // "??" or "?!?" is one question.
        return text
            .split(['.', '!'])
            .flat_map(|s| s.split_inclusive('?'))
            .filter(|s| s.trim_end().ends_with('?') && s.chars().any(char::is_alphanumeric))
            .count();
    }
    if text.contains(['.', '!']) {
        return 0;
    }
    let first = text
        .split_whitespace()
        .next()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                .to_lowercase()
        })
        .unwrap_or_default();
    // "so can you…", "and what…": skip one leading filler.
    let opener = if matches!(
        first.as_str(),
        "so" | "and" | "but" | "okay" | "ok" | "um" | "uh"
    ) {
        text.split_whitespace()
            .nth(1)
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                    .to_lowercase()
            })
            .unwrap_or_default()
    } else {
        first
    };
    usize::from(QUESTION_OPENERS.contains(&opener.as_str()))
}

#[cfg(test)]
mod tests;

//! What the analysis of a scripted call should find, computed from the script alone (its
//! lines, phrases and their rendered times) — never read off the server's output.

use super::script::{PlacedLine, PlacedPhrase, Who};

/// Lower-case words of a text (letters, digits and apostrophes), as a keyword tracker sees
/// them.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether the phrase's words contain `needle` (whole words, in order).
pub fn says(text: &str, needle: &str) -> bool {
    let (hay, needle) = (words(text), words(needle));
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_slice())
}

/// One expected keyword-tracker hit: who said it and the phrase it is in.
#[derive(Debug, Clone)]
pub struct ExpectedHit<'a> {
    pub keyword: &'a str,
    pub who: Who,
    pub phrase: &'a PlacedPhrase,
}

pub fn tracker_hits<'a>(lines: &'a [PlacedLine], keywords: &[&'a str]) -> Vec<ExpectedHit<'a>> {
    let mut out = Vec::new();
    for l in lines {
        for p in &l.phrases {
            for &k in keywords {
                let n = words(p.text)
                    .windows(words(k).len())
                    .filter(|w| *w == words(k).as_slice())
                    .count();
                for _ in 0..n {
                    out.push(ExpectedHit {
                        keyword: k,
                        who: l.who,
                        phrase: p,
                    });
                }
            }
        }
    }
    out
}

/// Spans where someone speaks, merged.
fn speech_union(lines: &[PlacedLine], who: Option<Who>) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| who.is_none_or(|w| l.who == w))
        .map(|l| (l.start_ms, l.end_ms))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Talk time of one role (its lines' union).
pub fn talk_ms(lines: &[PlacedLine], who: Who) -> u64 {
    speech_union(lines, Some(who))
        .iter()
        .map(|(s, e)| e - s)
        .sum()
}

/// Silences longer than `min_ms` where nobody speaks, leading and trailing included.
pub fn non_talk(lines: &[PlacedLine], duration_ms: u64, min_ms: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for (s, e) in speech_union(lines, None) {
        if s > at && s - at > min_ms {
            out.push((at, s));
        }
        at = at.max(e);
    }
    if duration_ms > at && duration_ms - at > min_ms {
        out.push((at, duration_ms));
    }
    out
}

/// One expected interruption: a line starting inside another party's line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpectedInterruption {
    pub by: Who,
    pub interrupted: Who,
    pub start_ms: u64,
    pub end_ms: u64,
}

pub fn interruptions(lines: &[PlacedLine], min_overlap_ms: u64) -> Vec<ExpectedInterruption> {
    let mut out = Vec::new();
    for a in lines {
        for b in lines {
            if a.who != b.who && b.start_ms > a.start_ms && b.start_ms < a.end_ms {
                let end = a.end_ms.min(b.end_ms);
                if end - b.start_ms >= min_overlap_ms {
                    out.push(ExpectedInterruption {
                        by: b.who,
                        interrupted: a.who,
                        start_ms: b.start_ms,
                        end_ms: end,
                    });
                }
            }
        }
    }
    out
}

/// The first phrase of `who` that says `needle`.
pub fn phrase_with<'a>(lines: &'a [PlacedLine], who: Who, needle: &str) -> &'a PlacedPhrase {
    lines
        .iter()
        .filter(|l| l.who == who)
        .flat_map(|l| &l.phrases)
        .find(|p| says(p.text, needle))
        .unwrap_or_else(|| panic!("script error: {who:?} never says {needle:?}"))
}

/// The line a phrase belongs to.
pub fn line_of<'a>(lines: &'a [PlacedLine], phrase: &PlacedPhrase) -> &'a PlacedLine {
    lines
        .iter()
        .find(|l| {
            l.phrases.iter().any(|p| {
                std::ptr::eq(p, phrase) || (p.start_ms == phrase.start_ms && p.text == phrase.text)
            })
        })
        .expect("phrase of the script")
}

/// Luhn check of a digit string.
pub fn luhn_valid(digits: &str) -> bool {
    let ds: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ds.len() >= 13 && sum.is_multiple_of(10)
}

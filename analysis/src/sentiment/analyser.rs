//! The lexicon-and-rules analyser: callscope's embedded default.
//!
//! How a text is scored:
//! 1. Tokens (contractions expanded); domain phrases are matched first, longest first, and
//!    consume their words; remaining words take their lexicon valence.
//! 2. Each valence is scaled by the modifiers among the 3 words before it (same clause):
//!    intensifiers ×1.1…1.5, dampeners ×0.6…0.8; a negator in that window multiplies it by
//!    −0.6 ("not bad" becomes mildly positive, "not good" negative), unless the unit is a
//!    phrase that already contains its own negation.
//! 3. A unit whose words or modifiers are in capitals, in a text that is not all capitals,
//!    weighs ×1.3.
//! 4. Contrast: with "but"/"however"/"yet"/"though", units before the last such word weigh
//!    ×0.5 and units after it ×1.5.
//! 5. Punctuation: in a sentence ending with '?', positive units weigh ×0.5 (asking whether
//!    something is good asserts nothing); each '!' (at most 3) amplifies the total by 15 %.
//! 6. score = tanh(sum / 3). Labels: positive ≥ 0.2, negative ≤ −0.2, neutral between;
//!    **mixed** when the positive units and the negative units each sum to at least 1.5 in
//!    magnitude (after the rules) and |score| < 0.5 (neither side clearly wins).

use std::collections::HashMap;

use super::lexicon::{CONTRASTS, EMBEDDED_PHRASES, Lexicon, MODIFIERS, NEGATORS};
use super::tokens::{Token, tokenize};
use super::{SentimentAnalyser, SentimentError, label_for};
use crate::types::{SentimentLabel, SentimentScore};

const NEGATION_SCOPE: usize = 3;
const NEGATION_FACTOR: f32 = -0.6;
const CAPS_FACTOR: f32 = 1.3;
const BEFORE_CONTRAST: f32 = 0.5;
const AFTER_CONTRAST: f32 = 1.5;
const QUESTION_POSITIVE_FACTOR: f32 = 0.5;
const EXCLAMATION_STEP: f32 = 0.15;
const MAX_EXCLAMATIONS: usize = 3;
const SCORE_SCALE: f32 = 3.0;
/// Magnitude both sides need before a text can be mixed.
pub const MIXED_PART_MIN: f32 = 1.5;
/// |score| below which a text with strong parts on both sides is mixed.
pub const MIXED_SCORE_MAX: f32 = 0.5;

struct Phrase {
    words: Vec<String>,
    valence: f32,
}

/// Scores text with a word lexicon, domain phrases and the rules above.
pub struct LexiconAnalyser {
    name: String,
    lexicon: Lexicon,
    /// Phrases by their first word, longest first.
    phrases: HashMap<String, Vec<Phrase>>,
}

/// One scored unit (a word or a phrase) of a text.
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    len: usize,
    valence: f32,
    sentence: usize,
}

impl LexiconAnalyser {
    /// callscope's embedded lexicon and domain phrases.
    pub fn embedded() -> Self {
        Self::new("lexicon", Lexicon::embedded(), true)
    }

    /// Another word lexicon (e.g. one loaded with [`Lexicon::from_tsv`]) with the same rules;
    /// `domain_phrases` adds callscope's call-centre phrases on top.
    pub fn with_lexicon(name: &str, lexicon: Lexicon, domain_phrases: bool) -> Self {
        Self::new(name, lexicon, domain_phrases)
    }

    fn new(name: &str, lexicon: Lexicon, domain_phrases: bool) -> Self {
        let mut phrases: HashMap<String, Vec<Phrase>> = HashMap::new();
        if domain_phrases {
            for (text, valence) in EMBEDDED_PHRASES {
                let words: Vec<String> = tokenize(text).into_iter().map(|t| t.text).collect();
                let Some(first) = words.first().cloned() else {
                    continue;
                };
                phrases.entry(first).or_default().push(Phrase {
                    words,
                    valence: *valence,
                });
            }
        }
        for list in phrases.values_mut() {
            list.sort_by_key(|p| std::cmp::Reverse(p.words.len()));
        }
        LexiconAnalyser {
            name: name.to_string(),
            lexicon,
            phrases,
        }
    }

    /// The score and the label of one text (never fails).
    pub fn score_text(&self, text: &str) -> SentimentScore {
        let tokens = tokenize(text);
        let all_caps_text = tokens.iter().filter(|t| !t.is_punct()).all(|t| t.caps);
        let (units, consumed) = self.find_units(&tokens);
        let terminators = sentence_terminators(&tokens);
        let contrast_at = tokens
            .iter()
            .enumerate()
            .rev()
            .find(|(i, t)| {
                !consumed.get(*i).copied().unwrap_or(true) && CONTRASTS.contains(&t.text.as_str())
            })
            .map(|(i, _)| i);

        let mut positive = 0.0f32;
        let mut negative = 0.0f32;
        for unit in &units {
            let (factor, modifier_caps) = self.modifier_factor(&tokens, &consumed, unit);
            let mut v = unit.valence * factor;
            if !all_caps_text
                && (modifier_caps
                    || tokens
                        .get(unit.start..unit.start + unit.len)
                        .unwrap_or(&[])
                        .iter()
                        .any(|t| t.caps))
            {
                v *= CAPS_FACTOR;
            }
            if let Some(c) = contrast_at {
                v *= if unit.start < c {
                    BEFORE_CONTRAST
                } else {
                    AFTER_CONTRAST
                };
            }
            if v > 0.0 && terminators.get(unit.sentence).copied().flatten() == Some('?') {
                v *= QUESTION_POSITIVE_FACTOR;
            }
            if v > 0.0 {
                positive += v;
            } else {
                negative += v;
            }
        }
        let exclamations = tokens
            .iter()
            .filter(|t| t.text == "!")
            .count()
            .min(MAX_EXCLAMATIONS);
        let mut sum = positive + negative;
        sum *= 1.0 + EXCLAMATION_STEP * exclamations as f32;
        let score = (sum / SCORE_SCALE).tanh();
        let label = if positive >= MIXED_PART_MIN
            && -negative >= MIXED_PART_MIN
            && score.abs() < MIXED_SCORE_MAX
        {
            SentimentLabel::Mixed
        } else {
            label_for(score)
        };
        SentimentScore { score, label }
    }

    fn find_units(&self, tokens: &[Token]) -> (Vec<Unit>, Vec<bool>) {
        let mut units = Vec::new();
        let mut consumed = vec![false; tokens.len()];
        let mut sentence = 0;
        let mut i = 0;
        while let Some(token) = tokens.get(i) {
            if token.ends_sentence() {
                // A run such as "?!" ends one sentence, as in `sentence_terminators`.
                let run_continues = i > 0 && tokens.get(i - 1).is_some_and(Token::ends_sentence);
                if !run_continues {
                    sentence += 1;
                }
                i += 1;
                continue;
            }
            if let Some(phrase) = self.phrase_at(tokens, i) {
                let len = phrase.words.len();
                if let Some(span) = consumed.get_mut(i..i + len) {
                    span.iter_mut().for_each(|c| *c = true);
                }
                units.push(Unit {
                    start: i,
                    len,
                    valence: phrase.valence,
                    sentence,
                });
                i += len;
                continue;
            }
            if let Some(valence) = self.lexicon.valence(&token.text).filter(|v| *v != 0.0) {
                units.push(Unit {
                    start: i,
                    len: 1,
                    valence,
                    sentence,
                });
            }
            i += 1;
        }
        (units, consumed)
    }

    fn phrase_at(&self, tokens: &[Token], i: usize) -> Option<&Phrase> {
        let first = tokens.get(i)?;
        self.phrases.get(&first.text)?.iter().find(|p| {
            p.words.len() <= tokens.len() - i
                && p.words
                    .iter()
                    .zip(tokens.get(i..).unwrap_or(&[]))
                    .all(|(w, t)| *w == t.text)
        })
    }

    /// Product of the negation and intensity modifiers in the scope before a unit, and
    /// whether one of them is written in capitals ("NOT good", "REALLY bad").
    fn modifier_factor(&self, tokens: &[Token], consumed: &[bool], unit: &Unit) -> (f32, bool) {
        let has_own_negation = tokens
            .get(unit.start..unit.start + unit.len)
            .unwrap_or(&[])
            .iter()
            .any(|t| NEGATORS.contains(&t.text.as_str()))
            && unit.len > 1;
        let mut factor = 1.0;
        let mut negated = false;
        let mut emphasised = false;
        for j in (0..unit.start).rev().take(NEGATION_SCOPE) {
            let Some(t) = tokens.get(j) else { break };
            if t.is_punct()
                || CONTRASTS.contains(&t.text.as_str())
                || consumed.get(j).copied().unwrap_or(true)
            {
                break;
            }
            if NEGATORS.contains(&t.text.as_str()) {
                negated = true;
                emphasised |= t.caps;
            } else if let Some((_, m)) = MODIFIERS.iter().find(|(w, _)| *w == t.text) {
                factor *= m;
                emphasised |= t.caps;
            }
        }
        if negated && !has_own_negation {
            factor *= NEGATION_FACTOR;
        }
        (factor, emphasised)
    }
}

/// The punctuation that ends each sentence ('.', '!', '?'), `None` for a final sentence
/// without one.
fn sentence_terminators(tokens: &[Token]) -> Vec<Option<char>> {
    let mut out: Vec<Option<char>> = Vec::new();
    let mut open = false;
    for t in tokens {
        if t.ends_sentence() {
            if open {
                out.push(t.text.chars().next());
                open = false;
            } else if let Some(last) = out.last_mut() {
                // "?!" or "!?": a question mark anywhere in the run makes it a question.
                if t.text == "?" {
                    *last = Some('?');
                }
            } else {
                out.push(t.text.chars().next());
            }
        } else {
            open = true;
        }
    }
    if open {
        out.push(None);
    }
    out
}

impl SentimentAnalyser for LexiconAnalyser {
    fn name(&self) -> &str {
        &self.name
    }

    fn analyse(&self, text: &str) -> Result<SentimentScore, SentimentError> {
        Ok(self.score_text(text))
    }
}

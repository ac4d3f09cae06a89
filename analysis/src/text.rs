//! Text normalization for matching: what people mean by "the same word".
//!
//! A word is matched case-, accent- and spelling-variant-insensitively: Unicode NFKD, combining
//! marks dropped (Latin accents, Arabic harakat), lower-cased, Arabic tatweel removed and the
//! alef/hamza/yeh/teh-marbuta variants unified (the usual Arabic search normalization).
//! Words come from Unicode word segmentation (UAX #29), so scripts without ASCII spaces
//! between words still split where a reader would split them.
//!
//! Every token remembers the byte range it came from in the original text, so a match can be
//! reported as the exact phrase the speaker said, and every token of a turn can be tied back
//! to its timed word so a match gets real times.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_segmentation::UnicodeSegmentation;

use crate::types::{TimeSpan, Turn};

/// One word of a text: its normalized form and where it is in the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Normalized form, compared by matchers. Never empty.
    pub norm: String,
    /// Byte range of the word in the original text (`start..end`).
    pub start: usize,
    pub end: usize,
}

/// Normalizes one word (or any short text) for comparison. Does not split words.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            // Tatweel only stretches a word on screen.
            '\u{0640}' => {}
            // Alef with wasla (and any alef variant NFKD leaves alone) is written as bare alef.
            '\u{0671}' | '\u{0672}' | '\u{0673}' | '\u{0675}' => out.push('\u{0627}'),
            // Alef maksura is spelled as yeh as often as not.
            '\u{0649}' => out.push('\u{064A}'),
            // Teh marbuta is often written as heh.
            '\u{0629}' => out.push('\u{0647}'),
            // Persian/Urdu yeh and keheh typed on Arabic text.
            '\u{06CC}' => out.push('\u{064A}'),
            '\u{06A9}' => out.push('\u{0643}'),
            // Case folding beyond `to_lowercase`: sharp s and final sigma.
            'ß' | 'ẞ' => out.push_str("ss"),
            'ς' => out.push('σ'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Splits `text` into words (UAX #29) and normalizes each; words that normalize to nothing
/// (a lone tatweel, a stray mark) are skipped.
pub fn tokenize(text: &str) -> Vec<Token> {
    text.unicode_word_indices()
        .filter_map(|(start, word)| {
            let norm = normalize(word);
            (!norm.is_empty()).then(|| Token {
                norm,
                start,
                end: start + word.len(),
            })
        })
        .collect()
}

/// The original text covered by tokens `first..=last` (including what lies between them).
/// Empty when the range does not fit the text.
pub fn original_span<'a>(text: &'a str, tokens: &[Token], first: usize, last: usize) -> &'a str {
    match (tokens.get(first), tokens.get(last)) {
        (Some(a), Some(b)) => text.get(a.start..b.end).unwrap_or(""),
        _ => "",
    }
}

/// How an insight's time was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// From the word timings of the turn.
    WordTimings,
    /// Interpolated from the character position within the turn's span (no usable word
    /// timings).
    Interpolated,
}

/// A turn's tokens, each tied to the timed word it came from when the turn has word timings.
#[derive(Debug, Clone)]
pub struct TurnTokens {
    pub tokens: Vec<Token>,
    /// For each token, the index in `Turn::words` of its timed word, if it could be aligned.
    pub word_of_token: Vec<Option<usize>>,
}

impl TurnTokens {
    /// Tokenizes the turn's text and aligns its tokens with the turn's timed words.
    ///
    /// Alignment walks both token streams in order; a text token is tied to the next timed
    /// word token with the same normalized form within a short look-ahead, so an ASR that
    /// punctuates or spells a word slightly differently in `text` and `words` only loses
    /// timing for those words, not for the rest of the turn.
    pub fn new(turn: &Turn) -> Self {
        let tokens = tokenize(&turn.text);
        let mut word_tokens: Vec<(String, usize)> = Vec::new();
        for (wi, word) in turn.words.iter().enumerate() {
            for t in tokenize(&word.text) {
                word_tokens.push((t.norm, wi));
            }
        }
        const LOOKAHEAD: usize = 4;
        let mut word_of_token = Vec::with_capacity(tokens.len());
        let mut next = 0usize;
        for token in &tokens {
            let found = word_tokens
                .iter()
                .enumerate()
                .skip(next)
                .take(LOOKAHEAD)
                .find(|(_, (norm, _))| *norm == token.norm)
                .map(|(pos, (_, wi))| (pos, *wi));
            match found {
                Some((pos, wi)) => {
                    word_of_token.push(Some(wi));
                    next = pos + 1;
                }
                None => word_of_token.push(None),
            }
        }
        TurnTokens {
            tokens,
            word_of_token,
        }
    }

    /// Time of tokens `first..=last` of `turn`: from word timings when every end of the range
    /// is aligned, else interpolated over the turn's span by character position.
    pub fn time_of_tokens(&self, turn: &Turn, first: usize, last: usize) -> (TimeSpan, TimeSource) {
        let first_word = self.word_of_token.get(first).copied().flatten();
        let last_word = self.word_of_token.get(last).copied().flatten();
        if let (Some(a), Some(b)) = (first_word, last_word)
            && let (Some(wa), Some(wb)) = (turn.words.get(a), turn.words.get(b))
            && wb.end_ms >= wa.start_ms
        {
            return (
                TimeSpan {
                    start_ms: wa.start_ms,
                    end_ms: wb.end_ms,
                },
                TimeSource::WordTimings,
            );
        }
        let start = self.tokens.get(first).map_or(0, |t| t.start);
        let end = self.tokens.get(last).map_or(turn.text.len(), |t| t.end);
        (interpolate(turn, start, end), TimeSource::Interpolated)
    }
}

/// Time of the byte range `start..end` of a turn's text, by its character position within
/// the turn's span (speech is assumed to run at an even pace through the turn).
pub fn interpolate(turn: &Turn, start: usize, end: usize) -> TimeSpan {
    let text = turn.text.as_str();
    let total = text.chars().count().max(1) as u128;
    let chars_before = |byte: usize| -> u128 {
        let byte = byte.min(text.len());
        text.char_indices().take_while(|(i, _)| *i < byte).count() as u128
    };
    let duration = turn.duration_ms() as u128;
    let at = |chars: u128| turn.start_ms + (duration * chars.min(total) / total) as u64;
    let start_ms = at(chars_before(start));
    let end_ms = at(chars_before(end)).max(start_ms);
    TimeSpan { start_ms, end_ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Role, TimedWord};

    fn norms(text: &str) -> Vec<String> {
        tokenize(text).into_iter().map(|t| t.norm).collect()
    }

    #[test]
    fn accents_and_case_are_ignored() {
        assert_eq!(
            norms("Crème BRÛLÉE, São Paulo"),
            ["creme", "brulee", "sao", "paulo"]
        );
        assert_eq!(normalize("Straße"), "strasse");
        assert_eq!(normalize("ΟΔΟΣ"), normalize("οδος"));
    }

    #[test]
    fn arabic_harakat_tatweel_and_alef_variants_are_unified() {
        // "أَهْلاً" (with hamza, fatha, sukun, tanween) vs bare "اهلا".
        assert_eq!(normalize("أَهْلاً"), "اهلا");
        // Tatweel inside a word.
        assert_eq!(normalize("مـــرحبا"), "مرحبا");
        // Alef with hamza below, madda, wasla all become bare alef.
        assert_eq!(normalize("إلغاء"), normalize("الغاء"));
        assert_eq!(normalize("آخر"), "اخر");
        assert_eq!(normalize("ٱلحساب"), "الحساب");
        // Teh marbuta and alef maksura.
        assert_eq!(normalize("شكوة"), normalize("شكوه"));
        assert_eq!(normalize("على"), normalize("علي"));
        // Hamza on waw and on yeh.
        assert_eq!(normalize("مسؤول"), "مسوول");
        assert_eq!(normalize("رئيس"), "رييس");
    }

    #[test]
    fn tokens_point_back_at_the_original_text() {
        let text = "  Héllo,  WORLD — مرحبا!";
        let tokens = tokenize(text);
        assert_eq!(tokens.len(), 3);
        assert_eq!(&text[tokens[0].start..tokens[0].end], "Héllo");
        assert_eq!(&text[tokens[2].start..tokens[2].end], "مرحبا");
        assert_eq!(original_span(text, &tokens, 0, 1), "Héllo,  WORLD");
        assert_eq!(original_span(text, &tokens, 2, 9), "");
    }

    #[test]
    fn cyrillic_words_split_and_fold() {
        assert_eq!(norms("Отменить ПОДПИСКУ"), ["отменить", "подписку"]);
        // Й keeps its identity after the combining breve is dropped as a mark: both sides
        // normalize the same way, which is all matching needs.
        assert_eq!(normalize("ЙОД"), normalize("йод"));
    }

    #[test]
    fn empty_and_symbol_only_text_has_no_tokens() {
        assert!(tokenize("").is_empty());
        assert!(tokenize(" -- ... !!").is_empty());
        assert!(tokenize("\u{0640}\u{0640}").is_empty());
    }

    fn turn(text: &str, words: &[(&str, u64, u64)]) -> Turn {
        Turn {
            index: 0,
            role: Role::Agent,
            speaker: "Agent".into(),
            start_ms: 1_000,
            end_ms: 3_000,
            text: text.into(),
            words: words
                .iter()
                .map(|(t, s, e)| TimedWord {
                    text: (*t).into(),
                    start_ms: *s,
                    end_ms: *e,
                })
                .collect(),
        }
    }

    #[test]
    fn word_timings_give_token_times() {
        let t = turn(
            "Hello, this call may be recorded.",
            &[
                ("Hello,", 1000, 1300),
                ("this", 1300, 1500),
                ("call", 1500, 1700),
                ("may", 1700, 1900),
                ("be", 1900, 2000),
                ("recorded.", 2000, 2500),
            ],
        );
        let tt = TurnTokens::new(&t);
        let (span, source) = tt.time_of_tokens(&t, 1, 5);
        assert_eq!(source, TimeSource::WordTimings);
        assert_eq!((span.start_ms, span.end_ms), (1300, 2500));
    }

    #[test]
    fn misaligned_words_fall_back_to_interpolation() {
        // The timed words spell something else: no alignment, times interpolated.
        let t = turn("abcd efgh", &[("zzzz", 1000, 2000)]);
        let tt = TurnTokens::new(&t);
        let (span, source) = tt.time_of_tokens(&t, 1, 1);
        assert_eq!(source, TimeSource::Interpolated);
        // "efgh" is chars 5..9 of 9 over 2000 ms starting at 1000.
        assert_eq!((span.start_ms, span.end_ms), (1000 + 2000 * 5 / 9, 3000));
    }

    #[test]
    fn interpolation_handles_out_of_range_and_empty() {
        let t = turn("", &[]);
        let span = interpolate(&t, 5, 10);
        assert_eq!((span.start_ms, span.end_ms), (1000, 1000));
        let t = turn("ab", &[]);
        let span = interpolate(&t, 0, 99);
        assert_eq!((span.start_ms, span.end_ms), (1000, 3000));
    }
}

//! Sentences and words of a turn's text, and the time a sentence was said. Shared by the
//! summary and action-item extractors (crate-private: the text module of the crate owns the
//! public tokenisation; these helpers only need to be consistent with themselves).

use crate::types::{TimeSpan, Turn};

/// A sentence of a turn: byte offsets into the turn's text, trimmed of surrounding spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SentenceSpan {
    pub start: usize,
    pub end: usize,
}

/// Abbreviations whose full stop does not end a sentence (lower case, without the dot).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "no", "approx",
];

fn is_terminator(c: char) -> bool {
    matches!(
        c,
        '.' | '!' | '?' | '\n' | '。' | '！' | '？' | '؟' | '…' | '।' | '۔'
    )
}

/// Characters that may follow a terminator and still belong to the sentence it ends.
fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»')
}

/// Splits `text` into sentences. A full stop between digits ("3.5") or after a known
/// abbreviation ("Mr.") does not end a sentence.
pub(crate) fn split_sentences(text: &str) -> Vec<SentenceSpan> {
    let mut spans = Vec::new();
    let mut sentence_start = 0usize;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0usize;
    while let Some(&(_, c)) = chars.get(i) {
        if is_terminator(c) && !is_inner_full_stop(text, &chars, i) {
            // Take any run of terminators and closing quotes with this sentence.
            let mut j = i + 1;
            while chars
                .get(j)
                .is_some_and(|&(_, c)| is_terminator(c) || is_closing(c))
            {
                j += 1;
            }
            let end = chars.get(j).map_or(text.len(), |&(p, _)| p);
            push_trimmed(text, sentence_start, end, &mut spans);
            sentence_start = end;
            i = j;
            continue;
        }
        i += 1;
    }
    push_trimmed(text, sentence_start, text.len(), &mut spans);
    spans
}

/// True when the '.' at `chars[i]` sits inside a number or ends an abbreviation.
fn is_inner_full_stop(text: &str, chars: &[(usize, char)], i: usize) -> bool {
    let Some(&(pos, c)) = chars.get(i) else {
        return false;
    };
    if c != '.' {
        return false;
    }
    let prev = i.checked_sub(1).and_then(|k| chars.get(k)).map(|&(_, c)| c);
    let next = chars.get(i + 1).map(|&(_, c)| c);
    if prev.is_some_and(|c| c.is_ascii_digit()) && next.is_some_and(|c| c.is_ascii_digit()) {
        return true;
    }
    // The word right before the dot.
    let before = text.get(..pos).unwrap_or("");
    let word_start = before
        .rfind(|c: char| c.is_whitespace())
        .map_or(0, |p| p + 1);
    let word = before.get(word_start..).unwrap_or("").to_lowercase();
    ABBREVIATIONS.contains(&word.as_str())
}

fn push_trimmed(text: &str, start: usize, end: usize, spans: &mut Vec<SentenceSpan>) {
    let Some(slice) = text.get(start..end) else {
        return;
    };
    let lead = slice.len() - slice.trim_start().len();
    let trimmed = slice.trim();
    if trimmed.is_empty() || !trimmed.chars().any(is_word_char) {
        return;
    }
    let s = start + lead;
    spans.push(SentenceSpan {
        start: s,
        end: s + trimmed.len(),
    });
}

/// Punctuation outside ASCII that must not be taken for letters.
fn is_unicode_punctuation(c: char) -> bool {
    matches!(
        c,
        '،' | '؛'
            | '؟'
            | '。'
            | '、'
            | '！'
            | '？'
            | '，'
            | '«'
            | '»'
            | '“'
            | '”'
            | '‘'
            | '…'
            | '—'
            | '–'
            | '·'
            | '।'
            | '۔'
            | '\u{a0}'
    )
}

/// A character that belongs to a word: letters and digits of any script, and the combining
/// marks of scripts such as Arabic or Devanagari (which `is_alphanumeric` partly misses).
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || (!c.is_ascii() && !c.is_whitespace() && !is_unicode_punctuation(c))
}

/// Lower-cased words of `text`; apostrophes inside a word are kept ("i'll", "don't") and the
/// typographic apostrophe is folded to the ASCII one.
pub(crate) fn words_lower(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = if c == '’' { '\'' } else { c };
        if is_word_char(c) {
            current.extend(c.to_lowercase());
        } else if c == '\'' && !current.is_empty() && chars.peek().is_some_and(|&n| is_word_char(n))
        {
            current.push('\'');
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// When the sentence `span` of `turn` was said: from the word timings when they line up
/// with the text's whitespace-separated tokens, else interpolated over the turn by
/// character position (a transcript without word timings still gets a plausible time).
pub(crate) fn span_time(turn: &Turn, span: SentenceSpan) -> TimeSpan {
    let text = turn.text.as_str();
    let tokens_before = text
        .get(..span.start)
        .map_or(0, |s| s.split_whitespace().count());
    let tokens_in = text
        .get(span.start..span.end)
        .map_or(0, |s| s.split_whitespace().count());
    let total_tokens = text.split_whitespace().count();
    if !turn.words.is_empty() && turn.words.len() == total_tokens && tokens_in > 0 {
        let first = turn.words.get(tokens_before);
        let last = turn.words.get(tokens_before + tokens_in - 1);
        if let (Some(first), Some(last)) = (first, last) {
            return TimeSpan {
                start_ms: first.start_ms,
                end_ms: last.end_ms.max(first.start_ms),
            };
        }
    }
    let total_chars = text.chars().count().max(1) as u64;
    let chars_before = text.get(..span.start).map_or(0, |s| s.chars().count()) as u64;
    let chars_to_end = text.get(..span.end).map_or(0, |s| s.chars().count()) as u64;
    let duration = turn.duration_ms();
    TimeSpan {
        start_ms: turn.start_ms + duration * chars_before / total_chars,
        end_ms: turn.start_ms + duration * chars_to_end.min(total_chars) / total_chars,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Role, TimedWord};

    fn texts(text: &str) -> Vec<&str> {
        split_sentences(text)
            .into_iter()
            .map(|s| &text[s.start..s.end])
            .collect()
    }

    #[test]
    fn splits_on_terminators_and_keeps_them() {
        assert_eq!(
            texts("Hello there. How are you?  Fine!"),
            vec!["Hello there.", "How are you?", "Fine!"]
        );
    }

    #[test]
    fn decimal_numbers_and_abbreviations_do_not_split() {
        assert_eq!(
            texts("It costs 3.50 a month. Mr. Smith agreed."),
            vec!["It costs 3.50 a month.", "Mr. Smith agreed."]
        );
    }

    #[test]
    fn non_latin_terminators_split() {
        assert_eq!(
            texts("مرحبا، كيف حالك؟ أنا بخير."),
            vec!["مرحبا، كيف حالك؟", "أنا بخير."]
        );
        assert_eq!(texts("你好。我想退款。"), vec!["你好。", "我想退款。"]);
    }

    #[test]
    fn empty_and_punctuation_only_text_has_no_sentences() {
        assert!(texts("").is_empty());
        assert!(texts("  ... ?! ").is_empty());
    }

    #[test]
    fn words_are_lowercased_and_keep_inner_apostrophes() {
        assert_eq!(
            words_lower("I’ll SEND it, don't 'worry'."),
            vec!["i'll", "send", "it", "don't", "worry"]
        );
        assert_eq!(words_lower("مرحبا، كيف"), vec!["مرحبا", "كيف"]);
    }

    fn turn(text: &str, words: Vec<TimedWord>) -> Turn {
        Turn {
            index: 0,
            role: Role::Agent,
            speaker: "Agent".into(),
            start_ms: 1_000,
            end_ms: 3_000,
            text: text.into(),
            words,
        }
    }

    #[test]
    fn span_time_uses_word_timings_when_they_line_up() {
        let words = ["Hi.", "I", "will", "call."]
            .iter()
            .enumerate()
            .map(|(i, w)| TimedWord {
                text: (*w).into(),
                start_ms: 1_000 + i as u64 * 500,
                end_ms: 1_400 + i as u64 * 500,
            })
            .collect();
        let t = turn("Hi. I will call.", words);
        let spans = split_sentences(&t.text);
        assert_eq!(
            span_time(&t, spans[1]),
            TimeSpan {
                start_ms: 1_500,
                end_ms: 2_900
            }
        );
    }

    #[test]
    fn span_time_interpolates_without_word_timings() {
        let t = turn("abcd efgh", vec![]);
        let time = span_time(&t, SentenceSpan { start: 5, end: 9 });
        // 5 of 9 chars before → 1000 + 2000*5/9.
        assert_eq!(time.start_ms, 2_111);
        assert_eq!(time.end_ms, 3_000);
    }
}

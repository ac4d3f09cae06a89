//! Compiled phrase matching over normalized tokens.
//!
//! A phrase is a sequence of words matched whole-word, case- and accent-insensitively (see
//! [`crate::text`]). Two wildcards: `*` on its own is any one word, `word*` is any word that
//! starts with `word`. A matcher holds several phrases and is compiled once per
//! configuration, then run over many texts; phrases are indexed by their first word so a
//! long call with hundreds of phrases stays cheap.

use std::collections::HashMap;

use thiserror::Error;

use crate::text::{Token, original_span, tokenize};

/// Why a phrase cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PhraseError {
    #[error("phrase {0:?} has no words")]
    Empty(String),
    #[error("phrase {0:?} is only wildcards and would match every word")]
    OnlyWildcards(String),
    #[error("phrase {0:?} has a wildcard inside a word; use `*` alone or at a word's end")]
    MisplacedWildcard(String),
    #[error("phrase {0:?} is longer than {MAX_PHRASE_WORDS} words")]
    TooLong(String),
}

/// Longest phrase accepted (bounds the work per text position).
pub const MAX_PHRASE_WORDS: usize = 32;

/// One word of a compiled phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternWord {
    Exact(String),
    Prefix(String),
    Any,
}

impl PatternWord {
    fn matches(&self, norm: &str) -> bool {
        match self {
            PatternWord::Exact(w) => w == norm,
            PatternWord::Prefix(p) => norm.starts_with(p.as_str()),
            PatternWord::Any => true,
        }
    }
}

/// A compiled phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// The phrase as configured.
    pub source: String,
    words: Vec<PatternWord>,
}

impl Phrase {
    /// Compiles one phrase. Words are split like the text they are matched against, so
    /// "risk-free" matches "risk free" and "Risk‑Free".
    pub fn compile(source: &str) -> Result<Self, PhraseError> {
        let mut words = Vec::new();
        for chunk in source.split_whitespace() {
            if chunk == "*" {
                words.push(PatternWord::Any);
                continue;
            }
            let (body, prefix) = match chunk.strip_suffix('*') {
                Some(body) => (body, true),
                None => (chunk, false),
            };
            if body.contains('*') {
                return Err(PhraseError::MisplacedWildcard(source.to_string()));
            }
            let tokens = tokenize(body);
            let count = tokens.len();
            for (i, token) in tokens.into_iter().enumerate() {
                if prefix && i + 1 == count {
                    words.push(PatternWord::Prefix(token.norm));
                } else {
                    words.push(PatternWord::Exact(token.norm));
                }
            }
        }
        if words.is_empty() {
            return Err(PhraseError::Empty(source.to_string()));
        }
        if words.iter().all(|w| *w == PatternWord::Any) {
            return Err(PhraseError::OnlyWildcards(source.to_string()));
        }
        if words.len() > MAX_PHRASE_WORDS {
            return Err(PhraseError::TooLong(source.to_string()));
        }
        Ok(Phrase {
            source: source.to_string(),
            words,
        })
    }

    /// Whether the phrase uses a wildcard (a looser match, reported with lower confidence).
    pub fn has_wildcard(&self) -> bool {
        self.words
            .iter()
            .any(|w| !matches!(w, PatternWord::Exact(_)))
    }

    /// Number of words the phrase spans.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Never true for a compiled phrase; here for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    fn matches_at(&self, tokens: &[Token], at: usize) -> bool {
        let Some(window) = tokens.get(at..at + self.words.len()) else {
            return false;
        };
        self.words
            .iter()
            .zip(window)
            .all(|(w, t)| w.matches(&t.norm))
    }
}

/// One occurrence of a phrase in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseMatch {
    /// Which phrase of the matcher (index in the order given).
    pub phrase: usize,
    /// Token range `first..=last` in the tokens matched against.
    pub first_token: usize,
    pub last_token: usize,
    /// Byte range in the original text.
    pub start: usize,
    pub end: usize,
    /// The original text of the match, as the speaker said it.
    pub text: String,
}

/// Several phrases, compiled.
#[derive(Debug, Clone, Default)]
pub struct PhraseMatcher {
    phrases: Vec<Phrase>,
    /// Phrases whose first word is exact, by that word.
    by_first_word: HashMap<String, Vec<usize>>,
    /// Phrases starting with a wildcard or prefix: tried at every position.
    unindexed: Vec<usize>,
}

impl PhraseMatcher {
    /// Compiles all phrases; the first bad one is the error.
    pub fn new<I, S>(phrases: I) -> Result<Self, PhraseError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let compiled = phrases
            .into_iter()
            .map(|p| Phrase::compile(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_phrases(compiled))
    }

    /// Compiles the phrases that compile and skips the rest (for evaluating a stored
    /// configuration that was validated when saved; a bad phrase can match nothing anyway).
    pub fn lenient<I, S>(phrases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::from_phrases(
            phrases
                .into_iter()
                .filter_map(|p| Phrase::compile(p.as_ref()).ok())
                .collect(),
        )
    }

    fn from_phrases(phrases: Vec<Phrase>) -> Self {
        let mut by_first_word: HashMap<String, Vec<usize>> = HashMap::new();
        let mut unindexed = Vec::new();
        for (i, p) in phrases.iter().enumerate() {
            match p.words.first() {
                Some(PatternWord::Exact(w)) => by_first_word.entry(w.clone()).or_default().push(i),
                _ => unindexed.push(i),
            }
        }
        PhraseMatcher {
            phrases,
            by_first_word,
            unindexed,
        }
    }

    pub fn phrases(&self) -> &[Phrase] {
        &self.phrases
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Every occurrence of every phrase in `tokens` (from `original`), in text order;
    /// occurrences of the same phrase never overlap (leftmost first). Different phrases may
    /// overlap ("cancel" inside "cancel my account"): see [`keep_longest`].
    pub fn find_tokens(&self, tokens: &[Token], original: &str) -> Vec<PhraseMatch> {
        let mut out = Vec::new();
        // Where each phrase may match next (so its own matches do not overlap).
        let mut free_from = vec![0usize; self.phrases.len()];
        for (at, token) in tokens.iter().enumerate() {
            let indexed = self
                .by_first_word
                .get(&token.norm)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for &pi in indexed.iter().chain(self.unindexed.iter()) {
                let (Some(phrase), Some(free)) = (self.phrases.get(pi), free_from.get_mut(pi))
                else {
                    continue;
                };
                if at < *free || !phrase.matches_at(tokens, at) {
                    continue;
                }
                let last = at + phrase.len() - 1;
                *free = last + 1;
                let (start, end) = match (tokens.get(at), tokens.get(last)) {
                    (Some(a), Some(b)) => (a.start, b.end),
                    _ => continue,
                };
                out.push(PhraseMatch {
                    phrase: pi,
                    first_token: at,
                    last_token: last,
                    start,
                    end,
                    text: original_span(original, tokens, at, last).to_string(),
                });
            }
        }
        out.sort_by_key(|m| (m.first_token, std::cmp::Reverse(m.last_token), m.phrase));
        out
    }

    /// Every occurrence in `text` (tokenized here).
    pub fn find(&self, text: &str) -> Vec<PhraseMatch> {
        self.find_tokens(&tokenize(text), text)
    }

    /// Whether any phrase occurs in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        !self.find(text).is_empty()
    }
}

/// Drops matches that overlap an earlier or longer one, keeping at each place the longest
/// phrase ("cancel my account" rather than "cancel"). Input in the order `find_tokens`
/// returns.
pub fn keep_longest(mut matches: Vec<PhraseMatch>) -> Vec<PhraseMatch> {
    matches.sort_by_key(|m| (m.first_token, std::cmp::Reverse(m.last_token), m.phrase));
    let mut kept: Vec<PhraseMatch> = Vec::with_capacity(matches.len());
    for m in matches {
        if kept.last().is_some_and(|k| m.first_token <= k.last_token) {
            continue;
        }
        kept.push(m);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(m: &PhraseMatcher, text: &str) -> Vec<String> {
        m.find(text).into_iter().map(|m| m.text).collect()
    }

    #[test]
    fn whole_words_only() {
        let m = PhraseMatcher::new(["cancel"]).unwrap();
        assert_eq!(texts(&m, "I want to CANCEL."), ["CANCEL"]);
        assert!(texts(&m, "cancellation fees").is_empty());
        assert!(texts(&m, "uncancel").is_empty());
    }

    #[test]
    fn case_and_accent_insensitive_multiword() {
        let m = PhraseMatcher::new(["café au lait", "this call may be recorded"]).unwrap();
        assert_eq!(texts(&m, "One CAFE  au-lait please"), ["CAFE  au-lait"]);
        assert_eq!(
            texts(&m, "Hi! This call, may be recorded."),
            ["This call, may be recorded"]
        );
    }

    #[test]
    fn wildcards() {
        let m = PhraseMatcher::new(["cancel * account", "refund*"]).unwrap();
        assert_eq!(
            texts(&m, "please cancel my account and refunds"),
            ["cancel my account", "refunds"]
        );
        assert!(texts(&m, "cancel account").is_empty());
        assert_eq!(texts(&m, "Refund now"), ["Refund"]);
        assert!(Phrase::compile("refund*").unwrap().has_wildcard());
        assert!(!Phrase::compile("refund").unwrap().has_wildcard());
    }

    #[test]
    fn bad_phrases_are_errors() {
        assert!(matches!(Phrase::compile(""), Err(PhraseError::Empty(_))));
        assert!(matches!(
            Phrase::compile(" ,,, "),
            Err(PhraseError::Empty(_))
        ));
        assert!(matches!(
            Phrase::compile("* *"),
            Err(PhraseError::OnlyWildcards(_))
        ));
        assert!(matches!(
            Phrase::compile("re*und"),
            Err(PhraseError::MisplacedWildcard(_))
        ));
        let long = vec!["w"; MAX_PHRASE_WORDS + 1].join(" ");
        assert!(matches!(
            Phrase::compile(&long),
            Err(PhraseError::TooLong(_))
        ));
        assert!(PhraseMatcher::new(["ok", ""]).is_err());
        assert_eq!(PhraseMatcher::lenient(["ok", ""]).phrases().len(), 1);
    }

    #[test]
    fn arabic_phrases_match_across_spelling_variants() {
        // Configured without diacritics and with bare alef; spoken with hamza, harakat and
        // tatweel. "إلغاء الاشتراك" = cancel the subscription.
        let m = PhraseMatcher::new(["الغاء الاشتراك", "مدير*"]).unwrap();
        let said = "أريد إِلْغَاء الاشـــتراك من فضلك، أو المديرة";
        let found = m.find(said);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].text, "إِلْغَاء الاشـــتراك");
        // Whole word: "المديرة" starts with "ال", not "مدير".
        let found = m.find("أريد التحدث مع مديرة القسم");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].text, "مديرة");
    }

    #[test]
    fn cyrillic_phrase() {
        let m = PhraseMatcher::new(["отменить подписку"]).unwrap();
        assert_eq!(
            texts(&m, "Я хочу ОТМЕНИТЬ подписку!"),
            ["ОТМЕНИТЬ подписку"]
        );
    }

    #[test]
    fn overlapping_phrases_keep_the_longest() {
        let m = PhraseMatcher::new(["cancel", "cancel my account", "account"]).unwrap();
        let all = m.find("cancel my account now");
        assert_eq!(all.len(), 3);
        let kept = keep_longest(all);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].text, "cancel my account");
    }

    #[test]
    fn same_phrase_repeated_is_found_each_time() {
        let m = PhraseMatcher::new(["no no"]).unwrap();
        // "no no no no": two non-overlapping occurrences.
        assert_eq!(m.find("no no no no").len(), 2);
    }

    #[test]
    fn empty_text_and_empty_matcher() {
        let m = PhraseMatcher::new(["x"]).unwrap();
        assert!(m.find("").is_empty());
        let empty = PhraseMatcher::new(Vec::<String>::new()).unwrap();
        assert!(empty.is_empty());
        assert!(!empty.is_match("anything"));
    }
}

//! BERT's uncased tokenizer: basic tokenization (clean, split CJK ideographs, strip accents,
//! lower-case, split on whitespace and punctuation) then greedy longest-match WordPiece over
//! `vocab.txt`. Written here rather than taken from the `tokenizers` crate because this is
//! all MiniLM needs and it builds with no C code and no regex engine.

use std::collections::HashMap;
use std::path::Path;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

use crate::InferenceError;

/// Words longer than this become `[UNK]` whole (BERT's rule; it bounds WordPiece's cost).
const MAX_CHARS_PER_WORD: usize = 100;

#[derive(Debug, Clone)]
pub struct WordPieceTokenizer {
    vocab: HashMap<String, u32>,
    cls: u32,
    sep: u32,
    unk: u32,
}

/// Token ids of one text, with `[CLS]` and `[SEP]` around them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
}

impl WordPieceTokenizer {
    /// Reads a `vocab.txt` (one token per line, the line number is its id).
    pub fn from_vocab_file(path: &Path) -> Result<Self, InferenceError> {
        let text = std::fs::read_to_string(path).map_err(|e| InferenceError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_vocab(text.lines().map(|l| l.trim_end_matches('\r').to_string()))
    }

    /// Builds the tokenizer from the tokens in id order.
    pub fn from_vocab(tokens: impl IntoIterator<Item = String>) -> Result<Self, InferenceError> {
        let mut vocab = HashMap::new();
        for (id, token) in tokens.into_iter().enumerate() {
            let id = u32::try_from(id)
                .map_err(|_| InferenceError::Tokenizer("vocabulary too large".into()))?;
            // The first occurrence wins, as in BERT's loader.
            vocab.entry(token).or_insert(id);
        }
        let special = |name: &str| {
            vocab
                .get(name)
                .copied()
                .ok_or_else(|| InferenceError::Tokenizer(format!("vocabulary lacks {name}")))
        };
        Ok(Self {
            cls: special("[CLS]")?,
            sep: special("[SEP]")?,
            unk: special("[UNK]")?,
            vocab,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Tokenizes `text` to at most `max_len` ids including `[CLS]` and `[SEP]` (longer texts
    /// are cut, as sentence-transformers does at its `max_seq_length`).
    pub fn encode(&self, text: &str, max_len: usize) -> Encoding {
        let room = max_len.saturating_sub(2);
        let mut ids = Vec::with_capacity(room.min(64) + 2);
        ids.push(self.cls);
        'words: for word in basic_tokens(text) {
            for id in self.word_pieces(&word) {
                if ids.len() > room {
                    break 'words;
                }
                ids.push(id);
            }
        }
        ids.push(self.sep);
        Encoding { ids }
    }

    /// Greedy longest-match-first split of one basic token; a word with any piece missing
    /// from the vocabulary is `[UNK]` as a whole.
    fn word_pieces(&self, word: &str) -> Vec<u32> {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > MAX_CHARS_PER_WORD {
            return vec![self.unk];
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let mut candidate: String = chars.get(start..end).unwrap_or(&[]).iter().collect();
                if start > 0 {
                    candidate.insert_str(0, "##");
                }
                if let Some(&id) = self.vocab.get(&candidate) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => pieces.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        pieces
    }
}

/// BERT basic tokenization for an uncased model.
fn basic_tokens(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        if c.is_whitespace() {
            cleaned.push(' ');
        } else if is_cjk_ideograph(c) {
            cleaned.push(' ');
            cleaned.push(c);
            cleaned.push(' ');
        } else {
            cleaned.push(c);
        }
    }
    // Strip accents (decompose, drop combining marks), then lower-case.
    let normalised: String = cleaned
        .nfd()
        .filter(|c| c.general_category() != unicode_properties::GeneralCategory::NonspacingMark)
        .flat_map(char::to_lowercase)
        .collect();

    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in normalised.chars() {
        if c.is_whitespace() {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        } else if is_punctuation(c) {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            tokens.push(c.to_string());
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Control characters are dropped, except the whitespace ones (handled as spaces).
fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        c.general_category(),
        unicode_properties::GeneralCategory::Control | unicode_properties::GeneralCategory::Format
    )
}

/// BERT counts all ASCII non-alphanumeric symbols ($, +, ^, `…) as punctuation, plus every
/// Unicode punctuation character.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.general_category_group() == GeneralCategoryGroup::Punctuation
}

/// The CJK Unified Ideograph blocks (not Hiragana, Katakana or Hangul), which BERT splits
/// into single characters.
fn is_cjk_ideograph(c: char) -> bool {
    matches!(u32::from(c),
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> WordPieceTokenizer {
        let vocab = [
            "[PAD]",
            "[UNK]",
            "[CLS]",
            "[SEP]",
            "i",
            "want",
            "to",
            "cancel",
            "##led",
            "my",
            "sub",
            "##scription",
            ",",
            "!",
            "cafe",
            "中",
            "国",
            "$",
        ];
        WordPieceTokenizer::from_vocab(vocab.iter().map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn splits_words_punctuation_and_word_pieces() {
        let t = tokenizer();
        let ids = t
            .encode("I want to CANCELLED my subscription, Café!", 512)
            .ids;
        assert_eq!(ids, vec![2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 13, 3]);
    }

    #[test]
    fn unknown_words_cjk_controls_and_truncation() {
        let t = tokenizer();
        assert_eq!(
            t.encode("xyz 中国\u{7}$", 512).ids,
            vec![2, 1, 15, 16, 17, 3]
        );
        assert_eq!(t.encode("i want to cancel my", 4).ids, vec![2, 4, 5, 3]);
        assert_eq!(t.encode("", 512).ids, vec![2, 3]);
        assert_eq!(t.encode("i", 0).ids, vec![2, 3]);
    }

    #[test]
    fn a_vocabulary_without_special_tokens_is_refused() {
        assert!(WordPieceTokenizer::from_vocab(["a".to_string()]).is_err());
    }
}

//! A small private tokenizer for the lexicon analyser: lower-cased words with contractions
//! expanded ("don't" → "do not", and the apostrophe-less ASR spellings "dont", "youve"), an
//! ALL-CAPS mark per word, and the punctuation that the rules read (! ? . , ; :).

/// One token: a word (lower case) or a punctuation mark.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub text: String,
    /// The word was written in capitals (two letters or more), e.g. "NOT".
    pub caps: bool,
}

impl Token {
    pub fn is_punct(&self) -> bool {
        !self.text.chars().any(char::is_alphanumeric)
    }

    pub fn ends_sentence(&self) -> bool {
        matches!(self.text.as_str(), "." | "!" | "?")
    }
}

/// Contractions and their ASR spellings without the apostrophe.
const EXPANSIONS: &[(&str, &str)] = &[
    ("can't", "can not"),
    ("cant", "can not"),
    ("cannot", "can not"),
    ("won't", "will not"),
    ("wont", "will not"),
    ("shan't", "shall not"),
    ("ain't", "is not"),
    ("aint", "is not"),
    ("dont", "do not"),
    ("doesnt", "does not"),
    ("didnt", "did not"),
    ("isnt", "is not"),
    ("arent", "are not"),
    ("wasnt", "was not"),
    ("werent", "were not"),
    ("havent", "have not"),
    ("hasnt", "has not"),
    ("hadnt", "had not"),
    ("couldnt", "could not"),
    ("wouldnt", "would not"),
    ("shouldnt", "should not"),
    ("im", "i am"),
    ("ive", "i have"),
    ("youve", "you have"),
    ("youre", "you are"),
    ("weve", "we have"),
    ("thats", "that is"),
    ("whats", "what is"),
    ("theres", "there is"),
];

/// Words after which "'s" means "is" rather than a possessive.
const IS_BEARERS: &[&str] = &[
    "it",
    "that",
    "what",
    "there",
    "here",
    "he",
    "she",
    "everything",
    "nothing",
    "who",
    "where",
    "how",
    "this",
    "something",
    "someone",
    "nobody",
];

pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        // Typographic apostrophes are common in pasted or punctuated transcripts.
        let c = if c == '\u{2019}' || c == '\u{2018}' {
            '\''
        } else {
            c
        };
        if c.is_alphanumeric() || (c == '\'' && !word.is_empty()) {
            word.push(c);
            continue;
        }
        push_word(&mut out, &word);
        word.clear();
        if matches!(c, '!' | '?' | '.' | ',' | ';' | ':') {
            out.push(Token {
                text: c.to_string(),
                caps: false,
            });
        }
    }
    out
}

fn push_word(out: &mut Vec<Token>, raw: &str) {
    let raw = raw.trim_end_matches('\'');
    if raw.is_empty() {
        return;
    }
    let letters = raw.chars().filter(|c| c.is_alphabetic()).count();
    let caps = letters >= 2 && raw.chars().all(|c| !c.is_lowercase());
    let lower = raw.to_lowercase();
    let mut push = |text: &str| {
        out.push(Token {
            text: text.to_string(),
            caps,
        })
    };
    if let Some((_, expanded)) = EXPANSIONS.iter().find(|(from, _)| *from == lower) {
        expanded.split(' ').for_each(&mut push);
        return;
    }
    if let Some(stem) = lower.strip_suffix("n't") {
        push(stem);
        push("not");
        return;
    }
    for (suffix, full) in [
        ("'ve", "have"),
        ("'re", "are"),
        ("'ll", "will"),
        ("'d", "would"),
        ("'m", "am"),
    ] {
        if let Some(stem) = lower.strip_suffix(suffix) {
            push(stem);
            push(full);
            return;
        }
    }
    if let Some(stem) = lower.strip_suffix("'s") {
        push(stem);
        if IS_BEARERS.contains(&stem) {
            push("is");
        }
        return;
    }
    push(&lower);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokenize(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn expands_contractions_with_and_without_apostrophes() {
        assert_eq!(words("I don't know"), ["i", "do", "not", "know"]);
        assert_eq!(words("i dont know"), ["i", "do", "not", "know"]);
        assert_eq!(
            words("You’ve been great!"),
            ["you", "have", "been", "great", "!"]
        );
        assert_eq!(
            words("It's the company's fault."),
            ["it", "is", "the", "company", "fault", "."]
        );
        assert_eq!(words("won't, can't"), ["will", "not", ",", "can", "not"]);
    }

    #[test]
    fn marks_capitals_and_keeps_punctuation() {
        let t = tokenize("This is NOT ok?!");
        assert!(t.iter().any(|t| t.text == "not" && t.caps));
        assert!(!t.iter().any(|t| t.text == "this" && t.caps));
        assert_eq!(t.iter().filter(|t| t.is_punct()).count(), 2);
        assert!(tokenize("").is_empty());
        assert_eq!(words("'' ' ?"), ["?"]);
    }
}

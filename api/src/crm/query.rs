//! What a search box string means: a phone number in any common format, an email address, or
//! the start of a name. Names are folded (lower case, accents removed) the same way when they
//! are indexed and when they are searched, so "Zoë" finds "zoe" and "ZOE" finds "Zoë".

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::store::contacts::normalize_phone;

/// Most words of a name that are indexed (a longer display name adds nothing searchable).
const MAX_NAME_TOKENS: usize = 16;
/// Longest indexed word, in characters.
const MAX_TOKEN_CHARS: usize = 64;
/// Most words a search takes into account.
const MAX_QUERY_WORDS: usize = 4;

/// A search string, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactQuery {
    /// A phone number, as E.164.
    Phone(String),
    /// An email address or its beginning, lower-cased.
    Email(String),
    /// Folded name words; every one must start a word of the contact's names.
    Name(Vec<String>),
    /// Nothing searchable (only punctuation, or a phone-looking string that is no number).
    Nothing,
}

/// Lower case without accents: NFKD, combining marks dropped, then lower-cased.
pub fn fold(text: &str) -> String {
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

/// Apostrophes inside names ("O'Brien", "N’Diaye").
fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '’' | '`' | 'ʼ')
}

/// The words of a name as they are indexed: folded, split on anything that is not a letter,
/// a digit or an apostrophe, deduplicated, bounded in number and length. A word with an
/// apostrophe is indexed joined ("obrien") and by its parts ("o", "brien"), so "obri" and
/// "brien" both find "O'Brien".
pub fn name_tokens<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    words(names, true)
}

fn words<'a>(names: impl IntoIterator<Item = &'a str>, with_parts: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let push = |w: &str, out: &mut Vec<String>| {
        let w: String = w.chars().take(MAX_TOKEN_CHARS).collect();
        if !w.is_empty() && !out.contains(&w) {
            out.push(w);
        }
    };
    for name in names {
        let folded = fold(name);
        for chunk in folded.split(|c: char| !(c.is_alphanumeric() || is_apostrophe(c))) {
            let joined: String = chunk.chars().filter(|c| !is_apostrophe(*c)).collect();
            push(&joined, &mut out);
            if with_parts && chunk.chars().any(is_apostrophe) {
                for part in chunk.split(is_apostrophe) {
                    push(part, &mut out);
                }
            }
            if out.len() >= MAX_NAME_TOKENS {
                out.truncate(MAX_NAME_TOKENS);
                return out;
            }
        }
    }
    out
}

/// Whether the string is written like a phone number: digits with the usual separators and
/// an optional leading '+', and enough digits to be one.
fn looks_like_phone(q: &str) -> bool {
    let digits = q.chars().filter(char::is_ascii_digit).count();
    digits >= 4
        && q.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        && q.trim_start()
            .trim_start_matches('(')
            .find('+')
            .is_none_or(|i| i == 0)
}

/// Classifies `q`; `region` reads numbers without a country code ("415-555-0100" in "US").
pub fn parse_query(q: &str, region: &str) -> ContactQuery {
    let q = q.trim();
    if q.is_empty() || q.len() > 256 {
        return ContactQuery::Nothing;
    }
    if looks_like_phone(q) {
        return match normalize_phone(q, region) {
            Some(e164) => ContactQuery::Phone(e164),
            None => ContactQuery::Nothing,
        };
    }
    if q.contains('@') {
        return ContactQuery::Email(q.to_lowercase());
    }
    let found: Vec<String> = words([q], false)
        .into_iter()
        .take(MAX_QUERY_WORDS)
        .collect();
    if found.is_empty() {
        ContactQuery::Nothing
    } else {
        ContactQuery::Name(found)
    }
}

/// The exclusive upper bound of the strings that start with `prefix` (byte order, which is
/// SQLite's BINARY collation and PostgreSQL's "C" collation): `prefix` followed by the
/// greatest code point.
pub fn prefix_upper_bound(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phone_format_is_the_same_number() {
        let want = ContactQuery::Phone("+14155550100".into());
        for q in [
            "+1 (415) 555-0100",
            "4155550100",
            "415-555-0100",
            "(415) 555-0100",
            "1 415 555 0100",
            "+14155550100",
            " 415.555.0100 ",
        ] {
            assert_eq!(parse_query(q, "US"), want, "{q}");
        }
        // The region decides what a national number means.
        assert_eq!(
            parse_query("020 7946 0958", "GB"),
            ContactQuery::Phone("+442079460958".into())
        );
        assert_eq!(
            parse_query("+44 20 7946 0958", "US"),
            ContactQuery::Phone("+442079460958".into())
        );
    }

    #[test]
    fn phone_looking_strings_that_are_no_number_find_nothing() {
        assert_eq!(parse_query("1234", "US"), ContactQuery::Nothing);
        assert_eq!(parse_query("415-555-01000000", "US"), ContactQuery::Nothing);
        // A '+' in the middle is not a phone format.
        assert!(!looks_like_phone("415+5550100"));
    }

    #[test]
    fn emails_and_names() {
        assert_eq!(
            parse_query("Ann@Example.COM", "US"),
            ContactQuery::Email("ann@example.com".into())
        );
        assert_eq!(
            parse_query("Zoë  O'Brien", "US"),
            ContactQuery::Name(vec!["zoe".into(), "obrien".into()])
        );
        assert_eq!(
            parse_query("ÉLODIE", "US"),
            ContactQuery::Name(vec!["elodie".into()])
        );
        // Short digit strings are names (an apartment number, "Agent 7").
        assert_eq!(
            parse_query("agent 7", "US"),
            ContactQuery::Name(vec!["agent".into(), "7".into()])
        );
        assert_eq!(parse_query("  --  ", "US"), ContactQuery::Nothing);
        assert_eq!(parse_query("", "US"), ContactQuery::Nothing);
    }

    #[test]
    fn tokens_are_folded_deduplicated_and_bounded() {
        assert_eq!(
            name_tokens(["O’Brien-Núñez"]),
            vec![
                "obrien".to_string(),
                "o".into(),
                "brien".into(),
                "nunez".into()
            ]
        );
        assert_eq!(
            name_tokens(["José", "García", "José García"]),
            vec!["jose".to_string(), "garcia".to_string()]
        );
        let long = "w ".repeat(100) + &"x".repeat(500);
        let many: String = (0..100).map(|i| format!("n{i} ")).collect();
        assert!(name_tokens([many.as_str()]).len() <= MAX_NAME_TOKENS);
        assert!(
            name_tokens([long.as_str()])
                .iter()
                .all(|t| t.chars().count() <= MAX_TOKEN_CHARS)
        );
    }

    #[test]
    fn upper_bound_orders_after_every_extension() {
        let hi = prefix_upper_bound("ann");
        assert!("ann" < hi.as_str());
        assert!("annabel" < hi.as_str());
        assert!("anna\u{FFFF}" < hi.as_str());
        assert!("ano" > hi.as_str());
    }
}

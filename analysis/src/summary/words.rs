//! Word lists the summary uses: stop words and the cues of a request, an issue, an outcome
//! and a closing. English cues; other languages fall back on TF-IDF and position alone.

use super::units::is_word_char;

const STOPWORDS: &[&str] = &[
    "a", "about", "all", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by",
    "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he", "her", "here",
    "him", "his", "how", "i", "i'd", "i'll", "i'm", "i've", "if", "in", "is", "it", "it's", "its",
    "just", "let", "me", "my", "no", "not", "now", "of", "on", "one", "or", "our", "out", "please",
    "really", "right", "she", "so", "that", "that's", "the", "their", "them", "then", "there",
    "they", "this", "to", "too", "uh", "um", "up", "us", "very", "was", "we", "we'll", "we're",
    "well", "were", "what", "when", "where", "which", "who", "will", "with", "would", "yeah",
    "yes", "you", "you're", "your", "okay", "ok", "oh", "like", "get", "got", "go", "going",
    "know", "see", "want", "need", "also", "some", "there's", "can't", "don't", "gonna",
];

const PLEASANTRIES: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "bye",
    "goodbye",
    "good",
    "morning",
    "afternoon",
    "evening",
    "great",
    "sure",
    "fine",
    "perfect",
    "alright",
    "welcome",
    "day",
    "nice",
    "have",
    "awesome",
    "cool",
    "cheers",
    "mhm",
    "hmm",
    "sorry",
    "speaking",
    "moment",
    "hold",
    "wait",
    "much",
    "appreciate",
];

/// Cue phrases (as word sequences) of a customer stating what they want.
const REQUEST_CUES: &[&[&str]] = &[
    &["calling", "about"],
    &["calling", "because"],
    &["calling", "to"],
    &["calling", "regarding"],
    &["i", "need"],
    &["i", "want"],
    &["i'd", "like"],
    &["i", "would", "like"],
    &["looking", "for"],
    &["trying", "to"],
    &["help", "me"],
    &["question"],
    &["can", "you"],
    &["could", "you"],
    &["wondering"],
    &["how", "do", "i"],
    &["want", "to"],
    &["need", "to"],
];

const ISSUE_CUES: &[&[&str]] = &[
    &["problem"],
    &["issue"],
    &["issues"],
    &["error"],
    &["broken"],
    &["not", "working"],
    &["doesn't", "work"],
    &["isn't", "working"],
    &["stopped", "working"],
    &["charged", "twice"],
    &["overcharged"],
    &["wrong"],
    &["failed"],
    &["fails"],
    &["unable"],
    &["cannot"],
    &["can't"],
    &["complaint"],
    &["refund"],
    &["cancel"],
    &["missing"],
    &["never", "arrived"],
    &["disconnected"],
    &["outage"],
    &["keeps", "dropping"],
];

const OUTCOME_CUES: &[&[&str]] = &[
    &["resolved"],
    &["fixed"],
    &["processed"],
    &["refunded"],
    &["issued"],
    &["cancelled"],
    &["canceled"],
    &["updated"],
    &["scheduled"],
    &["booked"],
    &["credited"],
    &["applied"],
    &["activated"],
    &["done"],
    &["all", "set"],
    &["has", "been"],
    &["have", "been"],
    &["completed"],
    &["waived"],
    &["replaced"],
    &["approved"],
    &["reset"],
];

/// A customer saying the issue is not solved.
const UNRESOLVED_CUES: &[&[&str]] = &[
    &["still", "not"],
    &["still", "doesn't"],
    &["still", "don't"],
    &["not", "working"],
    &["doesn't", "work"],
    &["not", "happy"],
    &["not", "satisfied"],
    &["unacceptable"],
    &["cancel"],
    &["escalate"],
    &["manager"],
    &["supervisor"],
    &["waste", "of", "time"],
    &["didn't", "help"],
    &["not", "resolved"],
    &["no", "solution"],
];

/// A customer saying the issue is solved.
const SATISFIED_CUES: &[&[&str]] = &[
    &["that", "fixed", "it"],
    &["that", "worked"],
    &["it", "works"],
    &["working", "now"],
    &["works", "now"],
    &["perfect"],
    &["great"],
    &["thank", "you"],
    &["thanks"],
    &["appreciate"],
    &["problem", "solved"],
];

/// Greeting and closing formulas: they open and close every call and summarise none.
const FORMULA_CUES: &[&[&str]] = &[
    &["thank", "you", "for", "calling"],
    &["how", "can", "i", "help"],
    &["how", "may", "i", "help"],
    &["how", "can", "i", "assist"],
    &["how", "may", "i", "assist"],
    &["my", "name", "is"],
    &["thanks", "for", "calling"],
    &["anything", "else"],
    &["have", "a", "great"],
    &["have", "a", "nice"],
    &["have", "a", "good"],
    &["goodbye"],
    &["bye"],
];

/// Openers that carry no content before a customer's reason ("Hi, yes, so…").
const OPENERS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "yes",
    "yeah",
    "yep",
    "so",
    "um",
    "uh",
    "well",
    "okay",
    "ok",
    "good",
    "morning",
    "afternoon",
    "evening",
    "there",
    "oh",
];

/// Lead-ins of a stated reason, removed from the one-line reason.
const LEAD_INS: &[&[&str]] = &[
    &["the", "reason", "i'm", "calling", "is"],
    &["the", "reason", "i", "am", "calling", "is"],
    &["i'm", "calling", "because"],
    &["i", "am", "calling", "because"],
    &["i'm", "calling", "about"],
    &["i", "am", "calling", "about"],
    &["i'm", "calling", "regarding"],
    &["i", "am", "calling", "regarding"],
    &["i'm", "calling", "to"],
    &["i", "am", "calling", "to"],
    &["i", "was", "calling", "about"],
    &["i", "was", "calling", "to"],
    &["i'm", "calling", "since"],
];

pub(crate) fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

fn contains_phrase(words: &[String], phrases: &[&[&str]]) -> bool {
    phrases.iter().any(|phrase| {
        !phrase.is_empty()
            && words
                .windows(phrase.len())
                .any(|w| w.iter().zip(phrase.iter()).all(|(a, b)| a == b))
    })
}

pub(crate) fn has_request_cue(words: &[String]) -> bool {
    contains_phrase(words, REQUEST_CUES)
}

pub(crate) fn has_issue_cue(words: &[String]) -> bool {
    contains_phrase(words, ISSUE_CUES)
}

pub(crate) fn has_outcome_cue(words: &[String]) -> bool {
    contains_phrase(words, OUTCOME_CUES)
}

pub(crate) fn is_formula(words: &[String]) -> bool {
    contains_phrase(words, FORMULA_CUES)
}

pub(crate) fn has_unresolved_cue(words: &[String]) -> bool {
    contains_phrase(words, UNRESOLVED_CUES)
}

pub(crate) fn has_satisfied_cue(words: &[String]) -> bool {
    contains_phrase(words, SATISFIED_CUES)
}

/// Greetings, thanks and fillers only ("Thank you so much, have a great day").
pub(crate) fn is_pleasantry_only(words: &[String]) -> bool {
    words
        .iter()
        .all(|w| PLEASANTRIES.contains(&w.as_str()) || is_stopword(w))
}

/// Words of `text` with their byte ranges, lower-cased.
fn words_with_offsets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut current = String::new();
    for (i, c) in text.char_indices() {
        let c2 = if c == '’' { '\'' } else { c };
        if is_word_char(c2) || (c2 == '\'' && start.is_some()) {
            start.get_or_insert(i);
            current.extend(c2.to_lowercase());
        } else if let Some(s) = start.take() {
            out.push((s, std::mem::take(&mut current)));
        }
    }
    if let Some(s) = start {
        out.push((s, current));
    }
    out
}

/// The reason without its openers and lead-in: "Hi, yes, I'm calling because my internet
/// keeps dropping." → "My internet keeps dropping."
pub(crate) fn strip_lead_in(text: &str) -> &str {
    let words = words_with_offsets(text);
    let mut k = 0;
    while words
        .get(k)
        .is_some_and(|(_, w)| OPENERS.contains(&w.as_str()))
    {
        k += 1;
    }
    for lead in LEAD_INS {
        let matches = lead.len() <= words.len().saturating_sub(k)
            && lead
                .iter()
                .enumerate()
                .all(|(j, l)| words.get(k + j).is_some_and(|(_, w)| w == l));
        if matches {
            k += lead.len();
            break;
        }
    }
    // Nothing left after the lead-in: keep the sentence as it was said.
    match words.get(k) {
        Some(&(start, _)) if k > 0 => text.get(start..).unwrap_or(text),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        super::super::units::words_lower(s)
    }

    #[test]
    fn cues() {
        assert!(has_request_cue(&w("I'm calling about my bill")));
        assert!(!has_request_cue(&w("The weather is nice")));
        assert!(has_issue_cue(&w("It is still not working")));
        assert!(has_issue_cue(&w("I was charged twice")));
        assert!(!has_issue_cue(&w("Everything works")));
        assert!(has_outcome_cue(&w("Your refund has been processed")));
        assert!(is_formula(&w("Is there anything else I can help with?")));
        assert!(is_pleasantry_only(&w(
            "Thank you so much, have a great day"
        )));
        assert!(!is_pleasantry_only(&w("Thank you, my router is broken")));
    }

    #[test]
    fn strips_openers_and_lead_ins() {
        assert_eq!(
            strip_lead_in("Hi, yes, I'm calling because my internet keeps dropping."),
            "my internet keeps dropping."
        );
        assert_eq!(strip_lead_in("I’m calling about my bill."), "my bill.");
        assert_eq!(
            strip_lead_in("My card was declined."),
            "My card was declined."
        );
        assert_eq!(strip_lead_in("Hello."), "Hello.");
        assert_eq!(strip_lead_in("مرحبا، لدي مشكلة"), "مرحبا، لدي مشكلة");
    }
}

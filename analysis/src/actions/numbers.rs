//! Numbers as transcripts write them: digits ("24"), words ("twenty four", "twenty-four",
//! "a couple of") and ordinals ("3rd", "third", "twenty-first").

const UNITS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];

const TENS: &[(&str, u32)] = &[
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];

const ORDINAL_UNITS: &[&str] = &[
    "zeroth",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
];

const ORDINAL_TENS: &[(&str, u32)] = &[("twentieth", 20), ("thirtieth", 30)];

fn unit_word(word: &str) -> Option<u32> {
    UNITS.iter().position(|u| *u == word).map(|p| p as u32)
}

fn tens_word(word: &str) -> Option<u32> {
    TENS.iter().find(|(w, _)| *w == word).map(|&(_, v)| v)
}

fn ordinal_unit_word(word: &str) -> Option<u32> {
    ORDINAL_UNITS
        .iter()
        .position(|u| *u == word)
        .map(|p| p as u32)
}

/// A cardinal number starting at `tokens[i]`: its value and how many tokens it used.
pub(crate) fn cardinal_at(tokens: &[String], i: usize) -> Option<(u32, usize)> {
    let word = tokens.get(i)?.as_str();
    let next = tokens.get(i + 1).map(String::as_str);
    let after = tokens.get(i + 2).map(String::as_str);
    if !word.is_empty() && word.len() <= 6 && word.bytes().all(|b| b.is_ascii_digit()) {
        return word.parse().ok().map(|v| (v, 1));
    }
    match (word, next, after) {
        ("a" | "an", Some("couple"), Some("of")) => return Some((2, 3)),
        ("a" | "an", Some("couple" | "pair"), _) => return Some((2, 2)),
        ("a", Some("few"), _) => return Some((3, 2)),
        ("couple", Some("of"), _) => return Some((2, 2)),
        ("few" | "several", _, _) => return Some((3, 1)),
        ("a" | "an", _, _) => return Some((1, 1)),
        _ => {}
    }
    if let Some((tens, unit)) = word.split_once('-') {
        let tens = tens_word(tens)?;
        let unit = unit_word(unit).filter(|u| (1..10).contains(u))?;
        return Some((tens + unit, 1));
    }
    if let Some(v) = unit_word(word) {
        return Some((v, 1));
    }
    let tens = tens_word(word)?;
    match next.and_then(unit_word).filter(|u| (1..10).contains(u)) {
        Some(unit) => Some((tens + unit, 2)),
        None => Some((tens, 1)),
    }
}

/// A day-of-month ordinal or plain number (1–31) at `tokens[i]`: "3rd", "3", "third",
/// "twenty-first", "twenty first".
pub(crate) fn day_of_month_at(tokens: &[String], i: usize) -> Option<(u32, usize)> {
    let word = tokens.get(i)?.as_str();
    let digits: String = word.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !digits.is_empty() {
        let suffix = &word[digits.len()..];
        if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
            return None;
        }
        let v: u32 = digits.parse().ok()?;
        return (1..=31).contains(&v).then_some((v, 1));
    }
    if let Some(v) = ordinal_unit_word(word).filter(|v| *v >= 1) {
        return Some((v, 1));
    }
    if let Some(&(_, v)) = ORDINAL_TENS.iter().find(|(w, _)| *w == word) {
        return Some((v, 1));
    }
    if let Some((tens, unit)) = word.split_once('-') {
        let tens = tens_word(tens).filter(|t| *t <= 30)?;
        let unit = ordinal_unit_word(unit).filter(|u| (1..10).contains(u))?;
        let v = tens + unit;
        return (v <= 31).then_some((v, 1));
    }
    let tens = tens_word(word).filter(|t| *t <= 30)?;
    let unit = tokens
        .get(i + 1)
        .and_then(|w| ordinal_unit_word(w))
        .filter(|u| (1..10).contains(u))?;
    let v = tens + unit;
    (v <= 31).then_some((v, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn cardinals_in_digits_and_words() {
        assert_eq!(cardinal_at(&toks("24 hours"), 0), Some((24, 1)));
        assert_eq!(cardinal_at(&toks("twenty four hours"), 0), Some((24, 2)));
        assert_eq!(cardinal_at(&toks("twenty-four hours"), 0), Some((24, 1)));
        assert_eq!(cardinal_at(&toks("two days"), 0), Some((2, 1)));
        assert_eq!(cardinal_at(&toks("a couple of days"), 0), Some((2, 3)));
        assert_eq!(cardinal_at(&toks("a few days"), 0), Some((3, 2)));
        assert_eq!(cardinal_at(&toks("an hour"), 0), Some((1, 1)));
        assert_eq!(cardinal_at(&toks("twenty days"), 0), Some((20, 1)));
        assert_eq!(cardinal_at(&toks("hours"), 0), None);
        assert_eq!(cardinal_at(&toks("99999999 x"), 0), None);
    }

    #[test]
    fn days_of_month() {
        assert_eq!(day_of_month_at(&toks("3rd"), 0), Some((3, 1)));
        assert_eq!(day_of_month_at(&toks("31"), 0), Some((31, 1)));
        assert_eq!(day_of_month_at(&toks("third"), 0), Some((3, 1)));
        assert_eq!(day_of_month_at(&toks("twenty-first"), 0), Some((21, 1)));
        assert_eq!(day_of_month_at(&toks("twenty first"), 0), Some((21, 2)));
        assert_eq!(day_of_month_at(&toks("thirtieth"), 0), Some((30, 1)));
        assert_eq!(day_of_month_at(&toks("32nd"), 0), None);
        assert_eq!(day_of_month_at(&toks("0"), 0), None);
        assert_eq!(day_of_month_at(&toks("3pm"), 0), None);
    }
}

//! Dialled strings → something routable: an extension (digits) or an E.164 number.

use crate::store::contacts::normalize_phone;

/// The user part of whatever a phone sent: `sip:+1 (415) 555-2671@host;user=phone` →
/// `+14155552671`. Keeps digits, a leading '+', and `*`/`#` (feature codes); drops visual
/// separators. Bounded: at most 64 characters are looked at.
pub fn dialled_digits(raw: &str) -> String {
    let raw = raw.trim();
    let raw = raw
        .strip_prefix("sip:")
        .or_else(|| raw.strip_prefix("sips:"))
        .or_else(|| raw.strip_prefix("tel:"))
        .unwrap_or(raw);
    let user = raw.split(['@', ';']).next().unwrap_or_default();
    let mut out = String::new();
    for c in user.chars().take(64) {
        match c {
            '0'..='9' | '*' | '#' => out.push(c),
            '+' if out.is_empty() => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            // Anything else (letters: a SIP name, not a number) is kept so it matches nothing.
            other => out.push(other),
        }
    }
    out
}

/// E.164 when the number is valid (with `+`, or national in `region`). Also accepts the
/// international prefix "00" that many phones dial.
pub fn to_e164(dialled: &str, region: &str) -> Option<String> {
    if dialled.is_empty()
        || !dialled
            .trim_start_matches('+')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if let Some(rest) = dialled.strip_prefix("00") {
        return normalize_phone(&format!("+{rest}"), region);
    }
    normalize_phone(dialled, region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        assert_eq!(
            dialled_digits("sip:+1 (415) 555-2671@host;user=phone"),
            "+14155552671"
        );
        assert_eq!(dialled_digits("1001"), "1001");
        assert_eq!(dialled_digits("tel:+44-20-7946-0958"), "+442079460958");
        assert_eq!(dialled_digits("alice@example.com"), "alice");
        assert_eq!(dialled_digits(""), "");
        assert_eq!(dialled_digits(&"9".repeat(1000)).len(), 64);
    }

    #[test]
    fn e164() {
        assert_eq!(to_e164("4155552671", "US").as_deref(), Some("+14155552671"));
        assert_eq!(
            to_e164("+442079460958", "US").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            to_e164("00442079460958", "US").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(to_e164("1001", "US"), None);
        assert_eq!(to_e164("alice", "US"), None);
        assert_eq!(to_e164("", "US"), None);
    }
}

//! Keyword trackers: an organization's lists of phrases (competitor names, pricing talk,
//! objections, feature requests…) and where in a call each was said.
//!
//! Matching is whole-word, case-, accent- and Arabic-variant-insensitive with `*`
//! wildcards (see [`crate::phrase`]). Each hit carries the words as the speaker said them and
//! the time they were said: from word timings when the turn has them, else interpolated
//! within the turn (the hit says which).
//!
//! ```
//! use callscope_analysis::trackers::{KeywordTracker, find_tracker_hits};
//! use callscope_analysis::{Role, Turn};
//!
//! let tracker: KeywordTracker = serde_json::from_str(r#"{
//!     "id": "competitors", "name": "Competitors", "category": "competitor",
//!     "phrases": ["globex", "initech*"], "roles": ["customer"]
//! }"#).unwrap();
//! let turns = [Turn {
//!     index: 0, role: Role::Customer, speaker: "Caller".into(), start_ms: 0, end_ms: 2_000,
//!     text: "Initech's offer is better".into(), words: vec![],
//! }];
//! let hits = find_tracker_hits(&turns, &[tracker]);
//! assert_eq!(hits[0].phrase, "Initech's");
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::phrase::{PhraseError, PhraseMatcher, keep_longest};
use crate::text::{TimeSource, TurnTokens};
use crate::types::{Role, Turn};

/// What a tracker is about (for grouping and for call classification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackerCategory {
    Competitor,
    Pricing,
    Objection,
    Feature,
    Custom,
}

fn active_by_default() -> bool {
    true
}

/// One keyword tracker as an organization configures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordTracker {
    pub id: String,
    pub name: String,
    pub category: TrackerCategory,
    /// Inactive trackers are kept but find nothing.
    #[serde(default = "active_by_default")]
    pub active: bool,
    /// Phrases; `*` = any one word, `word*` = any word starting with `word`.
    pub phrases: Vec<String>,
    /// Only turns of these roles are searched; absent or empty = every role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
}

/// Why a tracker configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrackerError {
    #[error("tracker {id:?} has no phrases")]
    NoPhrases { id: String },
    #[error("tracker {id:?} has an empty id or name")]
    MissingName { id: String },
    #[error("tracker {id:?}: {source}")]
    Phrase {
        id: String,
        #[source]
        source: PhraseError,
    },
}

/// Checks a tracker before it is saved, so that evaluation never meets a bad phrase.
pub fn validate_tracker(tracker: &KeywordTracker) -> Result<(), TrackerError> {
    if tracker.id.trim().is_empty() || tracker.name.trim().is_empty() {
        return Err(TrackerError::MissingName {
            id: tracker.id.clone(),
        });
    }
    if tracker.phrases.is_empty() {
        return Err(TrackerError::NoPhrases {
            id: tracker.id.clone(),
        });
    }
    PhraseMatcher::new(&tracker.phrases).map_err(|source| TrackerError::Phrase {
        id: tracker.id.clone(),
        source,
    })?;
    Ok(())
}

/// One place a tracker's phrase was said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerHit {
    pub tracker_id: String,
    pub tracker_name: String,
    pub category: TrackerCategory,
    /// Index of the turn (`Turn::index`).
    pub turn: usize,
    pub role: Role,
    pub speaker: String,
    /// The words as said in the transcript.
    pub phrase: String,
    /// The configured phrase that matched.
    pub matched: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub time_source: TimeSource,
}

/// Trackers compiled once, to run over many calls.
#[derive(Debug, Clone)]
pub struct TrackerSet {
    trackers: Vec<(KeywordTracker, PhraseMatcher)>,
}

impl TrackerSet {
    /// Compiles the active trackers; phrases that do not compile are skipped (configuration
    /// is checked with [`validate_tracker`] when it is saved).
    pub fn new(trackers: &[KeywordTracker]) -> Self {
        TrackerSet {
            trackers: trackers
                .iter()
                .filter(|t| t.active)
                .map(|t| (t.clone(), PhraseMatcher::lenient(&t.phrases)))
                .filter(|(_, m)| !m.is_empty())
                .collect(),
        }
    }

    /// Every hit in the call, in turn order then time order.
    pub fn find_hits(&self, turns: &[Turn]) -> Vec<TrackerHit> {
        let mut hits = Vec::new();
        for turn in turns {
            if turn.text.is_empty() {
                continue;
            }
            let tokens = TurnTokens::new(turn);
            for (tracker, matcher) in &self.trackers {
                if let Some(roles) = &tracker.roles
                    && !roles.is_empty()
                    && !roles.contains(&turn.role)
                {
                    continue;
                }
                let found = keep_longest(matcher.find_tokens(&tokens.tokens, &turn.text));
                for m in found {
                    let (span, time_source) =
                        tokens.time_of_tokens(turn, m.first_token, m.last_token);
                    let matched = matcher
                        .phrases()
                        .get(m.phrase)
                        .map(|p| p.source.clone())
                        .unwrap_or_default();
                    hits.push(TrackerHit {
                        tracker_id: tracker.id.clone(),
                        tracker_name: tracker.name.clone(),
                        category: tracker.category,
                        turn: turn.index,
                        role: turn.role,
                        speaker: turn.speaker.clone(),
                        phrase: m.text,
                        matched,
                        start_ms: span.start_ms,
                        end_ms: span.end_ms,
                        time_source,
                    });
                }
            }
        }
        hits.sort_by_key(|h| (h.turn, h.start_ms));
        hits
    }
}

/// Every hit of the active `trackers` in the call.
pub fn find_tracker_hits(turns: &[Turn], trackers: &[KeywordTracker]) -> Vec<TrackerHit> {
    TrackerSet::new(trackers).find_hits(turns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TimedWord;

    fn tracker(id: &str, category: TrackerCategory, phrases: &[&str]) -> KeywordTracker {
        KeywordTracker {
            id: id.into(),
            name: id.to_uppercase(),
            category,
            active: true,
            phrases: phrases.iter().map(|p| p.to_string()).collect(),
            roles: None,
        }
    }

    fn turn(index: usize, role: Role, start: u64, end: u64, text: &str) -> Turn {
        Turn {
            index,
            role,
            speaker: match role {
                Role::Agent => "Agent".into(),
                Role::Customer => "Customer".into(),
                Role::Unknown => "Speaker 1".into(),
            },
            start_ms: start,
            end_ms: end,
            text: text.into(),
            words: Vec::new(),
        }
    }

    fn timed(mut t: Turn) -> Turn {
        // Even word timings over the turn: a stand-in for ASR word times, exact enough to
        // tell word timings from interpolation.
        let words: Vec<&str> = t.text.split_whitespace().collect();
        let step = t.duration_ms() / words.len().max(1) as u64;
        t.words = words
            .iter()
            .enumerate()
            .map(|(i, w)| TimedWord {
                text: (*w).into(),
                start_ms: t.start_ms + step * i as u64,
                end_ms: t.start_ms + step * (i as u64 + 1),
            })
            .collect();
        t
    }

    #[test]
    fn hits_with_word_timings_and_interpolation() {
        let turns = vec![
            timed(turn(
                0,
                Role::Customer,
                10_000,
                14_000,
                "We are also talking to Acme Corp about this",
            )),
            turn(1, Role::Agent, 15_000, 17_000, "Acme is pricier."),
        ];
        let trackers = vec![tracker(
            "acme",
            TrackerCategory::Competitor,
            &["acme", "acme corp"],
        )];
        let hits = find_tracker_hits(&turns, &trackers);
        assert_eq!(hits.len(), 2, "{hits:?}");
        let h = &hits[0];
        assert_eq!(h.phrase, "Acme Corp");
        assert_eq!(h.matched, "acme corp");
        assert_eq!(
            (h.turn, h.role, h.speaker.as_str()),
            (0, Role::Customer, "Customer")
        );
        assert_eq!(h.time_source, TimeSource::WordTimings);
        // Words 5 and 6 of 9 over 4000 ms: step 444 ms.
        assert_eq!((h.start_ms, h.end_ms), (10_000 + 444 * 5, 10_000 + 444 * 7));
        let h = &hits[1];
        assert_eq!(h.phrase, "Acme");
        assert_eq!(h.time_source, TimeSource::Interpolated);
        // "Acme" is chars 0..4 of 16 over 2000 ms.
        assert_eq!((h.start_ms, h.end_ms), (15_000, 15_500));
    }

    #[test]
    fn inactive_trackers_and_role_filters() {
        let turns = vec![
            turn(0, Role::Agent, 0, 1000, "our price is ten dollars"),
            turn(1, Role::Customer, 1000, 2000, "that price is too expensive"),
        ];
        let mut inactive = tracker("p", TrackerCategory::Pricing, &["price"]);
        inactive.active = false;
        assert!(find_tracker_hits(&turns, &[inactive]).is_empty());

        let mut customer_only = tracker("p", TrackerCategory::Pricing, &["price", "expens*"]);
        customer_only.roles = Some(vec![Role::Customer]);
        let hits = find_tracker_hits(&turns, &[customer_only]);
        let phrases: Vec<_> = hits.iter().map(|h| h.phrase.as_str()).collect();
        assert_eq!(phrases, ["price", "expensive"]);
        assert!(hits.iter().all(|h| h.role == Role::Customer));
    }

    #[test]
    fn arabic_tracker() {
        let turns = vec![turn(0, Role::Customer, 0, 3000, "أُرِيد إلغـاء الاشتراك الآن")];
        let t = tracker("cancel", TrackerCategory::Objection, &["الغاء الاشتراك"]);
        let hits = find_tracker_hits(&turns, &[t]);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].phrase, "إلغـاء الاشتراك");
    }

    #[test]
    fn empty_text_one_word_and_no_turns() {
        let t = tracker("x", TrackerCategory::Custom, &["hello"]);
        assert!(find_tracker_hits(&[], std::slice::from_ref(&t)).is_empty());
        let turns = vec![
            turn(0, Role::Agent, 0, 500, ""),
            turn(1, Role::Unknown, 500, 900, "Hello"),
        ];
        let hits = find_tracker_hits(&turns, &[t]);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (hits[0].turn, hits[0].start_ms, hits[0].end_ms),
            (1, 500, 900)
        );
    }

    #[test]
    fn validation_and_serde() {
        let good = tracker("a", TrackerCategory::Feature, &["dark mode", "api*"]);
        assert!(validate_tracker(&good).is_ok());
        let mut bad = good.clone();
        bad.phrases.push("* *".into());
        assert!(matches!(
            validate_tracker(&bad),
            Err(TrackerError::Phrase { .. })
        ));
        bad.phrases.clear();
        assert!(matches!(
            validate_tracker(&bad),
            Err(TrackerError::NoPhrases { .. })
        ));

        let parsed: KeywordTracker = serde_json::from_str(
            r#"{"id":"c","name":"Competitors","category":"competitor","phrases":["acme"]}"#,
        )
        .unwrap();
        assert!(parsed.active);
        assert_eq!(parsed.roles, None);
        let hit = TrackerHit {
            tracker_id: "c".into(),
            tracker_name: "Competitors".into(),
            category: TrackerCategory::Competitor,
            turn: 0,
            role: Role::Agent,
            speaker: "Agent".into(),
            phrase: "Acme".into(),
            matched: "acme".into(),
            start_ms: 1,
            end_ms: 2,
            time_source: TimeSource::Interpolated,
        };
        let json = serde_json::to_value(&hit).unwrap();
        assert_eq!(json["time_source"], "interpolated");
        assert_eq!(json["category"], "competitor");
        let back: TrackerHit = serde_json::from_value(json).unwrap();
        assert_eq!(back, hit);
    }
}

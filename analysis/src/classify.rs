//! Call type (sales, support, complaint, inquiry, follow-up, general, or an organization's
//! own list) from signals: tracker hits and rule flags the caller maps to labels, plus
//! built-in keyword cues. A manager's manual override wins over the computed type and
//! survives re-analysis; the computed type is still reported next to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::summary::units::words_lower;
use crate::types::{Role, Turn};

/// Where a signal comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum SignalSource {
    Tracker(String),
    Rule(String),
    /// A keyword cue of the call type list (the cue phrase).
    Keyword(String),
    Other(String),
}

/// Evidence for a call type: `label` is a type name or one of its aliases (a tracker
/// category such as "pricing", a rule category such as "escalation").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationSignal {
    pub label: String,
    /// Non-finite or non-positive weights are ignored; weights above 1000 count as 1000.
    pub weight: f32,
    pub source: SignalSource,
}

/// One call type of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallTypeDef {
    pub name: String,
    /// Signal labels that count for this type (case-insensitive; '-' and ' ' equal '_').
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Words or phrases in the transcript that count for this type (whole words).
    #[serde(default)]
    pub cues: Vec<String>,
}

/// The call types an organization classifies into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallTypeSet {
    pub types: Vec<CallTypeDef>,
    /// The type of a call without enough evidence for any other.
    pub fallback: String,
    /// Least total weight a type needs to win.
    pub min_evidence: f32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassifyError {
    #[error("the call type list is empty")]
    NoTypes,
    #[error("call type {0:?} is listed more than once")]
    DuplicateType(String),
    #[error("a call type has an empty name")]
    EmptyName,
    #[error("the fallback type {0:?} is not in the list")]
    UnknownFallback(String),
    #[error("min_evidence must be a finite number ≥ 0, not {0}")]
    BadMinEvidence(f32),
}

/// A type's total evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeScore {
    pub call_type: String,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The type to show: the manual override when there is one, else `computed_type`.
    pub call_type: String,
    /// What the signals say.
    pub computed_type: String,
    /// Confidence in `computed_type`, in [0, 1]: its share of all evidence, scaled down
    /// while the evidence is thin.
    pub confidence: f32,
    /// The signals that counted for `computed_type`, strongest first.
    pub decided_by: Vec<ClassificationSignal>,
    /// Every type's evidence, in list order.
    pub scores: Vec<TypeScore>,
    pub manual_override: Option<String>,
}

/// Largest weight one signal counts with: keeps the sums finite.
const MAX_SIGNAL_WEIGHT: f32 = 1_000.0;
/// Evidence at which a type's confidence stops being scaled down.
const FULL_EVIDENCE: f32 = 3.0;
/// An agent's words count for less than a customer's: the customer says why they call.
const AGENT_CUE_WEIGHT: f32 = 0.6;
/// A cue in the customer's opening turns states why they called: the strongest evidence of
/// the call's type there is.
const OPENING_CUE_WEIGHT: f32 = 2.0;
/// The customer's first turns with text that count as the opening.
const OPENING_TURNS: usize = 2;

fn def(name: &str, aliases: &[&str], cues: &[&str]) -> CallTypeDef {
    CallTypeDef {
        name: name.to_string(),
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        cues: cues.iter().map(|s| s.to_string()).collect(),
    }
}

impl Default for CallTypeSet {
    /// The built-in list: sales, support, complaint, inquiry, follow_up, general.
    fn default() -> Self {
        CallTypeSet {
            types: vec![
                def(
                    "sales",
                    &["pricing", "competitor", "objection", "purchase", "upsell"],
                    &[
                        "buy",
                        "purchase",
                        "pricing",
                        "price",
                        "quote",
                        "discount",
                        "upgrade",
                        "subscribe",
                        "sign up",
                        "interested in",
                        "special offer",
                        "demo",
                        "free trial",
                        "how much",
                        "contract",
                    ],
                ),
                def(
                    "support",
                    &["technical", "troubleshooting", "outage", "bug"],
                    &[
                        "not working",
                        "doesn't work",
                        "stopped working",
                        "error",
                        "broken",
                        "reset",
                        "password",
                        "install",
                        "set up",
                        "troubleshoot",
                        "crash",
                        "crashes",
                        "won't connect",
                        "log in",
                        "can't access",
                        "router",
                    ],
                ),
                def(
                    "complaint",
                    &[
                        "escalation",
                        "profanity",
                        "negative_sentiment",
                        "dissatisfaction",
                    ],
                    &[
                        "complaint",
                        "complain",
                        "unacceptable",
                        "terrible",
                        "frustrated",
                        "disappointed",
                        "ridiculous",
                        "your manager",
                        "supervisor",
                        "worst",
                        "charged twice",
                        "overcharged",
                        "cancel my account",
                        "fed up",
                    ],
                ),
                def(
                    "inquiry",
                    &["feature", "question", "information"],
                    &[
                        "question",
                        "wondering",
                        "information",
                        "opening hours",
                        "do you offer",
                        "how does",
                        "find out",
                        "my balance",
                        "is it possible",
                        "do you have",
                    ],
                ),
                def(
                    "follow_up",
                    &["followup", "callback"],
                    &[
                        "follow up",
                        "following up",
                        "called before",
                        "called yesterday",
                        "called last week",
                        "calling back",
                        "case number",
                        "ticket number",
                        "reference number",
                        "still waiting",
                        "last time",
                    ],
                ),
                def("general", &[], &[]),
            ],
            fallback: "general".to_string(),
            min_evidence: 1.0,
        }
    }
}

/// Label comparison form: lower case, '-' and ' ' as '_'.
fn normalise_label(label: &str) -> String {
    label
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == '-' || c == ' ' { '_' } else { c })
        .collect()
}

impl CallTypeSet {
    /// Checks the list: names non-empty and unique (as labels), fallback listed.
    pub fn validate(&self) -> Result<(), ClassifyError> {
        if self.types.is_empty() {
            return Err(ClassifyError::NoTypes);
        }
        if !self.min_evidence.is_finite() || self.min_evidence < 0.0 {
            return Err(ClassifyError::BadMinEvidence(self.min_evidence));
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.types {
            let name = normalise_label(&t.name);
            if name.is_empty() {
                return Err(ClassifyError::EmptyName);
            }
            if !seen.insert(name) {
                return Err(ClassifyError::DuplicateType(t.name.clone()));
            }
        }
        if !seen.contains(&normalise_label(&self.fallback)) {
            return Err(ClassifyError::UnknownFallback(self.fallback.clone()));
        }
        Ok(())
    }

    /// The position of the type a label counts for, if any.
    fn type_of_label(&self, label: &str) -> Option<usize> {
        let label = normalise_label(label);
        self.types.iter().position(|t| {
            normalise_label(&t.name) == label
                || t.aliases.iter().any(|a| normalise_label(a) == label)
        })
    }
}

/// Keyword-cue signals of the transcript: each cue phrase of each type counts once per call,
/// with the customer's (or unknown speaker's) weight 1 and the agent's lower.
pub fn keyword_signals(turns: &[Turn], types: &CallTypeSet) -> Vec<ClassificationSignal> {
    let mut customer_turns_seen = 0;
    let turn_words: Vec<(f32, Vec<String>)> = turns
        .iter()
        .map(|t| {
            let weight = match t.role {
                Role::Agent => AGENT_CUE_WEIGHT,
                Role::Customer if !t.text.trim().is_empty() => {
                    customer_turns_seen += 1;
                    if customer_turns_seen <= OPENING_TURNS {
                        OPENING_CUE_WEIGHT
                    } else {
                        1.0
                    }
                }
                _ => 1.0,
            };
            (weight, words_lower(&t.text))
        })
        .collect();
    let mut out = Vec::new();
    for t in &types.types {
        for cue in &t.cues {
            let cue_words = words_lower(cue);
            if cue_words.is_empty() {
                continue;
            }
            let best = turn_words
                .iter()
                .filter(|(_, words)| {
                    words
                        .windows(cue_words.len())
                        .any(|w| w == cue_words.as_slice())
                })
                .map(|(weight, _)| *weight)
                .fold(0.0f32, f32::max);
            if best > 0.0 {
                out.push(ClassificationSignal {
                    label: t.name.clone(),
                    weight: best,
                    source: SignalSource::Keyword(cue_words.join(" ")),
                });
            }
        }
    }
    out
}

/// Classifies a call from the caller's signals and the list's keyword cues in `turns`.
pub fn classify(
    turns: &[Turn],
    signals: &[ClassificationSignal],
    types: &CallTypeSet,
) -> Result<Classification, ClassifyError> {
    types.validate()?;
    let mut all: Vec<ClassificationSignal> = signals
        .iter()
        .filter(|s| s.weight.is_finite() && s.weight > 0.0)
        .map(|s| ClassificationSignal {
            weight: s.weight.min(MAX_SIGNAL_WEIGHT),
            ..s.clone()
        })
        .collect();
    all.extend(keyword_signals(turns, types));

    let mut per_type: BTreeMap<usize, Vec<ClassificationSignal>> = BTreeMap::new();
    for s in all {
        if let Some(t) = types.type_of_label(&s.label) {
            per_type.entry(t).or_default().push(s);
        }
    }
    let scores: Vec<TypeScore> = types
        .types
        .iter()
        .enumerate()
        .map(|(i, t)| TypeScore {
            call_type: t.name.clone(),
            score: per_type
                .get(&i)
                .map_or(0.0, |v| v.iter().map(|s| s.weight).sum()),
        })
        .collect();
    let total: f32 = scores.iter().map(|s| s.score).sum();
    // Highest score; the earlier type in the list wins a tie.
    let winner = scores
        .iter()
        .enumerate()
        .fold(None::<(usize, f32)>, |best, (i, s)| match best {
            Some((_, b)) if b >= s.score => best,
            _ => Some((i, s.score)),
        });
    let fallback_index = types.type_of_label(&types.fallback).unwrap_or(0);
    let (index, confidence) = match winner {
        Some((i, score)) if score > 0.0 && score >= types.min_evidence => {
            (i, (score / total) * (score / FULL_EVIDENCE).min(1.0))
        }
        _ => (fallback_index, 0.0),
    };
    let computed_type = types
        .types
        .get(index)
        .map_or_else(|| types.fallback.clone(), |t| t.name.clone());
    let mut decided_by = if confidence > 0.0 {
        per_type.remove(&index).unwrap_or_default()
    } else {
        Vec::new()
    };
    decided_by.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then_with(|| a.source.cmp(&b.source))
    });
    Ok(Classification {
        call_type: computed_type.clone(),
        computed_type,
        confidence: confidence.clamp(0.0, 1.0),
        decided_by,
        scores,
        manual_override: None,
    })
}

/// Applies a stored manual override: it wins over the computed type (a blank one clears
/// it). The computed type and its evidence are kept as they are.
pub fn apply_manual_override(mut computed: Classification, manual: Option<&str>) -> Classification {
    let manual = manual.map(str::trim).filter(|m| !m.is_empty());
    match manual {
        Some(m) => {
            computed.call_type = m.to_string();
            computed.manual_override = Some(m.to_string());
        }
        None => {
            computed.call_type = computed.computed_type.clone();
            computed.manual_override = None;
        }
    }
    computed
}

/// Re-analysis: the fresh classification, keeping the previous one's manual override.
pub fn reclassify(previous: Option<&Classification>, fresh: Classification) -> Classification {
    let manual = previous.and_then(|p| p.manual_override.as_deref());
    apply_manual_override(fresh, manual)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(index: usize, role: Role, text: &str) -> Turn {
        Turn {
            index,
            role,
            speaker: role.as_str().into(),
            start_ms: index as u64 * 1000,
            end_ms: index as u64 * 1000 + 900,
            text: text.into(),
            words: vec![],
        }
    }

    fn signal(label: &str, weight: f32, source: SignalSource) -> ClassificationSignal {
        ClassificationSignal {
            label: label.into(),
            weight,
            source,
        }
    }

    #[test]
    fn tracker_and_rule_signals_decide() {
        let signals = [
            signal("pricing", 1.0, SignalSource::Tracker("t-price".into())),
            signal("Competitor", 2.0, SignalSource::Tracker("t-comp".into())),
            signal("escalation", 0.5, SignalSource::Rule("r-esc".into())),
        ];
        let c = classify(&[], &signals, &CallTypeSet::default()).unwrap();
        assert_eq!(c.computed_type, "sales");
        assert_eq!(c.call_type, "sales");
        // 3 of 3.5 of evidence, full evidence reached.
        assert!((c.confidence - 3.0 / 3.5).abs() < 1e-5, "{}", c.confidence);
        assert_eq!(
            c.decided_by[0].source,
            SignalSource::Tracker("t-comp".into())
        );
        assert_eq!(c.decided_by.len(), 2);
        let complaint = c
            .scores
            .iter()
            .find(|s| s.call_type == "complaint")
            .unwrap();
        assert_eq!(complaint.score, 0.5);
    }

    #[test]
    fn keyword_cues_classify_a_complaint() {
        let turns = [
            turn(0, Role::Agent, "How can I help?"),
            turn(
                1,
                Role::Customer,
                "This is unacceptable, I was charged twice and I am frustrated.",
            ),
            turn(2, Role::Customer, "I want to speak to your manager."),
        ];
        let c = classify(&turns, &[], &CallTypeSet::default()).unwrap();
        assert_eq!(c.computed_type, "complaint");
        let cues: Vec<_> = c.decided_by.iter().map(|s| s.source.clone()).collect();
        assert!(cues.contains(&SignalSource::Keyword("charged twice".into())));
        assert!(cues.contains(&SignalSource::Keyword("your manager".into())));
        assert!(c.confidence > 0.9);
    }

    #[test]
    fn agent_cues_weigh_less_and_count_once() {
        let turns = [
            turn(
                0,
                Role::Agent,
                "Our price is good. The price is low. Price!",
            ),
            turn(
                1,
                Role::Customer,
                "I have a question about my router, it is not working.",
            ),
        ];
        let signals = keyword_signals(&turns, &CallTypeSet::default());
        let price: Vec<_> = signals
            .iter()
            .filter(|s| s.source == SignalSource::Keyword("price".into()))
            .collect();
        assert_eq!(price.len(), 1);
        assert_eq!(price[0].weight, AGENT_CUE_WEIGHT);
        let c = classify(&turns, &[], &CallTypeSet::default()).unwrap();
        // support: "router" + "not working" = 2 against sales 0.6 and inquiry 1.
        assert_eq!(c.computed_type, "support");
    }

    #[test]
    fn cues_match_whole_words_only() {
        let turns = [turn(
            0,
            Role::Customer,
            "The prices are errors-free, I was priced out.",
        )];
        let signals = keyword_signals(&turns, &CallTypeSet::default());
        assert!(signals.is_empty(), "{signals:?}");
    }

    #[test]
    fn no_evidence_falls_back_to_general() {
        let c = classify(
            &[turn(0, Role::Customer, "Hello?")],
            &[],
            &CallTypeSet::default(),
        )
        .unwrap();
        assert_eq!((c.computed_type.as_str(), c.confidence), ("general", 0.0));
        assert!(c.decided_by.is_empty());
        let weak = [signal("sales", 0.4, SignalSource::Other("x".into()))];
        let c = classify(&[], &weak, &CallTypeSet::default()).unwrap();
        assert_eq!(c.computed_type, "general", "below min_evidence");
    }

    #[test]
    fn bad_weights_and_unknown_labels_are_ignored() {
        let signals = [
            signal("sales", f32::NAN, SignalSource::Tracker("a".into())),
            signal("sales", f32::INFINITY, SignalSource::Tracker("b".into())),
            signal("sales", -3.0, SignalSource::Tracker("c".into())),
            signal("astrology", 9.0, SignalSource::Tracker("d".into())),
        ];
        let c = classify(&[], &signals, &CallTypeSet::default()).unwrap();
        assert_eq!(c.computed_type, "general");
        assert!(c.scores.iter().all(|s| s.score == 0.0));
    }

    #[test]
    fn ties_go_to_the_earlier_type() {
        let signals = [
            signal("inquiry", 2.0, SignalSource::Rule("a".into())),
            signal("support", 2.0, SignalSource::Rule("b".into())),
        ];
        let c = classify(&[], &signals, &CallTypeSet::default()).unwrap();
        assert_eq!(c.computed_type, "support");
        assert!((c.confidence - 0.5 * (2.0 / 3.0)).abs() < 1e-5);
    }

    #[test]
    fn organization_list_with_its_own_types() {
        let types = CallTypeSet {
            types: vec![
                CallTypeDef {
                    name: "Claims".into(),
                    aliases: vec!["claim-filed".into()],
                    cues: vec!["accident".into(), "damage".into()],
                },
                CallTypeDef {
                    name: "Other".into(),
                    aliases: vec![],
                    cues: vec![],
                },
            ],
            fallback: "other".into(),
            min_evidence: 1.0,
        };
        let turns = [turn(
            0,
            Role::Customer,
            "I had an accident, there is damage to the car.",
        )];
        let c = classify(&turns, &[], &types).unwrap();
        assert_eq!(c.computed_type, "Claims");
        let signals = [signal("claim filed", 1.0, SignalSource::Rule("r".into()))];
        assert_eq!(
            classify(&[], &signals, &types).unwrap().computed_type,
            "Claims"
        );
        assert_eq!(classify(&[], &[], &types).unwrap().computed_type, "Other");
    }

    #[test]
    fn invalid_lists_are_rejected() {
        let t = CallTypeSet {
            fallback: "misc".into(),
            ..Default::default()
        };
        assert_eq!(
            classify(&[], &[], &t),
            Err(ClassifyError::UnknownFallback("misc".into()))
        );
        let mut t = CallTypeSet::default();
        t.types.push(def("Sales", &[], &[]));
        assert_eq!(
            t.validate(),
            Err(ClassifyError::DuplicateType("Sales".into()))
        );
        let t = CallTypeSet {
            types: vec![],
            fallback: "general".into(),
            min_evidence: 1.0,
        };
        assert_eq!(t.validate(), Err(ClassifyError::NoTypes));
        let mut t = CallTypeSet::default();
        t.types.push(def("  ", &[], &[]));
        assert_eq!(t.validate(), Err(ClassifyError::EmptyName));
        let t = CallTypeSet {
            min_evidence: f32::NAN,
            ..Default::default()
        };
        assert!(matches!(
            t.validate(),
            Err(ClassifyError::BadMinEvidence(_))
        ));
    }

    #[test]
    fn manual_override_wins_and_survives_reanalysis() {
        let signals = [signal("pricing", 3.0, SignalSource::Tracker("t".into()))];
        let computed = classify(&[], &signals, &CallTypeSet::default()).unwrap();
        let overridden = apply_manual_override(computed, Some(" complaint "));
        assert_eq!(overridden.call_type, "complaint");
        assert_eq!(overridden.computed_type, "sales");
        assert_eq!(overridden.manual_override.as_deref(), Some("complaint"));

        // Re-analysis with new evidence: the override stays, the computed type moves.
        let fresh_signals = [signal("technical", 5.0, SignalSource::Rule("r".into()))];
        let fresh = classify(&[], &fresh_signals, &CallTypeSet::default()).unwrap();
        let merged = reclassify(Some(&overridden), fresh);
        assert_eq!(merged.call_type, "complaint");
        assert_eq!(merged.computed_type, "support");

        // Clearing the override restores the computed type.
        let cleared = apply_manual_override(merged, Some(""));
        assert_eq!(
            (cleared.call_type.as_str(), cleared.manual_override),
            ("support", None)
        );
        let fresh = classify(&[], &[], &CallTypeSet::default()).unwrap();
        assert_eq!(reclassify(None, fresh).call_type, "general");
    }

    #[test]
    fn serialises_snake_case() {
        let signals = [signal("pricing", 3.0, SignalSource::Tracker("t1".into()))];
        let c = classify(&[], &signals, &CallTypeSet::default()).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["decided_by"][0]["source"]["kind"], "tracker");
        assert_eq!(json["decided_by"][0]["source"]["id"], "t1");
        assert_eq!(json["manual_override"], serde_json::Value::Null);
        let back: Classification = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        let set: CallTypeSet =
            serde_json::from_str(r#"{"types":[{"name":"x"}],"fallback":"x","min_evidence":1}"#)
                .unwrap();
        assert!(set.validate().is_ok());
    }
}

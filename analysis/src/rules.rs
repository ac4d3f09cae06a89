//! Compliance rules: what a QA manager wants flagged in a call, in the spirit of Amazon
//! Transcribe Call Analytics categories.
//!
//! A rule has one condition — a phrase said, a phrase *not* said, a sentiment threshold, a
//! long silence, or too many interruptions — scoped by speaker role and by a time window
//! (absolute, first/last N seconds, or a percentage of the call), optionally negated. Rules
//! belong to a category and carry a severity. Evaluating a call yields flags, each with the
//! rule, the speaker, the exact words (when the rule is about words), the times, a confidence
//! and a one-line rationale a person can read.
//!
//! The rules never compute statistics themselves: sentiment per turn, non-talk instances and
//! interruptions come in [`RuleInputs`] from the analysers that own them.
//!
//! A rule as an organization stores it (JSON; `roles`, `scope`, `negate`, `active` and
//! `subject` may be left out):
//!
//! ```
//! use callscope_analysis::rules::{Rule, RuleInputs, evaluate_rules, validate_rule};
//! use callscope_analysis::{Role, Turn};
//!
//! let rule: Rule = serde_json::from_str(r#"{
//!     "id": "recording-disclosure", "name": "Recording disclosure",
//!     "category": "Compliance", "severity": "high",
//!     "condition": {"kind": "phrase_absent", "phrases": ["this call may be recorded"]},
//!     "roles": ["agent"], "scope": {"type": "first", "ms": 15000},
//!     "subject": "the recording disclosure"
//! }"#).unwrap();
//! validate_rule(&rule).unwrap();
//!
//! let turns = [Turn {
//!     index: 0, role: Role::Agent, speaker: "Agent".into(), start_ms: 0, end_ms: 3_000,
//!     text: "Hello, how can I help?".into(), words: vec![],
//! }];
//! let inputs = RuleInputs {
//!     turns: &turns, sentiments: &[], non_talk: &[], interruptions: &[], call_duration_ms: 60_000,
//! };
//! let flags = evaluate_rules(&[rule], &inputs);
//! assert_eq!(flags[0].rationale, "Agent did not say the recording disclosure in the first 15 s");
//! ```
//!
//! Other conditions: `{"kind": "phrase_said", "phrases": [...]}`,
//! `{"kind": "sentiment", "comparison": "below", "threshold": -0.5, "aggregate": "average"}`
//! (`aggregate` defaults to `each_turn`), `{"kind": "non_talk", "min_ms": 30000}`,
//! `{"kind": "interruptions", "min_count": 3, "min_overlap_ms": 500}`. Scopes:
//! `{"type": "whole_call"}`, `{"type": "last", "ms": 30000}`,
//! `{"type": "absolute", "start_ms": 0, "end_ms": 60000}`,
//! `{"type": "percent", "from": 75, "to": 100}`.

mod default_pack;

pub use default_pack::default_rule_pack;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::phrase::{PhraseError, PhraseMatcher, keep_longest};
use crate::text::TurnTokens;
use crate::types::{Interruption, NonTalk, Role, SentimentScore, Turn};

/// How much a flag matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// Where in the call a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimeScope {
    #[default]
    WholeCall,
    /// The first `ms` milliseconds.
    First { ms: u64 },
    /// The last `ms` milliseconds.
    Last { ms: u64 },
    /// From `start_ms` to `end_ms` after the call's start.
    Absolute { start_ms: u64, end_ms: u64 },
    /// From `from` to `to` percent of the call's duration (0–100).
    Percent { from: f32, to: f32 },
}

impl TimeScope {
    /// The window in milliseconds for a call of `duration_ms`.
    pub fn window(&self, duration_ms: u64) -> (u64, u64) {
        match *self {
            TimeScope::WholeCall => (0, duration_ms),
            TimeScope::First { ms } => (0, ms),
            TimeScope::Last { ms } => (duration_ms.saturating_sub(ms), duration_ms),
            TimeScope::Absolute { start_ms, end_ms } => (start_ms, end_ms),
            TimeScope::Percent { from, to } => {
                let at =
                    |p: f32| (duration_ms as f64 * f64::from(p.clamp(0.0, 100.0)) / 100.0) as u64;
                (at(from), at(to))
            }
        }
    }

    /// How a rationale names the window ("in the first 15 s").
    fn describe(&self) -> String {
        match *self {
            TimeScope::WholeCall => "during the call".into(),
            TimeScope::First { ms } => format!("in the first {}", seconds(ms)),
            TimeScope::Last { ms } => format!("in the last {}", seconds(ms)),
            TimeScope::Absolute { start_ms, end_ms } => {
                format!("between {} and {}", clock(start_ms), clock(end_ms))
            }
            TimeScope::Percent { from, to } => format!("in {from}–{to} % of the call"),
        }
    }
}

/// Above or below a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    Below,
    Above,
}

/// Whether a sentiment rule looks at each turn or at the average over the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SentimentAggregate {
    #[default]
    EachTurn,
    Average,
}

/// What a rule looks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleCondition {
    /// One of the phrases is said (a flag per occurrence).
    PhraseSaid { phrases: Vec<String> },
    /// None of the phrases is said in the scope (one flag for the window). The same as
    /// `PhraseSaid` with `negate`, spelled the way people configure disclosures.
    PhraseAbsent { phrases: Vec<String> },
    /// Sentiment below/above `threshold` (in [-1, 1]) on a turn, or on average.
    Sentiment {
        comparison: Comparison,
        threshold: f32,
        #[serde(default)]
        aggregate: SentimentAggregate,
    },
    /// Nobody talks for at least `min_ms` (a flag per instance).
    NonTalk { min_ms: u64 },
    /// The scoped role interrupts at least `min_count` times (each overlap at least
    /// `min_overlap_ms`).
    Interruptions {
        min_count: usize,
        #[serde(default)]
        min_overlap_ms: u64,
    },
}

fn active_by_default() -> bool {
    true
}

/// One compliance rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub name: String,
    /// The category flags are grouped under ("Compliance", "Escalation"…).
    pub category: String,
    pub severity: Severity,
    pub condition: RuleCondition,
    /// Whose speech (or, for interruptions, who interrupts); empty = anyone.
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub scope: TimeScope,
    /// Flag when the condition does NOT hold (one flag for the scope).
    #[serde(default)]
    pub negate: bool,
    #[serde(default = "active_by_default")]
    pub active: bool,
    /// How a rationale names what the phrases mean ("the recording disclosure"); the first
    /// phrase in quotes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// Why a rule is refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RuleError {
    #[error("rule {id:?} has an empty id, name or category")]
    MissingName { id: String },
    #[error("rule {id:?} has no phrases")]
    NoPhrases { id: String },
    #[error("rule {id:?}: {source}")]
    Phrase {
        id: String,
        #[source]
        source: PhraseError,
    },
    #[error("rule {id:?}: sentiment threshold {threshold} is outside [-1, 1]")]
    Threshold { id: String, threshold: f32 },
    #[error("rule {id:?}: time scope is empty or out of range")]
    Scope { id: String },
    #[error("rule {id:?}: an interruption count of 0 would flag every call")]
    ZeroCount { id: String },
}

/// Checks a rule before it is saved.
pub fn validate_rule(rule: &Rule) -> Result<(), RuleError> {
    let id = || rule.id.clone();
    if rule.id.trim().is_empty() || rule.name.trim().is_empty() || rule.category.trim().is_empty() {
        return Err(RuleError::MissingName { id: id() });
    }
    match &rule.condition {
        RuleCondition::PhraseSaid { phrases } | RuleCondition::PhraseAbsent { phrases } => {
            if phrases.is_empty() {
                return Err(RuleError::NoPhrases { id: id() });
            }
            PhraseMatcher::new(phrases).map_err(|source| RuleError::Phrase { id: id(), source })?;
        }
        RuleCondition::Sentiment { threshold, .. } => {
            if !threshold.is_finite() || !(-1.0..=1.0).contains(threshold) {
                return Err(RuleError::Threshold {
                    id: id(),
                    threshold: *threshold,
                });
            }
        }
        RuleCondition::NonTalk { .. } => {}
        RuleCondition::Interruptions { min_count, .. } => {
            if *min_count == 0 {
                return Err(RuleError::ZeroCount { id: id() });
            }
        }
    }
    let scope_ok = match rule.scope {
        TimeScope::WholeCall => true,
        TimeScope::First { ms } | TimeScope::Last { ms } => ms > 0,
        TimeScope::Absolute { start_ms, end_ms } => start_ms < end_ms,
        TimeScope::Percent { from, to } => {
            from.is_finite()
                && to.is_finite()
                && (0.0..=100.0).contains(&from)
                && from < to
                && to <= 100.0
        }
    };
    if !scope_ok {
        return Err(RuleError::Scope { id: id() });
    }
    Ok(())
}

/// What the rules read. Slices are by turn position: `sentiments[i]` is the sentiment of
/// `turns[i]` (missing entries count as unknown).
#[derive(Debug, Clone, Copy)]
pub struct RuleInputs<'a> {
    pub turns: &'a [Turn],
    pub sentiments: &'a [Option<SentimentScore>],
    pub non_talk: &'a [NonTalk],
    pub interruptions: &'a [Interruption],
    /// The call's length; when 0, the end of the last turn is used.
    pub call_duration_ms: u64,
}

/// One thing a rule found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleFlag {
    pub rule_id: String,
    pub rule_name: String,
    pub category: String,
    pub severity: Severity,
    /// The speaker's role; absent for silences and for rules about anyone.
    pub role: Option<Role>,
    /// The speaker's label when the flag is about one turn.
    pub speaker: Option<String>,
    /// `Turn::index` when the flag is about one turn.
    pub turn: Option<usize>,
    /// The exact words said, for phrase rules.
    pub phrase: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    /// How sure the flag is, in [0, 1].
    pub confidence: f32,
    /// One human sentence: why this was flagged.
    pub rationale: String,
}

/// Rules compiled once for many calls.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<(Rule, Option<PhraseMatcher>)>,
}

impl RuleSet {
    /// Compiles the rules, refusing the first bad one.
    pub fn new(rules: &[Rule]) -> Result<Self, RuleError> {
        for rule in rules {
            validate_rule(rule)?;
        }
        Ok(Self::compile(rules))
    }

    /// Compiles the rules, skipping bad phrases (configuration is validated when saved).
    pub fn lenient(rules: &[Rule]) -> Self {
        Self::compile(rules)
    }

    fn compile(rules: &[Rule]) -> Self {
        RuleSet {
            rules: rules
                .iter()
                .filter(|r| r.active)
                .map(|r| {
                    let matcher = match &r.condition {
                        RuleCondition::PhraseSaid { phrases }
                        | RuleCondition::PhraseAbsent { phrases } => {
                            Some(PhraseMatcher::lenient(phrases))
                        }
                        _ => None,
                    };
                    (r.clone(), matcher)
                })
                .collect(),
        }
    }

    /// Every flag of every active rule, in time order.
    pub fn evaluate(&self, inputs: &RuleInputs) -> Vec<RuleFlag> {
        let duration = if inputs.call_duration_ms > 0 {
            inputs.call_duration_ms
        } else {
            inputs.turns.iter().map(|t| t.end_ms).max().unwrap_or(0)
        };
        // Tokenize each turn once for all phrase rules.
        let tokens: Vec<TurnTokens> = inputs.turns.iter().map(TurnTokens::new).collect();
        let mut flags = Vec::new();
        for (rule, matcher) in &self.rules {
            let window = rule.scope.window(duration);
            let ctx = Ctx {
                rule,
                inputs,
                tokens: &tokens,
                window,
            };
            match (&rule.condition, matcher) {
                (RuleCondition::PhraseSaid { .. }, Some(m)) => {
                    ctx.phrases(m, rule.negate, &mut flags)
                }
                (RuleCondition::PhraseAbsent { .. }, Some(m)) => {
                    ctx.phrases(m, !rule.negate, &mut flags)
                }
                (
                    RuleCondition::Sentiment {
                        comparison,
                        threshold,
                        aggregate,
                    },
                    _,
                ) => ctx.sentiment(*comparison, *threshold, *aggregate, &mut flags),
                (RuleCondition::NonTalk { min_ms }, _) => ctx.non_talk(*min_ms, &mut flags),
                (
                    RuleCondition::Interruptions {
                        min_count,
                        min_overlap_ms,
                    },
                    _,
                ) => ctx.interruptions(*min_count, *min_overlap_ms, &mut flags),
                _ => {}
            }
        }
        flags.sort_by(|a, b| {
            (a.start_ms, a.end_ms, &a.rule_id).cmp(&(b.start_ms, b.end_ms, &b.rule_id))
        });
        flags
    }
}

/// Evaluates `rules` (bad phrases skipped) over a call.
pub fn evaluate_rules(rules: &[Rule], inputs: &RuleInputs) -> Vec<RuleFlag> {
    RuleSet::lenient(rules).evaluate(inputs)
}

/// Flags of one category, with the highest severity among them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategorySummary {
    pub category: String,
    pub severity: Severity,
    pub flags: usize,
}

/// Groups flags by category, most severe first (then by name).
pub fn summarize_categories(flags: &[RuleFlag]) -> Vec<CategorySummary> {
    let mut out: Vec<CategorySummary> = Vec::new();
    for f in flags {
        match out.iter_mut().find(|c| c.category == f.category) {
            Some(c) => {
                c.flags += 1;
                c.severity = c.severity.max(f.severity);
            }
            None => out.push(CategorySummary {
                category: f.category.clone(),
                severity: f.severity,
                flags: 1,
            }),
        }
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.category.cmp(&b.category))
    });
    out
}

/// One rule being evaluated over one call.
struct Ctx<'a> {
    rule: &'a Rule,
    inputs: &'a RuleInputs<'a>,
    tokens: &'a [TurnTokens],
    window: (u64, u64),
}

impl Ctx<'_> {
    fn role_ok(&self, role: Role) -> bool {
        self.rule.roles.is_empty() || self.rule.roles.contains(&role)
    }

    fn in_window(&self, start_ms: u64, end_ms: u64) -> bool {
        let (ws, we) = self.window;
        // Overlap, with zero-length spans counted at their point.
        start_ms <= we && end_ms.max(start_ms) >= ws
    }

    fn flag(&self, start_ms: u64, end_ms: u64, confidence: f32, rationale: String) -> RuleFlag {
        RuleFlag {
            rule_id: self.rule.id.clone(),
            rule_name: self.rule.name.clone(),
            category: self.rule.category.clone(),
            severity: self.rule.severity,
            role: None,
            speaker: None,
            turn: None,
            phrase: None,
            start_ms,
            end_ms,
            confidence: confidence.clamp(0.0, 1.0),
            rationale,
        }
    }

    /// The scoped role(s) as a sentence subject: "Agent", "Agent or customer", "Nobody".
    fn who(&self) -> String {
        let mut roles: Vec<Role> = self.rule.roles.clone();
        roles.sort();
        roles.dedup();
        match roles.as_slice() {
            [] => "Nobody".into(),
            [one] => capitalized(one.as_str()),
            many => capitalized(
                &many
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            ),
        }
    }

    /// A single scoped role, for flags about the scope rather than a turn.
    fn single_role(&self) -> Option<Role> {
        match self.rule.roles.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    fn subject(&self, matcher: &PhraseMatcher) -> String {
        match (&self.rule.subject, matcher.phrases()) {
            (Some(s), _) => s.clone(),
            (None, [only]) => format!("\"{}\"", only.source),
            (None, [first, rest @ ..]) => format!(
                "\"{}\" (or {} other phrase{})",
                first.source,
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
            (None, []) => "any of the phrases".into(),
        }
    }

    /// `absent = false`: a flag per occurrence; `absent = true`: one flag when none occurs.
    fn phrases(&self, matcher: &PhraseMatcher, absent: bool, flags: &mut Vec<RuleFlag>) {
        let mut found = Vec::new();
        let mut scoped_speech = false;
        for (turn, tokens) in self.inputs.turns.iter().zip(self.tokens) {
            if !self.role_ok(turn.role) || !self.in_window(turn.start_ms, turn.end_ms) {
                continue;
            }
            if !tokens.tokens.is_empty() {
                scoped_speech = true;
            }
            for m in keep_longest(matcher.find_tokens(&tokens.tokens, &turn.text)) {
                let (span, _) = tokens.time_of_tokens(turn, m.first_token, m.last_token);
                if !self.in_window(span.start_ms, span.start_ms) {
                    continue;
                }
                let wildcard = matcher
                    .phrases()
                    .get(m.phrase)
                    .is_some_and(|p| p.has_wildcard());
                found.push((turn, m, span, wildcard));
            }
        }
        if absent {
            if !found.is_empty() {
                return;
            }
            let (ws, we) = self.window;
            // With nothing transcribed for the scoped speaker, the absence is likelier a
            // transcription gap than a missed disclosure.
            let (confidence, note) = if scoped_speech {
                (1.0, String::new())
            } else {
                (0.5, " (no transcribed speech in that window)".to_string())
            };
            let mut flag = self.flag(
                ws,
                we,
                confidence,
                if self.rule.roles.is_empty() {
                    format!(
                        "Nobody said {} {}{}",
                        self.subject(matcher),
                        self.rule.scope.describe(),
                        note
                    )
                } else {
                    format!(
                        "{} did not say {} {}{}",
                        self.who(),
                        self.subject(matcher),
                        self.rule.scope.describe(),
                        note
                    )
                },
            );
            flag.role = self.single_role();
            flags.push(flag);
            return;
        }
        for (turn, m, span, wildcard) in found {
            let confidence = if wildcard { 0.8 } else { 1.0 };
            let mut flag = self.flag(
                span.start_ms,
                span.end_ms,
                confidence,
                format!(
                    "{} said \"{}\" at {} ({})",
                    capitalized(turn.role.as_str()),
                    m.text,
                    clock(span.start_ms),
                    self.rule.name
                ),
            );
            flag.role = Some(turn.role);
            flag.speaker = Some(turn.speaker.clone());
            flag.turn = Some(turn.index);
            flag.phrase = Some(m.text);
            flags.push(flag);
        }
    }

    fn sentiment(
        &self,
        comparison: Comparison,
        threshold: f32,
        aggregate: SentimentAggregate,
        flags: &mut Vec<RuleFlag>,
    ) {
        let hits = |score: f32| match comparison {
            Comparison::Below => score < threshold,
            Comparison::Above => score > threshold,
        };
        let word = match comparison {
            Comparison::Below => "below",
            Comparison::Above => "above",
        };
        // Confidence grows with the distance past the threshold: a score just past it could
        // fall either side with a slightly different wording.
        let confidence = |score: f32| 0.5 + ((score - threshold).abs()).min(0.5);
        let scored: Vec<(&Turn, f32)> = self
            .inputs
            .turns
            .iter()
            .enumerate()
            .filter(|(_, t)| self.role_ok(t.role) && self.in_window(t.start_ms, t.end_ms))
            .filter_map(|(i, t)| {
                let s = self.inputs.sentiments.get(i).copied().flatten()?;
                s.score.is_finite().then_some((t, s.score.clamp(-1.0, 1.0)))
            })
            .collect();
        match aggregate {
            SentimentAggregate::EachTurn => {
                let over: Vec<_> = scored.iter().filter(|(_, s)| hits(*s)).collect();
                if self.rule.negate {
                    if over.is_empty() && !scored.is_empty() {
                        let (ws, we) = self.window;
                        let mut f = self.flag(
                            ws,
                            we,
                            1.0,
                            format!(
                                "{} sentiment never went {word} {threshold} {}",
                                self.who_or_speaker(),
                                self.rule.scope.describe()
                            ),
                        );
                        f.role = self.single_role();
                        flags.push(f);
                    }
                    return;
                }
                for (turn, score) in over {
                    let mut f = self.flag(
                        turn.start_ms,
                        turn.end_ms,
                        confidence(*score),
                        format!(
                            "{} sentiment was {score:.2} ({word} {threshold}) at {}",
                            capitalized(turn.role.as_str()),
                            clock(turn.start_ms)
                        ),
                    );
                    f.role = Some(turn.role);
                    f.speaker = Some(turn.speaker.clone());
                    f.turn = Some(turn.index);
                    flags.push(f);
                }
            }
            SentimentAggregate::Average => {
                if scored.is_empty() {
                    return;
                }
                let mean = scored.iter().map(|(_, s)| *s).sum::<f32>() / scored.len() as f32;
                if hits(mean) == self.rule.negate {
                    return;
                }
                let start = scored.iter().map(|(t, _)| t.start_ms).min().unwrap_or(0);
                let end = scored.iter().map(|(t, _)| t.end_ms).max().unwrap_or(start);
                let verb = if self.rule.negate { "was not" } else { "was" };
                let mut f = self.flag(
                    start,
                    end,
                    confidence(mean),
                    format!(
                        "{} average sentiment {verb} {word} {threshold} ({mean:.2}) {}",
                        self.who_or_speaker(),
                        self.rule.scope.describe()
                    ),
                );
                f.role = self.single_role();
                flags.push(f);
            }
        }
    }

    fn who_or_speaker(&self) -> String {
        if self.rule.roles.is_empty() {
            "Speaker".into()
        } else {
            self.who()
        }
    }

    fn non_talk(&self, min_ms: u64, flags: &mut Vec<RuleFlag>) {
        let long: Vec<&NonTalk> = self
            .inputs
            .non_talk
            .iter()
            .filter(|n| {
                n.end_ms.saturating_sub(n.start_ms) >= min_ms
                    && self.in_window(n.start_ms, n.end_ms)
            })
            .collect();
        if self.rule.negate {
            if long.is_empty() {
                let (ws, we) = self.window;
                flags.push(self.flag(
                    ws,
                    we,
                    1.0,
                    format!(
                        "No silence of {} or more {}",
                        seconds(min_ms),
                        self.rule.scope.describe()
                    ),
                ));
            }
            return;
        }
        for n in long {
            flags.push(self.flag(
                n.start_ms,
                n.end_ms,
                1.0,
                format!(
                    "Nobody spoke for {} from {}",
                    seconds(n.end_ms.saturating_sub(n.start_ms)),
                    clock(n.start_ms)
                ),
            ));
        }
    }

    fn interruptions(&self, min_count: usize, min_overlap_ms: u64, flags: &mut Vec<RuleFlag>) {
        let counted: Vec<&Interruption> = self
            .inputs
            .interruptions
            .iter()
            .filter(|i| {
                self.role_ok(i.by)
                    && i.end_ms.saturating_sub(i.start_ms) >= min_overlap_ms
                    && self.in_window(i.start_ms, i.end_ms)
            })
            .collect();
        let over = counted.len() >= min_count;
        if over == self.rule.negate {
            return;
        }
        let (start, end) = if counted.is_empty() {
            self.window
        } else {
            (
                counted.iter().map(|i| i.start_ms).min().unwrap_or(0),
                counted.iter().map(|i| i.end_ms).max().unwrap_or(0),
            )
        };
        let who = if self.rule.roles.is_empty() {
            "Speakers".to_string()
        } else {
            self.who()
        };
        let rationale = if self.rule.negate {
            format!(
                "{who} interrupted {} time{} (fewer than {min_count}) {}",
                counted.len(),
                if counted.len() == 1 { "" } else { "s" },
                self.rule.scope.describe()
            )
        } else {
            format!(
                "{who} interrupted {} times (threshold {min_count}) {}",
                counted.len(),
                self.rule.scope.describe()
            )
        };
        let mut f = self.flag(start, end, 1.0, rationale);
        f.role = self.single_role();
        flags.push(f);
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "15 s", "1.5 s".
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// "m:ss" from the call's start.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests;

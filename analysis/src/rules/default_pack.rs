//! The rules every organization starts with; each can be switched off or edited.

use super::{Comparison, Rule, RuleCondition, SentimentAggregate, Severity, TimeScope};
use crate::types::Role;

fn phrases(list: &[&str]) -> Vec<String> {
    list.iter().map(|p| p.to_string()).collect()
}

/// Words that are profanity in nearly every context. Prefix wildcards catch inflections
/// ("fucking", "shitty") without matching innocent words that merely contain them
/// ("Scunthorpe", "assess"), since matching is whole-word.
const PROFANITY: &[&str] = &[
    "fuck*",
    "motherfuck*",
    "shit",
    "shits",
    "shitty",
    "bullshit",
    "horseshit",
    "asshole*",
    "arsehole*",
    "bitch*",
    "bastard*",
    "goddamn*",
    "damn it",
    "dammit",
    "piss off",
    "pissed off",
    "crap",
    "crappy",
    "dickhead*",
    "wanker*",
    "bollocks",
    "screw you",
    "son of a bitch",
    "jackass",
];

/// The default rule pack: recording disclosure, prohibited promises, escalation requests,
/// profanity (agent and customer), a customer leaving unhappy, long silences and an agent who
/// keeps interrupting.
pub fn default_rule_pack() -> Vec<Rule> {
    let rule = |id: &str, name: &str, category: &str, severity, condition| Rule {
        id: id.into(),
        name: name.into(),
        category: category.into(),
        severity,
        condition,
        roles: Vec::new(),
        scope: TimeScope::WholeCall,
        negate: false,
        active: true,
        subject: None,
    };
    vec![
        Rule {
            roles: vec![Role::Agent],
            scope: TimeScope::First { ms: 15_000 },
            subject: Some("the recording disclosure".into()),
            ..rule(
                "recording-disclosure",
                "Recording disclosure",
                "Compliance",
                Severity::High,
                RuleCondition::PhraseAbsent {
                    phrases: phrases(&[
                        "call may be recorded",
                        "call is being recorded",
                        "call will be recorded",
                        "call is recorded",
                        "calls are recorded",
                        "calls may be recorded",
                        "may be monitored or recorded",
                        "may be recorded",
                        "is being recorded",
                        "recorded for quality",
                        "recorded for training",
                        "on a recorded line",
                    ]),
                },
            )
        },
        Rule {
            roles: vec![Role::Agent],
            ..rule(
                "prohibited-promises",
                "Prohibited promises",
                "Compliance",
                Severity::Critical,
                RuleCondition::PhraseSaid {
                    phrases: phrases(&[
                        "guaranteed returns",
                        "guaranteed return",
                        "guaranteed profit*",
                        "guaranteed income",
                        "guarantee you * return*",
                        "risk free",
                        "no risk at all",
                        "zero risk",
                        "can't lose",
                        "cannot lose",
                        "can not lose",
                        "double your money",
                        "get rich quick",
                        "100 percent guaranteed",
                        "hundred percent guaranteed",
                    ]),
                },
            )
        },
        Rule {
            roles: vec![Role::Customer],
            ..rule(
                "escalation-request",
                "Escalation request",
                "Escalation",
                Severity::Medium,
                RuleCondition::PhraseSaid {
                    phrases: phrases(&[
                        "supervisor",
                        "manager",
                        "lawyer",
                        "attorney",
                        "legal action",
                        "sue you",
                        "cancel my account",
                        "cancel my subscription",
                        "close my account",
                        "file a complaint",
                        "speak to someone else",
                        "better business bureau",
                    ]),
                },
            )
        },
        Rule {
            roles: vec![Role::Agent],
            ..rule(
                "agent-profanity",
                "Agent profanity",
                "Profanity",
                Severity::High,
                RuleCondition::PhraseSaid {
                    phrases: phrases(PROFANITY),
                },
            )
        },
        Rule {
            roles: vec![Role::Customer],
            ..rule(
                "customer-profanity",
                "Customer profanity",
                "Profanity",
                Severity::Low,
                RuleCondition::PhraseSaid {
                    phrases: phrases(PROFANITY),
                },
            )
        },
        Rule {
            roles: vec![Role::Customer],
            scope: TimeScope::Percent {
                from: 75.0,
                to: 100.0,
            },
            ..rule(
                "customer-unhappy-at-end",
                "Customer unhappy at the end",
                "Customer experience",
                Severity::Medium,
                RuleCondition::Sentiment {
                    comparison: Comparison::Below,
                    threshold: -0.3,
                    aggregate: SentimentAggregate::Average,
                },
            )
        },
        rule(
            "long-silence",
            "Long silence",
            "Customer experience",
            Severity::Low,
            RuleCondition::NonTalk { min_ms: 30_000 },
        ),
        Rule {
            roles: vec![Role::Agent],
            ..rule(
                "agent-interrupts",
                "Agent interrupts the customer",
                "Customer experience",
                Severity::Low,
                RuleCondition::Interruptions {
                    min_count: 3,
                    min_overlap_ms: 500,
                },
            )
        },
    ]
}

//! Which diarized speaker is the agent.
//!
//! Audio alone cannot tell an agent from a customer, so a stated rule decides:
//! [`RoleRule::FirstSpeakerIsAgent`] (the default: on a call the agent answers, so the first
//! voice is the agent's), its opposite for outbound recordings that start with the customer's
//! "hello", or no roles. Once ASR has run, a caller with text can apply
//! [`roles_by_greeting`]: whoever says the greeting (e.g. "thank you for calling") is the agent.

use serde::{Deserialize, Serialize};

use crate::types::{Segment, SpeakerRole};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleRule {
    /// Speaker 1 (first to talk) is the agent, every other speaker a customer.
    #[default]
    FirstSpeakerIsAgent,
    /// Speaker 1 is the customer, every other speaker the agent side.
    FirstSpeakerIsCustomer,
    /// Leave every speaker `unknown`.
    None,
}

/// Roles of `speakers` speakers numbered in order of first speech.
pub fn assign(rule: RoleRule, speakers: usize) -> Vec<SpeakerRole> {
    (0..speakers)
        .map(|k| match (rule, k) {
            (RoleRule::None, _) => SpeakerRole::Unknown,
            (RoleRule::FirstSpeakerIsAgent, 0) | (RoleRule::FirstSpeakerIsCustomer, 1..) => {
                SpeakerRole::Agent
            }
            (RoleRule::FirstSpeakerIsAgent, _) | (RoleRule::FirstSpeakerIsCustomer, 0) => {
                SpeakerRole::Customer
            }
        })
        .collect()
}

/// The hook for text: the speaker (by `speaker_label`) of the first segment whose text
/// `is_greeting` accepts becomes the agent and every other labelled speaker a customer.
/// Returns whether a greeting was found; without one the segments are left as they are.
/// Stereo recordings (roles known from channels) should not be passed here.
pub fn roles_by_greeting(segments: &mut [Segment], is_greeting: &dyn Fn(&str) -> bool) -> bool {
    let Some(agent) = segments
        .iter()
        .find(|s| s.text.as_deref().is_some_and(is_greeting))
        .map(|s| s.speaker_label.clone())
    else {
        return false;
    };
    for s in segments.iter_mut() {
        s.role = if s.speaker_label == agent {
            SpeakerRole::Agent
        } else {
            SpeakerRole::Customer
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(label: &str, text: &str) -> Segment {
        Segment {
            channel: 0,
            role: SpeakerRole::Unknown,
            speaker_label: label.into(),
            start_ms: 0,
            end_ms: 1,
            text: Some(text.into()),
            confidence: None,
            words: Vec::new(),
        }
    }

    #[test]
    fn rules_give_the_stated_roles() {
        use SpeakerRole::*;
        assert_eq!(
            assign(RoleRule::FirstSpeakerIsAgent, 3),
            [Agent, Customer, Customer]
        );
        assert_eq!(
            assign(RoleRule::FirstSpeakerIsCustomer, 2),
            [Customer, Agent]
        );
        assert_eq!(assign(RoleRule::None, 2), [Unknown, Unknown]);
        assert!(assign(RoleRule::FirstSpeakerIsAgent, 0).is_empty());
    }

    #[test]
    fn the_greeting_speaker_becomes_the_agent() {
        let mut segs = vec![
            seg("Speaker 1", "hello?"),
            seg("Speaker 2", "Thank you for calling Acme, this is Bob"),
            seg("Speaker 1", "hi Bob"),
        ];
        let greeting = |t: &str| t.to_lowercase().contains("thank you for calling");
        assert!(roles_by_greeting(&mut segs, &greeting));
        let roles: Vec<_> = segs.iter().map(|s| s.role).collect();
        assert_eq!(
            roles,
            [
                SpeakerRole::Customer,
                SpeakerRole::Agent,
                SpeakerRole::Customer
            ]
        );
        let mut none = vec![seg("Speaker 1", "hi")];
        assert!(!roles_by_greeting(&mut none, &greeting));
        assert_eq!(none[0].role, SpeakerRole::Unknown);
    }
}

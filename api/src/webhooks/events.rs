//! The catalogue of webhook event names and subscription matching.
//!
//! Endpoints subscribe to exact names, to a family (`call.*`) or to everything (`*`).
//! Subscriptions are checked against the catalogue at registration so that a typo such as
//! `call.procesed` is refused instead of silently never firing.

/// Every event callscope emits or will emit (issue 7 lists the full set). Adding a name here
/// is all it takes to make it subscribable.
pub const EVENT_TYPES: &[&str] = &[
    "call.received",
    "call.started",
    "call.ringing",
    "call.answered",
    "call.ended",
    "call.processed",
    "call.failed",
    "contact.created",
    "contact.updated",
    "contact.merged",
    "contact.deleted",
    "conversation.created",
    "conversation.updated",
    "conversation.status_changed",
    "conversation.assignee_changed",
    "conversation.team_changed",
    "message.created",
    "message.updated",
    "note.created",
    "task.created",
    "task.updated",
    "task.completed",
    "compliance.flagged",
    "scorecard.saved",
    "team.created",
    "team.updated",
    "team.deleted",
    "team.member_added",
    "team.member_updated",
    "team.member_removed",
    "quota.warning",
    "quota.exhausted",
    "webhook.test",
];

/// Whether `pattern` is an acceptable subscription: `*`, a known family `x.*`, or a known
/// event name.
pub fn is_valid_subscription(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(family) = pattern.strip_suffix(".*") {
        return EVENT_TYPES
            .iter()
            .any(|e| e.split_once('.').is_some_and(|(f, _)| f == family));
    }
    EVENT_TYPES.contains(&pattern)
}

/// Whether an endpoint subscribed to `patterns` should receive `event`.
pub fn subscription_matches(patterns: &[String], event: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event
            || p.strip_suffix(".*").is_some_and(|family| {
                event
                    .split_once('.')
                    .is_some_and(|(event_family, _)| event_family == family)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(is_valid_subscription("*"));
        assert!(is_valid_subscription("call.processed"));
        assert!(is_valid_subscription("call.*"));
        assert!(!is_valid_subscription("call.procesed"));
        assert!(!is_valid_subscription("nothing.*"));
        assert!(!is_valid_subscription(""));
        assert!(!is_valid_subscription("*.*"));
    }

    #[test]
    fn matching() {
        let subs = vec!["call.*".to_string(), "message.created".to_string()];
        assert!(subscription_matches(&subs, "call.processed"));
        assert!(subscription_matches(&subs, "message.created"));
        assert!(!subscription_matches(&subs, "message.updated"));
        assert!(!subscription_matches(&subs, "callx.processed"));
        assert!(subscription_matches(&["*".to_string()], "anything.at_all"));
        assert!(!subscription_matches(&[], "call.processed"));
    }
}

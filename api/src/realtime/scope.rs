//! What one socket may see and asked to see: the REST API's rules applied to events.
//!
//! - Contact, conversation, message, note, task and team events need `contacts.read`.
//! - Call events need `calls.read_all`, or `calls.read_own` and the call being the user's
//!   (checked against the database once per call, then remembered).
//! - Compliance flags and scorecards are call intelligence: `intelligence.read` as well.
//! - Anything else (e.g. `webhook.test`) is not pushed.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::SqlitePool;

use super::log::StreamEvent;
use crate::auth::OrgCtx;
use crate::permissions::Permission;
use crate::store::calls;
use crate::webhooks::subscription_matches;

/// Calls remembered per socket (own-calls users): beyond this the cache starts over.
const MAX_REMEMBERED_CALLS: usize = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Contacts,
    Calls { intelligence: bool },
    Nothing,
}

fn needs(event: &str) -> Needs {
    match event.split_once('.').map(|(family, _)| family) {
        Some("contact" | "conversation" | "message" | "note" | "task" | "team") => Needs::Contacts,
        Some("call") => Needs::Calls {
            intelligence: false,
        },
        Some("compliance" | "scorecard") => Needs::Calls { intelligence: true },
        _ => Needs::Nothing,
    }
}

/// `data[path[0]][path[1]]…` as a string.
fn text_at<'a>(data: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(data, |v, key| v.get(key))?.as_str()
}

/// The call an event is about.
fn call_id(e: &StreamEvent) -> Option<&str> {
    text_at(&e.data, &["call_id"]).or_else(|| text_at(&e.data, &["call", "id"]))
}

/// The contact an event is about, wherever its body names it.
pub fn contact_id(e: &StreamEvent) -> Option<&str> {
    if e.event.starts_with("contact.")
        && let Some(id) = text_at(&e.data, &["contact", "id"]).or_else(|| text_at(&e.data, &["id"]))
    {
        return Some(id);
    }
    [
        &["contact_id"][..],
        &["contact", "id"],
        &["conversation", "contact_id"],
        &["call", "contact_id"],
        &["message", "contact_id"],
        &["task", "contact_id"],
        &["note", "contact_id"],
    ]
    .iter()
    .find_map(|path| text_at(&e.data, path))
}

/// The conversation an event is about, wherever its body names it.
pub fn conversation_id(e: &StreamEvent) -> Option<&str> {
    [
        &["conversation_id"][..],
        &["conversation", "id"],
        &["message", "conversation_id"],
        &["call", "conversation_id"],
        &["task", "conversation_id"],
        &["note", "conversation_id"],
    ]
    .iter()
    .find_map(|path| text_at(&e.data, path))
}

/// One socket's filter.
pub struct Scope {
    pub ctx: OrgCtx,
    /// Subscription patterns as webhooks take them (`*`, `message.*`, `call.ended`).
    pub patterns: Vec<String>,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    own_calls: HashMap<String, bool>,
}

impl Scope {
    pub fn new(
        ctx: OrgCtx,
        patterns: Vec<String>,
        contact_id: Option<String>,
        conversation_id: Option<String>,
    ) -> Self {
        Self {
            ctx,
            patterns,
            contact_id,
            conversation_id,
            own_calls: HashMap::new(),
        }
    }

    /// Whether the event goes to this socket.
    pub async fn admits(&mut self, pool: &SqlitePool, e: &StreamEvent) -> bool {
        if e.org_id != self.ctx.org_id || !subscription_matches(&self.patterns, &e.event) {
            return false;
        }
        if let Some(want) = &self.contact_id
            && contact_id(e) != Some(want.as_str())
        {
            return false;
        }
        if let Some(want) = &self.conversation_id
            && conversation_id(e) != Some(want.as_str())
        {
            return false;
        }
        match needs(&e.event) {
            Needs::Nothing => false,
            Needs::Contacts => self.ctx.permissions.has(Permission::ContactsRead),
            Needs::Calls { intelligence } => {
                if intelligence && !self.ctx.permissions.has(Permission::IntelligenceRead) {
                    return false;
                }
                self.may_see_call(pool, call_id(e)).await
            }
        }
    }

    async fn may_see_call(&mut self, pool: &SqlitePool, call: Option<&str>) -> bool {
        let Ok(access) = self.ctx.call_access() else {
            return false;
        };
        if access.owner.is_none() {
            return true;
        }
        let Some(call) = call else {
            return false;
        };
        if let Some(known) = self.own_calls.get(call) {
            return *known;
        }
        // A database error counts as "not visible": never leak on failure.
        let visible = matches!(
            calls::get_visible_call(pool, &access, call).await,
            Ok(Some(_))
        );
        if self.own_calls.len() >= MAX_REMEMBERED_CALLS {
            self.own_calls.clear();
        }
        self.own_calls.insert(call.to_string(), visible);
        visible
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, data: Value) -> StreamEvent {
        StreamEvent {
            seq: 1,
            id: "e".into(),
            org_id: "o".into(),
            event: name.into(),
            data,
            created_at: 0,
        }
    }

    #[test]
    fn ids_are_found_wherever_the_body_names_them() {
        let m = event(
            "message.created",
            json!({"message": {"id": "m1", "conversation_id": "cv1"}, "conversation": {"id": "cv1", "contact_id": "ct1"}}),
        );
        assert_eq!(
            (contact_id(&m), conversation_id(&m)),
            (Some("ct1"), Some("cv1"))
        );
        let c = event("contact.updated", json!({"id": "ct2", "name": "A"}));
        assert_eq!(contact_id(&c), Some("ct2"));
        let call = event(
            "call.ended",
            json!({"call": {"id": "c1", "contact_id": "ct3", "conversation_id": "cv3"}}),
        );
        assert_eq!(call_id(&call), Some("c1"));
        assert_eq!(
            (contact_id(&call), conversation_id(&call)),
            (Some("ct3"), Some("cv3"))
        );
        let flag = event("compliance.flagged", json!({"call_id": "c2"}));
        assert_eq!(call_id(&flag), Some("c2"));
        assert_eq!(contact_id(&event("task.created", json!({}))), None);
    }

    #[test]
    fn families_map_to_permissions() {
        assert_eq!(needs("message.updated"), Needs::Contacts);
        assert_eq!(
            needs("call.answered"),
            Needs::Calls {
                intelligence: false
            }
        );
        assert_eq!(
            needs("scorecard.saved"),
            Needs::Calls { intelligence: true }
        );
        assert_eq!(needs("webhook.test"), Needs::Nothing);
        assert_eq!(needs("garbage"), Needs::Nothing);
    }
}

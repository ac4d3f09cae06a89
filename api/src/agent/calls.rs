//! The calls each agent's softphone shows (ringing, dialing, connected), kept in memory from
//! what the B2BUA tells the softphones. A page that (re)connects gets them in its `hello`,
//! which is how a dropped WebSocket picks its call up again.

use std::collections::HashMap;
use std::sync::Mutex;

use callscope_sip::events::CallDirection;
use serde::Serialize;

/// How the page shows a call (see docs/softphone-protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallView {
    pub call_id: String,
    pub direction: CallDirection,
    pub state: CallState,
    pub from: String,
    pub to: String,
    pub did: Option<String>,
    pub contact: Option<ContactRef>,
    pub started_at_ms: i64,
    pub answered_at_ms: Option<i64>,
    pub muted: bool,
    pub held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Ringing,
    Dialing,
    Connected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactRef {
    pub id: String,
    pub name: Option<String>,
}

/// user id → (call id → view).
#[derive(Default)]
pub struct AgentCalls {
    by_user: Mutex<HashMap<String, HashMap<String, CallView>>>,
}

impl AgentCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, CallView>>> {
        self.by_user.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, user_id: &str, view: CallView) {
        self.lock()
            .entry(user_id.to_string())
            .or_default()
            .insert(view.call_id.clone(), view);
    }

    /// Changes one call's view; returns the result (None if the agent has no such call).
    pub fn update(
        &self,
        user_id: &str,
        call_id: &str,
        change: impl FnOnce(&mut CallView),
    ) -> Option<CallView> {
        let mut map = self.lock();
        let view = map.get_mut(user_id)?.get_mut(call_id)?;
        change(view);
        Some(view.clone())
    }

    pub fn remove(&self, user_id: &str, call_id: &str) -> Option<CallView> {
        let mut map = self.lock();
        let calls = map.get_mut(user_id)?;
        let removed = calls.remove(call_id);
        if calls.is_empty() {
            map.remove(user_id);
        }
        removed
    }

    /// The agent's calls, oldest first.
    pub fn of_user(&self, user_id: &str) -> Vec<CallView> {
        let mut calls: Vec<CallView> = self
            .lock()
            .get(user_id)
            .map(|calls| calls.values().cloned().collect())
            .unwrap_or_default();
        calls.sort_by_key(|c| c.started_at_ms);
        calls
    }

    /// Whether the agent is in a call right now (connected, or dialing out).
    pub fn on_a_call(&self, user_id: &str) -> bool {
        self.lock().get(user_id).is_some_and(|calls| {
            calls
                .values()
                .any(|c| matches!(c.state, CallState::Connected | CallState::Dialing))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, at: i64) -> CallView {
        CallView {
            call_id: id.into(),
            direction: CallDirection::Inbound,
            state: CallState::Ringing,
            from: "+14155550100".into(),
            to: "+14155550199".into(),
            did: None,
            contact: None,
            started_at_ms: at,
            answered_at_ms: None,
            muted: false,
            held: false,
        }
    }

    #[test]
    fn calls_follow_their_agent() {
        let calls = AgentCalls::default();
        calls.insert("u1", view("c2", 20));
        calls.insert("u1", view("c1", 10));
        calls.insert("u2", view("c3", 5));
        let ids: Vec<String> = calls.of_user("u1").into_iter().map(|c| c.call_id).collect();
        assert_eq!(ids, ["c1", "c2"]);
        assert!(!calls.on_a_call("u1"));
        let updated = calls.update("u1", "c1", |v| v.state = CallState::Connected);
        assert_eq!(updated.map(|v| v.state), Some(CallState::Connected));
        assert!(calls.on_a_call("u1"));
        assert!(calls.update("u2", "c1", |v| v.muted = true).is_none());
        assert!(calls.remove("u1", "c1").is_some());
        assert!(calls.remove("u1", "c1").is_none());
        assert!(!calls.on_a_call("u1"));
        assert_eq!(calls.of_user("u2").len(), 1);
    }
}

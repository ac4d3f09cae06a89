//! The B2BUA's view of browser agents ([`Softphones`]): who may ring (a softphone open and
//! the agent available), and what each agent's pages are told about its calls. Calls also
//! drive presence: busy while connected, wrap-up for `[agent] wrap_up_s` after, then back to
//! what the agent had chosen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use callscope_sip::softphones::{DeviceCall, DeviceNotice, Softphones};

use super::calls::{CallState, CallView, ContactRef};
use super::hub::ServerMessage;
use super::presence::{self, Presence};
use crate::http::state::{AppState, Inner};
use crate::ids::now_ms;
use crate::store::contacts;

pub struct AgentSoftphones {
    /// Weak: the B2BUA lives inside the state; a strong handle would keep both alive forever.
    state: Weak<Inner>,
    /// What each busy agent had chosen before its call, to return to after wrap-up.
    chosen: Mutex<HashMap<String, Presence>>,
}

impl AgentSoftphones {
    pub fn new(state: &AppState) -> Self {
        Self {
            state: Arc::downgrade(&state.0),
            chosen: Mutex::default(),
        }
    }

    fn state(&self) -> Option<AppState> {
        self.state.upgrade().map(AppState)
    }

    fn chosen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Presence>> {
        self.chosen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Presence from a call: the board at once (routing reads it), the row and the pages
    /// right after. The row gets the board's latest value, so late writes cannot reorder.
    fn call_presence(state: &AppState, org_id: &str, user_id: &str, to: Presence) -> u64 {
        let generation = state.presence.put(user_id, to);
        publish(state, org_id, user_id);
        generation
    }

    fn on_answered(&self, state: &AppState, org_id: &str, user_id: &str) {
        let before = state.presence.get(user_id).unwrap_or(Presence::Available);
        if matches!(before, Presence::Available | Presence::Away) {
            self.chosen().insert(user_id.to_string(), before);
        }
        Self::call_presence(state, org_id, user_id, Presence::Busy);
    }

    fn on_call_over(&self, state: &AppState, org_id: &str, user_id: &str) {
        let generation = Self::call_presence(state, org_id, user_id, Presence::WrapUp);
        let wrap_up = Duration::from_secs(state.config.agent.wrap_up_s);
        let back_to = self.chosen().remove(user_id).unwrap_or(Presence::Available);
        let weak = self.state.clone();
        let (org_id, user_id) = (org_id.to_string(), user_id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(wrap_up).await;
            let Some(state) = weak.upgrade().map(AppState) else {
                return;
            };
            // Only if nothing (another call, the agent) changed it meanwhile.
            if state
                .presence
                .put_if(&user_id, generation, back_to)
                .is_some()
            {
                publish(&state, &org_id, &user_id);
            }
        });
    }
}

/// Writes the board's current presence of `user_id` to the database and every open page.
fn publish(state: &AppState, org_id: &str, user_id: &str) {
    let Some(status) = state.presence.get(user_id) else {
        return;
    };
    state
        .agents
        .send_to_user(user_id, &ServerMessage::Presence { status });
    let (state, org_id, user_id) = (state.clone(), org_id.to_string(), user_id.to_string());
    tokio::spawn(async move {
        if let Some(latest) = state.presence.get(&user_id)
            && let Err(e) = presence::store(&state.pool, &org_id, &user_id, latest).await
        {
            tracing::warn!(error = %e, "agent presence not stored");
        }
    });
}

fn view_of(call: &DeviceCall, state: CallState) -> CallView {
    CallView {
        call_id: call.call_id.clone(),
        direction: call.direction,
        state,
        from: call.from.clone(),
        to: call.to.clone(),
        did: (call.direction == callscope_sip::events::CallDirection::Inbound)
            .then(|| call.to.clone()),
        contact: None,
        started_at_ms: now_ms(),
        answered_at_ms: None,
        muted: false,
        held: false,
    }
}

/// The contact whose phone is `number`, if callscope knows one.
async fn contact_for(state: &AppState, org_id: &str, number: &str) -> Option<ContactRef> {
    let region = state.config.sip.region(&state.config.default_region);
    let e164 = contacts::normalize_phone(number, region)?;
    let contact = contacts::find_by_phone(&state.pool, org_id, &e164)
        .await
        .ok()??;
    Some(ContactRef {
        id: contact.id,
        name: contact.display_name,
    })
}

impl Softphones for AgentSoftphones {
    fn can_ring(&self, _org_id: &str, user_id: &str) -> bool {
        let Some(state) = self.state() else {
            return false;
        };
        state.agents.is_connected(user_id)
            && state.presence.get(user_id) == Some(Presence::Available)
            && !state.agent_calls.on_a_call(user_id)
    }

    fn notify(&self, org_id: &str, user_id: &str, call_id: &str, notice: DeviceNotice) {
        let Some(state) = self.state() else { return };
        let send = |message: ServerMessage| {
            state.agents.send_to_user(user_id, &message);
        };
        match notice {
            DeviceNotice::Incoming(call) => {
                let view = view_of(&call, CallState::Ringing);
                state.agent_calls.insert(user_id, view);
                let (state, org_id, user_id) =
                    (state.clone(), org_id.to_string(), user_id.to_string());
                tokio::spawn(async move {
                    let contact = contact_for(&state, &org_id, &call.from).await;
                    // Still ringing (not answered elsewhere while we looked)?
                    if let Some(view) = state
                        .agent_calls
                        .update(&user_id, &call.call_id, |v| v.contact = contact)
                    {
                        state
                            .agents
                            .send_to_user(&user_id, &ServerMessage::Incoming { call: view });
                    }
                });
            }
            DeviceNotice::Dialing(call) => {
                let view = view_of(&call, CallState::Dialing);
                state.agent_calls.insert(user_id, view.clone());
                send(ServerMessage::Dialing { call: view });
            }
            DeviceNotice::Ringing => send(ServerMessage::Ringing {
                call_id: call_id.to_string(),
            }),
            DeviceNotice::Answered => {
                let updated = state.agent_calls.update(user_id, call_id, |v| {
                    v.state = CallState::Connected;
                    v.answered_at_ms.get_or_insert_with(now_ms);
                });
                if let Some(view) = updated {
                    self.on_answered(&state, org_id, user_id);
                    send(ServerMessage::Answered { call: view });
                }
            }
            DeviceNotice::Updated { muted, held } => {
                if let Some(view) = state.agent_calls.update(user_id, call_id, |v| {
                    v.muted = muted;
                    v.held = held;
                }) {
                    send(ServerMessage::CallUpdate { call: view });
                }
            }
            DeviceNotice::Ended(reason) => {
                let removed = state.agent_calls.remove(user_id, call_id);
                send(ServerMessage::Ended {
                    call_id: call_id.to_string(),
                    reason,
                });
                let was_connected = removed.is_some_and(|v| v.state == CallState::Connected);
                if was_connected && !state.agent_calls.on_a_call(user_id) {
                    self.on_call_over(&state, org_id, user_id);
                }
            }
        }
    }
}

//! Who is connected: each agent's open softphone WebSockets (an agent may have several tabs),
//! so that presence changes, and later incoming calls, reach every one of them. Sends never
//! wait: each connection has a bounded queue, and a connection too slow to drain it is told
//! to go (its socket task ends; the page reconnects).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use callscope_sip::softphones::EndReason;
use serde::Serialize;
use tokio::sync::mpsc;

use super::calls::CallView;

/// Messages a connection holds before it counts as stuck.
pub const CONNECTION_QUEUE: usize = 64;

/// What the server tells a softphone.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello {
        user: serde_json::Value,
        presence: super::presence::Presence,
        /// The agent's calls now: a reconnecting page picks them up from here.
        calls: Vec<CallView>,
    },
    Presence {
        status: super::presence::Presence,
    },
    Pong,
    Incoming {
        call: CallView,
    },
    Dialing {
        call: CallView,
    },
    /// Our SDP answer to the browser's offer (`answer` or `dial`).
    MediaAnswer {
        call_id: String,
        sdp: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    Ringing {
        call_id: String,
    },
    Answered {
        call: CallView,
    },
    CallUpdate {
        call: CallView,
    },
    Ended {
        call_id: String,
        reason: EndReason,
    },
    /// A command that has no event of its own (DTMF, a candidate) went through.
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
}

impl ServerMessage {
    /// An error not tied to a call or a request.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            call_id: None,
            request_id: None,
        }
    }
}

/// Each agent's open connections: (connection id, its queue).
type Connections = HashMap<String, Vec<(u64, mpsc::Sender<ServerMessage>)>>;

#[derive(Default)]
pub struct AgentHub {
    next_id: AtomicU64,
    connections: Mutex<Connections>,
}

impl AgentHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection of `user_id`: its id and the queue its socket task drains.
    pub fn register(&self, user_id: &str) -> (u64, mpsc::Receiver<ServerMessage>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        self.lock()
            .entry(user_id.to_string())
            .or_default()
            .push((id, tx));
        (id, rx)
    }

    pub fn unregister(&self, user_id: &str, id: u64) {
        let mut connections = self.lock();
        if let Some(list) = connections.get_mut(user_id) {
            list.retain(|(c, _)| *c != id);
            if list.is_empty() {
                connections.remove(user_id);
            }
        }
    }

    /// Whether the agent has a softphone open.
    pub fn is_connected(&self, user_id: &str) -> bool {
        self.lock().contains_key(user_id)
    }

    /// Queues `message` on every connection of the agent; a connection whose queue is full
    /// is dropped (its socket task sees the queue close and ends). Returns how many got it.
    pub fn send_to_user(&self, user_id: &str, message: &ServerMessage) -> usize {
        let mut connections = self.lock();
        let Some(list) = connections.get_mut(user_id) else {
            return 0;
        };
        let mut delivered = 0;
        list.retain(|(_, tx)| match tx.try_send(message.clone()) {
            Ok(()) => {
                delivered += 1;
                true
            }
            Err(_) => false,
        });
        if list.is_empty() {
            connections.remove(user_id);
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tab_gets_it_and_a_stuck_one_is_dropped() {
        let hub = AgentHub::default();
        let (a, mut rx_a) = hub.register("u1");
        let (_b, rx_b) = hub.register("u1");
        assert!(hub.is_connected("u1"));
        assert_eq!(hub.send_to_user("u1", &ServerMessage::Pong), 2);
        assert_eq!(rx_a.try_recv().unwrap(), ServerMessage::Pong);
        // Tab b never reads: once its queue is full it is let go, tab a stays.
        for _ in 0..CONNECTION_QUEUE {
            hub.send_to_user("u1", &ServerMessage::Pong);
            let _ = rx_a.try_recv();
        }
        assert_eq!(hub.send_to_user("u1", &ServerMessage::Pong), 1);
        drop(rx_b);
        hub.unregister("u1", a);
        assert!(!hub.is_connected("u1"));
        assert_eq!(hub.send_to_user("u1", &ServerMessage::Pong), 0);
    }
}

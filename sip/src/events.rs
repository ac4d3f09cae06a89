//! What happened to a call, for the application (call records, timeline, webhooks).

use serde::{Deserialize, Serialize};

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupSide {
    Caller,
    Callee,
    System,
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallDirection {
    Inbound,
    Outbound,
    Internal,
}

/// A call's lifecycle as the B2BUA reports it. `call_id` is callscope's id for the call
/// (the caller leg's SIP Call-ID is in `started`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEvent {
    Started {
        call_id: String,
        org_id: String,
        direction: CallDirection,
        from: String,
        to: String,
        sip_call_id: String,
        agent_user_id: Option<String>,
        trunk_id: Option<String>,
        at_ms: i64,
    },
    Ringing {
        call_id: String,
        at_ms: i64,
    },
    Answered {
        call_id: String,
        answered_by_user_id: Option<String>,
        at_ms: i64,
    },
    Held {
        call_id: String,
        at_ms: i64,
    },
    Resumed {
        call_id: String,
        at_ms: i64,
    },
    Transferred {
        call_id: String,
        to: String,
        at_ms: i64,
    },
    Ended {
        call_id: String,
        at_ms: i64,
        /// Final SIP status of the call attempt (200 if answered).
        sip_status: u16,
        hangup_side: HangupSide,
        /// e.g. "normal_clearing", "no_answer", "busy", "cancelled", "timeout", "rejected".
        cause: String,
    },
}

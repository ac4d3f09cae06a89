//! Browser softphones as call targets. An agent logged in to callscope's web page is rung
//! like a registered phone, but nothing about it is SIP: the page is told about the call
//! over the application's WebSocket, and answers by sending its WebRTC offer back through
//! [`CallControl`](crate::control::CallControl)'s device commands. This trait is what the
//! B2BUA asks of the application for that: can this agent take a call now, and tell its
//! page what happens to the calls it is part of.

use serde::Serialize;

use crate::events::CallDirection;

/// A call as an agent's page sees it when it rings or is placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCall {
    pub call_id: String,
    pub org_id: String,
    pub direction: CallDirection,
    /// The other party's number or extension (the caller of an inbound call; the dialled
    /// number of an agent's own call).
    pub from: String,
    pub from_display: Option<String>,
    /// What was dialled (the DID of an inbound call).
    pub to: String,
}

/// Why a call ended, or stopped ringing, for one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The agent hung up.
    AgentHangup,
    /// The other party hung up.
    RemoteHangup,
    /// Someone else in the ring group took it.
    AnsweredElsewhere,
    /// The caller gave up while it rang.
    CallerCancelled,
    /// It rang out.
    NoAnswer,
    /// The agent declined it, or the dialled party did.
    Rejected,
    /// The dialled party was busy.
    Busy,
    /// The dialled party could not be reached.
    Unavailable,
    /// The agent transferred the call away.
    Transferred,
    /// The agent's media never connected or was lost.
    MediaFailed,
    /// Ended by callscope or an API client.
    Failed,
}

/// What happened to a call an agent's page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceNotice {
    /// The call rings this agent.
    Incoming(DeviceCall),
    /// The agent's own call (click-to-call) was placed.
    Dialing(DeviceCall),
    /// The dialled party is ringing.
    Ringing,
    /// The call is connected with this agent in it.
    Answered,
    /// Muted or held state of the agent's call changed.
    Updated { muted: bool, held: bool },
    /// The call is over for this agent.
    Ended(EndReason),
}

/// Implemented by the application (the agent WebSocket hub). Calls never wait on it.
pub trait Softphones: Send + Sync + 'static {
    /// Whether `user_id` has a softphone that may ring now (connected, available).
    fn can_ring(&self, org_id: &str, user_id: &str) -> bool;
    /// Tell the agent's page(s) about one of its calls.
    fn notify(&self, org_id: &str, user_id: &str, call_id: &str, notice: DeviceNotice);
}

/// For servers without browser agents (and the sip crate's own tests): nobody can ring.
pub struct NoSoftphones;

impl Softphones for NoSoftphones {
    fn can_ring(&self, _org_id: &str, _user_id: &str) -> bool {
        false
    }

    fn notify(&self, _org_id: &str, _user_id: &str, _call_id: &str, _notice: DeviceNotice) {}
}

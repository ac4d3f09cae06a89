//! Commands the application gives to live calls (REST call-control API). Implemented by the
//! B2BUA (`call::CallManager`).

use futures::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such call in this organization (the API answers 404).
    #[error("call not found")]
    NotFound,
    /// The call is not in a state that allows this (409).
    #[error("not allowed in the call's current state: {0}")]
    InvalidState(String),
    /// The destination cannot be reached (no registered contact, no trunk, ...).
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("call control failed: {0}")]
    Failed(String),
}

pub type ControlResult<T> = Result<T, ControlError>;

pub trait CallControl: Send + Sync + 'static {
    /// Click-to-call: ring the agent's phone(s) first; when answered, dial `number` (an
    /// extension or an external number through the trunk) and bridge. Returns the call id.
    fn click_to_call<'a>(
        &'a self,
        org_id: &'a str,
        agent_user_id: &'a str,
        number: &'a str,
    ) -> BoxFuture<'a, ControlResult<String>>;
    fn hangup<'a>(&'a self, org_id: &'a str, call_id: &'a str) -> BoxFuture<'a, ControlResult<()>>;
    fn hold<'a>(&'a self, org_id: &'a str, call_id: &'a str) -> BoxFuture<'a, ControlResult<()>>;
    fn resume<'a>(&'a self, org_id: &'a str, call_id: &'a str) -> BoxFuture<'a, ControlResult<()>>;
    /// Blind transfer of the remote party to `target` (extension or number).
    fn transfer<'a>(
        &'a self,
        org_id: &'a str,
        call_id: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, ControlResult<()>>;
    /// Live calls of an organization (ids).
    fn active_calls(&self, org_id: &str) -> Vec<String>;

    /// A command from the browser softphone of `user_id`, who must be part of the call
    /// (ringing or connected); any other call is "not found".
    fn device<'a>(
        &'a self,
        org_id: &'a str,
        user_id: &'a str,
        call_id: &'a str,
        command: DeviceCommand,
    ) -> BoxFuture<'a, ControlResult<DeviceReply>>;

    /// Click-to-call from a browser: the agent's WebRTC leg is set up from `offer` at once,
    /// then `number` is dialled. Returns the call id and our SDP answer for the browser.
    fn browser_dial<'a>(
        &'a self,
        org_id: &'a str,
        user_id: &'a str,
        number: &'a str,
        offer: &'a str,
    ) -> BoxFuture<'a, ControlResult<(String, String)>>;
}

/// What a browser softphone asks of a call it is part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCommand {
    /// Take the ringing call with this WebRTC offer.
    Answer {
        offer: String,
    },
    Reject,
    /// A trickled ICE candidate line (empty: end of candidates).
    Candidate(String),
    Hangup,
    Mute(bool),
    Hold(bool),
    /// Blind transfer of the other party to an extension or a number.
    Transfer(String),
    Dtmf(String),
}

/// The result of a device command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceReply {
    Done,
    /// Our SDP answer to the browser's offer.
    Answer(String),
}

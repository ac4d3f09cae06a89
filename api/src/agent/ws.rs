//! `GET /api/v1/agent/ws`: the softphone's signalling socket, authenticated by the agent's
//! session cookie. JSON messages with a `type`, as docs/softphone-protocol.md describes: the
//! server says `hello` (who you are, your presence, your calls), then what happens to the
//! agent's presence and calls; the page sends presence changes and call commands (answer
//! with its WebRTC offer, dial, hang up, mute, hold, transfer, DTMF, ICE candidates).
//!
//! A socket only opens for a page of this server: browsers send `Origin`, and a cookie-carrying
//! socket from another site (cross-site WebSocket hijacking) is refused. Without `Origin` (not
//! a browser) the cookie alone decides.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::mpsc;

use callscope_sip::control::{ControlError, DeviceCommand, DeviceReply};

use super::http::AgentCtx;
use super::hub::ServerMessage;
use super::presence::{self, Presence};
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::store::contacts;

/// Largest message a page may send (signalling is small; SDP offers are a few kB).
const MAX_MESSAGE: usize = 64 * 1024;

/// Commands of one connection waiting to run, and replies waiting to be sent.
const COMMAND_QUEUE: usize = 32;

/// How often an open socket checks that its session still holds (logout elsewhere, expiry):
/// a socket outliving its session must not keep controlling calls.
const SESSION_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Ping,
    SetPresence {
        status: String,
    },
    /// Click-to-call: a typed `number`, or a contact's phone by `contact_id`.
    Dial {
        number: Option<String>,
        contact_id: Option<String>,
        sdp: String,
        request_id: Option<String>,
    },
    /// Everything else names a call.
    #[serde(untagged)]
    Call(CallMessage),
}

#[derive(Deserialize)]
struct CallMessage {
    #[serde(rename = "type")]
    kind: String,
    call_id: String,
    request_id: Option<String>,
    sdp: Option<String>,
    candidate: Option<String>,
    target: Option<String>,
    digits: Option<String>,
}

impl CallMessage {
    /// The device command this message asks for, or what is wrong with it.
    fn command(&self) -> Result<DeviceCommand, String> {
        let need = |field: &Option<String>, name: &str| {
            field
                .clone()
                .ok_or_else(|| format!("`{}` needs `{name}`", self.kind))
        };
        Ok(match self.kind.as_str() {
            "answer" => DeviceCommand::Answer {
                offer: need(&self.sdp, "sdp")?,
            },
            "reject" => DeviceCommand::Reject,
            "candidate" => DeviceCommand::Candidate(need(&self.candidate, "candidate")?),
            "hangup" => DeviceCommand::Hangup,
            "mute" => DeviceCommand::Mute(true),
            "unmute" => DeviceCommand::Mute(false),
            "hold" => DeviceCommand::Hold(true),
            "resume" => DeviceCommand::Hold(false),
            "transfer" => DeviceCommand::Transfer(need(&self.target, "target")?),
            "dtmf" => DeviceCommand::Dtmf(need(&self.digits, "digits")?),
            other => return Err(format!("unknown message type `{other}`")),
        })
    }
}

/// The protocol's error code for a failed call command.
fn control_error(e: &ControlError) -> &'static str {
    match e {
        ControlError::NotFound => "not_found",
        ControlError::InvalidState(_) => "invalid_state",
        ControlError::Unreachable(_) => "unreachable",
        ControlError::Failed(_) => "failed",
    }
}

/// The `Origin` of a browser request must name the host the request was sent to.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

#[utoipa::path(
    get,
    path = "/agent/ws",
    tag = crate::http::openapi::tags::AGENTS,
    summary = "The softphone's WebSocket (see docs/softphone-protocol.md)",
    security(("session" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 403, description = "The page opening it is not this server's (`cross_origin`)."),
        (status = 426, description = "Not a WebSocket upgrade request."),
    ),
)]
pub async fn agent_ws(
    State(state): State<AppState>,
    agent: AgentCtx,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    if !same_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "the softphone socket only opens from this server's own pages",
        ));
    }
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(state, agent, socket)))
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> bool {
    match serde_json::to_string(message) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn serve(state: AppState, agent: AgentCtx, mut socket: WebSocket) {
    let (org_id, user_id) = (agent.session.org_id.clone(), agent.session.user_id.clone());
    let presence = current_presence(&state, &org_id, &user_id).await;
    let hello = match super::http::user_view(&state, &agent.session).await {
        Ok(view) => ServerMessage::Hello {
            user: view["user"].clone(),
            presence,
            calls: state.agent_calls.of_user(&user_id),
        },
        Err(_) => return,
    };
    if !send(&mut socket, &hello).await {
        return;
    }
    let (conn, mut queue) = state.agents.register(&user_id);
    metrics::gauge!("callscope_agent_sockets").increment(1.0);
    // Commands run one after another, in the order the page sent them (an answer before its
    // ICE candidates), on a task of their own so that a long one (a transfer rings its
    // target) never stops this loop from delivering events.
    let (commands, mut command_rx) = mpsc::channel::<String>(COMMAND_QUEUE);
    let (reply_tx, mut replies) = mpsc::channel::<ServerMessage>(COMMAND_QUEUE);
    let worker = {
        let (state, org_id, user_id) = (state.clone(), org_id.clone(), user_id.clone());
        tokio::spawn(async move {
            while let Some(text) = command_rx.recv().await {
                if let Some(reply) = handle(&state, &org_id, &user_id, &text).await
                    && reply_tx.send(reply).await.is_err()
                {
                    break;
                }
            }
        })
    };
    let mut session_check = tokio::time::interval(SESSION_CHECK);
    session_check.tick().await;
    loop {
        tokio::select! {
            _ = session_check.tick() => {
                let valid = matches!(
                    super::sessions::lookup(&state.pool, &agent.token).await,
                    Ok(Some(_))
                );
                if !valid {
                    let ended = ServerMessage::error("session_ended", "log in again");
                    let _ = send(&mut socket, &ended).await;
                    break;
                }
            }
            queued = queue.recv() => {
                // None: the hub let this connection go (it lagged); the page reconnects.
                let Some(message) = queued else { break };
                if !send(&mut socket, &message).await {
                    break;
                }
            }
            Some(reply) = replies.recv() => {
                if !send(&mut socket, &reply).await {
                    break;
                }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if commands.try_send(text.to_string()).is_err() {
                    let busy = ServerMessage::error("busy", "too many commands in flight");
                    if !send(&mut socket, &busy).await {
                        break;
                    }
                }
            }
        }
    }
    // Commands already sent still run (a hang-up must not be lost with the socket).
    drop(commands);
    drop(worker);
    state.agents.unregister(&user_id, conn);
    metrics::gauge!("callscope_agent_sockets").decrement(1.0);
}

/// The agent's presence, put on the board if it is not there yet (after a restart). A busy
/// or wrap-up left over from before a restart, with no call to show for it, becomes away.
async fn current_presence(state: &AppState, org_id: &str, user_id: &str) -> Presence {
    if let Some(p) = state.presence.get(user_id) {
        return p;
    }
    let stored = presence::get(&state.pool, org_id, user_id)
        .await
        .unwrap_or(Presence::Offline);
    let p = match stored {
        Presence::Busy | Presence::WrapUp if !state.agent_calls.on_a_call(user_id) => {
            Presence::Away
        }
        other => other,
    };
    if p != stored {
        let _ = presence::store(&state.pool, org_id, user_id, p).await;
    }
    state.presence.put(user_id, p);
    p
}

/// One message from the page; the direct reply, if any (broadcasts go through the hub).
async fn handle(
    state: &AppState,
    org_id: &str,
    user_id: &str,
    text: &str,
) -> Option<ServerMessage> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => return Some(ServerMessage::error("bad_message", e.to_string())),
    };
    match message {
        ClientMessage::Ping => Some(ServerMessage::Pong),
        ClientMessage::SetPresence { status } => {
            let Some(wanted) = Presence::parse(&status).filter(|p| p.chosen_by_agent()) else {
                return Some(ServerMessage::error(
                    "validation_error",
                    "status must be \"available\" or \"away\"",
                ));
            };
            match presence::change_by_agent(&state.pool, &state.presence, org_id, user_id, wanted)
                .await
            {
                Ok(()) => {
                    // Every tab of the agent (this one included) shows the new state.
                    state
                        .agents
                        .send_to_user(user_id, &ServerMessage::Presence { status: wanted });
                    None
                }
                Err(e) => Some(ServerMessage::error(e.code(), e.to_string())),
            }
        }
        ClientMessage::Dial {
            number,
            contact_id,
            sdp,
            request_id,
        } => {
            let number = match (number, contact_id) {
                (Some(number), None) => number,
                (None, Some(contact_id)) => {
                    match contacts::get_contact(&state.pool, org_id, &contact_id).await {
                        Ok(Some(contact)) if contact.phone_e164.is_some() => {
                            contact.phone_e164.unwrap_or_default()
                        }
                        Ok(_) => {
                            return Some(ServerMessage::Error {
                                code: "not_found",
                                message: "no such contact with a phone number".into(),
                                call_id: None,
                                request_id,
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "contact lookup for dial failed");
                            return Some(ServerMessage::Error {
                                code: "failed",
                                message: "the contact could not be read".into(),
                                call_id: None,
                                request_id,
                            });
                        }
                    }
                }
                _ => {
                    return Some(ServerMessage::Error {
                        code: "validation_error",
                        message: "dial needs exactly one of `number` and `contact_id`".into(),
                        call_id: None,
                        request_id,
                    });
                }
            };
            dial(state, org_id, user_id, &number, &sdp, request_id).await
        }
        ClientMessage::Call(message) => call_command(state, org_id, user_id, message).await,
    }
}

fn no_calls(call_id: Option<String>, request_id: Option<String>) -> ServerMessage {
    ServerMessage::Error {
        code: "unavailable",
        message: "calls are not enabled on this server (SIP is off)".into(),
        call_id,
        request_id,
    }
}

async fn dial(
    state: &AppState,
    org_id: &str,
    user_id: &str,
    number: &str,
    sdp: &str,
    request_id: Option<String>,
) -> Option<ServerMessage> {
    let Some(control) = state.sip.control() else {
        return Some(no_calls(None, request_id));
    };
    let number = number.trim();
    if number.is_empty() || number.len() > 64 {
        return Some(ServerMessage::Error {
            code: "validation_error",
            message: "dial needs a number (up to 64 characters)".into(),
            call_id: None,
            request_id,
        });
    }
    Some(
        match control.browser_dial(org_id, user_id, number, sdp).await {
            Ok((call_id, answer)) => ServerMessage::MediaAnswer {
                call_id,
                sdp: answer,
                request_id,
            },
            Err(e) => ServerMessage::Error {
                code: control_error(&e),
                message: e.to_string(),
                call_id: None,
                request_id,
            },
        },
    )
}

async fn call_command(
    state: &AppState,
    org_id: &str,
    user_id: &str,
    message: CallMessage,
) -> Option<ServerMessage> {
    let command = match message.command() {
        Ok(c) => c,
        Err(e) => {
            return Some(ServerMessage::Error {
                code: "bad_message",
                message: e,
                call_id: Some(message.call_id),
                request_id: message.request_id,
            });
        }
    };
    let call_id = message.call_id;
    let request_id = message.request_id;
    let Some(control) = state.sip.control() else {
        return Some(no_calls(Some(call_id), request_id));
    };
    Some(
        match control.device(org_id, user_id, &call_id, command).await {
            Ok(DeviceReply::Answer(sdp)) => ServerMessage::MediaAnswer {
                call_id,
                sdp,
                request_id,
            },
            Ok(DeviceReply::Done) => ServerMessage::Ack {
                call_id: Some(call_id),
                request_id,
            },
            Err(e) => ServerMessage::Error {
                code: control_error(&e),
                message: e.to_string(),
                call_id: Some(call_id),
                request_id,
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origin_must_be_this_host() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no Origin: not a browser");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}

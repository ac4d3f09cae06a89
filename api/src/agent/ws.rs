//! `GET /api/v1/agent/ws`: the softphone's signalling socket, authenticated by the agent's
//! session cookie. JSON messages with a `type`: the server says `hello` (who you are, your
//! presence), `presence` when it changes, `pong`, `error`; the page sends `ping` and
//! `set_presence`. Calls (incoming, answer, hangup, SDP) come over this same socket next.
//!
//! A socket only opens for a page of this server: browsers send `Origin`, and a cookie-carrying
//! socket from another site (cross-site WebSocket hijacking) is refused. Without `Origin` (not
//! a browser) the cookie alone decides.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::http::AgentCtx;
use super::hub::ServerMessage;
use super::presence::{self, Presence};
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;

/// Largest message a page may send (signalling is small; SDP offers are a few kB).
const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Ping,
    SetPresence { status: String },
}

/// The `Origin` of a browser request must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
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
    let hello = match super::http::user_view(&state, &agent.session).await {
        Ok(view) => ServerMessage::Hello {
            user: view["user"].clone(),
            presence: presence::get(&state.pool, &org_id, &user_id)
                .await
                .unwrap_or(Presence::Offline),
        },
        Err(_) => return,
    };
    if !send(&mut socket, &hello).await {
        return;
    }
    let (conn, mut queue) = state.agents.register(&user_id);
    metrics::gauge!("callscope_agent_sockets").increment(1.0);
    loop {
        tokio::select! {
            queued = queue.recv() => {
                // None: the hub let this connection go (it lagged); the page reconnects.
                let Some(message) = queued else { break };
                if !send(&mut socket, &message).await {
                    break;
                }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let reply = handle(&state, &org_id, &user_id, &text).await;
                if let Some(reply) = reply
                    && !send(&mut socket, &reply).await
                {
                    break;
                }
            }
        }
    }
    state.agents.unregister(&user_id, conn);
    metrics::gauge!("callscope_agent_sockets").decrement(1.0);
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
        Err(e) => {
            return Some(ServerMessage::Error {
                code: "bad_message",
                message: e.to_string(),
            });
        }
    };
    match message {
        ClientMessage::Ping => Some(ServerMessage::Pong),
        ClientMessage::SetPresence { status } => {
            let Some(wanted) = Presence::parse(&status).filter(|p| p.chosen_by_agent()) else {
                return Some(ServerMessage::Error {
                    code: "validation_error",
                    message: "status must be \"available\" or \"away\"".into(),
                });
            };
            match presence::change_by_agent(&state.pool, org_id, user_id, wanted).await {
                Ok(()) => {
                    // Every tab of the agent (this one included) shows the new state.
                    state
                        .agents
                        .send_to_user(user_id, &ServerMessage::Presence { status: wanted });
                    None
                }
                Err(e) => Some(ServerMessage::Error {
                    code: e.code(),
                    message: e.to_string(),
                }),
            }
        }
    }
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

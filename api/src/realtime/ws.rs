//! `GET /api/v1/events/ws`: the organization's events as they happen, for the agent's page,
//! a QA dashboard or an integration, scoped like the REST API.
//!
//! Query: `events` (comma-separated subscription patterns as webhooks take them: `*`,
//! `message.*`, `call.ended`; default `*`), `contact_id` or `conversation_id` (only what
//! concerns it: one contact's timeline), `after` (a `seq` from an earlier connection: what was
//! missed is replayed first, for up to 24 hours).
//!
//! Server messages (JSON text frames):
//! - `{"type":"ready","seq":N}`: subscribed; events follow, each with a larger `seq`;
//! - `{"type":"event","seq":N,"id":…,"event":"message.created","created_at":…,"data":{…}}`:
//!   `id`, `event`, `created_at` and `data` are the webhook envelope's;
//! - `{"type":"reset","reason":…}`: some events could not be delivered (asked to resume
//!   from before the replay window); reload with the REST API, then go on;
//! - `{"type":"pong"}` to a `{"type":"ping"}`;
//! - `{"type":"error","code":"unauthorized"}` before closing, when the API key was revoked or
//!   expired or the session ended (checked every 10 s).
//!
//! Authentication as the REST API: an API key header or the web session cookie. A socket
//! opened with the cookie must come from this server's own pages (`Origin`), as the
//! softphone's socket must.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::log::{self, StreamEvent};
use super::scope::Scope;
use crate::auth::{Credential, OrgCtx};
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;
use crate::webhooks::events::is_valid_subscription;

/// Clients only send pings; anything larger is not a message of this protocol.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;
/// How often the socket's credential is checked again.
const CREDENTIAL_CHECK: Duration = Duration::from_secs(10);
/// WebSocket pings keep idle connections through proxies and find dead peers.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Events read per catch-up query, and catch-up rounds before giving up with a `reset`.
const CATCH_UP_BATCH: i64 = 500;
const CATCH_UP_ROUNDS: usize = 100;
const MAX_PATTERNS: usize = 32;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated event names or patterns (`message.*`); all the caller may see if absent.
    events: Option<String>,
    /// Only events about this contact.
    contact_id: Option<String>,
    /// Only events about this conversation.
    conversation_id: Option<String>,
    /// Replay what came after this sequence number (a reconnecting client's last `seq`).
    after: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/events/ws",
    tag = crate::http::openapi::tags::REALTIME,
    summary = "WebSocket of the organization's events (see docs/realtime.md)",
    params(StreamQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 426, description = "Not a WebSocket upgrade request."),
    ),
)]
pub async fn events_socket(
    State(state): State<AppState>,
    org: OrgCtx,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let credential = Credential::presented(&headers).ok_or_else(ApiError::unauthorized)?;
    if matches!(credential, Credential::Session(_)) && !crate::agent::ws::same_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "a socket opened with the session cookie must come from this server's own pages",
        ));
    }
    if !org.permissions.has(Permission::ContactsRead) && org.call_access().is_err() {
        return Err(ApiError::forbidden(Permission::ContactsRead));
    }
    let patterns = patterns(q.events.as_deref())?;
    if let Some(after) = q.after
        && after < 0
    {
        return Err(invalid(
            "after",
            "must be a seq from an earlier event (≥ 0)".into(),
        ));
    }
    if let Some(id) = &q.contact_id {
        exists(&state, &org.org_id, id, Narrowing::Contact).await?;
    }
    if let Some(id) = &q.conversation_id {
        exists(&state, &org.org_id, id, Narrowing::Conversation).await?;
    }
    let scope = Scope::new(org, patterns, q.contact_id, q.conversation_id);
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(state, credential, scope, q.after, socket)))
}

fn patterns(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = raw
        .unwrap_or("*")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if list.is_empty() || list.len() > MAX_PATTERNS {
        return Err(invalid(
            "events",
            "give 1 to 32 comma-separated event names or families (e.g. message.*,call.ended)"
                .into(),
        ));
    }
    if let Some(bad) = list.iter().find(|p| !is_valid_subscription(p)) {
        return Err(invalid(
            "events",
            format!("{bad} is not an event name or family (see the webhook event list)"),
        ));
    }
    Ok(list)
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::validation(message).with_details(json!({ "field": field }))
}

/// What a socket may be narrowed to.
#[derive(Clone, Copy)]
enum Narrowing {
    Contact,
    Conversation,
}

/// 404 unless the organization has the row (another organization's id must not leak).
async fn exists(state: &AppState, org_id: &str, id: &str, what: Narrowing) -> Result<(), ApiError> {
    let (sql, name) = match what {
        Narrowing::Contact => (
            "SELECT 1 FROM contacts WHERE org_id = $1 AND id = $2",
            "contact",
        ),
        Narrowing::Conversation => (
            "SELECT 1 FROM conversations WHERE org_id = $1 AND id = $2",
            "conversation",
        ),
    };
    let found: Option<(i64,)> = sqlx::query_as(sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    found.map(|_| ()).ok_or_else(|| ApiError::not_found(name))
}

async fn send_json(socket: &mut WebSocket, value: serde_json::Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

fn event_message(e: &StreamEvent) -> serde_json::Value {
    json!({
        "type": "event",
        "seq": e.seq,
        "id": e.id,
        "event": e.event,
        "created_at": ms_to_rfc3339(e.created_at),
        "data": e.data,
    })
}

/// Where a socket is in the stream.
struct Cursor {
    last: i64,
}

impl Cursor {
    /// Sends `e` when it is new and admitted; false when the socket is gone.
    async fn offer(
        &mut self,
        state: &AppState,
        scope: &mut Scope,
        socket: &mut WebSocket,
        e: &StreamEvent,
    ) -> bool {
        if e.seq <= self.last {
            return true;
        }
        self.last = e.seq;
        if !scope.admits(&state.pool, e).await {
            return true;
        }
        metrics::counter!("callscope_realtime_events_sent_total").increment(1);
        send_json(socket, event_message(e)).await
    }

    /// Everything of the organization after `last`, from the table. False when the socket
    /// is gone.
    async fn catch_up(
        &mut self,
        state: &AppState,
        scope: &mut Scope,
        socket: &mut WebSocket,
    ) -> bool {
        for _ in 0..CATCH_UP_ROUNDS {
            let rows = match log::after(
                &state.pool,
                Some(&scope.ctx.org_id),
                self.last,
                CATCH_UP_BATCH,
            )
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "realtime: catch-up read failed");
                    return send_json(
                        socket,
                        json!({"type": "reset", "reason": "the event stream could not be read"}),
                    )
                    .await;
                }
            };
            let done = (rows.len() as i64) < CATCH_UP_BATCH;
            for e in &rows {
                if !self.offer(state, scope, socket, e).await {
                    return false;
                }
            }
            if done {
                return true;
            }
        }
        // Far behind: skip to now rather than replay without end.
        if let Ok(latest) = log::latest_seq(&state.pool).await {
            self.last = latest;
        }
        send_json(
            socket,
            json!({"type": "reset", "reason": "too many events were missed; reload and go on"}),
        )
        .await
    }
}

async fn serve(
    state: AppState,
    credential: Credential,
    mut scope: Scope,
    after: Option<i64>,
    mut socket: WebSocket,
) {
    // Subscribed before reading where to start, so no event falls between the two.
    let mut batches = state.events.subscribe();
    let Ok(latest) = log::latest_seq(&state.pool).await else {
        return;
    };
    let mut cursor = Cursor {
        last: after.unwrap_or(latest).min(latest),
    };
    if !send_json(&mut socket, json!({"type": "ready", "seq": cursor.last})).await {
        return;
    }
    if let Some(after) = after {
        // Events the client missed may already be pruned: say so instead of pretending.
        let oldest = log::oldest_seq(&state.pool, &scope.ctx.org_id)
            .await
            .ok()
            .flatten();
        if oldest.is_some_and(|o| o > after + 1)
            && !send_json(
                &mut socket,
                json!({"type": "reset", "reason": "events before the replay window were missed"}),
            )
            .await
        {
            return;
        }
        if !cursor.catch_up(&state, &mut scope, &mut socket).await {
            return;
        }
    }
    metrics::gauge!("callscope_realtime_sockets").increment(1.0);
    let mut check = tokio::time::interval(CREDENTIAL_CHECK);
    check.tick().await;
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        tokio::select! {
            batch = batches.recv() => match batch {
                Ok(batch) => {
                    let mut open = true;
                    for e in batch.iter() {
                        if !cursor.offer(&state, &mut scope, &mut socket, e).await {
                            open = false;
                            break;
                        }
                    }
                    if !open {
                        break;
                    }
                }
                // Too slow for the broadcast: the table still has everything.
                Err(RecvError::Lagged(_)) => {
                    if !cursor.catch_up(&state, &mut scope, &mut socket).await {
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let is_ping = serde_json::from_str::<serde_json::Value>(&text)
                        .is_ok_and(|v| v["type"] == "ping");
                    if is_ping && !send_json(&mut socket, json!({"type": "pong"})).await {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = check.tick() => match credential.authenticate(&state.pool).await {
                // Permissions follow role changes; the organization cannot change.
                Ok(Some(ctx)) if ctx.org_id == scope.ctx.org_id => scope.ctx = ctx,
                Ok(_) => {
                    let _ = send_json(&mut socket, json!({
                        "type": "error",
                        "code": "unauthorized",
                        "message": "the API key or session is no longer valid",
                    })).await;
                    break;
                }
                // A database hiccup is not a reason to drop the client.
                Err(e) => tracing::warn!(error = %e, "realtime: credential check failed"),
            },
            _ = keepalive.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    metrics::gauge!("callscope_realtime_sockets").decrement(1.0);
    let _ = socket.send(Message::Close(None)).await;
}

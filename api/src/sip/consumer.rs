//! The call-event consumer: turns the B2BUA's [`CallEvent`]s into call records, timeline
//! events and webhooks. It runs as its own task on the receiving end of a bounded channel;
//! the SIP side only ever `try_send`s into it, so a slow database can never stall
//! signalling (a full channel drops events there, counted). Every event is applied in one
//! transaction together with its timeline entry and webhook, and applying one twice changes
//! nothing (each step is guarded by the call's current state).

use std::time::Duration;

use callscope_sip::events::CallEvent;
use serde_json::{Value, json};
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::call_records::{self, Ending, NewSipCall};
use crate::http::views;
use crate::store::{calls, timeline};

pub const EVENTS_APPLIED: &str = "callscope_sip_call_events_total";
pub const EVENTS_FAILED: &str = "callscope_sip_call_event_errors_total";
pub const EVENTS_IGNORED: &str = "callscope_sip_call_events_ignored_total";

/// Capacity of the channel between the SIP side and the consumer: enough for bursts of
/// thousands of call starts while SQLite commits, small enough to bound memory.
pub const EVENT_CHANNEL_CAPACITY: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("webhook: {0}")]
    Webhook(#[from] crate::webhooks::WebhookError),
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event changed the record (and emitted its timeline entry and webhook, if any).
    Changed,
    /// Already applied, or it no longer applies (e.g. ringing after the end).
    Unchanged,
    /// The call is unknown (its `Started` was dropped, or a bad id).
    UnknownCall,
}

fn call_id_of(ev: &CallEvent) -> &str {
    match ev {
        CallEvent::Started { call_id, .. }
        | CallEvent::Ringing { call_id, .. }
        | CallEvent::Answered { call_id, .. }
        | CallEvent::Held { call_id, .. }
        | CallEvent::Resumed { call_id, .. }
        | CallEvent::Transferred { call_id, .. }
        | CallEvent::Ended { call_id, .. } => call_id,
    }
}

/// Spawn the consumer. It ends when every sender is dropped, or when `stop` turns true; in
/// both cases after applying what is already queued (the last calls' `Ended` events matter).
pub fn spawn(
    pool: SqlitePool,
    mut rx: mpsc::Receiver<CallEvent>,
    default_region: String,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stopping = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => apply_with_retry(&pool, &ev, &default_region).await,
                    None => break,
                },
                () = &mut stopping => {
                    // Bounded: only what is queued now, at most the channel's capacity.
                    for _ in 0..EVENT_CHANNEL_CAPACITY {
                        match rx.try_recv() {
                            Ok(ev) => apply_with_retry(&pool, &ev, &default_region).await,
                            Err(_) => break,
                        }
                    }
                    break;
                }
            }
        }
        tracing::debug!("call-event consumer stopped");
    })
}

/// SQLite may be busy past its timeout under heavy load: try a few times, then give up on
/// this event (logged and counted) rather than stall every later one.
async fn apply_with_retry(pool: &SqlitePool, ev: &CallEvent, region: &str) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=3 {
        match apply(pool, ev, region).await {
            Ok(Applied::UnknownCall) => {
                metrics::counter!(EVENTS_IGNORED).increment(1);
                tracing::warn!(call_id = %call_id_of(ev), "call event for an unknown call ignored");
                return;
            }
            Ok(_) => {
                metrics::counter!(EVENTS_APPLIED).increment(1);
                return;
            }
            Err(e) if attempt < 3 => {
                tracing::warn!(call_id = %call_id_of(ev), error = %e, attempt, "call event failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(e) => {
                metrics::counter!(EVENTS_FAILED).increment(1);
                tracing::error!(call_id = %call_id_of(ev), error = %e, "call event lost");
            }
        }
    }
}

/// Apply one event (public for tests and for replaying events).
pub async fn apply(
    pool: &SqlitePool,
    ev: &CallEvent,
    default_region: &str,
) -> Result<Applied, ConsumeError> {
    let call_id = call_id_of(ev);
    if call_id.is_empty() || call_id.len() > 128 {
        return Ok(Applied::UnknownCall);
    }
    let mut tx = pool.begin().await?;
    let applied = match ev {
        CallEvent::Started {
            call_id,
            org_id,
            direction,
            from,
            to,
            sip_call_id,
            agent_user_id,
            trunk_id,
            at_ms,
        } => {
            let org_known: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM organizations WHERE id = $1")
                    .bind(org_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if org_known == 0 {
                return Ok(Applied::UnknownCall);
            }
            let new = NewSipCall {
                call_id,
                org_id,
                direction: *direction,
                from: &clip(from),
                to: &clip(to),
                sip_call_id: &clip(sip_call_id),
                agent_user_id: agent_user_id.as_deref(),
                trunk_id: trunk_id.as_deref(),
                at_ms: *at_ms,
                default_region,
            };
            match call_records::start(&mut tx, &new).await? {
                Some(_) => {
                    emit(&mut tx, org_id, call_id, "call.started", *at_ms, json!({})).await?;
                    Applied::Changed
                }
                None => Applied::Unchanged,
            }
        }
        other => {
            let Some(org_id) = call_records::org_of_call(&mut *tx, call_id).await? else {
                return Ok(Applied::UnknownCall);
            };
            let org_id = org_id.as_str();
            match other {
                CallEvent::Ringing { at_ms, .. } => {
                    if call_records::ringing(&mut tx, org_id, call_id, *at_ms).await? {
                        emit(&mut tx, org_id, call_id, "call.ringing", *at_ms, json!({})).await?;
                        Applied::Changed
                    } else {
                        Applied::Unchanged
                    }
                }
                CallEvent::Answered {
                    answered_by_user_id,
                    at_ms,
                    ..
                } => {
                    let by = answered_by_user_id.as_deref();
                    if call_records::answered(&mut tx, org_id, call_id, by, *at_ms).await? {
                        emit(&mut tx, org_id, call_id, "call.answered", *at_ms, json!({})).await?;
                        Applied::Changed
                    } else {
                        Applied::Unchanged
                    }
                }
                CallEvent::Held { at_ms, .. } | CallEvent::Resumed { at_ms, .. } => {
                    let hold = matches!(other, CallEvent::Held { .. });
                    if call_records::set_hold(&mut tx, org_id, call_id, hold).await? {
                        let kind = if hold { "call.held" } else { "call.resumed" };
                        timeline_only(&mut tx, org_id, call_id, kind, *at_ms, json!({})).await?;
                        Applied::Changed
                    } else {
                        Applied::Unchanged
                    }
                }
                CallEvent::Transferred { to, at_ms, .. } => {
                    // Keyed by time: a call may be transferred more than once, and the same
                    // event replayed lands on the same timeline row.
                    let payload = json!({ "to": clip(to) });
                    timeline_only(
                        &mut tx,
                        org_id,
                        call_id,
                        "call.transferred",
                        *at_ms,
                        payload,
                    )
                    .await?;
                    Applied::Changed
                }
                CallEvent::Ended {
                    at_ms,
                    sip_status,
                    hangup_side,
                    cause,
                    ..
                } => {
                    let e = Ending {
                        at_ms: *at_ms,
                        sip_status: *sip_status,
                        hangup_side: *hangup_side,
                        cause,
                    };
                    if call_records::ended(&mut tx, org_id, call_id, &e).await? {
                        emit(&mut tx, org_id, call_id, "call.ended", *at_ms, json!({})).await?;
                        Applied::Changed
                    } else {
                        Applied::Unchanged
                    }
                }
                CallEvent::Started { .. } => Applied::Unchanged,
            }
        }
    };
    tx.commit().await?;
    Ok(applied)
}

/// Peer-supplied strings (SIP URIs, display names) are bounded before they are stored.
fn clip(s: &str) -> String {
    s.chars().take(256).collect()
}

/// The body of a call.* event: the call as the API shows it, its SIP side, plus `extra`.
async fn payload(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    extra: Value,
) -> Result<(Value, Option<String>, Option<String>), ConsumeError> {
    let call = calls::get_call(&mut *conn, org_id, call_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let sip = call_records::get(&mut *conn, org_id, call_id).await?;
    let mut body = json!({
        "call": views::call(&call),
        "sip": sip.as_ref().map(call_records::view),
    });
    if let (Some(obj), Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    Ok((body, call.contact_id, call.conversation_id))
}

async fn timeline_only(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    kind: &str,
    at_ms: i64,
    extra: Value,
) -> Result<Value, ConsumeError> {
    let (body, contact_id, conversation_id) = payload(conn, org_id, call_id, extra).await?;
    // Hold, resume and transfer can happen several times in a call: one entry per
    // occurrence, keyed by its time, so that a replayed event lands on the same row.
    let ref_id = if matches!(kind, "call.held" | "call.resumed" | "call.transferred") {
        format!("{call_id}@{at_ms}")
    } else {
        call_id.to_string()
    };
    timeline::record_event(
        conn,
        org_id,
        &timeline::NewEvent {
            contact_id: contact_id.as_deref(),
            conversation_id: conversation_id.as_deref(),
            kind,
            ref_id: &ref_id,
            payload: &body,
            occurred_at: at_ms,
        },
    )
    .await?;
    Ok(body)
}

/// Timeline entry and webhook, in the caller's transaction.
async fn emit(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    kind: &'static str,
    at_ms: i64,
    extra: Value,
) -> Result<(), ConsumeError> {
    let body = timeline_only(conn, org_id, call_id, kind, at_ms, extra).await?;
    crate::webhooks::enqueue_event_in(conn, org_id, kind, body).await?;
    Ok(())
}

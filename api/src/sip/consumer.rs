//! The call-event consumer: turns the B2BUA's [`CallEvent`]s into call records, timeline
//! events and webhooks. It runs as its own task on the receiving end of a bounded channel;
//! the SIP side only ever `try_send`s into it, so a slow database can never stall
//! signalling (a full channel drops events there, counted).
//!
//! Throughput comes from batching: the consumer takes everything queued (up to
//! [`EVENT_BATCH_MAX`]) and applies it in channel order in ONE transaction, so the cost of a
//! commit and of rewriting the same index pages is paid once per batch instead of once per
//! event. If anything in a batch fails, the batch is rolled back and its events are applied
//! again one transaction each, so a bad event loses only itself. Applying an event twice
//! changes nothing (each step is guarded by the call's current state), which is what makes
//! that replay safe.

use std::collections::{BTreeSet, HashMap};
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
pub const BATCH_FALLBACKS: &str = "callscope_sip_call_event_batch_fallbacks_total";

/// Capacity of the channel between the SIP side and the consumer. It absorbs what arrives
/// while a batch commits or SQLite is busy (a checkpoint, another writer): at 1,000 calls/s
/// and four events per call, 65,536 slots are about 16 s of events. Memory is bounded by
/// the slots actually queued (tokio allocates the channel in blocks as it fills): an event
/// is 184 bytes inline plus its strings (ids, SIP URIs), roughly 0.4 KB, so a full channel
/// holds about 26 MB.
pub const EVENT_CHANNEL_CAPACITY: usize = 65_536;

/// Most events applied in one transaction. Large enough that the per-commit cost vanishes,
/// small enough that the write lock is held for tens of milliseconds, not seconds (other
/// writers, e.g. the API, wait for it).
pub const EVENT_BATCH_MAX: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("webhook: {0}")]
    Webhook(#[from] crate::webhooks::WebhookError),
}

/// What one transaction has already read and that cannot change under it: which calls
/// belong to which organization, and each organization's webhook subscribers. A batch of
/// events for the same few organizations then reads them once instead of once per event.
#[derive(Default)]
struct TxCache {
    org_of_call: HashMap<String, String>,
    subscribers: HashMap<String, crate::webhooks::Subscribers>,
}

impl TxCache {
    async fn org_of_call(
        &mut self,
        conn: &mut SqliteConnection,
        call_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        if let Some(org) = self.org_of_call.get(call_id) {
            return Ok(Some(org.clone()));
        }
        let org = call_records::org_of_call(&mut *conn, call_id).await?;
        if let Some(org) = &org {
            self.org_of_call.insert(call_id.to_string(), org.clone());
        }
        Ok(org)
    }

    async fn subscribers(
        &mut self,
        conn: &mut SqliteConnection,
        org_id: &str,
    ) -> Result<&crate::webhooks::Subscribers, sqlx::Error> {
        if !self.subscribers.contains_key(org_id) {
            let subs = crate::webhooks::Subscribers::load(conn, org_id).await?;
            self.subscribers.insert(org_id.to_string(), subs);
        }
        Ok(self.subscribers.entry(org_id.to_string()).or_default())
    }
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

/// Spawn the consumer with the default batch size. It ends when every sender is dropped,
/// or when `stop` turns true; in both cases after applying what is already queued (the last
/// calls' `Ended` events matter).
pub fn spawn(
    pool: SqlitePool,
    rx: mpsc::Receiver<CallEvent>,
    default_region: String,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    spawn_with_batch(pool, rx, default_region, stop, EVENT_BATCH_MAX)
}

/// [`spawn`] with an explicit batch size (1 = one transaction per event; for measuring).
pub fn spawn_with_batch(
    pool: SqlitePool,
    mut rx: mpsc::Receiver<CallEvent>,
    default_region: String,
    mut stop: watch::Receiver<bool>,
    batch_max: usize,
) -> JoinHandle<()> {
    let batch_max = batch_max.max(1);
    tokio::spawn(async move {
        let stopping = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopping);
        let mut batch = Vec::with_capacity(batch_max);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, batch_max) => {
                    if n == 0 {
                        break;
                    }
                    apply_batch(&pool, &batch, &default_region).await;
                    batch.clear();
                },
                () = &mut stopping => {
                    // Bounded: only what is queued now, at most the channel's capacity.
                    let mut left = EVENT_CHANNEL_CAPACITY;
                    while left > 0 {
                        while batch.len() < batch_max.min(left) {
                            match rx.try_recv() {
                                Ok(ev) => batch.push(ev),
                                Err(_) => break,
                            }
                        }
                        if batch.is_empty() {
                            break;
                        }
                        left -= batch.len();
                        apply_batch(&pool, &batch, &default_region).await;
                        batch.clear();
                    }
                    break;
                }
            }
        }
        tracing::debug!("call-event consumer stopped");
    })
}

/// Apply a batch in one transaction, in order; on any failure roll it all back and apply
/// the events one transaction each (with retries), so one bad event costs only itself.
pub async fn apply_batch(pool: &SqlitePool, batch: &[CallEvent], region: &str) {
    let (outcomes, ended_in) = match try_batch(pool, batch, region).await {
        Ok(done) => done,
        Err(e) => {
            metrics::counter!(BATCH_FALLBACKS).increment(1);
            tracing::warn!(events = batch.len(), error = %e, "call-event batch failed; applying its events one by one");
            for ev in batch {
                apply_with_retry(pool, ev, region).await;
            }
            return;
        }
    };
    for (ev, applied) in batch.iter().zip(outcomes) {
        count(ev, applied);
    }
    // Ended calls add minutes, recorded or not: the organization hears of a quota threshold
    // when the call that crossed it ends, not at its next upload.
    for org_id in ended_in {
        crate::analytics::quota::announce_after_intake(pool, &org_id).await;
    }
}

/// The batch's outcomes, and the organizations that had a call end in it.
async fn try_batch(
    pool: &SqlitePool,
    batch: &[CallEvent],
    region: &str,
) -> Result<(Vec<Applied>, BTreeSet<String>), ConsumeError> {
    // IMMEDIATE: take the write lock up front (waiting up to the busy timeout) instead of
    // upgrading a read transaction mid-batch, which fails at once if another writer got in.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut cache = TxCache::default();
    let mut ended_in = BTreeSet::new();
    for ev in batch {
        let applied = apply_in(&mut tx, &mut cache, ev, region).await?;
        if applied == Applied::Changed
            && matches!(ev, CallEvent::Ended { .. })
            && let Some(org) = cache.org_of_call.get(call_id_of(ev))
        {
            ended_in.insert(org.clone());
        }
        outcomes.push(applied);
    }
    tx.commit().await?;
    Ok((outcomes, ended_in))
}

fn count(ev: &CallEvent, applied: Applied) {
    if applied == Applied::UnknownCall {
        metrics::counter!(EVENTS_IGNORED).increment(1);
        tracing::warn!(call_id = %call_id_of(ev), "call event for an unknown call ignored");
    } else {
        metrics::counter!(EVENTS_APPLIED).increment(1);
    }
}

/// SQLite may be busy past its timeout under heavy load: try a few times, then give up on
/// this event (logged and counted) rather than stall every later one.
async fn apply_with_retry(pool: &SqlitePool, ev: &CallEvent, region: &str) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=3 {
        match apply(pool, ev, region).await {
            Ok(applied) => {
                count(ev, applied);
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

/// Apply one event in its own transaction (public for tests and for replaying events).
pub async fn apply(
    pool: &SqlitePool,
    ev: &CallEvent,
    default_region: &str,
) -> Result<Applied, ConsumeError> {
    let mut tx = pool.begin().await?;
    let applied = apply_in(&mut tx, &mut TxCache::default(), ev, default_region).await?;
    tx.commit().await?;
    Ok(applied)
}

/// Apply one event inside the caller's transaction. Every path that returns `Ok` without
/// a change has written nothing, so a batch can go on after it; an `Err` may leave partial
/// writes, which is why a failed batch is rolled back whole.
async fn apply_in(
    tx: &mut SqliteConnection,
    cache: &mut TxCache,
    ev: &CallEvent,
    default_region: &str,
) -> Result<Applied, ConsumeError> {
    let call_id = call_id_of(ev);
    if call_id.is_empty() || call_id.len() > 128 {
        return Ok(Applied::UnknownCall);
    }
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
            match call_records::start(tx, &new).await? {
                Some(_) => {
                    emit(
                        tx,
                        cache,
                        org_id,
                        call_id,
                        "call.started",
                        *at_ms,
                        json!({}),
                    )
                    .await?;
                    Applied::Changed
                }
                None => Applied::Unchanged,
            }
        }
        other => {
            let Some(org_id) = cache.org_of_call(tx, call_id).await? else {
                return Ok(Applied::UnknownCall);
            };
            let org_id = org_id.as_str();
            match other {
                CallEvent::Ringing { at_ms, .. } => {
                    if call_records::ringing(tx, org_id, call_id, *at_ms).await? {
                        emit(
                            tx,
                            cache,
                            org_id,
                            call_id,
                            "call.ringing",
                            *at_ms,
                            json!({}),
                        )
                        .await?;
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
                    if call_records::answered(tx, org_id, call_id, by, *at_ms).await? {
                        emit(
                            tx,
                            cache,
                            org_id,
                            call_id,
                            "call.answered",
                            *at_ms,
                            json!({}),
                        )
                        .await?;
                        Applied::Changed
                    } else {
                        Applied::Unchanged
                    }
                }
                CallEvent::Held { at_ms, .. } | CallEvent::Resumed { at_ms, .. } => {
                    let hold = matches!(other, CallEvent::Held { .. });
                    if call_records::set_hold(tx, org_id, call_id, hold).await? {
                        let kind = if hold { "call.held" } else { "call.resumed" };
                        timeline_only(tx, org_id, call_id, kind, *at_ms, json!({})).await?;
                        Applied::Changed
                    } else {
                        Applied::Unchanged
                    }
                }
                CallEvent::Transferred { to, at_ms, .. } => {
                    // Keyed by time: a call may be transferred more than once, and the same
                    // event replayed lands on the same timeline row.
                    let payload = json!({ "to": clip(to) });
                    timeline_only(tx, org_id, call_id, "call.transferred", *at_ms, payload).await?;
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
                    if call_records::ended(tx, org_id, call_id, &e).await? {
                        emit(tx, cache, org_id, call_id, "call.ended", *at_ms, json!({})).await?;
                        Applied::Changed
                    } else {
                        Applied::Unchanged
                    }
                }
                CallEvent::Started { .. } => Applied::Unchanged,
            }
        }
    };
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
    cache: &mut TxCache,
    org_id: &str,
    call_id: &str,
    kind: &'static str,
    at_ms: i64,
    extra: Value,
) -> Result<(), ConsumeError> {
    let body = timeline_only(conn, org_id, call_id, kind, at_ms, extra).await?;
    let subscribers = cache.subscribers(conn, org_id).await?;
    crate::webhooks::enqueue_event_to(conn, org_id, subscribers, kind, body).await?;
    Ok(())
}

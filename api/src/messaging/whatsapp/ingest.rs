//! Group commit for WhatsApp notifications. Handlers verify and parse in parallel, then hand
//! what to store to one writer task over a bounded channel; the writer stores everything
//! waiting (up to [`MAX_BATCH`] notifications) in ONE `BEGIN IMMEDIATE` transaction and
//! answers each handler after the commit. A notification is acknowledged (200 to Meta) only
//! once it is durable, and SQLite's single write lock is taken once per batch instead of
//! once per notification, with no connections spinning in the busy handler meanwhile.
//!
//! Inside the transaction the batch's messages are written together ([`batch`]: one
//! duplicate check, one read of links and of open conversations, multi-row INSERTs), since
//! each statement is a round trip to the connection's SQLite thread.
//!
//! Failures: a notification that fails for a reason of its own (a constraint, a value the
//! store refuses) is taken out and the rest of the batch is stored again without it, so it
//! cannot cost the others their acknowledgement; it is answered with a clear refusal. A
//! multi-row statement cannot say which notification a refused row came from, so such a
//! batch is rolled back and stored again one notification at a time (the per-message path),
//! which does. Any other failure (I/O, a lock that never came) answers 503 to the whole
//! batch: Meta redelivers, and replay detection on the wamid keeps exactly-once.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::batch;
use super::channel_cache::ChannelCache;
use super::payload::StatusReport;
use crate::ids::now_ms;
use crate::messaging::MessagingError;
use crate::messaging::channels::Channel;
use crate::messaging::events::Emitter;
use crate::messaging::inbound::{self, Ingested, Sender};
use crate::messaging::messages::{self, NewMessage, StatusChange};
use crate::messaging::model::Direction;
use crate::webhooks::WebhookError;

/// Notifications per transaction at most. Meta sends one message per notification, so this
/// is also roughly the messages per commit; large enough that the per-commit cost vanishes,
/// small enough that the write lock is released every few tens of milliseconds for the
/// other writers (API sends, the job queue).
pub const MAX_BATCH: usize = 256;
/// Notifications waiting for the writer before handlers wait to hand theirs over.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

/// One thing a notification asks to store, in the notification's order.
pub enum Item {
    Message {
        channel: Arc<Channel>,
        sender: Sender,
        message: NewMessage,
    },
    Status {
        channel: Arc<Channel>,
        report: StatusReport,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// This notification cannot be stored (answered 422; the batch's others are stored).
    #[error("the notification could not be stored: {0}")]
    Refused(String),
    /// Nothing could be stored right now (answered 503; Meta redelivers).
    #[error("notifications cannot be stored right now: {0}")]
    Unavailable(String),
}

/// The writer's inbox and the webhook's channel cache, one per server.
#[derive(Default)]
pub struct IngestQueue {
    /// Started on first use, inside the server's runtime; the task ends when the last
    /// sender (this queue) is dropped with the server's state.
    sender: OnceLock<mpsc::Sender<Job>>,
    pub channels: ChannelCache,
}

struct Job {
    items: Vec<Item>,
    reply: oneshot::Sender<Result<(), IngestError>>,
}

impl IngestQueue {
    /// Store one notification's items; returns once they are committed (or refused).
    pub async fn store(&self, pool: &SqlitePool, items: Vec<Item>) -> Result<(), IngestError> {
        let inbox = self.sender.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            tokio::spawn(run_writer(pool.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        inbox
            .send(Job { items, reply })
            .await
            .map_err(|_| IngestError::Unavailable("the ingestion writer has stopped".into()))?;
        answer.await.map_err(|_| {
            IngestError::Unavailable("the ingestion writer stopped before answering".into())
        })?
    }
}

async fn run_writer(pool: SqlitePool, mut inbox: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // `recv_many` waits for one job, then takes whatever else is already waiting.
    while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        metrics::histogram!("callscope_whatsapp_ingest_batch_size").record(jobs.len() as f64);
        commit_batch(&pool, jobs).await;
    }
}

#[derive(Default)]
struct Counts {
    created: u64,
    duplicates: u64,
    statuses: u64,
}

enum Failure {
    /// Job `index` failed for a reason of its own.
    One(usize, String),
    /// A multi-row statement of the batched path failed for a reason of one of its rows;
    /// which notification it was takes the one-by-one path to tell.
    Unattributed(String),
    /// The transaction failed as a whole.
    All(String),
}

/// How a batch's messages are written.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// A few statements for the whole batch (`batch::store_messages`).
    Batched,
    /// One notification after the other, each message on the per-message path: what a
    /// refusal needs to be pinned on its notification.
    OneByOne,
}

/// Store `jobs` in one transaction and answer them. Each job refused for its own reason is
/// removed and the rest stored again, so this ends after at most `jobs.len() + 1` attempts
/// (the batched one, then one-by-one ones).
async fn commit_batch(pool: &SqlitePool, mut jobs: Vec<Job>) {
    let mut mode = Mode::Batched;
    while !jobs.is_empty() {
        match attempt(pool, &jobs, mode).await {
            Ok(c) => {
                metrics::counter!("callscope_whatsapp_messages_received_total")
                    .increment(c.created);
                metrics::counter!("callscope_whatsapp_messages_replayed_total")
                    .increment(c.duplicates);
                metrics::counter!("callscope_whatsapp_statuses_received_total")
                    .increment(c.statuses);
                for job in jobs {
                    // The handler may have gone (client disconnected): it is stored anyway.
                    let _ = job.reply.send(Ok(()));
                }
                return;
            }
            Err(Failure::One(index, reason)) => {
                if index >= jobs.len() {
                    break;
                }
                let bad = jobs.remove(index);
                tracing::warn!(%reason, "WhatsApp notification refused; the rest of its batch is stored again");
                let _ = bad.reply.send(Err(IngestError::Refused(reason)));
            }
            Err(Failure::Unattributed(reason)) => {
                if mode == Mode::OneByOne {
                    break;
                }
                tracing::info!(%reason, notifications = jobs.len(), "a row of the batch was refused; storing it one notification at a time");
                mode = Mode::OneByOne;
            }
            Err(Failure::All(reason)) => {
                tracing::error!(%reason, notifications = jobs.len(), "WhatsApp notifications not stored");
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(IngestError::Unavailable(reason.clone())));
                }
                return;
            }
        }
    }
    // Only reached on a failure the loop cannot act on (an index out of range, an
    // unattributed refusal on the one-by-one path): never acknowledge what is not stored.
    for job in jobs {
        let _ = job.reply.send(Err(IngestError::Unavailable(
            "the batch could not be stored".into(),
        )));
    }
}

async fn attempt(pool: &SqlitePool, jobs: &[Job], mode: Mode) -> Result<Counts, Failure> {
    let all = |e: sqlx::Error| Failure::All(e.to_string());
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(all)?;
    let result = match mode {
        Mode::Batched => store_batched(&mut tx, jobs).await,
        Mode::OneByOne => store_one_by_one(&mut tx, jobs).await,
    };
    match result {
        Ok(counts) => {
            tx.commit().await.map_err(all)?;
            Ok(counts)
        }
        Err(failure) => {
            // Dropping would roll back too, but later: make the lock free now.
            if let Err(e) = tx.rollback().await {
                return Err(Failure::All(e.to_string()));
            }
            Err(failure)
        }
    }
}

/// The subscribers of every organization of `jobs`, read once per transaction: endpoints
/// cannot change while the transaction holds the write lock.
async fn load_emitters(
    conn: &mut SqliteConnection,
    jobs: &[Job],
) -> Result<HashMap<String, Emitter>, MessagingError> {
    let mut emitters: HashMap<String, Emitter> = HashMap::new();
    for item in jobs.iter().flat_map(|j| &j.items) {
        let channel = match item {
            Item::Message { channel, .. } | Item::Status { channel, .. } => channel,
        };
        if !emitters.contains_key(&channel.org_id) {
            let e = Emitter::load(conn, &channel.org_id).await?;
            emitters.insert(channel.org_id.clone(), e);
        }
    }
    Ok(emitters)
}

fn classify(index: Option<usize>, e: &MessagingError) -> Failure {
    match (is_own_fault(e), index) {
        (true, Some(i)) => Failure::One(i, e.to_string()),
        (true, None) => Failure::Unattributed(e.to_string()),
        (false, _) => Failure::All(e.to_string()),
    }
}

/// Delivery reports one by one (rare, and each names its own message), then every message
/// of the batch together.
async fn store_batched(conn: &mut SqliteConnection, jobs: &[Job]) -> Result<Counts, Failure> {
    let emitters = load_emitters(conn, jobs)
        .await
        .map_err(|e| Failure::All(e.to_string()))?;
    let mut counts = Counts::default();
    let mut incoming = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        for item in &job.items {
            match item {
                Item::Message {
                    channel,
                    sender,
                    message,
                } => incoming.push(batch::Incoming {
                    channel,
                    sender,
                    message,
                }),
                Item::Status { channel, report } => {
                    let Some(emitter) = emitters.get(&channel.org_id) else {
                        continue;
                    };
                    if apply_report(conn, emitter, channel, report)
                        .await
                        .map_err(|e| classify(Some(index), &e))?
                    {
                        counts.statuses += 1;
                    }
                }
            }
        }
    }
    let stored = batch::store_messages(conn, &emitters, &incoming)
        .await
        .map_err(|e| classify(None, &e))?;
    counts.created = stored.created;
    counts.duplicates = stored.duplicates;
    Ok(counts)
}

async fn store_one_by_one(conn: &mut SqliteConnection, jobs: &[Job]) -> Result<Counts, Failure> {
    let emitters = load_emitters(conn, jobs)
        .await
        .map_err(|e| Failure::All(e.to_string()))?;
    let mut counts = Counts::default();
    for (index, job) in jobs.iter().enumerate() {
        store_items(conn, &emitters, &job.items, &mut counts)
            .await
            .map_err(|e| classify(Some(index), &e))?;
    }
    Ok(counts)
}

/// Whether `e` is about the notification itself rather than the database as a whole:
/// storing it again cannot succeed, storing the others can.
fn is_own_fault(e: &MessagingError) -> bool {
    let db = match e {
        MessagingError::Db(db) => db,
        MessagingError::Webhook(WebhookError::Db(db)) => db,
        MessagingError::Webhook(_)
        | MessagingError::Invalid { .. }
        | MessagingError::NotFound(_)
        | MessagingError::Conflict(_)
        | MessagingError::ConflictWith(..)
        | MessagingError::OptedOut(_)
        | MessagingError::Serialize(_) => return true,
    };
    match db {
        sqlx::Error::Database(d) => {
            // SQLite's primary result code is the extended code's low byte: CONSTRAINT
            // (19: unique, foreign key, check, trigger), TOOBIG (18), MISMATCH (20),
            // RANGE (25) are the row's fault; BUSY, FULL, IOERR and the rest are not.
            let code = d.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
            matches!(code & 0xff, 18 | 19 | 20 | 25)
        }
        sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => true,
        _ => false,
    }
}

/// One notification's items, in the batch's transaction, each on the per-message path.
async fn store_items(
    conn: &mut SqliteConnection,
    emitters: &HashMap<String, Emitter>,
    items: &[Item],
    counts: &mut Counts,
) -> Result<(), MessagingError> {
    for item in items {
        let channel = match item {
            Item::Message { channel, .. } | Item::Status { channel, .. } => channel,
        };
        let Some(emitter) = emitters.get(&channel.org_id) else {
            continue;
        };
        match item {
            Item::Message {
                channel,
                sender,
                message,
            } => match inbound::ingest(conn, emitter, channel, sender, message.clone()).await? {
                Ingested::Created(_) => counts.created += 1,
                Ingested::Duplicate(_) => counts.duplicates += 1,
            },
            Item::Status { channel, report } => {
                if apply_report(conn, emitter, channel, report).await? {
                    counts.statuses += 1;
                }
            }
        }
    }
    Ok(())
}

/// A delivery report for a message callscope sent; false when it is not one.
async fn apply_report(
    conn: &mut SqliteConnection,
    emitter: &Emitter,
    channel: &Channel,
    s: &StatusReport,
) -> Result<bool, MessagingError> {
    let Some(message) = messages::find_by_external_id(conn, &channel.id, &s.id).await? else {
        tracing::debug!(wamid = %s.id, "status for a message callscope did not send");
        return Ok(false);
    };
    if message.direction != Direction::Outbound.as_str() {
        return Ok(false);
    }
    let at = s
        .timestamp_s
        .and_then(|t| t.checked_mul(1000))
        .unwrap_or_else(now_ms);
    messages::apply_status(
        conn,
        emitter,
        &channel.kind,
        message,
        StatusChange {
            status: s.status,
            at,
            error_code: s.error_code.clone(),
            error_message: s.error_message.clone(),
            external_id: None,
        },
    )
    .await?;
    Ok(true)
}

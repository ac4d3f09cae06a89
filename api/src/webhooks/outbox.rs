//! The durable outbox: enqueueing events, claiming due deliveries under a lease, recording
//! attempt outcomes, manual redelivery and the delivery log.

use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use super::WebhookError;
use super::endpoints::parse_events;
use super::events::subscription_matches;
use crate::ids::{ms_to_rfc3339, new_id, now_ms};

const MAX_EVENT_NAME_LEN: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    fn parse(s: &str) -> Self {
        match s {
            "delivered" => Self::Delivered,
            "dead" => Self::Dead,
            _ => Self::Pending,
        }
    }
}

/// Queue `event` for every active endpoint of `org_id` subscribed to it, in one transaction.
/// Returns the event id (the envelope's `id`), also when no endpoint is subscribed.
pub async fn enqueue_event(
    pool: &SqlitePool,
    org_id: &str,
    event: &str,
    data: serde_json::Value,
) -> Result<String, WebhookError> {
    let mut tx = pool.begin().await?;
    let id = enqueue_event_in(&mut tx, org_id, event, data).await?;
    tx.commit().await?;
    Ok(id)
}

/// Like [`enqueue_event`], inside the caller's transaction: commit the state change and its
/// event together, and neither exists without the other.
pub async fn enqueue_event_in(
    conn: &mut SqliteConnection,
    org_id: &str,
    event: &str,
    data: serde_json::Value,
) -> Result<String, WebhookError> {
    let subscribers = Subscribers::load(conn, org_id).await?;
    enqueue_event_to(conn, org_id, &subscribers, event, data).await
}

/// An organization's active endpoints and what each subscribes to, read once for callers
/// that enqueue many events in one transaction (which the endpoints cannot change under).
/// `addressed` marks a delivery to one named endpoint ([`Subscribers::only`]) rather than an
/// organization-wide event.
#[derive(Debug, Clone, Default)]
pub struct Subscribers(Vec<(String, Vec<String>)>, bool);

impl Subscribers {
    pub async fn load(conn: &mut SqliteConnection, org_id: &str) -> Result<Self, sqlx::Error> {
        let endpoints: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, events FROM webhook_endpoints WHERE org_id = $1 AND deleted_at IS NULL",
        )
        .bind(org_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self(
            endpoints
                .into_iter()
                .map(|(id, events)| (id, parse_events(&events)))
                .collect(),
            false,
        ))
    }

    /// One endpoint that receives whatever it is handed, whatever it subscribes to: for
    /// endpoints whose events are addressed rather than subscribed (the callback URL of a
    /// messaging API channel).
    pub fn only(endpoint_id: &str) -> Self {
        Self(vec![(endpoint_id.to_string(), vec!["*".to_string()])], true)
    }
}

/// [`enqueue_event_in`] with the organization's subscribers already loaded.
pub async fn enqueue_event_to(
    conn: &mut SqliteConnection,
    org_id: &str,
    subscribers: &Subscribers,
    event: &str,
    data: serde_json::Value,
) -> Result<String, WebhookError> {
    if event.is_empty() || event.len() > MAX_EVENT_NAME_LEN || event.contains('*') {
        return Err(WebhookError::invalid(
            "event",
            "must be a concrete event name such as call.processed",
        ));
    }
    let event_id = new_id();
    let now = now_ms();
    if !subscribers.1 {
        // The realtime stream carries every organization-wide event, subscribed or not;
        // addressed deliveries (a channel's callback) are not events of their own.
        crate::realtime::log::append(&mut *conn, org_id, &event_id, event, &data, now).await?;
    }
    // Collected before any await: a closure-based iterator held across one makes the future
    // not `Send` for every lifetime.
    let mut matching: Vec<&str> = Vec::new();
    for (endpoint_id, patterns) in &subscribers.0 {
        if subscription_matches(patterns, event) {
            matching.push(endpoint_id);
        }
    }
    if matching.is_empty() {
        return Ok(event_id);
    }
    let envelope = serde_json::json!({
        "id": event_id,
        "event": event,
        "created_at": ms_to_rfc3339(now),
        "data": data,
    });
    let payload = serde_json::to_string(&envelope)?;
    for endpoint_id in matching {
        sqlx::query(
            "INSERT INTO webhook_outbox (id, org_id, endpoint_id, event_id, event, payload, status,
                 next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $7)",
        )
        .bind(new_id())
        .bind(org_id)
        .bind(endpoint_id)
        .bind(&event_id)
        .bind(event)
        .bind(&payload)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(event_id)
}

/// One event of a batch for [`push_enqueue_events`]: its id, its data, and that data as JSON text
/// (serialized once by the caller, who writes the same text to the timeline).
pub struct BatchEvent<'a> {
    pub event_id: &'a str,
    pub data: &'a serde_json::Value,
    pub data_json: &'a str,
}

/// [`enqueue_event_to`] for many events of one kind, appended to `b` as multi-row INSERT
/// statements (realtime rows, then outbox rows; chunks of
/// [`crate::store::batch::CHUNK_SIZES`] rows, each ended by `;`), so the caller stores a
/// batch of events with its other statements in one round trip. Rows are in `events` order,
/// so the realtime stream keeps it.
pub fn push_enqueue_events(
    b: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
    org_id: &str,
    subscribers: &Subscribers,
    event: &str,
    events: &[BatchEvent<'_>],
) -> Result<(), WebhookError> {
    if event.is_empty() || event.len() > MAX_EVENT_NAME_LEN || event.contains('*') {
        return Err(WebhookError::invalid(
            "event",
            "must be a concrete event name such as call.processed",
        ));
    }
    let now = now_ms();
    if !subscribers.1 {
        for range in crate::store::batch::chunks(events.len()) {
            b.push("INSERT INTO event_stream (id, org_id, event, data, created_at) ");
            b.push_values(&events[range], |mut row, e| {
                row.push_bind(e.event_id.to_string())
                    .push_bind(org_id.to_string())
                    .push_bind(event.to_string())
                    .push_bind(e.data_json.to_string())
                    .push_bind(now);
            });
            b.push(";\n");
        }
    }
    let matching: Vec<&str> = subscribers
        .0
        .iter()
        .filter(|(_, patterns)| subscription_matches(patterns, event))
        .map(|(id, _)| id.as_str())
        .collect();
    if matching.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<(&str, &str, String)> = Vec::with_capacity(events.len() * matching.len());
    for e in events {
        let envelope = serde_json::json!({
            "id": e.event_id,
            "event": event,
            "created_at": ms_to_rfc3339(now),
            "data": e.data,
        });
        let payload = serde_json::to_string(&envelope)?;
        for endpoint_id in &matching {
            rows.push((endpoint_id, e.event_id, payload.clone()));
        }
    }
    for range in crate::store::batch::chunks(rows.len()) {
        b.push(
            "INSERT INTO webhook_outbox (id, org_id, endpoint_id, event_id, event, payload, status,
                 next_attempt_at, created_at, updated_at) ",
        );
        b.push_values(&rows[range], |mut row, (endpoint_id, event_id, payload)| {
            row.push_bind(new_id())
                .push_bind(org_id.to_string())
                .push_bind(endpoint_id.to_string())
                .push_bind(event_id.to_string())
                .push_bind(event.to_string())
                .push_bind(payload.clone())
                .push("'pending'")
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        b.push(";\n");
    }
    Ok(())
}

/// A delivery a worker holds the lease on, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub org_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event: String,
    pub payload: String,
    /// Number of this attempt over the row's life (1-based).
    pub attempt: i64,
    /// Number of this attempt in the current retry cycle (1-based).
    pub cycle_attempt: i64,
    pub lease_token: String,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: String,
    org_id: String,
    endpoint_id: String,
    event_id: String,
    event: String,
    payload: String,
    attempts: i64,
    cycle_attempts: i64,
}

/// Release rows whose lease ran out (their worker died or hung): log the attempt with an
/// unknown outcome, and make them claimable again, or dead if that was the cycle's last
/// attempt. Conditional on the stale token, so only one worker logs each.
async fn release_expired_leases(
    pool: &SqlitePool,
    now: i64,
    max_attempts: i64,
) -> Result<(), WebhookError> {
    let stale: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT id, org_id, attempts, lease_token FROM webhook_outbox
         WHERE status = 'pending' AND lease_token IS NOT NULL AND lease_until <= $1
         LIMIT 100",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    const LOST: &str = "lease expired before the outcome was recorded (worker stopped?)";
    for (id, org_id, attempts, token) in stale {
        let mut tx = pool.begin().await?;
        let released = sqlx::query(
            "UPDATE webhook_outbox SET lease_token = NULL, lease_until = NULL, last_error = $1,
                 status = CASE WHEN cycle_attempts >= $2 THEN 'dead' ELSE 'pending' END,
                 updated_at = $3
             WHERE id = $4 AND lease_token = $5 AND status = 'pending'",
        )
        .bind(LOST)
        .bind(max_attempts)
        .bind(now)
        .bind(&id)
        .bind(&token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if released == 1 {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, outbox_id, org_id, attempt, attempted_at, duration_ms, error)
                 VALUES ($1, $2, $3, $4, $5, 0, $6)",
            )
            .bind(new_id())
            .bind(&id)
            .bind(&org_id)
            .bind(attempts)
            .bind(now)
            .bind(LOST)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Claim up to `limit` due deliveries for `lease_ms`. A claimed row is invisible to other
/// claimers until its lease expires, so two workers (or a restarted one) never send the
/// same row at once. The lease must outlast one HTTP attempt (see `DeliveryConfig`).
pub async fn claim_due(
    pool: &SqlitePool,
    now: i64,
    lease_ms: i64,
    max_attempts: i64,
    limit: i64,
) -> Result<Vec<ClaimedDelivery>, WebhookError> {
    release_expired_leases(pool, now, max_attempts).await?;
    let token = new_id();
    // One statement, so the pick and the mark are atomic under SQLite's single writer; the
    // outer re-check keeps it correct under PostgreSQL's READ COMMITTED as well.
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "UPDATE webhook_outbox
         SET lease_token = $1, lease_until = $2, attempts = attempts + 1,
             cycle_attempts = cycle_attempts + 1, updated_at = $3
         WHERE id IN (
             SELECT id FROM webhook_outbox
             WHERE status = 'pending' AND next_attempt_at <= $3
               AND (lease_until IS NULL OR lease_until <= $3)
             ORDER BY next_attempt_at LIMIT $4)
           AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $3)
         RETURNING id, org_id, endpoint_id, event_id, event, payload, attempts, cycle_attempts",
    )
    .bind(&token)
    .bind(now.saturating_add(lease_ms))
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;

    let mut claimed = Vec::with_capacity(rows.len());
    for r in rows {
        let endpoint: Option<(String, String)> = sqlx::query_as(
            "SELECT url, secret FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(&r.endpoint_id)
        .fetch_optional(pool)
        .await?;
        let Some((url, secret)) = endpoint else {
            // Deleted between enqueue and claim: nothing to send to.
            sqlx::query(
                "UPDATE webhook_outbox SET status = 'dead', last_error = 'endpoint deleted',
                     lease_token = NULL, lease_until = NULL, updated_at = $1
                 WHERE id = $2 AND lease_token = $3",
            )
            .bind(now)
            .bind(&r.id)
            .bind(&token)
            .execute(pool)
            .await?;
            continue;
        };
        claimed.push(ClaimedDelivery {
            id: r.id,
            org_id: r.org_id,
            endpoint_id: r.endpoint_id,
            url,
            secret,
            event_id: r.event_id,
            event: r.event,
            payload: r.payload,
            attempt: r.attempts,
            cycle_attempt: r.cycle_attempts,
            lease_token: token.clone(),
        });
    }
    Ok(claimed)
}

/// What one HTTP attempt produced.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempted_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub response_snippet: Option<String>,
    pub error: Option<String>,
}

impl AttemptOutcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// What happens to the row after a failed attempt.
#[derive(Debug, Clone, Copy)]
pub enum AfterFailure {
    RetryAt(i64),
    GiveUp,
}

/// Log the attempt and move the row on (delivered / retry later / dead). Returns false when
/// the lease was lost meanwhile (another worker owns the row now); then nothing is written
/// except the log entry, so the attempt stays visible.
pub async fn record_attempt(
    pool: &SqlitePool,
    claimed: &ClaimedDelivery,
    outcome: &AttemptOutcome,
    after_failure: AfterFailure,
) -> Result<bool, WebhookError> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    let status_code = outcome.status_code.map(i64::from);
    let updated = if outcome.succeeded() {
        sqlx::query(
            "UPDATE webhook_outbox SET status = 'delivered', delivered_at = $1, last_status_code = $2,
                 last_error = NULL, lease_token = NULL, lease_until = NULL, updated_at = $1
             WHERE id = $3 AND lease_token = $4",
        )
        .bind(now)
        .bind(status_code)
        .bind(&claimed.id)
        .bind(&claimed.lease_token)
        .execute(&mut *tx)
        .await?
    } else {
        let (status, next) = match after_failure {
            AfterFailure::RetryAt(at) => ("pending", at),
            AfterFailure::GiveUp => ("dead", now),
        };
        let error = outcome
            .error
            .clone()
            .or_else(|| status_code.map(|c| format!("HTTP {c}")));
        sqlx::query(
            "UPDATE webhook_outbox SET status = $1, next_attempt_at = $2, last_status_code = $3,
                 last_error = $4, lease_token = NULL, lease_until = NULL, updated_at = $5
             WHERE id = $6 AND lease_token = $7",
        )
        .bind(status)
        .bind(next)
        .bind(status_code)
        .bind(error)
        .bind(now)
        .bind(&claimed.id)
        .bind(&claimed.lease_token)
        .execute(&mut *tx)
        .await?
    };
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, outbox_id, org_id, attempt, attempted_at, duration_ms,
             status_code, response_snippet, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(&claimed.id)
    .bind(&claimed.org_id)
    .bind(claimed.attempt)
    .bind(outcome.attempted_at)
    .bind(outcome.duration_ms)
    .bind(status_code)
    .bind(&outcome.response_snippet)
    .bind(&outcome.error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(updated.rows_affected() == 1)
}

/// One attempt in the delivery log.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptLog {
    pub attempt: i64,
    pub attempted_at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub response_snippet: Option<String>,
    pub error: Option<String>,
}

/// A delivery (one event to one endpoint) with its attempt log, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub log: Vec<AttemptLog>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    endpoint_id: String,
    event_id: String,
    event: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i64,
    attempted_at: i64,
    duration_ms: i64,
    status_code: Option<i64>,
    response_snippet: Option<String>,
    error: Option<String>,
}

// A macro, not a const, so `concat!` can build static SQL (sqlx refuses formatted strings).
macro_rules! delivery_columns {
    () => {
        "id, endpoint_id, event_id, event, status, attempts, next_attempt_at, \
         last_status_code, last_error, created_at, delivered_at"
    };
}

async fn with_log(pool: &SqlitePool, row: DeliveryRow) -> Result<Delivery, WebhookError> {
    let log: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempt, attempted_at, duration_ms, status_code, response_snippet, error
         FROM webhook_deliveries WHERE outbox_id = $1 ORDER BY attempted_at, attempt, id",
    )
    .bind(&row.id)
    .fetch_all(pool)
    .await?;
    let status = DeliveryStatus::parse(&row.status);
    Ok(Delivery {
        id: row.id,
        endpoint_id: row.endpoint_id,
        event_id: row.event_id,
        event: row.event,
        status,
        attempts: row.attempts,
        next_attempt_at: (status == DeliveryStatus::Pending)
            .then(|| ms_to_rfc3339(row.next_attempt_at)),
        last_status_code: row.last_status_code,
        last_error: row.last_error,
        created_at: ms_to_rfc3339(row.created_at),
        delivered_at: row.delivered_at.map(ms_to_rfc3339),
        log: log
            .into_iter()
            .map(|a| AttemptLog {
                attempt: a.attempt,
                attempted_at: ms_to_rfc3339(a.attempted_at),
                duration_ms: a.duration_ms,
                status_code: a.status_code,
                response_snippet: a.response_snippet,
                error: a.error,
            })
            .collect(),
    })
}

pub async fn get_delivery(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
) -> Result<Option<Delivery>, WebhookError> {
    let row: Option<DeliveryRow> = sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_outbox WHERE org_id = $1 AND id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(r) => Ok(Some(with_log(pool, r).await?)),
        None => Ok(None),
    }
}

/// Deliveries of one endpoint, newest first; `before` is the last id of the previous page.
/// `None` when the endpoint is not this organization's (or deleted).
pub async fn list_deliveries(
    pool: &SqlitePool,
    org_id: &str,
    endpoint_id: &str,
    limit: i64,
    before: Option<&str>,
) -> Result<Option<Vec<Delivery>>, WebhookError> {
    if super::endpoints::get_endpoint(pool, org_id, endpoint_id)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    // UUIDv7 ids sort by creation time, so the id is the cursor.
    let rows: Vec<DeliveryRow> = sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_outbox
         WHERE org_id = $1 AND endpoint_id = $2 AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(org_id)
    .bind(endpoint_id)
    .bind(before)
    .bind(limit.clamp(1, 200))
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(with_log(pool, r).await?);
    }
    Ok(Some(out))
}

/// Send a delivery again: whatever its state, it becomes pending, due now, with a fresh
/// retry cycle. Refused while an attempt is in flight (a lease is held and unexpired).
pub async fn redeliver(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
) -> Result<Delivery, WebhookError> {
    let now = now_ms();
    let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT o.lease_until, e.deleted_at FROM webhook_outbox o
         JOIN webhook_endpoints e ON e.id = o.endpoint_id
         WHERE o.org_id = $1 AND o.id = $2",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some((lease_until, endpoint_deleted_at)) = row else {
        return Err(WebhookError::NotFound("delivery"));
    };
    if endpoint_deleted_at.is_some() {
        return Err(WebhookError::invalid(
            "id",
            "the endpoint of this delivery was deleted",
        ));
    }
    let updated = sqlx::query(
        "UPDATE webhook_outbox SET status = 'pending', next_attempt_at = $1, cycle_attempts = 0,
             delivered_at = NULL, updated_at = $1
         WHERE org_id = $2 AND id = $3 AND (lease_until IS NULL OR lease_until <= $1)",
    )
    .bind(now)
    .bind(org_id)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 && lease_until.is_some_and(|l| l > now) {
        return Err(WebhookError::InFlight);
    }
    get_delivery(pool, org_id, id)
        .await?
        .ok_or(WebhookError::NotFound("delivery"))
}

//! The delivery worker: claims due outbox rows, POSTs them signed, records the outcome and
//! schedules retries with backoff.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use sqlx::SqlitePool;
use tokio::task::JoinHandle;

use super::WebhookError;
use super::outbox::{AfterFailure, AttemptOutcome, ClaimedDelivery, claim_due, record_attempt};
use super::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature_header};
use crate::egress::EgressPolicy;
use crate::ids::now_ms;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// How often to look for due rows when the last batch was not full.
    pub poll_interval: Duration,
    /// Whole-request limit for one attempt (connect + send + response head + snippet).
    pub request_timeout: Duration,
    /// How long a claim holds a row. Kept well above `request_timeout` (see
    /// [`DeliveryConfig::effective_lease`]) so a slow but live attempt is never sent twice.
    pub lease: Duration,
    /// Wait before retry n (1-based) of a cycle; the last entry repeats if attempts outnumber
    /// it. Up to 10 % random jitter is added so a recovering receiver is not hit in lockstep.
    pub retry_delays: Vec<Duration>,
    /// Attempts per cycle before a row is `dead`.
    pub max_attempts: u32,
    /// Rows claimed per round, and how many are sent at once.
    pub batch_size: u32,
    pub concurrency: usize,
    /// Bytes of the response body kept in the log.
    pub snippet_bytes: usize,
    /// Destinations allowed; the client's resolver enforces it for host names, this for
    /// endpoints registered with an IP literal.
    pub egress: EgressPolicy,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            // 10 s, 1 min, 5 min, 30 min, 2 h: about 2.6 h of retries over 6 attempts.
            retry_delays: vec![
                Duration::from_secs(10),
                Duration::from_secs(60),
                Duration::from_secs(300),
                Duration::from_secs(1800),
                Duration::from_secs(7200),
            ],
            max_attempts: 6,
            batch_size: 32,
            concurrency: 8,
            snippet_bytes: 1024,
            egress: EgressPolicy {
                allow_private_networks: false,
            },
        }
    }
}

impl DeliveryConfig {
    /// Delays `base, base*factor, base*factor², …` for `max_attempts - 1` retries.
    pub fn exponential(base: Duration, factor: u32, max_attempts: u32) -> Self {
        let mut delays = Vec::new();
        let mut d = base;
        for _ in 1..max_attempts.max(1) {
            delays.push(d);
            d = d.saturating_mul(factor.max(1));
        }
        Self {
            retry_delays: delays,
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// The lease actually used: at least twice the request timeout plus a margin.
    pub fn effective_lease(&self) -> Duration {
        self.lease
            .max(self.request_timeout.saturating_mul(2) + Duration::from_secs(5))
    }

    fn delay_after(&self, cycle_attempt: i64) -> Duration {
        let idx = usize::try_from(cycle_attempt.saturating_sub(1)).unwrap_or(0);
        let base = self
            .retry_delays
            .get(idx)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(60));
        let jitter_ms = (base.as_millis() / 10).min(u128::from(u32::MAX)) as u64;
        let jitter = if jitter_ms > 0 {
            rand::rng().random_range(0..=jitter_ms)
        } else {
            0
        };
        base + Duration::from_millis(jitter)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An HTTP client suited to deliveries: no redirects (a receiver that moved must be
/// re-registered; following would re-send signed bodies to wherever a 3xx points), bounded
/// connect time, and only the destinations `egress` allows.
pub fn default_http_client(egress: EgressPolicy) -> Result<reqwest::Client, reqwest::Error> {
    egress
        .client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("callscope-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The error and its causes on one line: reqwest's own message alone rarely says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

async fn send_once(
    client: &reqwest::Client,
    delivery: &ClaimedDelivery,
    config: &DeliveryConfig,
) -> AttemptOutcome {
    let attempted_at = now_ms();
    let started = Instant::now();
    let signature = signature_header(
        &delivery.secret,
        attempted_at.div_euclid(1000),
        delivery.payload.as_bytes(),
    );
    let request = client
        .post(&delivery.url)
        .timeout(config.request_timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_HEADER, &delivery.event)
        .header(DELIVERY_HEADER, &delivery.id)
        .body(delivery.payload.clone());

    let mut outcome = AttemptOutcome {
        attempted_at,
        duration_ms: 0,
        status_code: None,
        response_snippet: None,
        error: None,
    };
    // An IP-literal URL never reaches the client's guarded resolver.
    if let Ok(url) = reqwest::Url::parse(&delivery.url)
        && let Err(refused) = config.egress.check_url(&url)
    {
        outcome.error = Some(refused.to_string());
        return outcome;
    }
    match request.send().await {
        Ok(mut response) => {
            outcome.status_code = Some(response.status().as_u16());
            // Read only the start of the body: enough to debug, bounded whatever is sent.
            let mut snippet: Vec<u8> = Vec::new();
            while snippet.len() < config.snippet_bytes {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        let room = config.snippet_bytes - snippet.len();
                        snippet
                            .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&[]));
                    }
                    Ok(None) => break,
                    // The status already decides the outcome; a broken body only shortens
                    // the snippet.
                    Err(_) => break,
                }
            }
            if !snippet.is_empty() {
                outcome.response_snippet = Some(String::from_utf8_lossy(&snippet).into_owned());
            }
        }
        Err(e) => {
            outcome.error = Some(if e.is_timeout() {
                format!("timed out after {} ms", config.request_timeout.as_millis())
            } else {
                error_chain(&e)
            });
        }
    }
    outcome.duration_ms = ms(started.elapsed());
    outcome
}

/// Claim one batch of due deliveries, send them and record the outcomes. Returns how many
/// were attempted. The worker loop calls this; tests and a CLI may call it directly.
pub async fn run_due_once(
    pool: &SqlitePool,
    client: &reqwest::Client,
    config: &DeliveryConfig,
) -> Result<usize, WebhookError> {
    let claimed = claim_due(
        pool,
        now_ms(),
        ms(config.effective_lease()),
        i64::from(config.max_attempts),
        i64::from(config.batch_size.max(1)),
    )
    .await?;
    let count = claimed.len();
    let results: Vec<Result<(), WebhookError>> = futures::stream::iter(claimed)
        .map(|delivery| async move {
            let outcome = send_once(client, &delivery, config).await;
            let after = if delivery.cycle_attempt >= i64::from(config.max_attempts) {
                AfterFailure::GiveUp
            } else {
                AfterFailure::RetryAt(now_ms().saturating_add(ms(config.delay_after(delivery.cycle_attempt))))
            };
            if !outcome.succeeded() {
                tracing::info!(
                    delivery = %delivery.id, event = %delivery.event, attempt = delivery.attempt,
                    status = ?outcome.status_code, error = ?outcome.error, "webhook attempt failed"
                );
            }
            let result = if outcome.succeeded() {
                "delivered"
            } else if matches!(after, AfterFailure::GiveUp) {
                "dead"
            } else {
                "retry"
            };
            metrics::counter!("callscope_webhook_attempts_total", "result" => result).increment(1);
            let kept = record_attempt(pool, &delivery, &outcome, after).await?;
            if !kept {
                tracing::warn!(delivery = %delivery.id, "webhook lease lost before the outcome was recorded");
            }
            Ok(())
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(count)
}

/// Run deliveries until `shutdown` completes. In-flight attempts finish (each bounded by the
/// request timeout) before the task ends; nothing is lost either way, since unfinished rows
/// stay in the outbox and their lease expires.
pub fn spawn_delivery_worker(
    pool: SqlitePool,
    client: reqwest::Client,
    config: DeliveryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let full_batch = match run_due_once(&pool, &client, &config).await {
                Ok(n) => n >= config.batch_size.max(1) as usize,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery round failed; retrying after the poll interval");
                    false
                }
            };
            let pause = if full_batch {
                Duration::ZERO
            } else {
                config.poll_interval
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_schedule_with_bounded_jitter() {
        let c = DeliveryConfig::default();
        for (attempt, base) in [(1, 10), (2, 60), (3, 300), (4, 1800), (5, 7200), (9, 7200)] {
            let d = c.delay_after(attempt).as_secs_f64();
            assert!(
                d >= base as f64 && d <= base as f64 * 1.1 + 0.001,
                "attempt {attempt}: {d}"
            );
        }
    }

    #[test]
    fn exponential_schedule_and_lease() {
        let c = DeliveryConfig::exponential(Duration::from_millis(10), 3, 4);
        assert_eq!(
            c.retry_delays,
            vec![
                Duration::from_millis(10),
                Duration::from_millis(30),
                Duration::from_millis(90)
            ]
        );
        assert_eq!(c.max_attempts, 4);
        assert!(c.effective_lease() >= c.request_timeout * 2);
    }
}

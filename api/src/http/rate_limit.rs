//! Rate limits per credential (API key or session) on `/api/v1`: a token bucket of
//! `requests_per_minute` that refills continuously, so a client may burst up to the limit
//! and then proceeds at the steady rate. Every answer carries `X-RateLimit-Limit`,
//! `-Remaining` and `-Reset` (seconds until the bucket is full again); a request over the
//! limit gets `429` with `Retry-After` and the usual error body.
//!
//! The bucket is keyed by a hash of the presented credential, before any database lookup:
//! a client hammering with a bad key is limited as well, and the check costs no query. The
//! buckets live in memory (one server process); idle ones are dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::state::AppState;
use crate::error::ApiError;

/// Buckets kept before idle ones are swept.
const SWEEP_AT: usize = 10_000;
/// A bucket untouched this long is full again and can be forgotten.
const IDLE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full.
    pub reset_s: u64,
    /// Seconds until one request is allowed again (when refused).
    pub retry_after_s: u64,
}

pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<[u8; 32], Bucket>>,
}

impl RateLimiter {
    /// `per_minute == 0` turns limiting off.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_minute > 0
    }

    /// Takes one token for `client` at `now`.
    pub fn check(&self, client: [u8; 32], now: Instant) -> Decision {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < IDLE);
            // A flood of made-up credentials, all fresh: start over rather than grow
            // without bound (every bucket starts full, so nobody is wrongly refused).
            if buckets.len() >= SWEEP_AT * 10 {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let missing = capacity - bucket.tokens;
        Decision {
            allowed,
            limit: self.per_minute,
            remaining: bucket.tokens.floor().max(0.0) as u32,
            reset_s: (missing / per_second).ceil() as u64,
            retry_after_s: if allowed {
                0
            } else {
                ((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64
            },
        }
    }
}

/// The presented credential, hashed: API key header, bearer/basic authorization, or the
/// session cookie (also the scope of idempotency keys). `None` for anonymous requests (they are refused by authentication).
pub(super) fn client_key(headers: &HeaderMap) -> Option<[u8; 32]> {
    let credential = headers
        .get("x-api-key")
        .or_else(|| headers.get(axum::http::header::AUTHORIZATION))
        .or_else(|| headers.get(axum::http::header::COOKIE))?;
    Some(Sha256::digest(credential.as_bytes()).into())
}

fn set_headers(headers: &mut HeaderMap, d: &Decision) {
    for (name, value) in [
        ("x-ratelimit-limit", u64::from(d.limit)),
        ("x-ratelimit-remaining", u64::from(d.remaining)),
        ("x-ratelimit-reset", d.reset_s),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

/// The middleware on `/api/v1`.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limiter = &state.rate_limiter;
    let Some(client) = limiter
        .enabled()
        .then(|| client_key(request.headers()))
        .flatten()
    else {
        return next.run(request).await;
    };
    let decision = limiter.check(client, Instant::now());
    if !decision.allowed {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests a minute with this credential; retry in {} s",
                decision.limit, decision.retry_after_s
            ),
        )
        .into_response();
        set_headers(response.headers_mut(), &decision);
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(decision.retry_after_s),
        );
        return response;
    }
    let mut response = next.run(request).await;
    set_headers(response.headers_mut(), &decision);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_to_the_limit_then_refills_at_the_steady_rate() {
        let limiter = RateLimiter::new(60);
        let t0 = Instant::now();
        let client = [1u8; 32];
        for i in 0..60 {
            let d = limiter.check(client, t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 59 - i);
        }
        let refused = limiter.check(client, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after_s, 1);
        assert_eq!(refused.reset_s, 60);
        // One token a second comes back.
        let later = limiter.check(client, t0 + Duration::from_millis(1_000));
        assert!(later.allowed);
        assert!(
            !limiter
                .check(client, t0 + Duration::from_millis(1_001))
                .allowed
        );
        // Another client has its own bucket.
        assert!(limiter.check([2u8; 32], t0).allowed);
    }

    #[test]
    fn a_bucket_never_holds_more_than_the_limit() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        limiter.check([3u8; 32], t0);
        let d = limiter.check([3u8; 32], t0 + Duration::from_secs(3600));
        assert_eq!(d.remaining, 9);
    }

    #[test]
    fn idle_buckets_are_swept() {
        let limiter = RateLimiter::new(10);
        let t0 = Instant::now();
        for i in 0..SWEEP_AT {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            limiter.check(k, t0);
        }
        limiter.check([9u8; 32], t0 + IDLE + Duration::from_secs(1));
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}

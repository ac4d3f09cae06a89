//! Per-source-IP defences: failed-authentication counting → bans, and a token bucket per
//! source for REGISTER and INVITE so one flooding source cannot starve the others.
//!
//! [`SourceGuard`] is sans-IO: every call takes `now`, so tests drive it faster than real
//! time. [`SharedGuard`] is the thread-safe wrapper the server uses.
//!
//! Banned sources are dropped silently (no response at all): scanners learn nothing and
//! get no amplification; legitimate clients that mistyped a password retry after the ban.
//! Rate-limited requests (over the token bucket, not banned) get `503 Service Unavailable`
//! with `Retry-After`, the overload answer of RFC 3261 §21.5.4 / RFC 6357.
//! Memory is bounded: at `max_tracked_sources` the least recently seen tenth of the
//! unbanned entries is forgotten (bans are forgotten last).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::SecurityConfig;

#[derive(Debug, Clone)]
struct SourceState {
    /// Failures in the current window and when that window started.
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
    tokens: f64,
    refilled_at: Instant,
    last_seen: Instant,
}

impl SourceState {
    fn new(now: Instant, burst: f64) -> Self {
        Self {
            failures: 0,
            window_start: now,
            banned_until: None,
            tokens: burst,
            refilled_at: now,
            last_seen: now,
        }
    }
}

/// What the guard decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allow,
    /// Over the rate: answer 503 with this Retry-After (seconds).
    RateLimited {
        retry_after_s: u32,
    },
    /// Banned: drop without answering.
    Banned,
}

#[derive(Debug)]
pub struct SourceGuard {
    config: SecurityConfig,
    sources: HashMap<IpAddr, SourceState>,
}

impl SourceGuard {
    pub fn new(config: SecurityConfig) -> Self {
        Self {
            config,
            sources: HashMap::new(),
        }
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.config.exempt.contains(&ip)
    }

    /// Whether packets from `ip` are to be dropped now. Does not create an entry.
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some(state) = self.sources.get_mut(&ip) else {
            return false;
        };
        match state.banned_until {
            Some(until) if now < until => true,
            Some(_) => {
                // Ban served: start clean.
                state.banned_until = None;
                state.failures = 0;
                state.window_start = now;
                false
            }
            None => false,
        }
    }

    /// Take a token for a REGISTER/INVITE from `ip`.
    pub fn admit_request(&mut self, ip: IpAddr, now: Instant) -> Admission {
        if self.exempt(ip) {
            return Admission::Allow;
        }
        if self.is_banned(ip, now) {
            return Admission::Banned;
        }
        let rate = self.config.requests_per_second.max(0.001);
        let burst = self.config.request_burst.max(1.0);
        let state = self.entry(ip, now);
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        state.tokens = (state.tokens + elapsed * rate).min(burst);
        state.refilled_at = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Admission::Allow
        } else {
            let wait = ((1.0 - state.tokens) / rate).ceil().clamp(1.0, 3600.0);
            Admission::RateLimited {
                retry_after_s: wait as u32,
            }
        }
    }

    /// Count a failed authentication (wrong credentials) from `ip`. Returns true when this
    /// failure started a ban.
    pub fn record_auth_failure(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.exempt(ip) {
            return false;
        }
        let window = Duration::from_secs(self.config.auth_failure_window_s.max(1));
        let limit = self.config.auth_failures_before_ban.max(1);
        let ban = self.config.ban_duration();
        let state = self.entry(ip, now);
        if state.banned_until.is_some_and(|until| now < until) {
            return false;
        }
        if now.saturating_duration_since(state.window_start) > window {
            state.window_start = now;
            state.failures = 0;
        }
        state.failures = state.failures.saturating_add(1);
        if state.failures >= limit {
            state.banned_until = Some(now + ban);
            return true;
        }
        false
    }

    fn entry(&mut self, ip: IpAddr, now: Instant) -> &mut SourceState {
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.config.max_tracked_sources
        {
            self.evict(now);
        }
        let burst = self.config.request_burst.max(1.0);
        let state = self
            .sources
            .entry(ip)
            .or_insert_with(|| SourceState::new(now, burst));
        state.last_seen = now;
        state
    }

    /// Forget the least recently seen tenth (at least one) of the entries, unbanned first,
    /// so an attacker rotating addresses cannot push out live bans cheaply.
    fn evict(&mut self, now: Instant) {
        let target = (self.sources.len() / 10).max(1);
        let mut candidates: Vec<(bool, Instant, IpAddr)> = self
            .sources
            .iter()
            .map(|(ip, s)| {
                let banned = s.banned_until.is_some_and(|until| now < until);
                (banned, s.last_seen, *ip)
            })
            .collect();
        // Unbanned (false) sort first, then oldest first.
        candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, _, ip) in candidates.into_iter().take(target) {
            self.sources.remove(&ip);
        }
    }
}

/// The guard shared by the transport wrappers, the dispatcher and the authenticator.
#[derive(Debug)]
pub struct SharedGuard {
    inner: Mutex<SourceGuard>,
}

impl SharedGuard {
    pub fn new(config: SecurityConfig) -> Self {
        Self {
            inner: Mutex::new(SourceGuard::new(config)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut SourceGuard) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update; the counters are
        // still usable.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.with(|g| g.is_banned(ip, Instant::now()))
    }

    pub fn admit_request(&self, ip: IpAddr) -> Admission {
        self.with(|g| g.admit_request(ip, Instant::now()))
    }

    pub fn record_auth_failure(&self, ip: IpAddr) -> bool {
        self.with(|g| g.record_auth_failure(ip, Instant::now()))
    }

    pub fn tracked_sources(&self) -> usize {
        self.with(|g| g.tracked_sources())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SecurityConfig {
        SecurityConfig {
            auth_failures_before_ban: 3,
            auth_failure_window_s: 60,
            ban_duration_s: 600,
            requests_per_second: 2.0,
            request_burst: 4.0,
            max_tracked_sources: 100,
            exempt: vec!["10.0.0.9".parse().unwrap()],
        }
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn n_failures_in_the_window_ban_for_the_configured_time() {
        let mut g = SourceGuard::new(config());
        let t0 = Instant::now();
        assert!(!g.record_auth_failure(ip(1), t0));
        assert!(!g.record_auth_failure(ip(1), t0 + Duration::from_secs(1)));
        assert!(!g.is_banned(ip(1), t0 + Duration::from_secs(1)));
        assert!(g.record_auth_failure(ip(1), t0 + Duration::from_secs(2)));
        assert!(g.is_banned(ip(1), t0 + Duration::from_secs(3)));
        assert_eq!(
            g.admit_request(ip(1), t0 + Duration::from_secs(3)),
            Admission::Banned
        );
        assert!(!g.is_banned(ip(2), t0 + Duration::from_secs(3)));
        // Ban ends after 600 s and the count starts over.
        let later = t0 + Duration::from_secs(603);
        assert!(!g.is_banned(ip(1), later));
        assert!(!g.record_auth_failure(ip(1), later));
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_ban() {
        let mut g = SourceGuard::new(config());
        let t0 = Instant::now();
        for i in 0..10u64 {
            assert!(!g.record_auth_failure(ip(1), t0 + Duration::from_secs(i * 61)));
        }
        assert!(!g.is_banned(ip(1), t0 + Duration::from_secs(700)));
    }

    #[test]
    fn token_bucket_limits_one_source_not_another() {
        let mut g = SourceGuard::new(config());
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(g.admit_request(ip(1), t0), Admission::Allow);
        }
        assert!(matches!(
            g.admit_request(ip(1), t0),
            Admission::RateLimited { retry_after_s: 1 }
        ));
        assert_eq!(g.admit_request(ip(2), t0), Admission::Allow);
        // Half a second refills one token at 2/s.
        assert_eq!(
            g.admit_request(ip(1), t0 + Duration::from_millis(500)),
            Admission::Allow
        );
        assert!(matches!(
            g.admit_request(ip(1), t0 + Duration::from_millis(500)),
            Admission::RateLimited { .. }
        ));
    }

    #[test]
    fn exempt_sources_are_never_limited_or_banned() {
        let mut g = SourceGuard::new(config());
        let t0 = Instant::now();
        let trusted = ip(9);
        for _ in 0..100 {
            assert_eq!(g.admit_request(trusted, t0), Admission::Allow);
            assert!(!g.record_auth_failure(trusted, t0));
        }
    }

    #[test]
    fn memory_is_bounded_and_bans_survive_eviction() {
        let mut g = SourceGuard::new(config());
        let t0 = Instant::now();
        for _ in 0..3 {
            g.record_auth_failure(ip(1), t0);
        }
        assert!(g.is_banned(ip(1), t0));
        for n in 100..2_000 {
            g.admit_request(ip(n), t0 + Duration::from_millis(n as u64));
            assert!(g.tracked_sources() <= 100);
        }
        assert!(g.is_banned(ip(1), t0 + Duration::from_secs(3)));
    }
}

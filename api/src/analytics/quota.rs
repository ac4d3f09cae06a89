//! The monthly minute quota of an organization: its setting, the minutes used this calendar
//! month (UTC), the warnings at 80 % and 95 % (and the notice at 100 %), sent once per
//! threshold and month, and the refusal of new recordings once it is used up.
//!
//! Minutes used are the minutes of the calls *received* this month (by `created_at`, the
//! moment callscope got them), whatever their source: uploads, PBX webhooks, SIP and WebRTC
//! calls. A call's minutes are its recording's measured length, else the length the PBX or
//! the SIP side reported; calls refused at intake count nothing.

use axum::http::StatusCode;
use chrono::{Datelike, TimeZone, Utc};
use serde_json::{Value, json};
use sqlx::{SqliteExecutor, SqlitePool};

use super::reports::{CALL_DURATION_MS, REFUSED_AT_INTAKE};
use crate::error::ApiError;
use crate::ids::{ms_to_rfc3339, now_ms};

/// Percentages at which the organization is told; 100 is "exhausted".
pub const THRESHOLDS: [i64; 3] = [80, 95, 100];
pub const EVENT_WARNING: &str = "quota.warning";
pub const EVENT_EXHAUSTED: &str = "quota.exhausted";
/// Nobody needs more than a million hours a month; larger values are typos.
pub const MAX_MONTHLY_MINUTES: i64 = 60_000_000;

/// A calendar month in UTC: `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub label: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Period {
    pub fn containing(ms: i64) -> Period {
        let t = Utc
            .timestamp_millis_opt(ms)
            .single()
            .unwrap_or_else(Utc::now);
        let (y, m) = (t.year(), t.month());
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let start = |y: i32, m: u32| {
            Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                .single()
                .map_or(0, |d| d.timestamp_millis())
        };
        Period {
            label: format!("{y:04}-{m:02}"),
            start_ms: start(y, m),
            end_ms: start(ny, nm),
        }
    }

    pub fn view(&self) -> Value {
        json!({
            "month": self.label,
            "start": ms_to_rfc3339(self.start_ms),
            "end": ms_to_rfc3339(self.end_ms),
        })
    }
}

/// What the organization used in a period against its quota (`None` = unlimited).
#[derive(Debug, Clone)]
pub struct Usage {
    pub period: Period,
    pub used_ms: i64,
    pub quota_minutes: Option<i64>,
}

impl Usage {
    pub fn used_minutes(&self) -> f64 {
        (self.used_ms as f64 / 60_000.0 * 100.0).round() / 100.0
    }

    /// Used over quota in per cent (two decimals); `None` when unlimited, 100+ for a quota of 0.
    pub fn percent(&self) -> Option<f64> {
        let quota = self.quota_minutes?;
        if quota <= 0 {
            return Some(100.0);
        }
        let p = self.used_ms as f64 / (quota as f64 * 60_000.0) * 100.0;
        Some((p * 100.0).round() / 100.0)
    }

    pub fn exhausted(&self) -> bool {
        self.quota_minutes
            .is_some_and(|q| self.used_ms >= q.saturating_mul(60_000))
    }

    /// The thresholds reached, computed exactly (not from the rounded percent).
    pub fn reached(&self) -> Vec<i64> {
        let Some(quota) = self.quota_minutes else {
            return Vec::new();
        };
        let quota_ms = i128::from(quota) * 60_000;
        THRESHOLDS
            .into_iter()
            .filter(|t| i128::from(self.used_ms) * 100 >= quota_ms * i128::from(*t))
            .collect()
    }

    pub fn view(&self) -> Value {
        let reached = self.reached();
        let warning = reached.last().map(|t| {
            let message = if *t >= 100 {
                "the monthly minute quota is used up: new recordings are refused until next month or a higher quota".to_string()
            } else {
                format!("{t} % of the monthly minute quota is used")
            };
            json!({ "threshold": t, "message": message })
        });
        json!({
            "period": self.period.view(),
            "used_minutes": self.used_minutes(),
            "quota_minutes": self.quota_minutes,
            "remaining_minutes": self.quota_minutes.map(|q| ((q as f64 - self.used_minutes()).max(0.0) * 100.0).round() / 100.0),
            "percent": self.percent(),
            "exhausted": self.exhausted(),
            "thresholds_reached": reached,
            "warning": warning,
        })
    }

    /// `402 quota_exhausted`: what an upload or recording webhook gets once the quota is used.
    pub fn exhausted_error(&self) -> ApiError {
        ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "quota_exhausted",
            format!(
                "the organization's monthly minute quota ({} minutes) is used up for {}; \
                 nothing was stored",
                self.quota_minutes.unwrap_or(0),
                self.period.label
            ),
        )
        .with_details(json!({
            "used_minutes": self.used_minutes(),
            "quota_minutes": self.quota_minutes,
            "period": self.period.label,
        }))
    }
}

pub async fn quota_minutes<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let v: Option<Option<i64>> =
        sqlx::query_scalar("SELECT monthly_minutes FROM org_quotas WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(ex)
            .await?;
    Ok(v.flatten())
}

pub async fn set_quota_minutes<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    minutes: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO org_quotas (org_id, monthly_minutes, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id) DO UPDATE SET monthly_minutes = excluded.monthly_minutes, \
         updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(minutes)
    .bind(now_ms())
    .execute(ex)
    .await?;
    Ok(())
}

/// Milliseconds of the calls the organization received in the period (index
/// `calls_org_created`).
pub async fn used_ms<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    period: &Period,
) -> Result<i64, sqlx::Error> {
    // Only this module's constants are formatted in; the values are bound.
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COALESCE(SUM({CALL_DURATION_MS}), 0) FROM calls \
         LEFT JOIN recordings r ON r.call_id = calls.id \
         WHERE calls.org_id = $1 AND calls.created_at >= $2 AND calls.created_at < $3 \
           AND NOT {REFUSED_AT_INTAKE}"
    )))
    .bind(org_id)
    .bind(period.start_ms)
    .bind(period.end_ms)
    .fetch_one(ex)
    .await
}

pub async fn usage(pool: &SqlitePool, org_id: &str) -> Result<Usage, sqlx::Error> {
    let period = Period::containing(now_ms());
    let quota_minutes = quota_minutes(pool, org_id).await?;
    // Unlimited organizations need no sum to be admitted, but the usage report shows it.
    let used_ms = used_ms(pool, org_id, &period).await?;
    Ok(Usage {
        period,
        used_ms,
        quota_minutes,
    })
}

/// `Ok` when the organization may take in another recording; the `402` otherwise. Checked
/// when the request arrives, before its body is read: concurrent uploads at the very limit
/// may each be admitted (the quota is a budget, not a hard meter).
pub async fn ensure_available(pool: &SqlitePool, org_id: &str) -> Result<(), ApiError> {
    if quota_minutes(pool, org_id).await?.is_none() {
        return Ok(());
    }
    let usage = usage(pool, org_id).await?;
    if usage.exhausted() {
        tracing::info!(org_id, used_ms = usage.used_ms, quota = ?usage.quota_minutes,
            "recording refused: minute quota exhausted");
        return Err(usage.exhausted_error());
    }
    Ok(())
}

/// Sends `quota.warning` (80, 95) and `quota.exhausted` (100) for each threshold reached this
/// month and not yet announced; the `quota_warnings` row and its event are written in one
/// transaction, so each goes out exactly once per month. Returns the thresholds sent now.
pub async fn announce_thresholds(pool: &SqlitePool, org_id: &str) -> Result<Vec<i64>, ApiError> {
    if quota_minutes(pool, org_id).await?.is_none() {
        return Ok(Vec::new());
    }
    // IMMEDIATE: this transaction reads then writes; a deferred one could fail to upgrade
    // while a worker writes.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let period = Period::containing(now_ms());
    let quota = quota_minutes(&mut *tx, org_id).await?;
    let usage = Usage {
        used_ms: used_ms(&mut *tx, org_id, &period).await?,
        quota_minutes: quota,
        period,
    };
    let mut sent = Vec::new();
    for threshold in usage.reached() {
        let inserted = sqlx::query(
            "INSERT INTO quota_warnings (org_id, period, threshold, used_minutes, quota_minutes, fired_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, period, threshold) DO NOTHING",
        )
        .bind(org_id)
        .bind(&usage.period.label)
        .bind(threshold)
        .bind(usage.used_minutes())
        .bind(usage.quota_minutes.unwrap_or(0))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            continue;
        }
        let event = if threshold >= 100 {
            EVENT_EXHAUSTED
        } else {
            EVENT_WARNING
        };
        let data = json!({
            "threshold": threshold,
            "period": usage.period.label,
            "used_minutes": usage.used_minutes(),
            "quota_minutes": usage.quota_minutes,
            "percent": usage.percent(),
        });
        crate::webhooks::enqueue_event_in(&mut tx, org_id, event, data).await?;
        sent.push(threshold);
    }
    tx.commit().await?;
    if !sent.is_empty() {
        tracing::info!(org_id, thresholds = ?sent, "minute quota thresholds announced");
    }
    Ok(sent)
}

/// [`announce_thresholds`] after a call came in: a failure is logged, never the caller's
/// error (the call itself was accepted); the next call or usage read tries again.
pub async fn announce_after_intake(pool: &SqlitePool, org_id: &str) {
    if let Err(e) = announce_thresholds(pool, org_id).await {
        tracing::warn!(org_id, error = %e.error, "could not check the minute quota thresholds");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        let p = Period::containing(
            chrono::DateTime::parse_from_rfc3339("2026-12-31T23:59:59Z")
                .unwrap()
                .timestamp_millis(),
        );
        assert_eq!(p.label, "2026-12");
        assert_eq!(ms_to_rfc3339(p.start_ms), "2026-12-01T00:00:00.000Z");
        assert_eq!(ms_to_rfc3339(p.end_ms), "2027-01-01T00:00:00.000Z");
    }

    #[test]
    fn thresholds_are_exact() {
        let u = |used_ms, quota| Usage {
            period: Period::containing(0),
            used_ms,
            quota_minutes: quota,
        };
        // 10 minutes: 80 % is 480 000 ms.
        assert!(u(479_999, Some(10)).reached().is_empty());
        assert_eq!(u(480_000, Some(10)).reached(), vec![80]);
        assert_eq!(u(570_000, Some(10)).reached(), vec![80, 95]);
        assert_eq!(u(600_000, Some(10)).reached(), vec![80, 95, 100]);
        assert!(u(600_000, Some(10)).exhausted());
        assert!(!u(599_999, Some(10)).exhausted());
        assert!(u(0, Some(0)).exhausted());
        assert!(!u(10_000_000, None).exhausted());
        assert_eq!(u(10_000_000, None).percent(), None);
    }
}

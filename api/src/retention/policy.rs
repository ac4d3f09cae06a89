//! An organization's retention periods: how many days recordings, transcripts and insights
//! are kept after the call was stored. `None` keeps that kind of data forever.

use serde::{Deserialize, Deserializer, Serialize};
use sqlx::SqliteExecutor;

use crate::ids::now_ms;

/// Recordings are the bulkiest and most sensitive data: kept 90 days unless an
/// organization decides otherwise (the product's documented default).
pub const DEFAULT_RECORDINGS_DAYS: i64 = 90;
/// Twenty years: above any regulatory horizon we know of (seven years is the usual one).
pub const MAX_DAYS: i64 = 7_300;
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RetentionPolicy {
    pub recordings_days: Option<i64>,
    pub transcripts_days: Option<i64>,
    pub insights_days: Option<i64>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            recordings_days: Some(DEFAULT_RECORDINGS_DAYS),
            transcripts_days: None,
            insights_days: None,
        }
    }
}

/// The three kinds of data a policy governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Recordings,
    Transcripts,
    Insights,
}

impl RetentionPolicy {
    pub fn days(&self, kind: DataKind) -> Option<i64> {
        match kind {
            DataKind::Recordings => self.recordings_days,
            DataKind::Transcripts => self.transcripts_days,
            DataKind::Insights => self.insights_days,
        }
    }

    /// Calls stored before this instant have `kind` purged; `None`: kept forever.
    pub fn cutoff_ms(&self, kind: DataKind, now_ms: i64) -> Option<i64> {
        self.days(kind)
            .map(|d| now_ms.saturating_sub(d.saturating_mul(DAY_MS)))
    }

    /// When `kind` of a call stored at `created_at_ms` becomes due for purging.
    pub fn purge_after_ms(&self, kind: DataKind, created_at_ms: i64) -> Option<i64> {
        self.days(kind)
            .map(|d| created_at_ms.saturating_add(d.saturating_mul(DAY_MS)))
    }

    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("recordings_days", self.recordings_days),
            ("transcripts_days", self.transcripts_days),
            ("insights_days", self.insights_days),
        ] {
            if let Some(d) = v
                && !(1..=MAX_DAYS).contains(&d)
            {
                return Err(format!(
                    "{name} must be between 1 and {MAX_DAYS} days, or null to keep forever"
                ));
            }
        }
        Ok(())
    }
}

/// A `PUT` body: an absent field keeps its value, `null` means "keep forever".
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// Days recordings are kept (1 to 366); null keeps them forever.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub recordings_days: Option<Option<i64>>,
    /// Days transcripts are kept (1 to 366); null keeps them forever.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub transcripts_days: Option<Option<i64>>,
    /// Days insights (analyses, scorecards) are kept (1 to 366); null keeps them forever.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub insights_days: Option<Option<i64>>,
}

/// Tells a field given as `null` (Some(None)) from one left out (None, via `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

impl PolicyChange {
    pub fn apply(&self, to: RetentionPolicy) -> RetentionPolicy {
        RetentionPolicy {
            recordings_days: self.recordings_days.unwrap_or(to.recordings_days),
            transcripts_days: self.transcripts_days.unwrap_or(to.transcripts_days),
            insights_days: self.insights_days.unwrap_or(to.insights_days),
        }
    }
}

/// The organization's policy and when it was last changed (`None`: the defaults apply).
pub async fn get<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
) -> Result<(RetentionPolicy, Option<i64>), sqlx::Error> {
    let row: Option<PolicyRow> = sqlx::query_as(
        "SELECT recordings_days, transcripts_days, insights_days, updated_at
         FROM retention_policies WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(ex)
    .await?;
    Ok(match row {
        Some(r) => (r.policy, Some(r.updated_at)),
        None => (RetentionPolicy::default(), None),
    })
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    #[sqlx(flatten)]
    policy: RetentionPolicy,
    updated_at: i64,
}

pub async fn put<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    p: &RetentionPolicy,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO retention_policies (org_id, recordings_days, transcripts_days, insights_days, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id) DO UPDATE SET recordings_days = excluded.recordings_days,
            transcripts_days = excluded.transcripts_days, insights_days = excluded.insights_days,
            updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(p.recordings_days)
    .bind(p.transcripts_days)
    .bind(p.insights_days)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_recordings_ninety_days_and_the_rest_forever() {
        let p = RetentionPolicy::default();
        assert_eq!(p.recordings_days, Some(90));
        assert_eq!(
            p.cutoff_ms(DataKind::Recordings, 100 * DAY_MS),
            Some(10 * DAY_MS)
        );
        assert_eq!(p.cutoff_ms(DataKind::Transcripts, 100 * DAY_MS), None);
        assert_eq!(p.purge_after_ms(DataKind::Recordings, 0), Some(90 * DAY_MS));
    }

    #[test]
    fn changes_tell_null_from_absent_and_bounds_hold() {
        let c: PolicyChange =
            serde_json::from_str(r#"{"transcripts_days": 30, "recordings_days": null}"#).unwrap();
        let p = c.apply(RetentionPolicy {
            recordings_days: Some(90),
            transcripts_days: None,
            insights_days: Some(7),
        });
        assert_eq!(
            p,
            RetentionPolicy {
                recordings_days: None,
                transcripts_days: Some(30),
                insights_days: Some(7),
            }
        );
        assert!(p.check().is_ok());
        for bad in [0, -1, MAX_DAYS + 1] {
            let p = RetentionPolicy {
                insights_days: Some(bad),
                ..Default::default()
            };
            assert!(p.check().unwrap_err().contains("insights_days"));
        }
        assert!(serde_json::from_str::<PolicyChange>(r#"{"recording_days": 5}"#).is_err());
        assert!(serde_json::from_str::<PolicyChange>(r#"{"recordings_days": "5"}"#).is_err());
    }
}

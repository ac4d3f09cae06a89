//! The time window of a report: `from`, `to` (RFC 3339, Unix seconds or a date) and the
//! viewer's UTC offset, which decides where days and hours begin.

use chrono::{NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::ids::{ms_to_rfc3339, now_ms};
use crate::metadata_fields::parse_timestamp_ms;

pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;
/// Without `from`, a report covers the last 30 days.
pub const DEFAULT_DAYS: i64 = 30;
/// A report covers at most this many days (one year, leap day included).
pub const MAX_DAYS: i64 = 366;
/// UTC−14:00 … UTC+14:00 are the offsets in use.
const MAX_OFFSET_MINUTES: i64 = 14 * 60;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Start: RFC 3339, Unix seconds, or a date (local midnight at the offset). Default:
    /// 30 days before `to`.
    pub from: Option<String>,
    /// End: RFC 3339, Unix seconds, or a date (the end of that local day). Default: now.
    pub to: Option<String>,
    /// The viewer's UTC offset in minutes (-840 to 840) for days and dates. Default 0.
    pub tz_offset_minutes: Option<String>,
    /// Only the calls of this team's members (within what the caller may see).
    pub team_id: Option<String>,
}

/// `[from_ms, to_ms)` and the offset in ms to add to a UTC time to get the viewer's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
    pub offset_ms: i64,
}

impl Window {
    pub fn parse(q: &WindowQuery) -> Result<Window, ApiError> {
        let offset_minutes = match q.tz_offset_minutes.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|m| m.abs() <= MAX_OFFSET_MINUTES)
                .ok_or_else(|| {
                    ApiError::validation("`tz_offset_minutes` must be an integer in -840..=840")
                        .with_details(json!({ "field": "tz_offset_minutes" }))
                })?,
        };
        let offset_ms = offset_minutes * 60_000;
        let to_ms = match &q.to {
            Some(t) => parse_bound(t, "to", offset_ms, Bound::End)?,
            None => now_ms(),
        };
        let from_ms = match &q.from {
            Some(f) => parse_bound(f, "from", offset_ms, Bound::Start)?,
            None => to_ms.saturating_sub(DEFAULT_DAYS * DAY_MS),
        };
        if from_ms >= to_ms {
            return Err(ApiError::validation("`from` must be before `to`")
                .with_details(json!({ "field": "from" })));
        }
        if to_ms - from_ms > MAX_DAYS * DAY_MS {
            return Err(ApiError::validation(format!(
                "the window is longer than {MAX_DAYS} days; ask for a shorter one"
            ))
            .with_details(json!({ "field": "from", "max_days": MAX_DAYS })));
        }
        Ok(Window {
            from_ms,
            to_ms,
            offset_ms,
        })
    }

    /// The local date (at the window's offset) of a day number `(t + offset) / DAY_MS`.
    pub fn date_of_day(day: i64) -> String {
        Utc.timestamp_millis_opt(day.saturating_mul(DAY_MS))
            .single()
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    }

    pub fn view(&self) -> Value {
        json!({
            "from": ms_to_rfc3339(self.from_ms),
            "to": ms_to_rfc3339(self.to_ms),
            "tz_offset_minutes": self.offset_ms / 60_000,
        })
    }
}

#[derive(Clone, Copy)]
enum Bound {
    Start,
    End,
}

/// A bound: RFC 3339 or Unix seconds as given; a date (`YYYY-MM-DD`) is local midnight at the
/// offset, and as `to` the end of that day (so `from=2026-11-01&to=2026-11-30` is November).
fn parse_bound(s: &str, name: &str, offset_ms: i64, bound: Bound) -> Result<i64, ApiError> {
    let s = s.trim();
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight_utc = date
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc().timestamp_millis())
            .ok_or_else(|| bad_bound(name))?;
        let start = midnight_utc - offset_ms;
        return Ok(match bound {
            Bound::Start => start,
            Bound::End => start + DAY_MS,
        });
    }
    parse_timestamp_ms(&Value::String(s.to_string())).ok_or_else(|| bad_bound(name))
}

fn bad_bound(name: &str) -> ApiError {
    ApiError::validation(format!(
        "`{name}` must be RFC 3339, Unix seconds or a date (YYYY-MM-DD)"
    ))
    .with_details(json!({ "field": name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(from: Option<&str>, to: Option<&str>, tz: Option<&str>) -> WindowQuery {
        WindowQuery {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            tz_offset_minutes: tz.map(str::to_string),
            team_id: None,
        }
    }

    #[test]
    fn dates_are_whole_local_days() {
        let w = Window::parse(&q(Some("2026-11-01"), Some("2026-11-30"), Some("60"))).unwrap();
        assert_eq!(ms_to_rfc3339(w.from_ms), "2026-10-31T23:00:00.000Z");
        assert_eq!(ms_to_rfc3339(w.to_ms), "2026-11-30T23:00:00.000Z");
        assert_eq!(w.offset_ms, 3_600_000);
        assert_eq!(
            Window::date_of_day((w.from_ms + w.offset_ms) / DAY_MS),
            "2026-11-01"
        );
    }

    #[test]
    fn bad_windows_are_refused() {
        assert!(Window::parse(&q(Some("2026-11-02"), Some("2026-11-01"), None)).is_err());
        assert!(Window::parse(&q(Some("2024-01-01"), Some("2026-01-01"), None)).is_err());
        assert!(Window::parse(&q(Some("yesterday"), None, None)).is_err());
        assert!(Window::parse(&q(None, None, Some("900"))).is_err());
        assert!(Window::parse(&q(None, None, Some("x"))).is_err());
        let w = Window::parse(&q(None, None, None)).unwrap();
        assert_eq!(w.to_ms - w.from_ms, DEFAULT_DAYS * DAY_MS);
    }
}

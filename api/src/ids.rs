//! Identifiers and clocks shared by the store. Ids are UUIDv7 text (time-ordered, portable to
//! PostgreSQL as TEXT); times are BIGINT milliseconds since the Unix epoch, UTC.

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 with milliseconds, for API output.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

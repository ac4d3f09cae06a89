//! Opaque pagination cursors: base64url of a small JSON value, so clients cannot (and need
//! not) build them, and the server may change what is inside.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub fn encode<T: Serialize>(v: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
}

pub fn decode<T: DeserializeOwned>(s: &str) -> Result<T, ApiError> {
    let bad = || ApiError::bad_request("invalid cursor").with_code("invalid_cursor");
    let bytes = URL_SAFE_NO_PAD.decode(s.as_bytes()).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// The page size asked for, clamped to 1..=200 (default 50).
pub fn limit(requested: Option<i64>) -> i64 {
    requested.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

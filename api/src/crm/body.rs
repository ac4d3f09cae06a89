//! Request bodies: JSON parsed here rather than by axum's `Json` extractor so that every
//! malformed body gets the API's error shape (422 with the parser's message).

use serde::de::{Deserialize, DeserializeOwned, Deserializer};

use crate::error::ApiError;

/// Most bytes a CRM request body may have.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::validation(format!(
            "the body is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::validation(format!("invalid JSON body: {e}")).with_code("invalid_body")
    })
}

/// For PATCH fields: absent → `None`, `null` → `Some(None)` (clear it), a value →
/// `Some(Some(v))`. Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

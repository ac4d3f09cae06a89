//! The envelope of listings that answer every item at once (`{data}`), typed so that the
//! OpenAPI document shows the items' schema.

use serde::Serialize;

/// Every item, in one answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
}

/// One page of a listing read by cursor (`{data, next_cursor}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CursorPage<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

//! The envelope of listings that answer every item at once (`{data}`), typed so that the
//! OpenAPI document shows the items' schema.

use serde::Serialize;

/// Every item, in one answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
}

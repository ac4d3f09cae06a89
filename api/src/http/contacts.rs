//! `GET /api/v1/contacts/{id}` (the full CRM view: phones, emails, tags, attributes, consent)
//! and its timeline. The other contact routes are in `crate::crm`.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::AppState;
use super::{cursor, views};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::store::{contacts, timeline};

pub async fn get_contact(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let c = crate::crm::contacts::get_full(&mut conn, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    Ok(Json(crate::crm::contacts::view(&c)))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

pub async fn get_timeline(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    // 404 for a contact of another organization, same as an unknown one.
    contacts::get_contact(&state.pool, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    let before: Option<(i64, String)> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = cursor::limit(q.limit);
    let mut rows = timeline::list_for_contact(
        &state.pool,
        &org.org_id,
        &id,
        before.as_ref().map(|(at, id)| (*at, id.as_str())),
        limit + 1,
    )
    .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if has_more {
        rows.last().map(|e| cursor::encode(&(e.occurred_at, &e.id)))
    } else {
        None
    };
    Ok(Json(json!({
        "data": rows.iter().map(views::event).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

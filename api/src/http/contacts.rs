//! `GET /api/v1/contacts/{id}` (the full CRM view: phones, emails, tags, attributes, consent).
//! Its timeline is in `super::timeline`; the other contact routes are in `crate::crm`.

use axum::Json;
use axum::extract::{Path, State};

use super::state::AppState;
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::permissions::Permission;

#[utoipa::path(
    get,
    path = "/contacts/{id}",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "A contact: phones, emails, tags, attributes, consent, company",
    params(("id" = String, Path, description = "The contact's id.")),
    responses((status = 200, description = "The contact.", body = crate::crm::contacts::ContactView)),
)]
pub async fn get_contact(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::crm::contacts::ContactView>> {
    org.require(Permission::ContactsRead)?;
    let mut conn = state.pool.acquire().await?;
    let c = crate::crm::contacts::get_full(&mut conn, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    Ok(Json(crate::crm::contacts::view(&c)))
}

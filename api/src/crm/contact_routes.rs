//! Contacts over HTTP: list and search, create, patch, merge, erase. (`GET /contacts/{id}` and
//! the timeline are in `crate::http::contacts`.)

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::SqliteConnection;

use super::contacts::{self, ContactFilter, ContactInput, ContactView};
use super::query::parse_query;
use super::validate::{self, MAX_ID_CHARS, MAX_TAG_CHARS};
use super::{CONTACT_CREATED, CONTACT_UPDATED, CrmError, CrmResult, body, erase, merge, settings};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::cursor;
use crate::http::lists::CursorPage;
use crate::http::state::AppState;
use crate::permissions::Permission;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Contacts a page (default 50, at most 200).
    pub limit: Option<i64>,
    /// A phone in any format, an email (or its start), or the start of a name.
    pub q: Option<String>,
    /// Only contacts with this tag.
    pub tag: Option<String>,
    /// Only contacts of this company.
    pub company_id: Option<String>,
}

/// One page of contacts matching `filter`, `{data, next_cursor}`.
pub async fn contact_page(
    conn: &mut SqliteConnection,
    org_id: &str,
    mut filter: ContactFilter,
    q: &PageQuery,
) -> CrmResult<CursorPage<ContactView>> {
    filter.before_id = q
        .cursor
        .as_deref()
        .map(cursor::decode::<String>)
        .transpose()
        .map_err(|_| CrmError::invalid("cursor: invalid"))?;
    let limit = cursor::limit(q.limit);
    let mut ids = contacts::search(conn, org_id, &filter, limit + 1).await?;
    let has_more = ids.len() as i64 > limit;
    ids.truncate(limit as usize);
    let next = if has_more {
        ids.last().map(cursor::encode)
    } else {
        None
    };
    let rows = contacts::load_many(conn, org_id, &ids).await?;
    Ok(CursorPage {
        data: rows.iter().map(contacts::view).collect(),
        next_cursor: next,
    })
}

/// `GET /contacts?q=&tag=&company_id=&cursor=&limit=`
#[utoipa::path(
    get,
    path = "/contacts",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "List or search contacts, newest first",
    params(PageQuery),
    responses((status = 200, description = "One page of contacts.", body = CursorPage<ContactView>)),
)]
pub async fn list_contacts(
    State(state): State<AppState>,
    org: OrgCtx,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<CursorPage<ContactView>>> {
    org.require(Permission::ContactsRead)?;
    let mut conn = state.pool.acquire().await?;
    let region = settings::region(&mut conn, &org.org_id, &state.config.default_region).await?;
    let filter = ContactFilter {
        query: q.q.as_deref().map(|s| parse_query(s, &region)),
        tag: validate::text("tag", q.tag.as_deref(), MAX_TAG_CHARS)?,
        company_id: validate::text("company_id", q.company_id.as_deref(), MAX_ID_CHARS)?,
        before_id: None,
    };
    Ok(Json(
        contact_page(&mut conn, &org.org_id, filter, &q).await?,
    ))
}

async fn full_view(conn: &mut SqliteConnection, org_id: &str, id: &str) -> CrmResult<ContactView> {
    contacts::get_full(conn, org_id, id)
        .await?
        .map(|c| contacts::view(&c))
        .ok_or(CrmError::NotFound("contact"))
}

#[utoipa::path(
    post,
    path = "/contacts",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "Create a contact",
    request_body = ContactInput,
    responses(
        (status = 201, description = "The contact (the `contact.created` webhook event carries the same).", body = ContactView),
        (status = 404, description = "`company_id` names no company of this organization.", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "A phone, email or external id belongs to another contact (`details` names it).", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn create_contact(
    State(state): State<AppState>,
    org: OrgCtx,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<ContactView>)> {
    org.require(Permission::ContactsWrite)?;
    let input: ContactInput = body::parse(&bytes)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let region = settings::region(&mut tx, &org.org_id, &state.config.default_region).await?;
    let id = contacts::create(&mut tx, &org.org_id, input, &region).await?;
    let view = full_view(&mut tx, &org.org_id, &id).await?;
    crate::webhooks::enqueue_event_in(&mut tx, &org.org_id, CONTACT_CREATED, json!(view)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    patch,
    path = "/contacts/{id}",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "Change a contact: absent fields stay, `null` clears",
    params(("id" = String, Path, description = "The contact's id.")),
    request_body = ContactInput,
    responses(
        (status = 200, description = "The contact as it is now.", body = ContactView),
        (status = 409, description = "A phone, email or external id belongs to another contact (`details` names it).", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn update_contact(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<ContactView>> {
    org.require(Permission::ContactsWrite)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    // 404 before 422: a caller learns nothing about other organizations' ids from errors.
    if !contacts::exists(&mut tx, &org.org_id, &id).await? {
        return Err(ApiError::not_found("contact"));
    }
    let input: ContactInput = body::parse(&bytes)?;
    let region = settings::region(&mut tx, &org.org_id, &state.config.default_region).await?;
    contacts::apply(&mut tx, &org.org_id, &id, input, &region).await?;
    let view = full_view(&mut tx, &org.org_id, &id).await?;
    crate::webhooks::enqueue_event_in(&mut tx, &org.org_id, CONTACT_UPDATED, json!(view)).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ContactMerge)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    /// The duplicate: merged into the contact of the path, then deleted.
    from: String,
}

/// `POST /contacts/{id}/merge {"from": other}`: `other` is merged into `id` and deleted.
#[utoipa::path(
    post,
    path = "/contacts/{id}/merge",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "Merge a duplicate contact into this one",
    description = "Phones, emails, tags, consent, attributes and empty fields of `from` move to \
        the contact of the path (which wins every conflict); its conversations, calls, timeline, \
        notes and tasks are re-pointed; `from` is deleted and a `contact.merged` event recorded.",
    params(("id" = String, Path, description = "The contact that stays.")),
    request_body = MergeBody,
    responses((status = 200, description = "`{contact, merged_from, moved: {table: count}}`: the merged contact and what moved.", body = Object)),
)]
pub async fn merge_contact(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsWrite)?;
    let b: MergeBody = body::parse(&bytes)?;
    let from = validate::id("from", &b.from)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let moved = merge::merge(&mut tx, &org.org_id, &id, &from).await?;
    let view = full_view(&mut tx, &org.org_id, &id).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "contact": view, "merged_from": from, "moved": moved }),
    ))
}

/// `DELETE /contacts/{id}`: the contact and everything that belongs to it (see [`erase`]).
#[utoipa::path(
    delete,
    path = "/contacts/{id}",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "Erase a contact and everything that belongs to it",
    description = "The contact, its conversations and messages, its calls with their recordings, \
        transcripts and analyses, its notes, tasks and timeline: the right to be forgotten.",
    params(("id" = String, Path, description = "The contact's id.")),
    responses(
        (status = 200, description = "What was erased: `{id, deleted: {table: count}, files: {removed, already_missing, failed}}`.", body = Object),
        (status = 409, description = "A call of the contact is on legal hold (`details.held_calls`); nothing was erased.", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn delete_contact(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsWrite)?;
    let report = erase::erase_contact(&state.pool, &state.recordings_dir, &org.org_id, &id).await?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::CONTACT_DELETED,
        crate::audit::Target::new("contact", &id),
        serde_json::json!({ "deleted": report["deleted"], "files": report["files"] }),
    )
    .await;
    Ok(Json(report))
}

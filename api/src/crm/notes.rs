//! Internal notes on a contact or a conversation. Each new note is a `note.created` event on
//! the contact's timeline and a webhook.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::SqliteConnection;

use super::validate::{self, MAX_ID_CHARS, MAX_NOTE_CHARS};
use super::{CrmError, CrmResult, NOTE_CREATED, body};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::cursor;
use crate::http::lists::CursorPage;
use crate::http::state::AppState;
use crate::ids::{ms_to_rfc3339, new_id, now_ms};
use crate::permissions::Permission;
use crate::store::timeline;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoteRow {
    pub id: String,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub body: String,
    pub author_kind: String,
    pub author_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Who wrote a note.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NoteAuthor {
    /// `user` or `api_key`.
    pub kind: String,
    pub id: String,
}

/// A note as the API, the timeline and the webhooks show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NoteView {
    pub id: String,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub body: String,
    pub author: NoteAuthor,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

pub fn view(n: &NoteRow) -> NoteView {
    NoteView {
        id: n.id.clone(),
        contact_id: n.contact_id.clone(),
        conversation_id: n.conversation_id.clone(),
        body: n.body.clone(),
        author: NoteAuthor {
            kind: n.author_kind.clone(),
            id: n.author_id.clone(),
        },
        created_at: ms_to_rfc3339(n.created_at),
        updated_at: ms_to_rfc3339(n.updated_at),
    }
}

const COLUMNS: &str =
    "id, contact_id, conversation_id, body, author_kind, author_id, created_at, updated_at";

async fn get(conn: &mut SqliteConnection, org_id: &str, id: &str) -> CrmResult<NoteRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM notes WHERE org_id = $1 AND id = $2"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(CrmError::NotFound("note"))
}

/// The contact of a conversation of the organization (`NotFound` when the conversation is
/// not the organization's).
pub async fn conversation_contact(
    conn: &mut SqliteConnection,
    org_id: &str,
    conversation_id: &str,
) -> CrmResult<Option<String>> {
    let row: Option<Option<String>> =
        sqlx::query_scalar("SELECT contact_id FROM conversations WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(conversation_id)
            .fetch_optional(&mut *conn)
            .await?;
    row.ok_or(CrmError::NotFound("conversation"))
}

/// Whether `user_id` is a user of the organization.
pub async fn user_exists(
    conn: &mut SqliteConnection,
    org_id: &str,
    user_id: &str,
) -> CrmResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n > 0)
}

/// A new note: `body` and at least one of `contact_id`, `conversation_id`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewNote {
    /// The contact it is about.
    contact_id: Option<String>,
    /// The conversation it is about (the note joins its contact's timeline too).
    conversation_id: Option<String>,
    /// The text (required).
    body: Option<String>,
    /// The user who wrote it; without it the note is the API key's.
    author_user_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/notes",
    operation_id = "create_note",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "Write a note on a contact or a conversation",
    request_body = NewNote,
    responses((status = 201, description = "The note (also a `note.created` timeline event and webhook).", body = NoteView)),
)]
pub async fn create_route(
    State(state): State<AppState>,
    org: OrgCtx,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<NoteView>)> {
    org.require(Permission::ContactsWrite)?;
    let n: NewNote = body::parse(&bytes)?;
    let org_id = org.org_id.as_str();
    let text = validate::required_text("body", n.body.as_deref(), MAX_NOTE_CHARS)?;
    let contact_id = validate::text("contact_id", n.contact_id.as_deref(), MAX_ID_CHARS)?;
    let conversation_id = validate::text(
        "conversation_id",
        n.conversation_id.as_deref(),
        MAX_ID_CHARS,
    )?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(c) = &contact_id
        && !super::contacts::exists(&mut tx, org_id, c).await?
    {
        return Err(ApiError::not_found("contact"));
    }
    let timeline_contact = match &conversation_id {
        Some(conv) => conversation_contact(&mut tx, org_id, conv).await?,
        None => None,
    }
    .or_else(|| contact_id.clone());
    if contact_id.is_none() && conversation_id.is_none() {
        return Err(CrmError::invalid("contact_id or conversation_id: one is required").into());
    }
    let (author_kind, author_id) = match n.author_user_id {
        Some(u) => {
            let u = validate::id("author_user_id", &u)?;
            if !user_exists(&mut tx, org_id, &u).await? {
                return Err(ApiError::not_found("user"));
            }
            ("user", u)
        }
        None => {
            let (kind, id) = org.principal();
            (kind, id.to_string())
        }
    };
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO notes (id, org_id, contact_id, conversation_id, body, author_kind, author_id,
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(&contact_id)
    .bind(&conversation_id)
    .bind(&text)
    .bind(author_kind)
    .bind(&author_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let note = view(&get(&mut tx, org_id, &id).await?);
    let payload = json!(note);
    timeline::record_event(
        &mut tx,
        org_id,
        &timeline::NewEvent {
            contact_id: timeline_contact.as_deref(),
            conversation_id: conversation_id.as_deref(),
            kind: NOTE_CREATED,
            ref_id: &id,
            payload: &payload,
            occurred_at: now,
        },
    )
    .await?;
    crate::webhooks::enqueue_event_in(&mut tx, org_id, NOTE_CREATED, payload).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(note)))
}

#[utoipa::path(
    get,
    path = "/notes/{id}",
    operation_id = "get_note",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "A note",
    params(("id" = String, Path, description = "The note's id.")),
    responses((status = 200, description = "The note.", body = NoteView)),
)]
pub async fn get_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<NoteView>> {
    org.require(Permission::ContactsRead)?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(view(&get(&mut conn, &org.org_id, &id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NotePatch {
    /// The new text; the note stays as it is without it.
    body: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/notes/{id}",
    operation_id = "update_note",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "Change a note's text",
    params(("id" = String, Path, description = "The note's id.")),
    request_body = NotePatch,
    responses((status = 200, description = "The note as it reads now (so does its timeline event).", body = NoteView)),
)]
pub async fn update_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<NoteView>> {
    org.require(Permission::ContactsWrite)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    get(&mut tx, &org.org_id, &id).await?;
    let p: NotePatch = body::parse(&bytes)?;
    if let Some(b) = p.body {
        let text = validate::required_text("body", Some(b.as_str()), MAX_NOTE_CHARS)?;
        sqlx::query("UPDATE notes SET body = $3, updated_at = $4 WHERE org_id = $1 AND id = $2")
            .bind(&org.org_id)
            .bind(&id)
            .bind(text)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
    }
    let note = view(&get(&mut tx, &org.org_id, &id).await?);
    // The timeline shows the note as it reads now.
    sqlx::query(
        "UPDATE timeline_events SET payload = $3 WHERE org_id = $1 AND kind = $4 AND ref_id = $2",
    )
    .bind(&org.org_id)
    .bind(&id)
    .bind(json!(note).to_string())
    .bind(NOTE_CREATED)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(note))
}

#[utoipa::path(
    delete,
    path = "/notes/{id}",
    operation_id = "delete_note",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "Delete a note and its timeline event",
    params(("id" = String, Path, description = "The note's id.")),
    responses((status = 204, description = "Deleted.")),
)]
pub async fn delete_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::ContactsWrite)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("DELETE FROM notes WHERE org_id = $1 AND id = $2")
        .bind(&org.org_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("note"));
    }
    sqlx::query("DELETE FROM timeline_events WHERE org_id = $1 AND kind = $3 AND ref_id = $2")
        .bind(&org.org_id)
        .bind(&id)
        .bind(NOTE_CREATED)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NoteQuery {
    /// Only notes on this contact.
    pub contact_id: Option<String>,
    /// Only notes on this conversation.
    pub conversation_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Notes a page (default 50, at most 200).
    pub limit: Option<i64>,
}

/// `GET /notes?contact_id=|conversation_id=`, newest first.
#[utoipa::path(
    get,
    path = "/notes",
    operation_id = "list_notes",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "List notes, newest first",
    params(NoteQuery),
    responses((status = 200, description = "One page of notes.", body = CursorPage<NoteView>)),
)]
pub async fn list_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Query(q): Query<NoteQuery>,
) -> ApiResult<Json<CursorPage<NoteView>>> {
    org.require(Permission::ContactsRead)?;
    let limit = cursor::limit(q.limit);
    let before: Option<String> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
        "SELECT {COLUMNS} FROM notes WHERE org_id = "
    ));
    qb.push_bind(org.org_id.clone());
    if let Some(c) = validate::text("contact_id", q.contact_id.as_deref(), MAX_ID_CHARS)? {
        qb.push(" AND contact_id = ").push_bind(c);
    }
    if let Some(c) = validate::text(
        "conversation_id",
        q.conversation_id.as_deref(),
        MAX_ID_CHARS,
    )? {
        qb.push(" AND conversation_id = ").push_bind(c);
    }
    if let Some(b) = before {
        qb.push(" AND id < ").push_bind(b);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<NoteRow> = qb.build_query_as().fetch_all(&state.pool).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if has_more {
        rows.last().map(|r| cursor::encode(&r.id))
    } else {
        None
    };
    Ok(Json(CursorPage {
        data: rows.iter().map(view).collect(),
        next_cursor: next,
    }))
}

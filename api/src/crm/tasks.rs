//! Tasks: typed by hand or made from the analysis's action items. A task links to a contact,
//! a conversation and/or a call (the contact is derived from the others when not given, so it
//! shows on the contact's timeline and goes when the contact is erased), has an assignee (a
//! user), a due time, a priority and a done state. `task.created` and `task.completed` are
//! timeline events and webhooks.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::SqliteConnection;

use super::body::nullable;
use super::notes::{conversation_contact, user_exists};
use super::validate::{self, MAX_DESCRIPTION_CHARS, MAX_ID_CHARS, MAX_TITLE_CHARS};
use super::{CrmError, CrmResult, TASK_COMPLETED, TASK_CREATED, body};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::cursor;
use crate::http::lists::CursorPage;
use crate::http::state::AppState;
use crate::ids::{ms_to_rfc3339, new_id, now_ms};
use crate::permissions::Permission;
use crate::store::timeline;

pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub call_id: Option<String>,
    pub assignee_user_id: Option<String>,
    pub due_at: Option<i64>,
    pub priority: String,
    pub done: bool,
    pub done_at: Option<i64>,
    pub source: String,
    pub action_item_index: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, title, description, contact_id, conversation_id, call_id, \
     assignee_user_id, due_at, priority, done, done_at, source, action_item_index, created_by, \
     created_at, updated_at";

/// A task as the API, the timeline and the webhooks show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub call_id: Option<String>,
    pub assignee_user_id: Option<String>,
    #[schema(format = DateTime)]
    pub due_at: Option<String>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    pub done: bool,
    #[schema(format = DateTime)]
    pub done_at: Option<String>,
    /// `manual`, or `analysis` for a task made from a call's action item.
    pub source: String,
    /// Which of the call's action items it came from.
    pub action_item_index: Option<i64>,
    pub created_by: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

pub fn view(t: &TaskRow) -> TaskView {
    TaskView {
        id: t.id.clone(),
        title: t.title.clone(),
        description: t.description.clone(),
        contact_id: t.contact_id.clone(),
        conversation_id: t.conversation_id.clone(),
        call_id: t.call_id.clone(),
        assignee_user_id: t.assignee_user_id.clone(),
        due_at: t.due_at.map(ms_to_rfc3339),
        priority: t.priority.clone(),
        done: t.done,
        done_at: t.done_at.map(ms_to_rfc3339),
        source: t.source.clone(),
        action_item_index: t.action_item_index,
        created_by: t.created_by.clone(),
        created_at: ms_to_rfc3339(t.created_at),
        updated_at: ms_to_rfc3339(t.updated_at),
    }
}

pub async fn get(conn: &mut SqliteConnection, org_id: &str, id: &str) -> CrmResult<TaskRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE org_id = $1 AND id = $2"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(CrmError::NotFound("task"))
}

/// A task to insert; links already checked to be the organization's.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub call_id: Option<String>,
    pub assignee_user_id: Option<String>,
    pub due_at: Option<i64>,
    pub priority: String,
    /// `Some(index)`: made from the call's action item `index` (source 'analysis').
    pub action_item_index: Option<i64>,
    pub created_by: Option<String>,
}

/// The contact and conversation of a call of the organization.
pub async fn call_links(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
) -> CrmResult<(Option<String>, Option<String>)> {
    sqlx::query_as("SELECT contact_id, conversation_id FROM calls WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(call_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(CrmError::NotFound("call"))
}

/// Inserts the task with its `task.created` timeline event and webhook. `None` when it is an
/// action item's task that exists already (a re-analysis, a second click).
pub async fn insert(
    conn: &mut SqliteConnection,
    org_id: &str,
    t: &NewTask,
) -> CrmResult<Option<TaskRow>> {
    let id = new_id();
    let now = now_ms();
    let source = if t.action_item_index.is_some() {
        "analysis"
    } else {
        "manual"
    };
    let done = sqlx::query(
        "INSERT INTO tasks (id, org_id, title, description, contact_id, conversation_id, call_id,
             assignee_user_id, due_at, priority, source, action_item_index, created_by,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
         ON CONFLICT (call_id, action_item_index) DO NOTHING",
    )
    .bind(&id)
    .bind(org_id)
    .bind(&t.title)
    .bind(&t.description)
    .bind(&t.contact_id)
    .bind(&t.conversation_id)
    .bind(&t.call_id)
    .bind(&t.assignee_user_id)
    .bind(t.due_at)
    .bind(&t.priority)
    .bind(source)
    .bind(t.action_item_index)
    .bind(&t.created_by)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let row = get(conn, org_id, &id).await?;
    announce(conn, org_id, &row, TASK_CREATED, now).await?;
    Ok(Some(row))
}

/// The timeline event and webhook of a task change.
async fn announce(
    conn: &mut SqliteConnection,
    org_id: &str,
    row: &TaskRow,
    kind: &str,
    at: i64,
) -> CrmResult<()> {
    let v = json!(view(row));
    timeline::record_event(
        conn,
        org_id,
        &timeline::NewEvent {
            contact_id: row.contact_id.as_deref(),
            conversation_id: row.conversation_id.as_deref(),
            kind,
            ref_id: &row.id,
            payload: &v,
            occurred_at: at,
        },
    )
    .await?;
    crate::webhooks::enqueue_event_in(conn, org_id, kind, v).await?;
    Ok(())
}

fn priority(v: Option<&str>) -> CrmResult<String> {
    let p = v.unwrap_or("normal");
    if PRIORITIES.contains(&p) {
        Ok(p.to_string())
    } else {
        Err(CrmError::invalid(format!(
            "priority: {p:?} is not one of {}",
            PRIORITIES.join(", ")
        )))
    }
}

async fn check_assignee(
    conn: &mut SqliteConnection,
    org_id: &str,
    v: Option<&str>,
) -> CrmResult<Option<String>> {
    let Some(u) = validate::text("assignee_user_id", v, MAX_ID_CHARS)? else {
        return Ok(None);
    };
    if !user_exists(conn, org_id, &u).await? {
        return Err(CrmError::NotFound("user"));
    }
    Ok(Some(u))
}

/// A task's fields. Creating needs `title` and takes no `done`; a patch cannot change the
/// links (`contact_id`, `conversation_id`, `call_id`); in a patch `null` clears a field.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TaskInput {
    title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// Creation only. Derived from the conversation or the call when absent.
    contact_id: Option<String>,
    /// Creation only. Derived from the call when absent.
    conversation_id: Option<String>,
    /// Creation only.
    call_id: Option<String>,
    /// A user of the organization.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    assignee_user_id: Option<Option<String>>,
    /// RFC 3339.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    due_at: Option<Option<String>>,
    /// `low`, `normal` (default), `high` or `urgent`.
    priority: Option<String>,
    /// Patch only: `true` completes the task, `false` opens it again.
    done: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/tasks",
    operation_id = "create_task",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "Create a task",
    request_body = TaskInput,
    responses((status = 201, description = "The task (also a `task.created` timeline event and webhook).", body = TaskView)),
)]
pub async fn create_route(
    State(state): State<AppState>,
    org: OrgCtx,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<TaskView>)> {
    org.require(Permission::ContactsWrite)?;
    let i: TaskInput = body::parse(&bytes)?;
    let org_id = org.org_id.as_str();
    let title = validate::required_text("title", i.title.as_deref(), MAX_TITLE_CHARS)?;
    let description = validate::text(
        "description",
        i.description.flatten().as_deref(),
        MAX_DESCRIPTION_CHARS,
    )?;
    let priority = priority(i.priority.as_deref())?;
    let due_at = i
        .due_at
        .flatten()
        .map(|d| validate::time("due_at", &d))
        .transpose()?;
    if i.done.is_some() {
        return Err(CrmError::invalid("done: a new task is open; complete it afterwards").into());
    }
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut contact_id = validate::text("contact_id", i.contact_id.as_deref(), MAX_ID_CHARS)?;
    if let Some(c) = &contact_id
        && !super::contacts::exists(&mut tx, org_id, c).await?
    {
        return Err(ApiError::not_found("contact"));
    }
    let mut conversation_id = validate::text(
        "conversation_id",
        i.conversation_id.as_deref(),
        MAX_ID_CHARS,
    )?;
    if let Some(conv) = &conversation_id {
        let owner = conversation_contact(&mut tx, org_id, conv).await?;
        contact_id = contact_id.or(owner);
    }
    let call_id = validate::text("call_id", i.call_id.as_deref(), MAX_ID_CHARS)?;
    if let Some(call) = &call_id {
        let (owner, conv) = call_links(&mut tx, org_id, call).await?;
        contact_id = contact_id.or(owner);
        conversation_id = conversation_id.or(conv);
    }
    let assignee = check_assignee(&mut tx, org_id, i.assignee_user_id.flatten().as_deref()).await?;
    let row = insert(
        &mut tx,
        org_id,
        &NewTask {
            title,
            description,
            contact_id,
            conversation_id,
            call_id,
            assignee_user_id: assignee,
            due_at,
            priority,
            action_item_index: None,
            created_by: Some(org.principal().1.to_string()),
        },
    )
    .await?
    .ok_or_else(|| ApiError::internal("a manual task conflicted"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view(&row))))
}

#[utoipa::path(
    get,
    path = "/tasks/{id}",
    operation_id = "get_task",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "A task",
    params(("id" = String, Path, description = "The task's id.")),
    responses((status = 200, description = "The task.", body = TaskView)),
)]
pub async fn get_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    org.require(Permission::ContactsRead)?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(view(&get(&mut conn, &org.org_id, &id).await?)))
}

/// Marks the task done (or open again); completing sends `task.completed` once.
async fn set_done(
    conn: &mut SqliteConnection,
    org_id: &str,
    row: &TaskRow,
    done: bool,
) -> CrmResult<()> {
    if row.done == done {
        return Ok(());
    }
    let now = now_ms();
    sqlx::query(
        "UPDATE tasks SET done = $3, done_at = $4, updated_at = $5 WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(&row.id)
    .bind(done)
    .bind(done.then_some(now))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if done {
        let row = get(conn, org_id, &row.id).await?;
        announce(conn, org_id, &row, TASK_COMPLETED, now).await?;
    } else {
        // Reopened: the timeline no longer says it was completed.
        sqlx::query("DELETE FROM timeline_events WHERE org_id = $1 AND kind = $3 AND ref_id = $2")
            .bind(org_id)
            .bind(&row.id)
            .bind(TASK_COMPLETED)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[utoipa::path(
    patch,
    path = "/tasks/{id}",
    operation_id = "update_task",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "Change a task, complete it or open it again",
    params(("id" = String, Path, description = "The task's id.")),
    request_body = TaskInput,
    responses((status = 200, description = "The task as it is now.", body = TaskView)),
)]
pub async fn update_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<TaskView>> {
    org.require(Permission::ContactsWrite)?;
    let org_id = org.org_id.as_str();
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut row = get(&mut tx, org_id, &id).await?;
    let i: TaskInput = body::parse(&bytes)?;
    if i.contact_id.is_some() || i.conversation_id.is_some() || i.call_id.is_some() {
        return Err(CrmError::invalid(
            "contact_id, conversation_id, call_id: a task's links are set when it is created",
        )
        .into());
    }
    if let Some(t) = &i.title {
        row.title = validate::required_text("title", Some(t.as_str()), MAX_TITLE_CHARS)?;
    }
    if let Some(d) = i.description {
        row.description = validate::text("description", d.as_deref(), MAX_DESCRIPTION_CHARS)?;
    }
    if let Some(p) = &i.priority {
        row.priority = priority(Some(p.as_str()))?;
    }
    if let Some(d) = i.due_at {
        row.due_at = d.map(|d| validate::time("due_at", &d)).transpose()?;
    }
    if let Some(a) = i.assignee_user_id {
        row.assignee_user_id = check_assignee(&mut tx, org_id, a.as_deref()).await?;
    }
    sqlx::query(
        "UPDATE tasks SET title = $3, description = $4, priority = $5, due_at = $6,
            assignee_user_id = $7, updated_at = $8 WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(&id)
    .bind(&row.title)
    .bind(&row.description)
    .bind(&row.priority)
    .bind(row.due_at)
    .bind(&row.assignee_user_id)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if let Some(done) = i.done {
        set_done(&mut tx, org_id, &row, done).await?;
    }
    let row = get(&mut tx, org_id, &id).await?;
    tx.commit().await?;
    Ok(Json(view(&row)))
}

/// `POST /tasks/{id}/complete` (idempotent: a done task stays as it is).
#[utoipa::path(
    post,
    path = "/tasks/{id}/complete",
    operation_id = "complete_task",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "Complete a task (a done task stays as it is)",
    params(("id" = String, Path, description = "The task's id.")),
    responses((status = 200, description = "The task, done (`task.completed` is sent once).", body = TaskView)),
)]
pub async fn complete_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskView>> {
    org.require(Permission::ContactsWrite)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let row = get(&mut tx, &org.org_id, &id).await?;
    set_done(&mut tx, &org.org_id, &row, true).await?;
    let row = get(&mut tx, &org.org_id, &id).await?;
    tx.commit().await?;
    Ok(Json(view(&row)))
}

#[utoipa::path(
    delete,
    path = "/tasks/{id}",
    operation_id = "delete_task",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "Delete a task and its timeline events",
    params(("id" = String, Path, description = "The task's id.")),
    responses((status = 204, description = "Deleted.")),
)]
pub async fn delete_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::ContactsWrite)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("DELETE FROM tasks WHERE org_id = $1 AND id = $2")
        .bind(&org.org_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("task"));
    }
    sqlx::query(
        "DELETE FROM timeline_events WHERE org_id = $1 AND ref_id = $2 AND kind IN ($3, $4)",
    )
    .bind(&org.org_id)
    .bind(&id)
    .bind(TASK_CREATED)
    .bind(TASK_COMPLETED)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only tasks assigned to this user.
    pub assignee: Option<String>,
    /// Only done (`true`) or open (`false`) tasks.
    pub done: Option<bool>,
    /// RFC 3339: tasks due before it (tasks without a due time are left out).
    pub due_before: Option<String>,
    /// Only tasks of this contact.
    pub contact_id: Option<String>,
    /// Only tasks of this call.
    pub call_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Tasks a page (default 50, at most 200).
    pub limit: Option<i64>,
}

/// `GET /tasks?assignee=&done=&due_before=&contact_id=&call_id=`, newest first.
#[utoipa::path(
    get,
    path = "/tasks",
    operation_id = "list_tasks",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "List tasks, newest first",
    params(TaskQuery),
    responses((status = 200, description = "One page of tasks.", body = CursorPage<TaskView>)),
)]
pub async fn list_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Query(q): Query<TaskQuery>,
) -> ApiResult<Json<CursorPage<TaskView>>> {
    org.require(Permission::ContactsRead)?;
    let limit = cursor::limit(q.limit);
    let before: Option<String> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
        "SELECT {COLUMNS} FROM tasks WHERE org_id = "
    ));
    qb.push_bind(org.org_id.clone());
    if let Some(a) = validate::text("assignee", q.assignee.as_deref(), MAX_ID_CHARS)? {
        qb.push(" AND assignee_user_id = ").push_bind(a);
    }
    if let Some(d) = q.done {
        qb.push(" AND done = ").push_bind(d);
    }
    if let Some(d) = &q.due_before {
        qb.push(" AND due_at < ")
            .push_bind(validate::time("due_before", d)?);
    }
    if let Some(c) = validate::text("contact_id", q.contact_id.as_deref(), MAX_ID_CHARS)? {
        qb.push(" AND contact_id = ").push_bind(c);
    }
    if let Some(c) = validate::text("call_id", q.call_id.as_deref(), MAX_ID_CHARS)? {
        qb.push(" AND call_id = ").push_bind(c);
    }
    if let Some(b) = before {
        qb.push(" AND id < ").push_bind(b);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<TaskRow> = qb.build_query_as().fetch_all(&state.pool).await?;
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

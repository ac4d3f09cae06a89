//! Tasks from the action items the analysis found in a call: on one click
//! (`POST /calls/{id}/action-items/{index}/task`) or, when the organization's setting is
//! `auto`, as soon as the call's analysis is stored ([`on_analysis_stored`], called by the
//! post-call job in its transaction). A task remembers its call and the item's index, unique
//! together, so a re-analysis or a second click never makes a second task.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use callscope_analysis::actions::{ActionItem, ActionKind, DuePrecision};
use serde::Deserialize;
use sqlx::SqliteConnection;

use super::settings::{self, ActionItemTasks};
use super::tasks::{self, NewTask, TaskRow, call_links};
use super::validate::MAX_TITLE_CHARS;
use super::{CrmError, CrmResult};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::permissions::Permission;
use crate::store::call_analyses;
use crate::worker::JobError;

/// The task an action item becomes: its sentence as the title, who said it and when in the
/// description, its due date (a day's deadline is the end of that day, UTC).
fn new_task(call_id: &str, index: usize, item: &ActionItem) -> NewTask {
    let title: String = item.text.trim().chars().take(MAX_TITLE_CHARS).collect();
    let secs = item.start_ms / 1000;
    let kind = match item.kind {
        ActionKind::Commitment => "committed to",
        ActionKind::Request => "asked for",
    };
    let description = format!(
        "Action item from the call: the {} {kind} it at {}:{:02}; owner: {}.",
        item.said_by.as_str(),
        secs / 60,
        secs % 60,
        item.owner.as_str(),
    );
    let due_at = item.due.as_ref().and_then(|d| match (d.at, d.precision) {
        (Some(at), _) => Some(at.timestamp_millis()),
        (None, DuePrecision::Time) => None,
        (None, _) => d
            .date
            .and_hms_milli_opt(23, 59, 59, 999)
            .map(|t| t.and_utc().timestamp_millis()),
    });
    NewTask {
        title: if title.is_empty() {
            "Action item".into()
        } else {
            title
        },
        description: Some(description),
        call_id: Some(call_id.to_string()),
        due_at,
        priority: "normal".into(),
        action_item_index: i64::try_from(index).ok(),
        ..NewTask::default()
    }
}

/// The task of the call's action item `index` (created, or the one made before: `false`).
async fn task_for_item(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    index: usize,
    item: &ActionItem,
    created_by: Option<&str>,
) -> CrmResult<(TaskRow, bool)> {
    let (contact_id, conversation_id) = call_links(conn, org_id, call_id).await?;
    let mut t = new_task(call_id, index, item);
    t.contact_id = contact_id;
    t.conversation_id = conversation_id;
    t.created_by = created_by.map(str::to_string);
    if let Some(row) = tasks::insert(conn, org_id, &t).await? {
        return Ok((row, true));
    }
    let id: String = sqlx::query_scalar(
        "SELECT id FROM tasks WHERE org_id = $1 AND call_id = $2 AND action_item_index = $3",
    )
    .bind(org_id)
    .bind(call_id)
    .bind(t.action_item_index)
    .fetch_one(&mut *conn)
    .await?;
    Ok((tasks::get(conn, org_id, &id).await?, false))
}

/// The hook after a call's analysis is stored (same transaction): with the organization's
/// setting `auto`, every action item becomes a task (once). Returns how many were created.
pub async fn on_analysis_stored(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    items: &[ActionItem],
) -> Result<usize, JobError> {
    let run = async {
        if items.is_empty()
            || settings::load(conn, org_id).await?.action_item_tasks != ActionItemTasks::Auto
        {
            return Ok(0);
        }
        let mut created = 0;
        for (index, item) in items.iter().enumerate() {
            if task_for_item(conn, org_id, call_id, index, item, Some("analysis"))
                .await?
                .1
            {
                created += 1;
            }
        }
        Ok::<usize, CrmError>(created)
    };
    run.await
        .map_err(|e| JobError::Transient(format!("tasks from action items: {e}")))
}

#[derive(Deserialize)]
struct StoredItems {
    #[serde(default)]
    action_items: Vec<ActionItem>,
}

/// `POST /calls/{id}/action-items/{index}/task`: 201 with the new task, 200 with the one
/// made before.
#[utoipa::path(
    post,
    path = "/calls/{id}/action-items/{index}/task",
    operation_id = "create_task_from_action_item",
    tag = crate::http::openapi::tags::NOTES_TASKS,
    summary = "Make a task from an action item of the call's analysis",
    params(
        ("id" = String, Path, description = "The call's id."),
        ("index" = String, Path, description = "The action item's position in the analysis, from 0."),
    ),
    responses(
        (status = 201, description = "The new task.", body = super::tasks::TaskView),
        (status = 200, description = "The task made from this item before (one task an item).", body = super::tasks::TaskView),
        (status = 404, description = "No such call, analysis (`not_analysed`) or action item.", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Tasks from action items are off for the organization (`action_item_tasks_off`).", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn create_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path((call_id, index)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<super::tasks::TaskView>)> {
    org.require(Permission::ContactsWrite)?;
    org.require(Permission::IntelligenceRead)?;
    let org_id = org.org_id.as_str();
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    call_links(&mut tx, org_id, &call_id).await?;
    let stored = call_analyses::get(&mut *tx, org_id, &call_id)
        .await?
        .ok_or_else(|| ApiError::not_found("analysis").with_code("not_analysed"))?;
    let items: StoredItems = serde_json::from_str(&stored.result).map_err(ApiError::internal)?;
    let item = index
        .parse::<usize>()
        .ok()
        .and_then(|i| items.action_items.get(i).map(|item| (i, item)));
    let Some((index, item)) = item else {
        return Err(ApiError::not_found("action item"));
    };
    if settings::load(&mut tx, org_id).await?.action_item_tasks == ActionItemTasks::Off {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "action_item_tasks_off",
            "tasks from action items are turned off for this organization (settings/crm)",
        ));
    }
    let (row, created) = task_for_item(
        &mut tx,
        org_id,
        &call_id,
        index,
        item,
        Some(org.principal().1),
    )
    .await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(tasks::view(&row))))
}

//! REST for teams under `/api/v1/teams`. Reading needs `contacts.read` (agents pick teams when
//! they hand a conversation over) or `teams.manage`; every change needs `teams.manage`, is
//! audited, and is announced as a `team.*` event in the change's own transaction.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{Sqlite, SqliteConnection, Transaction};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::TeamError;
use super::store::{
    self, MAX_DESCRIPTION_CHARS, MAX_MEMBERS, MAX_NAME_CHARS, MemberChange, MemberRole, Team,
    TeamView,
};
use crate::audit::{self, Target};
use crate::auth::OrgCtx;
use crate::crm::body::{self, nullable};
use crate::error::{ApiError, ApiResult};
use crate::http::lists::List;
use crate::http::state::AppState;
use crate::ids::now_ms;
use crate::permissions::Permission;
use crate::webhooks::enqueue_event_in;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, update_team, delete_team))
        .routes(routes!(put_member, remove_member))
}

pub mod actions {
    pub const CREATED: &str = "team.created";
    pub const UPDATED: &str = "team.updated";
    pub const DELETED: &str = "team.deleted";
    pub const MEMBER_ADDED: &str = "team.member_added";
    pub const MEMBER_UPDATED: &str = "team.member_updated";
    pub const MEMBER_REMOVED: &str = "team.member_removed";
}

/// Commits a team change together with its `team.*` event, then audits it under the same
/// name (after the commit: the audit log never fails the caller).
async fn announce(
    state: &AppState,
    org: &OrgCtx,
    mut tx: Transaction<'_, Sqlite>,
    action: &'static str,
    team_id: &str,
    data: Value,
    details: Value,
) -> Result<(), ApiError> {
    enqueue_event_in(&mut tx, &org.org_id, action, data)
        .await
        .map_err(TeamError::from)?;
    tx.commit().await?;
    audit::record(
        &state.pool,
        org,
        action,
        Target::new("team", team_id),
        details,
    )
    .await;
    Ok(())
}

fn require_read(org: &OrgCtx) -> Result<(), ApiError> {
    if org.permissions.has(Permission::TeamsManage) {
        return Ok(());
    }
    org.require(Permission::ContactsRead)
}

/// Trimmed text of 1 to `max` printable characters.
fn text(field: &'static str, v: &str, max: usize) -> Result<String, TeamError> {
    let t = v.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(TeamError::invalid(
            field,
            format!("1 to {max} printable characters"),
        ));
    }
    Ok(t.to_string())
}

fn member_role(v: Option<&str>) -> Result<MemberRole, TeamError> {
    match v {
        None => Ok(MemberRole::Member),
        Some(s) => MemberRole::parse(s).ok_or_else(|| TeamError::invalid("role", "member or lead")),
    }
}

/// The team with its members, as the single-team reads show it.
async fn full_view(conn: &mut SqliteConnection, team: &Team) -> Result<TeamView, sqlx::Error> {
    let members = store::members(conn, &team.id).await?;
    Ok(store::view(team, members.len() as i64, Some(&members)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTeamsQuery {
    /// Only the teams this user is in; `me` for the signed-in user's own.
    pub user_id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/teams",
    operation_id = "list_teams",
    tag = crate::http::openapi::tags::TEAMS,
    summary = "The organization's teams, by name",
    params(ListTeamsQuery),
    responses((status = 200, description = "The teams, each with its member count.", body = List<TeamView>)),
)]
async fn list_teams(
    State(state): State<AppState>,
    org: OrgCtx,
    Query(q): Query<ListTeamsQuery>,
) -> ApiResult<Json<List<TeamView>>> {
    require_read(&org)?;
    let user: Option<String> = match q.user_id.as_deref() {
        Some("me") => Some(org.user_id().map(str::to_string).ok_or_else(|| {
            ApiError::bad_request("user_id=me needs a signed-in user, not an API key")
        })?),
        other => other.map(str::to_string),
    };
    let rows = store::list(&state.pool, &org.org_id, user.as_deref()).await?;
    Ok(Json(List {
        data: rows.iter().map(|(t, n)| store::view(t, *n, None)).collect(),
    }))
}

/// A member named when a team is created.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewMember {
    user_id: String,
    /// `member` (default) or `lead`: a lead sees the calls of the team's members.
    role: Option<String>,
}

/// A team's fields. Creating needs `name`; in a patch an absent field stays and a `null`
/// `description` clears it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TeamInput {
    /// 1 to 100 characters, unique in the organization regardless of case.
    #[schema(max_length = 100)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<Option<String>>,
    /// Creating only: the first members (members change later through
    /// `PUT /teams/{id}/members/{user_id}`).
    members: Option<Vec<NewMember>>,
}

#[utoipa::path(
    post,
    path = "/teams",
    operation_id = "create_team",
    tag = crate::http::openapi::tags::TEAMS,
    summary = "Create a team, optionally with its first members",
    request_body = TeamInput,
    responses(
        (status = 201, description = "The team with its members.", body = TeamView),
        (status = 404, description = "A member's user does not exist in the organization.", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Another team has the name (`team_name_taken`), or the organization has as many teams as it may (`limit_reached`).", body = crate::http::openapi::ErrorBody),
    ),
)]
async fn create_team(
    State(state): State<AppState>,
    org: OrgCtx,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    org.require(Permission::TeamsManage)?;
    let input: TeamInput = body::parse(&bytes)?;
    let name = text(
        "name",
        input
            .name
            .as_deref()
            .ok_or_else(|| TeamError::invalid("name", "required"))?,
        MAX_NAME_CHARS,
    )?;
    let description = input
        .description
        .flatten()
        .map(|d| text("description", &d, MAX_DESCRIPTION_CHARS))
        .transpose()?;
    let members = input.members.unwrap_or_default();
    if members.len() as i64 > MAX_MEMBERS {
        return Err(TeamError::invalid("members", format!("at most {MAX_MEMBERS}")).into());
    }
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let team = store::insert(&mut tx, &org.org_id, &name, description.as_deref()).await?;
    for m in &members {
        let role = member_role(m.role.as_deref())?;
        store::put_member(&mut tx, &org.org_id, &team.id, &m.user_id, role).await?;
    }
    let team = store::require(&mut tx, &org.org_id, &team.id).await?;
    let view = full_view(&mut tx, &team).await?;
    let data = json!({ "team": view });
    let details = json!({ "name": team.name, "members": members.len() });
    announce(&state, &org, tx, actions::CREATED, &team.id, data, details).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/teams/{id}",
    operation_id = "get_team",
    tag = crate::http::openapi::tags::TEAMS,
    summary = "A team with its members",
    params(("id" = String, Path, description = "The team's id.")),
    responses((status = 200, description = "The team with its members.", body = TeamView)),
)]
async fn get_team(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<TeamView>> {
    require_read(&org)?;
    let mut conn = state.pool.acquire().await?;
    let team = store::require(&mut conn, &org.org_id, &id).await?;
    Ok(Json(full_view(&mut conn, &team).await?))
}

#[utoipa::path(
    patch,
    path = "/teams/{id}",
    operation_id = "update_team",
    tag = crate::http::openapi::tags::TEAMS,
    summary = "Rename a team or change its description",
    params(("id" = String, Path, description = "The team's id.")),
    request_body = TeamInput,
    responses(
        (status = 200, description = "The team as it is now, with its members.", body = TeamView),
        (status = 409, description = "Another team has the name (`team_name_taken`).", body = crate::http::openapi::ErrorBody),
    ),
)]
async fn update_team(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<TeamView>> {
    org.require(Permission::TeamsManage)?;
    let input: TeamInput = body::parse(&bytes)?;
    if input.members.is_some() {
        return Err(TeamError::invalid(
            "members",
            "members change through PUT and DELETE /teams/{id}/members/{user_id}",
        )
        .into());
    }
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let before = store::require(&mut tx, &org.org_id, &id).await?;
    let mut team = before.clone();
    if let Some(n) = &input.name {
        team.name = text("name", n, MAX_NAME_CHARS)?;
    }
    if let Some(d) = input.description {
        team.description = d
            .map(|d| text("description", &d, MAX_DESCRIPTION_CHARS))
            .transpose()?;
    }
    let mut changed = Vec::new();
    if team.name != before.name {
        changed.push("name");
    }
    if team.description != before.description {
        changed.push("description");
    }
    if changed.is_empty() {
        let view = full_view(&mut tx, &team).await?;
        return Ok(Json(view));
    }
    team.updated_at = now_ms();
    store::update(&mut tx, &team).await?;
    let view = full_view(&mut tx, &team).await?;
    let data = json!({ "team": view, "changed": changed });
    let details = json!({
        "before": { "name": before.name, "description": before.description },
        "after": { "name": team.name, "description": team.description },
    });
    announce(&state, &org, tx, actions::UPDATED, &id, data, details).await?;
    Ok(Json(view))
}

#[utoipa::path(
    delete,
    path = "/teams/{id}",
    operation_id = "delete_team",
    tag = crate::http::openapi::tags::TEAMS,
    summary = "Delete a team; its conversations stay, without a team",
    params(("id" = String, Path, description = "The team's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 409, description = "Inbound routes ring the team (`team_in_use`, `details.route_ids`).", body = crate::http::openapi::ErrorBody),
    ),
)]
async fn delete_team(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::TeamsManage)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let team = store::require(&mut tx, &org.org_id, &id).await?;
    let members = store::member_count(&mut tx, &id).await?;
    let conversations = store::delete(&mut tx, &org.org_id, &id).await?;
    let data = json!({
        "team": store::view(&team, members, None),
        "conversations_unassigned": conversations,
    });
    let details =
        json!({ "name": team.name, "members": members, "conversations_unassigned": conversations });
    announce(&state, &org, tx, actions::DELETED, &id, data, details).await?;
    // Channels cached by the WhatsApp intake may still name the team as their default.
    crate::messaging::channels::changed();
    Ok(StatusCode::NO_CONTENT)
}

/// A member's place in the team.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberInput {
    /// `member` (default) or `lead`: a lead sees the calls of the team's members.
    role: Option<String>,
}

#[utoipa::path(
    put,
    path = "/teams/{id}/members/{user_id}",
    operation_id = "put_team_member",
    tag = crate::http::openapi::tags::TEAMS,
    summary = "Add a user to a team, or change their role in it",
    params(
        ("id" = String, Path, description = "The team's id."),
        ("user_id" = String, Path, description = "The user's id."),
    ),
    request_body = MemberInput,
    responses(
        (status = 201, description = "Added: the team with its members.", body = TeamView),
        (status = 200, description = "Already a member (role changed or not): the team with its members.", body = TeamView),
        (status = 409, description = "The team has as many members as it may (`limit_reached`).", body = crate::http::openapi::ErrorBody),
    ),
)]
async fn put_member(
    State(state): State<AppState>,
    org: OrgCtx,
    Path((id, user_id)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    org.require(Permission::TeamsManage)?;
    let input: MemberInput = body::parse(&bytes)?;
    let role = member_role(input.role.as_deref())?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    store::require(&mut tx, &org.org_id, &id).await?;
    let change = store::put_member(&mut tx, &org.org_id, &id, &user_id, role).await?;
    let team = store::require(&mut tx, &org.org_id, &id).await?;
    let view = full_view(&mut tx, &team).await?;
    let (action, previous) = match change {
        MemberChange::Unchanged => return Ok((StatusCode::OK, Json(view))),
        MemberChange::Added => (actions::MEMBER_ADDED, None),
        MemberChange::RoleChanged { previous } => (actions::MEMBER_UPDATED, Some(previous)),
    };
    let details = json!({
        "user_id": user_id,
        "role": role.as_str(),
        "previous_role": previous.map(MemberRole::as_str),
    });
    let data = json!({ "team": view, "member": details });
    announce(&state, &org, tx, action, &id, data, details).await?;
    let status = if change == MemberChange::Added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

#[utoipa::path(
    delete,
    path = "/teams/{id}/members/{user_id}",
    operation_id = "remove_team_member",
    tag = crate::http::openapi::tags::TEAMS,
    summary = "Take a user out of a team",
    params(
        ("id" = String, Path, description = "The team's id."),
        ("user_id" = String, Path, description = "The user's id."),
    ),
    responses((status = 204, description = "Removed.")),
)]
async fn remove_member(
    State(state): State<AppState>,
    org: OrgCtx,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    org.require(Permission::TeamsManage)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    store::require(&mut tx, &org.org_id, &id).await?;
    if !store::remove_member(&mut tx, &id, &user_id).await? {
        return Err(ApiError::not_found("team member"));
    }
    let team = store::require(&mut tx, &org.org_id, &id).await?;
    let view = full_view(&mut tx, &team).await?;
    let data = json!({ "team": view, "member": { "user_id": user_id } });
    let details = json!({ "user_id": user_id });
    announce(
        &state,
        &org,
        tx,
        actions::MEMBER_REMOVED,
        &id,
        data,
        details,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

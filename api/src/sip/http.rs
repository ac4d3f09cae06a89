//! REST for SIP: users, trunks, inbound routes, the SIP domain, and call control
//! (click-to-call, hangup, hold, resume, transfer). Every handler takes the organization from
//! the API key; another organization's ids answer 404. Passwords are write-only.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use callscope_sip::control::ControlError;
use callscope_sip::directory::{RingStrategy, RouteTarget};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::domains::{self, DomainError};
use super::routes::{self as sip_routes, Route, RouteError};
use super::trunks::{self, NewTrunk, TrunkError, TrunkWithAcl};
use super::users::{self, NewUser, Role, User, UserChange, UserError};
use super::{call_records, numbers};
use crate::auth::{Actor, OrgCtx};
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;

/// Routes relative to `/api/v1` (merged into the API router). `POST /calls` lives next to
/// `GET /calls` in `http::router`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(create_trunk, list_trunks))
        .routes(routes!(get_trunk, delete_trunk))
        .routes(routes!(create_route, list_routes))
        .routes(routes!(get_route, delete_route))
        .routes(routes!(get_domain, put_domain))
        .routes(routes!(hangup))
        .routes(routes!(hold))
        .routes(routes!(resume))
        .routes(routes!(transfer))
        .routes(routes!(pause_recording))
        .routes(routes!(resume_recording))
}

/// axum's JSON rejections (400 syntax, 415 content type, 422 shape) in our error format.
pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    match body {
        Ok(Json(v)) => Ok(v),
        Err(e) => {
            let status = e.status();
            let code = if status == StatusCode::UNPROCESSABLE_ENTITY {
                "validation_error"
            } else {
                "bad_request"
            };
            Err(ApiError::new(status, code, e.body_text()))
        }
    }
}

fn conflict(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, msg)
}

/// 204 when the delete removed the row, else 404 naming `what` (unknown id or another
/// organization's).
fn deleted(removed: bool, what: &str) -> ApiResult<StatusCode> {
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(what))
    }
}

/// The list envelope shared by every collection: `{"data": [view(row), ...]}`.
fn data_list<T>(rows: &[T], view: impl Fn(&T) -> Value) -> Json<Value> {
    Json(json!({ "data": rows.iter().map(view).collect::<Vec<_>>() }))
}

// ---------------------------------------------------------------- users

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    name: String,
    /// The user's extension (digits), also their SIP username.
    extension: String,
    /// The SIP and sign-in password (write-only).
    password: String,
    /// `agent` (the default), `supervisor`, `admin` or `owner`; never above the creator's own.
    role: Option<String>,
}

fn user_view(u: &User, realm: Option<&str>) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "extension": u.extension,
        "role": u.role,
        "sip": { "username": u.extension, "realm": realm },
        "last_call_ended_at": u.last_call_ended_at.map(ms_to_rfc3339),
        "created_at": ms_to_rfc3339(u.created_at),
    })
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::ExtensionTaken(_) => conflict("extension_taken", e.to_string()),
            UserError::InUse => conflict("user_in_use", e.to_string()),
            UserError::LastOwner => conflict("last_owner", e.to_string()),
            UserError::Db(e) => e.into(),
            UserError::Domain(d) => d.into(),
            UserError::Credential(super::credentials::CredentialError::Hash(h)) => {
                ApiError::internal(h)
            }
            other => ApiError::validation(other.to_string()),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidRealm => ApiError::validation(e.to_string()),
            DomainError::Taken(_) => conflict("realm_taken", e.to_string()),
            DomainError::HasUsers => conflict("realm_in_use", e.to_string()),
            DomainError::NoOrg => ApiError::not_found("organization"),
            DomainError::Db(e) => e.into(),
        }
    }
}

#[utoipa::path(
    post,
    path = "/users",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Create a user: an agent with an extension and SIP credentials",
    request_body = CreateUserBody,
    responses(
        (status = 201, description = "The user (the password is never returned).", body = Object),
        (status = 409, description = "The extension is taken (`extension_taken`)."),
    ),
)]
async fn create_user(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<CreateUserBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::UsersManage)?;
    let b = json_body(body)?;
    let role = match b.role.as_deref() {
        None => Role::Agent,
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::validation("role must be agent, supervisor, admin or owner")
        })?,
    };
    // A signed-in admin cannot make owners (nor anyone appoint above themselves); an API
    // key with `users.manage` is the organization's own integration and may.
    if let Actor::User { role: own, .. } = &org.actor
        && !own.may_assign(role)
    {
        return Err(ApiError::forbidden(Permission::UsersManage)
            .with_details(json!({ "role": role.as_str(), "reason": "above your own role" })));
    }
    let user = users::create_user(
        &state.pool,
        &org.org_id,
        &NewUser {
            name: &b.name,
            extension: b.extension.trim(),
            password: &b.password,
            role,
        },
    )
    .await?;
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::USER_CREATED,
        crate::audit::Target::new("user", &user.id),
        json!({ "extension": user.extension, "role": role.as_str() }),
    )
    .await;
    let realm = domains::realm_of_org(&state.pool, &org.org_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(user_view(&user, realm.as_deref())),
    ))
}

#[utoipa::path(
    get,
    path = "/users",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "The organization's users",
    responses(
        (status = 200, description = "`{data: [user]}`", body = Object),
    ),
)]
async fn list_users(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::UsersManage)?;
    let rows = users::list_users(&state.pool, &org.org_id).await?;
    let realm = domains::realm_of_org(&state.pool, &org.org_id).await?;
    Ok(data_list(&rows, |u| user_view(u, realm.as_deref())))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "A user",
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = Object),
    ),
)]
async fn get_user(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::UsersManage)?;
    let u = users::get_user(&state.pool, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let realm = domains::realm_of_org(&state.pool, &org.org_id).await?;
    Ok(Json(user_view(&u, realm.as_deref())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUserBody {
    name: Option<String>,
    /// `agent`, `supervisor`, `admin` or `owner`: never above the caller's own role, and not
    /// for a user whose role is above it.
    role: Option<String>,
    /// A new SIP and sign-in password (write-only); ends the user's browser sessions.
    password: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Change a user's name, role or password",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = UpdateUserBody,
    responses(
        (status = 200, description = "The user as changed.", body = Object),
        (status = 409, description = "The organization's last owner cannot stop being one (`last_owner`).", body = crate::http::openapi::ErrorBody),
    ),
)]
async fn update_user(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    body: Result<Json<UpdateUserBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::UsersManage)?;
    let b = json_body(body)?;
    let role = b
        .role
        .as_deref()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                ApiError::validation("role must be agent, supervisor, admin or owner")
            })
        })
        .transpose()?;
    let current = users::get_user(&state.pool, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    // A signed-in user changes only users at or below what they may appoint, and appoints
    // only up to that (an admin can neither demote an owner nor make one). An API key with
    // `users.manage` is the organization's own integration and may.
    if let Actor::User { role: own, .. } = &org.actor {
        let target_role = Role::parse(&current.role).unwrap_or(Role::Owner);
        for (which, r) in [("current", Some(target_role)), ("new", role)] {
            if let Some(r) = r
                && !own.may_assign(r)
            {
                return Err(ApiError::forbidden(Permission::UsersManage).with_details(
                    json!({ "role": r.as_str(), "which": which, "reason": "above your own role" }),
                ));
            }
        }
    }
    let user = users::update_user(
        &state.pool,
        &org.org_id,
        &id,
        &UserChange {
            name: b.name.as_deref(),
            role,
            password: b.password.as_deref(),
        },
    )
    .await?
    .ok_or_else(|| ApiError::not_found("user"))?;
    let mut changes = serde_json::Map::new();
    if b.name.is_some() {
        changes.insert(
            "name".into(),
            json!({ "from": current.name, "to": user.name }),
        );
    }
    if role.is_some() {
        changes.insert(
            "role".into(),
            json!({ "from": current.role, "to": user.role }),
        );
    }
    if b.password.is_some() {
        changes.insert("password_changed".into(), json!(true));
    }
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::USER_UPDATED,
        crate::audit::Target::new("user", &id),
        Value::Object(changes),
    )
    .await;
    let realm = domains::realm_of_org(&state.pool, &org.org_id).await?;
    Ok(Json(user_view(&user, realm.as_deref())))
}

#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Delete a user",
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 409, description = "The user is still referenced, e.g. by a route (`user_in_use`)."),
    ),
)]
async fn delete_user(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::UsersManage)?;
    let removed = users::delete_user(&state.pool, &org.org_id, &id).await?;
    if removed {
        crate::audit::record(
            &state.pool,
            &org,
            crate::audit::actions::USER_DELETED,
            crate::audit::Target::new("user", &id),
            json!({}),
        )
        .await;
    }
    deleted(removed, "user")
}

// ---------------------------------------------------------------- trunks

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTrunkBody {
    name: String,
    /// `host[:port]`
    host: String,
    /// `udp` (the default) or `tcp`.
    transport: Option<String>,
    /// Digest username for registering and outbound calls.
    username: Option<String>,
    /// Digest password (write-only).
    password: Option<String>,
    /// Addresses or CIDR ranges inbound calls may come from (at most 100).
    #[serde(default)]
    inbound_acl: Vec<String>,
}

pub fn trunk_view(t: &TrunkWithAcl) -> Value {
    json!({
        "id": t.trunk.id,
        "name": t.trunk.name,
        "host": t.trunk.host,
        "port": t.trunk.port,
        "transport": t.trunk.transport,
        "username": t.trunk.username,
        "has_password": t.trunk.has_password(),
        "inbound_acl": t.acl.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "created_at": ms_to_rfc3339(t.trunk.created_at),
    })
}

impl From<TrunkError> for ApiError {
    fn from(e: TrunkError) -> Self {
        match e {
            TrunkError::NameTaken(_) => conflict("trunk_name_taken", e.to_string()),
            TrunkError::Db(e) => e.into(),
            other => ApiError::validation(other.to_string()),
        }
    }
}

#[utoipa::path(
    post,
    path = "/trunks",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Create a SIP trunk",
    request_body = CreateTrunkBody,
    responses(
        (status = 201, description = "The trunk (its password is never returned: `has_password`).", body = Object),
        (status = 409, description = "The name is taken (`trunk_name_taken`)."),
    ),
)]
async fn create_trunk(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<CreateTrunkBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::TelephonyManage)?;
    let b = json_body(body)?;
    if b.inbound_acl.len() > 100 {
        return Err(ApiError::validation("at most 100 inbound_acl entries"));
    }
    let t = trunks::create_trunk(
        &state.pool,
        &org.org_id,
        &NewTrunk {
            name: &b.name,
            host: &b.host,
            transport: b.transport.as_deref().unwrap_or("udp"),
            username: b.username.as_deref(),
            password: b.password.as_deref(),
            inbound_acl: &b.inbound_acl,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(trunk_view(&t))))
}

#[utoipa::path(
    get,
    path = "/trunks",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "The organization's SIP trunks",
    responses(
        (status = 200, description = "`{data: [trunk]}`", body = Object),
    ),
)]
async fn list_trunks(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::TelephonyManage)?;
    let rows = trunks::list_trunks(&state.pool, &org.org_id).await?;
    Ok(data_list(&rows, trunk_view))
}

#[utoipa::path(
    get,
    path = "/trunks/{id}",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "A SIP trunk",
    params(("id" = String, Path, description = "The trunk's id.")),
    responses(
        (status = 200, description = "The trunk.", body = Object),
    ),
)]
async fn get_trunk(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::TelephonyManage)?;
    let t = trunks::get_trunk(&state.pool, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("trunk"))?;
    Ok(Json(trunk_view(&t)))
}

#[utoipa::path(
    delete,
    path = "/trunks/{id}",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Delete a SIP trunk",
    params(("id" = String, Path, description = "The trunk's id.")),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
async fn delete_trunk(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::TelephonyManage)?;
    deleted(
        trunks::delete_trunk(&state.pool, &org.org_id, &id).await?,
        "trunk",
    )
}

// ---------------------------------------------------------------- routes

/// Where an inbound call goes, told apart by `kind`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum TargetBody {
    /// One user, by `user_id` or `extension`.
    User {
        user_id: Option<String>,
        extension: Option<String>,
    },
    /// Several users rung together (`ring_all`, the default) or in turn (`longest_idle`).
    RingGroup {
        /// User ids or extensions.
        members: Vec<String>,
        /// `ring_all` or `longest_idle`.
        strategy: Option<String>,
        /// How long each member rings (default 20 s).
        member_timeout_s: Option<u32>,
        /// How long the group rings in all.
        total_timeout_s: Option<u32>,
    },
    /// A team's members, as they are when a call arrives, rung together (`ring_all`, the
    /// default) or in turn (`longest_idle`).
    Team {
        team_id: String,
        /// `ring_all` or `longest_idle`.
        strategy: Option<String>,
        /// How long each member rings (default 20 s).
        member_timeout_s: Option<u32>,
        /// How long the team rings in all (default: the member timeout for `ring_all`, a
        /// turn for every member present for `longest_idle`).
        total_timeout_s: Option<u32>,
    },
    /// Refuse the call with this SIP status.
    Reject { status: u16 },
}

fn ring_strategy(s: Option<&str>) -> Result<RingStrategy, ApiError> {
    match s {
        None => Ok(RingStrategy::RingAll),
        Some(s) => sip_routes::parse_strategy(s)
            .ok_or_else(|| ApiError::validation("strategy must be ring_all or longest_idle")),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateRouteBody {
    /// The inbound number, normalised to E.164.
    did: String,
    target: TargetBody,
}

pub const DEFAULT_MEMBER_TIMEOUT_S: u32 = 20;

/// A user of the organization named by id or extension.
pub async fn resolve_user(
    pool: &sqlx::SqlitePool,
    org_id: &str,
    id_or_extension: &str,
) -> Result<Option<User>, sqlx::Error> {
    let s = id_or_extension.trim();
    if users::is_valid_extension(s) {
        users::get_by_extension(pool, org_id, s).await
    } else {
        users::get_user(pool, org_id, s).await
    }
}

fn route_view(r: &Route) -> Value {
    json!({
        "id": r.id,
        "did": r.did,
        "target": r.target,
        "team_id": r.team_id,
        "created_at": ms_to_rfc3339(r.created_at),
    })
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::DidTaken(_) => conflict("did_taken", e.to_string()),
            RouteError::Db(e) => e.into(),
            other => ApiError::validation(other.to_string()),
        }
    }
}

#[utoipa::path(
    post,
    path = "/routes",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Route an inbound number (DID) to a user, a ring group, a team or a rejection",
    operation_id = "create_inbound_route",
    request_body = CreateRouteBody,
    responses(
        (status = 201, description = "The route.", body = Object),
        (status = 409, description = "The number already has a route (`did_taken`)."),
    ),
)]
async fn create_route(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<CreateRouteBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::TelephonyManage)?;
    let b = json_body(body)?;
    let region = state.config.sip.region(&state.config.default_region);
    let did =
        numbers::to_e164(&numbers::dialled_digits(&b.did), region).ok_or(RouteError::InvalidDid)?;
    let (pool, org_id) = (&state.pool, org.org_id.as_str());
    let user_ref = |r: String| async move {
        resolve_user(pool, org_id, &r)
            .await?
            .map(|u| u.id)
            .ok_or_else(|| ApiError::validation(format!("no user {r:?} in this organization")))
    };
    let target = match b.target {
        TargetBody::User { user_id, extension } => {
            let r = user_id
                .or(extension)
                .ok_or_else(|| ApiError::validation("a user target needs user_id or extension"))?;
            RouteTarget::User {
                user_id: user_ref(r).await?,
            }
        }
        TargetBody::RingGroup {
            members,
            strategy,
            member_timeout_s,
            total_timeout_s,
        } => {
            if members.len() > sip_routes::MAX_RING_GROUP_MEMBERS {
                return Err(RouteError::InvalidMembers.into());
            }
            let strategy = ring_strategy(strategy.as_deref())?;
            let mut ids = Vec::with_capacity(members.len());
            for m in members {
                ids.push(user_ref(m).await?);
            }
            let member_timeout_s = member_timeout_s.unwrap_or(DEFAULT_MEMBER_TIMEOUT_S);
            let total_timeout_s = total_timeout_s.unwrap_or(default_total_timeout(
                strategy,
                member_timeout_s,
                ids.len(),
            ));
            RouteTarget::RingGroup {
                members: ids,
                strategy,
                member_timeout_s,
                total_timeout_s,
            }
        }
        TargetBody::Team {
            team_id,
            strategy,
            member_timeout_s,
            total_timeout_s,
        } => {
            let r = sip_routes::create_team_route(
                &state.pool,
                &org.org_id,
                &did,
                &team_id,
                ring_strategy(strategy.as_deref())?,
                member_timeout_s.unwrap_or(DEFAULT_MEMBER_TIMEOUT_S),
                total_timeout_s,
            )
            .await?;
            return Ok((StatusCode::CREATED, Json(route_view(&r))));
        }
        TargetBody::Reject { status } => RouteTarget::Reject { status },
    };
    let r = sip_routes::create_route(&state.pool, &org.org_id, &did, &target).await?;
    Ok((StatusCode::CREATED, Json(route_view(&r))))
}

/// Ring-all rings everyone for the member timeout; longest-idle gives each member a turn.
pub fn default_total_timeout(strategy: RingStrategy, member_timeout_s: u32, members: usize) -> u32 {
    match strategy {
        RingStrategy::RingAll => member_timeout_s,
        RingStrategy::LongestIdle => member_timeout_s
            .saturating_mul(u32::try_from(members).unwrap_or(u32::MAX))
            .min(sip_routes::MAX_TIMEOUT_S),
    }
}

#[utoipa::path(
    get,
    path = "/routes",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "The organization's inbound routes",
    operation_id = "list_inbound_routes",
    responses(
        (status = 200, description = "`{data: [route]}`", body = Object),
    ),
)]
async fn list_routes(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::TelephonyManage)?;
    let rows = sip_routes::list_routes(&state.pool, &org.org_id).await?;
    Ok(data_list(&rows, route_view))
}

#[utoipa::path(
    get,
    path = "/routes/{id}",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "An inbound route",
    operation_id = "get_inbound_route",
    params(("id" = String, Path, description = "The route's id.")),
    responses(
        (status = 200, description = "The route.", body = Object),
    ),
)]
async fn get_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::TelephonyManage)?;
    let r = sip_routes::get_route(&state.pool, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("route"))?;
    Ok(Json(route_view(&r)))
}

#[utoipa::path(
    delete,
    path = "/routes/{id}",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Delete an inbound route",
    operation_id = "delete_inbound_route",
    params(("id" = String, Path, description = "The route's id.")),
    responses(
        (status = 204, description = "Deleted."),
    ),
)]
async fn delete_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::TelephonyManage)?;
    deleted(
        sip_routes::delete_route(&state.pool, &org.org_id, &id).await?,
        "route",
    )
}

// ---------------------------------------------------------------- SIP domain

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DomainBody {
    /// The SIP realm agents register under, e.g. `acme.example`.
    realm: String,
}

#[utoipa::path(
    get,
    path = "/sip/domain",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "The organization's SIP domain (realm), assigned on first read",
    responses(
        (status = 200, description = "`{realm}`", body = Object),
    ),
)]
async fn get_domain(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::TelephonyManage)?;
    let mut conn = state.pool.acquire().await?;
    let realm = domains::ensure_realm(&mut conn, &org.org_id).await?;
    Ok(Json(json!({ "realm": realm })))
}

#[utoipa::path(
    put,
    path = "/sip/domain",
    tag = crate::http::openapi::tags::TELEPHONY,
    summary = "Set the organization's SIP domain",
    request_body = DomainBody,
    responses(
        (status = 200, description = "`{realm}`", body = Object),
        (status = 409, description = "Another organization has the realm (`realm_taken`), or users registered under the current one (`realm_in_use`)."),
    ),
)]
async fn put_domain(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<DomainBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::TelephonyManage)?;
    let b = json_body(body)?;
    domains::set_realm(&state.pool, &org.org_id, &b.realm).await?;
    let realm = domains::realm_of_org(&state.pool, &org.org_id).await?;
    Ok(Json(json!({ "realm": realm })))
}

// ---------------------------------------------------------------- call control

fn control_error(e: ControlError) -> ApiError {
    match e {
        ControlError::NotFound => ApiError::not_found("call"),
        ControlError::InvalidState(why) => conflict("invalid_call_state", why),
        ControlError::Unreachable(why) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unreachable", why)
        }
        ControlError::Failed(why) => {
            tracing::warn!(error = %why, "call control failed");
            ApiError::new(StatusCode::BAD_GATEWAY, "call_control_failed", why)
        }
    }
}

fn control(state: &AppState) -> ApiResult<std::sync::Arc<dyn callscope_sip::control::CallControl>> {
    state.sip.control().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sip_disabled",
            "SIP is not enabled on this server ([sip] enabled = true)",
        )
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClickToCallBody {
    agent_user_id: Option<String>,
    agent_extension: Option<String>,
    number: String,
}

/// `POST /api/v1/calls`: ring the agent's phone, then dial `number` (an extension of the
/// organization or a phone number, normalised to E.164). 202 with the call's id: the call
/// record appears as the call progresses (call.* events).
#[utoipa::path(
    post,
    path = "/calls",
    tag = crate::http::openapi::tags::CALLS,
    summary = "Click-to-call: ring the agent, then dial the number",
    request_body = ClickToCallBody,
    responses((status = 202, description = "Dialling: `{id}` of the call to come.", body = Object)),
)]
pub async fn click_to_call(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<ClickToCallBody>, JsonRejection>,
) -> ApiResult<Response> {
    org.require(Permission::CallsControl)?;
    let b = json_body(body)?;
    let agent = match (&b.agent_user_id, &b.agent_extension) {
        (Some(id), None) => users::get_user(&state.pool, &org.org_id, id).await?,
        (None, Some(ext)) => users::get_by_extension(&state.pool, &org.org_id, ext.trim()).await?,
        _ => {
            return Err(ApiError::validation(
                "give exactly one of agent_user_id and agent_extension",
            ));
        }
    }
    .ok_or_else(|| {
        ApiError::validation("no such agent in this organization").with_code("unknown_agent")
    })?;
    // An agent places calls from their own phone only; those who see every call may ring
    // anyone's.
    if let Some(me) = org.user_id()
        && me != agent.id
    {
        org.require(Permission::CallsReadAll)?;
    }
    let dialled = numbers::dialled_digits(&b.number);
    let region = state.config.sip.region(&state.config.default_region);
    let number = if users::is_valid_extension(&dialled)
        && users::get_by_extension(&state.pool, &org.org_id, &dialled)
            .await?
            .is_some()
    {
        dialled
    } else {
        numbers::to_e164(&dialled, region).ok_or_else(|| {
            ApiError::validation(
                "number must be an extension of this organization or a valid phone number",
            )
            .with_code("invalid_number")
        })?
    };
    let ctl = control(&state)?;
    let id = ctl
        .click_to_call(&org.org_id, &agent.id, &number)
        .await
        .map_err(control_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "agent_user_id": agent.id, "number": number })),
    )
        .into_response())
}

/// How long a control request waits for the B2BUA before answering 202 anyway.
const CONTROL_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Run a hangup/hold/resume/transfer command in its own task. A refusal that comes quickly
/// (no such call, wrong state) is answered as an error; a command still running after
/// `CONTROL_WAIT` — a phone that is slow to answer a re-INVITE, say — gets 202 and finishes
/// on its own, its outcome arriving as call events. Without this, a phone that never answers
/// held the HTTP request open for the whole SIP transaction timeout.
async fn run_control<F>(command: &'static str, call_id: String, fut: F) -> ApiResult<StatusCode>
where
    F: std::future::Future<Output = callscope_sip::control::ControlResult<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = fut.await;
        if let Err(unsent) = tx.send(result)
            && let Err(e) = unsent
        {
            tracing::warn!(command, call_id = %call_id, error = %e, "call control failed after the request was answered");
        }
    });
    match tokio::time::timeout(CONTROL_WAIT, rx).await {
        Ok(Ok(result)) => result.map(|()| StatusCode::ACCEPTED).map_err(control_error),
        Ok(Err(_)) => Err(ApiError::internal(
            "call control task ended without a result",
        )),
        Err(_) => Ok(StatusCode::ACCEPTED),
    }
}

/// The call must be a SIP call this caller can see and control before the B2BUA is asked.
async fn own_sip_call(state: &AppState, org: &OrgCtx, call_id: &str) -> ApiResult<()> {
    org.require(Permission::CallsControl)?;
    crate::store::calls::get_visible_call(&state.pool, &org.call_access()?, call_id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    call_records::get(&state.pool, &org.org_id, call_id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("call"))
}

#[utoipa::path(
    post,
    path = "/calls/{id}/hangup",
    tag = crate::http::openapi::tags::CALLS,
    summary = "Hang up a live SIP call",
    params(("id" = String, Path, description = "The call's id.")),
    responses(
        (status = 202, description = "Hung up, or still under way (the outcome arrives as call events)."),
        (status = 409, description = "The call is not in a state for this (`invalid_call_state`)."),
        (status = 502, description = "The B2BUA failed to carry the command out (`call_control_failed`)."),
        (status = 503, description = "SIP is not enabled on this server (`sip_disabled`)."),
    ),
)]
async fn hangup(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    own_sip_call(&state, &org, &id).await?;
    let ctl = control(&state)?;
    let (org_id, call_id) = (org.org_id, id.clone());
    run_control(
        "hangup",
        id,
        async move { ctl.hangup(&org_id, &call_id).await },
    )
    .await
}

/// Pause or resume a live call's recording (e.g. while a card number is read out). The
/// paused interval is written as silence and stored as an event with its times at hangup.
async fn set_recording_paused(
    state: &AppState,
    org: &OrgCtx,
    id: &str,
    pause: bool,
) -> ApiResult<Json<Value>> {
    own_sip_call(state, org, id).await?;
    let engine = state.sip.media().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sip_disabled",
            "SIP is not enabled on this server ([sip] enabled = true)",
        )
    })?;
    // Pausing a paused recording (or resuming a running one) is a conflict, not a no-op:
    // the caller's idea of the state is wrong.
    if let Ok((true, paused)) = engine.recording_state(id)
        && paused == pause
    {
        return Err(conflict(
            "recording_state",
            if pause {
                "the recording is already paused"
            } else {
                "the recording is not paused"
            },
        ));
    }
    let result = if pause {
        engine.pause_recording(id)
    } else {
        engine.resume_recording(id)
    };
    use callscope_media::engine::EngineError;
    match result {
        Ok(()) => Ok(Json(
            json!({ "id": id, "recording": if pause { "paused" } else { "recording" } }),
        )),
        Err(EngineError::UnknownCall(_) | EngineError::CallEnded) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "call_not_live",
            "the call has no live media",
        )),
        Err(EngineError::NotRecording(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_recording",
            "the call is not being recorded",
        )),
        Err(EngineError::Recording(why)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "recording_state", why))
        }
        Err(other) => Err(ApiError::internal(other)),
    }
}

#[utoipa::path(
    post,
    path = "/calls/{id}/recording/pause",
    tag = crate::http::openapi::tags::CALLS,
    summary = "Pause a live call's recording (the gap is kept as silence)",
    params(("id" = String, Path, description = "The call's id.")),
    responses(
        (status = 200, description = "`{id, recording: \"paused\"}`", body = Object),
        (status = 409, description = "Already paused (`recording_state`), no live media (`call_not_live`) or not recorded (`not_recording`)."),
        (status = 503, description = "SIP is not enabled on this server (`sip_disabled`)."),
    ),
)]
async fn pause_recording(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_recording_paused(&state, &org, &id, true).await
}

#[utoipa::path(
    post,
    path = "/calls/{id}/recording/resume",
    tag = crate::http::openapi::tags::CALLS,
    summary = "Resume a live call's paused recording",
    params(("id" = String, Path, description = "The call's id.")),
    responses(
        (status = 200, description = "`{id, recording: \"recording\"}`", body = Object),
        (status = 409, description = "Not paused (`recording_state`), no live media (`call_not_live`) or not recorded (`not_recording`)."),
        (status = 503, description = "SIP is not enabled on this server (`sip_disabled`)."),
    ),
)]
async fn resume_recording(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_recording_paused(&state, &org, &id, false).await
}

#[utoipa::path(
    post,
    path = "/calls/{id}/hold",
    tag = crate::http::openapi::tags::CALLS,
    summary = "Put a live SIP call on hold",
    params(("id" = String, Path, description = "The call's id.")),
    responses(
        (status = 202, description = "Held, or still under way (the outcome arrives as call events)."),
        (status = 409, description = "The call is not in a state for this (`invalid_call_state`)."),
        (status = 502, description = "The B2BUA failed to carry the command out (`call_control_failed`)."),
        (status = 503, description = "SIP is not enabled on this server (`sip_disabled`)."),
    ),
)]
async fn hold(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    own_sip_call(&state, &org, &id).await?;
    let ctl = control(&state)?;
    let (org_id, call_id) = (org.org_id, id.clone());
    run_control("hold", id, async move { ctl.hold(&org_id, &call_id).await }).await
}

#[utoipa::path(
    post,
    path = "/calls/{id}/resume",
    tag = crate::http::openapi::tags::CALLS,
    summary = "Take a held SIP call off hold",
    params(("id" = String, Path, description = "The call's id.")),
    responses(
        (status = 202, description = "Resumed, or still under way (the outcome arrives as call events)."),
        (status = 409, description = "The call is not in a state for this (`invalid_call_state`)."),
        (status = 502, description = "The B2BUA failed to carry the command out (`call_control_failed`)."),
        (status = 503, description = "SIP is not enabled on this server (`sip_disabled`)."),
    ),
)]
async fn resume(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    own_sip_call(&state, &org, &id).await?;
    let ctl = control(&state)?;
    let (org_id, call_id) = (org.org_id, id.clone());
    run_control(
        "resume",
        id,
        async move { ctl.resume(&org_id, &call_id).await },
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    /// An extension of the organization or a phone number.
    target: String,
}

#[utoipa::path(
    post,
    path = "/calls/{id}/transfer",
    tag = crate::http::openapi::tags::CALLS,
    summary = "Transfer a live SIP call (blind) to an extension or a number",
    params(("id" = String, Path, description = "The call's id.")),
    request_body = TransferBody,
    responses(
        (status = 202, description = "Transferring (the outcome arrives as call events)."),
        (status = 409, description = "The call is not in a state for this (`invalid_call_state`)."),
        (status = 502, description = "The B2BUA failed to carry the command out (`call_control_failed`)."),
        (status = 503, description = "SIP is not enabled on this server (`sip_disabled`)."),
    ),
)]
async fn transfer(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    body: Result<Json<TransferBody>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let b = json_body(body)?;
    own_sip_call(&state, &org, &id).await?;
    let dialled = numbers::dialled_digits(&b.target);
    let region = state.config.sip.region(&state.config.default_region);
    let target = if users::is_valid_extension(&dialled) {
        dialled
    } else {
        numbers::to_e164(&dialled, region).ok_or_else(|| {
            ApiError::validation("target must be an extension or a valid phone number")
                .with_code("invalid_number")
        })?
    };
    let ctl = control(&state)?;
    let (org_id, call_id) = (org.org_id, id.clone());
    run_control("transfer", id, async move {
        ctl.transfer(&org_id, &call_id, &target).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_errors_map_to_statuses() {
        let cases = [
            (ControlError::NotFound, 404, "not_found"),
            (
                ControlError::InvalidState("ended".into()),
                409,
                "invalid_call_state",
            ),
            (
                ControlError::Unreachable("no contact".into()),
                422,
                "unreachable",
            ),
            (
                ControlError::Failed("socket".into()),
                502,
                "call_control_failed",
            ),
        ];
        for (e, status, code) in cases {
            let a = control_error(e);
            assert_eq!((a.status.as_u16(), a.code), (status, code));
        }
    }

    #[test]
    fn total_timeouts() {
        assert_eq!(default_total_timeout(RingStrategy::RingAll, 20, 5), 20);
        assert_eq!(default_total_timeout(RingStrategy::LongestIdle, 20, 5), 100);
        assert_eq!(
            default_total_timeout(RingStrategy::LongestIdle, 200, 5),
            600
        );
    }
}

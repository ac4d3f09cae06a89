//! `/api/v1/agent/*`: login with the organization's SIP domain, the extension and the
//! user's password; a session cookie (HttpOnly, SameSite=Strict) from then on; logout; who am
//! I; presence.
//!
//! State-changing calls take JSON bodies only: with a SameSite=Strict cookie no other site
//! sends the cookie at all, and a cross-site JSON POST would need a CORS preflight we never
//! grant.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::presence::{self, Presence};
use super::sessions::{self, AgentSession, COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::sip::credentials::{hash_password, verify_password};
use crate::sip::http::json_body;
use crate::sip::{domains, users};

/// Routes relative to `/api/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(put_presence))
        .routes(routes!(crate::agent::ws::agent_ws))
}

/// The agent behind a request's session cookie.
#[derive(Debug, Clone)]
pub struct AgentCtx {
    pub session: AgentSession,
    pub(super) token: String,
}

fn not_logged_in() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "not_logged_in",
        "no valid agent session (log in at /api/v1/agent/login)",
    )
}

impl FromRequestParts<AppState> for AgentCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(sessions::token_from_cookie_header)
            .ok_or_else(not_logged_in)?
            .to_string();
        let session = sessions::lookup(&state.pool, &token)
            .await?
            .ok_or_else(not_logged_in)?;
        Ok(AgentCtx { session, token })
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// The organization's SIP domain (e.g. "acme.example").
    domain: String,
    /// The agent's extension.
    extension: String,
    /// The agent's password.
    password: String,
}

/// A PHC string to verify against when the user does not exist, so an unknown extension
/// costs the same argon2 time as a wrong password (no user enumeration by timing).
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-used").unwrap_or_default())
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "unknown domain or extension, or wrong password",
    )
}

fn session_cookie(state: &AppState, token: &str, max_age_s: i64) -> HeaderValue {
    let secure = if state.config.agent.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let text =
        format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(super) async fn user_view(state: &AppState, session: &AgentSession) -> ApiResult<Value> {
    let user = users::get_user(&state.pool, &session.org_id, &session.user_id)
        .await?
        .ok_or_else(not_logged_in)?;
    let presence = presence::get(&state.pool, &session.org_id, &session.user_id).await?;
    Ok(json!({
        "user": { "id": user.id, "name": user.name, "extension": user.extension, "role": user.role },
        "presence": presence,
        "session_expires_at": crate::ids::ms_to_rfc3339(session.expires_at),
    }))
}

#[utoipa::path(
    post,
    path = "/agent/login",
    tag = crate::http::openapi::tags::AGENTS,
    summary = "Sign an agent in; sets the session cookie",
    security(()),
    request_body = LoginBody,
    responses(
        (status = 200, description = "`{user, presence, session_expires_at}`, with `Set-Cookie: callscope_session=...`.", body = Object),
        (status = 401, description = "Unknown domain or extension, or wrong password (`invalid_credentials`)."),
    ),
)]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> ApiResult<Response> {
    let body = json_body(body)?;
    if body.password.len() > 1024 || body.extension.len() > 64 || body.domain.len() > 255 {
        return Err(invalid_credentials());
    }
    let org = domains::org_by_realm(&state.pool, body.domain.trim()).await?;
    let user = match &org {
        Some(org_id) => users::get_by_extension(&state.pool, org_id, body.extension.trim()).await?,
        None => None,
    };
    let phc = user
        .as_ref()
        .map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
    let password = body.password;
    // argon2 is deliberately slow (tens of ms): off the async threads.
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(u) if matches => u,
        other => {
            metrics::counter!("callscope_agent_login_failures_total").increment(1);
            audit_failed_login(&state, org.as_deref(), other.as_ref(), &body.extension).await;
            return Err(invalid_credentials());
        }
    };
    crate::audit::record_as(
        &state.pool,
        &user.org_id,
        &crate::audit::AuditActor::User(user.id.clone()),
        crate::audit::actions::LOGIN_SUCCEEDED,
        crate::audit::Target::new("user", &user.id),
        json!({ "extension": user.extension }),
    )
    .await;
    let ttl_ms = i64::try_from(state.config.agent.session_ttl_hours)
        .unwrap_or(12)
        .saturating_mul(3_600_000);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let (token, expires_at) =
        sessions::create(&state.pool, &user.org_id, &user.id, ttl_ms, user_agent).await?;
    // A fresh login starts away: the agent chooses when calls may ring.
    if presence::get(&state.pool, &user.org_id, &user.id).await? == Presence::Offline {
        presence::set(
            &state.pool,
            &state.presence,
            &user.org_id,
            &user.id,
            Presence::Away,
        )
        .await?;
    }
    let session = AgentSession {
        org_id: user.org_id.clone(),
        user_id: user.id.clone(),
        expires_at,
    };
    let view = user_view(&state, &session).await?;
    let mut response = Json(view).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &token, ttl_ms / 1000),
    );
    Ok(response)
}

/// A failed sign-in is recorded in the organization whose domain was given (an unknown
/// domain belongs to no organization: only the log and the metric see it). Never the password.
async fn audit_failed_login(
    state: &AppState,
    org_id: Option<&str>,
    user: Option<&users::User>,
    extension: &str,
) {
    let Some(org_id) = org_id else {
        tracing::info!("agent login failed: unknown domain");
        return;
    };
    let extension: String = extension.trim().chars().take(64).collect();
    crate::audit::record_as(
        &state.pool,
        org_id,
        &crate::audit::AuditActor::Anonymous,
        crate::audit::actions::LOGIN_FAILED,
        crate::audit::Target {
            kind: "user",
            id: user.map(|u| u.id.as_str()),
        },
        json!({
            "extension": extension,
            "reason": if user.is_some() { "wrong_password" } else { "unknown_extension" },
        }),
    )
    .await;
}

#[utoipa::path(
    post,
    path = "/agent/logout",
    tag = crate::http::openapi::tags::AGENTS,
    summary = "Sign out: the session ends and the agent goes offline",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared."),
    ),
)]
async fn logout(State(state): State<AppState>, agent: AgentCtx) -> ApiResult<Response> {
    sessions::revoke(&state.pool, &agent.token).await?;
    crate::audit::record_as(
        &state.pool,
        &agent.session.org_id,
        &crate::audit::AuditActor::User(agent.session.user_id.clone()),
        crate::audit::actions::LOGOUT,
        crate::audit::Target::new("user", &agent.session.user_id),
        json!({}),
    )
    .await;
    presence::set(
        &state.pool,
        &state.presence,
        &agent.session.org_id,
        &agent.session.user_id,
        Presence::Offline,
    )
    .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/agent/me",
    tag = crate::http::openapi::tags::AGENTS,
    summary = "The signed-in agent, their presence and when the session expires",
    security(("session" = [])),
    responses(
        (status = 200, description = "`{user, presence, session_expires_at}`", body = Object),
    ),
)]
async fn me(State(state): State<AppState>, agent: AgentCtx) -> ApiResult<Json<Value>> {
    Ok(Json(user_view(&state, &agent.session).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    /// `available` or `away` (busy, wrap-up and offline are set by the server).
    status: String,
}

#[utoipa::path(
    put,
    path = "/agent/presence",
    tag = crate::http::openapi::tags::AGENTS,
    summary = "Set the agent's presence (available or away)",
    security(("session" = [])),
    request_body = PresenceBody,
    responses(
        (status = 200, description = "`{user, presence, session_expires_at}`", body = Object),
        (status = 409, description = "The agent is on a call (`on_a_call`)."),
    ),
)]
async fn put_presence(
    State(state): State<AppState>,
    agent: AgentCtx,
    body: Result<Json<PresenceBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let body = json_body(body)?;
    let wanted = Presence::parse(&body.status)
        .filter(|p| p.chosen_by_agent())
        .ok_or_else(|| ApiError::validation("status must be \"available\" or \"away\""))?;
    match presence::change_by_agent(
        &state.pool,
        &state.presence,
        &agent.session.org_id,
        &agent.session.user_id,
        wanted,
    )
    .await
    {
        Ok(()) => {}
        Err(presence::PresenceError::OnACall) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "on_a_call",
                "presence changes after the call ends",
            ));
        }
        Err(presence::PresenceError::Db(e)) => return Err(e.into()),
    }
    // The agent's open softphones show it at once.
    state.agents.send_to_user(
        &agent.session.user_id,
        &super::hub::ServerMessage::Presence { status: wanted },
    );
    Ok(Json(user_view(&state, &agent.session).await?))
}

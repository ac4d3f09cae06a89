//! Teams: named groups of users within an organization.
//!
//! A team is three things at once, as contact centres use the word:
//! - a **queue**: a conversation may be assigned to a team (`conversations.team_id`), the
//!   inbox filters by it, and a channel may put its new conversations in a team;
//! - a **ring group that follows its membership**: an inbound route may ring a team, and the
//!   members are read when the call arrives (`sip::routes`);
//! - a **visibility scope**: a team's leads see the calls of its members, in every call read
//!   (`store::calls::CallAccess`), without seeing the whole organization's.
//!
//! Changes are audited and announced as `team.*` events (webhooks and the realtime socket).

pub mod routes;
pub mod store;

use axum::http::StatusCode;
use serde_json::json;

use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::store::calls::CallAccess;
use crate::webhooks::WebhookError;

pub use routes::routes;

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Another team of the organization has the name (its id).
    #[error("another team has this name")]
    NameTaken(String),
    /// Inbound routes ring the team (their ids).
    #[error("inbound routes ring this team")]
    InUse(Vec<String>),
    #[error("{0}")]
    Limit(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("webhook outbox: {0}")]
    Webhook(#[from] WebhookError),
}

impl TeamError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<TeamError> for ApiError {
    fn from(e: TeamError) -> Self {
        match e {
            TeamError::Invalid { field, message } => {
                ApiError::validation(format!("{field}: {message}"))
                    .with_details(json!({ "field": field, "message": message }))
            }
            TeamError::NotFound(what) => ApiError::not_found(what),
            TeamError::NameTaken(id) => ApiError::new(
                StatusCode::CONFLICT,
                "team_name_taken",
                "another team of the organization has this name",
            )
            .with_details(json!({ "field": "name", "existing_id": id })),
            TeamError::InUse(routes) => ApiError::new(
                StatusCode::CONFLICT,
                "team_in_use",
                "inbound routes ring this team; change or delete them first",
            )
            .with_details(json!({ "route_ids": routes })),
            TeamError::Limit(msg) => ApiError::new(StatusCode::CONFLICT, "limit_reached", msg),
            TeamError::Db(e) => ApiError::internal(e),
            TeamError::Webhook(e) => ApiError::internal(e),
        }
    }
}

/// `access` narrowed to a team of the organization (404 for any other id).
pub async fn narrow_access(
    state: &AppState,
    org: &OrgCtx,
    access: CallAccess,
    team_id: Option<&str>,
) -> ApiResult<CallAccess> {
    let Some(team) = team_id else {
        return Ok(access);
    };
    let mut conn = state.pool.acquire().await?;
    if store::get(&mut conn, &org.org_id, team).await?.is_none() {
        return Err(ApiError::not_found("team"));
    }
    Ok(access.in_team(team))
}

//! CRM: contacts (several phones and emails, tags, custom attributes, consent per channel, a
//! company), companies, search by any phone format, email or name, merging duplicates,
//! erasing a contact with everything that belongs to it, notes and tasks (typed by hand or
//! made from the analysis's action items). Every function is scoped by organization; every
//! change and its webhook event commit in one transaction.

pub mod action_tasks;
pub mod body;
pub mod companies;
pub mod contact_routes;
pub mod contacts;
pub mod erase;
pub mod merge;
pub mod notes;
pub mod query;
pub mod settings;
pub mod tasks;
pub mod validate;

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::state::AppState;
use crate::webhooks::WebhookError;

pub const CONTACT_CREATED: &str = "contact.created";
pub const CONTACT_UPDATED: &str = "contact.updated";
pub const CONTACT_MERGED: &str = "contact.merged";
pub const CONTACT_DELETED: &str = "contact.deleted";
pub const NOTE_CREATED: &str = "note.created";
pub const TASK_CREATED: &str = "task.created";
pub const TASK_COMPLETED: &str = "task.completed";

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// Input that fails validation (422).
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A phone, email, external id or domain another record of the organization already has.
    #[error("{message}")]
    Conflict {
        message: String,
        details: serde_json::Value,
    },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("webhook: {0}")]
    Webhook(#[from] WebhookError),
}

impl CrmError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

impl From<CrmError> for ApiError {
    fn from(e: CrmError) -> Self {
        match e {
            CrmError::Invalid(m) => ApiError::validation(m),
            CrmError::NotFound(what) => ApiError::not_found(what),
            CrmError::Conflict { message, details } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message).with_details(details)
            }
            CrmError::Db(e) => ApiError::internal(e),
            CrmError::Webhook(e) => e.into(),
        }
    }
}

pub type CrmResult<T> = Result<T, CrmError>;

/// The CRM's routes (under `/api/v1`). `GET /contacts/{id}` and its timeline are in the
/// router already (crate::http::contacts); these add the other methods.
pub fn routes() -> OpenApiRouter<AppState> {
    use contact_routes as c;
    OpenApiRouter::new()
        .routes(routes!(c::list_contacts, c::create_contact))
        .routes(routes!(c::update_contact, c::delete_contact))
        .routes(routes!(c::merge_contact))
        .routes(routes!(companies::list_route, companies::create_route))
        .routes(routes!(
            companies::get_route,
            companies::update_route,
            companies::delete_route
        ))
        .routes(routes!(companies::contacts_route))
        .routes(routes!(notes::list_route, notes::create_route))
        .routes(routes!(
            notes::get_route,
            notes::update_route,
            notes::delete_route
        ))
        .routes(routes!(tasks::list_route, tasks::create_route))
        .routes(routes!(
            tasks::get_route,
            tasks::update_route,
            tasks::delete_route
        ))
        .routes(routes!(tasks::complete_route))
        .routes(routes!(action_tasks::create_route))
        .routes(routes!(settings::get_route, settings::put_route))
}

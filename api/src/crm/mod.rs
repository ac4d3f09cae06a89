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

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

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
pub fn routes() -> Router<AppState> {
    use contact_routes as c;
    Router::new()
        .route("/contacts", get(c::list_contacts).post(c::create_contact))
        .route(
            "/contacts/{id}",
            axum::routing::patch(c::update_contact).delete(c::delete_contact),
        )
        .route("/contacts/{id}/merge", post(c::merge_contact))
        .route(
            "/companies",
            get(companies::list_route).post(companies::create_route),
        )
        .route(
            "/companies/{id}",
            get(companies::get_route)
                .patch(companies::update_route)
                .delete(companies::delete_route),
        )
        .route("/companies/{id}/contacts", get(companies::contacts_route))
        .route("/notes", get(notes::list_route).post(notes::create_route))
        .route(
            "/notes/{id}",
            get(notes::get_route)
                .patch(notes::update_route)
                .delete(notes::delete_route),
        )
        .route("/tasks", get(tasks::list_route).post(tasks::create_route))
        .route(
            "/tasks/{id}",
            get(tasks::get_route)
                .patch(tasks::update_route)
                .delete(tasks::delete_route),
        )
        .route("/tasks/{id}/complete", post(tasks::complete_route))
        .route(
            "/calls/{id}/action-items/{index}/task",
            post(action_tasks::create_route),
        )
        .route(
            "/settings/crm",
            get(settings::get_route).put(settings::put_route),
        )
}

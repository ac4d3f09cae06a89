//! The audit log: who did what, when and from where (sign-ins, setting changes, recording
//! plays and downloads, transcript downloads, exports, deletions, purges).
//!
//! Handlers write an entry with one call to [`record`] (an authenticated caller) or
//! [`record_as`] (a sign-in, where nobody is authenticated yet, or the purge, which is the
//! system). The client's address comes from a task-local that [`capture_client_ip`] sets for
//! the request, so call sites need not thread it through. Writing an entry never fails the
//! request it describes: a failed write is logged at error level (the action already happened,
//! and refusing to answer would not undo it).

pub mod routes;
pub mod store;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use sqlx::SqlitePool;

use crate::auth::{Actor, OrgCtx};

pub use store::{AuditEntry, AuditFilter};

tokio::task_local! {
    static CLIENT_IP: Option<String>;
}

/// Middleware: remembers the peer address of the connection for [`record`] while the request
/// is handled. (Not `X-Forwarded-For`: a header any client can set is not evidence.)
pub async fn capture_client_ip(req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    CLIENT_IP.scope(ip, next.run(req)).await
}

/// The address of the request being handled, when known.
pub fn client_ip() -> Option<String> {
    CLIENT_IP.try_with(Clone::clone).ok().flatten()
}

/// Who an entry is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditActor {
    User(String),
    ApiKey(String),
    /// callscope itself (the scheduled purge).
    System,
    /// Nobody authenticated (a failed sign-in).
    Anonymous,
}

impl AuditActor {
    pub fn of(org: &OrgCtx) -> Self {
        match &org.actor {
            Actor::User { id, .. } => AuditActor::User(id.clone()),
            Actor::ApiKey { id } => AuditActor::ApiKey(id.clone()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AuditActor::User(_) => "user",
            AuditActor::ApiKey(_) => "api_key",
            AuditActor::System => "system",
            AuditActor::Anonymous => "anonymous",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            AuditActor::User(id) | AuditActor::ApiKey(id) => Some(id),
            AuditActor::System | AuditActor::Anonymous => None,
        }
    }
}

/// What an entry is about: a type ("call", "user", "settings"…) and an id.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub kind: &'a str,
    pub id: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub fn new(kind: &'a str, id: &'a str) -> Self {
        Target { kind, id: Some(id) }
    }

    /// A target without an id of its own (an organization's settings).
    pub fn kind(kind: &'a str) -> Self {
        Target { kind, id: None }
    }
}

/// Records `action` by the authenticated caller. Never fails the caller; see the module doc.
pub async fn record(
    pool: &SqlitePool,
    org: &OrgCtx,
    action: &str,
    target: Target<'_>,
    details: Value,
) {
    record_as(
        pool,
        &org.org_id,
        &AuditActor::of(org),
        action,
        target,
        details,
    )
    .await
}

/// Records `action` by `actor` in `org_id`.
pub async fn record_as(
    pool: &SqlitePool,
    org_id: &str,
    actor: &AuditActor,
    action: &str,
    target: Target<'_>,
    details: Value,
) {
    let ip = client_ip();
    if let Err(e) =
        store::insert(pool, org_id, actor, action, target, &details, ip.as_deref()).await
    {
        tracing::error!(org_id, action, error = %e, "could not write an audit entry");
    }
}

/// Actions written by callscope, for docs and filters (the column takes any string so a
/// newer version's entries still read).
pub mod actions {
    pub const LOGIN_SUCCEEDED: &str = "auth.login.succeeded";
    pub const LOGIN_FAILED: &str = "auth.login.failed";
    pub const LOGOUT: &str = "auth.logout";
    pub const RETENTION_SETTINGS_UPDATED: &str = "settings.retention.updated";
    pub const RECORDING_SETTINGS_UPDATED: &str = "settings.recording.updated";
    pub const ANALYSIS_SETTINGS_UPDATED: &str = "settings.analysis.updated";
    pub const CRM_SETTINGS_UPDATED: &str = "settings.crm.updated";
    pub const WEBHOOK_ENDPOINT_CREATED: &str = "webhook_endpoint.created";
    pub const WEBHOOK_ENDPOINT_DELETED: &str = "webhook_endpoint.deleted";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_REVOKED: &str = "api_key.revoked";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_DELETED: &str = "user.deleted";
    pub const USER_UPDATED: &str = "user.updated";
    pub const RECORDING_DOWNLOADED: &str = "recording.downloaded";
    pub const RECORDING_PLAYED: &str = "recording.played";
    pub const TRANSCRIPT_DOWNLOADED: &str = "transcript.downloaded";
    pub const LEGAL_HOLD_SET: &str = "call.legal_hold.set";
    pub const LEGAL_HOLD_RELEASED: &str = "call.legal_hold.released";
    pub const CONTACT_DELETED: &str = "contact.deleted";
    pub const RETENTION_PURGE: &str = "retention.purge";
    pub const CALLS_EXPORTED: &str = "export.calls_csv";
    pub const QUOTA_SETTINGS_UPDATED: &str = "settings.quota.updated";
}

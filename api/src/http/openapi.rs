//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers themselves.
//!
//! Every route is registered through `utoipa_axum`'s `OpenApiRouter` with `routes!`, which
//! takes the path and method from the handler's `#[utoipa::path]` annotation: a route cannot
//! be served without being documented, and a documented path cannot differ from the served
//! one. `api/tests/openapi.rs` checks the rest (the document validates, every documented
//! operation is routed, nothing is registered around `routes!`).
//!
//! What every operation shares is added here once rather than on ~120 annotations: the
//! error responses in the one `{error, code, details}` shape, the rate-limit headers and the
//! two ways to authenticate.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr};
use utoipa::{OpenApi as _, ToSchema};

/// The error body of every failed request.
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only: errors are built by `crate::error::ApiError`.
pub struct ErrorBody {
    /// Human-readable message.
    error: String,
    /// Stable machine-readable code, e.g. `not_found`, `validation_error`, `rate_limited`.
    code: String,
    /// Structured context (the missing permission, the offending field...), or null.
    details: serde_json::Value,
}

/// Tag names, so annotations cannot misspell a group.
pub mod tags {
    pub const CALLS: &str = "calls";
    pub const RECORDINGS: &str = "recordings";
    pub const CONTACTS: &str = "contacts";
    pub const CONVERSATIONS: &str = "conversations";
    pub const TEAMS: &str = "teams";
    pub const CHANNELS: &str = "channels";
    pub const NOTES_TASKS: &str = "notes and tasks";
    pub const TELEPHONY: &str = "telephony";
    pub const AGENTS: &str = "agents";
    pub const ANALYSIS: &str = "analysis";
    pub const ANALYTICS: &str = "analytics";
    pub const WEBHOOKS: &str = "webhooks";
    pub const ADMIN: &str = "administration";
    pub const REALTIME: &str = "realtime";
    pub const SERVICE: &str = "service";
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "callscope",
        description = "Telephony and call intelligence: calls, recordings, transcripts and \
            insights; contacts, conversations and messages on one timeline. Authenticate with \
            an API key (`Authorization: Bearer cs_...`) or an agent's session cookie. Errors \
            are `{error, code, details}`. POSTs that create things accept `Idempotency-Key`.",
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The base document (title, shared schemas) that the routers' paths are merged into.
pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Fills in what every operation shares. `public` operations (health, the softphone page,
/// signed inbound webhooks, sign-in) are left without a security requirement.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An organization's API key (`cs_...`)."))
                .build(),
        ),
    );
    components.add_security_scheme(
        "api_key_header",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "The same API key in its own header.",
        ))),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "cs_session",
            "An agent's session, from `POST /api/v1/agent/login`.",
        ))),
    );
    unique_operation_ids(&mut doc);
    for (path, item) in doc.paths.paths.iter_mut() {
        for (_, op) in operations_mut(item) {
            add_shared_responses(path, op);
        }
    }
    doc
}

/// OpenAPI requires operation ids to be unique; utoipa takes them from handler names, and
/// modules reuse names such as `list_route`. A repeated id becomes `<method>_<path words>`
/// (`get_api_v1_notes_id`), so clients generated from the document get distinct methods.
fn unique_operation_ids(doc: &mut OpenApi) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for item in doc.paths.paths.values() {
        for op in operations_of(item) {
            if let Some(id) = &op.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations_mut(item) {
            let repeated = op
                .operation_id
                .as_ref()
                .is_none_or(|id| seen.get(id).copied().unwrap_or(0) > 1);
            if repeated {
                let words: Vec<&str> = path
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .collect();
                op.operation_id = Some(format!("{method}_{}", words.join("_")));
            }
        }
    }
}

fn operations_of(item: &utoipa::openapi::PathItem) -> impl Iterator<Item = &Operation> {
    [&item.get, &item.put, &item.post, &item.delete, &item.patch]
        .into_iter()
        .filter_map(Option::as_ref)
}

/// The operations of a path with their method names, for editing.
fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

fn add_shared_responses(path: &str, op: &mut Operation) {
    // `security(())` in an annotation: no credential needed. Another declared requirement
    // (the agent's routes take the session cookie only) is kept as it is.
    let authenticated = !op.security.as_ref().is_some_and(|s| {
        s.iter()
            .any(|r| *r == utoipa::openapi::security::SecurityRequirement::default())
    });
    if op.security.is_none() {
        op.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("api_key", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new(
                "api_key_header",
                Vec::<String>::new(),
            ),
            utoipa::openapi::security::SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
    }
    let mut errors: Vec<(&str, &str)> = vec![
        ("400", "The request is malformed."),
        ("422", "The request is well-formed but invalid."),
        ("500", "An internal error (logged on the server)."),
    ];
    if authenticated {
        errors.push(("401", "Missing, invalid, expired or revoked credential."));
        errors.push(("403", "The credential lacks the permission this needs."));
        errors.push(("429", "Too many requests with this credential."));
    }
    if op.request_body.is_some() {
        errors.push(("413", "The body is larger than this operation accepts."));
        errors.push((
            "415",
            "The body's content type is not one this operation accepts.",
        ));
    }
    if path.contains('{') {
        errors.push(("404", "Not found in the caller's organization."));
    }
    let responses = &mut op.responses.responses;
    for (status, description) in errors {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error_response(description)));
    }
    if authenticated {
        for (status, response) in responses.iter_mut() {
            if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                add_rate_limit_headers(response);
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn add_rate_limit_headers(response: &mut utoipa::openapi::Response) {
    let header = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Integer),
            ))
            .description(Some(description))
            .build()
    };
    for (name, description) in [
        (
            "X-RateLimit-Limit",
            "Requests allowed a minute with this credential.",
        ),
        (
            "X-RateLimit-Remaining",
            "Requests left in the current window.",
        ),
        ("X-RateLimit-Reset", "Seconds until the window resets."),
    ] {
        response
            .headers
            .entry(name.to_string())
            .or_insert_with(|| RefOr::T(header(description)));
    }
}

/// The served document, built once from the same routers the server runs.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let doc = finish(super::documented_routes().split_for_parts().1);
        doc.to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tags::SERVICE,
    security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json")),
)]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

const DOCS_HTML: &str = include_str!("../../web/api-docs/index.html");
const DOCS_JS: &str = include_str!("../../web/api-docs/docs.js");
const DOCS_CSS: &str = include_str!("../../web/api-docs/docs.css");

/// `GET /api/v1/docs`: the document rendered for people, from files compiled in (no CDN).
#[utoipa::path(
    get,
    path = "/docs",
    tag = tags::SERVICE,
    security(()),
    responses((status = 200, description = "Browsable API reference.", content_type = "text/html")),
)]
pub async fn docs_page() -> Response {
    crate::web::asset("text/html; charset=utf-8", DOCS_HTML)
}

/// `GET /api/v1/docs/docs.js`: the reference page's script.
#[utoipa::path(
    get,
    path = "/docs/docs.js",
    tag = tags::SERVICE,
    security(()),
    responses((status = 200, description = "The reference page's script.", content_type = "text/javascript")),
)]
pub async fn docs_script() -> Response {
    crate::web::asset("text/javascript; charset=utf-8", DOCS_JS)
}

/// `GET /api/v1/docs/docs.css`: the reference page's style sheet.
#[utoipa::path(
    get,
    path = "/docs/docs.css",
    tag = tags::SERVICE,
    security(()),
    responses((status = 200, description = "The reference page's style sheet.", content_type = "text/css")),
)]
pub async fn docs_style() -> Response {
    crate::web::asset("text/css; charset=utf-8", DOCS_CSS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn operation_ids_are_unique() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).expect("json");
        let mut ids = std::collections::HashSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"]
                    .as_str()
                    .expect("every operation has an id");
                assert!(ids.insert(id.to_string()), "{id} twice");
            }
        }
    }

    #[test]
    fn the_document_is_json_with_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).expect("json");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/api/v1/calls/{id}"]["get"].is_object());
    }

    #[test]
    fn a_declared_requirement_is_kept_and_a_public_operation_stays_public() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).expect("json");
        let me = &doc["paths"]["/api/v1/agent/me"]["get"];
        assert_eq!(me["security"], serde_json::json!([{ "session": [] }]));
        assert!(me["responses"]["401"].is_object(), "{me}");
        let login = &doc["paths"]["/api/v1/agent/login"]["post"];
        assert_eq!(login["security"], serde_json::json!([{}]));
        assert!(login["responses"]["429"].is_null(), "{login}");
        let calls = &doc["paths"]["/api/v1/calls"]["get"]["security"];
        assert_eq!(calls.as_array().map(Vec::len), Some(3), "{calls}");
    }
}

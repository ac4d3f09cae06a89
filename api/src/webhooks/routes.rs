//! HTTP surface for webhook endpoints and deliveries. Every handler takes the organization
//! from the API key; another organization's ids answer 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::endpoints::{Endpoint, NewEndpoint, create_endpoint, delete_endpoint, list_endpoints};
use super::outbox::{list_deliveries, redeliver};
use crate::auth::{HasPool, OrgCtx};
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;

/// Mounted at the root of the server, hence the full paths.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_handler, list_handler))
        .routes(routes!(delete_handler))
        .routes(routes!(deliveries_handler))
        .routes(routes!(redeliver_handler))
}

/// `events` may be a list or the single string `"*"`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookEvents)]
#[serde(untagged)]
enum EventsField {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WebhookEndpointInput)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Where events are POSTed (http or https).
    url: String,
    /// Event names (`contact.created`, `message.created`...) or `"*"` for every event (the
    /// default).
    events: Option<EventsField>,
    /// The signing secret; generated when absent.
    secret: Option<String>,
    description: Option<String>,
}

/// Keep axum's status (400 syntax, 415 content type, 422 wrong shape) in our error format.
fn json_rejection(e: axum::extract::rejection::JsonRejection) -> ApiError {
    let status = e.status();
    let code = match status {
        StatusCode::UNPROCESSABLE_ENTITY => "validation_error",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "bad_request",
    };
    ApiError::new(status, code, e.body_text())
}

fn endpoint_json(e: &Endpoint) -> serde_json::Value {
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "secret_prefix": e.secret_prefix,
        "description": e.description,
        "created_at": ms_to_rfc3339(e.created_at),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/webhook-endpoints",
    operation_id = "create_webhook_endpoint",
    tag = crate::http::openapi::tags::WEBHOOKS,
    summary = "Register a webhook endpoint",
    description = "Events are POSTed to `url`, signed with the endpoint's secret, and retried \
        with backoff until the receiver answers 2xx.",
    request_body = CreateBody,
    responses((status = 201, description = "The endpoint, with its `secret` (shown in this response only).", body = Object)),
)]
async fn create_handler(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    org.require(Permission::WebhooksManage)?;
    let Json(body) = body.map_err(json_rejection)?;
    let events = match body.events {
        None => vec!["*".to_string()],
        Some(EventsField::One(s)) => vec![s],
        Some(EventsField::Many(v)) => v,
    };
    let created = create_endpoint(
        state.pool(),
        &org.org_id,
        NewEndpoint {
            url: body.url,
            events,
            secret: body.secret,
            description: body.description,
        },
    )
    .await?;
    // The host only: a URL's path, query or user info may carry a token.
    let host = reqwest::Url::parse(&created.endpoint.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    crate::audit::record(
        state.pool(),
        &org,
        crate::audit::actions::WEBHOOK_ENDPOINT_CREATED,
        crate::audit::Target::new("webhook_endpoint", &created.endpoint.id),
        json!({ "host": host, "events": created.endpoint.events }),
    )
    .await;
    let mut out = endpoint_json(&created.endpoint);
    // The only response that ever carries the secret.
    out["secret"] = json!(created.secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/webhook-endpoints",
    operation_id = "list_webhook_endpoints",
    tag = crate::http::openapi::tags::WEBHOOKS,
    summary = "The organization's webhook endpoints",
    responses((status = 200, description = "`{data: [{id, url, events, secret_prefix, description, created_at}]}`", body = Object)),
)]
async fn list_handler(
    State(state): State<AppState>,
    org: OrgCtx,
) -> ApiResult<Json<serde_json::Value>> {
    org.require(Permission::WebhooksManage)?;
    let endpoints = list_endpoints(state.pool(), &org.org_id).await?;
    Ok(Json(
        json!({ "data": endpoints.iter().map(endpoint_json).collect::<Vec<_>>() }),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhook-endpoints/{id}",
    operation_id = "delete_webhook_endpoint",
    tag = crate::http::openapi::tags::WEBHOOKS,
    summary = "Delete a webhook endpoint",
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses((status = 204, description = "Deleted.")),
)]
async fn delete_handler(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::WebhooksManage)?;
    if delete_endpoint(state.pool(), &org.org_id, &id).await? {
        crate::audit::record(
            state.pool(),
            &org,
            crate::audit::actions::WEBHOOK_ENDPOINT_DELETED,
            crate::audit::Target::new("webhook_endpoint", &id),
            json!({}),
        )
        .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook endpoint"))
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Deliveries a page, 1 to 200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/webhook-endpoints/{id}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = crate::http::openapi::tags::WEBHOOKS,
    summary = "An endpoint's deliveries and their attempts, newest first",
    params(("id" = String, Path, description = "The endpoint's id."), PageQuery),
    responses((status = 200, description = "`{data: [delivery], next_cursor}`", body = Object)),
)]
async fn deliveries_handler(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    org.require(Permission::WebhooksManage)?;
    let Query(page) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit: must be between 1 and 200"));
    }
    let deliveries = list_deliveries(
        state.pool(),
        &org.org_id,
        &id,
        limit,
        page.before.as_deref(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    let next_cursor = (deliveries.len() as i64 == limit)
        .then(|| deliveries.last().map(|d| d.id.clone()))
        .flatten();
    Ok(Json(
        json!({ "data": deliveries, "next_cursor": next_cursor }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/webhook-deliveries/{id}/redeliver",
    operation_id = "redeliver_webhook_delivery",
    tag = crate::http::openapi::tags::WEBHOOKS,
    summary = "Send a delivery again (also one that went dead)",
    params(("id" = String, Path, description = "The delivery's id.")),
    responses(
        (status = 202, description = "The delivery, pending again with a fresh retry cycle.", body = Object),
        (status = 409, description = "An attempt is in flight right now (`delivery_in_flight`).", body = crate::http::openapi::ErrorBody),
    ),
)]
async fn redeliver_handler(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    org.require(Permission::WebhooksManage)?;
    let delivery = redeliver(state.pool(), &org.org_id, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}

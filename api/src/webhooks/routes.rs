//! HTTP surface for webhook endpoints and deliveries. Every handler takes the organization
//! from the API key; another organization's ids answer 404.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::endpoints::{Endpoint, NewEndpoint, create_endpoint, delete_endpoint, list_endpoints};
use super::outbox::{list_deliveries, redeliver};
use crate::auth::{HasPool, OrgCtx};
use crate::error::{ApiError, ApiResult};
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;

pub fn routes<S>() -> Router<S>
where
    S: HasPool + Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/api/v1/webhook-endpoints",
            post(create_handler::<S>).get(list_handler::<S>),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}",
            delete(delete_handler::<S>),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}/deliveries",
            get(deliveries_handler::<S>),
        )
        .route(
            "/api/v1/webhook-deliveries/{id}/redeliver",
            post(redeliver_handler::<S>),
        )
}

/// `events` may be a list or the single string `"*"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum EventsField {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    events: Option<EventsField>,
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

async fn create_handler<S: HasPool + Send + Sync>(
    State(state): State<S>,
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

async fn list_handler<S: HasPool + Send + Sync>(
    State(state): State<S>,
    org: OrgCtx,
) -> ApiResult<Json<serde_json::Value>> {
    org.require(Permission::WebhooksManage)?;
    let endpoints = list_endpoints(state.pool(), &org.org_id).await?;
    Ok(Json(
        json!({ "data": endpoints.iter().map(endpoint_json).collect::<Vec<_>>() }),
    ))
}

async fn delete_handler<S: HasPool + Send + Sync>(
    State(state): State<S>,
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

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<i64>,
    before: Option<String>,
}

async fn deliveries_handler<S: HasPool + Send + Sync>(
    State(state): State<S>,
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

async fn redeliver_handler<S: HasPool + Send + Sync>(
    State(state): State<S>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    org.require(Permission::WebhooksManage)?;
    let delivery = redeliver(state.pool(), &org.org_id, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}

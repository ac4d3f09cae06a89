//! Companies: name, domain, custom attributes; the contacts that work there.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::SqliteConnection;

use super::body::{self, nullable};
use super::contact_routes::{PageQuery, contact_page};
use super::contacts::ContactFilter;
use super::contacts::ContactView;
use super::validate::{self, MAX_NAME_CHARS};
use super::{CrmError, CrmResult};
use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::cursor;
use crate::http::lists::CursorPage;
use crate::http::state::AppState;
use crate::ids::{ms_to_rfc3339, new_id, now_ms};
use crate::permissions::Permission;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CompanyRow {
    pub id: String,
    pub name: String,
    pub domain: Option<String>,
    pub attributes: String,
    pub created_at: i64,
    pub updated_at: i64,
}

fn view(c: &CompanyRow) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "domain": c.domain,
        "attributes": serde_json::from_str::<Value>(&c.attributes).unwrap_or_else(|_| json!({})),
        "created_at": ms_to_rfc3339(c.created_at),
        "updated_at": ms_to_rfc3339(c.updated_at),
    })
}

pub async fn exists(conn: &mut SqliteConnection, org_id: &str, id: &str) -> CrmResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM companies WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n > 0)
}

async fn get(conn: &mut SqliteConnection, org_id: &str, id: &str) -> CrmResult<CompanyRow> {
    sqlx::query_as(
        "SELECT id, name, domain, attributes, created_at, updated_at FROM companies
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(CrmError::NotFound("company"))
}

/// A domain as stored: lower case, no scheme, path or "www.".
fn domain(v: &str) -> CrmResult<String> {
    let d = v.trim().to_ascii_lowercase();
    let d = d
        .strip_prefix("https://")
        .or_else(|| d.strip_prefix("http://"))
        .unwrap_or(&d);
    let d = d.split('/').next().unwrap_or_default();
    let d = d.strip_prefix("www.").unwrap_or(d);
    let ok = d.len() <= 253
        && d.contains('.')
        && !d.starts_with('.')
        && !d.ends_with('.')
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(d.to_string())
    } else {
        Err(CrmError::invalid(format!(
            "domain: {v:?} is not a domain name"
        )))
    }
}

/// A company's fields. Creating needs `name`; in a patch an absent field stays, a `null`
/// `domain` clears it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CompanyInput {
    name: Option<String>,
    /// A domain name (a URL is reduced to its host, without `www.`), unique in the organization.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    domain: Option<Option<String>>,
    /// Custom attributes, merged key by key; a `null` value removes the key.
    #[schema(value_type = Option<Object>)]
    attributes: Option<Value>,
}

/// A page of a list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items a page (default 50, at most 200).
    pub limit: Option<i64>,
}

async fn check_domain_free(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
    domain: &str,
) -> CrmResult<()> {
    let other: Option<String> = sqlx::query_scalar(
        "SELECT id FROM companies WHERE org_id = $1 AND domain = $2 AND id <> $3",
    )
    .bind(org_id)
    .bind(domain)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match other {
        Some(other) => Err(CrmError::Conflict {
            message: format!("domain {domain} belongs to another company"),
            details: json!({ "field": "domain", "company_id": other }),
        }),
        None => Ok(()),
    }
}

#[utoipa::path(
    post,
    path = "/companies",
    operation_id = "create_company",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "Create a company",
    request_body = CompanyInput,
    responses(
        (status = 201, description = "The company.", body = Object),
        (status = 409, description = "The domain belongs to another company.", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn create_route(
    State(state): State<AppState>,
    org: OrgCtx,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::ContactsWrite)?;
    let input: CompanyInput = body::parse(&bytes)?;
    let name = validate::required_text("name", input.name.as_deref(), MAX_NAME_CHARS)?;
    let domain = input.domain.flatten().map(|d| domain(&d)).transpose()?;
    let attrs = match &input.attributes {
        Some(v) => validate::attributes(v)?,
        None => Map::new(),
    };
    let id = new_id();
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(d) = &domain {
        check_domain_free(&mut tx, &org.org_id, &id, d).await?;
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO companies (id, org_id, name, domain, attributes, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(&org.org_id)
    .bind(&name)
    .bind(&domain)
    .bind(Value::Object(attrs).to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let row = get(&mut tx, &org.org_id, &id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view(&row))))
}

#[utoipa::path(
    get,
    path = "/companies/{id}",
    operation_id = "get_company",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "A company",
    params(("id" = String, Path, description = "The company's id.")),
    responses((status = 200, description = "`{id, name, domain, attributes, created_at, updated_at}`", body = Object)),
)]
pub async fn get_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsRead)?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(view(&get(&mut conn, &org.org_id, &id).await?)))
}

#[utoipa::path(
    patch,
    path = "/companies/{id}",
    operation_id = "update_company",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "Change a company",
    params(("id" = String, Path, description = "The company's id.")),
    request_body = CompanyInput,
    responses(
        (status = 200, description = "The company as it is now.", body = Object),
        (status = 409, description = "The domain belongs to another company.", body = crate::http::openapi::ErrorBody),
    ),
)]
pub async fn update_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsWrite)?;
    let input: CompanyInput = body::parse(&bytes)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut row = get(&mut tx, &org.org_id, &id).await?;
    if let Some(n) = input.name {
        row.name = validate::required_text("name", Some(n.as_str()), MAX_NAME_CHARS)?;
    }
    if let Some(d) = input.domain {
        row.domain = d.map(|d| domain(&d)).transpose()?;
        if let Some(d) = &row.domain {
            check_domain_free(&mut tx, &org.org_id, &id, d).await?;
        }
    }
    if let Some(a) = &input.attributes {
        let mut attrs: Map<String, Value> =
            serde_json::from_str(&row.attributes).unwrap_or_default();
        validate::merge_attributes(&mut attrs, validate::attributes(a)?);
        validate::check_attributes_size(&attrs)?;
        row.attributes = Value::Object(attrs).to_string();
    }
    sqlx::query(
        "UPDATE companies SET name = $3, domain = $4, attributes = $5, updated_at = $6
         WHERE org_id = $1 AND id = $2",
    )
    .bind(&org.org_id)
    .bind(&id)
    .bind(&row.name)
    .bind(&row.domain)
    .bind(&row.attributes)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    let row = get(&mut tx, &org.org_id, &id).await?;
    tx.commit().await?;
    Ok(Json(view(&row)))
}

/// Deletes the company; its contacts stay, without a company.
#[utoipa::path(
    delete,
    path = "/companies/{id}",
    operation_id = "delete_company",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "Delete a company; its contacts stay, without a company",
    params(("id" = String, Path, description = "The company's id.")),
    responses((status = 204, description = "Deleted.")),
)]
pub async fn delete_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::ContactsWrite)?;
    let done = sqlx::query("DELETE FROM companies WHERE org_id = $1 AND id = $2")
        .bind(&org.org_id)
        .bind(&id)
        .execute(&state.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("company"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/companies",
    operation_id = "list_companies",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "List companies, newest first",
    params(CursorQuery),
    responses((status = 200, description = "`{data: [company], next_cursor}`", body = Object)),
)]
pub async fn list_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Query(q): Query<CursorQuery>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsRead)?;
    let limit = cursor::limit(q.limit);
    let before: Option<String> = q.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows: Vec<CompanyRow> = sqlx::query_as(
        "SELECT id, name, domain, attributes, created_at, updated_at FROM companies
         WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(&org.org_id)
    // Every UUID sorts below "~" (ASCII 126 is above hex digits and '-').
    .bind(before.unwrap_or_else(|| "~".into()))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let has_more = rows.len() as i64 > limit;
    let rows: Vec<CompanyRow> = rows.into_iter().take(limit as usize).collect();
    let next = if has_more {
        rows.last().map(|r| cursor::encode(&r.id))
    } else {
        None
    };
    Ok(Json(json!({
        "data": rows.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /companies/{id}/contacts`
#[utoipa::path(
    get,
    path = "/companies/{id}/contacts",
    operation_id = "list_company_contacts",
    tag = crate::http::openapi::tags::CONTACTS,
    summary = "The company's contacts, newest first",
    params(("id" = String, Path, description = "The company's id."), CursorQuery),
    responses((status = 200, description = "One page of the company's contacts.", body = CursorPage<ContactView>)),
)]
pub async fn contacts_route(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    Query(q): Query<CursorQuery>,
) -> ApiResult<Json<CursorPage<ContactView>>> {
    org.require(Permission::ContactsRead)?;
    let mut conn = state.pool.acquire().await?;
    if !exists(&mut conn, &org.org_id, &id).await? {
        return Err(ApiError::not_found("company"));
    }
    let filter = ContactFilter {
        company_id: Some(id),
        ..ContactFilter::default()
    };
    Ok(Json(
        contact_page(
            &mut conn,
            &org.org_id,
            filter,
            &PageQuery {
                cursor: q.cursor,
                limit: q.limit,
                ..PageQuery::default()
            },
        )
        .await?,
    ))
}

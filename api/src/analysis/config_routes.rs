//! CRUD for what an organization configures for analysis: trackers (keyword and smart),
//! compliance rules and scorecard templates. Every object is the analysis crate's own type in
//! JSON: the body is parsed into that type and validated before anything is stored, so what
//! the store holds always deserialises again. Ids are assigned here; a body's `id` is ignored.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;
use crate::sip::http::json_body;
use crate::store::analysis_config::{self as store, ConfigFields, ConfigRow};

use super::definitions::{Configured, RuleDefinition, TemplateDefinition, TrackerDefinition};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(crud::<TrackerDefinition>("/trackers"))
        .merge(crud::<RuleDefinition>("/rules"))
        .merge(crud::<TemplateDefinition>("/scorecard-templates"))
}

/// The collection (`GET` list, `POST` create) and item (`GET`, `PUT`, `DELETE`) routes of one
/// kind of configured object.
fn crud<T: Configured>(collection: &str) -> Router<AppState> {
    Router::new()
        .route(collection, get(list::<T>).post(create::<T>))
        .route(
            &format!("{collection}/{{id}}"),
            get(show::<T>).put(replace::<T>).delete(remove::<T>),
        )
}

/// The API view of a stored object: its definition plus the store's times.
fn view(row: &ConfigRow) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_str(&row.definition).map_err(ApiError::internal)?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("id".into(), json!(row.id));
        obj.insert("created_at".into(), json!(ms_to_rfc3339(row.created_at)));
        obj.insert("updated_at".into(), json!(ms_to_rfc3339(row.updated_at)));
    }
    Ok(v)
}

/// Parses and validates a body as `T` with the given id.
fn parse<T: Configured>(mut body: Value, id: &str) -> ApiResult<(T, String)> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::validation("the body must be a JSON object"));
    };
    obj.insert("id".into(), json!(id));
    obj.remove("created_at");
    obj.remove("updated_at");
    let parsed: T = serde_json::from_value(body)
        .map_err(|e| ApiError::validation(format!("invalid {}: {e}", T::KIND.noun())))?;
    parsed.check().map_err(ApiError::validation)?;
    let stored = serde_json::to_string(&parsed).map_err(ApiError::internal)?;
    Ok((parsed, stored))
}

async fn list<T: Configured>(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::IntelligenceRead)?;
    let rows = store::list(&state.pool, T::KIND, &org.org_id, false).await?;
    let items = rows.iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({ "items": items })))
}

async fn show<T: Configured>(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::IntelligenceRead)?;
    let row = store::get(&state.pool, T::KIND, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(T::KIND.noun()))?;
    Ok(Json(view(&row)?))
}

/// One audit entry per change of a tracker, rule or scorecard template.
async fn audit_change<T: Configured>(
    state: &AppState,
    org: &OrgCtx,
    action: &str,
    id: &str,
    name: Option<&str>,
) {
    let kind = T::KIND.noun().replace(' ', "_");
    crate::audit::record(
        &state.pool,
        org,
        action,
        crate::audit::Target::new(&kind, id),
        json!({ "name": name }),
    )
    .await;
}

async fn create<T: Configured>(
    State(state): State<AppState>,
    org: OrgCtx,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    org.require(Permission::CallSettingsManage)?;
    let body = json_body(body)?;
    let id = crate::ids::new_id();
    let (parsed, stored) = parse::<T>(body, &id)?;
    let cols = parsed.columns();
    store::create(
        &state.pool,
        T::KIND,
        &org.org_id,
        &id,
        &ConfigFields {
            kind: &cols.kind,
            name: &cols.name,
            category: &cols.category,
            active: cols.active,
            definition: &stored,
        },
    )
    .await?;
    let row = store::get(&state.pool, T::KIND, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::internal("created object vanished"))?;
    audit_change::<T>(
        &state,
        &org,
        "analysis_config.created",
        &id,
        Some(&cols.name),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view(&row)?)))
}

async fn replace<T: Configured>(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    org.require(Permission::CallSettingsManage)?;
    let body = json_body(body)?;
    let (parsed, stored) = parse::<T>(body, &id)?;
    let cols = parsed.columns();
    let found = store::update(
        &state.pool,
        T::KIND,
        &org.org_id,
        &id,
        &ConfigFields {
            kind: &cols.kind,
            name: &cols.name,
            category: &cols.category,
            active: cols.active,
            definition: &stored,
        },
    )
    .await?;
    if !found {
        return Err(ApiError::not_found(T::KIND.noun()));
    }
    let row = store::get(&state.pool, T::KIND, &org.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(T::KIND.noun()))?;
    audit_change::<T>(
        &state,
        &org,
        "analysis_config.updated",
        &id,
        Some(&cols.name),
    )
    .await;
    Ok(Json(view(&row)?))
}

async fn remove<T: Configured>(
    State(state): State<AppState>,
    org: OrgCtx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org.require(Permission::CallSettingsManage)?;
    if store::delete(&state.pool, T::KIND, &org.org_id, &id).await? {
        audit_change::<T>(&state, &org, "analysis_config.deleted", &id, None).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(T::KIND.noun()))
    }
}

/// Loads every active object of a kind for an organization, as the analysis types. A row that
/// no longer parses (a definition written by an older version) is skipped with a warning
/// rather than failing every call's analysis.
pub async fn load_active<T: Configured>(
    pool: &sqlx::SqlitePool,
    org_id: &str,
) -> Result<Vec<T>, sqlx::Error> {
    let rows = store::list(pool, T::KIND, org_id, true).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match serde_json::from_str::<T>(&row.definition) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(id = %row.id, error = %e, "stored {} no longer parses", T::KIND.noun());
                None
            }
        })
        .collect())
}

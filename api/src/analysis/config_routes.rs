//! CRUD for what an organization configures for analysis: trackers (keyword and smart),
//! compliance rules and scorecard templates. Every object is the analysis crate's own type in
//! JSON: the body is parsed into that type and validated before anything is stored, so what
//! the store holds always deserialises again. Ids are assigned here; a body's `id` is ignored.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::OrgCtx;
use crate::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::ids::ms_to_rfc3339;
use crate::permissions::Permission;
use crate::sip::http::json_body;
use crate::store::analysis_config::{self as store, ConfigFields, ConfigRow};

use super::definitions::{Configured, RuleDefinition, TemplateDefinition, TrackerDefinition};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trackers::list, trackers::create))
        .routes(routes!(trackers::show, trackers::replace, trackers::remove))
        .routes(routes!(rules::list, rules::create))
        .routes(routes!(rules::show, rules::replace, rules::remove))
        .routes(routes!(templates::list, templates::create))
        .routes(routes!(
            templates::show,
            templates::replace,
            templates::remove
        ))
}

/// The collection (`GET` list, `POST` create) and item (`GET`, `PUT`, `DELETE`) handlers of
/// one kind of configured object: thin annotated wrappers over the generic handlers below,
/// because an OpenAPI operation needs a concrete function (and literal paths) to describe.
macro_rules! config_handlers {
    (
        $module:ident, $ty:ty,
        collection = $collection:literal,
        item = $item:literal,
        noun = $noun:literal,
        list = $list:literal,
        create = $create:literal,
        show = $show:literal,
        replace = $replace:literal,
        remove = $remove:literal,
        body = $body:literal,
        operation_ids = ($list_id:literal, $create_id:literal, $show_id:literal, $replace_id:literal, $remove_id:literal) $(,)?
    ) => {
        mod $module {
            use super::*;

            #[utoipa::path(
                get,
                path = $collection,
                tag = crate::http::openapi::tags::ANALYSIS,
                summary = $list,
                operation_id = $list_id,
                responses((status = 200, description = "`{items: [object]}`, each with `id`, `created_at` and `updated_at`.", body = Object)),
            )]
            pub(super) async fn list(
                state: State<AppState>,
                org: OrgCtx,
            ) -> ApiResult<Json<Value>> {
                super::list::<$ty>(state, org).await
            }

            #[utoipa::path(
                post,
                path = $collection,
                tag = crate::http::openapi::tags::ANALYSIS,
                summary = $create,
                operation_id = $create_id,
                request_body(content = Object, description = $body),
                responses((status = 201, description = "The stored object with its assigned `id`.", body = Object)),
            )]
            pub(super) async fn create(
                state: State<AppState>,
                org: OrgCtx,
                body: Result<Json<Value>, JsonRejection>,
            ) -> ApiResult<(StatusCode, Json<Value>)> {
                super::create::<$ty>(state, org, body).await
            }

            #[utoipa::path(
                get,
                path = $item,
                tag = crate::http::openapi::tags::ANALYSIS,
                summary = $show,
                operation_id = $show_id,
                params(("id" = String, Path, description = $noun)),
                responses((status = 200, description = "The object.", body = Object)),
            )]
            pub(super) async fn show(
                state: State<AppState>,
                org: OrgCtx,
                id: Path<String>,
            ) -> ApiResult<Json<Value>> {
                super::show::<$ty>(state, org, id).await
            }

            #[utoipa::path(
                put,
                path = $item,
                tag = crate::http::openapi::tags::ANALYSIS,
                summary = $replace,
                operation_id = $replace_id,
                params(("id" = String, Path, description = $noun)),
                request_body(content = Object, description = $body),
                responses((status = 200, description = "The object as stored now.", body = Object)),
            )]
            pub(super) async fn replace(
                state: State<AppState>,
                org: OrgCtx,
                id: Path<String>,
                body: Result<Json<Value>, JsonRejection>,
            ) -> ApiResult<Json<Value>> {
                super::replace::<$ty>(state, org, id, body).await
            }

            #[utoipa::path(
                delete,
                path = $item,
                tag = crate::http::openapi::tags::ANALYSIS,
                summary = $remove,
                operation_id = $remove_id,
                params(("id" = String, Path, description = $noun)),
                responses((status = 204, description = "Deleted.")),
            )]
            pub(super) async fn remove(
                state: State<AppState>,
                org: OrgCtx,
                id: Path<String>,
            ) -> ApiResult<StatusCode> {
                super::remove::<$ty>(state, org, id).await
            }
        }
    };
}

config_handlers!(
    trackers,
    TrackerDefinition,
    collection = "/trackers",
    item = "/trackers/{id}",
    noun = "The tracker's id.",
    list = "The organization's trackers (keyword and smart)",
    create = "Create a tracker",
    show = "A tracker",
    replace = "Replace a tracker",
    remove = "Delete a tracker",
    body = "A tracker, told apart by `kind` (see docs/analysis.md). `keyword`: `name`, \
        `category` (competitor, pricing, objection, feature, custom), `phrases` (at most 500; \
        `*` is any one word, `word*` any word starting so), optional `active` and `roles`. \
        `smart`: `name`, `category`, `active`, `examples` (sentences), optional `threshold` \
        (cosine similarity in (0, 1]) and `role`. A body's `id` is ignored.",
    operation_ids = (
        "list_trackers",
        "create_tracker",
        "get_tracker",
        "replace_tracker",
        "delete_tracker"
    ),
);

config_handlers!(
    rules,
    RuleDefinition,
    collection = "/rules",
    item = "/rules/{id}",
    noun = "The compliance rule's id.",
    list = "The organization's compliance rules",
    create = "Create a compliance rule",
    show = "A compliance rule",
    replace = "Replace a compliance rule",
    remove = "Delete a compliance rule",
    body = "A compliance rule (see docs/analysis.md): `name`, `category`, `severity`, \
        `condition` (told apart by its `kind`, e.g. `phrase_absent`), optional `roles`, \
        `scope`, `negate`, `active` and `subject`. A body's `id` is ignored.",
    operation_ids = (
        "list_rules",
        "create_rule",
        "get_rule",
        "replace_rule",
        "delete_rule"
    ),
);

config_handlers!(
    templates,
    TemplateDefinition,
    collection = "/scorecard-templates",
    item = "/scorecard-templates/{id}",
    noun = "The scorecard template's id.",
    list = "The organization's scorecard templates",
    create = "Create a scorecard template",
    show = "A scorecard template",
    replace = "Replace a scorecard template",
    remove = "Delete a scorecard template",
    body = "A scorecard template (see docs/analysis.md): `name` and `criteria`, each with \
        `id`, `title`, `weight`, `max_score`, `answer_type`, optional `na_allowed`, \
        `auto_fail` and `binding`. A body's `id` is ignored.",
    operation_ids = (
        "list_scorecard_templates",
        "create_scorecard_template",
        "get_scorecard_template",
        "replace_scorecard_template",
        "delete_scorecard_template"
    ),
);

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

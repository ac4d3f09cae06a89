//! The organization's CRM settings: the region for phone numbers written without a country
//! code, and what becomes of the analysis's action items (`off`, `suggest`: a task on one
//! click, `auto`: tasks made as soon as the analysis is stored).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::SqliteConnection;

use super::body::{self, nullable};
use super::{CrmError, CrmResult};
use crate::auth::OrgCtx;
use crate::error::ApiResult;
use crate::http::state::AppState;
use crate::ids::now_ms;
use crate::permissions::Permission;

/// What the analysis's action items become: nothing (`off`), suggestions a person turns
/// into tasks (`suggest`), or tasks at once (`auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionItemTasks {
    Off,
    #[default]
    Suggest,
    Auto,
}

impl ActionItemTasks {
    fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Suggest => "suggest",
            Self::Auto => "auto",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "off" => Self::Off,
            "auto" => Self::Auto,
            _ => Self::Suggest,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CrmSettings {
    /// `None`: the server's `default_region`.
    pub default_region: Option<String>,
    pub action_item_tasks: ActionItemTasks,
}

pub async fn load(conn: &mut SqliteConnection, org_id: &str) -> CrmResult<CrmSettings> {
    let row: Option<(Option<String>, String)> = sqlx::query_as(
        "SELECT default_region, action_item_tasks FROM crm_settings WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row
        .map(|(default_region, tasks)| CrmSettings {
            default_region,
            action_item_tasks: ActionItemTasks::parse(&tasks),
        })
        .unwrap_or_default())
}

/// The region that reads this organization's national numbers.
pub async fn region(
    conn: &mut SqliteConnection,
    org_id: &str,
    server_default: &str,
) -> CrmResult<String> {
    Ok(load(conn, org_id)
        .await?
        .default_region
        .unwrap_or_else(|| server_default.to_string()))
}

fn view(s: &CrmSettings, server_default: &str) -> Value {
    json!({
        "default_region": s.default_region.as_deref().unwrap_or(server_default),
        "default_region_is_server_default": s.default_region.is_none(),
        "action_item_tasks": s.action_item_tasks,
    })
}

#[utoipa::path(
    get,
    path = "/settings/crm",
    operation_id = "get_crm_settings",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "The organization's CRM settings",
    responses((status = 200, description = "`{default_region, default_region_is_server_default, action_item_tasks}`", body = Object)),
)]
pub async fn get_route(State(state): State<AppState>, org: OrgCtx) -> ApiResult<Json<Value>> {
    org.require(Permission::ContactsRead)?;
    let mut conn = state.pool.acquire().await?;
    let s = load(&mut conn, &org.org_id).await?;
    Ok(Json(view(&s, &state.config.default_region)))
}

/// Absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CrmSettingsPatch)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    /// The region (`US`, `GB`...) that reads national phone numbers; `null`: the server's.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    default_region: Option<Option<String>>,
    action_item_tasks: Option<ActionItemTasks>,
}

#[utoipa::path(
    put,
    path = "/settings/crm",
    operation_id = "put_crm_settings",
    tag = crate::http::openapi::tags::ADMIN,
    summary = "Change the organization's CRM settings",
    request_body = SettingsPatch,
    responses((status = 200, description = "The settings as they are now.", body = Object)),
)]
pub async fn put_route(
    State(state): State<AppState>,
    org: OrgCtx,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    org.require(Permission::CallSettingsManage)?;
    let patch: SettingsPatch = body::parse(&bytes)?;
    let mut tx = state.pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut s = load(&mut tx, &org.org_id).await?;
    if let Some(region) = patch.default_region {
        s.default_region = match region {
            None => None,
            Some(r) => {
                let r = r.trim().to_ascii_uppercase();
                if r.parse::<phonenumber::country::Id>().is_err() {
                    return Err(CrmError::invalid(format!(
                        "default_region: {r:?} is not a region code such as US or GB"
                    ))
                    .into());
                }
                Some(r)
            }
        };
    }
    if let Some(t) = patch.action_item_tasks {
        s.action_item_tasks = t;
    }
    sqlx::query(
        "INSERT INTO crm_settings (org_id, default_region, action_item_tasks, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (org_id) DO UPDATE SET default_region = excluded.default_region,
            action_item_tasks = excluded.action_item_tasks, updated_at = excluded.updated_at",
    )
    .bind(&org.org_id)
    .bind(&s.default_region)
    .bind(s.action_item_tasks.as_str())
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let after = view(&s, &state.config.default_region);
    crate::audit::record(
        &state.pool,
        &org,
        crate::audit::actions::CRM_SETTINGS_UPDATED,
        crate::audit::Target::kind("settings"),
        serde_json::json!({ "after": after }),
    )
    .await;
    Ok(Json(after))
}

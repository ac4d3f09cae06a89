//! What an organization configures for call analysis: trackers, compliance rules and scorecard
//! templates. Each row stores the analysis crate's own JSON for the object (`definition`);
//! `name`, `category`, `kind` and `active` are copied beside it for listing and filtering.
//! Validation of a definition is the caller's job (the HTTP layer parses it into the analysis
//! type first); the store only keeps what it is given, scoped by organization.

use sqlx::{FromRow, SqliteExecutor};

use crate::ids::now_ms;

/// Which kind of configured object (and so which table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Tracker,
    Rule,
    ScorecardTemplate,
}

impl ConfigKind {
    fn sql(self) -> &'static Statements {
        match self {
            ConfigKind::Tracker => &TRACKERS,
            ConfigKind::Rule => &RULES,
            ConfigKind::ScorecardTemplate => &TEMPLATES,
        }
    }

    /// The noun used in errors ("tracker not found").
    pub fn noun(self) -> &'static str {
        match self {
            ConfigKind::Tracker => "tracker",
            ConfigKind::Rule => "rule",
            ConfigKind::ScorecardTemplate => "scorecard template",
        }
    }
}

/// The statements of one table, written out whole (no SQL is assembled at run time).
struct Statements {
    list_all: &'static str,
    list_active: &'static str,
    get: &'static str,
    insert: &'static str,
    update: &'static str,
    delete: &'static str,
}

/// The statements for a table. Binds: list (org), get/delete (org, id), insert (id, org, kind,
/// name, category, active, definition, now), update (org, id, kind, name, category, active,
/// definition, now).
macro_rules! statements {
    ($table:literal) => {
        Statements {
            list_all: concat!("SELECT ", COLUMNS!(), " FROM ", $table, " WHERE org_id = $1 ORDER BY created_at, id"),
            list_active: concat!("SELECT ", COLUMNS!(), " FROM ", $table, " WHERE org_id = $1 AND active = 1 ORDER BY created_at, id"),
            get: concat!("SELECT ", COLUMNS!(), " FROM ", $table, " WHERE org_id = $1 AND id = $2"),
            insert: concat!("INSERT INTO ", $table, " (id, org_id, kind, name, category, active, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"),
            update: concat!("UPDATE ", $table, " SET kind = $3, name = $4, category = $5, active = $6, definition = $7, updated_at = $8 WHERE org_id = $1 AND id = $2"),
            delete: concat!("DELETE FROM ", $table, " WHERE org_id = $1 AND id = $2"),
        }
    };
}

macro_rules! COLUMNS {
    () => {
        "id, org_id, kind, name, category, active, definition, created_at, updated_at"
    };
}

static TRACKERS: Statements = statements!("trackers");
static RULES: Statements = statements!("compliance_rules");
static TEMPLATES: Statements = statements!("scorecard_templates");

/// One stored object. `kind`: keyword/smart for trackers, the rule's type, empty for templates.
#[derive(Debug, Clone, FromRow)]
pub struct ConfigRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub name: String,
    pub category: String,
    pub active: bool,
    pub definition: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a create or update writes.
pub struct ConfigFields<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub category: &'a str,
    pub active: bool,
    pub definition: &'a str,
}

pub async fn list<'e>(
    ex: impl SqliteExecutor<'e>,
    kind: ConfigKind,
    org_id: &str,
    only_active: bool,
) -> Result<Vec<ConfigRow>, sqlx::Error> {
    let sql = if only_active {
        kind.sql().list_active
    } else {
        kind.sql().list_all
    };
    sqlx::query_as(sql).bind(org_id).fetch_all(ex).await
}

pub async fn get<'e>(
    ex: impl SqliteExecutor<'e>,
    kind: ConfigKind,
    org_id: &str,
    id: &str,
) -> Result<Option<ConfigRow>, sqlx::Error> {
    sqlx::query_as(kind.sql().get)
        .bind(org_id)
        .bind(id)
        .fetch_optional(ex)
        .await
}

pub async fn create<'e>(
    ex: impl SqliteExecutor<'e>,
    kind: ConfigKind,
    org_id: &str,
    id: &str,
    fields: &ConfigFields<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(kind.sql().insert)
        .bind(id)
        .bind(org_id)
        .bind(fields.kind)
        .bind(fields.name)
        .bind(fields.category)
        .bind(fields.active)
        .bind(fields.definition)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}

/// Replaces the object; false when it does not exist in this organization.
pub async fn update<'e>(
    ex: impl SqliteExecutor<'e>,
    kind: ConfigKind,
    org_id: &str,
    id: &str,
    fields: &ConfigFields<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(kind.sql().update)
        .bind(org_id)
        .bind(id)
        .bind(fields.kind)
        .bind(fields.name)
        .bind(fields.category)
        .bind(fields.active)
        .bind(fields.definition)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes the object; false when it does not exist in this organization.
pub async fn delete<'e>(
    ex: impl SqliteExecutor<'e>,
    kind: ConfigKind,
    org_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(kind.sql().delete)
        .bind(org_id)
        .bind(id)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() > 0)
}

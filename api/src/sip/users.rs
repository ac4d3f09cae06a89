//! Users: agents and their phones. The extension is both the number colleagues dial and the
//! digest username the phone registers with.

use serde::Serialize;
use sqlx::SqlitePool;

use super::credentials::{self, CredentialError};
use super::domains::{self, DomainError};
use crate::ids::{new_id, now_ms};

/// Roles and what they may do live with the permissions.
pub use crate::permissions::Role;

/// A user as stored. The secrets are `#[serde(skip)]`: nothing that serialises a user can
/// leak them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    pub name: String,
    pub extension: String,
    pub role: String,
    #[serde(skip)]
    pub sip_ha1_md5: String,
    #[serde(skip)]
    pub sip_ha1_sha256: String,
    #[serde(skip)]
    pub password_hash: String,
    pub last_call_ended_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewUser<'a> {
    pub name: &'a str,
    pub extension: &'a str,
    pub password: &'a str,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("name must be 1 to 200 characters")]
    InvalidName,
    #[error("extension must be 2 to 15 digits")]
    InvalidExtension,
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("extension {0} is already taken in this organization")]
    ExtensionTaken(String),
    #[error("the user is a target of inbound routes; delete or change those routes first")]
    InUse,
    #[error("the organization's last owner must stay an owner; make another owner first")]
    LastOwner,
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Digits only: an extension must be dialable from any phone keypad, and a digits-only
/// extension can never be mistaken for a SIP URI part that needs escaping. Two digits at
/// least, fifteen at most (E.164's length, beyond which numbers are not extensions).
pub fn is_valid_extension(ext: &str) -> bool {
    (2..=15).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_digit())
}

/// Validates a new password and hashes it for sign-in. argon2 is deliberately slow (tens of
/// ms), so it runs off the async threads.
async fn checked_password_hash(password: &str) -> Result<String, UserError> {
    credentials::validate_password(password)?;
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(|e| CredentialError::Hash(e.to_string()))??;
    Ok(hash)
}

pub async fn create_user(
    pool: &SqlitePool,
    org_id: &str,
    new: &NewUser<'_>,
) -> Result<User, UserError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(UserError::InvalidName);
    }
    if !is_valid_extension(new.extension) {
        return Err(UserError::InvalidExtension);
    }
    let password_hash = checked_password_hash(new.password).await?;

    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let realm = domains::ensure_realm(&mut tx, org_id).await?;
    let id = new_id();
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO users (id, org_id, name, extension, role, sip_ha1_md5, sip_ha1_sha256,
            password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         ON CONFLICT (org_id, extension) DO NOTHING",
    )
    .bind(&id)
    .bind(org_id)
    .bind(name)
    .bind(new.extension)
    .bind(new.role.as_str())
    .bind(credentials::ha1_md5(new.extension, &realm, new.password))
    .bind(credentials::ha1_sha256(new.extension, &realm, new.password))
    .bind(&password_hash)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Err(UserError::ExtensionTaken(new.extension.to_string()));
    }
    let user = sqlx::query_as("SELECT * FROM users WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn get_user(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM users WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn get_by_extension(
    pool: &SqlitePool,
    org_id: &str,
    extension: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM users WHERE org_id = $1 AND extension = $2")
        .bind(org_id)
        .bind(extension)
        .fetch_optional(pool)
        .await
}

pub async fn list_users(pool: &SqlitePool, org_id: &str) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM users WHERE org_id = $1 ORDER BY extension")
        .bind(org_id)
        .fetch_all(pool)
        .await
}

/// What an administrator may change on a user; `None` leaves it as it is.
pub struct UserChange<'a> {
    pub name: Option<&'a str>,
    pub role: Option<Role>,
    pub password: Option<&'a str>,
}

/// Applies `change` to the user `id`; `Ok(None)` when it does not exist in this
/// organization. A new password replaces the SIP digest credentials and the sign-in hash
/// together and ends the user's browser sessions, so a leaked password stops working
/// everywhere at once. The last owner cannot stop being one: an organization without an
/// owner could never appoint one again.
pub async fn update_user(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
    change: &UserChange<'_>,
) -> Result<Option<User>, UserError> {
    let name = change.name.map(str::trim);
    if name.is_some_and(|n| n.is_empty() || n.chars().count() > 200) {
        return Err(UserError::InvalidName);
    }
    let password_hash = match change.password {
        Some(p) => Some(checked_password_hash(p).await?),
        None => None,
    };

    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let Some(current) =
        sqlx::query_as::<_, User>("SELECT * FROM users WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(None);
    };
    if current.role == Role::Owner.as_str() && change.role.is_some_and(|r| r != Role::Owner) {
        let owners: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner'")
                .bind(org_id)
                .fetch_one(&mut *tx)
                .await?;
        if owners <= 1 {
            return Err(UserError::LastOwner);
        }
    }
    let now = now_ms();
    if let (Some(password), Some(hash)) = (change.password, &password_hash) {
        let realm = domains::ensure_realm(&mut tx, org_id).await?;
        sqlx::query(
            "UPDATE users SET sip_ha1_md5 = $1, sip_ha1_sha256 = $2, password_hash = $3
             WHERE org_id = $4 AND id = $5",
        )
        .bind(credentials::ha1_md5(&current.extension, &realm, password))
        .bind(credentials::ha1_sha256(
            &current.extension,
            &realm,
            password,
        ))
        .bind(hash)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE agent_sessions SET revoked_at = $1
             WHERE org_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let user = sqlx::query_as(
        "UPDATE users SET name = COALESCE($1, name), role = COALESCE($2, role), updated_at = $3
         WHERE org_id = $4 AND id = $5 RETURNING *",
    )
    .bind(name)
    .bind(change.role.map(Role::as_str))
    .bind(now)
    .bind(org_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(user))
}

/// Delete a user; `Ok(false)` when it does not exist in this organization. Refused while a
/// route sends calls to the user, so that no DID silently starts answering 404.
pub async fn delete_user(pool: &SqlitePool, org_id: &str, id: &str) -> Result<bool, UserError> {
    // IMMEDIATE: the check reads before the delete writes, and a deferred transaction's
    // upgrade to a writer fails at once ("database is locked") when another writer commits
    // in between, busy timeout or not.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let used: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM sip_routes WHERE org_id = $1 AND user_id = $2)
              + (SELECT COUNT(*) FROM sip_route_members m JOIN sip_routes r ON r.id = m.route_id
                 WHERE r.org_id = $1 AND m.user_id = $2)",
    )
    .bind(org_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if used > 0 {
        return Err(UserError::InUse);
    }
    let n = sqlx::query("DELETE FROM users WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// Remember when the user's last call ended (ring groups ring the longest idle first).
pub async fn mark_call_ended<'e>(
    ex: impl sqlx::SqliteExecutor<'e>,
    org_id: &str,
    user_id: &str,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET last_call_ended_at = $1
         WHERE org_id = $2 AND id = $3 AND (last_call_ended_at IS NULL OR last_call_ended_at < $1)",
    )
    .bind(at_ms)
    .bind(org_id)
    .bind(user_id)
    .execute(ex)
    .await?;
    Ok(())
}

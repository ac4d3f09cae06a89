//! Each organization's SIP domain: the digest realm its users authenticate in and the host
//! part of their addresses. A REGISTER names its realm, which is how the SIP side finds the
//! organization. Created on first use from the organization's name
//! (`acme-corp.callscope.local`); settable while the organization has no users, because the
//! users' stored HA1 values are computed with it.

use sqlx::{SqliteConnection, SqlitePool};

use crate::ids::now_ms;

pub const DEFAULT_REALM_SUFFIX: &str = "callscope.local";

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("realm must be a host name: letters, digits, '-' and '.', at most 253 characters")]
    InvalidRealm,
    #[error("realm {0:?} is taken by another organization")]
    Taken(String),
    #[error(
        "the organization has SIP users whose digest secrets were computed with the current realm; delete them or reset their passwords first"
    )]
    HasUsers,
    #[error("no such organization")]
    NoOrg,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Lower-case host-name syntax (RFC 1123 labels), which every SIP stack accepts as a realm
/// and a domain without quoting trouble.
pub fn is_valid_realm(realm: &str) -> bool {
    !realm.is_empty()
        && realm.len() <= 253
        && realm.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// "Acme Corp!" → "acme-corp"; "" (or only symbols) → "org".
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "org".into() } else { out }
}

pub async fn realm_of_org(pool: &SqlitePool, org_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT realm FROM sip_domains WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(pool)
        .await
}

/// The organization's realm, created with the default if it has none yet.
pub async fn ensure_realm(
    conn: &mut SqliteConnection,
    org_id: &str,
) -> Result<String, DomainError> {
    if let Some(r) = sqlx::query_scalar("SELECT realm FROM sip_domains WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(r);
    }
    let name: String = sqlx::query_scalar("SELECT name FROM organizations WHERE id = $1")
        .bind(org_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(DomainError::NoOrg)?;
    let base = slug(&name);
    // Two organizations with the same name: the second gets a piece of its id (the random
    // tail of the UUIDv7) so that realms stay unique.
    let tail: String = org_id
        .chars()
        .rev()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    let candidates = [
        format!("{base}.{DEFAULT_REALM_SUFFIX}"),
        format!("{base}-{tail}.{DEFAULT_REALM_SUFFIX}"),
    ];
    let now = now_ms();
    for realm in candidates {
        let inserted = sqlx::query(
            "INSERT INTO sip_domains (org_id, realm, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(org_id)
        .bind(&realm)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            return Ok(realm);
        }
        // Lost a race with ourselves (another request created the row meanwhile)?
        if let Some(r) = sqlx::query_scalar("SELECT realm FROM sip_domains WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut *conn)
            .await?
        {
            return Ok(r);
        }
    }
    Err(DomainError::Taken(format!("{base}.{DEFAULT_REALM_SUFFIX}")))
}

/// Set the organization's realm (refused while it has users, see the module docs).
pub async fn set_realm(pool: &SqlitePool, org_id: &str, realm: &str) -> Result<(), DomainError> {
    let realm = realm.trim().to_ascii_lowercase();
    if !is_valid_realm(&realm) {
        return Err(DomainError::InvalidRealm);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations WHERE id = $1")
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?;
    if exists == 0 {
        return Err(DomainError::NoOrg);
    }
    let current: Option<String> =
        sqlx::query_scalar("SELECT realm FROM sip_domains WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await?;
    if current.as_deref() == Some(realm.as_str()) {
        return Ok(());
    }
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?;
    if users > 0 {
        return Err(DomainError::HasUsers);
    }
    let taken: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sip_domains WHERE realm = $1 AND org_id <> $2")
            .bind(&realm)
            .bind(org_id)
            .fetch_one(&mut *tx)
            .await?;
    if taken > 0 {
        return Err(DomainError::Taken(realm));
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sip_domains (org_id, realm, created_at, updated_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (org_id) DO UPDATE SET realm = excluded.realm, updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(&realm)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The organization a realm belongs to (realm compared case-insensitively, as host names are).
pub async fn org_by_realm(pool: &SqlitePool, realm: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT org_id FROM sip_domains WHERE realm = $1")
        .bind(realm.trim().to_ascii_lowercase())
        .fetch_optional(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_realms() {
        assert_eq!(slug("Acme Corp!"), "acme-corp");
        assert_eq!(slug("  --  "), "org");
        assert_eq!(slug("Ünïcode Ltd"), "n-code-ltd");
        assert!(is_valid_realm("acme-corp.callscope.local"));
        assert!(!is_valid_realm("Acme.local"));
        assert!(!is_valid_realm("a..b"));
        assert!(!is_valid_realm("-a.b"));
        assert!(!is_valid_realm("a b"));
        assert!(!is_valid_realm(""));
    }
}

//! Contacts (people callscope has talked to), keyed by E.164 phone per organization, and their
//! conversations.

use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use crate::ids::{new_id, now_ms};

/// A phone number in E.164 (`+15551234567`), or `None` when it is not a valid number.
/// `region` (CLDR id like "US") reads numbers written without a country code.
pub fn normalize_phone(raw: &str, region: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 {
        return None;
    }
    let country = region.parse::<phonenumber::country::Id>().ok();
    let number = phonenumber::parse(country, raw).ok()?;
    if !number.is_valid() {
        return None;
    }
    Some(number.format().mode(phonenumber::Mode::E164).to_string())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Contact {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    pub phone_e164: Option<String>,
    pub display_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The contact with this phone (any of its phones, not only the primary), created if new.
/// Safe under concurrency: the unique (org_id, phone_e164) indexes decide, then we read back
/// whichever row won. A new contact is announced with `contact.created` on `conn` (inside the
/// caller's transaction when there is one).
pub async fn find_or_create_by_phone(
    conn: &mut SqliteConnection,
    org_id: &str,
    phone_e164: &str,
) -> Result<Contact, sqlx::Error> {
    if let Some(c) = find_by_any_phone(conn, org_id, phone_e164).await? {
        return Ok(c);
    }
    let now = now_ms();
    let id = new_id();
    let inserted = sqlx::query(
        "INSERT INTO contacts (id, org_id, phone_e164, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id, phone_e164) DO NOTHING",
    )
    .bind(&id)
    .bind(org_id)
    .bind(phone_e164)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        sqlx::query(
            "INSERT INTO contact_phones (org_id, contact_id, phone_e164, is_primary, created_at)
             VALUES ($1, $2, $3, 1, $4) ON CONFLICT (org_id, phone_e164) DO NOTHING",
        )
        .bind(org_id)
        .bind(&id)
        .bind(phone_e164)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // The same body as a contact created through the API.
        let as_sqlx = |e: crate::crm::CrmError| match e {
            crate::crm::CrmError::Db(e) => e,
            crate::crm::CrmError::Webhook(crate::webhooks::WebhookError::Db(e)) => e,
            // Only a serialisation failure is left; carried as an encode error.
            other => sqlx::Error::Encode(Box::new(other)),
        };
        let data = crate::crm::contacts::get_full(conn, org_id, &id)
            .await
            .map_err(as_sqlx)?
            .map(|c| serde_json::json!(crate::crm::contacts::view(&c)))
            .unwrap_or_default();
        crate::webhooks::enqueue_event_in(conn, org_id, crate::crm::CONTACT_CREATED, data)
            .await
            .map_err(|e| as_sqlx(e.into()))?;
    }
    sqlx::query_as("SELECT * FROM contacts WHERE org_id = $1 AND phone_e164 = $2")
        .bind(org_id)
        .bind(phone_e164)
        .fetch_one(&mut *conn)
        .await
}

/// The contact that has this phone among its phones.
pub async fn find_by_any_phone(
    conn: &mut SqliteConnection,
    org_id: &str,
    phone_e164: &str,
) -> Result<Option<Contact>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.* FROM contact_phones p JOIN contacts c ON c.id = p.contact_id
         WHERE p.org_id = $1 AND p.phone_e164 = $2 AND c.org_id = $1",
    )
    .bind(org_id)
    .bind(phone_e164)
    .fetch_optional(&mut *conn)
    .await
}

/// The contact with this phone, if there is one (never creates).
pub async fn find_by_phone(
    pool: &SqlitePool,
    org_id: &str,
    phone_e164: &str,
) -> Result<Option<Contact>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    find_by_any_phone(&mut conn, org_id, phone_e164).await
}

pub async fn get_contact(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
) -> Result<Option<Contact>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM contacts WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A new conversation on the voice channel (one per call for now; threading several calls
/// into one conversation is the timeline issue's business).
pub async fn create_voice_conversation(
    conn: &mut SqliteConnection,
    org_id: &str,
    contact_id: Option<&str>,
    started_at: i64,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO conversations (id, org_id, contact_id, channel, started_at, last_activity_at, created_at)
         VALUES ($1, $2, $3, 'voice', $4, $5, $6)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(contact_id)
    .bind(started_at)
    .bind(started_at)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::normalize_phone;

    #[test]
    fn phones_become_e164() {
        assert_eq!(
            normalize_phone("(415) 555-2671", "US").as_deref(),
            Some("+14155552671")
        );
        assert_eq!(
            normalize_phone("+44 20 7946 0958", "US").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_phone("030 901820", "DE").as_deref(),
            Some("+4930901820")
        );
        assert_eq!(normalize_phone("not a phone", "US"), None);
        assert_eq!(normalize_phone("", "US"), None);
        assert_eq!(normalize_phone("12", "US"), None);
    }
}

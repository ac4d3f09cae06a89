//! The contact store: create, patch, read (with phones, emails, tags and consent), search.
//! `contacts.phone_e164` mirrors the primary phone so the code that predates the CRM (call
//! ingestion, the softphone's lookup) keeps working; `contact_phones` has every phone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::body::nullable;
use super::query::{ContactQuery, name_tokens, prefix_upper_bound};
use super::validate::{self, MAX_EMAILS, MAX_ID_CHARS, MAX_NAME_CHARS, MAX_PHONES};
use super::{CrmError, CrmResult};
use crate::ids::{ms_to_rfc3339, new_id, now_ms};
use crate::store::contacts::normalize_phone;

pub const CHANNELS: &[&str] = &["voice", "sms", "whatsapp", "email"];
const CONSENT_STATUSES: &[&str] = &["opted_in", "opted_out", "unknown"];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub id: String,
    pub org_id: String,
    pub phone_e164: Option<String>,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_id: Option<String>,
    pub external_id: Option<String>,
    pub attributes: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PhoneRow {
    pub contact_id: String,
    pub phone_e164: String,
    pub is_primary: bool,
    pub label: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailRow {
    pub contact_id: String,
    pub email: String,
    pub is_primary: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsentRow {
    pub contact_id: String,
    pub channel: String,
    pub status: String,
    pub source: Option<String>,
    pub updated_at: i64,
}

/// A contact with everything listed on it.
#[derive(Debug, Clone)]
pub struct ContactFull {
    pub row: ContactRow,
    pub phones: Vec<PhoneRow>,
    pub emails: Vec<EmailRow>,
    pub tags: Vec<String>,
    pub consents: Vec<ConsentRow>,
}

/// One of a contact's phone numbers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PhoneView {
    /// E.164.
    pub phone: String,
    pub primary: bool,
    pub label: Option<String>,
}

/// One of a contact's email addresses.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmailView {
    pub email: String,
    pub primary: bool,
}

/// A contact's consent on one channel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    /// `opted_in`, `opted_out` or `unknown`.
    pub status: String,
    /// How it was given or withdrawn (e.g. `stop_keyword`, `api`).
    pub source: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A contact as the API and its events show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContactView {
    pub id: String,
    /// `display_name`, else first and last name.
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    /// The primary phone (E.164).
    pub phone: Option<String>,
    pub phones: Vec<PhoneView>,
    /// The primary email.
    pub email: Option<String>,
    pub emails: Vec<EmailView>,
    pub tags: Vec<String>,
    /// The organization's custom attributes.
    #[schema(value_type = Object)]
    pub attributes: Value,
    pub company_id: Option<String>,
    pub external_id: Option<String>,
    /// Per channel: `voice`, `sms`, `whatsapp` and `email`.
    pub consent: BTreeMap<String, ConsentView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// The API shape of a contact.
pub fn view(c: &ContactFull) -> ContactView {
    let r = &c.row;
    let name = r.display_name.clone().or_else(|| {
        let full = [r.first_name.as_deref(), r.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!full.is_empty()).then_some(full)
    });
    let consent = CHANNELS
        .iter()
        .map(|ch| {
            let v = match c.consents.iter().find(|x| x.channel == *ch) {
                Some(x) => ConsentView {
                    status: x.status.clone(),
                    source: x.source.clone(),
                    updated_at: Some(ms_to_rfc3339(x.updated_at)),
                },
                None => ConsentView {
                    status: "unknown".into(),
                    source: None,
                    updated_at: None,
                },
            };
            ((*ch).to_string(), v)
        })
        .collect();
    ContactView {
        id: r.id.clone(),
        name,
        first_name: r.first_name.clone(),
        last_name: r.last_name.clone(),
        display_name: r.display_name.clone(),
        phone: r.phone_e164.clone(),
        phones: c
            .phones
            .iter()
            .map(|p| PhoneView {
                phone: p.phone_e164.clone(),
                primary: p.is_primary,
                label: p.label.clone(),
            })
            .collect(),
        email: c
            .emails
            .iter()
            .find(|e| e.is_primary)
            .map(|e| e.email.clone()),
        emails: c
            .emails
            .iter()
            .map(|e| EmailView {
                email: e.email.clone(),
                primary: e.is_primary,
            })
            .collect(),
        tags: c.tags.clone(),
        attributes: serde_json::from_str::<Value>(&r.attributes).unwrap_or_else(|_| json!({})),
        company_id: r.company_id.clone(),
        external_id: r.external_id.clone(),
        consent,
        created_at: ms_to_rfc3339(r.created_at),
        updated_at: ms_to_rfc3339(r.updated_at),
    }
}

/// A phone number in any format (read with the organization's default region), alone or
/// with its flags.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PhoneIn {
    Plain(String),
    Full {
        number: String,
        /// The number calls and messages use first; the first number when none is.
        #[serde(default)]
        primary: bool,
        /// e.g. `mobile`, `work`.
        label: Option<String>,
    },
}

/// An email address, alone or with its flag.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EmailIn {
    Plain(String),
    Full {
        email: String,
        #[serde(default)]
        primary: bool,
    },
}

/// Consent for one channel (`voice`, `sms`, `whatsapp` or `email`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    /// `opted_in`, `opted_out` or `unknown`.
    pub status: String,
    /// Where the consent was given or withdrawn (a form, a call...).
    pub source: Option<String>,
}

/// A contact's fields as a create or a patch carries them. In a patch an absent field is
/// left alone, `null` clears it; `phones`, `emails` and `tags` replace the whole list;
/// `attributes` are merged key by key (a `null` value removes the key); `consent` is set per
/// channel named.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// Replaces every phone of the contact.
    pub phones: Option<Vec<PhoneIn>>,
    /// Replaces every email of the contact.
    pub emails: Option<Vec<EmailIn>>,
    /// Replaces every tag of the contact.
    pub tags: Option<Vec<String>>,
    /// Custom attributes, merged key by key; a `null` value removes the key.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
    /// A company of the organization; `null` detaches the contact.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub company_id: Option<Option<String>>,
    /// The contact's id in another system, unique in the organization.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// Consent per channel named; channels not named are left alone.
    pub consent: Option<std::collections::BTreeMap<String, ConsentIn>>,
}

pub async fn exists(conn: &mut SqliteConnection, org_id: &str, id: &str) -> CrmResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n > 0)
}

pub async fn get_row(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
) -> CrmResult<Option<ContactRow>> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, phone_e164, display_name, first_name, last_name, company_id,
                external_id, attributes, created_at, updated_at
         FROM contacts WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

pub async fn get_full(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
) -> CrmResult<Option<ContactFull>> {
    Ok(load_many(conn, org_id, &[id.to_string()]).await?.pop())
}

fn push_id_list(qb: &mut QueryBuilder<Sqlite>, ids: &[String]) {
    qb.push(" IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.clone());
    }
    qb.push(")");
}

/// Contacts of the organization with these ids, in the order given (unknown ids skipped).
pub async fn load_many(
    conn: &mut SqliteConnection,
    org_id: &str,
    ids: &[String],
) -> CrmResult<Vec<ContactFull>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT id, org_id, phone_e164, display_name, first_name, last_name, company_id,
                external_id, attributes, created_at, updated_at
         FROM contacts WHERE org_id = ",
    );
    qb.push_bind(org_id.to_string()).push(" AND id");
    push_id_list(&mut qb, ids);
    let rows: Vec<ContactRow> = qb.build_query_as().fetch_all(&mut *conn).await?;

    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT contact_id, phone_e164, is_primary, label FROM contact_phones WHERE org_id = ",
    );
    qb.push_bind(org_id.to_string()).push(" AND contact_id");
    push_id_list(&mut qb, ids);
    qb.push(" ORDER BY is_primary DESC, created_at, phone_e164");
    let phones: Vec<PhoneRow> = qb.build_query_as().fetch_all(&mut *conn).await?;

    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT contact_id, email, is_primary FROM contact_emails WHERE org_id = ",
    );
    qb.push_bind(org_id.to_string()).push(" AND contact_id");
    push_id_list(&mut qb, ids);
    qb.push(" ORDER BY is_primary DESC, created_at, email");
    let emails: Vec<EmailRow> = qb.build_query_as().fetch_all(&mut *conn).await?;

    let mut qb =
        QueryBuilder::<Sqlite>::new("SELECT contact_id, tag FROM contact_tags WHERE org_id = ");
    qb.push_bind(org_id.to_string()).push(" AND contact_id");
    push_id_list(&mut qb, ids);
    qb.push(" ORDER BY tag");
    let tags: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;

    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT contact_id, channel, status, source, updated_at FROM contact_consents WHERE org_id = ",
    );
    qb.push_bind(org_id.to_string()).push(" AND contact_id");
    push_id_list(&mut qb, ids);
    let consents: Vec<ConsentRow> = qb.build_query_as().fetch_all(&mut *conn).await?;

    let mut out = Vec::with_capacity(rows.len());
    for id in ids {
        let Some(row) = rows.iter().find(|r| &r.id == id) else {
            continue;
        };
        out.push(ContactFull {
            row: row.clone(),
            phones: phones
                .iter()
                .filter(|p| &p.contact_id == id)
                .cloned()
                .collect(),
            emails: emails
                .iter()
                .filter(|e| &e.contact_id == id)
                .cloned()
                .collect(),
            tags: tags
                .iter()
                .filter(|(c, _)| c == id)
                .map(|(_, t)| t.clone())
                .collect(),
            consents: consents
                .iter()
                .filter(|c| &c.contact_id == id)
                .cloned()
                .collect(),
        });
    }
    Ok(out)
}

/// Creates a contact; returns its id.
pub async fn create(
    conn: &mut SqliteConnection,
    org_id: &str,
    input: ContactInput,
    region: &str,
) -> CrmResult<String> {
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO contacts (id, org_id, created_at, updated_at) VALUES ($1, $2, $3, $3)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    apply(conn, org_id, &id, input, region).await?;
    Ok(id)
}

/// Applies a create's or a patch's fields to an existing contact (see [`ContactInput`]).
pub async fn apply(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
    input: ContactInput,
    region: &str,
) -> CrmResult<()> {
    let mut row = get_row(conn, org_id, id)
        .await?
        .ok_or(CrmError::NotFound("contact"))?;
    let name = |field: &str, v: Option<String>| validate::text(field, v.as_deref(), MAX_NAME_CHARS);
    if let Some(v) = input.first_name {
        row.first_name = name("first_name", v)?;
    }
    if let Some(v) = input.last_name {
        row.last_name = name("last_name", v)?;
    }
    if let Some(v) = input.display_name {
        row.display_name = name("display_name", v)?;
    }
    if let Some(v) = input.company_id {
        row.company_id = match validate::text("company_id", v.as_deref(), MAX_ID_CHARS)? {
            None => None,
            Some(cid) => {
                if !super::companies::exists(conn, org_id, &cid).await? {
                    return Err(CrmError::NotFound("company"));
                }
                Some(cid)
            }
        };
    }
    if let Some(v) = input.external_id {
        row.external_id = validate::text("external_id", v.as_deref(), MAX_ID_CHARS)?;
        if let Some(ext) = &row.external_id {
            let other: Option<String> = sqlx::query_scalar(
                "SELECT id FROM contacts WHERE org_id = $1 AND external_id = $2 AND id <> $3",
            )
            .bind(org_id)
            .bind(ext)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(other) = other {
                return Err(CrmError::Conflict {
                    message: format!("external_id {ext:?} belongs to another contact"),
                    details: json!({ "field": "external_id", "contact_id": other }),
                });
            }
        }
    }
    if let Some(v) = input.attributes {
        let patch = validate::attributes(&v)?;
        let mut attrs: Map<String, Value> =
            serde_json::from_str(&row.attributes).unwrap_or_default();
        validate::merge_attributes(&mut attrs, patch);
        validate::check_attributes_size(&attrs)?;
        row.attributes = Value::Object(attrs).to_string();
    }
    sqlx::query(
        "UPDATE contacts SET first_name = $3, last_name = $4, display_name = $5, company_id = $6,
            external_id = $7, attributes = $8, updated_at = $9
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .bind(&row.first_name)
    .bind(&row.last_name)
    .bind(&row.display_name)
    .bind(&row.company_id)
    .bind(&row.external_id)
    .bind(&row.attributes)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    if let Some(phones) = input.phones {
        set_phones(conn, org_id, id, &phones, region).await?;
    }
    if let Some(emails) = input.emails {
        set_emails(conn, org_id, id, &emails).await?;
    }
    if let Some(tags) = input.tags {
        set_tags(conn, org_id, id, &validate::tags(&tags)?).await?;
    }
    if let Some(consent) = input.consent {
        for (channel, c) in consent {
            set_consent(conn, org_id, id, &channel, &c.status, c.source.as_deref()).await?;
        }
    }
    reindex_names(conn, org_id, id).await
}

/// Replaces the contact's phones. The primary is the one marked so, else the first.
pub async fn set_phones(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
    phones: &[PhoneIn],
    region: &str,
) -> CrmResult<()> {
    let mut list: Vec<(String, bool, Option<String>)> = Vec::new();
    for p in phones {
        let (raw, primary, label) = match p {
            PhoneIn::Plain(n) => (n.as_str(), false, None),
            PhoneIn::Full {
                number,
                primary,
                label,
            } => (number.as_str(), *primary, label.as_deref()),
        };
        let e164 = normalize_phone(raw, region).ok_or_else(|| {
            CrmError::invalid(format!(
                "phones: {raw:?} is not a valid phone number (region {region})"
            ))
        })?;
        let label = validate::text("phones.label", label, 64)?;
        if !list.iter().any(|(n, _, _)| *n == e164) {
            list.push((e164, primary, label));
        }
    }
    if list.len() > MAX_PHONES {
        return Err(CrmError::invalid(format!("phones: more than {MAX_PHONES}")));
    }
    let primary_at = list.iter().position(|(_, p, _)| *p).unwrap_or(0);
    for (phone, _, _) in &list {
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT contact_id FROM contact_phones WHERE org_id = $1 AND phone_e164 = $2 AND contact_id <> $3",
        )
        .bind(org_id)
        .bind(phone)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(owner) = owner {
            return Err(CrmError::Conflict {
                message: format!("phone {phone} belongs to another contact"),
                details: json!({ "field": "phones", "phone": phone, "contact_id": owner }),
            });
        }
    }
    sqlx::query("DELETE FROM contact_phones WHERE org_id = $1 AND contact_id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let now = now_ms();
    for (i, (phone, _, label)) in list.iter().enumerate() {
        sqlx::query(
            "INSERT INTO contact_phones (org_id, contact_id, phone_e164, is_primary, label, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(org_id)
        .bind(id)
        .bind(phone)
        .bind(i == primary_at)
        .bind(label)
        .bind(now + i as i64)
        .execute(&mut *conn)
        .await?;
    }
    sync_primary_phone(conn, org_id, id).await
}

/// Copies the primary phone to `contacts.phone_e164` (NULL when the contact has none).
pub async fn sync_primary_phone(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
) -> CrmResult<()> {
    sqlx::query(
        "UPDATE contacts SET phone_e164 = (SELECT phone_e164 FROM contact_phones
             WHERE org_id = $1 AND contact_id = $2 AND is_primary = 1 LIMIT 1)
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces the contact's emails (lower-cased; the primary is the one marked so, else the
/// first).
pub async fn set_emails(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
    emails: &[EmailIn],
) -> CrmResult<()> {
    let mut list: Vec<(String, bool)> = Vec::new();
    for e in emails {
        let (raw, primary) = match e {
            EmailIn::Plain(s) => (s.as_str(), false),
            EmailIn::Full { email, primary } => (email.as_str(), *primary),
        };
        let email = validate::email(raw)?;
        if !list.iter().any(|(x, _)| *x == email) {
            list.push((email, primary));
        }
    }
    if list.len() > MAX_EMAILS {
        return Err(CrmError::invalid(format!("emails: more than {MAX_EMAILS}")));
    }
    let primary_at = list.iter().position(|(_, p)| *p).unwrap_or(0);
    for (email, _) in &list {
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT contact_id FROM contact_emails WHERE org_id = $1 AND email = $2 AND contact_id <> $3",
        )
        .bind(org_id)
        .bind(email)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(owner) = owner {
            return Err(CrmError::Conflict {
                message: format!("email {email} belongs to another contact"),
                details: json!({ "field": "emails", "email": email, "contact_id": owner }),
            });
        }
    }
    sqlx::query("DELETE FROM contact_emails WHERE org_id = $1 AND contact_id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let now = now_ms();
    for (i, (email, _)) in list.iter().enumerate() {
        sqlx::query(
            "INSERT INTO contact_emails (org_id, contact_id, email, is_primary, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org_id)
        .bind(id)
        .bind(email)
        .bind(i == primary_at)
        .bind(now + i as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn set_tags(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
    tags: &[String],
) -> CrmResult<()> {
    sqlx::query("DELETE FROM contact_tags WHERE org_id = $1 AND contact_id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for t in tags {
        sqlx::query("INSERT INTO contact_tags (org_id, contact_id, tag) VALUES ($1, $2, $3)")
            .bind(org_id)
            .bind(id)
            .bind(t)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn set_consent(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
    channel: &str,
    status: &str,
    source: Option<&str>,
) -> CrmResult<()> {
    if !CHANNELS.contains(&channel) {
        return Err(CrmError::invalid(format!(
            "consent: unknown channel {channel:?} (one of {})",
            CHANNELS.join(", ")
        )));
    }
    if !CONSENT_STATUSES.contains(&status) {
        return Err(CrmError::invalid(format!(
            "consent.{channel}.status: {status:?} is not one of {}",
            CONSENT_STATUSES.join(", ")
        )));
    }
    let source = validate::text("consent.source", source, 200)?;
    sqlx::query(
        "INSERT INTO contact_consents (org_id, contact_id, channel, status, source, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (contact_id, channel) DO UPDATE SET status = excluded.status,
            source = excluded.source, updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(id)
    .bind(channel)
    .bind(status)
    .bind(source)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rebuilds the contact's name tokens from its first, last and display names.
pub async fn reindex_names(conn: &mut SqliteConnection, org_id: &str, id: &str) -> CrmResult<()> {
    let row = get_row(conn, org_id, id)
        .await?
        .ok_or(CrmError::NotFound("contact"))?;
    sqlx::query("DELETE FROM contact_name_tokens WHERE org_id = $1 AND contact_id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let names = [&row.first_name, &row.last_name, &row.display_name];
    for token in name_tokens(names.iter().filter_map(|n| n.as_deref())) {
        sqlx::query(
            "INSERT INTO contact_name_tokens (org_id, contact_id, token) VALUES ($1, $2, $3)",
        )
        .bind(org_id)
        .bind(id)
        .bind(token)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Name-token matches from which a single-word search walks contacts in order instead.
const COMMON_PREFIX: i64 = 1000;

/// How many name tokens start with `prefix`, counted up to [`COMMON_PREFIX`] (an index range
/// scan of at most that many entries).
async fn prefix_matches(conn: &mut SqliteConnection, org_id: &str, prefix: &str) -> CrmResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM contact_name_tokens
           WHERE org_id = $1 AND token >= $2 AND token < $3 LIMIT $4)",
    )
    .bind(org_id)
    .bind(prefix)
    .bind(prefix_upper_bound(prefix))
    .bind(COMMON_PREFIX)
    .fetch_one(&mut *conn)
    .await?)
}

/// What a contact list is filtered by.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub query: Option<ContactQuery>,
    pub tag: Option<String>,
    pub company_id: Option<String>,
    /// Ids lower than this (the last id of the previous page).
    pub before_id: Option<String>,
}

/// Ids of matching contacts, newest first (ids are UUIDv7), at most `limit`. Each condition
/// is an indexed lookup (phone, email prefix, name-token prefix, tag).
pub async fn search(
    conn: &mut SqliteConnection,
    org_id: &str,
    f: &ContactFilter,
    limit: i64,
) -> CrmResult<Vec<String>> {
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT c.id FROM contacts c WHERE c.org_id = ");
    qb.push_bind(org_id.to_string());
    match &f.query {
        None => {}
        Some(ContactQuery::Nothing) => return Ok(Vec::new()),
        Some(ContactQuery::Phone(p)) => {
            qb.push(" AND c.id IN (SELECT contact_id FROM contact_phones WHERE org_id = ")
                .push_bind(org_id.to_string())
                .push(" AND phone_e164 = ")
                .push_bind(p.clone())
                .push(")");
        }
        Some(ContactQuery::Email(e)) => {
            qb.push(" AND c.id IN (SELECT contact_id FROM contact_emails WHERE org_id = ")
                .push_bind(org_id.to_string())
                .push(" AND email >= ")
                .push_bind(e.clone())
                .push(" AND email < ")
                .push_bind(prefix_upper_bound(e))
                .push(")");
        }
        Some(ContactQuery::Name(words)) => {
            // The rarest word drives (an index range, then the ids in order); the others are
            // checked per candidate on (contact_id, token). A single common word ("a") is
            // faster the other way round: walk contacts newest first and check each.
            let mut counted = Vec::with_capacity(words.len());
            for w in words {
                counted.push((prefix_matches(conn, org_id, w).await?, w.clone()));
            }
            counted.sort();
            let mut checked: Vec<String> = counted.iter().map(|(_, w)| w.clone()).collect();
            let drive =
                counted.len() > 1 || counted.first().is_some_and(|(n, _)| *n < COMMON_PREFIX);
            if drive && !checked.is_empty() {
                let w = checked.remove(0);
                qb.push(" AND c.id IN (SELECT contact_id FROM contact_name_tokens WHERE org_id = ")
                    .push_bind(org_id.to_string())
                    .push(" AND token >= ")
                    .push_bind(w.clone())
                    .push(" AND token < ")
                    .push_bind(prefix_upper_bound(&w))
                    .push(")");
            }
            for w in checked {
                qb.push(" AND EXISTS (SELECT 1 FROM contact_name_tokens t WHERE t.contact_id = c.id AND t.token >= ")
                    .push_bind(w.clone())
                    .push(" AND t.token < ")
                    .push_bind(prefix_upper_bound(&w))
                    .push(")");
            }
        }
    }
    if let Some(tag) = &f.tag {
        qb.push(" AND c.id IN (SELECT contact_id FROM contact_tags WHERE org_id = ")
            .push_bind(org_id.to_string())
            .push(" AND tag = ")
            .push_bind(tag.clone())
            .push(")");
    }
    if let Some(company) = &f.company_id {
        qb.push(" AND c.company_id = ").push_bind(company.clone());
    }
    if let Some(before) = &f.before_id {
        qb.push(" AND c.id < ").push_bind(before.clone());
    }
    qb.push(" ORDER BY c.id DESC LIMIT ").push_bind(limit);
    Ok(qb.build_query_scalar().fetch_all(&mut *conn).await?)
}

//! Merging a duplicate contact into another, in the caller's transaction: phones, emails,
//! tags, consent, attributes and empty fields move to the target (the target wins every
//! conflict); conversations, calls, timeline events, notes and tasks are re-pointed, so the
//! two timelines become one (a source conversation still open on a channel where the target
//! has one open too is resolved first); the source is deleted; a `contact.merged` timeline event and
//! webhook record it.

use serde_json::{Map, Value, json};
use sqlx::SqliteConnection;

use super::contacts::{self, get_row};
use super::{CONTACT_MERGED, CrmError, CrmResult};
use crate::ids::now_ms;
use crate::store::timeline;

/// Tables whose rows follow the contact, with the count each moved.
const REPOINTED: &[&str] = &[
    "conversations",
    "calls",
    "timeline_events",
    "notes",
    "tasks",
    // How a channel knows the person (WhatsApp id, an API channel's identifier).
    "channel_contacts",
];

pub async fn merge(
    conn: &mut SqliteConnection,
    org_id: &str,
    target: &str,
    source: &str,
) -> CrmResult<Value> {
    let into = get_row(conn, org_id, target)
        .await?
        .ok_or(CrmError::NotFound("contact"))?;
    let from = get_row(conn, org_id, source)
        .await?
        .ok_or(CrmError::NotFound("contact"))?;
    if target == source {
        return Err(CrmError::invalid(
            "from: a contact cannot be merged into itself",
        ));
    }

    // The source's unique values are released first so the target may take them.
    sqlx::query(
        "UPDATE contacts SET phone_e164 = NULL, external_id = NULL WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(source)
    .execute(&mut *conn)
    .await?;

    let mut moved = Map::new();
    for (table, key) in [
        ("contact_phones", "phone_e164"),
        ("contact_emails", "email"),
    ] {
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET contact_id = $3, is_primary = 0 WHERE org_id = $1 AND contact_id = $2"
        )))
        .bind(org_id)
        .bind(source)
        .bind(target)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        moved.insert(table.trim_start_matches("contact_").into(), json!(n));
        // A target that had none takes the source's first as its primary.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET is_primary = 1 WHERE org_id = $1 AND contact_id = $2
               AND NOT EXISTS (SELECT 1 FROM {table} WHERE org_id = $1 AND contact_id = $2 AND is_primary = 1)
               AND {key} = (SELECT {key} FROM {table} WHERE org_id = $1 AND contact_id = $2
                            ORDER BY created_at, {key} LIMIT 1)"
        )))
        .bind(org_id)
        .bind(target)
        .execute(&mut *conn)
        .await?;
    }
    contacts::sync_primary_phone(conn, org_id, target).await?;

    let tags = sqlx::query(
        "INSERT INTO contact_tags (org_id, contact_id, tag)
         SELECT org_id, $3, tag FROM contact_tags WHERE org_id = $1 AND contact_id = $2
         ON CONFLICT (contact_id, tag) DO NOTHING",
    )
    .bind(org_id)
    .bind(source)
    .bind(target)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    moved.insert("tags".into(), json!(tags));
    sqlx::query(
        "INSERT INTO contact_consents (org_id, contact_id, channel, status, source, updated_at)
         SELECT org_id, $3, channel, status, source, updated_at FROM contact_consents
         WHERE org_id = $1 AND contact_id = $2
         ON CONFLICT (contact_id, channel) DO NOTHING",
    )
    .bind(org_id)
    .bind(source)
    .bind(target)
    .execute(&mut *conn)
    .await?;

    // One open conversation per contact and channel: where both have one on the same
    // channel, the target's stays open and the source's is resolved (its messages stay on
    // the merged timeline); the next inbound message joins the target's.
    let resolved = sqlx::query(
        "UPDATE conversations SET status = 'resolved', snoozed_until = NULL, updated_at = $4
         WHERE org_id = $1 AND contact_id = $2 AND channel_id IS NOT NULL AND status <> 'resolved'
           AND EXISTS (SELECT 1 FROM conversations t
                       WHERE t.org_id = $1 AND t.contact_id = $3
                         AND t.channel_id = conversations.channel_id AND t.status <> 'resolved')",
    )
    .bind(org_id)
    .bind(source)
    .bind(target)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    moved.insert("conversations_resolved".into(), json!(resolved));

    for table in REPOINTED {
        let n = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET contact_id = $3 WHERE org_id = $1 AND contact_id = $2"
        )))
        .bind(org_id)
        .bind(source)
        .bind(target)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        moved.insert((*table).into(), json!(n));
    }

    // Attributes: the source's, overwritten by the target's.
    let mut attrs: Map<String, Value> = serde_json::from_str(&from.attributes).unwrap_or_default();
    let own: Map<String, Value> = serde_json::from_str(&into.attributes).unwrap_or_default();
    attrs.extend(own);
    sqlx::query(
        "UPDATE contacts SET first_name = $3, last_name = $4, display_name = $5, company_id = $6,
            external_id = $7, attributes = $8, updated_at = $9
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(target)
    .bind(into.first_name.clone().or(from.first_name.clone()))
    .bind(into.last_name.clone().or(from.last_name.clone()))
    .bind(into.display_name.clone().or(from.display_name.clone()))
    .bind(into.company_id.clone().or(from.company_id.clone()))
    .bind(into.external_id.clone().or(from.external_id.clone()))
    .bind(Value::Object(attrs).to_string())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;

    sqlx::query("DELETE FROM contacts WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(source)
        .execute(&mut *conn)
        .await?;
    contacts::reindex_names(conn, org_id, target).await?;

    let moved = Value::Object(moved);
    let payload = json!({ "into": target, "merged_from": source, "moved": moved });
    timeline::record_event(
        conn,
        org_id,
        &timeline::NewEvent {
            contact_id: Some(target),
            conversation_id: None,
            kind: CONTACT_MERGED,
            ref_id: source,
            payload: &payload,
            occurred_at: now_ms(),
        },
    )
    .await?;
    let view = contacts::get_full(conn, org_id, target)
        .await?
        .map(|c| json!(contacts::view(&c)))
        .unwrap_or(Value::Null);
    crate::webhooks::enqueue_event_in(
        conn,
        org_id,
        CONTACT_MERGED,
        json!({ "contact": view, "merged_from": source, "moved": moved }),
    )
    .await?;
    Ok(moved)
}

//! The one path every inbound message takes, whatever the channel: resolve the contact from
//! its channel identity, find or open the conversation, store the message once.

use sqlx::SqliteConnection;

use super::MessagingError;
use super::channels::Channel;
use super::conversations;
use super::events::Emitter;
use super::messages::{self, Message, NewMessage};
use super::model::{Direction, SenderType};
use crate::ids::{new_id, now_ms};
use crate::store::contacts::find_or_create_by_phone;

/// Who sent it, as the channel names them.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The channel's id of the person: WhatsApp wa_id, or the API caller's identifier.
    pub source_id: String,
    /// E.164, when the channel tells us the phone number.
    pub phone_e164: Option<String>,
    pub name: Option<String>,
}

pub enum Ingested {
    Created(Message),
    /// The external id was seen before on this channel: nothing changed.
    Duplicate(Message),
}

/// The contact behind `sender` on `channel`, created (and linked) on first contact. A phone
/// number links to the organization's contact with that number, so a call from a number
/// that messaged us lands in the same contact.
pub async fn resolve_contact(
    conn: &mut SqliteConnection,
    channel: &Channel,
    sender: &Sender,
) -> Result<String, MessagingError> {
    // The link and whether its contact still lacks a name, in one read: a returning sender
    // (the common case) then costs no write here.
    let linked: Option<(String, Option<bool>)> = sqlx::query_as(
        "SELECT l.contact_id, c.display_name IS NULL FROM channel_contacts l
         LEFT JOIN contacts c ON c.id = l.contact_id
         WHERE l.channel_id = $1 AND l.source_id = $2",
    )
    .bind(&channel.id)
    .bind(&sender.source_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (contact_id, unnamed) = match linked {
        Some((id, unnamed)) => (id, unnamed.unwrap_or(false)),
        None => {
            let id = match &sender.phone_e164 {
                Some(phone) => {
                    find_or_create_by_phone(conn, &channel.org_id, phone)
                        .await?
                        .id
                }
                None => {
                    let id = new_id();
                    let now = now_ms();
                    sqlx::query(
                        "INSERT INTO contacts (id, org_id, display_name, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $4)",
                    )
                    .bind(&id)
                    .bind(&channel.org_id)
                    .bind(&sender.name)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    id
                }
            };
            sqlx::query(
                "INSERT INTO channel_contacts (channel_id, source_id, org_id, contact_id, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&channel.id)
            .bind(&sender.source_id)
            .bind(&channel.org_id)
            .bind(&id)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?;
            // A contact found by phone may have no name yet; the UPDATE's own condition
            // decides.
            (id, true)
        }
    };
    if unnamed && let Some(name) = &sender.name {
        // The profile name only fills a gap: a name an agent typed wins.
        sqlx::query(
            "UPDATE contacts SET display_name = $1, updated_at = $2
             WHERE org_id = $3 AND id = $4 AND display_name IS NULL",
        )
        .bind(name)
        .bind(now_ms())
        .bind(&channel.org_id)
        .bind(&contact_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(contact_id)
}

/// Store one inbound message (idempotent on its external id) inside the caller's
/// transaction.
pub async fn ingest(
    conn: &mut SqliteConnection,
    emitter: &Emitter,
    channel: &Channel,
    sender: &Sender,
    mut message: NewMessage,
) -> Result<Ingested, MessagingError> {
    if let Some(ext) = &message.external_id
        && let Some(existing) = messages::find_by_external_id(conn, &channel.id, ext).await?
    {
        return Ok(Ingested::Duplicate(existing));
    }
    let contact_id = resolve_contact(conn, channel, sender).await?;
    if message.sender_type == SenderType::Contact {
        message.sender_id = Some(contact_id.clone());
    }
    let (conversation, _) =
        conversations::find_or_open(conn, emitter, channel, &contact_id, message.occurred_at)
            .await?;
    let text = (channel.kind == "whatsapp" && message.direction == Direction::Inbound)
        .then(|| message.content.clone())
        .flatten();
    let m = messages::insert(conn, emitter, channel, &conversation, message).await?;
    super::keywords::apply(conn, &channel.org_id, &contact_id, text.as_deref()).await?;
    Ok(Ingested::Created(m))
}

//! WhatsApp sends cut off by a stop of the server. An outbound message is committed `queued`
//! before the Graph API is called (so nothing is lost), and the answer moves it on; a process
//! that died in between leaves it `queued` forever. At start-up no send of this process is in
//! flight yet, so every `queued` WhatsApp message is such a leftover: it is marked `failed`
//! with `send_interrupted` (and `message.updated` goes out), so the agent sees it and can
//! send again. It is not re-sent automatically: Meta may already have delivered it, and a
//! customer getting a message twice is worse than an agent deciding.

use sqlx::SqlitePool;

use super::MessagingError;
use super::events::Emitter;
use super::messages::{Message, StatusChange, apply_status};
use super::model::DeliveryStatus;
use crate::ids::now_ms;

/// Leftovers handled per start-up (a bound; more would be handled at the next start).
const MAX_PER_START: i64 = 10_000;

pub const INTERRUPTED_CODE: &str = "send_interrupted";

/// Marks every interrupted WhatsApp send failed; returns how many.
pub async fn fail_interrupted_sends(pool: &SqlitePool) -> Result<usize, MessagingError> {
    let stuck: Vec<Message> = sqlx::query_as(
        "SELECT m.* FROM messages m JOIN channels ch ON ch.id = m.channel_id
         WHERE m.status = 'queued' AND m.direction = 'outbound' AND ch.kind = 'whatsapp'
         ORDER BY m.org_id LIMIT $1",
    )
    .bind(MAX_PER_START)
    .fetch_all(pool)
    .await?;
    let mut failed = 0;
    let mut org_messages = stuck.into_iter().peekable();
    while let Some(first) = org_messages.next() {
        let org_id = first.org_id.clone();
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let emitter = Emitter::load(&mut tx, &org_id).await?;
        let mut batch = vec![first];
        while let Some(m) = org_messages.next_if(|m| m.org_id == org_id) {
            batch.push(m);
        }
        for m in batch {
            let change = StatusChange {
                status: DeliveryStatus::Failed,
                at: now_ms(),
                error_code: Some(INTERRUPTED_CODE.into()),
                error_message: Some(
                    "callscope stopped before Meta confirmed this send; it may or may not have been delivered"
                        .into(),
                ),
                external_id: None,
            };
            let (_, moved) = apply_status(&mut tx, &emitter, "whatsapp", m, change).await?;
            failed += usize::from(moved);
        }
        tx.commit().await?;
    }
    if failed > 0 {
        tracing::warn!(
            messages = failed,
            "WhatsApp sends interrupted by the last stop were marked failed (send_interrupted)"
        );
    }
    Ok(failed)
}

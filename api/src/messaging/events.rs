//! Side effects of a messaging change, written in the change's own transaction: a timeline
//! row (what an agent sees on the contact) and an outbox row per subscribed webhook endpoint
//! (what integrations receive). Either both exist with the change or none does.

use serde_json::Value;
use sqlx::SqliteConnection;

use super::MessagingError;
use crate::store::timeline::{NewEvent, record_event};
use crate::webhooks::{Subscribers, enqueue_event_to};

/// The organization's webhook subscribers, loaded once per transaction.
pub struct Emitter {
    pub org_id: String,
    subscribers: Subscribers,
}

/// A timeline entry to write with an event.
pub struct TimelineEntry<'a> {
    pub contact_id: Option<&'a str>,
    pub conversation_id: &'a str,
    /// Unique per (kind, ref): the message id, or a fresh id per status change.
    pub ref_id: &'a str,
    pub occurred_at: i64,
}

impl Emitter {
    pub async fn load(conn: &mut SqliteConnection, org_id: &str) -> Result<Self, MessagingError> {
        Ok(Self {
            org_id: org_id.to_string(),
            subscribers: Subscribers::load(conn, org_id).await?,
        })
    }

    /// Write `event` to the timeline (when given) and to the outbox.
    pub async fn emit(
        &self,
        conn: &mut SqliteConnection,
        event: &str,
        timeline: Option<TimelineEntry<'_>>,
        data: Value,
    ) -> Result<(), MessagingError> {
        if let Some(t) = timeline {
            record_event(
                conn,
                &self.org_id,
                &NewEvent {
                    contact_id: t.contact_id,
                    conversation_id: Some(t.conversation_id),
                    kind: event,
                    ref_id: t.ref_id,
                    payload: &data,
                    occurred_at: t.occurred_at,
                },
            )
            .await?;
        }
        enqueue_event_to(conn, &self.org_id, &self.subscribers, event, data).await?;
        Ok(())
    }
}

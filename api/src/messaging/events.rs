//! Side effects of a messaging change, written in the change's own transaction: a timeline
//! row (what an agent sees on the contact) and an outbox row per subscribed webhook endpoint
//! (what integrations receive). Either both exist with the change or none does.

use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::MessagingError;
use crate::store::timeline::{NewEvent, NewEventRow, push_record_events, record_event};
use crate::webhooks::outbox::{BatchEvent, push_enqueue_events};
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

/// One event of [`Emitter::push_emit_all`], its data already serialized once for both the
/// timeline and the realtime stream.
pub struct Emission<'a> {
    pub event_id: &'a str,
    pub timeline: Option<TimelineEntry<'a>>,
    pub data: &'a Value,
    pub data_json: &'a str,
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

    /// [`Self::emit`] for many events of one kind, appended to `b` as multi-row statements
    /// (timeline, realtime and outbox rows) that the caller runs with its own in one round
    /// trip.
    pub fn push_emit_all(
        &self,
        b: &mut QueryBuilder<Sqlite>,
        event: &str,
        items: &[Emission<'_>],
    ) -> Result<(), MessagingError> {
        let rows: Vec<NewEventRow<'_>> = items
            .iter()
            .filter_map(|e| {
                let t = e.timeline.as_ref()?;
                Some(NewEventRow {
                    contact_id: t.contact_id,
                    conversation_id: Some(t.conversation_id),
                    kind: event,
                    ref_id: t.ref_id,
                    payload_json: e.data_json,
                    occurred_at: t.occurred_at,
                })
            })
            .collect();
        push_record_events(b, &self.org_id, &rows);
        let events: Vec<BatchEvent<'_>> = items
            .iter()
            .map(|e| BatchEvent {
                event_id: e.event_id,
                data: e.data,
                data_json: e.data_json,
            })
            .collect();
        push_enqueue_events(b, &self.org_id, &self.subscribers, event, &events)?;
        Ok(())
    }
}

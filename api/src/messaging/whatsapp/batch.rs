//! The ingestion writer's fast path: all inbound messages of a group-commit batch stored with
//! a few statements per batch instead of seven or more per message. Each statement is a
//! hand-off to the connection's SQLite worker thread and back (two context switches), and
//! those hand-offs, not SQLite's own work, were what kept the single writer at one core.
//!
//! Per batch, two round trips: one multi-statement read (per channel: which wamids are
//! stored, the senders' channel links, the linked senders' open conversations) and one
//! multi-statement write (multi-row INSERTs of the messages, their timeline events and
//! realtime/outbox rows, and the UPDATE of the conversations' last activity). What is rare stays on the per-message path of
//! [`inbound`](crate::messaging::inbound) and [`conversations`]: a new sender (contact and
//! link created), a conversation to open or to wake from snooze, a STOP/START keyword.
//!
//! Semantics are the per-message path's: a wamid seen before on the channel — in the
//! database or earlier in the same batch — is a duplicate and changes nothing; messages are
//! stored in batch order (ids are time-ordered), and each `message.created` carries the
//! conversation as it was before that message, as the per-message path wrote it. When a
//! statement fails for a reason of one row, the caller cannot tell which notification it was
//! from here: it rolls back and stores the batch one notification at a time instead.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::{FromRow, QueryBuilder, Row as _, Sqlite, SqliteConnection};

use crate::ids::{new_id, now_ms};
use crate::messaging::MessagingError;
use crate::messaging::channels::Channel;
use crate::messaging::conversations::{self, Conversation};
use crate::messaging::events::{Emission, Emitter, TimelineEntry};
use crate::messaging::inbound::{self, Sender};
use crate::messaging::keywords;
use crate::messaging::messages::{self, Message, NewMessage};
use crate::messaging::model::{Direction, SenderType};
use crate::store::batch::chunks;

/// One inbound message of the batch, in batch order.
pub struct Incoming<'a> {
    pub channel: &'a Arc<Channel>,
    pub sender: &'a Sender,
    pub message: &'a NewMessage,
}

#[derive(Debug, Default, PartialEq)]
pub struct Stored {
    pub created: u64,
    pub duplicates: u64,
}

/// Store `batch` in the caller's transaction. `emitters` holds every organization of the
/// batch (the caller loads them once per transaction).
pub async fn store_messages(
    conn: &mut SqliteConnection,
    emitters: &HashMap<String, Emitter>,
    batch: &[Incoming<'_>],
) -> Result<Stored, MessagingError> {
    let mut stored = Stored::default();
    let known = read_known(conn, batch).await?;
    let fresh = without_duplicates(batch, &known.wamids, &mut stored);
    if fresh.is_empty() {
        return Ok(stored);
    }
    let contacts = resolve_contacts(conn, &fresh, known.links).await?;
    let mut open =
        conversations_for(conn, emitters, &fresh, &contacts, known.conversations).await?;

    // The rows, built in batch order; each event carries the conversation as it was before
    // its message (what the per-message path read), then the conversation moves on.
    let now = now_ms();
    let mut rows: Vec<Row> = Vec::with_capacity(fresh.len());
    for (incoming, contact_id) in fresh.iter().zip(&contacts) {
        let key = (incoming.channel.id.clone(), contact_id.clone());
        let Some(conversation) = open.get_mut(&key) else {
            // `conversations_for` found or opened one for every message.
            return Err(MessagingError::NotFound("conversation"));
        };
        let m = message_row(incoming, contact_id, conversation, now)?;
        let data = json!({
            "message": messages::view(&m, &incoming.channel.kind),
            "conversation": conversations::view(conversation),
        });
        conversation.last_activity_at = conversation.last_activity_at.max(m.created_at);
        conversation.updated_at = Some(now);
        let keyword_text = (incoming.channel.kind == "whatsapp"
            && m.direction == Direction::Inbound.as_str())
        .then(|| m.content.clone())
        .flatten();
        rows.push(Row {
            event_id: new_id(),
            data_json: data.to_string(),
            data,
            keyword_text,
            m,
        });
    }
    write_rows(conn, emitters, &rows, &open, now).await?;
    // Consent keywords after their messages, as on the per-message path.
    for r in &rows {
        if let Some(contact_id) = &r.m.contact_id {
            keywords::apply(conn, &r.m.org_id, contact_id, r.keyword_text.as_deref()).await?;
        }
    }
    stored.created = rows.len() as u64;
    Ok(stored)
}

struct Row {
    m: Message,
    event_id: String,
    data: Value,
    data_json: String,
    keyword_text: Option<String>,
}

/// What the database already holds about a batch, read in one round trip.
struct Known {
    /// (channel id, wamid) already stored.
    wamids: HashSet<(String, String)>,
    /// (channel id, source id) → (contact id, contact still without a name).
    links: HashMap<(String, String), (String, bool)>,
    /// (channel id, contact id) → the unresolved conversation of a linked sender.
    conversations: HashMap<(String, String), Conversation>,
}

/// One multi-statement query, per channel and chunk: which wamids are stored, the senders'
/// links (with "contact still unnamed?") and the linked senders' unresolved conversations
/// (found through the link, so this needs no answer from the links query). Each SELECT tags
/// its rows with a kind in the first column.
async fn read_known(
    conn: &mut SqliteConnection,
    batch: &[Incoming<'_>],
) -> Result<Known, MessagingError> {
    let mut by_channel: HashMap<&str, (Vec<&str>, Vec<&str>)> = HashMap::new();
    let mut seen_wamids: HashSet<(&str, &str)> = HashSet::new();
    let mut seen_sources: HashSet<(&str, &str)> = HashSet::new();
    for i in batch {
        let channel_id = i.channel.id.as_str();
        let (wamids, sources) = by_channel.entry(channel_id).or_default();
        if let Some(ext) = i.message.external_id.as_deref()
            && seen_wamids.insert((channel_id, ext))
        {
            wamids.push(ext);
        }
        if seen_sources.insert((channel_id, i.sender.source_id.as_str())) {
            sources.push(&i.sender.source_id);
        }
    }
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new("");
    let mut values = 0;
    for (channel_id, (wamids, sources)) in &by_channel {
        for range in chunks(wamids.len()) {
            b.push("SELECT 'w' AS kind, channel_id, external_id FROM messages WHERE channel_id = ")
                .push_bind(channel_id.to_string())
                .push(" AND external_id IN (");
            push_list(&mut b, &wamids[range]);
            b.push(");\n");
        }
        for range in chunks(sources.len()) {
            let part = &sources[range];
            b.push(
                "SELECT 'l' AS kind, l.channel_id, l.source_id, l.contact_id,
                     c.display_name IS NULL AS unnamed
                 FROM channel_contacts l LEFT JOIN contacts c ON c.id = l.contact_id
                 WHERE l.channel_id = ",
            )
            .push_bind(channel_id.to_string())
            .push(" AND l.source_id IN (");
            push_list(&mut b, part);
            b.push(");\n");
            b.push(
                "SELECT 'c' AS kind, v.* FROM channel_contacts l
                 JOIN conversations v ON v.org_id = l.org_id AND v.channel_id = l.channel_id
                     AND v.contact_id = l.contact_id
                 WHERE v.status <> 'resolved' AND l.channel_id = ",
            )
            .push_bind(channel_id.to_string())
            .push(" AND l.source_id IN (");
            push_list(&mut b, part);
            b.push(");\n");
        }
        values += wamids.len() + sources.len();
    }
    let rows = b
        .build()
        .persistent(values <= 2 * KEEP_PREPARED_UP_TO)
        .fetch_all(&mut *conn)
        .await?;
    let mut known = Known {
        wamids: HashSet::new(),
        links: HashMap::new(),
        conversations: HashMap::new(),
    };
    for row in rows {
        let kind: String = row.try_get(0)?;
        match kind.as_str() {
            "w" => {
                known
                    .wamids
                    .insert((row.try_get("channel_id")?, row.try_get("external_id")?));
            }
            "l" => {
                let unnamed: Option<bool> = row.try_get("unnamed")?;
                known.links.insert(
                    (row.try_get("channel_id")?, row.try_get("source_id")?),
                    (row.try_get("contact_id")?, unnamed.unwrap_or(false)),
                );
            }
            _ => {
                let c = Conversation::from_row(&row)?;
                if let (Some(channel_id), Some(contact_id)) =
                    (c.channel_id.clone(), c.contact_id.clone())
                {
                    known
                        .conversations
                        .entry((channel_id, contact_id))
                        .or_insert(c);
                }
            }
        }
    }
    Ok(known)
}

fn push_list(b: &mut QueryBuilder<Sqlite>, values: &[&str]) {
    let mut list = b.separated(", ");
    for v in values {
        list.push_bind(v.to_string());
    }
}

/// The messages of `batch` not stored before, in batch order: not among the stored
/// `wamids`, and not a repeat of an earlier message of the batch (the first one wins).
fn without_duplicates<'b, 'a>(
    batch: &'b [Incoming<'a>],
    stored_wamids: &HashSet<(String, String)>,
    stored: &mut Stored,
) -> Vec<&'b Incoming<'a>> {
    let mut taken: HashSet<(&str, &str)> = HashSet::new();
    let mut fresh = Vec::with_capacity(batch.len());
    for i in batch {
        if let Some(ext) = i.message.external_id.as_deref() {
            let key = (i.channel.id.as_str(), ext);
            if stored_wamids.contains(&(key.0.to_string(), key.1.to_string())) || !taken.insert(key)
            {
                stored.duplicates += 1;
                continue;
            }
        }
        fresh.push(i);
    }
    fresh
}

/// The contact of each message of `fresh` (same order). Known senders (`links`): a
/// display-name fill only where the contact has none; new senders go through
/// [`inbound::resolve_contact`] (creates the contact or links the one with that phone).
async fn resolve_contacts(
    conn: &mut SqliteConnection,
    fresh: &[&Incoming<'_>],
    mut links: HashMap<(String, String), (String, bool)>,
) -> Result<Vec<String>, MessagingError> {
    let mut out = Vec::with_capacity(fresh.len());
    for i in fresh {
        let key = (i.channel.id.clone(), i.sender.source_id.clone());
        let contact_id = match links.get_mut(&key) {
            Some((contact_id, unnamed)) => {
                if *unnamed && let Some(name) = &i.sender.name {
                    // The profile name only fills a gap: a name an agent typed wins.
                    sqlx::query(
                        "UPDATE contacts SET display_name = $1, updated_at = $2
                         WHERE org_id = $3 AND id = $4 AND display_name IS NULL",
                    )
                    .bind(name)
                    .bind(now_ms())
                    .bind(&i.channel.org_id)
                    .bind(&*contact_id)
                    .execute(&mut *conn)
                    .await?;
                    *unnamed = false;
                }
                contact_id.clone()
            }
            None => {
                let contact_id = inbound::resolve_contact(conn, i.channel, i.sender).await?;
                // Named now if the sender gave a name; else a later message may still fill
                // it (the UPDATE's own condition keeps a name that exists).
                links.insert(key, (contact_id.clone(), i.sender.name.is_none()));
                contact_id
            }
        };
        out.push(contact_id);
    }
    Ok(out)
}

/// The unresolved conversation of each (channel, contact) of the batch, starting from the
/// linked senders' ones (`open`); a snoozed one is woken and a missing one opened on the
/// per-message path (with their own events, written before the messages' events).
async fn conversations_for(
    conn: &mut SqliteConnection,
    emitters: &HashMap<String, Emitter>,
    fresh: &[&Incoming<'_>],
    contacts: &[String],
    mut open: HashMap<(String, String), Conversation>,
) -> Result<HashMap<(String, String), Conversation>, MessagingError> {
    // Only the batch's conversations: the UPDATE of last activity touches all of `open`.
    let wanted: HashSet<(&str, &str)> = fresh
        .iter()
        .zip(contacts)
        .map(|(i, c)| (i.channel.id.as_str(), c.as_str()))
        .collect();
    open.retain(|(channel_id, contact_id), _| {
        wanted.contains(&(channel_id.as_str(), contact_id.as_str()))
    });
    for (i, contact_id) in fresh.iter().zip(contacts) {
        let Some(emitter) = emitters.get(&i.channel.org_id) else {
            return Err(MessagingError::NotFound("organization"));
        };
        let key = (i.channel.id.clone(), contact_id.clone());
        match open.remove(&key) {
            Some(c) => {
                let c = conversations::woken_by_inbound(conn, emitter, c).await?;
                open.insert(key, c);
            }
            None => {
                let (c, _) = conversations::find_or_open(
                    conn,
                    emitter,
                    i.channel,
                    contact_id,
                    i.message.occurred_at,
                )
                .await?;
                open.insert(key, c);
            }
        }
    }
    Ok(open)
}

/// The row `messages::insert` would write for `incoming`, sent by `contact_id`.
fn message_row(
    incoming: &Incoming<'_>,
    contact_id: &str,
    conversation: &Conversation,
    now: i64,
) -> Result<Message, MessagingError> {
    let mut new = incoming.message.clone();
    if new.sender_type == SenderType::Contact {
        new.sender_id = Some(contact_id.to_string());
    }
    Ok(Message::new_row(incoming.channel, conversation, new, now)?)
}

/// Batches of at most this many messages have few enough distinct write texts to keep them
/// prepared; larger ones (a different text for nearly every size) are prepared, run and
/// finalized, so they do not push the writer's other statements out of sqlx's cache.
const KEEP_PREPARED_UP_TO: usize = 8;

/// Every write of the batch — the messages, the conversations' last activity, then per
/// organization the `message.created` timeline, realtime and outbox rows, all in batch order
/// — as ONE multi-statement query: one round trip to the SQLite thread for all of them.
async fn write_rows(
    conn: &mut SqliteConnection,
    emitters: &HashMap<String, Emitter>,
    rows: &[Row],
    open: &HashMap<(String, String), Conversation>,
    now: i64,
) -> Result<(), MessagingError> {
    let mut b: QueryBuilder<Sqlite> = QueryBuilder::new("");
    push_messages(&mut b, rows);
    push_conversation_activity(&mut b, open, now);
    let mut orgs: Vec<&str> = Vec::new();
    for r in rows {
        if !orgs.contains(&r.m.org_id.as_str()) {
            orgs.push(&r.m.org_id);
        }
    }
    for org in orgs {
        let Some(emitter) = emitters.get(org) else {
            return Err(MessagingError::NotFound("organization"));
        };
        let items: Vec<Emission<'_>> = rows
            .iter()
            .filter(|r| r.m.org_id == org)
            .map(|r| Emission {
                event_id: &r.event_id,
                timeline: Some(TimelineEntry {
                    contact_id: r.m.contact_id.as_deref(),
                    conversation_id: &r.m.conversation_id,
                    ref_id: &r.m.id,
                    occurred_at: r.m.created_at,
                }),
                data: &r.data,
                data_json: &r.data_json,
            })
            .collect();
        emitter.push_emit_all(&mut b, "message.created", &items)?;
    }
    b.build()
        .persistent(rows.len() <= KEEP_PREPARED_UP_TO)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn push_messages(b: &mut QueryBuilder<Sqlite>, rows: &[Row]) {
    for range in chunks(rows.len()) {
        b.push(
            "INSERT INTO messages (id, org_id, conversation_id, channel_id, contact_id, direction,
                 sender_type, sender_id, content, content_type, attachments, content_attributes,
                 status, external_id, created_at, updated_at) ",
        );
        b.push_values(&rows[range], |mut v, r| {
            let m = &r.m;
            v.push_bind(m.id.clone())
                .push_bind(m.org_id.clone())
                .push_bind(m.conversation_id.clone())
                .push_bind(m.channel_id.clone())
                .push_bind(m.contact_id.clone())
                .push_bind(m.direction.clone())
                .push_bind(m.sender_type.clone())
                .push_bind(m.sender_id.clone())
                .push_bind(m.content.clone())
                .push_bind(m.content_type.clone())
                .push_bind(m.attachments.clone())
                .push_bind(m.content_attributes.clone())
                .push_bind(m.status.clone())
                .push_bind(m.external_id.clone())
                .push_bind(m.created_at)
                .push_bind(m.updated_at);
        });
        b.push(";\n");
    }
}

/// Each conversation's last activity moved to its newest message (the in-memory copies
/// already hold it), one UPDATE per chunk of conversations.
fn push_conversation_activity(
    b: &mut QueryBuilder<Sqlite>,
    open: &HashMap<(String, String), Conversation>,
    now: i64,
) {
    // Every conversation in `open` belongs to at least one message of the batch.
    let touched: Vec<&Conversation> = open.values().collect();
    for range in chunks(touched.len()) {
        b.push("WITH v(org_id, id, at) AS (");
        b.push_values(&touched[range], |mut v, c| {
            v.push_bind(c.org_id.clone())
                .push_bind(c.id.clone())
                .push_bind(c.last_activity_at);
        });
        b.push(
            ") UPDATE conversations SET last_activity_at = MAX(conversations.last_activity_at, v.at),
                 updated_at = ",
        )
        .push_bind(now)
        .push(" FROM v WHERE conversations.org_id = v.org_id AND conversations.id = v.id;\n");
    }
}

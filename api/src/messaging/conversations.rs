//! Conversations of the messaging channels: finding or opening the one an inbound message
//! belongs to, listing, and the inbox workflow (status, snooze, assignee, priority, labels).
//!
//! Threading rule (what Chatwoot's API and WhatsApp inboxes do by default): a contact has at
//! most one unresolved conversation per channel. An inbound message joins it (and wakes it
//! if snoozed); once it is resolved, the next inbound message starts a new conversation, so
//! a resolved case keeps its history closed.

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::MessagingError;
use super::channels::Channel;
use super::events::{Emitter, TimelineEntry};
use super::model::{ConversationStatus, Priority};
use crate::ids::{ms_to_rfc3339, new_id, now_ms};

const MAX_LABELS: usize = 20;
const MAX_LABEL_CHARS: usize = 50;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Conversation {
    pub id: String,
    pub org_id: String,
    pub contact_id: Option<String>,
    pub channel: String,
    pub channel_id: Option<String>,
    pub status: String,
    pub snoozed_until: Option<i64>,
    pub assignee_id: Option<String>,
    /// The team whose queue the conversation is in.
    pub team_id: Option<String>,
    pub priority: String,
    pub labels: String,
    pub started_at: i64,
    pub last_activity_at: i64,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl Conversation {
    pub fn status(&self) -> ConversationStatus {
        ConversationStatus::parse(&self.status).unwrap_or(ConversationStatus::Open)
    }

    pub fn labels(&self) -> Vec<String> {
        serde_json::from_str(&self.labels).unwrap_or_default()
    }
}

/// A conversation as the API and its events show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub contact_id: Option<String>,
    /// `voice`, `api` or `whatsapp`.
    pub channel: String,
    pub channel_id: Option<String>,
    /// `open`, `pending`, `resolved` or `snoozed`.
    pub status: String,
    #[schema(format = DateTime)]
    pub snoozed_until: Option<String>,
    pub assignee_id: Option<String>,
    /// The team whose queue it is in.
    pub team_id: Option<String>,
    /// `none`, `low`, `medium`, `high` or `urgent`.
    pub priority: String,
    pub labels: Vec<String>,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub last_activity_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

pub fn view(c: &Conversation) -> ConversationView {
    ConversationView {
        id: c.id.clone(),
        contact_id: c.contact_id.clone(),
        channel: c.channel.clone(),
        channel_id: c.channel_id.clone(),
        status: c.status.clone(),
        snoozed_until: c.snoozed_until.map(ms_to_rfc3339),
        assignee_id: c.assignee_id.clone(),
        team_id: c.team_id.clone(),
        priority: c.priority.clone(),
        labels: c.labels(),
        started_at: ms_to_rfc3339(c.started_at),
        last_activity_at: ms_to_rfc3339(c.last_activity_at),
        created_at: ms_to_rfc3339(c.created_at),
        updated_at: ms_to_rfc3339(c.updated_at.unwrap_or(c.created_at)),
    }
}

/// Who made a change, as events report it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: &'static str,
    pub id: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            kind: "system",
            id: None,
        }
    }
    /// The caller of a request: a user or an API key (`OrgCtx::principal`).
    pub fn principal((kind, id): (&'static str, &str)) -> Self {
        Self {
            kind,
            id: Some(id.to_string()),
        }
    }
    fn json(&self) -> Value {
        json!({ "type": self.kind, "id": self.id })
    }
}

pub async fn get(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<Conversation>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM conversations WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// The contact's unresolved conversation on `channel`, or a new one. A snoozed conversation
/// is woken (status `open`). Returns the conversation and whether it was created.
pub async fn find_or_open(
    conn: &mut SqliteConnection,
    emitter: &Emitter,
    channel: &Channel,
    contact_id: &str,
    at: i64,
) -> Result<(Conversation, bool), MessagingError> {
    let existing: Option<Conversation> = sqlx::query_as(
        "SELECT * FROM conversations
         WHERE org_id = $1 AND channel_id = $2 AND contact_id = $3 AND status <> 'resolved'",
    )
    .bind(&channel.org_id)
    .bind(&channel.id)
    .bind(contact_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(c) = existing {
        return Ok((woken_by_inbound(conn, emitter, c).await?, false));
    }
    let now = now_ms();
    let c = Conversation {
        id: new_id(),
        org_id: channel.org_id.clone(),
        contact_id: Some(contact_id.to_string()),
        channel: channel.kind.clone(),
        channel_id: Some(channel.id.clone()),
        status: ConversationStatus::Open.as_str().into(),
        snoozed_until: None,
        assignee_id: None,
        team_id: channel.default_team_id.clone(),
        priority: Priority::None.as_str().into(),
        labels: "[]".into(),
        started_at: at,
        last_activity_at: at,
        created_at: now,
        updated_at: Some(now),
    };
    sqlx::query(
        "INSERT INTO conversations (id, org_id, contact_id, channel, channel_id, status, priority,
             labels, started_at, last_activity_at, created_at, updated_at, team_id)
         VALUES ($1, $2, $3, $4, $5, 'open', 'none', '[]', $6, $6, $7, $7,
                 (SELECT id FROM teams WHERE id = $8 AND org_id = $2))",
    )
    .bind(&c.id)
    .bind(&c.org_id)
    .bind(contact_id)
    .bind(&c.channel)
    .bind(&c.channel_id)
    .bind(at)
    .bind(now)
    .bind(&c.team_id)
    .execute(&mut *conn)
    .await?;
    emitter
        .emit(
            conn,
            "conversation.created",
            None,
            json!({ "conversation": view(&c) }),
        )
        .await?;
    Ok((c, true))
}

/// `c` as an inbound message finds it: a snoozed conversation wakes up (`open`, by
/// `system`, with its status event); any other is returned as it is.
pub async fn woken_by_inbound(
    conn: &mut SqliteConnection,
    emitter: &Emitter,
    c: Conversation,
) -> Result<Conversation, MessagingError> {
    if c.status() != ConversationStatus::Snoozed {
        return Ok(c);
    }
    set_status(
        conn,
        emitter,
        c,
        ConversationStatus::Open,
        None,
        &Actor::system(),
    )
    .await
}

/// Move a conversation to `status` (with its snooze time), with the timeline entry and the
/// `conversation.status_changed` event. No-op when nothing changes.
pub async fn set_status(
    conn: &mut SqliteConnection,
    emitter: &Emitter,
    mut c: Conversation,
    status: ConversationStatus,
    snoozed_until: Option<i64>,
    actor: &Actor,
) -> Result<Conversation, MessagingError> {
    let snoozed_until = (status == ConversationStatus::Snoozed)
        .then_some(snoozed_until)
        .flatten();
    let previous = c.status();
    if previous == status && c.snoozed_until == snoozed_until {
        return Ok(c);
    }
    let now = now_ms();
    sqlx::query(
        "UPDATE conversations SET status = $1, snoozed_until = $2, updated_at = $3
         WHERE org_id = $4 AND id = $5",
    )
    .bind(status.as_str())
    .bind(snoozed_until)
    .bind(now)
    .bind(&c.org_id)
    .bind(&c.id)
    .execute(&mut *conn)
    .await?;
    c.status = status.as_str().into();
    c.snoozed_until = snoozed_until;
    c.updated_at = Some(now);
    if previous != status {
        let change_id = new_id();
        emitter
            .emit(
                conn,
                "conversation.status_changed",
                Some(TimelineEntry {
                    contact_id: c.contact_id.as_deref(),
                    conversation_id: &c.id,
                    ref_id: &change_id,
                    occurred_at: now,
                }),
                json!({
                    "conversation": view(&c),
                    "previous_status": previous,
                    "status": status,
                    "changed_by": actor.json(),
                }),
            )
            .await?;
    }
    Ok(c)
}

/// A PATCH: absent fields stay; `assignee_id: null` unassigns, `team_id: null` takes the
/// conversation out of its team.
#[derive(Debug, Default, Clone)]
pub struct ConversationPatch {
    pub status: Option<ConversationStatus>,
    pub snoozed_until: Option<i64>,
    pub assignee_id: Option<Option<String>>,
    pub team_id: Option<Option<String>>,
    pub priority: Option<Priority>,
    pub labels: Option<Vec<String>>,
}

/// Trim, drop empties and duplicates, bound count and length.
pub fn clean_labels(raw: &[String]) -> Result<Vec<String>, MessagingError> {
    let mut out: Vec<String> = Vec::new();
    for l in raw {
        let l = l.trim();
        if l.is_empty() {
            continue;
        }
        if l.chars().count() > MAX_LABEL_CHARS || l.chars().any(char::is_control) {
            return Err(MessagingError::invalid(
                "labels",
                format!("each label is 1 to {MAX_LABEL_CHARS} printable characters"),
            ));
        }
        if !out.iter().any(|x| x == l) {
            out.push(l.to_string());
        }
    }
    if out.len() > MAX_LABELS {
        return Err(MessagingError::invalid(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    Ok(out)
}

pub async fn update(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
    patch: ConversationPatch,
    actor: &Actor,
) -> Result<Conversation, MessagingError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut c = get(&mut tx, org_id, id)
        .await?
        .ok_or(MessagingError::NotFound("conversation"))?;
    let emitter = Emitter::load(&mut tx, org_id).await?;

    if let Some(Some(user)) = &patch.assignee_id {
        let found: Option<(String,)> =
            sqlx::query_as("SELECT id FROM users WHERE org_id = $1 AND id = $2")
                .bind(org_id)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Err(MessagingError::invalid(
                "assignee_id",
                "no user with this id in the organization",
            ));
        }
    }
    if let Some(Some(team)) = &patch.team_id
        && crate::teams::store::get(&mut tx, org_id, team)
            .await?
            .is_none()
    {
        return Err(MessagingError::invalid(
            "team_id",
            "no team with this id in the organization",
        ));
    }
    if let Some(status) = patch.status {
        if status != ConversationStatus::Resolved && c.channel_id.is_some() {
            // Reopening must not create a second unresolved conversation for the contact.
            let other: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM conversations WHERE org_id = $1 AND channel_id = $2
                   AND contact_id = $3 AND status <> 'resolved' AND id <> $4",
            )
            .bind(org_id)
            .bind(&c.channel_id)
            .bind(&c.contact_id)
            .bind(&c.id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((other,)) = other {
                return Err(MessagingError::ConflictWith(
                    "the contact already has an unresolved conversation on this channel",
                    other,
                ));
            }
        }
        c = set_status(&mut tx, &emitter, c, status, patch.snoozed_until, actor).await?;
    } else if patch.snoozed_until.is_some() {
        if c.status() != ConversationStatus::Snoozed {
            return Err(MessagingError::invalid(
                "snoozed_until",
                "only with status snoozed (or on a snoozed conversation)",
            ));
        }
        c = set_status(
            &mut tx,
            &emitter,
            c,
            ConversationStatus::Snoozed,
            patch.snoozed_until,
            actor,
        )
        .await?;
    }

    let now = now_ms();
    if let Some(assignee) = patch.assignee_id {
        hand_over(&mut tx, &emitter, &mut c, &ASSIGNEE, assignee, actor, now).await?;
    }
    if let Some(team) = patch.team_id {
        hand_over(&mut tx, &emitter, &mut c, &TEAM, team, actor, now).await?;
    }

    let mut changed = Vec::new();
    if let Some(p) = patch.priority
        && p.as_str() != c.priority
    {
        c.priority = p.as_str().into();
        changed.push("priority");
    }
    if let Some(labels) = patch.labels {
        let labels = serde_json::to_string(&clean_labels(&labels)?)?;
        if labels != c.labels {
            c.labels = labels;
            changed.push("labels");
        }
    }
    if !changed.is_empty() {
        sqlx::query(
            "UPDATE conversations SET priority = $1, labels = $2, updated_at = $3
             WHERE org_id = $4 AND id = $5",
        )
        .bind(&c.priority)
        .bind(&c.labels)
        .bind(now)
        .bind(org_id)
        .bind(&c.id)
        .execute(&mut *tx)
        .await?;
        c.updated_at = Some(now);
        emitter
            .emit(
                &mut tx,
                "conversation.updated",
                None,
                json!({ "conversation": view(&c), "changed": changed, "changed_by": actor.json() }),
            )
            .await?;
    }
    tx.commit().await?;
    Ok(c)
}

/// Who holds a conversation: its assignee or its team. Both change the same way (one column,
/// one timeline entry, one event naming the old and new holder).
struct Holder {
    event: &'static str,
    /// The column and the event's key for the new holder; the old one is `previous_<key>`.
    key: &'static str,
    field: fn(&mut Conversation) -> &mut Option<String>,
}

const ASSIGNEE: Holder = Holder {
    event: "conversation.assignee_changed",
    key: "assignee_id",
    field: |c| &mut c.assignee_id,
};

const TEAM: Holder = Holder {
    event: "conversation.team_changed",
    key: "team_id",
    field: |c| &mut c.team_id,
};

/// Gives the conversation to `holder` (`None`: to nobody), with its timeline entry and event.
/// No-op when it already has that holder.
async fn hand_over(
    conn: &mut SqliteConnection,
    emitter: &Emitter,
    c: &mut Conversation,
    holder: &Holder,
    value: Option<String>,
    actor: &Actor,
    now: i64,
) -> Result<(), MessagingError> {
    let slot = (holder.field)(c);
    if *slot == value {
        return Ok(());
    }
    let previous = std::mem::replace(slot, value.clone());
    // `key` is one of two constants above, never input.
    let sql = format!(
        "UPDATE conversations SET {} = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
        holder.key
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&value)
        .bind(now)
        .bind(&c.org_id)
        .bind(&c.id)
        .execute(&mut *conn)
        .await?;
    c.updated_at = Some(now);
    let change_id = new_id();
    let mut data = json!({ "conversation": view(c), "changed_by": actor.json() });
    data[format!("previous_{}", holder.key)] = json!(previous);
    data[holder.key] = json!(value);
    emitter
        .emit(
            conn,
            holder.event,
            Some(TimelineEntry {
                contact_id: c.contact_id.as_deref(),
                conversation_id: &c.id,
                ref_id: &change_id,
                occurred_at: now,
            }),
            data,
        )
        .await?;
    Ok(())
}

/// Wake the organization's conversations whose snooze ran out. Called before reads, so a
/// list never shows an expired snooze, and by the sweeper (`snooze_sweep`) every 15 s, so
/// the reopening is announced on time; bounded per call.
pub async fn wake_due_snoozes(pool: &SqlitePool, org_id: &str) -> Result<usize, MessagingError> {
    let now = now_ms();
    let due: Vec<Conversation> = sqlx::query_as(
        "SELECT * FROM conversations WHERE org_id = $1 AND status = 'snoozed'
           AND snoozed_until IS NOT NULL AND snoozed_until <= $2 LIMIT 100",
    )
    .bind(org_id)
    .bind(now)
    .fetch_all(pool)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let emitter = Emitter::load(&mut tx, org_id).await?;
    let mut woken = 0;
    for c in due {
        // Re-read inside the transaction: another request may have changed it.
        let Some(c) = get(&mut tx, org_id, &c.id).await? else {
            continue;
        };
        if c.status() == ConversationStatus::Snoozed && c.snoozed_until.is_some_and(|t| t <= now) {
            set_status(
                &mut tx,
                &emitter,
                c,
                ConversationStatus::Open,
                None,
                &Actor::system(),
            )
            .await?;
            woken += 1;
        }
    }
    tx.commit().await?;
    Ok(woken)
}

/// Which team's queue a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamFilter {
    Team(String),
    /// Conversations in no team.
    NoTeam,
    /// Conversations in any team this user is in ("my teams' queue").
    TeamsOf(String),
}

#[derive(Debug, Default, Clone)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    /// `Some(None)`: unassigned only.
    pub assignee_id: Option<Option<String>>,
    pub team: Option<TeamFilter>,
    pub channel: Option<String>,
    pub channel_id: Option<String>,
    pub contact_id: Option<String>,
}

/// Newest first; `before` is the last id of the previous page.
pub async fn list(
    pool: &SqlitePool,
    org_id: &str,
    f: &ConversationFilter,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Conversation>, sqlx::Error> {
    let mut q: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT * FROM conversations WHERE org_id = ");
    q.push_bind(org_id.to_string());
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    match &f.assignee_id {
        Some(Some(a)) => {
            q.push(" AND assignee_id = ").push_bind(a.clone());
        }
        Some(None) => {
            q.push(" AND assignee_id IS NULL");
        }
        None => {}
    }
    match &f.team {
        Some(TeamFilter::Team(t)) => {
            q.push(" AND team_id = ").push_bind(t.clone());
        }
        Some(TeamFilter::NoTeam) => {
            q.push(" AND team_id IS NULL");
        }
        Some(TeamFilter::TeamsOf(user)) => {
            q.push(" AND team_id IN (SELECT team_id FROM team_members WHERE user_id = ")
                .push_bind(user.clone())
                .push(")");
        }
        None => {}
    }
    if let Some(ch) = &f.channel {
        q.push(" AND channel = ").push_bind(ch.clone());
    }
    if let Some(ch) = &f.channel_id {
        q.push(" AND channel_id = ").push_bind(ch.clone());
    }
    if let Some(c) = &f.contact_id {
        q.push(" AND contact_id = ").push_bind(c.clone());
    }
    if let Some(b) = before {
        q.push(" AND id < ").push_bind(b.to_string());
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

#[cfg(test)]
mod tests {
    use super::clean_labels;

    #[test]
    fn labels_are_cleaned() {
        let l = clean_labels(&[" vip ".into(), "vip".into(), "".into(), "billing".into()]).unwrap();
        assert_eq!(l, vec!["vip".to_string(), "billing".to_string()]);
        assert!(clean_labels(&["x".repeat(51)]).is_err());
        assert!(clean_labels(&["a\u{0}b".into()]).is_err());
        let many: Vec<String> = (0..21).map(|i| format!("l{i}")).collect();
        assert!(clean_labels(&many).is_err());
    }
}

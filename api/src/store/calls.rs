//! Calls: one row per recorded call, whatever its source, with its processing status.

use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqliteExecutor, SqlitePool};

use crate::ids::{new_id, now_ms};

/// Processing states. `received → transcribing → analyzing → completed`, or one of the ends
/// `failed`, `silent` (no speech at all), `transcription_unavailable` (no ASR model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Received,
    Transcribing,
    Analyzing,
    Completed,
    Failed,
    Silent,
    TranscriptionUnavailable,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Received => "received",
            CallStatus::Transcribing => "transcribing",
            CallStatus::Analyzing => "analyzing",
            CallStatus::Completed => "completed",
            CallStatus::Failed => "failed",
            CallStatus::Silent => "silent",
            CallStatus::TranscriptionUnavailable => "transcription_unavailable",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => CallStatus::Received,
            "transcribing" => CallStatus::Transcribing,
            "analyzing" => CallStatus::Analyzing,
            "completed" => CallStatus::Completed,
            "failed" => CallStatus::Failed,
            "silent" => CallStatus::Silent,
            "transcription_unavailable" => CallStatus::TranscriptionUnavailable,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Call {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    pub external_id: Option<String>,
    pub source: String,
    pub direction: Option<String>,
    pub customer_phone: Option<String>,
    pub agent_identifier: Option<String>,
    pub started_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub channel_layout: String,
    pub language: Option<String>,
    pub status: String,
    pub asr_outcome: Option<String>,
    pub failure_code: Option<String>,
    pub failure_reason: Option<String>,
    pub retry_count: i64,
    pub recording_url: Option<String>,
    pub metadata: String,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

/// What a caller knows about a call when it arrives.
#[derive(Debug, Clone, Default)]
pub struct NewCall {
    pub external_id: Option<String>,
    pub source: &'static str,
    pub direction: Option<String>,
    pub customer_phone: Option<String>,
    pub agent_identifier: Option<String>,
    pub started_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub channel_layout: String,
    pub language: Option<String>,
    pub recording_url: Option<String>,
    /// JSON object text.
    pub metadata: String,
}

/// Insert a call unless this organization already has one with the same external id.
/// Returns the call and whether it was created now (false = the earlier one, unchanged).
pub async fn insert_or_existing(
    conn: &mut SqliteConnection,
    org_id: &str,
    new: &NewCall,
    status: CallStatus,
    failure: Option<(&str, &str)>,
) -> Result<(Call, bool), sqlx::Error> {
    let id = new_id();
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO calls (id, org_id, external_id, source, direction, customer_phone, agent_identifier,
            started_at, duration_ms, channel_layout, language, status, failure_code, failure_reason,
            recording_url, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (org_id, external_id) DO NOTHING",
    )
    .bind(&id)
    .bind(org_id)
    .bind(&new.external_id)
    .bind(new.source)
    .bind(&new.direction)
    .bind(&new.customer_phone)
    .bind(&new.agent_identifier)
    .bind(new.started_at)
    .bind(new.duration_ms)
    .bind(&new.channel_layout)
    .bind(&new.language)
    .bind(status.as_str())
    .bind(failure.map(|f| f.0))
    .bind(failure.map(|f| f.1))
    .bind(&new.recording_url)
    .bind(&new.metadata)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let call = get_call(&mut *conn, org_id, &id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        return Ok((call, true));
    }
    let ext = new.external_id.as_deref().ok_or(sqlx::Error::RowNotFound)?;
    let call = find_by_external_id(&mut *conn, org_id, ext)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((call, false))
}

/// A call whose recording was refused (failed, no recording stored) may be posted again
/// with the same external id: the new attempt takes over the row, with the new details.
/// Returns whether the row was taken over (false: it is not such a call).
pub async fn revive_rejected(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
    new: &NewCall,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE calls SET direction = $1, customer_phone = $2, agent_identifier = $3, started_at = $4,
            duration_ms = $5, channel_layout = $6, language = $7, recording_url = $8, metadata = $9,
            status = 'received', failure_code = NULL, failure_reason = NULL, updated_at = $10
         WHERE org_id = $11 AND id = $12 AND status = 'failed'
           AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.call_id = calls.id)",
    )
    .bind(&new.direction)
    .bind(&new.customer_phone)
    .bind(&new.agent_identifier)
    .bind(new.started_at)
    .bind(new.duration_ms)
    .bind(&new.channel_layout)
    .bind(&new.language)
    .bind(&new.recording_url)
    .bind(&new.metadata)
    .bind(now_ms())
    .bind(org_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// True for a call whose recording was refused: it may be posted again.
pub fn is_rejected(call: &Call) -> bool {
    call.status == CallStatus::Failed.as_str()
        && matches!(
            call.failure_code.as_deref(),
            Some(
                "unsupported_format"
                    | "corrupt_audio"
                    | "empty_audio"
                    | "recording_fetch_failed"
                    | "payload_too_large"
                    | "recording_unreachable"
            )
        )
}

/// Which calls a reader may see: the organization's, and within it either all or one user's
/// own (with those of the members of every team the user leads). Every read on behalf of a
/// caller goes through this, so a handler cannot forget the "own calls only" rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAccess {
    pub org_id: String,
    /// `Some(user)`: only the calls this user took part in, and those of the members of the
    /// teams they lead.
    pub owner: Option<String>,
    /// `Some(team)`: of those, only the calls of the team's members (a report or a list
    /// narrowed to one team; never wider than `owner` allows).
    pub team: Option<String>,
}

impl CallAccess {
    pub fn all(org_id: &str) -> Self {
        CallAccess {
            org_id: org_id.to_string(),
            owner: None,
            team: None,
        }
    }

    pub fn own(org_id: &str, user_id: &str) -> Self {
        CallAccess {
            org_id: org_id.to_string(),
            owner: Some(user_id.to_string()),
            team: None,
        }
    }

    /// The same access narrowed to the calls of one team's members.
    pub fn in_team(mut self, team_id: &str) -> Self {
        self.team = Some(team_id.to_string());
        self
    }

    /// Appends the condition (for a `calls` row aliased `calls`) to a query.
    pub(crate) fn push_condition(&self, q: &mut QueryBuilder<Sqlite>) {
        q.push(" calls.org_id = ");
        q.push_bind(self.org_id.clone());
        if let Some(user) = &self.owner {
            // The users whose calls the reader sees: themselves, and every member of a team
            // they lead.
            q.push(" AND EXISTS (SELECT 1 FROM (SELECT ");
            q.push_bind(user.clone());
            q.push(
                " AS user_id UNION SELECT m.user_id FROM team_members lead \
                 JOIN team_members m ON m.team_id = lead.team_id \
                 WHERE lead.role = 'lead' AND lead.user_id = ",
            );
            q.push_bind(user.clone());
            q.push(") seen WHERE ");
            push_call_of(q, "seen.user_id");
            q.push(")");
        }
        if let Some(team) = &self.team {
            q.push(" AND EXISTS (SELECT 1 FROM team_members tm WHERE tm.team_id = ");
            q.push_bind(team.clone());
            q.push(" AND ");
            push_call_of(q, "tm.user_id");
            q.push(")");
        }
    }
}

/// Whether the `calls` row is the call of the user whose id is `user_column`: answered or
/// assigned to them live, or attributed to their extension or id by the PBX that posted the
/// recording.
fn push_call_of(q: &mut QueryBuilder<Sqlite>, user_column: &'static str) {
    q.push(format!(
        "(EXISTS (SELECT 1 FROM call_sip s WHERE s.call_id = calls.id \
         AND s.org_id = calls.org_id \
         AND (s.answered_by_user_id = {user_column} OR s.agent_user_id = {user_column})) \
         OR EXISTS (SELECT 1 FROM users u WHERE u.org_id = calls.org_id \
         AND u.id = {user_column} AND calls.agent_identifier IN (u.extension, u.id)))"
    ));
}

/// A call the reader may see; `None` when it does not exist for them (another organization's,
/// or not their own), so the caller answers 404 either way.
pub async fn get_visible_call<'e>(
    ex: impl SqliteExecutor<'e>,
    access: &CallAccess,
    id: &str,
) -> Result<Option<Call>, sqlx::Error> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM calls WHERE");
    access.push_condition(&mut q);
    q.push(" AND calls.id = ");
    q.push_bind(id.to_string());
    q.build_query_as().fetch_optional(ex).await
}

pub async fn get_call<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    id: &str,
) -> Result<Option<Call>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM calls WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(ex)
        .await
}

pub async fn find_by_external_id<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    external_id: &str,
) -> Result<Option<Call>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM calls WHERE org_id = $1 AND external_id = $2")
        .bind(org_id)
        .bind(external_id)
        .fetch_optional(ex)
        .await
}

pub async fn set_status<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    id: &str,
    status: CallStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE calls SET status = $1, updated_at = $2 WHERE org_id = $3 AND id = $4")
        .bind(status.as_str())
        .bind(now_ms())
        .bind(org_id)
        .bind(id)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn mark_failed<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    id: &str,
    code: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE calls SET status = 'failed', failure_code = $1, failure_reason = $2, updated_at = $3
         WHERE org_id = $4 AND id = $5",
    )
    .bind(code)
    .bind(reason)
    .bind(now_ms())
    .bind(org_id)
    .bind(id)
    .execute(ex)
    .await?;
    Ok(())
}

/// Count one more processing attempt (retries are visible in the API).
pub async fn bump_retry<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    id: &str,
    last_error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE calls SET retry_count = retry_count + 1, failure_reason = $1, updated_at = $2
         WHERE org_id = $3 AND id = $4",
    )
    .bind(last_error)
    .bind(now_ms())
    .bind(org_id)
    .bind(id)
    .execute(ex)
    .await?;
    Ok(())
}

/// The end of processing: final status and the links to contact and conversation.
pub struct Finish<'a> {
    pub status: CallStatus,
    pub asr_outcome: &'a str,
    pub language: Option<&'a str>,
    pub contact_id: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
}

pub async fn finish<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    id: &str,
    f: &Finish<'_>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE calls SET status = $1, asr_outcome = $2, language = COALESCE(language, $3),
            contact_id = $4, conversation_id = $5, failure_code = NULL, failure_reason = NULL,
            completed_at = $6, updated_at = $7
         WHERE org_id = $8 AND id = $9",
    )
    .bind(f.status.as_str())
    .bind(f.asr_outcome)
    .bind(f.language)
    .bind(f.contact_id)
    .bind(f.conversation_id)
    .bind(now)
    .bind(now)
    .bind(org_id)
    .bind(id)
    .execute(ex)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub status: Option<String>,
    pub direction: Option<String>,
    pub agent_identifier: Option<String>,
    pub customer_phone: Option<String>,
    pub external_id: Option<String>,
    /// Inclusive lower bound on the call's time (its PBX timestamp, else when we received it).
    pub from_ms: Option<i64>,
    /// Exclusive upper bound.
    pub to_ms: Option<i64>,
    pub contact_id: Option<String>,
}

/// A page of calls, newest first. `after_id` is the last id of the previous page: ids are
/// UUIDv7 text, so their order is creation order and the cursor needs nothing else.
pub async fn list_calls(
    pool: &SqlitePool,
    access: &CallAccess,
    filter: &CallFilter,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Call>, sqlx::Error> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM calls WHERE");
    access.push_condition(&mut q);
    let eq = |q: &mut QueryBuilder<Sqlite>, col: &str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!(" AND {col} = "));
            q.push_bind(v.clone());
        }
    };
    eq(&mut q, "status", &filter.status);
    eq(&mut q, "direction", &filter.direction);
    eq(&mut q, "agent_identifier", &filter.agent_identifier);
    eq(&mut q, "customer_phone", &filter.customer_phone);
    eq(&mut q, "external_id", &filter.external_id);
    eq(&mut q, "contact_id", &filter.contact_id);
    if let Some(from) = filter.from_ms {
        q.push(" AND COALESCE(started_at, created_at) >= ");
        q.push_bind(from);
    }
    if let Some(to) = filter.to_ms {
        q.push(" AND COALESCE(started_at, created_at) < ");
        q.push_bind(to);
    }
    if let Some(after) = after_id {
        q.push(" AND id < ");
        q.push_bind(after.to_string());
    }
    q.push(" ORDER BY id DESC LIMIT ");
    q.push_bind(limit);
    q.build_query_as().fetch_all(pool).await
}

//! The record of a SIP call: a `calls` row (source `sip`, the same id as the B2BUA's call)
//! plus its `call_sip` side row (parties, trunk, agent, times, final code, hangup side and
//! cause, live state). Each change is one guarded UPDATE whose row count says whether this
//! event was new, which is what makes replayed events harmless.

use callscope_sip::events::{CallDirection, HangupSide};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{SqliteConnection, SqliteExecutor};

use crate::ids::{ms_to_rfc3339, now_ms};
use crate::store::calls::{self, Call};
use crate::store::contacts;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CallSip {
    pub call_id: String,
    #[serde(skip)]
    pub org_id: String,
    pub sip_call_id: String,
    pub direction: String,
    pub from_party: String,
    pub to_party: String,
    pub trunk_id: Option<String>,
    pub agent_user_id: Option<String>,
    pub answered_by_user_id: Option<String>,
    pub state: String,
    pub on_hold: i64,
    pub invite_at: i64,
    pub ring_at: Option<i64>,
    pub answer_at: Option<i64>,
    pub end_at: Option<i64>,
    pub sip_status: Option<i64>,
    pub hangup_side: Option<String>,
    pub hangup_cause: Option<String>,
    pub updated_at: i64,
    /// The media engine's report once the call ended (quality per leg, drops).
    pub media_json: Option<String>,
}

pub fn direction_str(d: CallDirection) -> &'static str {
    match d {
        CallDirection::Inbound => "inbound",
        CallDirection::Outbound => "outbound",
        CallDirection::Internal => "internal",
    }
}

pub fn hangup_side_str(s: HangupSide) -> &'static str {
    match s {
        HangupSide::Caller => "caller",
        HangupSide::Callee => "callee",
        HangupSide::System => "system",
        HangupSide::Api => "api",
    }
}

/// The JSON shape of the SIP side of a call (API and webhooks).
pub fn view(s: &CallSip) -> Value {
    let t = |ms: Option<i64>| ms.map(ms_to_rfc3339);
    json!({
        "sip_call_id": s.sip_call_id,
        "direction": s.direction,
        "from": s.from_party,
        "to": s.to_party,
        "trunk_id": s.trunk_id,
        "agent_user_id": s.agent_user_id,
        "answered_by_user_id": s.answered_by_user_id,
        "state": s.state,
        "on_hold": s.on_hold != 0,
        "invite_at": ms_to_rfc3339(s.invite_at),
        "ring_at": t(s.ring_at),
        "answer_at": t(s.answer_at),
        "end_at": t(s.end_at),
        "sip_status": s.sip_status,
        "hangup_side": s.hangup_side,
        "hangup_cause": s.hangup_cause,
        "media": s
            .media_json
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok()),
    })
}

pub async fn get<'e>(
    ex: impl SqliteExecutor<'e>,
    org_id: &str,
    call_id: &str,
) -> Result<Option<CallSip>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM call_sip WHERE org_id = $1 AND call_id = $2")
        .bind(org_id)
        .bind(call_id)
        .fetch_optional(ex)
        .await
}

/// The organization of a live call. Call events carry only the call id after `Started`;
/// this system-level lookup is the one place a call is found without an org (the id comes
/// from our own B2BUA, never from a client).
pub async fn org_of_call<'e>(
    ex: impl SqliteExecutor<'e>,
    call_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT org_id FROM call_sip WHERE call_id = $1")
        .bind(call_id)
        .fetch_optional(ex)
        .await
}

/// The id of a user of this organization, or `None` (an id from elsewhere is not recorded).
async fn own_user(
    conn: &mut SqliteConnection,
    org_id: &str,
    user_id: Option<&str>,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let Some(id) = user_id else { return Ok(None) };
    sqlx::query_as("SELECT id, extension FROM users WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

async fn own_trunk(
    conn: &mut SqliteConnection,
    org_id: &str,
    trunk_id: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    let Some(id) = trunk_id else { return Ok(None) };
    sqlx::query_scalar("SELECT id FROM sip_trunks WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

pub struct NewSipCall<'a> {
    pub call_id: &'a str,
    pub org_id: &'a str,
    pub direction: CallDirection,
    pub from: &'a str,
    pub to: &'a str,
    pub sip_call_id: &'a str,
    pub agent_user_id: Option<&'a str>,
    pub trunk_id: Option<&'a str>,
    pub at_ms: i64,
    pub default_region: &'a str,
}

/// Create the call's rows: `None` when they already exist (a replayed `Started`). The
/// external party (caller of an inbound call, callee of an outbound one) becomes the call's
/// customer and contact; internal calls have neither.
pub async fn start(
    conn: &mut SqliteConnection,
    new: &NewSipCall<'_>,
) -> Result<Option<Call>, sqlx::Error> {
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE id = $1")
        .bind(new.call_id)
        .fetch_one(&mut *conn)
        .await?;
    if exists > 0 {
        return Ok(None);
    }
    let external = match new.direction {
        CallDirection::Inbound => Some(new.from),
        CallDirection::Outbound => Some(new.to),
        CallDirection::Internal => None,
    };
    let external_e164 = external.and_then(|p| {
        super::numbers::to_e164(&super::numbers::dialled_digits(p), new.default_region)
    });
    let contact_id = match &external_e164 {
        Some(phone) => Some(
            contacts::find_or_create_by_phone(conn, new.org_id, phone)
                .await?
                .id,
        ),
        None => None,
    };
    let conversation_id =
        contacts::create_voice_conversation(conn, new.org_id, contact_id.as_deref(), new.at_ms)
            .await?;
    let agent = own_user(conn, new.org_id, new.agent_user_id).await?;
    let trunk = own_trunk(conn, new.org_id, new.trunk_id).await?;
    let now = now_ms();
    let calls_direction = match new.direction {
        CallDirection::Inbound => Some("inbound"),
        CallDirection::Outbound => Some("outbound"),
        CallDirection::Internal => None,
    };
    sqlx::query(
        "INSERT INTO calls (id, org_id, source, direction, customer_phone, agent_identifier,
            started_at, status, contact_id, conversation_id, created_at, updated_at)
         VALUES ($1, $2, 'sip', $3, $4, $5, $6, 'received', $7, $8, $9, $9)",
    )
    .bind(new.call_id)
    .bind(new.org_id)
    .bind(calls_direction)
    .bind(external_e164.as_deref().or(external))
    .bind(agent.as_ref().map(|a| a.1.as_str()))
    .bind(new.at_ms)
    .bind(&contact_id)
    .bind(&conversation_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO call_sip (call_id, org_id, sip_call_id, direction, from_party, to_party,
            trunk_id, agent_user_id, state, invite_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'trying', $9, $10)",
    )
    .bind(new.call_id)
    .bind(new.org_id)
    .bind(new.sip_call_id)
    .bind(direction_str(new.direction))
    .bind(new.from)
    .bind(new.to)
    .bind(&trunk)
    .bind(agent.as_ref().map(|a| a.0.as_str()))
    .bind(new.at_ms)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    calls::get_call(&mut *conn, new.org_id, new.call_id).await
}

/// First ringing of a call not yet answered or ended; false if not new.
pub async fn ringing(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    at_ms: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE call_sip SET ring_at = $1, state = 'ringing', updated_at = $2
         WHERE org_id = $3 AND call_id = $4 AND ring_at IS NULL AND answer_at IS NULL AND end_at IS NULL",
    )
    .bind(at_ms)
    .bind(now_ms())
    .bind(org_id)
    .bind(call_id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn answered(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    by_user: Option<&str>,
    at_ms: i64,
) -> Result<bool, sqlx::Error> {
    let by = own_user(conn, org_id, by_user).await?.map(|u| u.0);
    let r = sqlx::query(
        "UPDATE call_sip SET answer_at = $1, answered_by_user_id = $2, state = 'answered', updated_at = $3
         WHERE org_id = $4 AND call_id = $5 AND answer_at IS NULL AND end_at IS NULL",
    )
    .bind(at_ms)
    .bind(&by)
    .bind(now_ms())
    .bind(org_id)
    .bind(call_id)
    .execute(&mut *conn)
    .await?;
    // An inbound call's agent is whoever answered it (a ring group's member).
    if r.rows_affected() == 1
        && let Some(by) = &by
    {
        sqlx::query(
            "UPDATE calls SET agent_identifier = COALESCE(agent_identifier,
                (SELECT extension FROM users WHERE org_id = $1 AND id = $2)), updated_at = $3
             WHERE org_id = $1 AND id = $4",
        )
        .bind(org_id)
        .bind(by)
        .bind(now_ms())
        .bind(call_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(r.rows_affected() == 1)
}

/// Hold on/off; false when the call is already in that state or ended.
pub async fn set_hold(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    on_hold: bool,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE call_sip SET on_hold = $1, updated_at = $2
         WHERE org_id = $3 AND call_id = $4 AND on_hold <> $1 AND end_at IS NULL",
    )
    .bind(i64::from(on_hold))
    .bind(now_ms())
    .bind(org_id)
    .bind(call_id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub struct Ending<'a> {
    pub at_ms: i64,
    pub sip_status: u16,
    pub hangup_side: HangupSide,
    pub cause: &'a str,
}

/// The end of the call; false when it had already ended. The call's duration is the talk
/// time (answer to end), 0 for a call never answered.
pub async fn ended(
    conn: &mut SqliteConnection,
    org_id: &str,
    call_id: &str,
    e: &Ending<'_>,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let cause: String = e.cause.chars().take(100).collect();
    let r = sqlx::query(
        "UPDATE call_sip SET end_at = $1, sip_status = $2, hangup_side = $3, hangup_cause = $4,
            state = 'ended', on_hold = 0, updated_at = $5
         WHERE org_id = $6 AND call_id = $7 AND end_at IS NULL",
    )
    .bind(e.at_ms)
    .bind(i64::from(e.sip_status))
    .bind(hangup_side_str(e.hangup_side))
    .bind(&cause)
    .bind(now)
    .bind(org_id)
    .bind(call_id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE calls SET duration_ms = (SELECT CASE WHEN answer_at IS NULL OR end_at < answer_at THEN 0
                ELSE end_at - answer_at END FROM call_sip WHERE call_id = $1),
            updated_at = $2
         WHERE org_id = $3 AND id = $1",
    )
    .bind(call_id)
    .bind(now)
    .bind(org_id)
    .execute(&mut *conn)
    .await?;
    let users: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT agent_user_id, answered_by_user_id FROM call_sip WHERE org_id = $1 AND call_id = $2",
    )
    .bind(org_id)
    .bind(call_id)
    .fetch_all(&mut *conn)
    .await?;
    for (a, b) in users {
        for u in [a, b].into_iter().flatten() {
            super::users::mark_call_ended(&mut *conn, org_id, &u, e.at_ms).await?;
        }
    }
    Ok(true)
}

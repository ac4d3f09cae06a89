//! Inbound routes: which DID (an E.164 number of the organization) goes to which user, ring
//! group or rejection.

use callscope_sip::directory::{RingStrategy, RouteTarget};
use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use crate::ids::{new_id, now_ms};

pub const MAX_TIMEOUT_S: u32 = 600;
pub const MAX_RING_GROUP_MEMBERS: usize = 100;

#[derive(Debug, Clone, sqlx::FromRow)]
struct RouteRow {
    id: String,
    org_id: String,
    did_e164: String,
    target_kind: String,
    user_id: Option<String>,
    strategy: Option<String>,
    member_timeout_s: Option<i64>,
    total_timeout_s: Option<i64>,
    reject_status: Option<i64>,
    team_id: Option<String>,
    created_at: i64,
}

/// A route with its target resolved (ring-group members in their configured order).
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub id: String,
    #[serde(skip)]
    pub org_id: String,
    pub did: String,
    pub target: RouteTarget,
    /// A team route: the ring group's members are the team's, read when a call arrives.
    pub team_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("did must be a valid phone number (E.164, or national in the default region)")]
    InvalidDid,
    #[error("no user {0:?} in this organization")]
    UnknownUser(String),
    #[error("a ring group needs 1 to {MAX_RING_GROUP_MEMBERS} distinct members")]
    InvalidMembers,
    #[error("timeouts must be 1 to {MAX_TIMEOUT_S} seconds")]
    InvalidTimeout,
    #[error("reject status must be a SIP final failure code (400 to 699)")]
    InvalidRejectStatus,
    #[error("a route for {0} already exists")]
    DidTaken(String),
    #[error("no team {0:?} in this organization")]
    UnknownTeam(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn strategy_str(s: RingStrategy) -> &'static str {
    match s {
        RingStrategy::RingAll => "ring_all",
        RingStrategy::LongestIdle => "longest_idle",
    }
}

pub fn parse_strategy(s: &str) -> Option<RingStrategy> {
    match s {
        "ring_all" => Some(RingStrategy::RingAll),
        "longest_idle" => Some(RingStrategy::LongestIdle),
        _ => None,
    }
}

async fn user_in_org(
    conn: &mut SqliteConnection,
    org_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n == 1)
}

/// Create a route for `did_e164` (already normalised by the caller). User ids in `target`
/// must belong to the organization.
pub async fn create_route(
    pool: &SqlitePool,
    org_id: &str,
    did_e164: &str,
    target: &RouteTarget,
) -> Result<Route, RouteError> {
    check_did(did_e164)?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let id = new_id();
    let (kind, user, strategy, member_t, total_t, reject) = match target {
        RouteTarget::User { user_id } => {
            if !user_in_org(&mut tx, org_id, user_id).await? {
                return Err(RouteError::UnknownUser(user_id.clone()));
            }
            ("user", Some(user_id.as_str()), None, None, None, None)
        }
        RouteTarget::RingGroup {
            members,
            strategy,
            member_timeout_s,
            total_timeout_s,
        } => {
            let mut distinct = members.clone();
            distinct.sort();
            distinct.dedup();
            if members.is_empty()
                || members.len() > MAX_RING_GROUP_MEMBERS
                || distinct.len() != members.len()
            {
                return Err(RouteError::InvalidMembers);
            }
            if !timeout_ok(*member_timeout_s) || !timeout_ok(*total_timeout_s) {
                return Err(RouteError::InvalidTimeout);
            }
            for m in members {
                if !user_in_org(&mut tx, org_id, m).await? {
                    return Err(RouteError::UnknownUser(m.clone()));
                }
            }
            (
                "ring_group",
                None,
                Some(strategy_str(*strategy)),
                Some(i64::from(*member_timeout_s)),
                Some(i64::from(*total_timeout_s)),
                None,
            )
        }
        RouteTarget::Reject { status } => {
            if !(400..=699).contains(status) {
                return Err(RouteError::InvalidRejectStatus);
            }
            ("reject", None, None, None, None, Some(i64::from(*status)))
        }
    };
    let row = RouteRow {
        id: id.clone(),
        org_id: org_id.to_string(),
        did_e164: did_e164.to_string(),
        target_kind: kind.to_string(),
        user_id: user.map(str::to_string),
        strategy: strategy.map(str::to_string),
        member_timeout_s: member_t,
        total_timeout_s: total_t,
        reject_status: reject,
        team_id: None,
        created_at: now_ms(),
    };
    let inserted = insert_row(&mut tx, &row).await?;
    if !inserted {
        return Err(RouteError::DidTaken(did_e164.to_string()));
    }
    if let RouteTarget::RingGroup { members, .. } = target {
        for (pos, m) in members.iter().enumerate() {
            sqlx::query(
                "INSERT INTO sip_route_members (route_id, user_id, position) VALUES ($1, $2, $3)",
            )
            .bind(&id)
            .bind(m)
            .bind(pos as i64)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    get_route(pool, org_id, &id)
        .await?
        .ok_or(RouteError::Db(sqlx::Error::RowNotFound))
}

/// A DID as stored: E.164 (normalised by the caller), so `+` and 3 to 15 digits.
fn check_did(did_e164: &str) -> Result<(), RouteError> {
    if !did_e164.starts_with('+') || did_e164.len() < 4 || did_e164.len() > 16 {
        return Err(RouteError::InvalidDid);
    }
    Ok(())
}

/// A ring timeout a route may have.
fn timeout_ok(t: u32) -> bool {
    (1..=MAX_TIMEOUT_S).contains(&t)
}

/// Inserts a route row; false when the number already has a route.
async fn insert_row(conn: &mut SqliteConnection, r: &RouteRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sip_routes (id, org_id, did_e164, target_kind, user_id, strategy,
            member_timeout_s, total_timeout_s, reject_status, team_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (org_id, did_e164) DO NOTHING",
    )
    .bind(&r.id)
    .bind(&r.org_id)
    .bind(&r.did_e164)
    .bind(&r.target_kind)
    .bind(&r.user_id)
    .bind(&r.strategy)
    .bind(r.member_timeout_s)
    .bind(r.total_timeout_s)
    .bind(r.reject_status)
    .bind(&r.team_id)
    .bind(r.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Create a route for `did_e164` that rings a team: whoever is in the team when a call
/// arrives, together (`ring_all`) or in turn (`longest_idle`). Without `total_timeout_s`, a
/// longest-idle team route gives every member present at call time a turn.
pub async fn create_team_route(
    pool: &SqlitePool,
    org_id: &str,
    did_e164: &str,
    team_id: &str,
    strategy: RingStrategy,
    member_timeout_s: u32,
    total_timeout_s: Option<u32>,
) -> Result<Route, RouteError> {
    check_did(did_e164)?;
    if !timeout_ok(member_timeout_s) || !total_timeout_s.is_none_or(timeout_ok) {
        return Err(RouteError::InvalidTimeout);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if crate::teams::store::get(&mut tx, org_id, team_id)
        .await?
        .is_none()
    {
        return Err(RouteError::UnknownTeam(team_id.to_string()));
    }
    let row = RouteRow {
        id: new_id(),
        org_id: org_id.to_string(),
        did_e164: did_e164.to_string(),
        target_kind: "ring_group".into(),
        user_id: None,
        strategy: Some(strategy_str(strategy).into()),
        member_timeout_s: Some(i64::from(member_timeout_s)),
        total_timeout_s: total_timeout_s.map(i64::from),
        reject_status: None,
        team_id: Some(team_id.to_string()),
        created_at: now_ms(),
    };
    if !insert_row(&mut tx, &row).await? {
        return Err(RouteError::DidTaken(did_e164.to_string()));
    }
    tx.commit().await?;
    get_route(pool, org_id, &row.id)
        .await?
        .ok_or(RouteError::Db(sqlx::Error::RowNotFound))
}

async fn resolve(pool: &SqlitePool, row: RouteRow) -> Result<Route, sqlx::Error> {
    let target = match row.target_kind.as_str() {
        "user" => RouteTarget::User {
            user_id: row.user_id.unwrap_or_default(),
        },
        "ring_group" => {
            let members: Vec<String> = match &row.team_id {
                Some(team) => {
                    let mut conn = pool.acquire().await?;
                    crate::teams::store::member_ids(&mut conn, team).await?
                }
                None => sqlx::query_scalar(
                    "SELECT user_id FROM sip_route_members WHERE route_id = $1 ORDER BY position",
                )
                .bind(&row.id)
                .fetch_all(pool)
                .await?,
            };
            let strategy = row
                .strategy
                .as_deref()
                .and_then(parse_strategy)
                .unwrap_or(RingStrategy::RingAll);
            let member_timeout_s = row
                .member_timeout_s
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(20);
            let total_timeout_s = match row.total_timeout_s {
                Some(t) => u32::try_from(t).unwrap_or(60),
                // A team route without a total: fitted to the members present now.
                None if row.team_id.is_some() => crate::sip::http::default_total_timeout(
                    strategy,
                    member_timeout_s,
                    members.len().max(1),
                ),
                None => 60,
            };
            RouteTarget::RingGroup {
                members,
                strategy,
                member_timeout_s,
                total_timeout_s,
            }
        }
        _ => RouteTarget::Reject {
            status: row
                .reject_status
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(404),
        },
    };
    Ok(Route {
        id: row.id,
        org_id: row.org_id,
        did: row.did_e164,
        target,
        team_id: row.team_id,
        created_at: row.created_at,
    })
}

/// The route that `select` (a `SELECT * FROM sip_routes` binding `org_id` as $1 and `key` as
/// $2) finds, with its target resolved.
async fn one_route(
    pool: &SqlitePool,
    select: &'static str,
    org_id: &str,
    key: &str,
) -> Result<Option<Route>, sqlx::Error> {
    let row: Option<RouteRow> = sqlx::query_as(select)
        .bind(org_id)
        .bind(key)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(r) => Ok(Some(resolve(pool, r).await?)),
        None => Ok(None),
    }
}

pub async fn get_route(
    pool: &SqlitePool,
    org_id: &str,
    id: &str,
) -> Result<Option<Route>, sqlx::Error> {
    let select = "SELECT * FROM sip_routes WHERE org_id = $1 AND id = $2";
    one_route(pool, select, org_id, id).await
}

pub async fn route_for_did(
    pool: &SqlitePool,
    org_id: &str,
    did_e164: &str,
) -> Result<Option<Route>, sqlx::Error> {
    let select = "SELECT * FROM sip_routes WHERE org_id = $1 AND did_e164 = $2";
    one_route(pool, select, org_id, did_e164).await
}

pub async fn list_routes(pool: &SqlitePool, org_id: &str) -> Result<Vec<Route>, sqlx::Error> {
    let rows: Vec<RouteRow> =
        sqlx::query_as("SELECT * FROM sip_routes WHERE org_id = $1 ORDER BY did_e164")
            .bind(org_id)
            .fetch_all(pool)
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(resolve(pool, r).await?);
    }
    Ok(out)
}

pub async fn delete_route(pool: &SqlitePool, org_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM sip_routes WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

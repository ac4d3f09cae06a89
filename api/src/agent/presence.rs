//! Agents' presence: what the agent chose (available, away) and what calls make of it (busy
//! during a call, wrap-up after it), plus offline once logged out.

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::ids::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Available,
    Away,
    Busy,
    WrapUp,
    Offline,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Away => "away",
            Self::Busy => "busy",
            Self::WrapUp => "wrap_up",
            Self::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "available" => Some(Self::Available),
            "away" => Some(Self::Away),
            "busy" => Some(Self::Busy),
            "wrap_up" => Some(Self::WrapUp),
            "offline" => Some(Self::Offline),
            _ => None,
        }
    }

    /// What an agent may pick by hand; busy and wrap-up come from calls.
    pub fn chosen_by_agent(self) -> bool {
        matches!(self, Self::Available | Self::Away)
    }
}

pub async fn set(
    pool: &SqlitePool,
    org_id: &str,
    user_id: &str,
    presence: Presence,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_presence (user_id, org_id, status, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(org_id)
    .bind(presence.as_str())
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

/// An agent's presence; offline when never set.
pub async fn get(pool: &SqlitePool, org_id: &str, user_id: &str) -> Result<Presence, sqlx::Error> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM agent_presence WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    Ok(status
        .as_deref()
        .and_then(Presence::parse)
        .unwrap_or(Presence::Offline))
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("presence changes after the call ends")]
    OnACall,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl PresenceError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::OnACall => "on_a_call",
            Self::Db(_) => "internal",
        }
    }
}

/// The agent picks available or away; not while a call keeps them busy.
pub async fn change_by_agent(
    pool: &SqlitePool,
    org_id: &str,
    user_id: &str,
    wanted: Presence,
) -> Result<(), PresenceError> {
    if get(pool, org_id, user_id).await? == Presence::Busy {
        return Err(PresenceError::OnACall);
    }
    set(pool, org_id, user_id, wanted).await?;
    Ok(())
}

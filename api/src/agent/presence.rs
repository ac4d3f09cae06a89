//! Agents' presence: what the agent chose (available, away) and what calls make of it (busy
//! during a call, wrap-up after it), plus offline once logged out.

use std::collections::HashMap;
use std::sync::Mutex;

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

/// Every agent's presence as last set, mirrored in memory: call routing asks it on every
/// ring, synchronously, and must not wait for a query. Each change gets a generation number
/// so a delayed step (wrap-up ending) applies only if nothing changed in between.
#[derive(Default)]
pub struct PresenceBoard {
    by_user: Mutex<HashMap<String, (Presence, u64)>>,
}

impl PresenceBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Presence, u64)>> {
        self.by_user.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, user_id: &str) -> Option<Presence> {
        self.lock().get(user_id).map(|(p, _)| *p)
    }

    /// Records a change; returns its generation.
    pub fn put(&self, user_id: &str, presence: Presence) -> u64 {
        let mut map = self.lock();
        let entry = map.entry(user_id.to_string()).or_insert((presence, 0));
        entry.0 = presence;
        entry.1 += 1;
        entry.1
    }

    /// Changes `user_id` to `presence` only if its last change was `generation`.
    pub fn put_if(&self, user_id: &str, generation: u64, presence: Presence) -> Option<u64> {
        let mut map = self.lock();
        let entry = map.get_mut(user_id)?;
        if entry.1 != generation {
            return None;
        }
        entry.0 = presence;
        entry.1 += 1;
        Some(entry.1)
    }
}

/// Stores an agent's presence (database and board).
pub async fn set(
    pool: &SqlitePool,
    board: &PresenceBoard,
    org_id: &str,
    user_id: &str,
    presence: Presence,
) -> Result<(), sqlx::Error> {
    store(pool, org_id, user_id, presence).await?;
    board.put(user_id, presence);
    Ok(())
}

/// Writes the database row only (the board already has it).
pub async fn store(
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
    board: &PresenceBoard,
    org_id: &str,
    user_id: &str,
    wanted: Presence,
) -> Result<(), PresenceError> {
    let current = match board.get(user_id) {
        Some(p) => p,
        None => get(pool, org_id, user_id).await?,
    };
    if current == Presence::Busy {
        return Err(PresenceError::OnACall);
    }
    set(pool, board, org_id, user_id, wanted).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_generation_changes_nothing() {
        let board = PresenceBoard::default();
        assert_eq!(board.get("u"), None);
        let g = board.put("u", Presence::WrapUp);
        let later = board.put("u", Presence::Away);
        assert_eq!(board.put_if("u", g, Presence::Available), None);
        assert_eq!(board.get("u"), Some(Presence::Away));
        assert!(board.put_if("u", later, Presence::Available).is_some());
        assert_eq!(board.get("u"), Some(Presence::Available));
        assert_eq!(board.put_if("nobody", 1, Presence::Available), None);
    }
}

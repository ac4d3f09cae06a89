//! The `teams` and `team_members` tables. Every query is scoped by organization; a team of
//! another organization is never found.

use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use super::TeamError;
use crate::ids::{ms_to_rfc3339, new_id, now_ms};

/// Most teams an organization may have: a team is a queue people pick from a list.
pub const MAX_TEAMS: i64 = 500;
/// Most members a team may have (the largest ring group is 100; a team may be wider, since
/// it is also a reporting and visibility group).
pub const MAX_MEMBERS: i64 = 1_000;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Team {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a member is in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    Member,
    /// Sees the calls of the team's members (see `store::calls::CallAccess`).
    Lead,
}

impl MemberRole {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(Self::Member),
            "lead" => Some(Self::Lead),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Lead => "lead",
        }
    }
}

/// A member with the user's name and extension, as views show them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub user_id: String,
    pub name: String,
    pub extension: String,
    pub user_role: String,
    pub role: String,
    pub added_at: i64,
}

/// A member as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub name: String,
    pub extension: String,
    /// The user's role in the organization (`agent`, `supervisor`, `admin`, `owner`).
    pub user_role: String,
    /// `member` or `lead` (a lead sees the calls of the team's members).
    pub role: String,
    #[schema(format = DateTime)]
    pub added_at: String,
}

pub fn member_view(m: &Member) -> MemberView {
    MemberView {
        user_id: m.user_id.clone(),
        name: m.name.clone(),
        extension: m.extension.clone(),
        user_role: m.user_role.clone(),
        role: m.role.clone(),
        added_at: ms_to_rfc3339(m.added_at),
    }
}

/// A team as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TeamView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub member_count: i64,
    /// In the answers about one team (and its events), not in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberView>>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A team; `members` when they were read (a single team), else only their count.
pub fn view(t: &Team, member_count: i64, members: Option<&[Member]>) -> TeamView {
    TeamView {
        id: t.id.clone(),
        name: t.name.clone(),
        description: t.description.clone(),
        member_count,
        members: members.map(|m| m.iter().map(member_view).collect()),
        created_at: ms_to_rfc3339(t.created_at),
        updated_at: ms_to_rfc3339(t.updated_at),
    }
}

pub async fn get(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<Team>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM teams WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

pub async fn require(
    conn: &mut SqliteConnection,
    org_id: &str,
    id: &str,
) -> Result<Team, TeamError> {
    get(conn, org_id, id)
        .await?
        .ok_or(TeamError::NotFound("team"))
}

pub async fn members(
    conn: &mut SqliteConnection,
    team_id: &str,
) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, u.name, u.extension, u.role AS user_role, m.role, m.added_at
         FROM team_members m JOIN users u ON u.id = m.user_id
         WHERE m.team_id = $1 ORDER BY m.added_at, m.user_id",
    )
    .bind(team_id)
    .fetch_all(&mut *conn)
    .await
}

pub async fn member_count(conn: &mut SqliteConnection, team_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM team_members WHERE team_id = $1")
        .bind(team_id)
        .fetch_one(&mut *conn)
        .await
}

/// The organization's teams by name, each with its member count; only those `user_id` is in
/// when given.
pub async fn list(
    pool: &SqlitePool,
    org_id: &str,
    user_id: Option<&str>,
) -> Result<Vec<(Team, i64)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        team: Team,
        member_count: i64,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT t.*, (SELECT COUNT(*) FROM team_members m WHERE m.team_id = t.id) AS member_count
         FROM teams t
         WHERE t.org_id = $1
           AND ($2 IS NULL OR EXISTS (
                SELECT 1 FROM team_members m WHERE m.team_id = t.id AND m.user_id = $2))
         ORDER BY t.name COLLATE NOCASE, t.id
         LIMIT $3",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(MAX_TEAMS)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.team, r.member_count)).collect())
}

/// The id of another team of the organization with this name (any case), if there is one.
pub async fn name_holder(
    conn: &mut SqliteConnection,
    org_id: &str,
    name: &str,
    except_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM teams WHERE org_id = $1 AND name = $2 COLLATE NOCASE AND id <> $3",
    )
    .bind(org_id)
    .bind(name)
    .bind(except_id)
    .fetch_optional(&mut *conn)
    .await
}

pub async fn insert(
    conn: &mut SqliteConnection,
    org_id: &str,
    name: &str,
    description: Option<&str>,
) -> Result<Team, TeamError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM teams WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(&mut *conn)
        .await?;
    if count >= MAX_TEAMS {
        return Err(TeamError::Limit(format!(
            "an organization has at most {MAX_TEAMS} teams"
        )));
    }
    if let Some(other) = name_holder(conn, org_id, name, "").await? {
        return Err(TeamError::NameTaken(other));
    }
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO teams (id, org_id, name, description, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(name)
    .bind(description)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    require(conn, org_id, &id).await
}

pub async fn update(conn: &mut SqliteConnection, t: &Team) -> Result<(), TeamError> {
    if let Some(other) = name_holder(conn, &t.org_id, &t.name, &t.id).await? {
        return Err(TeamError::NameTaken(other));
    }
    sqlx::query(
        "UPDATE teams SET name = $3, description = $4, updated_at = $5
         WHERE org_id = $1 AND id = $2",
    )
    .bind(&t.org_id)
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The inbound routes that ring this team; a team in use cannot be deleted.
pub async fn routes_ringing(
    conn: &mut SqliteConnection,
    org_id: &str,
    team_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM sip_routes WHERE org_id = $1 AND team_id = $2 ORDER BY id")
        .bind(org_id)
        .bind(team_id)
        .fetch_all(&mut *conn)
        .await
}

/// Deletes the team; its conversations leave it (the foreign key sets their team to none).
/// Returns how many conversations were in it.
pub async fn delete(conn: &mut SqliteConnection, org_id: &str, id: &str) -> Result<i64, TeamError> {
    let routes = routes_ringing(conn, org_id, id).await?;
    if !routes.is_empty() {
        return Err(TeamError::InUse(routes));
    }
    let conversations: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM conversations WHERE org_id = $1 AND team_id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    let done = sqlx::query("DELETE FROM teams WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(TeamError::NotFound("team"));
    }
    Ok(conversations)
}

/// What putting a member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Added,
    RoleChanged { previous: MemberRole },
    Unchanged,
}

/// Adds the user to the team with `role`, or gives a member that role.
pub async fn put_member(
    conn: &mut SqliteConnection,
    org_id: &str,
    team_id: &str,
    user_id: &str,
    role: MemberRole,
) -> Result<MemberChange, TeamError> {
    let user: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    if user.is_none() {
        return Err(TeamError::NotFound("user"));
    }
    let current: Option<String> =
        sqlx::query_scalar("SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    let change = match current.as_deref().map(MemberRole::parse) {
        Some(Some(previous)) if previous == role => return Ok(MemberChange::Unchanged),
        Some(previous) => MemberChange::RoleChanged {
            previous: previous.unwrap_or(MemberRole::Member),
        },
        None => {
            if member_count(conn, team_id).await? >= MAX_MEMBERS {
                return Err(TeamError::Limit(format!(
                    "a team has at most {MAX_MEMBERS} members"
                )));
            }
            MemberChange::Added
        }
    };
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id, org_id, role, added_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(org_id)
    .bind(role.as_str())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    touch(conn, team_id).await?;
    Ok(change)
}

/// Removes the user from the team; false when they were not in it.
pub async fn remove_member(
    conn: &mut SqliteConnection,
    team_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    touch(conn, team_id).await?;
    Ok(true)
}

async fn touch(conn: &mut SqliteConnection, team_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE teams SET updated_at = $2 WHERE id = $1")
        .bind(team_id)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The team's members' user ids in the order they joined: who a team route rings.
pub async fn member_ids(
    conn: &mut SqliteConnection,
    team_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM team_members WHERE team_id = $1 ORDER BY added_at, user_id",
    )
    .bind(team_id)
    .fetch_all(&mut *conn)
    .await
}

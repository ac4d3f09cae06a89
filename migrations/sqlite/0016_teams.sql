-- Teams: named groups of users (billing, tier 2, Spanish line). A conversation may belong to
-- a team (the team's queue), an inbound route may ring a team (its members at call time),
-- and a team's leads see the calls of its members (the "my team's calls" scope).
CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- Names are unique in an organization regardless of case ("Billing" and "billing" would be
-- the same queue to a person).
CREATE UNIQUE INDEX teams_org_name ON teams(org_id, name COLLATE NOCASE);

CREATE TABLE team_members (
    team_id  TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id   TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    -- A lead sees the calls of the team's members; a member is only a member.
    role     TEXT NOT NULL CHECK (role IN ('member', 'lead')),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
-- "Which teams is this user in / does this user lead": the call-visibility check walks it.
CREATE INDEX team_members_user ON team_members(user_id, role, team_id);

ALTER TABLE conversations ADD COLUMN team_id TEXT REFERENCES teams(id) ON DELETE SET NULL;
CREATE INDEX conversations_org_team ON conversations(org_id, team_id) WHERE team_id IS NOT NULL;

-- An inbound route whose ring group is a team: the members are read when the call arrives,
-- so joining or leaving the team changes who rings without touching the route.
ALTER TABLE sip_routes ADD COLUMN team_id TEXT REFERENCES teams(id) ON DELETE RESTRICT;

-- A channel's team: new conversations on the channel start in this team's queue.
ALTER TABLE channels ADD COLUMN default_team_id TEXT REFERENCES teams(id) ON DELETE SET NULL;

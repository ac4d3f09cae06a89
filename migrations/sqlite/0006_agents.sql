-- Agents in the browser (issue 5): web sessions (the cookie's token is never stored, only
-- its SHA-256) and presence.

CREATE TABLE agent_sessions (
    token_hash    TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    user_agent    TEXT
);
CREATE INDEX agent_sessions_user ON agent_sessions(org_id, user_id);

-- An agent's availability for browser calls. `busy` and `wrap_up` are set by calls; the agent
-- switches between available and away (offline after logout).
CREATE TABLE agent_presence (
    user_id     TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    status      TEXT NOT NULL CHECK (status IN ('available', 'away', 'busy', 'wrap_up', 'offline')),
    updated_at  BIGINT NOT NULL
);
CREATE INDEX agent_presence_org ON agent_presence(org_id, status);

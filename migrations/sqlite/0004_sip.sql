-- SIP: each organization's SIP domain (digest realm), its users (agents' phones), upstream
-- trunks with their inbound ACLs, DID routes (to a user, a ring group or a rejection) and the
-- SIP side of live calls. Times are BIGINT ms since the Unix epoch (UTC); ids are UUIDv7 text.
-- Written to run unchanged on PostgreSQL where possible.

-- One SIP domain per organization; the realm of digest authentication and the host part of
-- its users' addresses. Created on first use with a default derived from the org's name.
-- Users' HA1 values depend on it, so it can only change while the org has no users.
CREATE TABLE sip_domains (
    org_id      TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    realm       TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- People who log in (web, issue 5) and whose phones register (SIP). The SIP password itself
-- is never stored: only the two digest HA1 values computed with the org's realm (which is all
-- a registrar needs), and an argon2 hash of the password for the web login.
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    extension       TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin', 'owner')),
    -- hex MD5(extension ":" realm ":" password)
    sip_ha1_md5     TEXT NOT NULL,
    -- hex SHA-256(extension ":" realm ":" password), RFC 8760
    sip_ha1_sha256  TEXT NOT NULL,
    -- argon2id PHC string
    password_hash   TEXT NOT NULL,
    -- End of the user's last call: ring groups with the longest_idle strategy ring the user
    -- idle the longest first.
    last_call_ended_at BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (org_id, extension)
);

-- Upstream SIP trunks. `password` is the credential callscope answers the trunk's 401/407
-- challenges with, so it must be kept usable (a hash would not do), like a webhook secret.
-- It is write-only in the API, never logged, and never returned.
CREATE TABLE sip_trunks (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    transport   TEXT NOT NULL CHECK (transport IN ('udp', 'tcp')),
    username    TEXT,
    password    TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX sip_trunks_org ON sip_trunks(org_id, created_at);

-- Source networks a trunk's inbound calls come from. Matching is done in the application
-- (most specific prefix wins), so the network is stored as text plus prefix length.
CREATE TABLE sip_trunk_acl (
    trunk_id    TEXT NOT NULL REFERENCES sip_trunks(id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    network     TEXT NOT NULL,
    prefix_len  INTEGER NOT NULL,
    PRIMARY KEY (trunk_id, network, prefix_len)
);

-- Inbound routes: a DID (E.164) of the organization → a user, a ring group or a rejection.
CREATE TABLE sip_routes (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    did_e164          TEXT NOT NULL,
    target_kind       TEXT NOT NULL CHECK (target_kind IN ('user', 'ring_group', 'reject')),
    user_id           TEXT REFERENCES users(id),
    strategy          TEXT CHECK (strategy IN ('ring_all', 'longest_idle')),
    member_timeout_s  INTEGER,
    total_timeout_s   INTEGER,
    reject_status     INTEGER,
    created_at        BIGINT NOT NULL,
    UNIQUE (org_id, did_e164)
);

-- Members of a ring-group route, in the order given.
CREATE TABLE sip_route_members (
    route_id  TEXT NOT NULL REFERENCES sip_routes(id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users(id),
    position  INTEGER NOT NULL,
    PRIMARY KEY (route_id, user_id)
);

-- The SIP side of a call (source 'sip' in `calls`), one row per call, same id. A side table
-- rather than more columns on `calls`: uploads and PBX webhooks have none of these, and the
-- live state changes often without touching the processing row.
CREATE TABLE call_sip (
    call_id              TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    org_id               TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    sip_call_id          TEXT NOT NULL,
    -- 'internal' exists only here: calls.direction is inbound/outbound (NULL for internal).
    direction            TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    from_party           TEXT NOT NULL,
    to_party             TEXT NOT NULL,
    trunk_id             TEXT REFERENCES sip_trunks(id) ON DELETE SET NULL,
    agent_user_id        TEXT REFERENCES users(id) ON DELETE SET NULL,
    answered_by_user_id  TEXT REFERENCES users(id) ON DELETE SET NULL,
    state                TEXT NOT NULL CHECK (state IN ('trying', 'ringing', 'answered', 'ended')),
    on_hold              INTEGER NOT NULL DEFAULT 0,
    invite_at            BIGINT NOT NULL,
    ring_at              BIGINT,
    answer_at            BIGINT,
    end_at               BIGINT,
    sip_status           INTEGER,
    hangup_side          TEXT CHECK (hangup_side IN ('caller', 'callee', 'system', 'api')),
    hangup_cause         TEXT,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX call_sip_org_state ON call_sip(org_id, state);

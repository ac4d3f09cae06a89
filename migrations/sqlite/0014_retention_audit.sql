-- Retention and audit (issue 7): how long each organization keeps recordings, transcripts
-- and insights; legal holds and purge marks per call; the audit log.

-- One row per organization that changed the defaults. A NULL period keeps that kind of data
-- forever; an organization without a row gets the defaults (recordings 90 days, the rest
-- kept), see api/src/retention/policy.rs.
CREATE TABLE retention_policies (
    org_id           TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    recordings_days  INTEGER CHECK (recordings_days IS NULL OR recordings_days > 0),
    transcripts_days INTEGER CHECK (transcripts_days IS NULL OR transcripts_days > 0),
    insights_days    INTEGER CHECK (insights_days IS NULL OR insights_days > 0),
    updated_at       BIGINT NOT NULL
);

-- Per call: the legal hold (a held call is never purged) and what the purge removed, so the
-- API can say "purged" (410) rather than "never existed" (404).
CREATE TABLE call_retention (
    call_id              TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    org_id               TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    legal_hold           INTEGER NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1)),
    hold_reason          TEXT,
    hold_actor_type      TEXT,
    hold_actor_id        TEXT,
    hold_changed_at      BIGINT,
    recording_purged_at  BIGINT,
    transcript_purged_at BIGINT,
    insights_purged_at   BIGINT
);
CREATE INDEX call_retention_org_hold ON call_retention(org_id, legal_hold);

-- Who did what, when, from where. `details` is JSON and never holds secrets.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    actor_type  TEXT NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'anonymous')),
    actor_id    TEXT,
    action      TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    ip          TEXT,
    created_at  BIGINT NOT NULL
);
-- Newest first with (created_at, id) as the cursor key, optionally by action or actor.
CREATE INDEX audit_log_org_time ON audit_log(org_id, created_at DESC, id DESC);
CREATE INDEX audit_log_org_action ON audit_log(org_id, action, created_at DESC, id DESC);
CREATE INDEX audit_log_org_actor ON audit_log(org_id, actor_id, created_at DESC, id DESC);


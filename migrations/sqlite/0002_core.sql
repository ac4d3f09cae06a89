-- Contacts, conversations, calls, recordings, transcript segments, durable jobs and the
-- timeline. Every row carries org_id so that every query can be scoped by organization.
-- Times are BIGINT ms since the Unix epoch (UTC); ids are UUIDv7 text; JSON is stored as TEXT
-- (JSONB on PostgreSQL later). No SQLite-only syntax, so a PostgreSQL set can mirror it.

CREATE TABLE contacts (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    phone_e164   TEXT,
    display_name TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (org_id, phone_e164)
);

CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id       TEXT REFERENCES contacts(id) ON DELETE SET NULL,
    channel          TEXT NOT NULL,  -- 'voice' (messaging channels come later)
    started_at       BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX conversations_org_contact ON conversations(org_id, contact_id);

CREATE TABLE calls (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    external_id      TEXT,
    source           TEXT NOT NULL CHECK (source IN ('upload', 'webhook', 'sip', 'webrtc')),
    direction        TEXT CHECK (direction IN ('inbound', 'outbound')),
    customer_phone   TEXT,          -- E.164 when it parsed, else as given
    agent_identifier TEXT,
    started_at       BIGINT,        -- when the call happened (from the PBX), ms
    duration_ms      BIGINT,        -- as claimed by the PBX; the recording has the measured one
    channel_layout   TEXT NOT NULL DEFAULT 'mono'
                     CHECK (channel_layout IN ('mono', 'stereo_agent_left', 'stereo_agent_right')),
    language         TEXT,
    status           TEXT NOT NULL CHECK (status IN ('received', 'transcribing', 'analyzing',
                     'completed', 'failed', 'silent', 'transcription_unavailable')),
    asr_outcome      TEXT,
    failure_code     TEXT,
    failure_reason   TEXT,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    recording_url    TEXT,
    metadata         TEXT NOT NULL DEFAULT '{}',
    contact_id       TEXT REFERENCES contacts(id) ON DELETE SET NULL,
    conversation_id  TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    UNIQUE (org_id, external_id)
);
-- Listing is newest first with (created_at, id) as the cursor key.
CREATE INDEX calls_org_created ON calls(org_id, created_at DESC, id DESC);
CREATE INDEX calls_org_status ON calls(org_id, status);
CREATE INDEX calls_org_customer ON calls(org_id, customer_phone);

CREATE TABLE recordings (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id       TEXT NOT NULL UNIQUE REFERENCES calls(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    original_name TEXT,
    format        TEXT,
    codec         TEXT,
    channels      INTEGER,
    sample_rate   INTEGER,
    duration_ms   BIGINT,
    sha256        TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX recordings_org ON recordings(org_id);

CREATE TABLE transcript_segments (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id       TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    speaker_role  TEXT NOT NULL CHECK (speaker_role IN ('agent', 'customer', 'unknown')),
    speaker_label TEXT NOT NULL,
    channel       INTEGER NOT NULL,
    start_ms      BIGINT NOT NULL,
    end_ms        BIGINT NOT NULL,
    text          TEXT,            -- NULL when no ASR ran: the segment still carries talk time
    confidence    REAL,
    words         TEXT NOT NULL DEFAULT '[]',
    UNIQUE (call_id, seq)
);
CREATE INDEX transcript_segments_call ON transcript_segments(org_id, call_id, start_ms);

-- Durable work. A worker claims a row by setting status='running' and locked_until (a lease);
-- a row whose lease expired (worker killed) is claimable again.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL DEFAULT '{}',
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    run_after    BIGINT NOT NULL,
    locked_until BIGINT,
    locked_by    TEXT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_claimable ON jobs(status, run_after);

CREATE TABLE timeline_events (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id      TEXT REFERENCES contacts(id) ON DELETE CASCADE,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    ref_id          TEXT,
    payload         TEXT NOT NULL DEFAULT '{}',
    occurred_at     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- One event per (kind, ref): a re-run job does not add a second 'call.processed'.
    UNIQUE (org_id, kind, ref_id)
);
CREATE INDEX timeline_events_contact ON timeline_events(org_id, contact_id, occurred_at DESC, id DESC);

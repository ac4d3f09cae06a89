-- Analytics (issue 7): per-call facts extracted from the stored analysis JSON, so reports are
-- plain indexed SQL instead of parsing every analysis on every request; the monthly minute
-- quota per organization and the warnings already sent for it. Portable SQL (no SQLite-only
-- syntax), like the earlier sets.

-- One row per analysed call, rebuilt from call_analyses whenever that row is newer
-- (`analysed_at` equal to the analysis' own means up to date).
CREATE TABLE call_insights (
    call_id              TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    org_id               TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    analysed_at          BIGINT NOT NULL,
    sentiment_score      REAL,           -- overall, in [-1, 1]; NULL when nobody spoke
    sentiment_label      TEXT,           -- positive / neutral / negative / mixed
    call_type            TEXT,
    agent_talk_ms        BIGINT,
    flags                INTEGER NOT NULL DEFAULT 0,
    disclosure_missing   INTEGER NOT NULL DEFAULT 0,  -- a disclosure rule flagged the call
    tracker_hits         INTEGER NOT NULL DEFAULT 0,
    suggested_qa_percent REAL,           -- mean of the scorecard suggestions' percent
    flag_summary         TEXT NOT NULL DEFAULT '',    -- "Compliance:1; Escalation:2" (CSV)
    tracker_summary      TEXT NOT NULL DEFAULT ''     -- "Pricing:2; Competitor:1" (CSV)
);
CREATE INDEX call_insights_org ON call_insights(org_id, analysed_at);

CREATE TABLE call_insight_flags (
    call_id   TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    org_id    TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    category  TEXT NOT NULL,
    severity  TEXT NOT NULL,
    flags     INTEGER NOT NULL,
    PRIMARY KEY (call_id, category, severity)
);
CREATE INDEX call_insight_flags_org ON call_insight_flags(org_id, category);

CREATE TABLE call_insight_trackers (
    call_id      TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    tracker_id   TEXT NOT NULL,
    tracker_name TEXT,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (call_id, tracker_id)
);
CREATE INDEX call_insight_trackers_org ON call_insight_trackers(org_id, tracker_id);

-- Reports filter calls by when they happened (the PBX's time, else when we received them).
CREATE INDEX calls_org_time ON calls(org_id, (COALESCE(started_at, created_at)));

-- NULL monthly_minutes (or no row) = unlimited.
CREATE TABLE org_quotas (
    org_id          TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    monthly_minutes BIGINT,
    updated_at      BIGINT NOT NULL
);

-- One row per threshold reached per calendar month (UTC, 'YYYY-MM'): the event goes out once.
CREATE TABLE quota_warnings (
    org_id         TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    period         TEXT NOT NULL,
    threshold      INTEGER NOT NULL,
    used_minutes   REAL NOT NULL,
    quota_minutes  BIGINT NOT NULL,
    fired_at       BIGINT NOT NULL,
    PRIMARY KEY (org_id, period, threshold)
);

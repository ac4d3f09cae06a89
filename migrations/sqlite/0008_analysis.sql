-- Call analysis (issue 6): what each organization configures (trackers, compliance rules,
-- scorecard templates, settings) and what the analysis produced per call. The configured
-- objects are stored as the JSON of the analysis crate's own types (`definition`); the columns
-- beside it are what lists filter and sort on (`kind`: keyword/smart for trackers, the rule's
-- type for rules, empty for templates).

CREATE TABLE trackers (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('keyword', 'smart')),
    name        TEXT NOT NULL,
    category    TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX trackers_org ON trackers(org_id, kind, active);

CREATE TABLE compliance_rules (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL,
    category    TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX compliance_rules_org ON compliance_rules(org_id, active);

CREATE TABLE scorecard_templates (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL,
    category    TEXT NOT NULL DEFAULT '',
    active      INTEGER NOT NULL DEFAULT 1,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX scorecard_templates_org ON scorecard_templates(org_id, active);

-- One row per organization that changed the defaults (redaction of emails/phones, keeping
-- unredacted text, its own call types, the default rule pack on or off).
CREATE TABLE analysis_settings (
    org_id      TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    settings    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- The latest analysis of a call (re-analysis replaces it). `unredacted` is kept only when the
-- organization allows it.
CREATE TABLE call_analyses (
    call_id      TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    result       TEXT NOT NULL,
    unredacted   TEXT,
    analysed_at  BIGINT NOT NULL
);
CREATE INDEX call_analyses_org ON call_analyses(org_id, analysed_at);

-- A manager's override of the computed call type; survives re-analysis.
ALTER TABLE calls ADD COLUMN call_type_override TEXT;

-- Scorecards: one per call and template; manual answers survive re-analysis.
CREATE TABLE call_scorecards (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id      TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    template_id  TEXT NOT NULL REFERENCES scorecard_templates(id) ON DELETE CASCADE,
    reviewer     TEXT,
    result       TEXT NOT NULL,
    percent      REAL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (call_id, template_id)
);
CREATE INDEX call_scorecards_org ON call_scorecards(org_id, call_id);

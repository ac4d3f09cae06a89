-- Outbound webhooks: endpoints, a durable outbox (one row per event x endpoint) and a log of
-- every delivery attempt. Times are BIGINT ms since the Unix epoch (UTC); ids are UUIDv7 text.
-- Written to run unchanged on PostgreSQL where possible.

-- `secret` is kept as given: the sender needs the key itself to compute HMAC-SHA256, so a
-- hash would be useless. It is returned once (at creation) and only `secret_prefix` after
-- that. Encrypting it at rest with a server key is a later option; anyone who can read this
-- table can already read every call it describes.
CREATE TABLE webhook_endpoints (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    -- JSON array of subscribed event names; "*" matches every event, "call.*" a family.
    events         TEXT NOT NULL,
    secret         TEXT NOT NULL,
    secret_prefix  TEXT NOT NULL,
    description    TEXT,
    created_at     BIGINT NOT NULL,
    -- Soft delete keeps the delivery log readable for audits; deleted endpoints get nothing.
    deleted_at     BIGINT
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints(org_id, deleted_at);

-- One row per (event, endpoint): the unit that is delivered, retried and redelivered. Its id
-- is the `X-Callscope-Delivery` header; `event_id` (the envelope id) is shared by the rows of
-- one event and is what receivers deduplicate on.
CREATE TABLE webhook_outbox (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id          TEXT NOT NULL,
    event             TEXT NOT NULL,
    -- The exact envelope bytes, fixed at enqueue so every attempt sends the same body.
    payload           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    -- All attempts ever made (numbers the log rows).
    attempts          INTEGER NOT NULL DEFAULT 0,
    -- Attempts in the current retry cycle; a manual redelivery starts a new cycle.
    cycle_attempts    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT NOT NULL,
    -- A worker owns a claimed row until `lease_until`; after that any worker may take it
    -- again (the owner crashed). Only the holder of `lease_token` may record the outcome.
    lease_until       BIGINT,
    lease_token       TEXT,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    delivered_at      BIGINT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(status, next_attempt_at);
CREATE INDEX webhook_outbox_endpoint ON webhook_outbox(endpoint_id, id);

CREATE TABLE webhook_deliveries (
    id                TEXT PRIMARY KEY,
    outbox_id         TEXT NOT NULL REFERENCES webhook_outbox(id) ON DELETE CASCADE,
    org_id            TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    attempt           INTEGER NOT NULL,
    attempted_at      BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,
    status_code       INTEGER,
    -- First bytes of the response body (lossy UTF-8), for debugging receivers.
    response_snippet  TEXT,
    error             TEXT
);
CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries(outbox_id, attempt);

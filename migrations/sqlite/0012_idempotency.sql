-- Idempotency keys of POSTs under /api/v1 (api/src/http/idempotency.rs): per credential
-- (SHA-256 of the presented API key or session cookie), kept 24 hours. `status` is NULL
-- while the first request is still running.
CREATE TABLE idempotency_keys (
    credential_hash  TEXT NOT NULL,
    idem_key         TEXT NOT NULL,
    request_hash     TEXT NOT NULL,
    status           INTEGER,
    content_type     TEXT,
    body             BLOB,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (credential_hash, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);

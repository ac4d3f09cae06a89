-- The organization-wide event stream behind the realtime socket (/api/v1/events/ws): every
-- event that webhooks can carry, in commit order, whether or not an endpoint subscribes.
-- `seq` orders the stream; SQLite serialises writers, so rows become visible in `seq` order
-- and a reader that remembers the last `seq` it saw misses nothing. Rows are kept for a
-- replay window (clients reconnect with `after=<seq>`), then pruned.
CREATE TABLE event_stream (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX event_stream_org_seq ON event_stream(org_id, seq);
CREATE INDEX event_stream_created ON event_stream(created_at);

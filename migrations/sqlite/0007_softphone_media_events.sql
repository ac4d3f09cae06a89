-- Softphone calls add media events: the agent muted (an interval), a leg replaced mid-call
-- (a browser answering, a transfer) with the quality of the leg that left. SQLite cannot
-- change a CHECK in place, so the table is rebuilt with the longer list.
CREATE TABLE call_media_events_new (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('dtmf', 'recording_paused', 'recording_resumed',
                    'recording_recovered', 'recording_failed', 'tap_overflow', 'utterance',
                    'muted', 'leg_replaced')),
    -- ms since the call's media started (DTMF, mutes, replaced legs) or since the recording
    -- started (pauses)
    offset_ms   BIGINT,
    duration_ms BIGINT,
    data        TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL
);
INSERT INTO call_media_events_new SELECT * FROM call_media_events;
DROP TABLE call_media_events;
ALTER TABLE call_media_events_new RENAME TO call_media_events;
CREATE INDEX call_media_events_call ON call_media_events(org_id, call_id, created_at);

-- Media (issue 4): recording policy overrides, the media side of SIP calls (per-leg quality,
-- recording state) and media events (DTMF digits, recording pauses, tap overflows).

-- Whether answered calls are recorded: NULL inherits (route → trunk → organization → the
-- server's `[sip.media] record_calls`), 0/1 decide.
ALTER TABLE organizations ADD COLUMN record_calls INTEGER CHECK (record_calls IN (0, 1));
ALTER TABLE sip_trunks ADD COLUMN record_calls INTEGER CHECK (record_calls IN (0, 1));
ALTER TABLE sip_routes ADD COLUMN record_calls INTEGER CHECK (record_calls IN (0, 1));

-- The engine's report of a finished call, as JSON: per-leg quality (packets, loss, jitter,
-- MOS, codec, latched address), tap and recording drops.
ALTER TABLE call_sip ADD COLUMN media_json TEXT;

-- A recording written by callscope that was cut off by a crash and repaired at start-up.
ALTER TABLE recordings ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0;

-- Things that happened to a call's media, in time order (`utterance`: a talk turn found
-- live from the call's audio, with its role in `data`).
CREATE TABLE call_media_events (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('dtmf', 'recording_paused', 'recording_resumed',
                    'recording_recovered', 'recording_failed', 'tap_overflow', 'utterance')),
    -- ms since the call's media started (DTMF) or since the recording started (pauses)
    offset_ms   BIGINT,
    duration_ms BIGINT,
    data        TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL
);
CREATE INDEX call_media_events_call ON call_media_events(org_id, call_id, created_at);

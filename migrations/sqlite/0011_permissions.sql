-- API keys carry a permission set: names separated by spaces (see api/src/permissions.rs).
-- NULL marks a key made before permissions existed; those had, and keep, full access.
ALTER TABLE api_keys ADD COLUMN permissions TEXT;
ALTER TABLE api_keys ADD COLUMN created_by_user_id TEXT REFERENCES users(id) ON DELETE SET NULL;

-- "Own calls" for agents: the calls a user answered or was assigned (SIP/WebRTC), or whose
-- agent identifier (from an upload or a PBX webhook) is the user's extension or id.
CREATE INDEX IF NOT EXISTS call_sip_answered_by ON call_sip(org_id, answered_by_user_id);
CREATE INDEX IF NOT EXISTS call_sip_agent_user ON call_sip(org_id, agent_user_id);
CREATE INDEX IF NOT EXISTS calls_org_agent ON calls(org_id, agent_identifier);

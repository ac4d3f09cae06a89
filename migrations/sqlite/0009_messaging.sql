-- Messaging: channels (inboxes) per organization, the channel-side identity of contacts,
-- conversation workflow fields and messages. Times are BIGINT ms since the Unix epoch (UTC);
-- ids are UUIDv7 text; JSON is TEXT. Written to run unchanged on PostgreSQL where possible.

-- One row per configured channel ("inbox"). Voice conversations have no channel row: the
-- SIP/WebRTC/upload paths are the voice channel. Secrets (`wa_app_secret`, `wa_access_token`,
-- `wa_verify_token`) are kept usable because callscope must compute HMACs and send bearer
-- tokens with them, like webhook secrets; the API only ever shows a short prefix of them.
CREATE TABLE channels (
    id                      TEXT PRIMARY KEY,
    org_id                  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind                    TEXT NOT NULL CHECK (kind IN ('api', 'whatsapp')),
    name                    TEXT NOT NULL,
    -- API channel: outbound messages go to this URL as signed webhooks through the outbox,
    -- via a webhook endpoint row subscribed to nothing (it only gets what is addressed to it).
    callback_url            TEXT,
    callback_endpoint_id    TEXT REFERENCES webhook_endpoints(id) ON DELETE SET NULL,
    -- WhatsApp Cloud API.
    wa_phone_number_id      TEXT,
    wa_business_account_id  TEXT,
    wa_verify_token         TEXT,
    wa_app_secret           TEXT,
    wa_access_token         TEXT,
    wa_graph_base_url       TEXT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    -- Soft delete: messages keep pointing at their channel.
    deleted_at              BIGINT
);
CREATE INDEX channels_org ON channels(org_id, deleted_at);
-- Meta's phone_number_id is global: it routes an inbound webhook to exactly one channel.
CREATE UNIQUE INDEX channels_wa_phone ON channels(wa_phone_number_id)
    WHERE wa_phone_number_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX channels_wa_verify ON channels(wa_verify_token)
    WHERE wa_verify_token IS NOT NULL AND deleted_at IS NULL;

-- Who a contact is on a channel (Chatwoot's contact_inbox.source_id): the WhatsApp wa_id, or
-- the API channel's external id / email / phone as the external system sent it.
CREATE TABLE channel_contacts (
    channel_id  TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    source_id   TEXT NOT NULL,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (channel_id, source_id)
);
CREATE INDEX channel_contacts_contact ON channel_contacts(org_id, contact_id);

ALTER TABLE conversations ADD COLUMN channel_id TEXT REFERENCES channels(id);
ALTER TABLE conversations ADD COLUMN status TEXT NOT NULL DEFAULT 'open'
    CHECK (status IN ('open', 'pending', 'resolved', 'snoozed'));
-- NULL while snoozed means "until the contact writes again".
ALTER TABLE conversations ADD COLUMN snoozed_until BIGINT;
ALTER TABLE conversations ADD COLUMN assignee_id TEXT REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE conversations ADD COLUMN priority TEXT NOT NULL DEFAULT 'none'
    CHECK (priority IN ('none', 'low', 'medium', 'high', 'urgent'));
-- JSON array of strings.
ALTER TABLE conversations ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE conversations ADD COLUMN updated_at BIGINT;
-- At most one unresolved conversation per contact and messaging channel: an inbound message
-- joins it; after `resolved` the next inbound message starts a new conversation.
CREATE UNIQUE INDEX conversations_one_unresolved ON conversations(org_id, channel_id, contact_id)
    WHERE channel_id IS NOT NULL AND status <> 'resolved';
-- Listing is newest first with the id as the cursor.
CREATE INDEX conversations_org_id ON conversations(org_id, id);
CREATE INDEX conversations_org_status ON conversations(org_id, status, id);

CREATE TABLE messages (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    conversation_id     TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    channel_id          TEXT NOT NULL REFERENCES channels(id),
    contact_id          TEXT REFERENCES contacts(id) ON DELETE SET NULL,
    direction           TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sender_type         TEXT NOT NULL CHECK (sender_type IN ('contact', 'user', 'api_key', 'system')),
    sender_id           TEXT,
    content             TEXT,
    content_type        TEXT NOT NULL CHECK (content_type IN ('text', 'image', 'audio', 'video',
                        'document', 'sticker', 'location', 'contacts', 'interactive', 'button',
                        'reaction', 'template', 'unsupported')),
    -- JSON array of {url | media_id, mime_type, size, filename, caption, sha256}.
    attachments         TEXT NOT NULL DEFAULT '[]',
    -- JSON object: location, interactive reply, template, reply context...
    content_attributes  TEXT NOT NULL DEFAULT '{}',
    -- `received` for inbound; outbound goes queued → sent → delivered → read, or failed.
    status              TEXT NOT NULL CHECK (status IN ('received', 'queued', 'sent', 'delivered',
                        'read', 'failed')),
    error_code          TEXT,
    error_message       TEXT,
    -- The channel's id of the message (WhatsApp wamid, the API caller's message id).
    external_id         TEXT,
    sent_at             BIGINT,
    delivered_at        BIGINT,
    read_at             BIGINT,
    failed_at           BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    -- Replays of a webhook carry the same external id: the second insert is refused.
    UNIQUE (channel_id, external_id)
);
CREATE INDEX messages_conversation ON messages(org_id, conversation_id, id);

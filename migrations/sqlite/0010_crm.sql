-- CRM (issue 7): companies, contacts with several phones and emails, tags, custom attributes,
-- consent per channel, a name-token index for search, notes, tasks and the organization's CRM
-- settings. Times are BIGINT ms since the Unix epoch (UTC); ids are UUIDv7 text. Written to run
-- unchanged on PostgreSQL where possible.

CREATE TABLE companies (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    -- lower-cased host name ("example.com"); one company per domain and organization
    domain      TEXT,
    attributes  TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, domain)
);
CREATE INDEX companies_org ON companies(org_id, id);

-- contacts.phone_e164 stays the primary phone (the code that predates this file keys on it);
-- contact_phones holds every phone, the primary included.
ALTER TABLE contacts ADD COLUMN first_name TEXT;
ALTER TABLE contacts ADD COLUMN last_name TEXT;
ALTER TABLE contacts ADD COLUMN company_id TEXT REFERENCES companies(id) ON DELETE SET NULL;
ALTER TABLE contacts ADD COLUMN external_id TEXT;
ALTER TABLE contacts ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
CREATE UNIQUE INDEX contacts_org_external ON contacts(org_id, external_id);
CREATE INDEX contacts_org_company ON contacts(org_id, company_id, id);
-- Search lists newest first by id (UUIDv7 is time-ordered).
CREATE INDEX contacts_org_id ON contacts(org_id, id);

CREATE TABLE contact_phones (
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    phone_e164  TEXT NOT NULL,
    is_primary  INTEGER NOT NULL DEFAULT 0,
    label       TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, phone_e164)
);
CREATE INDEX contact_phones_contact ON contact_phones(contact_id);
INSERT INTO contact_phones (org_id, contact_id, phone_e164, is_primary, created_at)
    SELECT org_id, id, phone_e164, 1, created_at FROM contacts WHERE phone_e164 IS NOT NULL;

CREATE TABLE contact_emails (
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    -- lower-cased
    email       TEXT NOT NULL,
    is_primary  INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, email)
);
CREATE INDEX contact_emails_contact ON contact_emails(contact_id);

CREATE TABLE contact_tags (
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag         TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tags_org_tag ON contact_tags(org_id, tag, contact_id);

-- One row per word of the first, last and display names, folded (lower case, no accents), so
-- a prefix search is an index range scan at any number of contacts.
CREATE TABLE contact_name_tokens (
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    token       TEXT NOT NULL,
    PRIMARY KEY (contact_id, token)
);
CREATE INDEX contact_name_tokens_org_token ON contact_name_tokens(org_id, token, contact_id);

-- Opt-in status per channel; a missing row means 'unknown'.
CREATE TABLE contact_consents (
    org_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id  TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    channel     TEXT NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email')),
    status      TEXT NOT NULL CHECK (status IN ('opted_in', 'opted_out', 'unknown')),
    source      TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (contact_id, channel)
);

-- Internal notes on a contact or a conversation. The author is a user or the API key that
-- wrote it.
CREATE TABLE notes (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    contact_id       TEXT REFERENCES contacts(id) ON DELETE CASCADE,
    conversation_id  TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    body             TEXT NOT NULL,
    author_kind      TEXT NOT NULL CHECK (author_kind IN ('user', 'api_key')),
    author_id        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    CHECK (contact_id IS NOT NULL OR conversation_id IS NOT NULL)
);
CREATE INDEX notes_org_contact ON notes(org_id, contact_id, id);
CREATE INDEX notes_org_conversation ON notes(org_id, conversation_id, id);

-- Tasks, typed by hand or made from an action item the analysis found in a call
-- (source 'analysis': call_id + the item's index, unique so a re-analysis adds none twice).
CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    title              TEXT NOT NULL,
    description        TEXT,
    contact_id         TEXT REFERENCES contacts(id) ON DELETE CASCADE,
    conversation_id    TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    call_id            TEXT REFERENCES calls(id) ON DELETE CASCADE,
    assignee_user_id   TEXT REFERENCES users(id) ON DELETE SET NULL,
    due_at             BIGINT,
    priority           TEXT NOT NULL DEFAULT 'normal'
                       CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    done               INTEGER NOT NULL DEFAULT 0,
    done_at            BIGINT,
    source             TEXT NOT NULL CHECK (source IN ('manual', 'analysis')),
    action_item_index  INTEGER,
    created_by         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (call_id, action_item_index)
);
CREATE INDEX tasks_org_list ON tasks(org_id, done, id);
CREATE INDEX tasks_org_assignee ON tasks(org_id, assignee_user_id, done, due_at);
CREATE INDEX tasks_org_contact ON tasks(org_id, contact_id);

-- Per organization: the region that reads phone numbers written without a country code, and
-- what happens to the analysis's action items (off | suggest: one click | auto: tasks made
-- when the analysis is stored).
CREATE TABLE crm_settings (
    org_id             TEXT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    default_region     TEXT,
    action_item_tasks  TEXT NOT NULL DEFAULT 'suggest'
                       CHECK (action_item_tasks IN ('off', 'suggest', 'auto')),
    updated_at         BIGINT NOT NULL
);

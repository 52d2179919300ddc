-- Consent: each site's banner configuration, and the proof of every visitor's decision.

CREATE TABLE consent_configs (
    site_id INTEGER PRIMARY KEY REFERENCES sites(id),
    config TEXT NOT NULL,  -- JSON, see server/consent.py ConsentConfig
    updated_at INTEGER NOT NULL
);

-- One row per decision. No address (not even truncated) and no analytics visitor ID: what
-- was shown, what was chosen, when, where on the site, and nothing that identifies the person
-- beyond the random consent ID they can quote.
CREATE TABLE consent_records (
    id INTEGER PRIMARY KEY,
    consent_id TEXT NOT NULL,
    site_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    action TEXT NOT NULL,
    choices TEXT NOT NULL,  -- JSON object: category -> true/false, every category present
    revision INTEGER NOT NULL,
    language TEXT NOT NULL,
    texts_hash TEXT NOT NULL,
    path TEXT NOT NULL,
    gpc INTEGER NOT NULL
);

CREATE INDEX consent_records_site_created ON consent_records (site_id, created_at);
CREATE INDEX consent_records_consent_id ON consent_records (consent_id);

-- 1 when the event carried the first-party visitor ID that only analytics consent creates.
ALTER TABLE events ADD COLUMN consented INTEGER NOT NULL DEFAULT 0;

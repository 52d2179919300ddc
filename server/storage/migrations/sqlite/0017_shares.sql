-- Share links (issue 18): a site's statistics for people without an account, under conditions
-- checked on every request. A link is a signed token naming the row and its `nonce`; the row
-- decides whether it still opens anything, so a revocation, an expiry or a change takes effect
-- at once. `sections` is a JSON list of the dashboard's sections the link shows, `filters` the
-- Stats API v1 filter string every view is locked to, `embed_origins` a JSON list of origins
-- allowed to frame it. `password_hash` is argon2id (server/accounts/passwords.py) or NULL.
CREATE TABLE shares (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    label TEXT NOT NULL DEFAULT '',
    nonce TEXT NOT NULL,
    password_hash TEXT,
    expires_at INTEGER,
    sections TEXT NOT NULL,
    filters TEXT NOT NULL DEFAULT '',
    embed_origins TEXT NOT NULL DEFAULT '[]',
    csv INTEGER NOT NULL DEFAULT 1 CHECK (csv IN (0, 1)),
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE INDEX shares_site ON shares (site_id);

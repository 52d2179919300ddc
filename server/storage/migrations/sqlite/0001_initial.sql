-- Sites, daily salts, anonymised events and per-day drop counters.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE sites (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL UNIQUE,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    created_at INTEGER NOT NULL
);

-- At most two rows live at once (today and yesterday, UTC): older salts are deleted, which is
-- what makes visitor hashes of different days unlinkable.
CREATE TABLE salts (
    day TEXT PRIMARY KEY,
    salt BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- No column holds an address, full or truncated.
CREATE TABLE events (
    site_id INTEGER NOT NULL REFERENCES sites(id),
    ts INTEGER NOT NULL,
    visitor_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    path TEXT NOT NULL,
    referrer_host TEXT,
    referrer_path TEXT,
    utm_source TEXT,
    utm_medium TEXT,
    utm_campaign TEXT,
    utm_term TEXT,
    utm_content TEXT,
    browser TEXT NOT NULL,
    browser_version TEXT NOT NULL,
    os TEXT NOT NULL,
    os_version TEXT NOT NULL,
    device TEXT NOT NULL,
    country TEXT,
    region TEXT,
    city TEXT,
    props TEXT,
    revenue_amount TEXT,
    revenue_currency TEXT,
    interactive INTEGER NOT NULL DEFAULT 1,
    scroll_depth INTEGER,
    engaged_ms INTEGER
);

CREATE INDEX events_site_ts ON events (site_id, ts);
CREATE INDEX events_site_visitor_ts ON events (site_id, visitor_id, ts);

-- site_id 0: events for no known site.
CREATE TABLE drops (
    site_id INTEGER NOT NULL,
    day TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, reason)
);

-- Goals, as Plausible's: a custom event by name, or pageviews of a path pattern in which `*`
-- (and `**`) stands for any run of characters (server/goals.py). The report engine counts
-- conversions by them; display_name is how reports and filters (`event:goal==...`) name them.
-- currency: ISO 4217, for an event goal whose events carry revenue.
CREATE TABLE goals (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    kind TEXT NOT NULL CHECK (kind IN ('event', 'page')),
    event_name TEXT,
    page_path TEXT,
    display_name TEXT NOT NULL,
    currency TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (site_id, display_name),
    CHECK ((kind = 'event') = (event_name IS NOT NULL)),
    CHECK ((kind = 'page') = (page_path IS NOT NULL)),
    CHECK (currency IS NULL OR kind = 'event')
);

-- One goal per event and per page pattern, as Plausible's: two would count each conversion
-- twice under two names.
CREATE UNIQUE INDEX goals_event ON goals (site_id, event_name) WHERE kind = 'event';
CREATE UNIQUE INDEX goals_page ON goals (site_id, page_path) WHERE kind = 'page';

-- Goals are settings: a running server sees one added from the CLI the way it sees a site
-- (0008_settings_version.sql).
CREATE TRIGGER goals_insert_settings_version AFTER INSERT ON goals BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

CREATE TRIGGER goals_update_settings_version AFTER UPDATE ON goals BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

CREATE TRIGGER goals_delete_settings_version AFTER DELETE ON goals BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

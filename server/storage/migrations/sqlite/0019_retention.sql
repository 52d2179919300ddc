-- Retention (docs/retention.md). A period is text, a number and a unit: '90d', '6w', '13m',
-- '2y'. NULL inherits: a site's from its customer, a customer's from the default (25 months,
-- or ZEEF_RETENTION). Months and years are calendar ones, counted in the site's time zone.
ALTER TABLE customers ADD COLUMN retention TEXT;
-- Consent records: kept for the consent's lifetime plus this proof period (NULL: the
-- default, ZEEF_CONSENT_PROOF).
ALTER TABLE customers ADD COLUMN consent_proof TEXT;
-- 1: the site's rollups (counts per day and value, no visitor IDs) outlive its raw events.
ALTER TABLE customers ADD COLUMN keep_aggregates INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN retention TEXT;

-- Each purge, by the server's job or `zeef purge`. A run claims the table by inserting its row
-- in a write transaction; a row unfinished for an hour is a crashed run, and no longer blocks.
CREATE TABLE purge_runs (
    id INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    by TEXT NOT NULL,          -- 'server' or 'cli'
    deleted TEXT               -- JSON: {domain: {table: rows}}, written when it finishes
);
CREATE INDEX purge_runs_started ON purge_runs (started_at);

-- Up to where each site's data was last purged: a site's cutoff moves once a day (at its
-- local midnight), so the hourly job skips the sites whose cutoff has not moved.
CREATE TABLE site_purges (
    site_id INTEGER PRIMARY KEY,
    cutoff INTEGER NOT NULL,
    consent_cutoff INTEGER NOT NULL,
    keep_aggregates INTEGER NOT NULL
);

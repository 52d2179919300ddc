-- Reports and traffic alerts by e-mail (server/mail/). 0017 is share links'.

-- Who gets a site's weekly and/or monthly report, in which language. An unsubscribe (a
-- recipient's one click, or `zeef report remove`) sets unsubscribed_at: the row stays, so an
-- old mail's link still finds it and says it is done. share_id names a share link to put in
-- the report; no foreign key, as the shares table comes with share links.
CREATE TABLE report_subscriptions (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    -- In lower case: one live subscription per site and address.
    email TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'nl', 'es')),
    weekly INTEGER NOT NULL DEFAULT 1,
    monthly INTEGER NOT NULL DEFAULT 0,
    share_id INTEGER,
    created_at INTEGER NOT NULL,
    unsubscribed_at INTEGER,
    CHECK (weekly OR monthly)
);
CREATE UNIQUE INDEX report_subscriptions_live ON report_subscriptions (site_id, email)
    WHERE unsubscribed_at IS NULL;

-- Each scheduled report, once: a worker claims (kind, subscription, period) by inserting its
-- row before it sends, in a write transaction, so of two workers (or a restarted one) only
-- one sends. A claim not marked sent within 15 minutes (a failed send) may be claimed again.
CREATE TABLE mail_runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('weekly', 'monthly')),
    site_id INTEGER NOT NULL,
    subscription_id INTEGER NOT NULL,
    -- '2026-W11' (ISO week) or '2026-03': the period the report covers.
    period TEXT NOT NULL,
    claimed_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    sent_at INTEGER,
    error TEXT,
    UNIQUE (kind, subscription_id, period)
);

-- A site's traffic alerts: a spike (current visitors at or above spike_threshold; NULL is
-- off) and a drop (no visitor in 12 hours), to a JSON array of addresses.
CREATE TABLE alert_settings (
    site_id INTEGER PRIMARY KEY REFERENCES sites(id),
    spike_threshold INTEGER CHECK (spike_threshold IS NULL OR spike_threshold > 0),
    drop_alert INTEGER NOT NULL DEFAULT 0,
    recipients TEXT NOT NULL DEFAULT '[]',
    language TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'nl', 'es')),
    updated_at INTEGER NOT NULL
);

-- When each alert of a site last went: at most once per 12 hours each, across workers.
CREATE TABLE alert_runs (
    site_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('spike', 'drop')),
    last_sent INTEGER NOT NULL,
    PRIMARY KEY (site_id, kind)
) WITHOUT ROWID;

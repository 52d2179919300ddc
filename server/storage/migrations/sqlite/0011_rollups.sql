-- Rollups: each local day of a site summed per dimension value, so a month of reports reads a
-- few thousand rows instead of every visit and hit (server/storage/sqlite_rollups.py builds
-- them, out of the ingest path). They hold counts only, nothing about any one visitor, so they
-- may outlive the raw events' retention.

-- Which days are rolled up: in which time zone (a change of zone makes them stale), up to when
-- (`covered`: visits that started, and hits that came, before it; the day's end once whole),
-- and whether they can still change (`final` once no visit that started that day is open).
CREATE TABLE rollup_days (
    site_id INTEGER NOT NULL,
    day TEXT NOT NULL,
    timezone TEXT NOT NULL,
    start INTEGER NOT NULL,
    covered INTEGER NOT NULL,
    end INTEGER NOT NULL,
    built_at INTEGER NOT NULL,
    final INTEGER NOT NULL,
    -- What was summed, as sqlite_rollups.VERSION: a later Zeef that sums more sums again.
    version INTEGER NOT NULL,
    PRIMARY KEY (site_id, day)
) WITHOUT ROWID;

-- One row per (site, dimension, day, value). The dimension '' is the whole day. Visit
-- dimensions sum the visits that started that day; event dimensions (event:page, event:name,
-- event:hostname) the hits that came that day. `value` has no declared type, so a number
-- stays a number, as the raw query gives it; no value (a visit without a country) is X'', an
-- empty BLOB, which no real value is: a key column cannot be NULL. Without rowid, a month of
-- one dimension is one run of the table, read in order: 43 ms for 58k rows where a rowid
-- table and an index on them took 52 (bench/reports.py's pages at 1M events).
CREATE TABLE rollups (
    site_id INTEGER NOT NULL,
    dimension TEXT NOT NULL,
    day TEXT NOT NULL,
    value NOT NULL,
    visitors INTEGER NOT NULL,
    visits INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    bounces INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    scroll_sum INTEGER NOT NULL,
    scroll_pages INTEGER NOT NULL,
    PRIMARY KEY (site_id, dimension, day, value)
) WITHOUT ROWID;

-- A day's visitors (and, for event dimensions, visits) with a value that were also seen with
-- it on an earlier day, by the latest such day: a period subtracts those seen within it, so
-- everyone counts once however many of its days they came back on.
CREATE TABLE rollup_returns (
    site_id INTEGER NOT NULL,
    dimension TEXT NOT NULL,
    day TEXT NOT NULL,
    value NOT NULL,
    previous_day TEXT NOT NULL,
    visitors INTEGER NOT NULL,
    visits INTEGER NOT NULL,
    PRIMARY KEY (site_id, dimension, day, value, previous_day)
) WITHOUT ROWID;

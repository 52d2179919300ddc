-- Segments: filter sets that reports have asked for (`visit:country==NL`), rolled up as the
-- whole site is, so a dashboard under that filter reads its sums instead of every visit and
-- hit (Matomo's pre-processed segments, learnt from use). Segment 0 is the unfiltered site.
-- `filters` is the canonical JSON of the set (sqlite_rollups.segment_key); `asked_at` the
-- last time a report asked for it: segments nobody has asked for in a while are dropped, with
-- their rows.
CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL,
    filters TEXT NOT NULL,
    asked_at INTEGER NOT NULL,
    UNIQUE (site_id, filters)
);

-- Rollups get the segment in their keys. They are sums of raw rows that are still there, so
-- they are summed again rather than copied: the builder starts over (minutes on a big site,
-- during which reports read raw rows, as they do for any day not summed).
DROP TABLE rollup_days;
DROP TABLE rollups;
DROP TABLE rollup_returns;

CREATE TABLE rollup_days (
    site_id INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    day TEXT NOT NULL,
    timezone TEXT NOT NULL,
    start INTEGER NOT NULL,
    covered INTEGER NOT NULL,
    end INTEGER NOT NULL,
    built_at INTEGER NOT NULL,
    final INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (site_id, segment, day)
) WITHOUT ROWID;

-- As in 0011_rollups.sql, with the segment after the site: one segment's month of one
-- dimension is still one run of the table.
CREATE TABLE rollups (
    site_id INTEGER NOT NULL,
    segment INTEGER NOT NULL,
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
    PRIMARY KEY (site_id, segment, dimension, day, value)
) WITHOUT ROWID;

CREATE TABLE rollup_returns (
    site_id INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    dimension TEXT NOT NULL,
    day TEXT NOT NULL,
    value NOT NULL,
    previous_day TEXT NOT NULL,
    visitors INTEGER NOT NULL,
    visits INTEGER NOT NULL,
    PRIMARY KEY (site_id, segment, dimension, day, value, previous_day)
) WITHOUT ROWID;

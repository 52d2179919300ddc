-- The (site_id, visitor_id, ts) index put every inserted hit on a random page of a B-tree as
-- large as the table: at 300k rows a flush cost ~60 us a row, ~15 us without it. Its two users
-- get partial indexes that hold few rows, so most inserts touch only the time-ordered pages.

-- 1 when the hit was stored under the visitor's hash from the previous day's salt, because it
-- continues a visit that began before midnight (UTC, when salts rotate).
ALTER TABLE events ADD COLUMN carried INTEGER NOT NULL DEFAULT 0;

DROP INDEX events_site_visitor_ts;

-- A visit can only cross midnight from a hit in the day's last 30 minutes (84600 = 86400 -
-- 1800, the visit gap), and can only go on under yesterday's hash from a carried hit: those
-- are the hits the writer looks up by visitor (CONTINUING_VISITORS repeats this predicate).
CREATE INDEX events_visit_ends ON events (site_id, visitor_id, ts)
    WHERE carried = 1 OR ts % 86400 >= 84600;

-- Returning visitors: only consented visitors keep their ID across days.
CREATE INDEX events_consented_visitor ON events (site_id, visitor_id, ts) WHERE consented = 1;

-- Visits, kept by the writer as hits arrive (server/visits.py), the way Plausible keeps its
-- sessions table: reports read one row a visit instead of rebuilding visits from raw hits with
-- window functions, which took ~7 us a stored hit (71 s for 30 days at 10M events).
--
-- A visit's source, campaign, place and device are those of its first hit. `open` is 1 while
-- the visit may still take hits (until a few hours after its last one); only open visits are
-- in visits_open, so the writer's look-up by visitor reads a small index that stays cached,
-- where an index of every visit by visitor puts each insert on a random page (see 0004).
CREATE TABLE visits (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL,
    visitor_id INTEGER NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER NOT NULL,
    open INTEGER NOT NULL DEFAULT 1,
    hostname TEXT NOT NULL,
    entry_page TEXT NOT NULL,
    exit_page TEXT NOT NULL,
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    interactions INTEGER NOT NULL,
    engaged_ms INTEGER NOT NULL,
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
    consented INTEGER NOT NULL,
    -- When the visitor's previous visit here started: a period's visitors are its visits
    -- whose previous one started before it, counted in one pass without COUNT(DISTINCT).
    previous_started INTEGER,
    -- {path: deepest scroll in %} of the pages that reported one, and their sum and count.
    scroll_depths TEXT,
    scroll_sum INTEGER NOT NULL DEFAULT 0,
    scroll_pages INTEGER NOT NULL DEFAULT 0
);

-- Covering for the headline figures, so a period's totals read this index alone, in order.
CREATE INDEX visits_site_started ON visits (
    site_id, started, previous_started, ended, pageviews, events, interactions, engaged_ms,
    consented, scroll_sum, scroll_pages, visitor_id
);
CREATE INDEX visits_open ON visits (site_id, visitor_id) WHERE open = 1;
-- What the writer closes, found by their last hit: without it each sweep read the row of every
-- open visit (~95k at 10M events a month) to compare its end, and the build of 10M events in
-- bench/stats.py, where data time runs fast and a sweep comes every batch, ran 15x slower.
CREATE INDEX visits_open_ended ON visits (ended) WHERE open = 1;

-- Each hit's visit; NULL for engagement hits that came when their visit was already closed.
ALTER TABLE events ADD COLUMN visit_id INTEGER;

-- Visits of the hits stored before this migration, built once the way reports built them:
-- a hit opens a visit when the visitor's previous hit is 30 minutes or more before it, and
-- an engagement hit never opens one. Those of the last 26 hours stay open (visits.OPEN_FOR), so a visit going
-- on through the upgrade is not split; their hits keep a NULL visit_id.
INSERT INTO visits (
    site_id, visitor_id, started, ended, open, hostname, entry_page, exit_page, pageviews,
    events, interactions, engaged_ms, referrer_host, referrer_path, utm_source, utm_medium,
    utm_campaign, utm_term, utm_content, browser, browser_version, os, os_version, device,
    country, region, city, consented, previous_started, scroll_depths, scroll_sum, scroll_pages
)
WITH hits AS (
    SELECT rowid AS hit_id, *,
           ts - LAG(ts) OVER (PARTITION BY site_id, visitor_id ORDER BY ts, rowid) AS gap
    FROM events
),
numbered AS (
    SELECT *, SUM(name != 'engagement' AND (gap IS NULL OR gap >= 1800))
              OVER (PARTITION BY site_id, visitor_id ORDER BY ts, hit_id
                    ROWS UNBOUNDED PRECEDING) AS visit_no,
              ROW_NUMBER() OVER (PARTITION BY site_id, visitor_id ORDER BY ts, hit_id) AS n
    FROM hits
),
grouped AS (
    SELECT site_id, visitor_id, visit_no, MIN(n) AS first_n,
           MIN(ts) AS started, MAX(ts) AS ended,
           SUM(name = 'pageview') AS pageviews,
           SUM(name NOT IN ('pageview', 'engagement')) AS events,
           SUM(name NOT IN ('pageview', 'engagement') AND interactive) AS interactions,
           SUM(COALESCE(engaged_ms, 0)) AS engaged_ms,
           MAX(consented) AS consented,
           MIN(CASE WHEN name = 'pageview' THEN n END) AS entry_n,
           MAX(CASE WHEN name = 'pageview' THEN n END) AS exit_n
    FROM numbered
    WHERE visit_no > 0
    GROUP BY site_id, visitor_id, visit_no
),
page_depths AS (
    SELECT site_id, visitor_id, visit_no, path, MAX(scroll_depth) AS depth
    FROM numbered
    WHERE visit_no > 0 AND name = 'engagement' AND scroll_depth IS NOT NULL
    GROUP BY site_id, visitor_id, visit_no, path
),
depths AS (
    SELECT site_id, visitor_id, visit_no, json_group_object(path, depth) AS scroll_depths,
           SUM(depth) AS scroll_sum, COUNT(*) AS scroll_pages
    FROM page_depths
    GROUP BY site_id, visitor_id, visit_no
)
SELECT g.site_id, g.visitor_id, g.started, g.ended,
       g.ended > CAST(strftime('%s') AS INTEGER) - 93600, f.hostname,
       COALESCE(en.path, f.path), COALESCE(ex.path, f.path), g.pageviews, g.events,
       g.interactions, g.engaged_ms, f.referrer_host, f.referrer_path, f.utm_source,
       f.utm_medium, f.utm_campaign, f.utm_term, f.utm_content, f.browser, f.browser_version,
       f.os, f.os_version, f.device, f.country, f.region, f.city, g.consented,
       LAG(g.started) OVER (PARTITION BY g.site_id, g.visitor_id ORDER BY g.started),
       d.scroll_depths, COALESCE(d.scroll_sum, 0), COALESCE(d.scroll_pages, 0)
FROM grouped AS g
JOIN numbered AS f
  ON f.site_id = g.site_id AND f.visitor_id = g.visitor_id AND f.n = g.first_n
LEFT JOIN numbered AS en
  ON en.site_id = g.site_id AND en.visitor_id = g.visitor_id AND en.n = g.entry_n
LEFT JOIN numbered AS ex
  ON ex.site_id = g.site_id AND ex.visitor_id = g.visitor_id AND ex.n = g.exit_n
LEFT JOIN depths AS d
  ON d.site_id = g.site_id AND d.visitor_id = g.visitor_id AND d.visit_no = g.visit_no
ORDER BY g.started;

-- When each consented visitor last started a visit: their ID outlives the open window.
ALTER TABLE consented_visitors ADD COLUMN last_started INTEGER;

UPDATE consented_visitors SET last_started = l.started
FROM (SELECT site_id, visitor_id, MAX(started) AS started FROM visits GROUP BY 1, 2) AS l
WHERE l.site_id = consented_visitors.site_id AND l.visitor_id = consented_visitors.visitor_id;


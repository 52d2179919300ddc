-- Consented visitors, with their first consented hit per site: what "returning visitor" asks.
-- One row per visitor, where the partial index events_consented_visitor had one per hit; a
-- returning visitor's hit only reads its row. On a site that counts only consented visitors
-- every hit is consented, and that index grew as large, and as random to write, as the one
-- migration 0004 removed.
CREATE TABLE consented_visitors (
    site_id INTEGER NOT NULL,
    visitor_id INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (site_id, visitor_id)
) WITHOUT ROWID;

INSERT INTO consented_visitors (site_id, visitor_id, first_seen)
SELECT site_id, visitor_id, MIN(ts) FROM events WHERE consented = 1 GROUP BY site_id, visitor_id;

DROP INDEX events_consented_visitor;

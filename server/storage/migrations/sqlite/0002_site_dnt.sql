-- Whether the site honours Do Not Track / Global Privacy Control (the default) or its owner
-- opted out of that; the collector drops signalled events for sites that honour them.
ALTER TABLE sites ADD COLUMN honour_dnt INTEGER NOT NULL DEFAULT 1;

-- What a drop's reason was about, where that helps a site owner fix it: for domain_mismatch,
-- the host of the page that sent the event (the latest of the day). A host, never a visitor's
-- data. The installation check on a site's page shows it.
ALTER TABLE drops ADD COLUMN example TEXT;

-- Each user's choice of colours for Zeef's pages: 'system' follows the device's light or dark
-- setting (prefers-color-scheme); 'light' and 'dark' override it (base.html's data-theme).
ALTER TABLE users ADD COLUMN theme TEXT NOT NULL DEFAULT 'system'
    CHECK (theme IN ('system', 'light', 'dark'));

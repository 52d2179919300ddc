-- Customers: the controllers whose sites Zeef measures (the accounts issue). A site belongs to
-- at most one; sites added before any customer existed have none until moved to one
-- (`zeef site set DOMAIN --customer NAME`). Names are unique whatever their case.
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at INTEGER NOT NULL
);

ALTER TABLE sites ADD COLUMN customer_id INTEGER REFERENCES customers(id);

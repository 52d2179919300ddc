-- Keys for the Stats API. Only a SHA-256 of each key is kept: a key is 32 random bytes, so
-- a fast hash is enough (a slow one protects guessable passwords, not random tokens), and a
-- copy of the database does not hand out working keys. `prefix` tells keys apart in listings.
-- `owner` names who the key is for; the accounts issue turns it into a user.
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    label TEXT,
    prefix TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);

-- `zeef apikey list EMAIL` (and, with accounts, a user's key page) read keys by owner, stored
-- in lower case (apikeys.owner).
CREATE INDEX api_keys_owner ON api_keys (owner);

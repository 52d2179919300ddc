-- Users, their sessions, one-time set-password links, login failures and the audit log (the
-- accounts issue). A user belongs to one customer as a viewer or an admin; a superuser is the
-- operator's and belongs to none.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    -- In lower case (accounts.users.normalise_email): one account per address.
    email TEXT NOT NULL UNIQUE,
    customer_id INTEGER REFERENCES customers(id),
    role TEXT NOT NULL CHECK (role IN ('viewer', 'admin', 'superuser')),
    -- argon2id (accounts/passwords.py); NULL until the user sets one through a link.
    password_hash TEXT,
    -- Set when someone else chose the password: the next login must choose a new one.
    must_change_password INTEGER NOT NULL DEFAULT 0,
    blocked_at INTEGER,
    -- en, nl or es; NULL follows the browser's Accept-Language.
    language TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((role = 'superuser') = (customer_id IS NULL))
);
CREATE INDEX users_customer ON users (customer_id);

-- A session is named by a random ID in a signed cookie; only its SHA-256 is kept, so a copy
-- of the database holds no session that works. Deleting a user's rows ends every session at
-- once (logout everywhere, block, password reset).
CREATE TABLE sessions (
    id_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);

-- One-time links to set a password (`zeef user add` without a terminal, an admin's invite).
CREATE TABLE password_links (
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Failed logins in the throttling window, by account and by truncated address. `account` is
-- a keyed hash of the email tried, so an address typed by mistake (someone else's) is not
-- kept in the clear. Rows older than the window are deleted as new ones arrive.
CREATE TABLE login_failures (
    at INTEGER NOT NULL,
    account BLOB NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX login_failures_account ON login_failures (account, at);
CREATE INDEX login_failures_address ON login_failures (address, at);

-- Who did what, when, from which truncated address. `customer_id` is the customer the object
-- belongs to, so a customer's admins can read their own part; NULL is the operator's.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL DEFAULT '',
    customer_id INTEGER,
    address TEXT NOT NULL DEFAULT '-'
);
CREATE INDEX audit_log_at ON audit_log (at);

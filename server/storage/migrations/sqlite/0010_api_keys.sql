-- API key owners are matched case-insensitively from now on (apikeys.owner): keys made before
-- under Ops@Example.com are listed under ops@example.com. The table itself is 0009's.
UPDATE api_keys SET owner = lower(trim(owner));

-- `zeef apikey list EMAIL` and, with accounts, a user's key page read keys by owner.
CREATE INDEX api_keys_owner ON api_keys (owner);

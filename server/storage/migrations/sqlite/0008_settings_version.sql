-- A counter every settings write bumps, so each server process can see a change made by the
-- CLI, another worker or the web UI with one one-row read a second (server/sites.py), instead
-- of reloading every site, or reading settings on each event. Triggers, not application code:
-- a write from any process or tool bumps it, in the same transaction as the change.
-- Tables that hold settings later (users, shares) add triggers of their own.

INSERT OR IGNORE INTO meta (key, value) VALUES ('settings_version', '0');

CREATE TRIGGER sites_insert_settings_version AFTER INSERT ON sites BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

CREATE TRIGGER sites_update_settings_version AFTER UPDATE ON sites BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

CREATE TRIGGER sites_delete_settings_version AFTER DELETE ON sites BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

CREATE TRIGGER consent_configs_insert_settings_version AFTER INSERT ON consent_configs BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

CREATE TRIGGER consent_configs_update_settings_version AFTER UPDATE ON consent_configs BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

CREATE TRIGGER consent_configs_delete_settings_version AFTER DELETE ON consent_configs BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'settings_version';
END;

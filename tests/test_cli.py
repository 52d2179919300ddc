"""The zeef command as users run it: a real process over a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.config import ConfigError, load_settings


def zeef(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "ZEEF_DATABASE": str(tmp_path / "zeef.sqlite3"), **env}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=60,
    )  # fmt: skip


def test_site_add_list_and_empty_stats(tmp_path: Path) -> None:
    added = zeef(
        tmp_path, "site", "add", "https://www.Example.com/", "--timezone", "Europe/Amsterdam"
    )
    assert added.returncode == 0, added.stderr
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 1
    assert zeef(tmp_path, "site", "add", "not a domain").returncode == 2
    assert zeef(tmp_path, "site", "add", "ok.example", "--timezone", "Mars/Olympus").returncode == 2
    listing = zeef(tmp_path, "site", "list", "--json")
    assert json.loads(listing.stdout) == [
        {
            "domain": "example.com",
            "timezone": "Europe/Amsterdam",
            "honour_dnt": True,
            "customer": None,
        }
    ]
    assert zeef(tmp_path, "site", "set", "example.com", "--dnt", "ignore").returncode == 0
    assert json.loads(zeef(tmp_path, "site", "list", "--json").stdout)[0]["honour_dnt"] is False
    for period in ("day", "7d", "30d", "all"):
        stats = zeef(tmp_path, "stats", "example.com", "--period", period, "--json")
        assert stats.returncode == 0, stats.stderr
        figures = json.loads(stats.stdout)
        assert {k: figures[k] for k in ("visitors", "visits", "pageviews", "events")} == {
            "visitors": 0, "visits": 0, "pageviews": 0, "events": 0}  # fmt: skip
    table = zeef(tmp_path, "stats", "example.com")
    assert "Pageviews" in table.stdout
    assert zeef(tmp_path, "stats", "nobody.example", "--json").returncode == 1


def test_bad_setting_is_named(tmp_path: Path) -> None:
    result = zeef(tmp_path, "site", "list", ZEEF_IP_MASK_BYTES="4")
    assert result.returncode == 2
    assert "ZEEF_IP_MASK_BYTES" in result.stderr


def test_settings_from_toml_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "zeef.toml"
    config.write_text('database = "from-toml.sqlite3"\nip_mask_bytes = 3\n'
                      'trusted_proxies = ["10.0.0.0/8"]\n')  # fmt: skip
    settings = load_settings({"ZEEF_IP_MASK_BYTES": "1"}, config)
    assert settings.database == Path("from-toml.sqlite3")
    assert settings.ip_mask_bytes == 1  # the environment wins
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8"]
    config.write_text("colour = 'red'\n")
    with pytest.raises(ConfigError, match="unknown settings"):
        load_settings({}, config)


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    import asyncio

    from server.storage import open_storage

    async def key(candidate: str) -> str:
        storage = open_storage(tmp_path / "zeef.sqlite3")
        await storage.migrate()
        try:
            return await storage.secret_key(candidate)
        finally:
            await storage.close()

    assert asyncio.run(key("first")) == "first"
    assert asyncio.run(key("second")) == "first"

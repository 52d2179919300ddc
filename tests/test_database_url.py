"""ZEEF_DATABASE takes a path or a URL; open_storage picks the backend from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.config import ConfigError, load_settings
from server.storage import UnsupportedDatabase, open_storage

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("./zeef.sqlite3", Path("zeef.sqlite3")),
        ("/var/lib/zeef/zeef.sqlite3", Path("/var/lib/zeef/zeef.sqlite3")),
        ("sqlite:///data/zeef.sqlite3", Path("data/zeef.sqlite3")),
        ("sqlite:////var/lib/zeef/zeef.sqlite3", Path("/var/lib/zeef/zeef.sqlite3")),
    ],
    ids=["relative-path", "absolute-path", "relative-url", "absolute-url"],
)
def test_a_path_or_a_sqlite_url_names_the_file(value: str, path: Path, tmp_path: Path) -> None:
    settings = load_settings({"ZEEF_DATABASE": value}, config_file=tmp_path / "none.toml")
    assert settings.database == path


@pytest.mark.parametrize(
    "value", ["clickhouse://localhost:8123/zeef", "postgres://x/y", "sqlite://", "sqlite:x.db"]
)
def test_a_url_of_no_backend_zeef_has_is_refused_by_name(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ZEEF_DATABASE"):
        load_settings({"ZEEF_DATABASE": value}, config_file=tmp_path / "none.toml")
    with pytest.raises(UnsupportedDatabase):
        open_storage(value)


async def test_open_storage_takes_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/zeef.sqlite3"  # tmp_path is absolute: four slashes
    assert url.startswith("sqlite:////") and not url.startswith("sqlite://///")
    storage = open_storage(url)
    await storage.migrate()
    await storage.close()
    assert (tmp_path / "zeef.sqlite3").is_file()


def test_the_cli_serves_the_file_a_url_names(tmp_path: Path) -> None:
    env = {**os.environ, "ZEEF_DATABASE": "sqlite:///data.sqlite3", "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-m", "server"]
    subprocess.run([*run, "site", "add", "example.com"], cwd=tmp_path, env=env, check=True)
    listed = subprocess.run(
        [*run, "site", "list"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    assert "example.com" in listed.stdout
    assert (tmp_path / "data.sqlite3").is_file()

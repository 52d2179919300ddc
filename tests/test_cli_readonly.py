"""A command run where there is no database says so and creates none (issue 14, fault 8).

Tried as a new user: `zeef stats example.com` from another directory quietly created an empty
zeef.sqlite3 there and answered "no site". Only `site add` and `serve` may start a database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSENT_ID = "0b6f1b1e-4c8a-4f3e-9d2a-6c1e5a7b8c9d"

# Every command but `site add` and `serve`: each reads, or changes a site that must exist.
COMMANDS = {
    "site list": ["site", "list"],
    "site set": ["site", "set", "example.com", "--dnt", "ignore"],
    "stats": ["stats", "example.com"],
    "drops": ["drops", "example.com", "--json"],
    "consent configure": ["consent", "configure", "example.com", "--require-consent"],
    "consent log": ["consent", "log", "example.com", "--csv"],
    "consent show": ["consent", "show", CONSENT_ID],
    "consent delete": ["consent", "delete", CONSENT_ID],
    "consent rates": ["consent", "rates", "example.com"],
}


def zeef(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # As a user's shell has it: no ZEEF_* set, the code found through the install.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZEEF_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True, text=True, env={**environ, **env}, cwd=cwd, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS.values(), ids=COMMANDS.keys())
def test_no_database_is_created_and_the_message_says_where_it_looked(
    tmp_path: Path, args: list[str]
) -> None:
    result = zeef(tmp_path, *args)
    assert result.returncode == 1, result.stdout
    assert list(tmp_path.iterdir()) == []
    assert f"no database at {tmp_path / 'zeef.sqlite3'}" in result.stderr
    assert "ZEEF_DATABASE" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_database_named_elsewhere_is_not_created_either(tmp_path: Path) -> None:
    # A relative name is shown as the absolute path it was looked for at.
    result = zeef(tmp_path, "stats", "example.com", ZEEF_DATABASE="data/typo.sqlite3")
    assert result.returncode == 1
    assert f"no database at {tmp_path / 'data' / 'typo.sqlite3'}" in result.stderr
    assert list(tmp_path.iterdir()) == []  # not even the directory


def test_site_add_starts_one_and_then_the_others_work(tmp_path: Path) -> None:
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    assert (tmp_path / "zeef.sqlite3").is_file()
    for name, args in COMMANDS.items():
        result = zeef(tmp_path, *args)
        # show and delete look up a consent ID that was never recorded: 1, with its own message.
        expected = 1 if name in ("consent show", "consent delete") else 0
        assert result.returncode == expected, (name, result.stderr)
        assert "no database" not in result.stderr

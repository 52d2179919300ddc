from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from server.deployment_audit import full_addresses
from tests.test_cli import zeef as _zeef

# The subprocess runs in tmp_path: point it at this checkout, not the installed package.
ROOT = str(Path(__file__).resolve().parents[1])


def zeef(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _zeef(tmp_path, *args, PYTHONPATH=ROOT)


PLANTED = "203.0.113.77"


def test_scanner_skips_masked_addresses_and_version_strings() -> None:
    text = (
        b"10.1.0.0 2001:db8:1:: Chrome/120.0.6099.109 Chrome/120.0.1.5 2026.12.04 "
        b"1.2.3.4.5 127.0.0.1"
    )
    assert full_addresses(text, 2) == []
    assert full_addresses(b"ua x 203.0.113.77, y", 2) == ["203.0.0.0"]
    assert full_addresses(b"at 2001:db8:1:2:3:4:5:6 now", 2) != []


def test_clean_install_passes(tmp_path: Path) -> None:
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    result = zeef(tmp_path, "audit")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[PASS] stored_ips" in result.stdout
    assert "Every row of 1 site(s)" in result.stdout


def test_planted_ip_in_table_fails_without_printing_it(tmp_path: Path) -> None:
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    with sqlite3.connect(tmp_path / "zeef.sqlite3") as db:
        db.execute("UPDATE sites SET domain = ?", (f"leak {PLANTED} here",))
    result = zeef(tmp_path, "audit")
    assert result.returncode == 1
    assert "[FAIL] stored_ips" in result.stdout
    assert PLANTED not in result.stdout + result.stderr
    assert "203.0.0.0" in result.stdout


def test_planted_ip_in_log_fails_and_json_shape(tmp_path: Path) -> None:
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text(f'{PLANTED} - - "GET / HTTP/1.1" 200\n')
    result = zeef(tmp_path, "audit", "--json", "--logs", str(logs))
    assert result.returncode == 1
    assert PLANTED not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert [f["check"] for f in report["findings"]] == [
        "ip_mask",
        "stored_ips",
        "secret_key",
        "retention",
    ]
    assert set(report["findings"][0]) == {"check", "level", "message", "details"}
    stored = report["findings"][1]
    assert stored["level"] == "fail"
    assert stored["details"]["hits"] == {str(logs / "access.log"): 1}


def test_audit_log_still_works(tmp_path: Path) -> None:
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    assert zeef(tmp_path, "audit-log").returncode == 0


def test_row_past_retention_fails(tmp_path: Path) -> None:
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    with sqlite3.connect(tmp_path / "zeef.sqlite3") as db:
        db.execute(
            "INSERT INTO consent_records (consent_id, site_id, created_at, action, choices, "
            "revision, language, texts_hash, path, gpc) "
            "SELECT 'c1', id, 1000000000, 'accept', '{}', 1, 'en', 'h', '/', 0 FROM sites"
        )
    result = zeef(tmp_path, "audit", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    retention = json.loads(result.stdout)["findings"][3]
    assert retention["check"] == "retention" and retention["level"] == "fail"
    assert retention["details"]["overdue"] == {"example.com": {"consent_records": 1}}
    assert "zeef purge" in retention["message"]

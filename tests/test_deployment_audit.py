from __future__ import annotations

import ipaddress
import json
import sqlite3
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import maxminddb

from server import deployment_audit, purge
from server.accounts import audit
from server.config import Settings
from server.deployment_audit import Finding, full_addresses
from server.sharing import shares
from server.storage import Storage
from tests.conftest import Zeef, pageview
from tests.test_cli import zeef as _zeef
from tests.test_consent import record
from tests.test_tls import self_signed

# The subprocess runs in tmp_path: point it at this checkout, not the installed package.
ROOT = str(Path(__file__).resolve().parents[1])


def zeef(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _zeef(tmp_path, *args, **{**env, "PYTHONPATH": ROOT})


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
    # The header a DPO files with it.
    assert "Version:        0.1.0" in result.stdout
    assert f"Database:       {tmp_path / 'zeef.sqlite3'}" in result.stdout
    assert "Data location:  not set (ZEEF_DATA_LOCATION)" in result.stdout
    for check in ("consent", "geoip", "shares", "last_purge"):
        assert f"[PASS] {check}:" in result.stdout
    # Only reachable from this machine: a warning, which leaves the exit status at 0.
    assert "[WARN] https:" in result.stdout
    assert result.stdout.rstrip().endswith("Result: no promise broken; 1 warning(s): https")
    located = zeef(tmp_path, "audit", "--json", ZEEF_DATA_LOCATION="our servers in Amsterdam")
    assert located.returncode == 0
    facts = json.loads(located.stdout)["deployment"]
    assert facts["data_location"] == "our servers in Amsterdam"
    assert facts["database"] == str(tmp_path / "zeef.sqlite3")
    assert set(facts) == {"version", "date", "database", "data_location", "public_url", "sites"}


def test_the_tools_own_errors_exit_2(tmp_path: Path) -> None:
    nothing = zeef(tmp_path, "audit")
    assert nothing.returncode == 2
    assert "the audit could not run: no database" in nothing.stderr
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    half = zeef(tmp_path, "audit", "--ssl-certfile", str(tmp_path / "c.pem"))
    assert half.returncode == 2 and "go together" in half.stderr
    missing = zeef(tmp_path, "audit", "--logs", str(tmp_path / "no-such.log"))
    assert missing.returncode == 2 and "no-such.log" in missing.stderr
    (tmp_path / "zeef.sqlite3").write_bytes(b"not a database " * 100)
    broken = zeef(tmp_path, "audit")
    assert broken.returncode == 2, broken.stderr
    assert "the audit could not run: DatabaseError: file is not a database" in broken.stderr


def test_tool_error_messages_mask_addresses() -> None:
    assert deployment_audit.masked("at 203.0.113.77 now", 2) == "at 203.0.0.0 now"


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
        "consent",
        "https",
        "geoip",
        "shares",
        "last_purge",
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
    # The DPO reads which site and which table, and the limit the row is past.
    assert "example.com (kept 25m" in retention["message"]
    assert "1 row(s) in consent_records" in retention["message"]


# -- the checks, in-process over the real storage; `now` is the clock ages are judged by ------

GEOIP = Path("/work/shared/data/geoip/GeoLite2-City-Test.mmdb")
DAY = 86_400


async def audited(
    settings: Settings,
    storage: Storage,
    check: str,
    now: int | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Finding:
    findings = await deployment_audit.run(settings, storage, tls=tls, now=now)
    [finding] = [f for f in findings if f.check == check]
    return finding


def storage_of(zeef: Zeef) -> Storage:
    storage: Storage = zeef.app.state.storage
    return storage


def configure(zeef: Zeef, *args: str) -> None:
    result = zeef_cli(zeef, "consent", "configure", "example.com", *args)
    assert result.returncode == 0, result.stderr


def zeef_cli(zeef: Zeef, *args: str) -> subprocess.CompletedProcess[str]:
    return _zeef(zeef.settings.database.parent, *args, PYTHONPATH=ROOT)


async def test_consent_default_banner_answered_by_visitors_fails(zeef: Zeef) -> None:
    storage = storage_of(zeef)
    unused = await audited(zeef.settings, storage, "consent")
    assert unused.level == "pass"
    assert unused.details["no_banner"] == ["example.com"]
    # The default banner (necessary + analytics, so zeef_id) is on the site: visitors answer.
    response = await zeef.client.post("/api/consent", content=json.dumps(record()))
    assert response.status_code == 201
    finding = await audited(zeef.settings, storage, "consent")
    assert finding.level == "fail"
    assert "example.com: no banner configuration (the defaults are shown)" in finding.message
    assert "zeef consent configure DOMAIN --controller NAME --policy-url URL" in finding.message
    configure(zeef, "--controller", "Example BV", "--policy-url", "https://example.com/privacy")
    fixed = await audited(zeef.settings, storage, "consent")
    assert fixed.level == "pass", fixed.message
    assert fixed.details["configured"] == ["example.com"]


async def test_consent_configured_without_controller_or_statement_fails(zeef: Zeef) -> None:
    storage = storage_of(zeef)
    configure(zeef, "--categories", "analytics,marketing", "--cookie", "marketing:_fbp:3m:ads")
    finding = await audited(zeef.settings, storage, "consent")
    assert finding.level == "fail"
    assert finding.details["not_configured"] == {
        "example.com": ["no controller", "no privacy statement link"]
    }
    configure(zeef, "--controller", "Example BV")
    half = await audited(zeef.settings, storage, "consent")
    assert half.details["not_configured"] == {"example.com": ["no privacy statement link"]}
    configure(zeef, "--policy-url", "https://example.com/privacy")
    done = await audited(zeef.settings, storage, "consent")
    assert done.level == "pass", done.message


async def test_consent_a_banner_declaring_no_optional_cookie_passes(zeef: Zeef) -> None:
    # Only the necessary category: the banner asks nothing a visitor could refuse.
    configure(zeef, "--categories", "necessary")
    finding = await audited(zeef.settings, storage_of(zeef), "consent")
    assert finding.level == "pass", finding.message
    assert finding.details["configured"] == ["example.com"]


async def test_https(zeef: Zeef, tmp_path: Path) -> None:
    storage = storage_of(zeef)
    base = replace(zeef.settings, trusted_proxies=())
    local = await audited(base, storage, "https")
    assert local.level == "warn" and "this machine only" in local.message
    public = replace(base, public_url="https://stats.example.com")
    neither = await audited(public, storage, "https")
    assert neither.level == "fail"
    assert "ZEEF_TRUSTED_PROXIES" in neither.message and "--ssl-certfile" in neither.message
    plain = await audited(replace(public, public_url="http://stats.example.com"), storage, "https")
    assert plain.level == "fail"
    proxy = (ipaddress.ip_network("172.30.80.10/32"),)
    proxied = await audited(replace(public, trusted_proxies=proxy), storage, "https")
    assert proxied.level == "pass" and "trusted proxy (172.30.80.10/32)" in proxied.message
    # As docker/compose.yaml without its Caddy: a proxy address, but no public address.
    unproxied = await audited(replace(base, trusted_proxies=proxy), storage, "https")
    assert unproxied.level == "warn" and "ZEEF_PUBLIC_URL is http://localhost" in unproxied.message
    proxied_plain = replace(public, trusted_proxies=proxy, public_url="http://stats.example.com")
    assert (await audited(proxied_plain, storage, "https")).level == "fail"
    certfile, keyfile = self_signed(tmp_path)
    direct = await audited(public, storage, "https", tls=(certfile, keyfile))
    assert direct.level == "pass" and "Zeef serves HTTPS itself" in direct.message
    _, other_key = self_signed(tmp_path, "other")
    mismatched = await audited(public, storage, "https", tls=(certfile, other_key))
    assert mismatched.level == "fail" and "do not load" in mismatched.message


def test_https_certificate_given_to_the_cli(tmp_path: Path) -> None:
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    certfile, keyfile = self_signed(tmp_path)
    public = {"ZEEF_PUBLIC_URL": "https://stats.example.com"}
    assert zeef(tmp_path, "audit", **public).returncode == 1
    result = zeef(tmp_path, "audit", "--json", "--ssl-certfile", str(certfile),
                  "--ssl-keyfile", str(keyfile), **public)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    https = json.loads(result.stdout)["findings"][5]
    assert (https["check"], https["level"]) == ("https", "pass")


async def test_geoip_age(zeef: Zeef, tmp_path: Path) -> None:
    storage = storage_of(zeef)
    off = await audited(zeef.settings, storage, "geoip")
    assert off.level == "pass" and "No GeoIP database is configured" in off.message
    geo = replace(zeef.settings, geoip_db=GEOIP)
    with maxminddb.open_database(str(GEOIP)) as reader:
        built = int(reader.metadata().build_epoch)
    fresh = await audited(geo, storage, "geoip", now=built + 10 * DAY)
    assert fresh.level == "pass" and fresh.details["age_days"] == 10
    late = await audited(geo, storage, "geoip", now=built + 36 * DAY)
    assert late.level == "warn" and "36 day(s) ago" in late.message
    stale = await audited(geo, storage, "geoip", now=built + 91 * DAY)
    assert stale.level == "fail" and "over 90 days" in stale.message
    # The test databases were built in February 2026: by today's clock, long out of date.
    today = await audited(geo, storage, "geoip")
    assert today.level == ("fail" if time.time() - built > 90 * DAY else "pass")
    broken = tmp_path / "not.mmdb"
    broken.write_bytes(b"not a database")
    for path in (broken, tmp_path / "missing.mmdb"):
        unreadable = await audited(replace(geo, geoip_db=path), storage, "geoip")
        assert unreadable.level == "fail" and "cannot be read" in unreadable.message


async def test_share_without_expiry_older_than_a_year(zeef: Zeef) -> None:
    storage = storage_of(zeef)
    made = int(time.time())
    forever = await shares.create(storage, audit.CLI, "example.com", label="board")
    await shares.create(storage, audit.CLI, "example.com", expires_at=made + 800 * DAY)
    recent = await audited(zeef.settings, storage, "shares", now=made + 30 * DAY)
    assert recent.level == "pass" and recent.details["active"] == 2
    later = made + 400 * DAY
    finding = await audited(zeef.settings, storage, "shares", now=later)
    assert finding.level == "fail"
    day = time.strftime("%Y-%m-%d", time.gmtime(made))
    assert f"example.com: link {forever.id}, made {day}" in finding.message
    assert finding.details["old_without_expiry"] == [
        {"site": "example.com", "id": forever.id, "created": day}
    ]
    # Never the token, nor the nonce it is signed over.
    secret = await storage.secret_key("unused")
    text = json.dumps(finding.details) + finding.message
    assert shares.token(secret, forever) not in text and forever.nonce not in text
    revoked = zeef_cli(zeef, "share", "revoke", str(forever.id))
    assert revoked.returncode == 0, revoked.stderr
    assert (await audited(zeef.settings, storage, "shares", now=later)).level == "pass"


async def test_last_purge(zeef: Zeef) -> None:
    storage = storage_of(zeef)
    settings = zeef.settings
    empty = await audited(settings, storage, "last_purge")
    assert empty.level == "pass" and "nothing for the purge to do" in empty.message
    assert (await zeef.send(pageview())).status_code == 202
    assert await zeef.flush() == 1
    never = await audited(settings, storage, "last_purge")
    assert never.level == "warn" and "never finished" in never.message
    await zeef.app.state.purges.run_once()  # the server's job, once
    now = int(time.time())
    done = await audited(settings, storage, "last_purge", now=now)
    assert done.level == "pass" and done.details["by"] == "server"
    late = await audited(settings, storage, "last_purge", now=now + 2 * 3600 + 60)
    assert late.level == "warn" and "last finished" in late.message
    await purge.purge(storage, settings, now=now)  # `zeef purge`
    again = await audited(settings, storage, "last_purge", now=now + 60)
    assert again.level == "pass" and again.details["by"] == "cli"


def test_a_warning_leaves_the_exit_status_at_0() -> None:
    findings = [Finding("a", "pass", ""), Finding("b", "warn", "")]
    assert deployment_audit.exit_status(findings) == 0
    assert deployment_audit.exit_status([*findings, Finding("c", "fail", "")]) == 1

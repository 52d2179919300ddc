"""`zeef export` / `zeef import` (issue 19, portability; docs/export-format.md): a site's data
through ingest into one Zeef, out to a ZIP and into another, and the report engine giving the
same answers for both; refusals that write nothing; audit rows; no salt in the file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server import goals, reports, sites
from server.config import Settings
from server.consent import ConsentConfig
from server.reports import Query
from server.storage import Storage, open_storage
from server.storage.sqlite_portability import select_lines, select_rows

from .conftest import FIREFOX, IPHONE, Clock, Zeef, pageview, start
from .test_consent import record

ROOT = Path(__file__).resolve().parents[1]
MAY = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)
METRICS = ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate",
           "visit_duration", "scroll_depth"]  # fmt: skip
BREAKDOWNS = ("event:page", "visit:entry_page", "visit:exit_page", "visit:source",
              "visit:browser", "visit:device", "visit:country", "event:name", "event:goal",
              "visit:utm_campaign")  # fmt: skip


def cli(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # This worktree's code, not the installed one's.
    env = {**os.environ, "ZEEF_DATABASE": str(database), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True, text=True, env=env, cwd=database.parent, timeout=120,
    )  # fmt: skip


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(database)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def dump(database: Path) -> list[str]:
    conn = sqlite3.connect(database)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


async def fill(app: Zeef, clock: Clock, domain: str = "example.com") -> None:
    """Ten days of a small site: visitors from several places, browsers and sources, a
    consented visitor over several days, goals, a revenue event, scroll and engagement, a
    consent configuration and log, and dropped hits."""
    storage = app.app.state.storage
    site = await sites.get_site(storage, domain)
    await storage.add_goal(goals.new_goal(site.id, 1, event="Signup"))
    await storage.add_goal(goals.new_goal(site.id, 2, page="/pricing"))
    await storage.add_goal(goals.new_goal(site.id, 3, event="Purchase", currency="EUR"))
    config = replace(ConsentConfig(), categories=("necessary", "analytics", "marketing"))
    await storage.set_consent_config(site.id, config.to_json(), 5)
    url = f"https://{domain}"
    for day in range(10):
        for n in range(6 + day % 3):
            clock.now = MAY - timedelta(days=9 - day, hours=n)
            ip = f"81.2.69.{(day * 7 + n) % 40 + 1}"
            ua = (FIREFOX, IPHONE, None)[n % 3]
            extra = {"r": "https://www.google.com/"} if n % 2 else {}
            if n == 0:
                extra["c"] = "consented-visitor-0001"
            if n % 4 == 1:
                extra["u"] = f"{url}/pricing?utm_campaign=spring"
            sent = await app.send(pageview(url + "/", d=domain, **extra), ip=ip,
                                  **({"ua": ua} if ua else {}))  # fmt: skip
            assert sent.status_code == 202, sent.text
            clock.advance(minutes=3)
            await app.send(pageview(f"{url}/blog/{n}", d=domain, sd=40 + n, e=5000), ip=ip,
                           **({"ua": ua} if ua else {}))  # fmt: skip
            if n % 3 == 0:
                event = {
                    "n": "Signup",
                    "u": f"{url}/blog/{n}",
                    "d": domain,
                    "p": {"plan": 'pró "€" \\ \t'},
                }
                await app.send(event, ip=ip, **({"ua": ua} if ua else {}))
            if n == 2:
                paid = {"n": "Purchase", "u": f"{url}/pay", "d": domain,
                        "revenue": {"amount": "12.50", "currency": "EUR"}}  # fmt: skip
                await app.send(paid, ip=ip, **({"ua": ua} if ua else {}))
        # A bot: dropped, counted in drops.
        await app.send(
            pageview(url + "/", d=domain), ua="Googlebot/2.1 (+http://www.google.com/bot.html)"
        )
        decision = record(site=domain, choices={"necessary": True, "analytics": day % 2 == 0,
                                                "marketing": False})  # fmt: skip
        answer = await app.client.post("/api/consent", content=json.dumps(decision),
                                       headers={"x-forwarded-for": "81.2.69.9"})  # fmt: skip
        assert answer.status_code == 201, answer.text
    await app.flush()
    clock.now = MAY


async def figures(storage: Storage, domain: str, now: datetime) -> dict[str, Any]:
    """What the report engine says of a site: totals, time series and breakdowns over several
    periods, goals and conversions among them."""
    site = await sites.get_site(storage, domain)
    site_goals = await storage.goals(site.id)
    got: dict[str, Any] = {}
    for period in ("day", "7d", "30d", "month", "all"):
        query = Query.for_period(site, period, now)
        got[f"{period} totals"] = await reports.aggregate(storage, query, METRICS, site_goals)
        got[f"{period} series"] = await reports.timeseries(
            storage, query, ["visitors", "visits", "pageviews"], site_goals
        )
        for by in BREAKDOWNS:
            metrics = ["visitors", "events"] if by.startswith("event:") else METRICS[:3]
            if by == "event:goal":
                metrics = ["visitors", "events", "conversion_rate"]
            got[f"{period} {by}"] = await reports.breakdown(storage, query, by, metrics,
                                                            site_goals)  # fmt: skip
        got[f"{period} drops"] = await reports.drops(storage, query)
    return got


async def open_figures(database: Path, domain: str, now: datetime, build: bool = False) -> Any:
    storage = open_storage(database, must_exist=True)
    try:
        if build:
            # As the server's builder does minutes after start (server/reports/rollups.py).
            await storage.build_rollups(int(now.timestamp()))
        return await figures(storage, domain, now)
    finally:
        await storage.close()


@pytest.fixture
async def source(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    settings = Settings(database=folder / "zeef.sqlite3", flush_interval=3600)
    clock = Clock(MAY)
    async for app in start(settings, clock):
        await app.add_site("example.com", "Europe/Amsterdam")
        await app.add_site("other.example")
        await app.settled()
        await fill(app, clock)
        # Another site's rows must stay out of the export.
        await app.send(pageview("https://other.example/secret", d="other.example"))
        await app.flush()
    return settings.database


async def test_round_trip_gives_the_same_reports(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "example.zip"
    target = tmp_path / "target" / "zeef.sqlite3"
    target.parent.mkdir()
    # The source's server is running (WAL, its connections open) while the export reads.
    async for app in start(Settings(database=source, flush_interval=3600), Clock(MAY)):
        exported = await asyncio.to_thread(cli, source, "export", "example.com", "--out", str(out))
        assert exported.returncode == 0, exported.stderr
        assert exported.stderr == ""  # no terminal, no --progress: no bar
        assert "exported example.com" in exported.stdout
        del app
    # And the target's server runs while the import writes, taking hits for a site of its own.
    async for app in start(Settings(database=target, flush_interval=3600), Clock(MAY)):
        await app.add_site("mine.example")
        await app.settled()
        loading = asyncio.create_task(asyncio.to_thread(cli, target, "import", str(out)))
        # Hits written all through the import, its one transaction included.
        sent = 0
        while not loading.done():
            answer = await app.send(pageview(f"https://mine.example/{sent}", d="mine.example"))
            assert answer.status_code == 202
            await app.flush()
            sent += 1
            await asyncio.sleep(0.005)
        imported = await loading
        assert imported.returncode == 0, imported.stderr
        assert imported.stdout.startswith("imported example.com from example.zip (")
        await app.settled()  # the running server knows the new site without a restart
        live = await figures(app.app.state.storage, "example.com", MAY)
        mine = app.rows("SELECT COUNT(*) AS n FROM events e JOIN sites s ON s.id = e.site_id "
                        "WHERE s.domain = 'mine.example'")  # fmt: skip
        assert mine[0]["n"] == sent > 20

    before = await open_figures(source, "example.com", MAY)
    after = await open_figures(target, "example.com", MAY)
    assert before["30d totals"]["visitors"] > 5
    assert before["30d totals"]["pageviews"] > 100
    assert before["30d event:goal"] and before["30d drops"] == {"bot": 10}
    assert after == before
    assert live == before

    # Row for row, every table the export holds (site ids and row ids apart).
    for table in ("goals", "consent_records", "consented_visitors", "drops", "consent_configs",
                  "visits", "events"):  # fmt: skip
        columns = [r[1] for r in rows(source, f"SELECT * FROM pragma_table_info('{table}')")]
        kept = ", ".join(f't."{c}"' for c in columns if c not in ("id", "site_id", "visit_id"))
        sql = (f"SELECT {kept} FROM {table} t JOIN sites s ON s.id = t.site_id "
               f"WHERE s.domain = 'example.com' ORDER BY {kept}")  # fmt: skip
        assert rows(source, sql) == rows(target, sql) != [], table
    events = ("SELECT e.ts, e.visitor_id, e.name, e.path, e.props, e.revenue_amount, e.country, "
              "e.browser, e.scroll_depth, e.engaged_ms, e.consented, v.started, v.entry_page "
              "FROM events e JOIN sites s ON s.id = e.site_id LEFT JOIN visits v "
              "ON v.id = e.visit_id WHERE s.domain = 'example.com' "
              "ORDER BY e.ts, e.rowid")  # fmt: skip
    assert rows(source, events) == rows(target, events)
    assert rows(target, "SELECT COUNT(*) FROM events WHERE path = '/secret'") == [(0,)]
    # Texts with quotes, backslashes, control characters and non-ASCII survive as they were.
    [(props,)] = rows(target, "SELECT DISTINCT props FROM events WHERE props IS NOT NULL")
    assert json.loads(props) == {"plan": 'pró "€" \\ \t'}


async def test_the_manifest_the_audit_rows_and_no_salt(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "example.zip"
    assert cli(source, "export", "example.com", "--out", str(out)).returncode == 0
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        members = {name: archive.read(name) for name in archive.namelist()}
    assert archive.namelist()[-1] == "manifest.json"
    assert (manifest["format"], manifest["schema_version"], manifest["site"]) == (
        "zeef-site-export", 1, "example.com")  # fmt: skip
    site_id = rows(source, "SELECT id FROM sites WHERE domain = 'example.com'")[0][0]
    for table in ("events", "visits", "goals", "consent_records", "consented_visitors", "drops"):
        entry = manifest["files"][f"{table}.jsonl"]
        data = members[f"{table}.jsonl"]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["rows"] == data.count(b"\n")
        stored = rows(source, f"SELECT COUNT(*) FROM {table} WHERE site_id = {site_id}")[0][0]
        assert entry["rows"] == stored > 0, table
    first = json.loads(members["events.jsonl"].splitlines()[0])
    assert "site_id" not in first and {"ts", "visitor_id", "path", "visit_id"} <= set(first)
    assert manifest["files"]["rollups.jsonl"]["rows"] == 0  # nothing purged: rebuilt instead

    salts = rows(source, "SELECT salt FROM salts")
    assert salts
    everything = b"".join(members.values())
    assert not any(name.startswith("salt") for name in members)
    for (salt,) in salts:
        for form in (salt, salt.hex().encode(), base64.b64encode(salt)):
            assert form not in everything
    assert b"other.example" not in everything

    target = tmp_path / "target" / "zeef.sqlite3"
    target.parent.mkdir()
    assert cli(target, "import", str(out), "--progress").returncode == 0
    assert not rows(target, "SELECT * FROM salts")
    [(actor, action, said)] = rows(source, "SELECT actor, action, object FROM audit_log")
    assert (actor, action) == ("cli", "site.export")
    assert said.startswith(f"example.com to {out} (") and said.endswith(" rows)")
    [(actor, action, said)] = rows(target, "SELECT actor, action, object FROM audit_log")
    assert (actor, action) == ("cli", "site.import")
    assert said.startswith("example.com from example.zip (")


async def test_import_as_another_domain_beside_the_original(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "example.zip"
    assert cli(source, "export", "example.com", "--out", str(out), "--progress").returncode == 0
    # Into the very database it came from: the site exists, so only under another name.
    taken = cli(source, "import", str(out))
    assert taken.returncode == 2 and "--as NEWDOMAIN" in taken.stderr
    loaded = cli(source, "import", str(out), "--as", "https://www.Copy.example/", "--progress")
    assert loaded.returncode == 0, loaded.stderr
    assert "exported as example.com" in loaded.stdout
    assert "100%" in loaded.stderr and "rows/s" in loaded.stderr  # the bar, asked for
    original = await open_figures(source, "example.com", MAY)
    copy = await open_figures(source, "copy.example", MAY)
    assert copy == original
    ids = rows(source, "SELECT s.domain, MIN(v.id), MAX(v.id) FROM visits v JOIN sites s "
                       "ON s.id = v.site_id GROUP BY s.domain ORDER BY s.domain")  # fmt: skip
    (_, copy_low, _), (_, _, original_high) = ids[0], ids[1]
    assert copy_low > original_high  # re-keyed past every visit id there was
    again = cli(source, "import", str(out), "--as", "copy.example")
    assert again.returncode == 2 and "already" in again.stderr


def _rewrite(out: Path, change: Callable[[str, bytes], bytes]) -> None:
    with zipfile.ZipFile(out) as archive:
        members = [(name, archive.read(name)) for name in archive.namelist()]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, change(name, data))


def _manifest(edit: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest).encode()

    return change


def _tamper(name: str, data: bytes) -> bytes:
    # A visited page changed, the manifest left alone (the ZIP's CRC is recomputed).
    return data.replace(b'"/blog/1"', b'"/blog/9"', 1) if name == "events.jsonl" else data


def _drop_line(name: str, data: bytes) -> bytes:
    return data.split(b"\n", 1)[1] if name == "visits.jsonl" else data


def _forge(member: str, edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """A member changed and the manifest made to match it: only checks past the checksums
    catch it."""

    def spoil(out: Path) -> None:
        with zipfile.ZipFile(out) as archive:
            forged = edit(archive.read(member))

        def change(name: str, data: bytes) -> bytes:
            if name == member:
                return forged
            if name == "manifest.json":
                manifest = json.loads(data)
                entry = manifest["files"][member]
                entry["sha256"] = hashlib.sha256(forged).hexdigest()
                entry["rows"] = forged.count(b"\n")
                return json.dumps(manifest).encode()
            return data

        _rewrite(out, change)

    return spoil


def _truncate(out: Path) -> None:
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])


def _flip_compressed_byte(out: Path) -> None:
    # Damage inside a member's compressed data: caught by inflate or the CRC.
    data = bytearray(out.read_bytes())
    data[len(data) // 3] ^= 0xFF
    out.write_bytes(bytes(data))


REFUSALS: dict[str, tuple[Callable[[Path], None], str]] = {
    "tampered member": (lambda out: _rewrite(out, _tamper), "SHA-256"),
    "a line removed": (lambda out: _rewrite(out, _drop_line), "rows"),
    "truncated zip": (_truncate, "not a whole ZIP"),
    # A goal of a kind there is not: the target's constraints refuse it inside the
    # transaction, which rolls back.
    "a row the tables refuse": (
        _forge("goals.jsonl", lambda d: d.replace(b'"kind":"event"', b'"kind":"bogus"', 1)),
        "does not fit this Zeef's tables",
    ),
    "no site row": (_forge("site.jsonl", lambda d: b""), "exactly one row"),
    "a nested value": (
        _forge("events.jsonl", lambda d: d.replace(b'"name":"pageview"', b'"name":[1]', 1)),
        "a value of a type no column holds",
    ),
    "corrupt member": (_flip_compressed_byte, ""),
    "newer schema": (
        lambda out: _rewrite(out, _manifest(lambda m: m.update(schema_version=2))),
        "schema version 2 is newer",
    ),
    "unknown format": (
        lambda out: _rewrite(out, _manifest(lambda m: m.update(format="other"))),
        "not a Zeef site export",
    ),
    "not a zip": (lambda out: out.write_bytes(b"domain,visitors\n"), "not a whole ZIP"),
}


@pytest.mark.parametrize("spoil, says", REFUSALS.values(), ids=REFUSALS.keys())
async def test_a_damaged_file_is_refused_and_nothing_written(
    source: Path, tmp_path: Path, spoil: Callable[[Path], None], says: str
) -> None:
    out = tmp_path / "example.zip"
    assert cli(source, "export", "example.com", "--out", str(out)).returncode == 0
    spoil(out)
    # Into an existing database (left as it was) and into none (none created).
    existing = tmp_path / "existing" / "zeef.sqlite3"
    existing.parent.mkdir()
    assert cli(existing, "site", "add", "mine.example").returncode == 0
    before = dump(existing)
    for target in (existing, tmp_path / "empty" / "zeef.sqlite3"):
        target.parent.mkdir(exist_ok=True)
        refused = cli(target, "import", str(out), "--as", "copy.example")
        assert refused.returncode == 2, (refused.stdout, refused.stderr)
        assert "import refused, nothing written" in refused.stderr and says in refused.stderr
        assert "Traceback" not in refused.stderr
        assert [p.name for p in target.parent.iterdir() if "import" in p.name] == []
    assert dump(existing) == before
    assert not (tmp_path / "empty" / "zeef.sqlite3").exists()


async def test_an_existing_domain_is_refused_without_as(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "example.zip"
    assert cli(source, "export", "example.com", "--out", str(out)).returncode == 0
    target = tmp_path / "target" / "zeef.sqlite3"
    target.parent.mkdir()
    assert cli(target, "site", "add", "example.com").returncode == 0
    before = dump(target)
    refused = cli(target, "import", str(out))
    assert refused.returncode == 2 and "has a site example.com already" in refused.stderr
    assert dump(target) == before
    # An export is never written over a file, nor of a site that is not there.
    assert cli(source, "export", "example.com", "--out", str(out)).returncode == 2
    missing = cli(source, "export", "nothing.example", "--out", str(tmp_path / "n.zip"))
    assert missing.returncode == 1 and not (tmp_path / "n.zip").exists()
    (tmp_path / "none").mkdir()
    nowhere = cli(tmp_path / "none" / "zeef.sqlite3", "export", "example.com", "--out",
                  str(tmp_path / "m.zip"))  # fmt: skip
    assert nowhere.returncode == 1 and "no database" in nowhere.stderr
    assert list((tmp_path / "none").iterdir()) == []


async def test_sums_kept_after_a_purge_travel_and_answer_the_same(tmp_path: Path) -> None:
    """A customer who keeps aggregates: days whose raw rows a purge deleted exist only as
    rollups, so those are exported (and only those), and the target reports them alike."""
    source = tmp_path / "source" / "zeef.sqlite3"
    clock = Clock(MAY)
    async for app in start(Settings(database=source, flush_interval=3600), clock):
        storage = app.app.state.storage
        await app.add_site("example.com")
        await app.settled()
        site = await sites.get_site(storage, "example.com")
        keeps = await storage.add_customer("Keeps", 0)
        await storage.set_site_customer(site.id, keeps)
        await storage.set_site_retention(site.id, "30d")
        await storage.set_customer_retention(keeps, keep_aggregates=1)
        for at in (MAY - timedelta(days=60), MAY - timedelta(days=59), MAY - timedelta(days=2)):
            for n in range(4):
                clock.now = at + timedelta(minutes=n)
                answer = await app.send(pageview(f"https://example.com/{n % 2}"), ip=f"81.2.69.{n}")
                assert answer.status_code == 202
        await app.flush()
        clock.now = MAY
        await storage.build_rollups(int(MAY.timestamp()))
        report = await app.app.state.purges.run_once()
        assert report.sites["example.com"]["events"] == 8
        summed_only = await figures(storage, "example.com", MAY)
    out = tmp_path / "example.zip"
    assert cli(source, "export", "example.com", "--out", str(out)).returncode == 0
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        days = {json.loads(line)["day"] for line in archive.read("rollup_days.jsonl").splitlines()}
        values = archive.read("rollups.jsonl")
    assert manifest["files"]["rollups.jsonl"]["rows"] > 0
    # The two purged days (and weeks or spans starting in them), not the recent one.
    assert {"2026-03-21", "2026-03-22"} <= days and "2026-05-18" not in days
    assert b'"$b64"' in values  # a missing value's key, a BLOB, written as base64

    target = tmp_path / "target" / "zeef.sqlite3"
    target.parent.mkdir()
    loaded = cli(target, "import", str(out))
    assert loaded.returncode == 0, loaded.stderr
    after = await open_figures(target, "example.com", MAY, build=True)
    before = await open_figures(source, "example.com", MAY, build=True)
    assert before == summed_only
    assert before["all totals"]["pageviews"] == 12  # 8 of them summed only
    assert after == before


@pytest.mark.parametrize("table", ["events", "visits", "consent_records", "consented_visitors",
                                   "drops", "rollups"])  # fmt: skip
async def test_export_reads_search_the_sites_rows_in_index_order(
    table: str, tmp_path: Path
) -> None:
    """A site's rows, found by index and read in the index's order: no scan of other sites'
    rows, and no sort that must finish before the first row comes out."""
    storage = open_storage(tmp_path / "zeef.sqlite3")
    await storage.migrate()
    await storage.close()
    conn = sqlite3.connect(tmp_path / "zeef.sqlite3")
    try:
        sql = select_lines(table) if table != "rollups" else select_rows(table)
        steps = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", {"site_id": 1})]
    finally:
        conn.close()
    assert steps[0].startswith(f"SEARCH {table} USING") and "(site_id=?" in steps[0], steps
    assert not any("TEMP B-TREE" in step or step.startswith("SCAN") for step in steps), steps


def test_the_progress_bar_draws_on_the_stream_it_is_given() -> None:
    from server.portability import Progress

    shown = io.StringIO()
    bar = Progress("import", shown)
    bar.start(4_000)
    bar.advance(2_000)
    bar.finish()
    drawn = shown.getvalue()
    assert drawn.startswith("\rimport [") and drawn.endswith("\n")
    # Each redraw as long as the longest before it: a shorter one leaves no tail.
    redraws = drawn.rstrip("\n").split("\r")[1:]
    assert len({len(r) for r in redraws[1:]}) == 1 and redraws[-1].rstrip().endswith(" rows/s")
    assert " 50% 2,000/4,000 rows" in drawn and "100%" not in drawn
    quiet = io.StringIO()
    Progress("import", quiet, enabled=False).finish()
    assert quiet.getvalue() == ""

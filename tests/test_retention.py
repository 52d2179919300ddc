"""Retention (issue 19): periods per customer and site, the purge by the server's job and by
`zeef purge`, deletion that leaves nothing in the file, and deleting sites and customers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server.config import Settings

from .conftest import Clock, Zeef, pageview, start, stored_bytes
from .test_cli import zeef as cli
from .test_consent import record
from .test_rollups import draw_hits


def _rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(database)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


async def _site_id(app: Zeef, domain: str) -> int:
    return next(s.id for s in await app.app.state.storage.sites() if s.domain == domain)


async def _hit(app: Zeef, clock: Clock, at: datetime, domain: str, path: str, ip: str) -> None:
    clock.now = at
    answer = await app.send(pageview(f"https://{domain}{path}", d=domain), ip=ip)
    assert answer.status_code == 202, answer.text


async def test_the_limit_is_midnight_in_the_sites_own_zone(settings: Settings) -> None:
    # Saturday 14 March 2026; 90 days back is 14 December 2025. In Amsterdam (UTC+1 then) that
    # day starts at 23:00 UTC on the 13th: a visit at 22:59:59 UTC is past the period there, one
    # at 23:00:00 is exactly at the limit and stays. A UTC site keeps neither.
    clock = Clock(datetime(2026, 3, 14, 10, 0, tzinfo=UTC))
    async for app in start(settings, clock):
        await app.add_site("ams.example", "Europe/Amsterdam")
        await app.add_site("utc.example")
        await app.settled()
        storage = app.app.state.storage
        for domain in ("ams.example", "utc.example"):
            await storage.set_site_retention(await _site_id(app, domain), "90d")
        before, at_limit = (
            datetime(2025, 12, 13, 22, 59, 59, tzinfo=UTC),
            datetime(2025, 12, 13, 23, 0, tzinfo=UTC),
        )
        for domain in ("ams.example", "utc.example"):
            await _hit(app, clock, before, domain, "/before", "81.2.69.142")
            await _hit(app, clock, at_limit, domain, "/at-limit", "81.2.69.143")
            await _hit(
                app, clock, datetime(2026, 3, 1, tzinfo=UTC), domain, "/recent", "81.2.69.144"
            )
        await app.flush()
        clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)

        dry = await _purge(app, dry_run=True)
        assert dry.sites == {
            "ams.example": {"events": 1, "visits": 1},
            "utc.example": {"events": 2, "visits": 2},
        }
        assert len(app.rows()) == 6  # a dry run deletes nothing

        report = await app.app.state.purges.run_once()
        assert report.sites == dry.sites and not report.skipped
        assert report.cutoffs["ams.example"]["events_before"] == "2025-12-13T23:00:00+00:00"
        assert report.cutoffs["utc.example"]["events_before"] == "2025-12-14T00:00:00+00:00"
        kept = app.rows("SELECT s.domain, e.path FROM events e JOIN sites s ON s.id = e.site_id "
                        "ORDER BY s.domain, e.ts")  # fmt: skip
        assert [(r["domain"], r["path"]) for r in kept] == [
            ("ams.example", "/at-limit"),
            ("ams.example", "/recent"),
            ("utc.example", "/recent"),
        ]
        assert len(app.rows("SELECT * FROM visits")) == 3

        # Until the site's next midnight the cutoff stays put and a run has nothing to do;
        # the day after, the visit at the limit is past it.
        assert (await app.app.state.purges.run_once()).sites == {}
        clock.now = datetime(2026, 3, 14, 23, 30, tzinfo=UTC)  # 00:30 on the 15th in Amsterdam
        assert (await app.app.state.purges.run_once()).sites == {
            "ams.example": {"events": 1, "visits": 1}
        }
        audit = app.rows("SELECT actor, action, object FROM audit_log WHERE action = 'purge'")
        assert [(a["actor"], a["object"]) for a in audit] == [
            ("server", "ams.example: events 1, visits 1; utc.example: events 2, visits 2"),
            ("server", "ams.example: events 1, visits 1"),
        ]


async def _purge(app: Zeef, **options: Any) -> Any:
    from server.purge import purge

    now = int(app.app.state.purges.clock())
    return await purge(app.app.state.storage, app.settings, now=now, **options)


async def test_a_customers_period_applies_to_its_sites_unless_a_site_sets_its_own(
    settings: Settings,
) -> None:
    clock = Clock(datetime(2026, 3, 14, 10, 0, tzinfo=UTC))
    async for app in start(settings, clock):
        storage = app.app.state.storage
        acme = {"id": await storage.add_customer("Acme", 0)}
        for domain in ("own.example", "inherits.example", "other.example"):
            await app.add_site(domain)
        await app.settled()
        for domain in ("own.example", "inherits.example"):
            await storage.set_site_customer(await _site_id(app, domain), acme["id"])
        await storage.set_customer_retention(acme["id"], retention="13m")
        await storage.set_site_retention(await _site_id(app, "own.example"), "30d")
        for n, days in enumerate((20, 40, 400, 800)):
            for domain in ("own.example", "inherits.example", "other.example"):
                at = datetime(2026, 3, 14, 9, 0, tzinfo=UTC) - timedelta(days=days)
                await _hit(app, clock, at, domain, f"/{days}", f"81.2.69.{140 + n}")
        await app.flush()
        clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
        report = await app.app.state.purges.run_once()
        # 30 days, 13 months, and the install's 25 months (the CNIL's ceiling).
        assert {d: t["events"] for d, t in report.sites.items()} == {
            "own.example": 3,
            "inherits.example": 2,
            "other.example": 1,
        }
        assert report.cutoffs["other.example"]["retention"] == "25m"


async def test_aggregates_outlive_raw_events_only_where_the_customer_chose(
    settings: Settings,
) -> None:
    clock = Clock(datetime(2026, 3, 14, 10, 0, tzinfo=UTC))
    async for app in start(settings, clock):
        storage = app.app.state.storage
        keeps = {"id": await storage.add_customer("Keeps", 0)}
        await app.add_site("keeps.example")
        await app.add_site("drops.example")
        await app.settled()
        await storage.set_site_customer(await _site_id(app, "keeps.example"), keeps["id"])
        for domain in ("keeps.example", "drops.example"):
            await storage.set_site_retention(await _site_id(app, domain), "30d")
            await _hit(
                app, clock, datetime(2026, 1, 5, 12, tzinfo=UTC), domain, "/old", "81.2.69.1"
            )
        await app.flush()
        clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
        await storage.build_rollups(int(clock.now.timestamp()), None)
        assert _days(app) == {("keeps.example", "2026-01-05"), ("drops.example", "2026-01-05")}

        await storage.set_customer_retention(keeps["id"], keep_aggregates=1)
        report = await app.app.state.purges.run_once()
        assert report.sites["keeps.example"] == {"events": 1, "visits": 1}
        assert "rollups" in report.sites["drops.example"]
        assert app.rows("SELECT * FROM events") == []
        assert _days(app) == {("keeps.example", "2026-01-05")}
        # What is kept is counts: no visitor ID, no visit ID, no time finer than a day.
        columns = {r["name"] for r in app.rows("SELECT name FROM pragma_table_info('rollups')")}
        assert "visitors" in columns and not columns & {"visitor_id", "visit_id", "ts"}

        # Changing one's mind later deletes what was kept at the next run.
        await storage.set_customer_retention(keeps["id"], keep_aggregates=0)
        again = await app.app.state.purges.run_once()
        assert "rollups" in again.sites["keeps.example"]
        assert _days(app) == set()


def _days(app: Zeef) -> set[tuple[str, str]]:
    rows = app.rows("SELECT DISTINCT s.domain, r.day FROM rollups r JOIN sites s "
                    "ON s.id = r.site_id")  # fmt: skip
    return {(r["domain"], r["day"]) for r in rows}


async def test_consent_records_are_kept_for_the_consents_life_and_its_proof(
    settings: Settings,
) -> None:
    clock = Clock(datetime(2026, 3, 14, 10, 0, tzinfo=UTC))
    async for app in start(settings, clock):
        await app.add_site("example.com")
        await app.settled()
        storage = app.app.state.storage
        acme = {"id": await storage.add_customer("Acme", 0)}
        await storage.set_site_customer(await _site_id(app, "example.com"), acme["id"])
        await storage.set_customer_retention(acme["id"], consent_proof="1y", retention="30d")
        for days in (100, 400, 600):
            clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC) - timedelta(days=days)
            answer = await app.client.post("/api/consent", content=json.dumps(record()))
            assert answer.status_code == 201, answer.text
        clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
        report = await app.app.state.purges.run_once()
        # The banner's default lifetime (six months here) plus a year of proof: the record
        # from 600 days ago goes, the one from 400 days ago must still prove its consent.
        lifetime = report.cutoffs["example.com"]
        assert lifetime["retention"] == "30d"
        assert report.sites.get("example.com", {}).get("consent_records") == 1
        assert len(app.rows("SELECT * FROM consent_records")) == 2


async def test_purge_while_ingesting_loses_no_new_event(settings: Settings) -> None:
    clock = Clock(datetime(2026, 4, 2, 15, 0, tzinfo=UTC))
    async for app in start(replace(settings, retention=_period("7d")), clock):
        await app.add_site("shop.example")
        await app.settled()
        storage = app.app.state.storage
        old = draw_hits(
            3, 9000, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC)
        )
        for i in range(0, len(old), 2000):
            await storage.write_batch(old[i : i + 2000], {})
        count = len(app.rows())
        assert count > 15_000

        async def ingest(app: Zeef = app) -> int:
            sent = 0
            for n in range(300):
                answer = await app.send(
                    pageview(f"https://shop.example/new/{n}", d="shop.example"),
                    ip=f"81.2.{n // 200}.{n % 200 + 1}",
                )
                assert answer.status_code == 202
                sent += 1
                if n % 25 == 0:
                    await app.flush()
                await asyncio.sleep(0)
            await app.flush()
            return sent

        from server.purge import purge

        now = int(clock.now.timestamp())
        report, sent = await asyncio.gather(
            purge(storage, app.settings, now=now, batch=500, pause=0.001, by="server"),
            ingest(),
        )
        assert report.sites["shop.example"]["events"] == count
        new = app.rows("SELECT path FROM events")
        assert sorted(r["path"] for r in new) == sorted(f"/new/{n}" for n in range(sent))


def _period(text: str) -> Any:
    from server.retention import Period

    return Period.parse(text)


async def test_deleted_rows_are_not_in_the_file_or_its_wal(settings: Settings) -> None:
    marker = "zeef-marker-5d1c0a"
    clock = Clock(datetime(2026, 3, 14, 10, 0, tzinfo=UTC))
    async for app in start(replace(settings, retention=_period("30d")), clock):
        await app.add_site("example.com")
        await app.settled()
        for n in range(400):  # enough pages that some are freed whole
            at = datetime(2026, 1, 5, 8, tzinfo=UTC) + timedelta(seconds=40 * n)
            clock.now = at
            await app.send(
                pageview(f"https://example.com/{marker}/{n}", p=json.dumps({"tag": marker})),
                ip=f"81.2.{n // 200}.{n % 200 + 1}",
            )
        await _hit(
            app, clock, datetime(2026, 3, 10, tzinfo=UTC), "example.com", "/kept", "81.2.9.9"
        )
        await app.flush()
        clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
        await app.app.state.storage.build_rollups(int(clock.now.timestamp()), None)
        assert marker.encode() in _file_bytes(settings.database)  # the test can fail
        pages = _rows(settings.database, "PRAGMA page_count")[0][0]

        report = await app.app.state.purges.run_once()
        assert report.sites["example.com"]["events"] == 400
        assert report.reclaimed["auto_vacuum"] == 2 and report.reclaimed["freed_pages"] > 0
        assert report.reclaimed["checkpoint_busy"] == 0
        assert marker.encode() not in _file_bytes(settings.database)
        # The freed pages went back to the file system: the file is smaller.
        assert _rows(settings.database, "PRAGMA page_count")[0][0] < pages - 40
        assert _rows(settings.database, "PRAGMA freelist_count") == [(0,)]
        assert [r["path"] for r in app.rows()] == ["/kept"]


def _file_bytes(database: Path) -> bytes:
    return stored_bytes(database)


async def test_one_purge_at_a_time_across_workers(settings: Settings) -> None:
    clock = Clock(datetime(2026, 3, 14, 10, 0, tzinfo=UTC))
    async for app in start(settings, clock):
        storage = app.app.state.storage
        now = int(clock.now.timestamp())
        claimed = await storage.claim_purge(now, "worker 1")
        assert claimed is not None
        assert (await app.app.state.purges.run_once()).skipped  # another is going
        await storage.finish_purge(claimed, now + 5, "{}")
        assert not (await app.app.state.purges.run_once()).skipped
        # A run that died without finishing blocks the next ones for an hour, not for ever.
        assert await storage.claim_purge(now + 10, "worker 2") is not None
        clock.advance(minutes=61)
        assert not (await app.app.state.purges.run_once()).skipped


async def test_the_server_purges_by_itself(settings: Settings) -> None:
    clock = Clock(datetime(2026, 3, 14, 10, 0, tzinfo=UTC))
    settings = replace(settings, retention=_period("30d"), purge_interval=60)
    async for app in start(settings, clock):
        await app.add_site("example.com")
        await app.settled()
        await _hit(app, clock, datetime(2026, 1, 5, tzinfo=UTC), "example.com", "/old", "81.2.1.1")
        await app.flush()
        clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
        job = app.app.state.purges
        assert job._task is not None and not job._task.done()  # started with the server
    # Stopped with it, and cleanly: no task left behind.
    assert job._task is None


# -- the command line (the contracts) ------------------------------------------------


def test_periods_from_the_command_line(tmp_path: Path) -> None:
    assert cli(tmp_path, "customer", "add", "Acme").returncode == 0
    assert cli(tmp_path, "site", "add", "shop.example", "--customer", "Acme").returncode == 0
    assert cli(tmp_path, "site", "add", "blog.example", "--customer", "Acme").returncode == 0
    said = cli(tmp_path, "customer", "set", "Acme", "--retention", "13m", "--keep-aggregates")
    assert (said.returncode, said.stdout) == (0, "Acme: retention 13m, keep aggregates on\n")
    site = cli(tmp_path, "site", "set", "shop.example", "--retention", "90d")
    assert site.returncode == 0, site.stderr
    for bad in ("13x", "0d", "ninety days", "200y"):
        refused = cli(tmp_path, "site", "set", "shop.example", "--retention", bad)
        assert refused.returncode == 2 and "period" in refused.stderr, (bad, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert cli(tmp_path, "customer", "set", "Nobody", "--retention", "1y").returncode == 1

    report = json.loads(cli(tmp_path, "purge", "--dry-run", "--json").stdout)
    assert report["dry_run"] is True and report["total"] == 0
    assert report["cutoffs"]["shop.example"]["retention"] == "90d"
    assert report["cutoffs"]["blog.example"]["retention"] == "13m"
    assert cli(tmp_path, "site", "set", "shop.example", "--retention", "default").returncode == 0
    report = json.loads(cli(tmp_path, "purge", "--dry-run", "--json").stdout)
    assert report["cutoffs"]["shop.example"]["retention"] == "13m"
    plain = cli(tmp_path, "purge")
    assert (plain.returncode, plain.stdout) == (
        0,
        "Nothing is past its retention period: deleted no rows.\n",
    )
    actions = [r[0] for r in _rows(tmp_path / "zeef.sqlite3", "SELECT action FROM audit_log")]
    assert actions.count("site.retention") == 2 and "customer.retention" in actions


async def test_zeef_purge_prints_what_it_deletes_per_site_and_table(tmp_path: Path) -> None:
    settings = Settings(database=tmp_path / "zeef.sqlite3", flush_interval=3600)
    assert cli(tmp_path, "site", "add", "shop.example").returncode == 0
    assert cli(tmp_path, "site", "set", "shop.example", "--retention", "90d").returncode == 0
    real = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(real)
    async for app in start(settings, clock):
        await app.settled()
        await _hit(app, clock, real - timedelta(days=120), "shop.example", "/a", "81.2.1.1")
        await _hit(app, clock, real - timedelta(days=100), "shop.example", "/b", "81.2.1.2")
        await _hit(app, clock, real - timedelta(days=3), "shop.example", "/c", "81.2.1.3")
        await app.flush()
        # The builder in the background may or may not have summed the old days by now (it
        # did in a loaded CI run): sum them here, so what the purge finds does not depend on it.
        await app.app.state.storage.build_rollups(int(real.timestamp()), None)

    dry = cli(tmp_path, "purge", "--dry-run")
    assert dry.returncode == 0
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("shop.example (kept: 90d, from ")
    said = [line.split() for line in lines[1:]]
    assert said[:2] == [["events", "would", "delete", "2"], ["visits", "would", "delete", "2"]]
    # The sums of the expired days go with them (how many rows they are is the builder's shape).
    assert [(table, verb) for table, verb, _, n in said[2:] if int(n) > 0] == [
        ("rollups", "would"),
        ("rollup_days", "would"),
    ]
    assert len(_rows(tmp_path / "zeef.sqlite3", "SELECT * FROM events")) == 3
    done = json.loads(cli(tmp_path, "purge", "--json").stdout)
    deleted = done["sites"]["shop.example"]
    assert {t: deleted[t] for t in ("events", "visits")} == {"events": 2, "visits": 2}
    assert {t: str(n) for t, n in deleted.items()} == {t: n for t, _, _, n in said}
    assert _rows(tmp_path / "zeef.sqlite3", "SELECT path FROM events") == [("/c",)]
    again = json.loads(cli(tmp_path, "purge", "--json").stdout)
    assert again["total"] == 0
    audit = _rows(tmp_path / "zeef.sqlite3", "SELECT actor, object FROM audit_log "
                  "WHERE action = 'purge'")  # fmt: skip
    assert audit == [("cli", "shop.example: " + ", ".join(f"{t} {n}" for t, _, _, n in said))]


async def test_deleting_a_site_or_a_customer_deletes_all_their_data(tmp_path: Path) -> None:
    settings = Settings(database=tmp_path / "zeef.sqlite3", flush_interval=3600)
    assert cli(tmp_path, "customer", "add", "Acme").returncode == 0
    assert cli(tmp_path, "customer", "add", "Beta").returncode == 0
    for domain, customer in (("a1.example", "Acme"), ("a2.example", "Acme"), ("b.example", "Beta")):
        assert cli(tmp_path, "site", "add", domain, "--customer", customer).returncode == 0
    add = cli(tmp_path, "user", "add", "ann@acme.example", "--customer", "Acme", "--role", "admin")
    assert add.returncode == 0, add.stderr
    clock = Clock(datetime.now(UTC))
    async for app in start(settings, clock):
        await app.settled()
        for n, domain in enumerate(("a1.example", "a2.example", "b.example")):
            await _hit(app, clock, clock.now, domain, "/", f"81.2.1.{n + 1}")
        await app.flush()
    database = tmp_path / "zeef.sqlite3"

    refused = cli(tmp_path, "site", "delete", "a1.example")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert len(_rows(database, "SELECT * FROM events")) == 3
    gone = cli(tmp_path, "site", "delete", "a1.example", "--yes")
    assert gone.returncode == 0 and gone.stdout.startswith("deleted a1.example: ")
    assert cli(tmp_path, "site", "delete", "a1.example", "--yes").returncode == 1
    assert cli(tmp_path, "customer", "delete", "Acme").returncode == 2
    assert cli(tmp_path, "customer", "delete", "Acme", "--yes").returncode == 0
    domains = [r[0] for r in _rows(database, "SELECT domain FROM sites")]
    assert domains == ["b.example"]
    assert [r[0] for r in _rows(database, "SELECT name FROM customers")] == ["Beta"]
    assert _rows(database, "SELECT COUNT(*) FROM events") == [(1,)]
    assert _rows(database, "SELECT COUNT(*) FROM visits") == [(1,)]
    assert _rows(database, "SELECT COUNT(*) FROM users WHERE email LIKE '%acme%'") == [(0,)]
    audit = _rows(database, "SELECT action, object FROM audit_log WHERE action LIKE '%.delete'")
    assert [a for a, _ in audit] == ["site.delete", "site.delete", "customer.delete"]
    assert audit[0][1].startswith("a1.example (events 1, visits 1")
    assert audit[2][1] == "Acme (1 sites, 1 users)"

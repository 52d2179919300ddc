"""The visits table the writer keeps, and the local days reports count them in."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from server import reports
from server.config import Settings

from .conftest import Clock, Zeef, pageview, start

VISIT_COLUMNS = (
    "site_id, visitor_id, started, ended, hostname, entry_page, exit_page, pageviews, events, "
    "interactions, engaged_ms, referrer_host, utm_source, browser, os, device, consented, "
    "previous_started, scroll_depths, scroll_sum, scroll_pages"
)


async def figures(zeef: Zeef, clock: Clock, period: str = "all", domain: str = "example.com"):
    storage = zeef.app.state.storage
    site = next(s for s in await storage.sites() if s.domain == domain)
    return await reports.totals(storage, reports.Query.for_period(site, period, clock()))


def engagement(path: str = "/", seconds: int = 0, depth: int | None = None) -> dict[str, Any]:
    body = {"n": "engagement", "u": f"https://example.com{path}", "d": "example.com"}
    body["e"] = seconds * 1000
    if depth is not None:
        body["sd"] = depth
    return body


async def test_a_visit_keeps_its_entry_and_exit_page_and_each_hit_names_it(
    zeef: Zeef, clock: Clock
) -> None:
    await zeef.send(pageview("https://example.com/in?utm_source=news", r="https://duck.com/"))
    clock.advance(minutes=5)
    await zeef.send({"n": "Signup", "u": "https://example.com/form", "d": "example.com"})
    clock.advance(minutes=5)
    await zeef.send(pageview("https://example.com/out"))
    clock.advance(minutes=5)
    await zeef.send(engagement("/out", seconds=400, depth=80))
    await zeef.send(pageview("https://example.com/other"), ip="203.0.113.9")
    await zeef.flush()
    visits = zeef.rows(f"SELECT id, {VISIT_COLUMNS} FROM visits ORDER BY id")
    assert [(v["entry_page"], v["exit_page"]) for v in visits] == [
        ("/in", "/out"),
        ("/other", "/other"),
    ]
    first = visits[0]
    assert (first["pageviews"], first["events"], first["interactions"]) == (2, 1, 1)
    assert (first["engaged_ms"], first["ended"] - first["started"]) == (400_000, 15 * 60)
    assert (first["referrer_host"], first["utm_source"]) == ("duck.com", "news")
    hits = zeef.rows("SELECT visit_id, visitor_id, path FROM events ORDER BY rowid")
    assert [h["visit_id"] for h in hits] == [1, 1, 1, 1, 2]
    assert {h["visitor_id"] for h in hits[:4]} == {first["visitor_id"]}


async def test_time_on_a_page_joins_its_visit_however_late_it_comes(
    zeef: Zeef, clock: Clock
) -> None:
    await zeef.send(pageview())
    clock.advance(minutes=45)  # the visitor read one page for 45 minutes, then left
    await zeef.send(engagement(seconds=45 * 60))
    await zeef.flush()
    got = await figures(zeef, clock)
    assert (got["visits"], got["bounce_rate"], got["visit_duration"]) == (1, 100, 45 * 60)
    # A later pageview starts a new visit: the gap is measured from the engagement hit.
    clock.advance(minutes=31)
    await zeef.send(pageview())
    await zeef.flush()
    assert (await figures(zeef, clock))["visits"] == 2


async def test_an_engagement_hit_with_no_visit_opens_none(zeef: Zeef, clock: Clock) -> None:
    await zeef.send(engagement(seconds=10))
    await zeef.flush()
    assert zeef.rows("SELECT visit_id FROM events") == [{"visit_id": None}]
    assert (await figures(zeef, clock))["visits"] == 0


async def test_two_processes_flushing_out_of_order_build_one_visit(
    zeef: Zeef, clock: Clock, settings: Settings
) -> None:
    """Two workers share the file; the one holding the earlier hits flushes last."""
    async for other in start(settings, clock):
        await zeef.send(pageview("https://example.com/first"))
        clock.advance(minutes=1)
        await other.send(pageview("https://example.com/second"))
        clock.advance(minutes=1)
        await other.send(pageview("https://example.com/third"))
        await other.flush()
        await zeef.flush()
    [visit] = zeef.rows(f"SELECT {VISIT_COLUMNS} FROM visits")
    assert (visit["entry_page"], visit["exit_page"], visit["pageviews"]) == ("/first", "/third", 3)
    assert visit["ended"] - visit["started"] == 120
    assert {r["visit_id"] for r in zeef.rows()} == {1}


async def test_visits_are_closed_hours_after_their_last_hit(zeef: Zeef, clock: Clock) -> None:
    await zeef.send(pageview())
    await zeef.flush()
    clock.advance(hours=27)
    await zeef.send(pageview(), ip="203.0.113.9")
    await zeef.flush()
    assert [v["open"] for v in zeef.rows("SELECT open FROM visits ORDER BY id")] == [0, 1]


async def test_upgrading_builds_the_visits_of_hits_stored_before(
    zeef: Zeef, clock: Clock, settings: Settings, tmp_path: Path
) -> None:
    """Migration 0007 builds visits from the hits of an older database, as reports did."""
    for minutes, ip, hit in [
        (0, "81.2.69.142", pageview("https://example.com/a")),
        (10, "81.2.69.142", pageview("https://example.com/b")),
        (12, "81.2.69.142", engagement("/b", seconds=200)),
        (50, "81.2.69.142", pageview("https://example.com/c")),  # a gap: a second visit
        (51, "203.0.113.9", {"n": "Signup", "u": "https://example.com/x", "d": "example.com"}),
        (52, "203.0.113.9", engagement("/x", seconds=5, depth=30)),
        (53, "203.0.113.9", engagement("/x", seconds=5, depth=70)),
    ]:
        clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        await zeef.send(hit, ip=ip)
    await zeef.flush()
    expected = await figures(zeef, clock)
    built = zeef.rows(f"SELECT {VISIT_COLUMNS} FROM visits ORDER BY started, visitor_id")

    old = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(old)
    migrations = resources.files("server.storage").joinpath("migrations/sqlite")
    for number in range(1, 7):
        [script] = [f for f in migrations.iterdir() if f.name.startswith(f"{number:04d}_")]
        conn.executescript(script.read_text())
    conn.execute("PRAGMA user_version = 6")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
    conn.execute("ATTACH ? AS new", (str(settings.database),))
    conn.execute(
        "INSERT INTO sites SELECT id, domain, timezone, created_at, honour_dnt FROM new.sites"
    )
    conn.execute(f"INSERT INTO events SELECT {', '.join(columns)} FROM new.events")
    conn.commit()
    conn.close()

    async for upgraded in start(replace(settings, database=old), clock):
        assert await figures(upgraded, clock) == expected
        rebuilt = upgraded.rows(f"SELECT {VISIT_COLUMNS} FROM visits ORDER BY started, visitor_id")
    assert rebuilt == built


async def test_a_visitor_counts_once_in_a_period_however_many_visits(
    zeef: Zeef, clock: Clock
) -> None:
    clock.now = clock.now.replace(hour=1)
    for hours in (0, 5, 12):  # three visits, hours apart, on one UTC day: one hash
        clock.now = clock.now.replace(hour=1 + hours)
        await zeef.send(pageview())
    await zeef.send(pageview(), ip="203.0.113.9")
    await zeef.flush()
    got = await figures(zeef, clock, "day")
    assert (got["visitors"], got["visits"]) == (2, 4)
    starts = zeef.rows("SELECT started, previous_started FROM visits ORDER BY id")
    assert starts[1]["previous_started"] == starts[0]["started"]


async def test_a_consented_visitor_counts_once_across_days(zeef: Zeef, clock: Clock) -> None:
    """Their first-party ID outlives the open window: the last visit comes from the table of
    consented visitors."""
    for _ in range(3):
        await zeef.send(pageview(c="consented-visitor-id-0123"))
        await zeef.flush()
        clock.advance(days=2)
    clock.advance(days=-2)
    week = await figures(zeef, clock, "7d")
    assert (week["visitors"], week["visits"]) == (1, 3)
    day = await figures(zeef, clock, "day")
    assert (day["visitors"], day["returning_visitors"]) == (1, 1)


async def test_scroll_depth_is_the_mean_of_each_pages_deepest_scroll(
    zeef: Zeef, clock: Clock
) -> None:
    await zeef.send(pageview("https://example.com/a"))
    await zeef.send(engagement("/a", seconds=5, depth=20))
    await zeef.send(engagement("/a", seconds=5, depth=60))  # the deeper one counts
    await zeef.send(pageview("https://example.com/b"))
    await zeef.send(engagement("/b", seconds=5, depth=100))
    await zeef.send(pageview("https://example.com/c"))  # reported no scroll: not counted
    await zeef.flush()
    assert (await figures(zeef, clock))["scroll_depth"] == 80
    [visit] = zeef.rows("SELECT scroll_depths, scroll_sum, scroll_pages FROM visits")
    assert visit == {"scroll_depths": '{"/a":60,"/b":100}', "scroll_sum": 160, "scroll_pages": 2}


# Days whose length is not 24 hours, and a zone half an hour off UTC: (zone, day, hours).
LOCAL_DAYS = [
    ("Europe/Amsterdam", "2026-03-29", 23),
    ("Europe/Amsterdam", "2026-10-25", 25),
    ("Asia/Kolkata", "2026-03-14", 24),
    ("America/St_Johns", "2026-11-01", 25),
]


@pytest.mark.parametrize(
    ("zone", "day", "hours"), LOCAL_DAYS, ids=[f"{z}-{d}" for z, d, _ in LOCAL_DAYS]
)
async def test_a_local_day_holds_exactly_its_own_hours(
    zeef: Zeef, clock: Clock, zone: str, day: str, hours: int
) -> None:
    from zoneinfo import ZoneInfo

    await zeef.add_site("local.example", timezone=zone)
    tz = ZoneInfo(zone)
    midnight = datetime.fromisoformat(day).replace(tzinfo=tz)
    start_utc = midnight.astimezone(UTC)
    end_utc = (midnight + timedelta(days=1)).astimezone(UTC)
    assert end_utc - start_utc == timedelta(hours=hours)
    # One visitor a hit, each from its own address: a minute either side of each edge.
    hits = [start_utc - timedelta(minutes=1), start_utc + timedelta(minutes=1),
            end_utc - timedelta(minutes=1), end_utc + timedelta(minutes=1)]  # fmt: skip
    for n, when in enumerate(hits):
        clock.now = when
        body = pageview("https://local.example/", d="local.example")
        assert (await zeef.send(body, ip=f"203.0.113.{n + 1}")).status_code == 202
    await zeef.flush()
    clock.now = end_utc - timedelta(minutes=1)
    got = await figures(zeef, clock, "day", "local.example")
    assert (got["from"], got["to"]) == (day, day)
    assert (got["visitors"], got["visits"], got["pageviews"]) == (2, 2, 2)
    # The week ending that day takes the hit just after its start too, not the one before.
    week = await figures(zeef, clock, "7d", "local.example")
    assert (week["visits"], week["pageviews"]) == (3, 3)

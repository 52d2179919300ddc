"""Rollups answer exactly what raw visits and hits answer: every report the engine reads from
them, compared on random data before and after they are built, and how current they stay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server import reports
from server.events import Event, Site
from server.reports import Query
from server.reports.filters import parse_v1
from server.sites import add_site
from server.storage import Storage, open_storage
from server.storage.sqlite_rollups import HIT_DIMENSIONS, MARGIN, VISIT_DIMENSIONS

ZONE = "Europe/Amsterdam"  # a DST change (29 March) inside the data
FIRST = datetime(2026, 3, 20, tzinfo=UTC)
NOW = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)

PAGES = ["/", "/pricing", "/blog", "/blog/a", "/docs", "/about"]
SOURCES = [
    (None, None, None, None),
    ("www.google.com", "/", None, None),
    ("www.bing.com", "/search", None, None),
    ("t.co", "/x", None, None),
    ("news.example.org", "/story", None, None),
    (None, None, "newsletter", "email"),
    ("www.facebook.com", "/", "fb", "social"),
]
PLACES = [("NL", "NL-NH", "Amsterdam"), ("NL", "NL-ZH", "Rotterdam"), ("DE", "DE-BE", "Berlin"),
          (None, None, None), ("BE", None, None)]  # fmt: skip
CLIENTS = [
    ("Chrome", "120", "Windows", "10", "desktop"),
    ("Firefox", "121", "Linux", "", "desktop"),
    ("Safari", "17", "iOS", "17.2", "mobile"),
    ("Chrome", "119", "Android", "14", "tablet"),
]


COUPONS = int(datetime(2026, 3, 28, 9, tzinfo=UTC).timestamp())


def _hash(person: int, ts: int) -> int:
    """A cookieless visitor's ID: a new one each UTC day, as the daily salt makes it."""
    return hash((person, ts // 86400)) & (2**62 - 1)


def draw_hits(
    seed: int, visits: int, first: datetime, last: datetime, people: int = 0
) -> list[Event]:
    """Random visits of 150 people (from number `people` on), 40 of them consented."""
    rng = random.Random(seed)
    span = int((last - first).total_seconds())
    events = []
    for _ in range(visits):
        person = people + rng.randrange(150)
        consented = person - people < 40
        ts = int(first.timestamp()) + rng.randrange(span)
        if rng.random() < 0.1:  # a visit that goes on past local (or UTC) midnight
            ts = ts - ts % 86400 + 86400 - rng.choice((3600 * 2 + 600, 3600 + 600, 600))
        host, path, utm_source, utm_medium = rng.choice(SOURCES)
        country, region, city = rng.choice(PLACES)
        client = rng.choice(CLIENTS)
        hostname = rng.choice(("shop.example", "shop.example", "www.shop.example"))
        for n in range(rng.choice((1, 1, 1, 2, 3, 5))):
            if ts >= int(last.timestamp()):
                break
            if consented:
                visitor, previous = 10**12 + person, None
            else:
                visitor, previous = _hash(person, ts), _hash(person, ts - 86400)
            page = rng.choice(PAGES)
            shared = (visitor, previous, hostname, page, host, path, utm_source, utm_medium,
                      client, country, region, city, consented)  # fmt: skip
            campaign = rng.choice((None, "spring"))

            def hit(at: int, name: str, props: str | None = None, depth: int | None = None,
                    engaged: int | None = None, shared: tuple[Any, ...] = shared,
                    campaign: str | None = campaign) -> Event:  # fmt: skip
                (visitor, previous, hostname, page, host, path, utm_source, utm_medium, client,
                 country, region, city, consented) = shared  # fmt: skip
                return Event(
                    1, at, visitor, previous, name, hostname, page, host, path, utm_source,
                    utm_medium, campaign, None, None, *client, country, region, city, props,
                    None, None, name != "engagement", depth, engaged, consented,
                )  # fmt: skip

            events.append(hit(ts, "pageview"))
            if rng.random() < 0.15:
                events.append(hit(ts + 5, "Signup", json.dumps({"plan": rng.choice("ab")})))
            if ts > COUPONS and rng.random() < 0.1:  # a property first sent on 28 March
                events.append(hit(ts + 7, "Order", json.dumps({"coupon": rng.choice("xyz")})))
            stay = rng.randrange(5, 900)
            if rng.random() < 0.7:
                events.append(hit(ts + stay, "engagement", None, rng.randrange(101), stay * 997))
            ts += stay + rng.randrange(1, 1500 if n < 3 else 4000)
    events.sort(key=lambda e: e.ts)
    return events


async def write(storage: Storage, events: list[Event]) -> None:
    for i in range(0, len(events), 200):
        await storage.write_batch(events[i : i + 200], {})


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = open_storage(tmp_path / "zeef.sqlite3")
    await store.migrate()
    yield store
    await store.close()


TOTALS = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
          "views_per_visit", "scroll_depth"]  # fmt: skip
HIT_TOTALS = ["visitors", "visits", "pageviews", "events"]


def queries(site: Site) -> list[Query]:
    now = NOW
    out = [
        Query.for_period(site, "custom", now, first=date(2026, 3, 20), last=date(2026, 4, 2)),
        Query.for_period(site, "7d", now),
        Query.for_period(site, "custom", now, first=date(2026, 3, 26), last=date(2026, 3, 31)),
        Query.for_period(site, "30d", now),
        Query.for_period(site, "month", now, anchor=date(2026, 3, 15)),
        Query.for_period(site, "month", now),
        Query.for_period(site, "all", now),
        Query.for_period(site, "day", now, anchor=date(2026, 3, 29)),
    ]
    return (
        out + [replace(q, interval="week") for q in out[:2]] + [replace(out[0], interval="month")]
    )


async def answers(storage: Storage, site: Site) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, query in enumerate(queries(site)):
        out[f"{n} aggregate"] = await reports.aggregate(storage, query, TOTALS)
        if query.bucket != "hour":
            out[f"{n} series"] = await reports.timeseries(storage, query, TOTALS[:-2])
        for by in VISIT_DIMENSIONS:
            out[f"{n} {by}"] = await reports.breakdown(storage, query, by, TOTALS)
        for by in (*HIT_DIMENSIONS, "event:props:plan", "event:props:coupon"):
            metrics = TOTALS[:-1] if by == "event:page" else HIT_TOTALS
            out[f"{n} {by}"] = await reports.breakdown(storage, query, by, metrics)
        # An event goal and a page are rollup rows; a wildcard page goal reads raw rows.
        goals = ["visitors", "events", "conversion_rate"]
        out[f"{n} goals"] = await reports.breakdown(storage, query, "event:goal", goals, GOALS)
        # Narrowed to one value of a visit dimension: totals and series from that value's rows.
        for condition in (*FILTERS, *SEGMENTS, LIVE):
            narrowed = query.with_filters(*parse_v1(condition))
            out[f"{n} {condition}"] = await reports.aggregate(storage, narrowed, TOTALS, GOALS)
            if query.bucket != "hour":
                series = await reports.timeseries(storage, narrowed, TOTALS[:-2], GOALS)
                out[f"{n} {condition} series"] = series
        # Filtered on visit dimensions: a segment, summed once a report has asked for it.
        if n in (1, 4, 6):  # 7 days (a span), a past month, all (weeks and today)
            for condition in SEGMENTS:
                segment = query.with_filters(*parse_v1(condition))
                for by in (*VISIT_DIMENSIONS, *HIT_DIMENSIONS, "event:props:plan"):
                    metrics = HIT_TOTALS if by in HIT_DIMENSIONS[1:] or "props" in by else TOTALS
                    out[f"{n} {condition} {by}"] = await reports.breakdown(
                        storage, segment, by, metrics[:-1] if by == "event:page" else metrics
                    )
    return out


FILTERS = ("visit:country==NL", "visit:device==Mobile", "visit:source==Google",
           "visit:entry_page==/pricing")  # fmt: skip
# Filter sets that are segments once asked for: several values, negations, several filters,
# on visits and on hits.
SEGMENTS = ("visit:country==NL|DE", "visit:device!=Mobile",
            "visit:source==Google;visit:city~dam", "event:page==/pricing",
            "event:name==Signup;visit:device!=Mobile",
            "event:page~blog;event:props:plan!=b")  # fmt: skip
# A goal filter: a segment keyed by what the goal is (a custom event's name here).
LIVE = "event:goal==Signs up"


@dataclass(frozen=True)
class Goal:
    display_name: str
    kind: str
    event_name: str | None
    page_path: str | None = None
    currency: str | None = None


GOALS = (Goal("Signs up", "event", "Signup"), Goal("Pricing", "page", None, "/pricing"),
         Goal("Blog", "page", None, "/blog*"))  # fmt: skip


def differences(raw: dict[str, Any], rolled: dict[str, Any]) -> list[str]:
    return [f"{key}:\n  raw    {raw[key]}\n  rolled {rolled[key]}" for key in raw
            if raw[key] != rolled[key]]  # fmt: skip


async def test_rollups_answer_what_raw_rows_answer(storage: Storage) -> None:
    site = await add_site(storage, "shop.example", ZONE)
    await write(storage, draw_hits(16, 900, FIRST, NOW - timedelta(seconds=MARGIN + 600)))
    raw = await answers(storage, site)
    assert raw["0 aggregate"]["visitors"] > 100

    built = await storage.build_rollups(int(NOW.timestamp()))
    # 20 March to 2 April (today's part up to MARGIN ago), and the week of 23 to 29 March,
    # the only one whose seven days are all summed and final; the same for each segment: the
    # SEGMENTS, a page filter other than `is` on the entry page (for bounce rates), the goal
    # filter and the wildcard page goal.
    segments = await _rows(storage, "SELECT filters FROM segments")
    assert len(segments) == len(SEGMENTS) + 1 + 2
    assert built == (14 + 1) * (1 + len(segments))
    assert not differences(raw, await answers(storage, site))

    # A visit after the build, a small share of those summed (BEHIND), shows at the next one:
    # until then every figure is as of the last build (a top line and its panels never
    # disagree), but for what rollups cannot answer, which reads raw rows.
    later = draw_hits(17, 1, NOW - timedelta(seconds=MARGIN - 10), NOW, 1000)
    await write(storage, [e for e in later if e.ts < NOW.timestamp()])  # none from the future
    lagging = await answers(storage, site)
    live = [key for key in raw if LIVE in key or key.endswith(" goals")]  # a wildcard: raw
    assert not differences({k: v for k, v in raw.items() if k not in live}, lagging)
    assert await differences_from_raw_rows(storage, site)
    await storage.build_rollups(int(NOW.timestamp()))
    # More of them than that (a new site's first visits, a day's first minutes): raw rows.
    await write(storage, draw_hits(25, 40, NOW, NOW + timedelta(minutes=3), 2000))
    assert not await differences_from_raw_rows(storage, site)

    # Visits that go on after a build show their new hits at the next (every few minutes).
    later = NOW + timedelta(minutes=20)
    await write(storage, draw_hits(21, 60, NOW, later))
    await storage.build_rollups(int(later.timestamp()) + MARGIN)
    assert not await differences_from_raw_rows(storage, site)


async def test_sums_left_behind_by_stopped_builds_are_not_read(storage: Storage) -> None:
    site = await add_site(storage, "shop.example", ZONE)
    await write(storage, draw_hits(22, 200, FIRST, NOW - timedelta(hours=1)))
    await storage.build_rollups(int(NOW.timestamp()))
    # No build since, and hits 20 minutes on: reports read raw rows, current again.
    await write(
        storage, draw_hits(23, 30, NOW + timedelta(minutes=15), NOW + timedelta(minutes=20), 1000)
    )
    assert not await differences_from_raw_rows(storage, site)


async def test_reports_read_the_rollups(storage: Storage) -> None:
    """A test that the path above is taken at all: change a rollup, see the report change."""
    site = await add_site(storage, "shop.example", ZONE)
    await write(storage, draw_hits(18, 200, FIRST, NOW - timedelta(hours=1)))
    query = queries(site)[0]
    before = await reports.aggregate(storage, query, ["visits"])
    await storage.build_rollups(int(NOW.timestamp()))
    await _execute(storage, "UPDATE rollups SET visits = visits + 1000 WHERE dimension = ''")
    after = await reports.aggregate(storage, query, ["visits"])
    # The week of 23 to 29 March is read as one row; the seven other days, a row each.
    assert after["visits"] == before["visits"] + (1 + 7) * 1000
    series = await reports.timeseries(storage, query, ["visits"])
    assert sum(day["visits"] for day in series) == before["visits"] + 14 * 1000
    # A goal that is a custom event's name reads that name's rows.
    signup = await reports.breakdown(storage, query, "event:goal", ["visitors"], GOALS[:1])
    await _execute(
        storage,
        "UPDATE rollups SET visitors = visitors + 1000"
        " WHERE dimension = 'event:name' AND value = 'Signup'",
    )
    more = await reports.breakdown(storage, query, "event:goal", ["visitors"], GOALS[:1])
    assert more[0]["visitors"] == signup[0]["visitors"] + (1 + 7) * 1000
    # The last 7 and 30 days are each one row a value, summed at the build.
    for days in (7, 30):
        span = Query.for_period(site, f"{days}d", NOW)
        before = await reports.aggregate(storage, span, ["visits"])
        await _execute(
            storage,
            f"UPDATE rollups SET visits = visits + 1 WHERE day = 'S{days}:2026-04-02'"
            " AND dimension = ''",
        )
        assert (await reports.aggregate(storage, span, ["visits"]))["visits"] == before[
            "visits"
        ] + 1

    dutch = query.with_filters(*parse_v1("visit:country==NL"))
    before = await reports.aggregate(storage, dutch, ["visits"])
    await _execute(storage, "UPDATE rollups SET visits = visits + 1000 WHERE value = 'NL'")
    days = await _rows(
        storage,
        "SELECT day FROM rollups WHERE value = 'NL' AND day NOT LIKE 'S%'"  # 7 and 30 days
        " AND day NOT BETWEEN '2026-03-23' AND '2026-03-29'",  # read as their week's row
    )
    after = await reports.aggregate(storage, dutch, ["visits"])
    assert after["visits"] == before["visits"] + len(days) * 1000 > 7_000


async def test_filter_sets_asked_for_are_summed_as_segments(storage: Storage) -> None:
    site = await add_site(storage, "shop.example", ZONE)
    await write(storage, draw_hits(24, 200, FIRST, NOW - timedelta(hours=1)))
    now = int(NOW.timestamp())
    assert await storage.build_rollups(now) == 14 + 1
    query = queries(site)[0].with_filters(*parse_v1("visit:city~dam;visit:country==NL|DE"))
    before = await reports.breakdown(storage, query, "visit:browser", ["visits"])
    # Asked for once, and summed at the next build; the same set in another order is the same.
    assert await _rows(storage, "SELECT * FROM segments") == []
    assert await storage.build_rollups(now) == 14 + 1 + 1
    [segment] = await _rows(storage, "SELECT id, filters FROM segments")
    assert json.loads(segment["filters"]) == [
        ["visit:city", "contains", ["dam"]], ["visit:country", "is", ["DE", "NL"]]
    ]  # fmt: skip
    await _execute(
        storage,
        f"UPDATE rollups SET visits = visits + 1000 WHERE segment = {segment['id']}"
        " AND dimension = 'visit:browser' AND day NOT LIKE 'S%'",
    )
    again = queries(site)[0].with_filters(*parse_v1("visit:country==DE|NL;visit:city~dam"))
    after = await reports.breakdown(storage, again, "visit:browser", ["visits"])
    read = await _rows(
        storage,
        f"SELECT value, COUNT(*) AS n FROM rollups WHERE segment = {segment['id']}"
        " AND dimension = 'visit:browser' AND day NOT LIKE 'S%'"
        " AND day NOT BETWEEN '2026-03-23' AND '2026-03-29' GROUP BY value",  # their week's
    )
    added = {row["value"]: row["n"] * 1000 for row in read}
    assert {r["value"]: r["visits"] - added[r["value"]] for r in after} == {
        r["value"]: r["visits"] for r in before
    }
    # Asked for in the last 30 days, it stays; then it is dropped, with its sums.
    assert await storage.build_rollups(now) == 1 + 1  # today, for the site and the segment
    await _execute(storage, "UPDATE segments SET asked_at = asked_at - 31 * 86400")
    await storage.build_rollups(now)
    for table in ("segments", "rollup_days WHERE segment != 0", "rollups WHERE segment != 0"):
        assert await _rows(storage, f"SELECT 1 FROM {table}") == []
    assert await reports.breakdown(storage, again, "visit:browser", ["visits"]) == before


async def test_a_segment_is_summed_newest_day_first_and_can_stop_between_days(
    storage: Storage,
) -> None:
    from server.storage.sqlite_rollups import build_segments, connect, note_asked, segment_key

    site = await add_site(storage, "shop.example", ZONE)
    await write(storage, draw_hits(26, 200, FIRST, NOW - timedelta(hours=1)))
    await storage.build_rollups(int(NOW.timestamp()))
    dutch = queries(site)[0].with_filters(*parse_v1("visit:country==NL"))
    raw = await reports.breakdown(storage, dutch, "visit:browser", ["visitors", "pageviews"])
    conn = connect(str(storage.path))  # type: ignore[attr-defined]
    try:
        key = segment_key(parse_v1("visit:country==NL"))
        assert key is not None
        note_asked(conn, [(site.id, key, int(datetime.now().timestamp()))])
        days: list[int] = []

        def after_three() -> bool:  # as a build's time budget runs out: asked once a day,
            days.append(1)  # and once before the segment
            return len(days) > 1 + 3

        clock = int(datetime.now().timestamp())
        assert build_segments(conn, site, int(NOW.timestamp()), clock, after_three) == 3
        summed = [row[0] for row in conn.execute("SELECT day FROM rollup_days WHERE segment > 0")]
        # The last 7 and 30 days of a new segment are what a dashboard asks first.
        assert sorted(d for d in summed if d < "A") == ["2026-03-31", "2026-04-01", "2026-04-02"]
        # A segment that has not reached the site's first day does not answer for it.
        assert (
            await reports.breakdown(storage, dutch, "visit:browser", ["visitors", "pageviews"])
            == raw
        )
        # The next build goes on where this one stopped: 11 days, today again, the week.
        assert build_segments(conn, site, int(NOW.timestamp()), clock) == 11 + 1 + 1
        await _execute(storage, "UPDATE rollups SET pageviews = pageviews + 1 WHERE segment > 0")
        assert (
            await reports.breakdown(storage, dutch, "visit:browser", ["visitors", "pageviews"])
            != raw
        )
    finally:
        conn.close()


async def test_a_new_time_zone_is_read_raw_until_rebuilt(storage: Storage) -> None:
    site = await add_site(storage, "shop.example", ZONE)
    await write(storage, draw_hits(19, 300, FIRST, NOW - timedelta(hours=1)))
    await storage.build_rollups(int(NOW.timestamp()))
    await _execute(storage, "UPDATE sites SET timezone = 'Asia/Kathmandu'")
    moved = (await storage.sites())[0]
    raw = await answers(storage, moved)
    assert not differences(raw, await answers(storage, moved))
    assert await storage.build_rollups(int(NOW.timestamp())) == (14 + 1) * (1 + len(SEGMENTS) + 3)
    days = await _rows(storage, "SELECT DISTINCT timezone FROM rollup_days")
    assert days == [{"timezone": "Asia/Kathmandu"}]
    assert not differences(raw, await answers(storage, moved))
    assert site.timezone == ZONE


async def test_final_days_are_not_built_again(storage: Storage) -> None:
    await add_site(storage, "shop.example", ZONE)
    await write(storage, draw_hits(20, 300, FIRST, NOW - timedelta(hours=1)))
    now = int(NOW.timestamp())
    assert await storage.build_rollups(now) == 14 + 1
    # The writer closes visits 26 hours after their last hit (by the time of the data, here
    # 14:00 UTC on 2 April): days whose visits are all closed are final; yesterday and today
    # are summed again at each build.
    final = await _rows(
        storage, "SELECT day FROM rollup_days WHERE final = 0 AND day < 'A' ORDER BY day"
    )
    assert [row["day"] for row in final] == ["2026-04-01", "2026-04-02"]
    # Today is summed again; yesterday only once one of its visits has taken a hit.
    assert await storage.build_rollups(now + 60) == 1
    [visit] = await _rows(
        storage,
        # A consented visitor's last visit, started on 1 April (local): the one it joins.
        "SELECT visitor_id, exit_page FROM visits AS v WHERE visitor_id >= 1000000000000"
        f" AND started >= {int(datetime(2026, 3, 31, 22, tzinfo=UTC).timestamp())}"
        f" AND started < {int(datetime(2026, 4, 1, 22, tzinfo=UTC).timestamp())}"
        " AND NOT EXISTS (SELECT 1 FROM visits AS w WHERE w.visitor_id = v.visitor_id"
        " AND w.started > v.started) ORDER BY started DESC LIMIT 1",
    )
    time_on_page = Event(
        1, now + 120, visit["visitor_id"], None, "engagement", "shop.example",
        visit["exit_page"], None, None, None, None, None, None, None, *CLIENTS[0], None, None,
        None, None, None, None, False, 90, 60_000, True,
    )  # fmt: skip
    await write(storage, [time_on_page])
    assert await storage.build_rollups(now + 600) == 2
    assert await storage.build_rollups(now + 900) == 1
    # Days summed by an older Zeef (another VERSION) are summed again, final or not.
    await _execute(storage, "UPDATE rollup_days SET version = 0, final = 1")
    assert await storage.build_rollups(now + 120) == 14 + 1


async def _execute(storage: Storage, sql: str) -> None:
    import sqlite3

    conn = sqlite3.connect(storage.path)  # type: ignore[attr-defined]
    with conn:
        conn.execute(sql)
    conn.close()


async def _rows(storage: Storage, sql: str) -> list[dict[str, Any]]:
    import sqlite3

    conn = sqlite3.connect(storage.path)  # type: ignore[attr-defined]
    conn.row_factory = sqlite3.Row
    rows = [dict(row) for row in conn.execute(sql)]
    conn.close()
    return rows


async def differences_from_raw_rows(storage: Storage, site: Site) -> list[str]:
    """What reports answer now against what raw rows alone answer (rollups put aside)."""
    now = await answers(storage, site)
    await _execute(storage, "DELETE FROM rollup_days")
    return differences(await answers(storage, site), now)


async def test_the_server_keeps_rollups_current_by_itself(settings: Any, clock: Any) -> None:
    from tests.conftest import pageview, start

    every = replace(settings, rollup_interval=1)
    clock.now = datetime(2026, 3, 13, 12, 0, tzinfo=UTC)
    # aclosing: a failed assertion still ends the app (its lifespan, its connections).
    async with contextlib.aclosing(start(every, clock)) as running:
        async for zeef in running:
            await zeef.add_site("example.com")
            await zeef.settled()
            for ip in ("198.51.100.7", "198.51.100.8"):
                assert (await zeef.send(pageview(), ip=ip)).status_code == 202
            clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
            assert (await zeef.send(pageview("https://example.com/b"))).status_code == 202
            await zeef.flush()
            storage = zeef.app.state.storage
            site = (await storage.sites())[0]
            query = Query.for_period(site, "7d", clock())
            raw = await reports.aggregate(storage, query, ["visitors", "pageviews"])
            assert raw == {"visitors": 3, "pageviews": 3}
            clock.now += timedelta(minutes=6)
            summed = int((clock.now - timedelta(seconds=MARGIN)).timestamp())
            for _ in range(100):
                days = zeef.rows(
                    f"SELECT day FROM rollup_days WHERE day < 'A'"
                    f" AND (covered = end OR covered >= {summed})"
                )
                if len(days) == 2:
                    break
                await asyncio.sleep(0.05)
            # Yesterday whole; today up to the build.
            assert sorted(d["day"] for d in days) == ["2026-03-13", "2026-03-14"]
            assert await reports.aggregate(storage, query, ["visitors", "pageviews"]) == raw
            totals = "SELECT visitors FROM rollups WHERE dimension = '' AND day < 'A' ORDER BY day"
            assert zeef.rows(totals) == [{"visitors": 2}, {"visitors": 1}]


async def test_a_new_filter_set_is_summed_without_waiting_for_the_interval(
    settings: Any, clock: Any
) -> None:
    from tests.conftest import pageview, start

    hourly = replace(settings, rollup_interval=3600)
    clock.now = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
    async with contextlib.aclosing(start(hourly, clock)) as running:
        async for zeef in running:
            await zeef.add_site("example.com")
            await zeef.settled()
            assert (await zeef.send(pageview())).status_code == 202
            await zeef.flush()
            clock.now += timedelta(minutes=10)
            storage = zeef.app.state.storage
            site = (await storage.sites())[0]
            chrome = Query.for_period(site, "7d", clock()).with_filters(
                *parse_v1("visit:browser==Chrome")
            )
            assert await reports.breakdown(storage, chrome, "event:page", ["visitors"]) == [
                {"value": "/", "visitors": 1}
            ]
            for _ in range(200):
                summed = zeef.rows("SELECT day FROM rollup_days WHERE segment != 0 AND day < 'A'")
                if summed:
                    break
                await asyncio.sleep(0.05)
            # Summed at once, an hour before the interval would have come round.
            assert summed == [{"day": "2026-03-14"}]


async def test_one_process_builds_at_a_time(tmp_path: Path) -> None:
    from server.storage.sqlite_rollups import connect, release_lease, take_lease

    first, second = connect(str(tmp_path / "z.sqlite3")), connect(str(tmp_path / "z.sqlite3"))
    first.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    assert take_lease(first, 1000)
    assert not take_lease(second, 1001)
    assert take_lease(second, 1000 + 15 * 60)  # a builder that died lets go in time
    release_lease(second)
    assert take_lease(first, 2000)
    assert take_lease(first, 2000 + 14 * 60, renew=True)  # renewed between two days
    assert not take_lease(second, 2000 + 20 * 60)
    first.close()
    second.close()

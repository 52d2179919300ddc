"""Visits, visitors and the daily salts, with the clock moved by hand."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from server import reports

from .conftest import Clock, Zeef, pageview


@pytest.fixture(params=[False, True], ids=["first-day", "yesterdays-salt-live"])
async def midnight(request: pytest.FixtureRequest, zeef: Zeef, clock: Clock) -> Zeef:
    """Zeef, and with the second param yesterday's salt too, as in production: a test's first
    day has none, so its evening hits have no previous hash and take other code paths."""
    if request.param:
        yesterday = clock().date() - timedelta(days=1)
        await zeef.app.state.storage.load_salts(
            yesterday.isoformat(), (yesterday - timedelta(days=1)).isoformat(),
            secrets.token_bytes(32),
        )  # fmt: skip
    return zeef


async def figures(zeef: Zeef, clock: Clock, period: str = "all") -> dict[str, object]:
    site = next(s for s in await zeef.app.state.storage.sites() if s.domain == "example.com")
    query = reports.Query.for_period(site, period, clock())
    return await reports.totals(zeef.app.state.storage, query)


async def test_gaps_under_30_minutes_make_one_visit(zeef: Zeef, clock: Clock) -> None:
    for minutes in (0, 10, 29):  # 0:00, 0:10, 0:39 - each gap under 30 minutes
        clock.advance(minutes=minutes)
        await zeef.send(pageview())
    clock.advance(minutes=30)  # a gap of exactly 30 minutes opens a new visit
    await zeef.send(pageview())
    await zeef.send(pageview(), ip="203.0.113.7")
    await zeef.flush()
    got = await figures(zeef, clock)
    assert (got["visitors"], got["visits"], got["pageviews"]) == (2, 3, 5)
    # Visit 1: three pages over 39 minutes; visits 2 and 3: one page each, so bounces.
    assert got["bounce_rate"] == 67
    assert got["visit_duration"] == round(39 * 60 / 3)


async def test_custom_events_count_separately_and_end_a_bounce(zeef: Zeef, clock: Clock) -> None:
    await zeef.send(pageview())
    await zeef.send({"n": "Signup", "u": "https://example.com/", "d": "example.com"})
    await zeef.send({"n": "Scrolled", "u": "https://example.com/", "d": "example.com", "i": False},
                    ip="203.0.113.8")  # fmt: skip
    await zeef.send(pageview(), ip="203.0.113.8")
    await zeef.flush()
    got = await figures(zeef, clock)
    assert (got["pageviews"], got["events"], got["visits"]) == (2, 2, 2)
    assert got["bounce_rate"] == 50  # the non-interactive event does not count as engagement


async def test_a_visit_across_midnight_is_not_split(midnight: Zeef, clock: Clock) -> None:
    clock.now = clock.now.replace(hour=23, minute=50)
    await midnight.send(pageview())
    await midnight.flush()
    clock.advance(minutes=15)  # 00:05 the next day: a new salt, yet the same visit
    await midnight.send(pageview())
    await midnight.flush()
    clock.advance(minutes=20)
    await midnight.send(pageview())
    await midnight.flush()
    rows = midnight.rows()
    assert len({r["visitor_id"] for r in rows}) == 1
    got = await figures(midnight, clock)
    assert (got["visitors"], got["visits"], got["pageviews"]) == (1, 1, 3)


async def test_next_day_the_same_visitor_has_an_unlinkable_hash(zeef: Zeef, clock: Clock) -> None:
    await zeef.send(pageview())
    await zeef.flush()
    clock.advance(days=1)
    await zeef.send(pageview())
    await zeef.flush()
    first, second = zeef.rows()
    assert first["visitor_id"] != second["visitor_id"]


async def test_only_two_salts_are_ever_kept(zeef: Zeef, clock: Clock) -> None:
    for _ in range(4):
        await zeef.send(pageview())
        clock.advance(days=1)
    await zeef.send(pageview())
    days = [r["day"] for r in zeef.rows("SELECT day FROM salts ORDER BY day")]
    assert days == ["2026-03-17", "2026-03-18"]


async def test_period_day_is_the_sites_local_day(zeef: Zeef, clock: Clock) -> None:
    await zeef.add_site("amsterdam.example", timezone="Europe/Amsterdam")
    clock.now = clock.now.replace(hour=23, minute=30)  # 00:30 the next day in Amsterdam
    await zeef.send(pageview("https://amsterdam.example/", d="amsterdam.example"))
    await zeef.flush()
    storage = zeef.app.state.storage
    site = next(s for s in await storage.sites() if s.domain == "amsterdam.example")
    today = await reports.totals(storage, reports.Query.for_period(site, "day", clock()))
    assert (today["from"], today["pageviews"]) == ("2026-03-15", 1)
    clock.advance(hours=1)
    utc_site = next(s for s in await storage.sites() if s.domain == "example.com")
    assert (await reports.totals(storage, reports.Query.for_period(utc_site, "7d", clock())))[
        "from"
    ] == "2026-03-09"


async def test_the_same_visitor_on_two_sites_gets_two_hashes(zeef: Zeef, clock: Clock) -> None:
    await zeef.add_site("other.example")
    await zeef.send(pageview())
    await zeef.send(pageview("https://other.example/", d="other.example"))
    await zeef.flush()
    first, second = zeef.rows()
    assert first["visitor_id"] != second["visitor_id"]


async def test_a_visit_carried_past_midnight_goes_on_until_a_gap(
    midnight: Zeef, clock: Clock
) -> None:
    clock.now = clock.now.replace(hour=23, minute=50)
    # 23:50, then 00:05, 00:25, 00:45 and 01:10 the next day: gaps under 30 minutes, so the
    # visit goes on under yesterday's hash long after the first half hour of the new day.
    for minutes in (0, 15, 20, 20, 25):
        clock.advance(minutes=minutes)
        await midnight.send(pageview())
        await midnight.flush()
    clock.advance(minutes=31)  # 01:41: a gap, so a new visit under today's hash
    await midnight.send(pageview())
    await midnight.flush()
    ids = [r["visitor_id"] for r in midnight.rows()]
    assert len(set(ids[:5])) == 1 and ids[5] != ids[0]
    assert [r["carried"] for r in midnight.rows()] == [0, 1, 1, 1, 1, 0]


async def test_a_visit_ended_before_midnight_is_not_carried(midnight: Zeef, clock: Clock) -> None:
    clock.now = clock.now.replace(hour=23, minute=20)
    await midnight.send(pageview())
    await midnight.flush()
    clock.advance(minutes=50)  # 00:10 the next day: 50 minutes later, a new visit
    await midnight.send(pageview())
    await midnight.flush()
    first, second = midnight.rows()
    assert first["visitor_id"] != second["visitor_id"]
    assert second["carried"] == 0


async def test_a_visit_across_midnight_inside_one_batch_is_not_split(
    midnight: Zeef, clock: Clock
) -> None:
    clock.now = clock.now.replace(hour=23, minute=59, second=50)
    await midnight.send(pageview())
    clock.advance(seconds=20)  # 00:00:10: a new salt, and nothing flushed in between
    await midnight.send(pageview())
    clock.advance(minutes=10)
    await midnight.send(pageview())
    await midnight.send(pageview(), ip="203.0.113.9")  # someone else: not carried
    await midnight.flush()
    rows = midnight.rows()
    assert len({r["visitor_id"] for r in rows[:3]}) == 1
    assert [r["carried"] for r in rows] == [0, 1, 1, 0]
    got = await figures(midnight, clock)
    assert (got["visitors"], got["visits"]) == (2, 2)


async def test_a_gap_of_exactly_30_minutes_across_midnight_starts_a_new_visit(
    midnight: Zeef, clock: Clock
) -> None:
    clock.now = clock.now.replace(hour=23, minute=45)
    await midnight.send(pageview())
    await midnight.flush()
    clock.advance(minutes=30)  # 00:15, exactly the gap: a new visit, as within a day
    await midnight.send(pageview())
    await midnight.flush()
    first, second = midnight.rows()
    assert first["visitor_id"] != second["visitor_id"]

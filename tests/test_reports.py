"""The report engine against hand-computed figures: hits in through HTTP, figures out.

Backend-neutral: nothing here reads a table, so the ClickHouse backend runs the same fixtures.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest

from server import reports
from server.reports import Filter, FilterError, Query, QueryError
from server.reports.filters import parse_v1

from .conftest import FIREFOX, IPHONE, A, B, C, Clock, Zeef, pageview


async def site(zeef: Zeef, domain: str = "example.com") -> Any:
    return next(s for s in await zeef.app.state.storage.sites() if s.domain == domain)


METRICS = ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate",
           "visit_duration"]  # fmt: skip


async def aggregate(zeef: Zeef, clock: Clock, filters: str = "", period: str = "day") -> Any:
    query = Query.for_period(await site(zeef), period, clock(), filters=parse_v1(filters))
    return await reports.aggregate(zeef.app.state.storage, query, METRICS)


async def test_aggregate_without_filters(shop: Zeef, clock: Clock) -> None:
    got = await aggregate(shop, clock)
    assert got == {
        "visitors": 3,
        "visits": 4,
        "pageviews": 5,
        "events": 6,  # as Plausible's: pageviews and custom events together
        "views_per_visit": 1.25,
        "bounce_rate": 75,
        "visit_duration": 150,  # 600 s over four visits
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # A visit dimension filters visits.
        (
            "visit:browser==Firefox",
            {"visitors": 1, "visits": 1, "pageviews": 1, "bounce_rate": 100},
        ),
        ("visit:browser!=Firefox", {"visitors": 2, "visits": 3, "pageviews": 4, "bounce_rate": 67}),
        # An event dimension keeps the visits with a matching hit; pageviews and events are the
        # matching hits; bounce rate is that of the visits that entered on the page (B only).
        (
            "event:page==/pricing",
            {"visitors": 2, "visits": 2, "pageviews": 2, "events": 3, "bounce_rate": 100},
        ),
        ("event:page==/|/pricing", {"visitors": 3, "visits": 3, "pageviews": 4, "bounce_rate": 67}),
        ("event:page==/blog/*", {"visitors": 1, "visits": 1, "pageviews": 1}),
        ("event:page~PRIC", {"visitors": 2, "visits": 2, "pageviews": 2}),
        ("event:page!~pric", {"visitors": 2, "visits": 3, "pageviews": 3}),
        ("event:name==Signup", {"visitors": 1, "visits": 1, "pageviews": 0, "events": 1}),
        # Both kinds at once: AND.
        (
            "event:page==/pricing;visit:browser==Chrome",
            {"visitors": 1, "visits": 1, "pageviews": 1},
        ),
        ("visit:entry_page==/", {"visitors": 2, "visits": 2, "pageviews": 3, "bounce_rate": 50}),
        ("visit:exit_page==/pricing", {"visitors": 2, "visits": 2}),
        ("visit:device==Mobile", {"visitors": 1, "visits": 2, "bounce_rate": 100}),
        ("visit:country==XX", {"visitors": 0, "visits": 0, "pageviews": 0, "bounce_rate": 0}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_filters(shop: Zeef, clock: Clock, filters: str, expected: dict[str, int]) -> None:
    got = await aggregate(shop, clock, filters)
    assert {k: got[k] for k in expected} == expected


async def test_breakdown_by_page(shop: Zeef, clock: Clock) -> None:
    query = Query.for_period(await site(shop), "day", clock())
    rows = await reports.breakdown(
        shop.app.state.storage, query, "event:page", ["visitors", "pageviews", "bounce_rate"]
    )
    assert rows == [
        # A page's bounce rate: of the visits that entered on it.
        {"value": "/", "visitors": 2, "pageviews": 2, "bounce_rate": 50},
        {"value": "/pricing", "visitors": 2, "pageviews": 2, "bounce_rate": 100},
        {"value": "/blog/a", "visitors": 1, "pageviews": 1, "bounce_rate": 100},
    ]


async def test_breakdown_by_visit_dimension_and_by_event_name(shop: Zeef, clock: Clock) -> None:
    query = Query.for_period(await site(shop), "day", clock())
    storage = shop.app.state.storage
    browsers = await reports.breakdown(storage, query, "visit:browser", ["visitors", "visits"])
    assert browsers == [
        {"value": "Chrome", "visitors": 1, "visits": 1},
        {"value": "Firefox", "visitors": 1, "visits": 1},
        {"value": "Mobile Safari", "visitors": 1, "visits": 2},
    ]
    names = await reports.breakdown(storage, query, "event:name", ["visitors", "events"])
    assert names == [
        {"value": "pageview", "visitors": 3, "events": 5},
        {"value": "Signup", "visitors": 1, "events": 1},
    ]
    entry = await reports.breakdown(
        storage, query.with_filters(Filter("visit:browser", "is", ("Mobile Safari",))),
        "visit:entry_page", ["visits", "bounce_rate"],
    )  # fmt: skip
    assert entry == [
        {"value": "/", "visits": 1, "bounce_rate": 100},
        {"value": "/blog/a", "visits": 1, "bounce_rate": 100},
    ]


async def test_timeseries_has_every_bucket(shop: Zeef, clock: Clock) -> None:
    storage = shop.app.state.storage
    week = Query.for_period(await site(shop), "7d", clock())
    days = await reports.timeseries(storage, week, ["visitors", "pageviews"])
    assert [d["date"] for d in days] == [f"2026-03-{n:02d}" for n in range(8, 15)]
    assert days[-1] == {"date": "2026-03-14", "visitors": 3, "pageviews": 5}
    assert all(d["visitors"] == 0 for d in days[:-1])
    today = Query.for_period(await site(shop), "day", clock())
    hours = await reports.timeseries(storage, today, ["visitors", "visits"])
    assert len(hours) == 24 and hours[0]["date"] == "2026-03-14 00:00:00"
    assert hours[10] == {"date": "2026-03-14 10:00:00", "visitors": 3, "visits": 3}
    assert hours[11] == {"date": "2026-03-14 11:00:00", "visitors": 1, "visits": 1}
    # With an event filter, the matching hits at their own time.
    signup = today.with_filters(Filter("event:name", "is", ("Signup",)))
    hours = await reports.timeseries(storage, signup, ["visitors", "events"])
    assert hours[10] == {"date": "2026-03-14 10:00:00", "visitors": 1, "events": 1}
    # The days of a period add up to its total.
    total = await reports.aggregate(storage, week, ["visits", "pageviews"])
    by_day = await reports.timeseries(storage, week, ["visits", "pageviews"])
    assert sum(d["visits"] for d in by_day) == total["visits"]
    assert sum(d["pageviews"] for d in by_day) == total["pageviews"]


@pytest.mark.parametrize(
    ("zone", "hit", "expected_bucket", "buckets"),
    [
        # 29 March 2026: Amsterdam moves from +1 to +2 at 01:00 UTC; the day has 23 hours.
        ("Europe/Amsterdam", "2026-03-29T01:30", "2026-03-29 03:00:00", 23),
        # 25 October 2026: back to +1; the day has 25 hours, two of them named 02:00.
        ("Europe/Amsterdam", "2026-10-25T00:30", "2026-10-25 02:00:00", 24),
        # +5:45, all year: hours start at a quarter to.
        ("Asia/Kathmandu", "2026-03-14T10:00", "2026-03-14 15:00:00", 24),
        ("Australia/Adelaide", "2026-03-14T10:00", "2026-03-14 20:00:00", 24),
    ],
    ids=["amsterdam-spring", "amsterdam-autumn", "kathmandu", "adelaide"],
)
async def test_hour_buckets_in_the_sites_time_zone(
    zeef: Zeef, clock: Clock, zone: str, hit: str, expected_bucket: str, buckets: int
) -> None:
    from datetime import UTC, datetime

    await zeef.add_site("zoned.example", timezone=zone)
    clock.now = datetime.fromisoformat(hit).replace(tzinfo=UTC)
    await zeef.send(pageview("https://zoned.example/", d="zoned.example"))
    await zeef.flush()
    query = Query.for_period(await site(zeef, "zoned.example"), "day", clock())
    hours = await reports.timeseries(zeef.app.state.storage, query, ["visitors"])
    # The autumn day has 25 hours, but two are named 02:00: 24 labels, both hours in one.
    assert len(hours) == buckets
    assert [h["date"] for h in hours if h["visitors"]] == [expected_bucket]


async def test_a_half_hour_zone_puts_a_late_hit_on_the_next_local_day(
    zeef: Zeef, clock: Clock
) -> None:
    from datetime import UTC, datetime

    await zeef.add_site("india.example", timezone="Asia/Kolkata")  # +5:30
    clock.now = datetime(2026, 3, 13, 18, 45, tzinfo=UTC)  # 00:15 on the 14th in India
    await zeef.send(pageview("https://india.example/", d="india.example"))
    await zeef.flush()
    query = Query.for_period(await site(zeef, "india.example"), "7d", clock())
    days = await reports.timeseries(zeef.app.state.storage, query, ["visitors"])
    assert [d["date"] for d in days if d["visitors"]] == ["2026-03-14"]


def test_periods_as_plausible_names_them(clock: Clock) -> None:
    from server.events import Site

    s = Site(1, "example.com", "UTC", created_at=0)
    now = clock()  # Saturday 14 March 2026

    def days(period: str, **kw: Any) -> tuple[date, date]:
        q = Query.for_period(s, period, now, **kw)
        return q.first_day, q.last_day

    assert days("day") == (date(2026, 3, 14), date(2026, 3, 14))
    assert days("7d") == (date(2026, 3, 8), date(2026, 3, 14))
    assert days("28d") == (date(2026, 2, 15), date(2026, 3, 14))
    assert days("month") == (date(2026, 3, 1), date(2026, 3, 31))
    assert days("6mo") == (date(2025, 10, 1), date(2026, 3, 31))
    assert days("12mo") == (date(2025, 4, 1), date(2026, 3, 31))
    assert days("year") == (date(2026, 1, 1), date(2026, 12, 31))
    assert days("day", anchor=date(2025, 12, 31)) == (date(2025, 12, 31), date(2025, 12, 31))
    assert days("custom", first=date(2026, 1, 5), last=date(2026, 1, 9)) == (
        date(2026, 1, 5), date(2026, 1, 9),
    )  # fmt: skip
    month = Query.for_period(s, "month", now)
    assert month.bucket == "day" and Query.for_period(s, "12mo", now).bucket == "month"
    before = month.compared("previous_period").comparison
    assert before and (before.first_day, before.last_day) == (date(2026, 2, 1), date(2026, 2, 28))
    week = Query.for_period(s, "7d", now).compared("year_over_year").comparison
    assert week and (week.first_day, week.last_day) == (date(2025, 3, 8), date(2025, 3, 14))
    with pytest.raises(QueryError):
        Query.for_period(s, "fortnight", now)
    with pytest.raises(QueryError):
        Query.for_period(s, "custom", now, first=date(2026, 2, 1), last=date(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("visit:country==NL", [("visit:country", "is", ("NL",))]),
        ("event:page==/a|/b", [("event:page", "is", ("/a", "/b"))]),
        ("event:page==/blog/*", [("event:page", "matches", ("/blog/*",))]),
        (
            "event:page!=/a;visit:browser~fire",
            [("event:page", "is_not", ("/a",)), ("visit:browser", "contains", ("fire",))],
        ),
        ("event:props:plan==pro\\|plus", [("event:props:plan", "is", ("pro|plus",))]),
        ("visit:country_name==Netherlands", [("visit:country", "is", ("Netherlands",))]),
    ],
    ids=["is", "or", "wildcard", "and", "escaped-bar", "alias"],
)
def test_v1_filter_syntax(text: str, expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    assert [(f.dimension, f.op, f.values) for f in parse_v1(text)] == expected


@pytest.mark.parametrize(
    "text", ["visit:planet==Mars", "country==NL", "event:page==", "visit:screen==Mobile"],
    ids=["unknown-dimension", "no-prefix", "empty-value", "not-recorded"],
)  # fmt: skip
def test_bad_filters_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(FilterError):
        parse_v1(text)


@pytest.mark.parametrize(
    ("pattern", "value", "hit"),
    # As Plausible matches today: `*` crosses slashes too.
    [("/blog/*", "/blog/a", True), ("/blog/*", "/blog/a/b", True), ("/blog/*", "/blog", False),
     ("/blog/**", "/blog/a/b", True), ("/Blog/*", "/blog/a", False), ("/a?", "/ab", False),
     ("/thanks*", "/thanks-you", True), ("/*/pricing", "/en/pricing", True),
     ("/a.b", "/axb", False)],
)  # fmt: skip
def test_wildcards(pattern: str, value: str, hit: bool) -> None:
    assert Filter("event:page", "matches", (pattern,)).accepts(value) is hit


async def test_zeef_stats_reads_the_same_engine(shop: Zeef, tmp_path: Any) -> None:
    from .test_cli import zeef as cli

    day = ("--from", "2026-03-14", "--to", "2026-03-14")
    folder = shop.settings.database.parent
    plain = json.loads(cli(folder, "stats", "example.com", *day, "--json").stdout)
    # The keys scripts read are kept; `events` here is custom events only, as it always was.
    assert {k: plain[k] for k in ("visitors", "visits", "pageviews", "events")} == {
        "visitors": 3, "visits": 4, "pageviews": 5, "events": 1}  # fmt: skip
    filtered = cli(folder, "stats", "example.com", *day, "--filter", "event:page==/pricing",
                   "--json")  # fmt: skip
    got = json.loads(filtered.stdout)
    assert (got["visitors"], got["bounce_rate"], got["filters"]) == (
        2, 100, ["event:page==/pricing"])  # fmt: skip
    broken = cli(folder, "stats", "example.com", *day, "--breakdown", "event:page",
                 "--metrics", "visitors,pageviews", "--json")  # fmt: skip
    assert json.loads(broken.stdout)["results"][0] == {"value": "/", "visitors": 2, "pageviews": 2}
    table = cli(folder, "stats", "example.com", *day, "--breakdown", "visit:browser")
    assert "Mobile Safari" in table.stdout and table.returncode == 0
    compared = cli(folder, "stats", "example.com", *day, "--compare", "previous_period",
                   "--metrics", "visitors", "--json")  # fmt: skip
    got = json.loads(compared.stdout)
    assert (got["visitors"], got["comparison"]["visitors"], got["change"]["visitors"]) == (
        3,
        0,
        100,
    )
    bad = cli(folder, "stats", "example.com", "--filter", "visit:planet==Mars")
    assert bad.returncode == 1 and "unknown dimension" in bad.stderr


async def test_sources_and_channels(shop: Zeef, clock: Clock) -> None:
    storage = shop.app.state.storage
    query = Query.for_period(await site(shop), "day", clock())
    sources = await reports.breakdown(storage, query, "visit:source", ["visitors", "visits"])
    assert sources == [
        {"value": "Direct / None", "visitors": 2, "visits": 3},
        {"value": "Google", "visitors": 1, "visits": 1},
    ]
    channels = await reports.breakdown(storage, query, "visit:channel", ["visits"])
    assert channels == [{"value": "Direct", "visits": 3}, {"value": "Organic Search", "visits": 1}]
    google = query.with_filters(Filter("visit:source", "is", ("Google",)))
    assert (await reports.aggregate(storage, google, ["visitors"])) == {"visitors": 1}


async def test_goals_conversion_rates(shop: Zeef, clock: Clock) -> None:
    from server.goals import new_goal

    storage = shop.app.state.storage
    s = await site(shop)
    await storage.add_goal(new_goal(s.id, 0, event="Signup"))
    await storage.add_goal(new_goal(s.id, 0, page="/pric*"))
    goals = await storage.goals(s.id)
    query = Query.for_period(s, "day", clock())
    wanted = ["visitors", "events", "conversion_rate"]
    rows = await reports.breakdown(storage, query, "event:goal", wanted, goals)
    assert rows == [
        {"value": "Visit /pric*", "visitors": 2, "events": 2, "conversion_rate": 66.67},
        {"value": "Signup", "visitors": 1, "events": 1, "conversion_rate": 33.33},
    ]
    signup = query.with_filters(Filter("event:goal", "is", ("Signup",)))
    got = await reports.aggregate(storage, signup, ["visitors", "conversion_rate"], goals)
    assert got == {"visitors": 1, "conversion_rate": 33.33}
    wanted = ["visitors", "conversion_rate"]
    by_browser = await reports.breakdown(storage, signup, "visit:browser", wanted, goals)
    assert by_browser == [{"value": "Chrome", "visitors": 1, "conversion_rate": 100.0}]
    # Plausible's names for a row's rate and a row's share of the visitors.
    wanted = ["visitors", "group_conversion_rate", "percentage"]
    by_browser = await reports.breakdown(storage, signup, "visit:browser", wanted, goals)
    assert by_browser == [
        {"value": "Chrome", "visitors": 1, "group_conversion_rate": 100.0, "percentage": 100.0}
    ]
    shares = await reports.breakdown(storage, query, "event:page", ["percentage"], goals)
    assert shares == [{"value": "/", "percentage": 66.7}, {"value": "/pricing", "percentage": 66.7},
                      {"value": "/blog/a", "percentage": 33.3}]  # fmt: skip
    for per_row in ("percentage", "group_conversion_rate"):
        with pytest.raises(reports.metric.MetricError, match="needs a dimension"):
            await reports.aggregate(storage, signup, [per_row], goals)
    with pytest.raises(reports.metric.MetricError, match="needs a goal filter"):
        await reports.breakdown(storage, query, "visit:browser", ["group_conversion_rate"], goals)
    with pytest.raises(FilterError):
        await reports.aggregate(
            storage, query.with_filters(Filter("event:goal", "is", ("Nope",))), ["visitors"], goals
        )


async def test_realtime_by_minute(shop: Zeef, clock: Clock) -> None:
    # Now is 11:00, C's second visit. Two minutes later, A comes back on /pricing.
    clock.advance(minutes=2)
    await shop.send(pageview("https://example.com/pricing"), ip="81.2.69.142")
    await shop.flush()
    live = await reports.realtime(shop.app.state.storage, await site(shop), clock())
    assert live["visitors"] == 2  # C (2 minutes ago) and A (now)
    minutes = live["minutes"]
    assert len(minutes) == 30 and minutes[-1]["date"] == "2026-03-14 11:02:00"
    assert [(m["date"][-8:], m["visitors"]) for m in minutes if m["visitors"]] == [
        ("11:00:00", 1), ("11:02:00", 1)]  # fmt: skip


async def test_day_buckets_count_visitors_as_distinct_ids_do(zeef: Zeef, clock: Clock) -> None:
    """Days count visitors from visits.previous_started, not COUNT(DISTINCT): on random visits
    across Amsterdam's spring DST change, with consented visitors seen on several days and
    visits crossing midnight, every day agrees with the distinct visitor IDs of its visits."""
    import random
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    await zeef.add_site("ams.example", timezone="Europe/Amsterdam")
    draw = random.Random(15)
    hits = []
    for _ in range(300):
        at = datetime(2026, 3, 25, tzinfo=UTC) + timedelta(minutes=draw.randrange(7 * 24 * 60))
        who = draw.randrange(12)
        consent = {"c": f"consented-visitor-{who:04d}"} if who < 4 else {}
        hits.append((at, who, consent))
    for at, who, consent in sorted(hits, key=lambda h: h[0]):
        clock.now = at
        body = pageview("https://ams.example/", d="ams.example", **consent)
        await zeef.send(body, ip=f"203.{who}.113.7")
        await zeef.flush()
    s = await site(zeef, "ams.example")
    query = Query.for_period(s, "custom", clock(), first=date(2026, 3, 25), last=date(2026, 3, 31))
    days = await reports.timeseries(zeef.app.state.storage, query, ["visitors", "visits"])
    zone = ZoneInfo("Europe/Amsterdam")
    expected: dict[str, set[int]] = {}
    for row in zeef.rows(f"SELECT started, visitor_id FROM visits WHERE site_id = {s.id}"):
        day = datetime.fromtimestamp(row["started"], zone).date().isoformat()
        if day <= "2026-03-31":
            expected.setdefault(day, set()).add(row["visitor_id"])
    assert {d["date"]: d["visitors"] for d in days if d["visitors"]} == {
        day: len(ids) for day, ids in expected.items()
    }
    assert sum(d["visits"] for d in days) > sum(d["visitors"] for d in days)  # repeat visits


async def test_revenue_goals(shop: Zeef, clock: Clock) -> None:
    from server.goals import new_goal

    order = {"n": "Purchase", "u": "https://example.com/checkout", "d": "example.com"}
    await shop.send({**order, "revenue": {"amount": "19.99", "currency": "EUR"}}, ip=A)
    await shop.send({**order, "revenue": {"amount": "5.01", "currency": "EUR"}}, ip=B, ua=FIREFOX)
    await shop.send({**order, "revenue": {"amount": "7", "currency": "USD"}}, ip=C, ua=IPHONE)
    await shop.flush()
    storage = shop.app.state.storage
    s = await site(shop)
    await storage.add_goal(new_goal(s.id, 0, event="Purchase", currency="EUR"))
    goals = await storage.goals(s.id)
    query = Query.for_period(s, "day", clock(), filters=parse_v1("event:goal==Purchase"))
    got = await reports.aggregate(
        storage, query, ["visitors", "conversion_rate", "total_revenue", "average_revenue"], goals
    )
    # Three buyers of three visitors; only the euros count in a EUR goal.
    assert got == {
        "visitors": 3,
        "conversion_rate": 100.0,
        "total_revenue": {"value": 25.0, "currency": "EUR"},
        "average_revenue": {"value": 12.5, "currency": "EUR"},
    }

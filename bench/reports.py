"""Report-engine benchmark: how long each report of server/reports takes on N stored events.

    PYTHONPATH=. python bench/reports.py [--events 1000000] [--days 30] [--backend sqlite]
        [--repeat 5] [--keep PATH | --reuse PATH] [--raw] [--json]

Builds a realistic site through the storage's own write path, as bench/stats.py does (fixed
seed, placed relative to today, so anyone can rerun it): a few thousand pages with a Zipf-like
tail, referrers from search engines, social sites and blogs, direct visits and utm campaigns,
~40 countries (NL first), a mix of browsers, systems and devices, ~45 % bounces, engagement
hits (scroll depth, engaged ms) and custom events with props (Signup with a plan). `--keep`
keeps the database it built; `--reuse` times an existing one and builds nothing, so --days then
only picks the range timed (`--reuse X --days 7` against a 30-day build shows what a shorter
range costs on the same data).

Then it brings the rollups up to date, as the server does every few minutes, and says how long
that took (`--raw` forgets them instead, to time raw rows alone: the next run without it
sums every day again). Then it times every report over the last --days days, --repeat times
each, and prints p50/p95:
"unfiltered" (aggregate, a daily time series, a breakdown per dimension), "filtered" (country
and page filters) and "dashboard" (what one dashboard load asks at once, under asyncio.gather).
Beside them a baseline from the same run, `count(*)` of the events in the range through the
(site_id, ts) index, and each report's p50 as a multiple of it: the cheapest honest read of
those rows, so a report far above it is doing work the range does not call for. (It runs on
the stdlib sqlite3 module, without the thread hop through aiosqlite that the reports pay.)
p95 of 5 runs is close to the slowest: raise --repeat for a steadier tail.

Goals (the report-engine issue), at 10M events over 30 days: unfiltered p50 <= 25 ms,
filtered p50 <= 300 ms, a dashboard load <= 150 ms. Cost should grow with the days asked for
(pre-aggregated per day), not with the events stored. With --json the last line printed is
one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server import reports  # noqa: E402  (the repository root is on the path only now)
from server.events import Event, Site  # noqa: E402
from server.reports.filters import parse_v1  # noqa: E402
from server.sites import add_site  # noqa: E402
from server.storage import Storage, open_storage  # noqa: E402
from server.storage.sqlite_rollups import SEGMENT_BUDGET  # noqa: E402

DOMAIN = "bench.example"
BATCH = 2000  # the production flush size (ZEEF_FLUSH_SIZE)
SEED = 14

# -- the site ----------------------------------------------------------------------------------


def _zipf(items: Sequence[Any], s: float = 1.1) -> tuple[list[Any], list[float]]:
    """Items with cumulative weights 1/rank**s, for random.choices(cum_weights=...)."""
    return list(items), list(
        itertools.accumulate(1 / (rank**s) for rank in range(1, len(items) + 1))
    )


_HEAD = ["/", "/pricing", "/blog", "/docs", "/features", "/signup", "/about", "/contact"]
_TAIL = (
    [f"/blog/post-{n}" for n in range(900)]
    + [
        f"/docs/{section}/page-{n}"
        for section in ("api", "guide", "self-hosting")
        for n in range(500)
    ]
    + [f"/changelog/{n}" for n in range(300)]
    + [f"/integrations/{n}" for n in range(300)]
)
PAGES = _zipf(_HEAD + random.Random(SEED).sample(_TAIL, len(_TAIL)))  # ~3,000 paths
BLOGS = [f"blog{n}.example.org" for n in range(60)] + ["news.ycombinator.com", "reddit.com"]
# (weight, referrer host, referrer path, utm_source, utm_medium, utm_campaign); a host is
# stored without "www." (server/enrich.py), as are these.
Source = tuple[str | None, str | None, str | None, str | None, str | None]
SOURCES: list[tuple[float, Source]] = [
    (38, (None, None, None, None, None)),  # direct
    (30, ("google.com", "/", None, None, None)),
    (4, ("bing.com", "/", None, None, None)),
    (3, ("duckduckgo.com", "/", None, None, None)),
    (3, ("facebook.com", "/", None, None, None)),
    (3, ("linkedin.com", "/feed/", None, None, None)),
    (3, ("t.co", "/abc123", None, None, None)),
    (8, ("BLOG", "/some-post", None, None, None)),
    (3, (None, None, "newsletter", "email", "spring-launch")),
    (3, ("google.com", "/", "google", "cpc", "brand")),
    (2, ("facebook.com", "/", "facebook", "paid", "retargeting")),
]
SOURCE_CUM = list(itertools.accumulate(w for w, _ in SOURCES))
_OTHER_COUNTRIES = [
    "ES", "IT", "PL", "SE", "NO", "DK", "FI", "AT", "CH", "IE", "PT", "CZ", "HU", "RO", "GR",
    "TR", "UA", "IN", "JP", "KR", "CN", "AU", "NZ", "CA", "BR", "MX", "AR", "ZA", "NG", "EG",
    "IL", "SG", "ID", "TH",
]  # fmt: skip
# (code, weight, [(region, city), ...]): NL first, then a tail of ~40 countries.
COUNTRIES = [("NL", 40.0, [("NL-NH", "Amsterdam"), ("NL-ZH", "Rotterdam"),
                           ("NL-ZH", "The Hague"), ("NL-UT", "Utrecht"), ("NL-NB", "Eindhoven")]),
             ("DE", 10.0, [("DE-BE", "Berlin"), ("DE-BY", "Munich"), ("DE-HH", "Hamburg")]),
             ("US", 9.0, [("US-CA", "San Francisco"), ("US-NY", "New York"), ("US-TX", "Austin")]),
             ("BE", 6.0, [("BE-VAN", "Antwerp"), ("BE-BRU", "Brussels")]),
             ("GB", 5.0, [("GB-ENG", "London"), ("GB-SCT", "Edinburgh")]),
             ("FR", 4.0, [("FR-IDF", "Paris"), ("FR-ARA", "Lyon")])] + [
    (code, 1.0, [(f"{code}-01", f"{code} City")])
    for code in _OTHER_COUNTRIES
]  # fmt: skip
COUNTRY_CUM = list(itertools.accumulate(w for _, w, _ in COUNTRIES))
# (weight, (browser, version, os, os version, device))
CLIENTS = [  # families as ua-parser names them, devices as server/enrich.py classes them
    (30, ("Chrome", "131.0", "Windows", "10", "desktop")),
    (12, ("Chrome", "131.0", "Mac OS X", "10.15", "desktop")),
    (8, ("Firefox", "133.0", "Windows", "10", "desktop")),
    (4, ("Firefox", "133.0", "Linux", "", "desktop")),
    (8, ("Safari", "17.5", "Mac OS X", "10.15", "desktop")),
    (16, ("Mobile Safari", "17.5", "iOS", "17.5", "mobile")),
    (14, ("Chrome Mobile", "131.0", "Android", "14", "mobile")),
    (4, ("Edge", "131.0", "Windows", "10", "desktop")),
    (3, ("Mobile Safari", "17.5", "iOS", "17.5", "tablet")),
    (1, ("Samsung Internet", "26.0", "Android", "13", "mobile")),
]
CLIENT_CUM = list(itertools.accumulate(w for w, _ in CLIENTS))
PLANS = ["free", "free", "free", "starter", "business", "enterprise"]


def _pick(rng: random.Random, items: Sequence[Any], cum: Sequence[float]) -> Any:
    return items[bisect.bisect(cum, rng.random() * cum[-1])]


def hits(events: int, days: int, seed: int = SEED) -> Iterator[list[Event]]:
    """Batches of hits in (nearly) time order, day by day, about `events` in all."""
    rng = random.Random(seed)
    # ~5.6 hits a visit on average (pageviews, engagement hits, the odd custom event).
    visits_a_day = max(1, int(events / days / 5.6))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=days - 1)
    batch: list[Event] = []
    for day in range(days):
        returning: list[int] = []
        day_start = int((first_day + timedelta(days=day)).timestamp())
        # Only hits up to now on the last day: the end of today has not happened yet.
        day_length = min(86400, int(time.time()) - day_start - 60)
        day_hits: list[Event] = []
        for _ in range(visits_a_day):
            if returning and rng.random() < 0.25:
                visitor = rng.choice(returning)
            else:
                visitor = rng.getrandbits(62)
                returning.append(visitor)
            visit = _Visit(
                visitor,
                _pick(rng, [s for _, s in SOURCES], SOURCE_CUM),
                _pick(rng, COUNTRIES, COUNTRY_CUM),
                _pick(rng, [c for _, c in CLIENTS], CLIENT_CUM),
                rng,
            )
            ts = day_start + rng.randrange(max(1, day_length - 3600))
            # 45 % of visits see one page; the rest two to ten.
            pageviews = 1 if rng.random() < 0.45 else rng.choice((2, 2, 2, 3, 3, 4, 5, 6, 8, 10))
            bounced = pageviews == 1
            for page in range(pageviews):
                path = rng.choices(PAGES[0], cum_weights=PAGES[1])[0]
                day_hits.append(visit.hit(ts, "pageview", path))
                if not bounced and rng.random() < 0.06:
                    plan = rng.choice(PLANS)
                    day_hits.append(visit.hit(ts + 5, "Signup", path, {"plan": plan}))
                elif not bounced and rng.random() < 0.04:
                    day_hits.append(visit.hit(ts + 3, "Download", path, {"file": "zeef.tar.gz"}))
                stay = rng.randrange(3, 40) if bounced else rng.randrange(5, 400)
                if rng.random() < 0.85 or page == pageviews - 1:
                    day_hits.append(visit.hit(ts + stay, "engagement", path, engaged=stay))
                ts += stay + rng.randrange(1, 60)
        day_hits.sort(key=lambda e: e.ts)
        for event in day_hits:
            batch.append(event)
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


class _Visit:
    """What every hit of one visit shares: who, from where, on what."""

    def __init__(self, visitor: int, source: Source, country: Any, client: Any,
                 rng: random.Random) -> None:  # fmt: skip
        host, path, utm_source, utm_medium, utm_campaign = source
        if host == "BLOG":
            host = rng.choice(BLOGS)
        self.visitor, self.referrer = visitor, (host, path)
        self.utm = (utm_source, utm_medium, utm_campaign)
        code, _, places = country
        self.country, (self.region, self.city) = code, rng.choice(places)
        self.client = client

    def hit(self, ts: int, name: str, path: str, props: dict[str, str] | None = None,
            engaged: int | None = None) -> Event:  # fmt: skip
        browser, browser_version, os_, os_version, device = self.client
        return Event(
            1, ts, self.visitor, None, name, DOMAIN, path, *self.referrer, *self.utm, None, None,
            browser, browser_version, os_, os_version, device, self.country, self.region,
            self.city, json.dumps(props) if props else None, None, None, name != "engagement",
            None if engaged is None else min(100, 20 + engaged // 4),  # scroll depth, %
            None if engaged is None else engaged * 1000,
        )  # fmt: skip


async def build(path: Path, events: int, days: int) -> tuple[int, float]:
    storage = open_storage(path)
    await storage.migrate()
    site = await add_site(storage, DOMAIN, "UTC")
    assert site.id == 1, "the generator writes site 1: build into a fresh file"
    # Only the writes are timed, not the drawing of the events.
    written, took = 0, 0.0
    for batch in hits(events, days):
        started = time.perf_counter()
        await storage.write_batch(batch, {})
        took += time.perf_counter() - started
        written += len(batch)
    await storage.close()
    return written, took


# -- the reports -------------------------------------------------------------------------------

TOTALS = ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration")
HIT_METRICS = ("visitors", "events")
BREAKDOWNS = (
    "event:page", "visit:entry_page", "visit:exit_page", "visit:source", "visit:channel",
    "visit:referrer", "visit:utm_source", "visit:country", "visit:region", "visit:city",
    "visit:browser", "visit:os", "visit:device", "event:name", "event:props:plan",
)  # fmt: skip
DASHBOARD_LISTS = (
    "event:page", "visit:source", "visit:country", "visit:browser", "visit:os", "visit:device"
)  # fmt: skip
Report = Callable[[], Awaitable[Any]]


def _metrics(by: str) -> tuple[str, ...]:
    # Visit-based metrics for pages and visit dimensions; a custom event's name or prop is
    # counted in visitors and events, as Plausible's dashboard shows them.
    return HIT_METRICS if by in ("event:name", "event:props:plan") else TOTALS


# The site's goals: a custom event, and the pricing pages by a wildcard (its own segment).
GOALS = (("event", "Signup"), ("page", "/pricing*"))


async def site_goals(storage: Storage, site: Site) -> list[Any]:
    """The bench site's goals, added if a database built before they were has none."""
    from server.goals import new_goal

    if not await storage.goals(site.id):
        for kind, target in GOALS:
            await storage.add_goal(new_goal(site.id, 0, **{kind: target}))
    return list(await storage.goals(site.id))


def report_set(
    storage: Storage, site: Site, days: int, goals: Sequence[Any] = ()
) -> dict[str, dict[str, Report]]:
    today = datetime.now(UTC).date()
    base = reports.Query.for_period(
        site, "custom", first=today - timedelta(days=days - 1), last=today, interval="day"
    )
    nl = base.with_filters(*parse_v1("visit:country==NL"))
    pricing = base.with_filters(*parse_v1("event:page==/pricing"))
    unfiltered: dict[str, Report] = {
        "aggregate": lambda: reports.aggregate(storage, base, TOTALS),
        "timeseries:day": lambda: reports.timeseries(storage, base, TOTALS),
    }
    for by in BREAKDOWNS:
        unfiltered[f"breakdown:{by}"] = lambda by=by: reports.breakdown(  # type: ignore[misc]
            storage, base, by, _metrics(by), window=PAGE
        )
    unfiltered["breakdown:event:goal"] = lambda: reports.breakdown(
        storage, base, "event:goal", ("visitors", "events", "conversion_rate"), goals, PAGE
    )
    filtered: dict[str, Report] = {
        "aggregate:country==NL": lambda: reports.aggregate(storage, nl, TOTALS),
        "breakdown:event:page:country==NL": lambda: reports.breakdown(
            storage, nl, "event:page", TOTALS, window=PAGE
        ),
        "aggregate:page==/pricing": lambda: reports.aggregate(storage, pricing, TOTALS),
    }
    compared = base.compared("previous_period")
    assert compared.comparison is not None

    async def dashboard() -> list[Any]:
        return await asyncio.gather(
            reports.aggregate(storage, compared, TOTALS),
            reports.aggregate(storage, compared.comparison, TOTALS),  # type: ignore[arg-type]
            reports.timeseries(storage, base, ("visitors",)),
            *(
                reports.breakdown(storage, base, by, ("visitors",), window=PANEL)
                for by in DASHBOARD_LISTS
            ),
        )

    return {"unfiltered": unfiltered, "filtered": filtered, "dashboard": {"dashboard": dashboard}}


# Rows a report asks for, as callers do: the Stats API's default page, a dashboard panel's.
PAGE = (0, 100)
PANEL = (0, 10)


def percentile(samples: Sequence[float], p: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def baseline(path: Path, days: int, repeat: int) -> float:
    """p50 ms of counting the range's events: the floor any report over it stands on."""
    today = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)
    start = int((today - timedelta(days=days - 1)).timestamp())
    end = int((today + timedelta(days=1)).timestamp()) - 1
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    samples = []
    try:
        for _ in range(max(repeat, 5)):
            started = time.perf_counter()
            connection.execute(
                "SELECT count(*) FROM events WHERE site_id = ? AND ts BETWEEN ? AND ?",
                (1, start, end),
            ).fetchone()
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return percentile(samples, 50)


async def time_reports(
    path: Path, days: int, repeat: int
) -> dict[str, dict[str, dict[str, float]]]:
    storage = open_storage(path, must_exist=True)
    try:
        site = next(s for s in await storage.sites() if s.domain == DOMAIN)
        goals = await storage.goals(site.id)
        out: dict[str, dict[str, dict[str, float]]] = {}
        for group, runs in report_set(storage, site, days, goals).items():
            out[group] = {}
            for name, run in runs.items():
                await run()  # warm: the first call pays for statement preparation
                samples = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    await run()
                    samples.append((time.perf_counter() - started) * 1000)
                out[group][name] = {
                    "p50_ms": round(percentile(samples, 50), 2),
                    "p95_ms": round(percentile(samples, 95), 2),
                }
        return out
    finally:
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite",), default="sqlite")
    parser.add_argument("--repeat", type=int, default=5)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--keep", type=Path, help="build into this file and keep it")
    where.add_argument("--reuse", type=Path, help="time this database; build nothing")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument(
        "--raw", action="store_true", help="time raw rows alone: forget the rollups first"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.reuse:
            path = args.reuse
            if not path.is_file():
                parser.error(f"--reuse: no database at {path}")
        else:
            path = args.keep or Path(tmp) / "zeef.sqlite3"
            if path.exists():
                parser.error(f"--keep: {path} exists; time it with --reuse {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
            written, took = asyncio.run(build(path, args.events, args.days))
            size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
            rate = f"{written / took:,.0f} events/s through write_batch"
            print(f"built {written:,} events over {args.days} days in {took:.0f} s ({rate}), "
                  f"{size / 2**20:,.0f} MiB")  # fmt: skip
        stored = _count(path)
        if args.raw:
            _forget_rollups(path)
        else:
            days, took, asked, segment_days, segments_took = asyncio.run(
                build_rollups(path, args.days)
            )
            print(f"rollups: {days} days (re)built in {took:.1f} s")
            # A filter set is summed as a segment once a report has asked for it: the first
            # ask reads raw rows (or an earlier run's segment), the timed runs its sums.
            for name, ms in asked.items():
                print(f"  asked before this build's segments: {name} {ms:,.0f} ms")
            print(f"segments: {segment_days} days (re)built in {segments_took:.1f} s")
        base_ms = baseline(path, args.days, args.repeat)
        figures = asyncio.run(time_reports(path, args.days, args.repeat))
    print(f"{stored:,} events; last {args.days} days; {args.repeat} runs each; "
          f"baseline count(*) over the range p50 {base_ms:.2f} ms")  # fmt: skip
    print(f"{'report':<42} {'p50 ms':>9} {'p95 ms':>9} {'x baseline':>11}")
    for group, rows in figures.items():
        print(f"-- {group}")
        for name, row in rows.items():
            ratio = row["p50_ms"] / base_ms if base_ms else float("inf")
            print(f"{name:<42} {row['p50_ms']:>9.1f} {row['p95_ms']:>9.1f} {ratio:>10.1f}x")
    if args.json:
        out = {
            "events": stored,
            "days": args.days,
            "baseline_ms": round(base_ms, 3),
            "unfiltered": figures["unfiltered"],
            "filtered": figures["filtered"],
            "dashboard": figures["dashboard"]["dashboard"],
        }
        print(json.dumps(out))


async def build_rollups(path: Path, days: int) -> tuple[int, float, dict[str, float], int, float]:
    """Bring the rollups up to date, as the server does every few minutes; timed. Then ask
    each filtered report once, as a dashboard user would, and build the segments that asks
    for (each figure timed)."""
    storage = open_storage(path, must_exist=True)
    try:
        await storage.migrate()
        started = time.perf_counter()
        built = await storage.build_rollups(int(time.time()))
        took = time.perf_counter() - started
        site = next(s for s in await storage.sites() if s.domain == DOMAIN)
        asked = {}
        sets = report_set(storage, site, days, await site_goals(storage, site))
        goal = {"breakdown:event:goal": sets["unfiltered"]["breakdown:event:goal"]}
        for name, run in {**sets["filtered"], **goal}.items():
            started = time.perf_counter()
            await run()
            asked[name] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        segments = 0
        for _ in range(20):
            # A build sums segments for a minute at most (sqlite_rollups.SEGMENT_BUDGET) and
            # the server starts the next at once; so does this, until one ends before that.
            one = time.perf_counter()
            segments += await storage.build_rollups(int(time.time()))
            if time.perf_counter() - one < SEGMENT_BUDGET:
                break
        return built, took, asked, segments, time.perf_counter() - started
    finally:
        await storage.close()


def _forget_rollups(path: Path) -> None:
    """Reports read raw rows for days not in rollup_days; the next run without --raw sums
    them again."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute("DELETE FROM rollup_days")
    except sqlite3.OperationalError:
        pass  # built before rollups existed
    finally:
        connection.close()


def _count(path: Path) -> int:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        connection.close()


if __name__ == "__main__":
    main()

"""Report benchmark: how long `zeef stats` takes on a database of N stored events.

Builds a fresh SQLite file through the storage's own write path (so whatever the writer keeps
beside the events, visits included, is built as in production), with --events hits spread over
the last --days days ending today: visits of 1-8 pageviews a few minutes apart, an engagement
hit after most pages, a custom event in one visit of ten, three quarters of visits from
visitors new that day (a visitor's hash lives one UTC day, so only a visitor who consented
could be recognised on another, and these have not). Then it times, for each period, the
in-process report (best of --repeat) and one run of the real command
`python -m server stats DOMAIN --period P --json`.

    python bench/stats.py [--events 1000000] [--days 30] [--repeat 3] [--keep PATH]

It prints the figures of each period too, so two versions of the code can be compared on
the same data (drawn from a fixed seed, placed relative to today).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server import reports  # noqa: E402  (the repository root is on the path only now)
from server.events import Event  # noqa: E402
from server.sites import add_site  # noqa: E402
from server.storage import open_storage  # noqa: E402

DOMAIN = "bench.example"
BATCH = 2000  # the production flush size (ZEEF_FLUSH_SIZE)
PAGES = [f"/docs/page-{n}" for n in range(200)] + ["/", "/pricing", "/blog", "/signup"]
SOURCES = [None, None, None, "www.google.com", "duckduckgo.com", "news.ycombinator.com"]
BROWSERS = [("Chrome", "131.0", "Windows", "10", "desktop"),
            ("Firefox", "133.0", "Linux", "", "desktop"),
            ("Safari", "17.5", "iOS", "17.5", "mobile")]  # fmt: skip


def hits(events: int, days: int, seed: int = 14) -> Iterator[list[Event]]:
    """Batches of hits in (nearly) time order, day by day, about `events` in all."""
    rng = random.Random(seed)
    # ~4.5 hits a visit on average (pageviews, engagement hits, the odd custom event).
    visits_a_day = max(1, int(events / days / 4.5))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=days - 1)
    batch: list[Event] = []
    for day in range(days):
        returning: list[int] = []
        day_start = int((first_day + timedelta(days=day)).timestamp())
        # Only hits up to now on the last day: the end of today has not happened yet.
        day_length = min(86400, int(time.time()) - day_start - 60)
        day_hits = []
        for _ in range(visits_a_day):
            if returning and rng.random() < 0.25:
                visitor = rng.choice(returning)
            else:
                visitor = rng.getrandbits(62)
                returning.append(visitor)
            ts = day_start + rng.randrange(max(1, day_length - 3600))
            source = rng.choice(SOURCES)
            browser = rng.choice(BROWSERS)
            for page in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
                path = rng.choice(PAGES)
                day_hits.append(_event(visitor, ts, "pageview", path, source, browser, None))
                if rng.random() < 0.1 and page == 0:
                    day_hits.append(_event(visitor, ts + 5, "Signup", path, source, browser, None))
                stay = rng.randrange(5, 400)
                if rng.random() < 0.8:
                    day_hits.append(
                        _event(visitor, ts + stay, "engagement", path, source, browser, stay)
                    )
                ts += stay + rng.randrange(1, 60)
        day_hits.sort(key=lambda e: e.ts)
        for event in day_hits:
            batch.append(event)
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _event(visitor: int, ts: int, name: str, path: str, source: str | None,
           browser: tuple[str, str, str, str, str], engaged: int | None) -> Event:  # fmt: skip
    b, bv, os_, osv, device = browser
    return Event(
        1, ts, visitor, None, name, DOMAIN, path, source, "/" if source else None,
        None, None, None, None, None, b, bv, os_, osv, device, "NL", None, None,
        None, None, None, name != "engagement",
        None if engaged is None else min(100, 20 + engaged // 5),  # scroll depth, %
        None if engaged is None else engaged * 1000,
    )  # fmt: skip


async def build(path: Path, events: int, days: int) -> tuple[int, float]:
    storage = open_storage(path)
    await storage.migrate()
    await add_site(storage, DOMAIN, "UTC")
    # Only the writes are timed, not the drawing of the events.
    written, took = 0, 0.0
    for batch in hits(events, days):
        started = time.perf_counter()
        await storage.write_batch(batch, {})
        took += time.perf_counter() - started
        written += len(batch)
    await storage.close()
    return written, took


async def report(path: Path, period: str, repeat: int) -> tuple[float, dict[str, object]]:
    storage = open_storage(path)
    site = next(s for s in await storage.sites() if s.domain == DOMAIN)
    best, figures = float("inf"), {}
    for _ in range(repeat):
        started = time.perf_counter()
        figures = await reports.totals(storage, reports.Query.for_period(site, period))
        best = min(best, time.perf_counter() - started)
    await storage.close()
    return best, figures


def command(path: Path, period: str) -> float:
    env = {**os.environ, "ZEEF_DATABASE": str(path), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "server", "stats", DOMAIN, "--period", period, "--json"],
        check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build into (or reuse) this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "zeef.sqlite3"
        if not path.exists():
            written, took = asyncio.run(build(path, args.events, args.days))
            size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
            rate = f"{written / took:,.0f} events/s through write_batch"
            print(f"built {written:,} events over {args.days} days in {took:.0f} s ({rate}), "
                  f"{size / 2**20:,.0f} MiB")  # fmt: skip
        print(f"{'period':>7} {'report s':>9} {'command s':>10}  figures")
        for period in ("day", "7d", "30d"):
            took, figures = asyncio.run(report(path, period, args.repeat))
            wall = command(path, period)
            shown = {k: v for k, v in figures.items() if k not in ("site", "period", "from", "to")}
            print(f"{period:>7} {took:>9.3f} {wall:>10.3f}  {json.dumps(shown)}")


if __name__ == "__main__":
    main()

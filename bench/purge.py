"""Ingest latency while the purge deletes: issue 19 asks that, with 1M rows to delete, p99
ingest latency under load rises by at most 2x.

It fills a fresh SQLite file with --old events older than the retention period (and a day of
recent ones), then writes batches of --batch new events every --every seconds through the
storage's writer, as the collector's flushes do, timing each write from hand-over to commit:
first for --seconds with nothing else going on (the baseline, measured in this run), then while
the purge runs as the server's job runs it (batches of purge.BATCH, a short pause between them).
It prints p50, p99 and max of both phases and the ratios, and the purge's own time.

2026-12-05, 1M old events (2M rows with their visits), 2 cores beside nothing heavy: p99
1.31x (36.6 ms against 27.8 ms), p50 1.21x (10.5 ms against 8.6 ms), 288 s to delete (6,945
rows/s), with a passive checkpoint from a reader after each batch (storage.checkpoint_aside).
The same day without it: p99 1.47x, p50 2.86x, 174 s; with the checkpoint overlapping the
pause rather than before it: p99 0.93x, p50 1.97x, 147 s.

2026-12-04, same set-up: p99 1.46x (52.8 ms against 36.2 ms), p50 3.56x, 220 s to delete
(9,075 rows/s). Before the writer's 32 MiB cache and the time-sized batches: p99 2.00x, p50
4.55x; before that, fixed batches of 5,000 with 5 ms pauses: p99 8.7x.

    python bench/purge.py [--old 1000000] [--batch 200] [--every 0.05] [--seconds 20]
                           [--purge-batch 1000] [--pause 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from server import purge as purging
from server.config import Settings
from server.events import Event
from server.retention import Period
from server.sites import add_site
from server.storage import open_storage

DAY = 86_400


def event(rng: random.Random, site_id: int, ts: int) -> Event:
    page = rng.choice(("/", "/pricing", "/blog", "/blog/a", "/docs"))
    return Event(
        site_id, ts, rng.getrandbits(62), None, "pageview", "shop.example", page,
        rng.choice((None, "www.google.com")), None, None, None, None, None, None,
        "Chrome", "131", "Windows", "10", "desktop", "NL", None, None, None, None, None,
        True, None, None,
    )  # fmt: skip


async def ingest(storage: object, rng: random.Random, args: argparse.Namespace,
                 until: asyncio.Event, now: int) -> list[float]:  # fmt: skip
    latencies = []
    while not until.is_set():
        batch = [event(rng, 1, now - rng.randrange(3600)) for _ in range(args.batch)]
        began = time.perf_counter()
        await storage.write_batch(batch, {})  # type: ignore[attr-defined]
        latencies.append(time.perf_counter() - began)
        await asyncio.sleep(args.every)
    return latencies


def figures(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "zeef.sqlite3"
        settings = replace(Settings(database=database), retention=Period.parse("30d"))
        storage = open_storage(database)
        await storage.migrate()
        await add_site(storage, "shop.example", "UTC")
        now = int(time.time())
        old_start = now - 400 * DAY
        began = time.perf_counter()
        for i in range(0, args.old, 5000):
            rows = [event(rng, 1, old_start + rng.randrange(300 * DAY))
                    for _ in range(min(5000, args.old - i))]  # fmt: skip
            await storage.write_batch(rows, {})
        print(f"seeded {args.old:,} old events in {time.perf_counter() - began:.0f} s")

        # Warm up, unmeasured: the first writes after seeding close a million visits and fill
        # the cache, a cost of the seeding, not of the purge (it put seconds into the baseline).
        stop = asyncio.Event()
        task = asyncio.create_task(ingest(storage, rng, args, stop, now))
        await asyncio.sleep(3)
        stop.set()
        await task

        stop = asyncio.Event()
        task = asyncio.create_task(ingest(storage, rng, args, stop, now))
        await asyncio.sleep(args.seconds)
        stop.set()
        baseline = await task

        stop = asyncio.Event()
        task = asyncio.create_task(ingest(storage, rng, args, stop, now))
        began = time.perf_counter()
        report = await purging.purge(storage, settings, now=now, by="bench",
                                     batch=args.purge_batch, pause=args.pause)  # fmt: skip
        purge_seconds = time.perf_counter() - began
        stop.set()
        during = await task
        await storage.close()

    b50, b99, bmax = figures(baseline)
    d50, d99, dmax = figures(during)
    print(f"purge: deleted {report.total:,} rows in {purge_seconds:.1f} s "
          f"({report.total / purge_seconds:,.0f} rows/s)")  # fmt: skip
    print(f"baseline: {len(baseline)} writes of {args.batch}: p50 {b50:.1f} ms, "
          f"p99 {b99:.1f} ms, max {bmax:.1f} ms")  # fmt: skip
    print(f"purging:  {len(during)} writes of {args.batch}: p50 {d50:.1f} ms, "
          f"p99 {d99:.1f} ms, max {dmax:.1f} ms")  # fmt: skip
    print(f"ratio p50 {d50 / b50:.2f}x, p99 {d99 / b99:.2f}x (target: p99 at most 2x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--every", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--purge-batch", type=int, default=purging.BATCH)
    parser.add_argument("--pause", type=float, default=purging.PAUSE)
    asyncio.run(main(parser.parse_args()))

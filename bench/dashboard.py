"""Dashboard benchmark: how long `/sites/DOMAIN` takes to answer, server time, on N events.

    PYTHONPATH=. python bench/dashboard.py [--events 1000000] [--days 30] [--repeat 20]
        [--keep PATH | --reuse PATH]

Builds the site bench/reports.py builds (same seed, same write path) or reuses one it kept,
brings the rollups up to date as the server does, then asks the real app (through httpx's ASGI
transport, logged in as a superuser) for the dashboard over the last 30 days, with and without
a comparison and a filter, and for a details view. Baseline from the same run: the Stats API's
`/aggregate` of the same period through the same app (one report, the cheapest page-sized
read), so figures are ratios a noisy machine does not move much. The issue's goal: the page's
HTML in <= 200 ms server time for 30 days at 10M events.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from reports import DOMAIN, build, build_rollups  # noqa: E402

from server.accounts import audit, users  # noqa: E402
from server.app import create_app  # noqa: E402
from server.config import Settings  # noqa: E402

PASSWORD = "correct horse battery staple"


async def time_pages(path: Path, repeat: int) -> dict[str, list[float]]:
    settings = Settings(database=path, flush_interval=3600, rollup_interval=3600)
    app = create_app(settings)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        storage = app.state.storage
        if await storage.user_by_email("bench@zeef.example") is None:
            actor = audit.Actor("bench@zeef.example", "-", "bench@zeef.example")
            await users.add_user(storage, "bench@zeef.example", "superuser", None, PASSWORD, actor)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            form = await client.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token
            data = {"email": "bench@zeef.example", "password": PASSWORD,
                    "csrf": token.group(1), "next": ""}  # fmt: skip
            assert (await client.post("/login", data=data)).status_code == 303
            asks = {
                "baseline: /aggregate 30d": f"/api/v1/stats/aggregate?site_id={DOMAIN}&period=30d",
                "dashboard 30d": f"/sites/{DOMAIN}?period=30d",
                "dashboard 30d, previous period": f"/sites/{DOMAIN}?period=30d"
                "&compare=previous_period",
                "dashboard 30d, country NL": f"/sites/{DOMAIN}?period=30d"
                "&filters=visit:country==NL",
                "dashboard 7d": f"/sites/{DOMAIN}?period=7d",
                "dashboard 30d, Properties tab": f"/sites/{DOMAIN}?period=30d&p4=2",
                "dashboard 30d, UTM mediums tab": f"/sites/{DOMAIN}?period=30d&p1=4",
                "details: pages 30d": f"/sites/{DOMAIN}/details/event:page?period=30d",
            }
            # A filter no report has asked for (each round its own page): the page comes with
            # its top line and each panel loads after it (Dashboard._lazy); one such panel,
            # read from raw rows until the builder sums the new filter.
            fresh = "dashboard 30d, a new filter (panels after)"
            panel = "one panel under a new filter"
            times: dict[str, list[float]] = {name: [] for name in [*asks, fresh, panel]}
            for n in range(repeat):
                new = f"/sites/{DOMAIN}?period=30d&filters=event:page==/bench-new-{n}-{time.time()}"
                lazy = {fresh: new, panel: new.replace("?", "/panel/0?", 1)}
                for name, url in [*asks.items(), *lazy.items()]:
                    began = time.perf_counter()
                    answer = await client.get(url)
                    times[name].append((time.perf_counter() - began) * 1000)
                    assert answer.status_code == 200, (url, answer.status_code)
                    if name == fresh:
                        assert "data-panel=" in answer.text, "the panels did not load after"
            return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--keep", type=Path, help="build into this file and keep it")
    where.add_argument("--reuse", type=Path, help="time this database; build nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.reuse or args.keep or Path(tmp) / "zeef.sqlite3"
        if not args.reuse:
            written, took = asyncio.run(build(path, args.events, args.days))
            print(f"built {written:,} events in {took:.0f} s")
        asyncio.run(build_rollups(path, args.days))
        times = asyncio.run(time_pages(path, args.repeat))
    base = statistics.median(times["baseline: /aggregate 30d"])
    print(f"{'':34} {'p50 ms':>8} {'p95 ms':>8} {'x baseline':>11}")
    for name, samples in times.items():
        ordered = sorted(samples)
        p50 = statistics.median(ordered)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(f"{name:34} {p50:8.1f} {p95:8.1f} {p50 / base:11.2f}")


if __name__ == "__main__":
    main()

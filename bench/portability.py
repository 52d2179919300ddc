"""Export and import throughput and peak memory (issue 19, portability), against a baseline
measured in the same run.

It fills a fresh SQLite file with --events events of one site (and the visits the writer makes
of them), then runs, each in a process of its own so its peak RSS is its own:
  - `zeef export` of the site, against a plain sqlite3 SELECT of the same tables' rows (read
    and dropped: the floor for reading them);
  - `zeef import` of that file into a fresh database, against a plain sqlite3 INSERT ... SELECT
    of the same rows into a fresh migrated database in one transaction (the floor for writing
    them, indexes included).
Throughput is rows (every member's) per second, wall time of the whole command including the
interpreter's start. It also times the import's two phases in this process: staging (reading
and checking the ZIP, no lock on the target) and the copy (the one transaction: how long a
running server's writes wait).

    python bench/portability.py [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server import portability
from server.events import Event
from server.sites import add_site
from server.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400

# The baselines: the same rows, plain sqlite3, nothing else.
SELECT_ALL = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
n = 0
for table in ("events", "visits", "consented_visitors", "drops"):
    for row in conn.execute(f"SELECT * FROM {table} WHERE site_id = 1"):
        n += 1
print(n)
"""
INSERT_ALL = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[2], isolation_level=None)
conn.execute("ATTACH ? AS src", (sys.argv[1],))
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO main.sites SELECT * FROM src.sites WHERE id = 1")
n = 0
for table in ("events", "visits", "consented_visitors", "drops"):
    n += conn.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}").rowcount
conn.execute("COMMIT")
print(n)
"""


def event(rng: random.Random, ts: int) -> Event:
    page = rng.choice(("/", "/pricing", "/blog", "/blog/a", "/docs"))
    return Event(
        1, ts, rng.getrandbits(40), None, "pageview", "shop.example", page,
        rng.choice((None, "www.google.com")), None, rng.choice((None, "spring")), None, None,
        None, None, "Chrome", "131", "Windows", "10", "desktop", "NL", "NH", "Amsterdam",
        None, None, None, True, rng.choice((None, 50, 100)), None, rng.random() < 0.2,
    )  # fmt: skip


def run(*argv: str, database: Path | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of a command in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if database is not None:
        env["ZEEF_DATABASE"] = str(database)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        # wait4, not Popen.wait: it gives this child's own rusage (ru_maxrss in KiB).
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"{argv[:4]}: exit {child.returncode}: {err.read().decode()}")
        return seconds, usage.ru_maxrss, out.read().decode()


async def seed(database: Path, events: int) -> None:
    storage = open_storage(database)
    await storage.migrate()
    await add_site(storage, "shop.example", "UTC")
    rng = random.Random(7)
    now = int(time.time())
    first = now - 60 * DAY
    stamps = sorted(first + rng.randrange(60 * DAY) for _ in range(events))
    for i in range(0, events, 5000):
        await storage.write_batch([event(rng, ts) for ts in stamps[i : i + 5000]], {})
    await storage.close()


async def phases(archive: Path, database: Path) -> tuple[float, float]:
    """Seconds staging, seconds copying (the write lock held), into a fresh database."""
    storage = open_storage(database)
    await storage.migrate()
    stage = database.with_name("stage.sqlite3")
    began = time.perf_counter()
    portability.stage(archive, stage)
    staged = time.perf_counter()
    await storage.import_staged(stage, "phases.example", None)
    copied = time.perf_counter()
    await storage.close()
    return staged - began, copied - staged


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "source.sqlite3"
        began = time.perf_counter()
        asyncio.run(seed(source, args.events))
        print(f"seeded {args.events:,} events in {time.perf_counter() - began:.0f} s")
        zeef = (sys.executable, "-m", "server")
        archive = folder / "site.zip"

        base_s, base_rss, out = run(sys.executable, "-c", SELECT_ALL, str(source))
        rows = int(out)
        exp_s, exp_rss, _ = run(*zeef, "export", "shop.example", "--out", str(archive),
                                database=source)  # fmt: skip
        manifest = portability.read_manifest(archive)
        archive_size = archive.stat().st_size
        exported = sum(entry["rows"] for entry in manifest["files"].values())

        empty = folder / "empty.sqlite3"
        asyncio.run(_migrated(empty))
        floor = folder / "floor.sqlite3"
        floor.write_bytes(empty.read_bytes())
        ins_s, ins_rss, _ = run(sys.executable, "-c", INSERT_ALL, str(source), str(floor))
        target = folder / "target.sqlite3"
        imp_s, imp_rss, _ = run(*zeef, "import", str(archive), database=target)
        staging, copying = asyncio.run(phases(archive, folder / "phases.sqlite3"))

    print(f"rows: {exported:,} exported ({rows:,} in the baseline's tables: events, visits, "
          f"consented visitors, drops); the file {archive_size / 2**20:.1f} MiB")  # fmt: skip
    line = "{:<28} {:>8.2f} s {:>10,.0f} rows/s {:>8,.0f} MiB peak RSS"
    print(line.format("baseline SELECT", base_s, rows / base_s, base_rss / 1024))
    print(line.format("zeef export", exp_s, exported / exp_s, exp_rss / 1024))
    print(line.format("baseline INSERT ... SELECT", ins_s, rows / ins_s, ins_rss / 1024))
    print(line.format("zeef import", imp_s, exported / imp_s, imp_rss / 1024))
    print(f"export: {exp_s / base_s:.1f}x the baseline's time, {exp_rss / base_rss:.2f}x its RSS")
    print(f"import: {imp_s / ins_s:.1f}x the baseline's time, {imp_rss / ins_rss:.2f}x its RSS")
    print(f"import phases: staging {staging:.2f} s (no lock on the target), copy {copying:.2f} s "
          "(the one transaction: a running server's writes wait this long)")  # fmt: skip


async def _migrated(database: Path) -> None:
    storage = open_storage(database)
    await storage.migrate()
    await storage.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    main(parser.parse_args())

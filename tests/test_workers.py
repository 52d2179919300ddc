"""Counts do not depend on the number of server processes: --workers 2 counts like one.

Each worker has its own buffer and its own salt cache, and a visitor's hits land on whichever
worker accepts the connection; the shared daily salt and visits made at query time are what
keep the figures the same. The same scripted traffic runs against one and two workers.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from server import sites
from server.buffer import EventBuffer
from server.events import Event
from server.storage import open_storage

from .live import LiveServer

SITE = "example.com"
VISITORS = 30
PAGEVIEWS_EACH = 3
EXPECTED = {"visitors": 30, "visits": 30, "pageviews": 90, "events": 30, "bounce_rate": 0}

AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
)


def visitor_address(i: int) -> str:
    # Some visitors share a /16 (or /48): the hash is of the full address, so they stay apart.
    return f"81.2.{i % 4}.{10 + i}" if i % 3 else f"2001:db8:{i % 2}::{i:x}"


def traffic() -> list[tuple[int, dict[str, object]]]:
    """(visitor, event) in sending order: round by round, so a visitor's hits are spread out."""
    script: list[tuple[int, dict[str, object]]] = []
    for page in range(PAGEVIEWS_EACH):
        for i in range(VISITORS):
            script.append((i, {"n": "pageview", "u": f"https://{SITE}/page/{page}", "d": SITE}))
    for i in range(VISITORS):
        event = {"n": "Signup", "u": f"https://{SITE}/page/2", "d": SITE, "p": {"plan": "pro"}}
        script.append((i, event))
    return script


def write_syscalls(pid: int) -> int | None:
    """How many write-type system calls a process made (Linux), or None where unknown."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return None
    fields = dict(line.split(": ") for line in text.splitlines())
    return int(fields["syscw"])


def run(directory: Path, workers: int) -> tuple[dict[str, object], list[int], list[int | None]]:
    """Send the script to a fresh server; its figures, worker PIDs and each worker's writes."""
    env = {"ZEEF_TRUSTED_PROXIES": "127.0.0.1", "ZEEF_FLUSH_INTERVAL": "0.2"}
    with LiveServer(directory, env=env, workers=workers, sites=[SITE]) as server:
        pids = server.worker_pids()
        before = [write_syscalls(pid) for pid in pids]
        # No keep-alive: every request is a new connection, for any worker to accept.
        with server.client(keepalive=False) as http:
            for i, event in traffic():
                response = http.post(
                    "/api/event",
                    content=json.dumps(event),
                    headers={
                        "Content-Type": "text/plain",
                        "User-Agent": AGENTS[i % len(AGENTS)],
                        "X-Forwarded-For": visitor_address(i),
                    },
                )
                assert (response.status_code, response.text) == (202, ""), response.headers
        after = [write_syscalls(pid) for pid in pids]
    server.check_clean_exit()
    writes = [
        b - a if a is not None and b is not None else None
        for a, b in zip(before, after, strict=True)
    ]
    figures = server.stats(SITE)
    return {key: figures[key] for key in EXPECTED}, pids, writes


def test_two_workers_count_like_one(tmp_path: Path) -> None:
    one, one_pids, _ = run(tmp_path / "one", workers=1)
    two, two_pids, writes = run(tmp_path / "two", workers=2)

    assert len(one_pids) == 1
    assert len(set(two_pids)) == 2, "uvicorn should print 'Started server process' per worker"
    assert one == EXPECTED
    assert two == one

    # Meaningful only if both workers took part. Each answer is at least one write(2), so a
    # worker that served nothing shows only its supervisor pongs (two a second). Linux only.
    if None not in writes:
        requests = len(traffic())
        assert all(w is not None and w >= requests // 10 for w in writes), (writes, requests)


def _event(site_id: int, visitor_id: int) -> Event:
    return Event(
        site_id=site_id,
        ts=int(time.time()),
        visitor_id=visitor_id,
        previous_visitor_id=None,
        name="pageview",
        hostname=SITE,
        path="/",
        referrer_host=None,
        referrer_path=None,
        utm_source=None,
        utm_medium=None,
        utm_campaign=None,
        utm_term=None,
        utm_content=None,
        browser="Firefox",
        browser_version="133.0",
        os="Linux",
        os_version="",
        device="desktop",
        country=None,
        region=None,
        city=None,
        props=None,
        revenue_amount=None,
        revenue_currency=None,
        interactive=True,
        scroll_depth=None,
        engaged_ms=None,
    )


async def test_shutdown_while_another_worker_writes_loses_no_events(tmp_path: Path) -> None:
    """SIGTERM reaches worker B while its flush waits for worker A's write lock.

    EventBuffer.stop() used to cancel that flush; aiosqlite went on in its thread and the
    batch was lost (or, cancelled just after COMMIT, written twice while stop() hung).
    """
    database = tmp_path / "zeef.sqlite3"
    storage = open_storage(database)
    await storage.migrate()
    site = await sites.add_site(storage, SITE)
    buffer = EventBuffer(storage, interval=0.05)
    for visitor in range(10):
        buffer.add(_event(site.id, visitor))

    other_worker = sqlite3.connect(database, isolation_level=None)
    try:
        other_worker.execute("BEGIN IMMEDIATE")
        buffer.start()
        await asyncio.sleep(0.3)  # the flush now waits in BEGIN IMMEDIATE (busy_timeout 10 s)
        asyncio.get_running_loop().call_later(0.3, other_worker.execute, "COMMIT")
        await asyncio.wait_for(buffer.stop(), timeout=15)
    finally:
        await storage.close()
        other_worker.close()

    with closing(sqlite3.connect(database)) as db:
        stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert stored == 10

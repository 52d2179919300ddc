"""Back-pressure: a bounded buffer answers 503 with Retry-After instead of growing without end
while the database is write-locked, counts the refusals, and takes events again once the
writer has caught up (issue 14, fault 5)."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from server import sites
from server.buffer import EVENT_OVERHEAD, EventBuffer
from server.config import ConfigError, Settings, load_settings
from server.events import Event
from server.storage import open_storage

from .conftest import Clock, Zeef, pageview, start
from .test_cli import zeef as zeef_cli
from .test_workers import _event

BOUND = 40


@contextmanager
def write_locked(database: Path) -> Iterator[None]:
    """Another process's writer holding the lock until the block ends, however slow the
    machine: Zeef's flush waits on it (busy_timeout 10 s), and retries if that runs out."""
    with closing(sqlite3.connect(database, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


@pytest.fixture
async def bounded(settings: Settings, clock: Clock) -> AsyncIterator[Zeef]:
    # A flush task that runs as it does in production, so nothing here flushes by hand.
    small = replace(settings, flush_interval=0.05, buffer_max_events=BOUND)
    async for instance in start(small, clock):
        await instance.add_site("example.com")
        yield instance


def overloaded(answer: httpx.Response) -> bool:
    return answer.status_code == 503


def check_overloaded(answer: httpx.Response) -> None:
    assert answer.status_code == 503
    assert answer.headers["x-zeef-drop"] == "overloaded"
    assert answer.headers["retry-after"] == "1"  # the flush interval, rounded up
    assert "retry-after" in answer.headers["access-control-expose-headers"]


async def wait_for(condition: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_events_past_the_bound_get_503_and_are_taken_again_once_the_writer_catches_up(
    bounded: Zeef, tmp_path: Path
) -> None:
    # The day's salt is written by the first event: let that happen before the lock.
    assert (await bounded.send(pageview())).status_code == 202
    await wait_for(lambda: bounded.rows("SELECT COUNT(*) AS n FROM events")[0]["n"] == 1)

    with write_locked(bounded.settings.database):
        # The flush task takes each batch out of the queue and waits on the lock with it:
        # those events count towards the bound too, or a second bound's worth gets in.
        answers = [await bounded.send(pageview(f"https://example.com/{i}")) for i in range(60)]
        bot = await bounded.send(pageview(), ua="curl/8.5.0")
        assert bounded.app.state.buffer.pending == BOUND
    accepted = [a for a in answers if a.status_code == 202]
    refused = [a for a in answers if overloaded(a)]
    assert len(accepted) == BOUND
    assert len(refused) == 60 - BOUND
    assert all("x-zeef-drop" not in a.headers for a in accepted)
    for answer in refused:
        check_overloaded(answer)
    # An event that would be dropped anyway keeps its own reason.
    assert (bot.status_code, bot.headers["x-zeef-drop"]) == (202, "bot")

    # Nobody flushes by hand: the flush task writes the backlog once the lock is gone.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        answer = await bounded.send(pageview("https://example.com/after"))
        if answer.status_code == 202:
            break
        check_overloaded(answer)
        refused.append(answer)
        assert loop.time() < deadline, "still refused 10 s after the lock was released"
        await asyncio.sleep(0.05)
    await wait_for(lambda: bounded.app.state.buffer.pending == 0)
    stored = bounded.rows("SELECT COUNT(*) AS n FROM events")[0]["n"]
    assert stored == 1 + BOUND + 1
    assert bounded.app.state.buffer.full is False

    # The refusals are counted per site and day, as `zeef drops` shows them.
    result = zeef_cli(tmp_path, "drops", "example.com", "--period", "all", "--json")
    assert result.returncode == 0, result.stderr
    drops = json.loads(result.stdout)["drops"]
    assert drops["overloaded"] == len(refused) >= 60 - BOUND
    assert drops["bot"] == 1


async def test_the_byte_bound_takes_fewer_large_events(settings: Settings, clock: Clock) -> None:
    body = json.dumps(pageview(p={"a": "x" * 2000, "b": "y" * 2000}))
    max_bytes = 20_000
    limited = replace(settings, buffer_max_bytes=max_bytes)  # flushes by hand only (1 h)
    async for zeef in start(limited, clock):
        await zeef.add_site("example.com")
        answers = [await zeef.send(body) for _ in range(10)]
    # The bound is reached by the event that crosses it; each counts its body and an overhead.
    expected = math.ceil(max_bytes / (EVENT_OVERHEAD + len(body.encode())))
    assert expected < 10
    assert [a.status_code for a in answers] == [202] * expected + [503] * (10 - expected)
    assert answers[-1].headers["x-zeef-drop"] == "overloaded"
    # The test settings flush once an hour: the advice is capped at a minute.
    assert answers[-1].headers["retry-after"] == "60"


def test_bounds_come_from_the_environment() -> None:
    settings = load_settings({"ZEEF_BUFFER_MAX_EVENTS": "500", "ZEEF_BUFFER_MAX_BYTES": "1048576"})
    assert (settings.buffer_max_events, settings.buffer_max_bytes) == (500, 1_048_576)
    defaults = load_settings({})
    assert (defaults.buffer_max_events, defaults.buffer_max_bytes) == (100_000, 64 * 2**20)
    with pytest.raises(ConfigError, match="ZEEF_BUFFER_MAX_EVENTS"):
        load_settings({"ZEEF_BUFFER_MAX_EVENTS": "0"})
    with pytest.raises(ConfigError, match="ZEEF_BUFFER_MAX_BYTES"):
        load_settings({"ZEEF_BUFFER_MAX_BYTES": "lots"})


async def test_no_event_stays_in_memory_once_its_batch_is_written(zeef: Zeef) -> None:
    """The writer kept its last job, whose closure holds the batch, until the next write: on a
    server that went quiet after a backlog, up to a bound's worth of events (~50 MiB)."""
    for i in range(50):
        assert (await zeef.send(pageview(f"https://example.com/{i}"))).status_code == 202
    assert await zeef.flush() == 50
    await asyncio.sleep(0)  # the writer loop's turn after the batch's answer
    held = sum(1 for thing in gc.get_objects() if isinstance(thing, Event))
    assert held == 0
    assert zeef.app.state.buffer.pending_bytes == 0


async def test_a_backlog_is_written_in_batches_and_a_failed_one_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """Batches of BACKLOG_BATCH flush sizes (here 100): the first commits, the second fails
    part-way, and the next flush writes the 150 left, none twice."""
    database = tmp_path / "zeef.sqlite3"
    storage = open_storage(database)
    try:
        await storage.migrate()
        site = await sites.add_site(storage, "example.com")
        # No flush task: this buffer is flushed only here.
        buffer = EventBuffer(storage, interval=3600, size=10)
        for i in range(250):
            buffer.add(replace(_event(site.id, i), path=f"/{i}"), EVENT_OVERHEAD + i)
        held_bytes = buffer.pending_bytes
        assert held_bytes == 250 * EVENT_OVERHEAD + sum(range(250))
        with closing(sqlite3.connect(database)) as db:
            db.executescript(
                "CREATE TRIGGER fail BEFORE INSERT ON events "
                "WHEN (SELECT COUNT(*) FROM events) >= 150 "
                "BEGIN SELECT RAISE(ABORT, 'injected'); END;"
            )
        done = storage.health().done
        with pytest.raises(sqlite3.IntegrityError, match="injected"):
            await buffer.flush()
        assert storage.health().done == done + 2  # two transactions
        assert buffer.pending == 150
        assert buffer.pending_bytes == held_bytes * 150 // 250

        with closing(sqlite3.connect(database)) as db:
            assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 100
            db.executescript("DROP TRIGGER fail;")
        assert await buffer.flush() == 150
        assert (buffer.pending, buffer.pending_bytes) == (0, 0)
    finally:
        await storage.close()
    with closing(sqlite3.connect(database)) as db:
        paths = [path for (path,) in db.execute("SELECT path FROM events ORDER BY rowid")]
    assert paths == [f"/{i}" for i in range(250)]

"""The write path: one writer, one transaction a job, acknowledged means stored (issue 14)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from server.app import create_app
from server.config import Settings

from .conftest import Clock, Zeef, pageview
from .test_consent import record

BOT = "curl/8.5.0"


@contextmanager
def write_locked(database: Path, seconds: float) -> Iterator[None]:
    """Another process's writer holding the lock for `seconds` (Zeef's busy_timeout is 10 s)."""
    locked = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        threading.Event().wait(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait()
    try:
        yield
    finally:
        thread.join()


def inject(database: Path, sql: str) -> None:
    conn = sqlite3.connect(database)
    conn.executescript(sql)
    conn.close()


async def test_the_first_event_after_midnight_waits_for_a_flush_instead_of_failing(
    zeef: Zeef, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 14, 23, 59, 50, tzinfo=UTC)
    assert (await zeef.send(pageview())).status_code == 202
    with write_locked(zeef.settings.database, 0.5):
        flush = asyncio.create_task(zeef.flush())
        await asyncio.sleep(0.1)  # the flush is now waiting for the lock
        clock.advance(seconds=20)  # a new UTC day: its salt must be loaded (a write)
        after_midnight = await zeef.send(pageview("https://example.com/next"))
        health = await zeef.client.get("/healthz")
    assert after_midnight.status_code == 202
    assert health.status_code == 200
    assert await flush == 1
    await zeef.flush()
    assert [r["path"] for r in zeef.rows()] == ["/", "/next"]


async def test_a_failed_flush_stores_neither_its_events_nor_its_drops_so_a_retry_stores_once(
    zeef: Zeef,
) -> None:
    for _ in range(100):
        await zeef.send(pageview())
        await zeef.send(pageview(), ua=BOT)
    # The drop write fails after the events were written, as SQLITE_BUSY did between the two.
    inject(
        zeef.settings.database,
        "CREATE TRIGGER fail BEFORE INSERT ON drops BEGIN SELECT RAISE(ABORT, 'injected'); END;",
    )
    try:
        await zeef.flush()
    except sqlite3.DatabaseError as exc:
        assert "injected" in str(exc)
    else:
        raise AssertionError("the injected fault did not fire")
    assert zeef.rows("SELECT COUNT(*) AS n FROM events") == [{"n": 0}]
    inject(zeef.settings.database, "DROP TRIGGER fail;")
    assert await zeef.flush() == 100
    assert zeef.rows("SELECT COUNT(*) AS n FROM events") == [{"n": 100}]
    assert zeef.rows("SELECT reason, count FROM drops") == [{"reason": "bot", "count": 100}]


async def test_a_consent_record_posted_during_a_failing_flush_is_kept(zeef: Zeef) -> None:
    await zeef.send(pageview())
    inject(
        zeef.settings.database,
        "CREATE TRIGGER fail BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected'); END;",
    )
    with write_locked(zeef.settings.database, 0.5):
        flush = asyncio.create_task(zeef.flush())
        await asyncio.sleep(0.1)
        posted = await zeef.client.post("/api/consent", json=record())
    assert posted.status_code == 201
    try:
        await flush
    except sqlite3.DatabaseError:
        pass
    else:
        raise AssertionError("the injected fault did not fire")
    assert zeef.rows("SELECT COUNT(*) AS n FROM consent_records") == [{"n": 1}]
    inject(zeef.settings.database, "DROP TRIGGER fail;")
    assert await zeef.flush() == 1


async def test_every_acknowledged_write_is_stored_while_healthz_is_polled(zeef: Zeef) -> None:
    health: list[int] = []
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set():
            health.append((await zeef.client.get("/healthz")).status_code)
            # Not sleep(0): an in-process request never waits, so that loop left the writer's
            # thread little turn to hand back its results; a transaction it held open for 10 s
            # made the test fail with "database is locked", or take up to 6 minutes.
            await asyncio.sleep(0.001)

    async def flusher() -> None:
        while not done.is_set():
            await zeef.flush()
            await asyncio.sleep(0.01)

    async def consent() -> str | None:
        body = record(consent_id=str(uuid.uuid4()))
        answer = await zeef.client.post("/api/consent", json=body)
        return body["consent_id"] if answer.status_code == 201 else None

    async def bot() -> bool:
        answer = await zeef.client.post(
            "/api/event",
            json=pageview(),
            headers={"user-agent": BOT, "content-type": "application/json"},
        )
        return answer.headers.get("x-zeef-drop") == "bot"

    background = [asyncio.create_task(poll()), asyncio.create_task(flusher())]
    ids = await asyncio.gather(*(consent() for _ in range(300)))
    drops = await asyncio.gather(*(bot() for _ in range(300)))
    done.set()
    await asyncio.gather(*background)
    await zeef.flush()

    stored = {r["consent_id"] for r in zeef.rows("SELECT consent_id FROM consent_records")}
    assert all(ids) and set(ids) == stored
    assert zeef.rows("SELECT SUM(count) AS n FROM drops WHERE reason = 'bot'") == [
        {"n": sum(drops)}
    ]
    assert sum(drops) == 300
    assert health and set(health) == {200}


async def test_healthz_answers_at_once_and_says_so_when_the_writer_is_stuck(
    zeef: Zeef,
) -> None:
    from server import app as app_module

    await zeef.send(pageview())
    stuck_after, app_module.WRITER_STUCK = app_module.WRITER_STUCK, 0.2
    try:
        with write_locked(zeef.settings.database, 1.5):
            flush = asyncio.create_task(zeef.flush())
            await asyncio.sleep(0.5)
            started = asyncio.get_running_loop().time()
            answer = await zeef.client.get("/healthz")
            took = asyncio.get_running_loop().time() - started
        assert await flush == 1
    finally:
        app_module.WRITER_STUCK = stuck_after
    assert answer.status_code == 503
    assert answer.json()["status"].startswith("writer stuck for")
    assert took < 1.0
    assert (await zeef.client.get("/healthz")).status_code == 200


async def test_a_start_that_fails_to_migrate_closes_the_writer(settings: Settings) -> None:
    """Before, the writer's task and connection outlived the failed start."""
    settings.database.write_bytes(b"this is not a SQLite database" * 200)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            raise AssertionError("started on a file that is not a database")
    except sqlite3.DatabaseError as exc:
        assert "not a database" in str(exc)
    assert not app.state.storage.health().alive

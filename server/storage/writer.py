"""The single writer of a SQLite file: one task owns the write connection, each job is one
transaction.

Event batches, drop counts, salts, consent records and settings all go through it. Before,
they shared one connection from several tasks: a consent record joined whatever flush
transaction was open and vanished with its rollback, a health check rolled back acknowledged
writes, and the salt load of the first event after midnight hit "cannot start a transaction
within a transaction" (issue 14, faults 1-4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite

log = logging.getLogger("zeef.storage")

T = TypeVar("T")
Job = Callable[[aiosqlite.Connection], Awaitable[T]]
Connect = Callable[[], Awaitable[aiosqlite.Connection]]


@dataclass(frozen=True)
class WriterStatus:
    alive: bool
    queued: int
    # Seconds the job now running has taken, 0 when idle.
    busy_for: float
    done: int
    # Seconds the last finished job held the write lock: what a job queued behind it waited.
    last_job: float = 0.0


class Writer:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[tuple[Job[Any], asyncio.Future[Any], bool] | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._started: float | None = None
        self._done = 0
        self._last_job = 0.0

    async def run(self, job: Job[T], transaction: bool = True) -> T:
        """Run `job` in a transaction of its own (BEGIN IMMEDIATE ... COMMIT), after the jobs
        queued before it; its exception, if any, comes back here after the rollback. Without
        `transaction`, for what SQLite refuses inside one (a checkpoint, a vacuum)."""
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._loop(self._queue), name="zeef-writer")
        assert self._queue is not None
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future, transaction))
        # Shielded: a caller that gives up (a client hanging up) must not cancel a write that
        # may already be committed, nor leave the loop without its answer.
        return await asyncio.shield(future)

    def status(self) -> WriterStatus:
        started = self._started
        return WriterStatus(
            alive=self._task is not None and not self._task.done(),
            queued=self._queue.qsize() if self._queue is not None else 0,
            busy_for=time.monotonic() - started if started is not None else 0.0,
            done=self._done,
            last_job=self._last_job,
        )

    async def close(self) -> None:
        """Finish every queued job, then close the connection."""
        if self._task is not None and not self._task.done():
            assert self._queue is not None
            self._queue.put_nowait(None)
            await self._task
        self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _loop(
        self, queue: asyncio.Queue[tuple[Job[Any], asyncio.Future[Any], bool] | None]
    ) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            job, future, transaction = item
            self._started = time.monotonic()
            try:
                result = await self._transaction(job, transaction)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                self._last_job = time.monotonic() - self._started
                self._started = None
                self._done += 1
            # Let go of the job before waiting for the next one: its closure holds a whole
            # batch, and an idle writer kept the last one alive (a drained backlog: 60,000
            # events, 24 MiB) until the next write came.
            del item, job, future

    async def _transaction(self, job: Job[T], transaction: bool = True) -> T:
        if self._conn is None:
            self._conn = await self._connect()
        conn = self._conn
        if not transaction:
            return await job(conn)
        await conn.execute("BEGIN IMMEDIATE")
        try:
            result = await job(conn)
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
            raise
        return result

"""The ingest buffer: requests append in memory and return; a task writes batches.

A request never waits for the disk. One flush of 2,000 events is one transaction, which is
what lets one SQLite file take tens of thousands of events a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime

from .events import DropReason, Event
from .storage import Storage

log = logging.getLogger("zeef.buffer")


class EventBuffer:
    def __init__(self, storage: Storage, interval: float = 1.0, size: int = 2000) -> None:
        self.storage = storage
        self.interval = interval
        self.size = size
        self._events: list[Event] = []
        self._drops: Counter[tuple[int, str, str]] = Counter()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def add(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) >= self.size:
            self._wake.set()

    def drop(self, site_id: int, reason: DropReason, when: datetime) -> None:
        self._drops[(site_id, when.astimezone(UTC).date().isoformat(), reason.value)] += 1

    @property
    def pending(self) -> int:
        return len(self._events)

    async def flush(self) -> int:
        """Write everything buffered so far; returns the number of events written."""
        async with self._lock:
            events, self._events = self._events, []
            drops, self._drops = self._drops, Counter()
            try:
                # One transaction: events and drops are written together or not at all, so
                # a retry never stores a batch twice (issue 14, fault 2).
                await self.storage.write_batch(events, drops)
            except Exception:
                # Put them back in front, in order, so a locked or full disk loses nothing
                # that a later flush can still write.
                self._events[:0] = events
                self._drops.update(drops)
                raise
            return len(events)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="zeef-flush")

    async def stop(self) -> None:
        if self._task is not None:
            # Cancel between flushes only: a cancelled aiosqlite call goes on in its thread, so
            # a flush cut short lost its batch, or wrote it twice and never ended.
            async with self._lock:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                # The message carries no event data, so nothing personal reaches the log.
                log.exception("flush failed; %d events kept for the next try", self.pending)

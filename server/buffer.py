"""The ingest buffer: requests append in memory and return; a task writes batches.

A request never waits for the disk. One flush of 2,000 events is one transaction, which is
what lets one SQLite file take tens of thousands of events a second. The buffer is bounded by
events and by bytes: past the bound the collector answers 503 instead of queueing.
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

# What an event costs in memory beside its request body, for the byte bound. Measured with
# tracemalloc on the tracker's 80-byte body: 410 bytes an event held (the Event's 29 slots
# 272, its path 57, its hashes 68, its list slot 8), and a batch being written holds a row
# of about as much again. Body length plus 512 errs towards counting too much.
EVENT_OVERHEAD = 512
# A backlog is written in transactions of at most this many flush sizes (20,000 events by
# default); an ordinary flush, a little over one flush size, stays one transaction.
BACKLOG_BATCH = 10


class EventBuffer:
    def __init__(
        self,
        storage: Storage,
        interval: float = 1.0,
        size: int = 2000,
        max_events: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.storage = storage
        self.interval = interval
        self.size = size
        self.max_events = max_events
        self.max_bytes = max_bytes
        # True while the events held (queued or being written) reach either bound; the
        # collector reads it on every event, so it is a plain attribute, kept up to date here.
        self.full = False
        self._events: list[Event] = []
        # Estimated bytes of every event held, the batch being written included: a flush
        # waiting on a locked database still holds its events, and counting only the queue
        # let a second bound's worth in behind it.
        self._bytes = 0
        self._writing = 0
        # Queued events at which add() looks closer: the flush size, or the room left.
        self._check_at = min(size, max_events)
        self._drops: Counter[tuple[int, str, str]] = Counter()
        self._examples: dict[tuple[int, str, str], str] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def add(self, event: Event, size: int = EVENT_OVERHEAD) -> None:
        """Queue an event; `size` is its estimated memory (request body + EVENT_OVERHEAD)."""
        self._events.append(event)
        self._bytes += size
        # One length and two comparisons on every event (it is the hot path); the rest only
        # when a flush is due or a bound is near.
        if len(self._events) >= self._check_at or self._bytes >= self.max_bytes:
            self._check()

    def _check(self) -> None:
        if len(self._events) >= self.size:
            self._wake.set()
        if self.pending >= self.max_events or self._bytes >= self.max_bytes:
            self._set_full()

    def drop(
        self, site_id: int, reason: DropReason, when: datetime, example: str | None = None
    ) -> None:
        """Count a drop; `example` is what it was about (a page's host), the latest kept."""
        # Keyed by site, day and reason, so even a long overload keeps this counter small.
        key = (site_id, when.astimezone(UTC).date().isoformat(), reason.value)
        self._drops[key] += 1
        if example is not None:
            self._examples[key] = example[:253]

    @property
    def pending(self) -> int:
        """Events held: queued, or in a batch being written."""
        return len(self._events) + self._writing

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    async def flush(self) -> int:
        """Write everything buffered so far; returns the number of events written.

        A backlog (the database was locked a while) goes in batches of at most BACKLOG_BATCH
        flush sizes, each a transaction: one 100,000-event transaction held the write lock
        for seconds and built all its rows at once (+26 MiB over the bound's own memory).
        """
        async with self._lock:
            events, self._events = self._events, []
            drops, self._drops = self._drops, Counter()
            examples, self._examples = self._examples, {}
            # Under the lock nothing else is being written, so every byte counted is this
            # flush's (events added from here on count on top). Sizes are not kept one by
            # one: a batch written frees its share of them.
            held, held_bytes = len(events), self._bytes
            left_bytes = held_bytes
            written = 0
            step = self.size * BACKLOG_BATCH
            try:
                while True:
                    batch = events[:step]
                    del events[:step]
                    self._writing = len(batch) + len(events)
                    self._check_at = min(self.size, self.max_events - self._writing)
                    # One transaction: a batch's events and the drops are written together or
                    # not at all, so a retry never stores one twice (issue 14, fault 2).
                    await self.storage.write_batch(batch, drops, examples)
                    drops, examples = Counter(), {}
                    written += len(batch)
                    freed = left_bytes - (held_bytes * len(events) // held if held else 0)
                    self._bytes -= freed
                    left_bytes -= freed
                    batch = []
                    self._writing = len(events)
                    # Room is made batch by batch, so events are taken again after the first.
                    self._update_full()
                    if not events:
                        break
            except Exception:
                # Put what is unwritten back in front, in order, so a locked or full disk
                # loses nothing that a later flush can still write.
                self._events[:0] = batch + events
                self._drops.update(drops)
                self._examples = {**examples, **self._examples}
                raise
            finally:
                self._writing = 0
                self._check_at = min(self.size, self.max_events)
            return written

    def _set_full(self) -> None:
        if not self.full:
            self.full = True
            log.warning(
                "buffer full (%d events, %.1f MiB): answering 503 until the writer catches up",
                self.pending,
                self._bytes / 2**20,
            )

    def _update_full(self) -> None:
        full = self.pending >= self.max_events or self._bytes >= self.max_bytes
        if self.full and not full:
            log.warning("buffer below its bound again (%d events): accepting events", self.pending)
            self.full = False
        elif full:
            self._set_full()

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

"""Keeps the report engine's per-day sums current: a build every `every` seconds, in the
background, while the server runs (what is summed and how: storage/sqlite_rollups.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from ..storage import Storage

log = logging.getLogger("zeef.rollups")


class RollupBuilder:
    def __init__(self, storage: Storage, every: float, clock: Callable[[], datetime]) -> None:
        self.storage, self.every, self.clock = storage, every, clock
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()  # passed to build_rollups: ends a build between days
        self._wake = asyncio.Event()
        # Set once the first build has run (or failed): from then on a day's sums are only
        # built an interval (or a report's ask) later, which tests that move a clock rely on.
        self.first_build = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="zeef-rollups")

    async def stop(self) -> None:
        """End the builder. A build under way is not cancelled (a task cancelled while it
        opens a database connection leaves that connection's thread running, and the process
        cannot exit): it ends after the day it is summing."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                now = int(self.clock().timestamp())
                days = await self.storage.build_rollups(now, self._stop)
                log.debug("rollups: %d site-days summed", days)
            except Exception:
                # Reports read raw rows once the sums are 15 minutes behind (and for days
                # not summed), so failed builds cost speed, never a figure; the next one tries
                # again. Sums and counts only: nothing about a visitor can be in the message.
                log.exception("rollups: the build failed; reports read raw rows until one works")
            self.first_build.set()
            # The interval, or less when a report asked for a filter set not summed yet: its
            # next asks are fast a build later, not an interval later.
            waits = {
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(self.storage.rollups_wanted()),
            }
            _, pending = await asyncio.wait(
                waits, timeout=self.every, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

"""Stats API keys: made, shown once, kept as a hash, checked and rate-limited per request.

A request names its key as `Authorization: Bearer KEY`, as Plausible's API asks. An unknown
and a revoked key get the same answer, so the answer never tells which keys once existed.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .storage import Storage

PREFIX = "zeef_"
log = logging.getLogger("zeef.api")
# last_used_at is written at most this often per key: reads should not each cost a write.
TOUCH_EVERY = 60


def generate() -> str:
    """A new key: recognisable by its prefix (secret scanners, people), 32 random bytes."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def shown_prefix(key: str) -> str:
    """What listings show of a key: enough to tell keys apart, useless to an attacker."""
    return key[: len(PREFIX) + 6]


@dataclass
class RateLimiter:
    """A fixed window of an hour per key. NOTE: counts live in each server process, so with
    `--workers N` a key may make up to N times the limit; one process is the default."""

    limit: int
    clock: Callable[[], float] = time.time
    windows: dict[int, tuple[int, int]] = field(default_factory=dict)

    def allow(self, key_id: int) -> int | None:
        """None when this request may go on; else the seconds until the window resets."""
        now = int(self.clock())
        hour = now - now % 3600
        start, count = self.windows.get(key_id, (hour, 0))
        if start != hour:
            start, count = hour, 0
        if count >= self.limit:
            return start + 3600 - now
        self.windows[key_id] = (start, count + 1)
        return None


class Keys:
    """The one check every Stats API route makes before it reads anything."""

    def __init__(self, storage: Storage, limiter: RateLimiter) -> None:
        self.storage = storage
        self.limiter = limiter
        self.touched: dict[int, int] = {}

    async def authorise(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return _refuse("Missing API key: send it as `Authorization: Bearer KEY`", 401)
        found = await self.storage.api_key_by_hash(digest(key.strip()))
        if found is None:
            log.info("stats API request with an unknown or revoked key refused")
            return _refuse("Invalid API key: it does not exist or was revoked", 401)
        wait = self.limiter.allow(found["id"])
        if wait is not None:
            response = _refuse(
                f"Too many requests: this key may make {self.limiter.limit} an hour", 429
            )
            response.headers["Retry-After"] = str(wait)
            return response
        now = int(self.limiter.clock())
        if now - self.touched.get(found["id"], 0) >= TOUCH_EVERY:
            self.touched[found["id"]] = now
            await self.storage.touch_api_key(found["id"], now)
        request.state.api_key = found
        return None


def _refuse(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)

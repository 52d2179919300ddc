"""Stats API keys: made, shown once, kept as a hash, checked and rate-limited per request.

A request names its key as `Authorization: Bearer KEY`, as Plausible's API asks. An unknown
and a revoked key get the same answer, so the answer never tells which keys once existed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..storage import MetadataStore
from .permissions import Principal

PREFIX = "zeef_"
log = logging.getLogger("zeef.api")
# last_used_at is written at most this often per key: a read should not each time cost a
# write transaction, which waits behind the flush of an event batch.
TOUCH_EVERY = 60
HOUR = 3600
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

MISSING = "No API key: send one as `Authorization: Bearer KEY` (make it with `zeef apikey create`)"
INVALID = "This API key is not valid: it is unknown or was revoked"


@dataclass(frozen=True)
class ApiKey:
    """A stored key, as listings and routes see it: never the key, never its hash."""

    id: int
    owner: str
    label: str | None
    prefix: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ApiKey:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def generate() -> str:
    """A new key: recognisable by its prefix (secret scanners, people), 32 random bytes."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> bytes:
    """SHA-256, not a slow password hash: a key holds 256 random bits, so no guess list or
    brute force gets near it however fast the hash, and a lookup stays one index probe."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def shown_prefix(key: str) -> str:
    """What listings show of a key: enough to tell keys apart, useless to an attacker
    (6 characters are 36 of the 256 bits)."""
    return key[: len(PREFIX) + 6]


def owner(text: str) -> str:
    """The owner as stored and looked up: an email, in lower case, so `list Ops@Example.com`
    finds the keys made for ops@example.com. The accounts issue turns it into a user."""
    email = text.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise ValueError(f"the owner of an API key is an email address, not {text!r}")
    return email


@dataclass
class RateLimiter:
    """A fixed window of an hour per key, as Plausible's (600 requests by default).

    Its clock is this module's "now" (wall time, seconds). NOTE: counts live in each server
    process, so with `--workers N` a key may make up to N times the limit; one process is the
    default.
    """

    limit: int
    clock: Callable[[], float] = time.time
    windows: dict[int, tuple[int, int]] = field(default_factory=dict)

    def allow(self, key_id: int) -> int | None:
        """None when this request may go on; else the seconds until the window resets."""
        now = int(self.clock())
        hour = now - now % HOUR
        start, count = self.windows.get(key_id, (hour, 0))
        if start != hour:
            start, count = hour, 0
        if count >= self.limit:
            return start + HOUR - now
        self.windows[key_id] = (start, count + 1)
        return None


async def api_key_for(
    request: Request, storage: MetadataStore, limiter: RateLimiter
) -> tuple[ApiKey, Principal] | JSONResponse:
    """The key a Stats API request carries, or the answer to send instead: 401 without a key
    or with one that is unknown or revoked (one answer for both), 429 with Retry-After past the
    key's hourly limit. Read from the database each time, so a revoke holds at once in every
    process. The key itself is never logged."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    secret = value.strip()
    if scheme.lower() != "bearer" or not secret:
        return _refuse(MISSING, 401)
    row = await storage.api_key_by_hash(digest(secret))
    if row is None:
        log.info("Stats API request refused: unknown or revoked key")
        return _refuse(INVALID, 401)
    key = ApiKey.from_row(row)
    if row["blocked_at"] is not None:
        # A blocked user's keys stop with them, and say no more than an unknown key does.
        log.info("Stats API request refused: the key's owner is blocked")
        return _refuse(INVALID, 401)
    wait = limiter.allow(key.id)
    if wait is not None:
        response = _refuse(f"Too many requests: a key may make {limiter.limit} an hour", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    now = int(limiter.clock())
    # Decided from the row just read, so it holds across processes without memory of its own.
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        try:
            await storage.touch_api_key(key.id, now)
        except Exception:
            # A bookkeeping write that fails (a full disk) must not refuse a read.
            log.warning("could not record the last use of API key %d", key.id, exc_info=True)
    return key, key_principal(row)


def key_principal(row: Mapping[str, Any]) -> Principal:
    """Whom a key acts for: its owner's account, read-only. A key whose owner has no account
    was made at the CLI before accounts (or for the operator's own scripts): it keeps the
    operator's reach, as the CLI has."""
    if row["user_id"] is None:
        return Principal("api key", "superuser", None, row["owner"])
    return Principal("api key", row["role"], row["customer_id"], row["owner"], row["user_id"])


class Keys:
    """api_key_for in the shape the Stats API routes take (stats_api.Authorise): None when the
    request may go on, with whom it acts for in `request.state.principal` (and its key in
    `request.state.api_key`), or the answer to send."""

    def __init__(
        self,
        storage: MetadataStore,
        limiter: RateLimiter,
        sessions: Callable[[Request], Awaitable[Principal]] | None = None,
        shares: Callable[[Request, str], Awaitable[Principal | None]] | None = None,
    ) -> None:
        self.storage = storage
        self.limiter = limiter
        self.sessions = sessions
        # A share link's token is a Bearer too (issue 18): web/share.py's SharePages.bearer.
        self.shares = shares

    async def authorise(self, request: Request) -> Response | None:
        if (
            self.sessions is not None
            and request.method == "GET"
            and ("authorization" not in request.headers)
        ):
            # The dashboard's own reads carry the login session instead of a key. Reads only:
            # a cookie rides along on requests other sites make, and GETs change nothing.
            principal = await self.sessions(request)
            if principal.kind != "anonymous":
                request.state.principal = principal
                return None
        found = await api_key_for(request, self.storage, self.limiter)
        if isinstance(found, Response):
            if found.status_code == 401 and self.shares is not None:
                return await self._share(request, found)
            return found
        request.state.api_key, request.state.principal = found
        return None

    async def _share(self, request: Request, refused: Response) -> Response | None:
        """A Bearer that is no key may be a share link's token: its share's reach, limited
        per share as a key is per key (negative IDs: a share's, never a key's)."""
        assert self.shares is not None
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return refused
        principal = await self.shares(request, value.strip())
        if principal is None:
            return refused
        wait = self.limiter.allow(-request.state.share.id)
        if wait is not None:
            response = _refuse(
                f"Too many requests: a link may make {self.limiter.limit} an hour", 429
            )
            response.headers["Retry-After"] = str(wait)
            return response
        request.state.principal = principal
        return None


def _refuse(message: str, status: int) -> JSONResponse:
    # Plausible's error shape, so its client libraries show the message.
    return JSONResponse({"error": message}, status_code=status)

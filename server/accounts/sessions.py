"""Login sessions: a random ID in a signed, temporary cookie, naming a record on the server.

The record is read on every request, so logging out, blocking a user or resetting their
password ends their sessions at once, in every server process. Only the ID's SHA-256 is
stored. A session that saw no request for `idle` seconds (ZEEF_SESSION_IDLE, 8 h) is over.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.responses import Response

from ..storage import Storage
from .users import User

COOKIE = "zeef_session"
# Before login there is no session to hold a CSRF token: the login and set-password forms
# carry one that must equal this cookie's (a double-submit token, signed).
FORM_COOKIE = "zeef_form"
# seen_at is written at most this often a session: a page's parallel requests must not each
# cost a write transaction behind the flush of an event batch.
TOUCH_EVERY = 60


@dataclass(frozen=True)
class Session:
    id_hash: bytes
    user: User
    csrf_token: str


class Sessions:
    def __init__(self, storage: Storage, idle: int, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.idle = idle
        self.clock = clock
        # Set at start from the stored secret key (server/keys.py).
        self.secret = ""

    def _signer(self, purpose: str) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt=f"zeef.{purpose}")

    async def start(self, user: User) -> tuple[str, Session]:
        """A new session (always a new ID: a session fixed before login is never reused);
        the cookie's value and the session."""
        session_id = secrets.token_urlsafe(32)
        session = Session(_digest(session_id), user, secrets.token_urlsafe(32))
        now = int(self.clock())
        # Sessions left open (a closed browser) are deleted here, not only when next seen.
        await self.storage.end_idle_sessions(now - self.idle)
        await self.storage.add_session(session.id_hash, user.id, session.csrf_token, now)
        return self._signer("session").dumps(session_id), session

    async def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None (no cookie, a forged or stale one, idle
        too long, a blocked user)."""
        if not cookie:
            return None
        try:
            session_id = self._signer("session").loads(cookie)
        except BadSignature:
            return None
        if not isinstance(session_id, str):
            return None
        id_hash = _digest(session_id)
        row = await self.storage.session(id_hash)
        if row is None:
            return None
        now = int(self.clock())
        if now - row["seen_at"] > self.idle:
            await self.storage.end_session(id_hash)
            return None
        user = User.from_row(row)
        if user.blocked:
            return None
        if now - row["seen_at"] >= TOUCH_EVERY:
            await self.storage.touch_session(id_hash, now)
        return Session(id_hash, user, row["csrf_token"])

    async def end(self, session: Session) -> None:
        await self.storage.end_session(session.id_hash)

    def form_token(self, cookie: str | None) -> tuple[str, str | None]:
        """The pre-login form token for this browser, and the cookie to set when it has none
        yet (or a forged one)."""
        if cookie:
            try:
                token = self._signer("form").loads(cookie)
            except BadSignature:
                token = None
            if isinstance(token, str):
                return token, None
        token = secrets.token_urlsafe(32)
        return token, self._signer("form").dumps(token)

    def form_token_matches(self, cookie: str | None, sent: str | None) -> bool:
        token, fresh = self.form_token(cookie)
        return fresh is None and sent is not None and hmac.compare_digest(token, sent)


def set_cookie(response: Response, name: str, value: str, secure: bool) -> None:
    """A temporary cookie (no Expires or Max-Age: it goes when the browser closes), out of
    scripts' reach, not sent with other sites' requests."""
    response.set_cookie(name, value, path="/", httponly=True, samesite="lax", secure=secure)


def clear_cookie(response: Response, name: str, secure: bool) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=secure)


def csrf_matches(session: Session, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(session.csrf_token, sent)


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()

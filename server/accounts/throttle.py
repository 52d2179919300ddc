"""Login throttling: after LIMIT failures in WINDOW for an account, or from one truncated
address, further attempts wait. Kept in the database, so every server process counts alike.

An email that has no account is counted the same way, so the answer never tells which
emails have one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from ..storage import Storage

LIMIT = 5
WINDOW = 15 * 60


class LoginThrottle:
    def __init__(self, storage: Storage, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.clock = clock
        # Set at start from the stored secret key: accounts are kept as keyed hashes.
        self.key = b""

    def account(self, email: str) -> bytes:
        return hmac.digest(self.key, email.strip().lower().encode(), hashlib.sha256)[:16]

    async def wait(self, email: str, address: str) -> int | None:
        """None when an attempt may be made now; else the seconds until one may."""
        now = int(self.clock())
        by_account, oldest_account, by_address, oldest_address = await self.storage.login_failures(
            self.account(email), address, now - WINDOW
        )
        waits = [
            oldest + WINDOW - now
            for count, oldest in ((by_account, oldest_account), (by_address, oldest_address))
            if count >= LIMIT and oldest is not None
        ]
        return max(1, *waits) if waits else None

    async def failed(self, email: str, address: str) -> None:
        now = int(self.clock())
        await self.storage.add_login_failure(self.account(email), address, now, WINDOW)

    async def succeeded(self, email: str) -> None:
        await self.storage.clear_login_failures(self.account(email))

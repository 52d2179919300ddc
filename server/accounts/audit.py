"""The audit log: who did what to which account or setting, when, and from which truncated
address. Never a full address, never a password or a token."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..storage import Storage


@dataclass(frozen=True)
class Actor:
    """Who acts: a user (by email) from a truncated address, or the operator at the CLI."""

    name: str
    address: str = "-"
    email: str | None = None


# The operator at a terminal: the CLI acts with a superuser's reach (it holds the database).
CLI = Actor("cli")


async def record(
    storage: Storage,
    actor: Actor,
    action: str,
    object: str = "",
    customer_id: int | None = None,
) -> None:
    await storage.add_audit(
        {
            "at": int(time.time()),
            "actor": actor.name,
            "action": action,
            "object": object,
            "customer_id": customer_id,
            "address": actor.address,
        }
    )

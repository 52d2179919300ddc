"""Customers: the controllers whose sites Zeef measures for the operator. A site belongs to
one; once an install has customers, every new site must name its owner."""

from __future__ import annotations

import time
import unicodedata
from typing import Any

from ..storage import Storage

MAX_NAME = 100


class UnknownCustomer(LookupError):
    def __str__(self) -> str:
        return f"no customer {self.args[0]!r}; add it with `zeef customer add NAME`"


def normalise_name(name: str) -> str:
    """A customer's name as stored: trimmed, NFC, printable, 1 to MAX_NAME characters."""
    cleaned = unicodedata.normalize("NFC", name.strip())
    if not cleaned:
        raise ValueError("a customer needs a name")
    if len(cleaned) > MAX_NAME:
        raise ValueError(f"a customer's name is at most {MAX_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in cleaned):
        raise ValueError("a customer's name cannot hold control characters")
    return cleaned


async def add_customer(storage: Storage, name: str) -> dict[str, Any]:
    cleaned = normalise_name(name)
    created = int(time.time())
    customer_id = await storage.add_customer(cleaned, created)
    return {"id": customer_id, "name": cleaned, "created_at": created, "sites": 0}


async def get_customer(storage: Storage, name: str) -> dict[str, Any]:
    """The customer of that name (in any case); UnknownCustomer when there is none."""
    wanted = _nocase(normalise_name(name))
    for customer in await storage.customers():
        if _nocase(customer["name"]) == wanted:
            return customer
    raise UnknownCustomer(name)


def _nocase(name: str) -> str:
    # As SQLite's NOCASE, which keeps names unique (0013_customers.sql): ASCII letters only,
    # so "Ärzte" and "ärzte" may be two customers, and a lookup picks the one named.
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in name)

"""Users: who may log in, for which customer, with which role; blocking, passwords, removal;
the theme each chose for the pages.

Every change goes through here, so each is audited the same way from the CLI and the pages.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from ..storage import Storage
from . import audit
from .passwords import hash_password, password_problem, verify_password

Role = Literal["viewer", "admin", "superuser"]
ROLES: tuple[Role, ...] = ("viewer", "admin", "superuser")
CUSTOMER_ROLES: tuple[Role, ...] = ("viewer", "admin")
# How the pages are coloured for the user: as the device is set (prefers-color-scheme), or
# always light or always dark (migration 0016; base.html's data-theme).
Theme = Literal["system", "light", "dark"]
THEMES: tuple[Theme, ...] = ("system", "light", "dark")
# A set-password link lives a week: long enough for an invitation to wait over a weekend.
LINK_LIFETIME = 7 * 24 * 3600
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


T = TypeVar("T")
# Each argon2id hash or check holds 64 MiB for ~0.2-0.3 s (accounts/passwords.py): at most two
# at once, in threads, so a burst of logins neither stalls the event loop (and the collector
# with it) nor takes a gigabyte.
_HASHING = threading.BoundedSemaphore(2)


async def hashing(work: Callable[..., T], *args: Any) -> T:
    def guarded() -> T:
        with _HASHING:
            return work(*args)

    return await asyncio.to_thread(guarded)


async def check_password(stored: str, password: str) -> bool:
    return await hashing(verify_password, stored, password)


class UnknownUser(LookupError):
    def __str__(self) -> str:
        return f"no user {self.args[0]!r}; add one with `zeef user add`"


class WeakPassword(ValueError):
    """The password breaks the policy (accounts/passwords.py); the message says how."""


@dataclass(frozen=True)
class User:
    id: int
    email: str
    customer_id: int | None
    customer: str | None
    role: Role
    has_password: bool
    must_change_password: bool
    blocked_at: int | None
    language: str | None
    theme: Theme
    created_at: int

    @property
    def blocked(self) -> bool:
        return self.blocked_at is not None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(
            id=row["id"],
            email=row["email"],
            customer_id=row["customer_id"],
            customer=row["customer"],
            role=cast(Role, row["role"]),
            has_password=row["password_hash"] is not None,
            must_change_password=bool(row["must_change_password"]),
            blocked_at=row["blocked_at"],
            language=row["language"],
            theme=cast(Theme, row["theme"]),
            created_at=row["created_at"],
        )

    def listing(self) -> dict[str, Any]:
        """As `zeef user list --json` prints it: never the password's hash."""
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "customer": self.customer,
            "blocked": self.blocked,
            "password_set": self.has_password,
            "must_change_password": self.must_change_password,
            "created_at": self.created_at,
        }


def normalise_email(text: str) -> str:
    """An email as stored and looked up: trimmed, lower case, one @ and a dot in the domain."""
    email = text.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ValueError(f"not an email address: {text!r}")
    return email


def checked_hash(password: str, email: str) -> str:
    problem = password_problem(password, email)
    if problem:
        raise WeakPassword(problem)
    return hash_password(password)


async def get_user(storage: Storage, email: str) -> User:
    row = await storage.user_by_email(normalise_email(email))
    if row is None:
        raise UnknownUser(email)
    return User.from_row(row)


async def add_user(
    storage: Storage,
    email: str,
    role: Role,
    customer_id: int | None,
    password: str | None,
    actor: audit.Actor,
) -> User:
    """A new user; with a password, it is theirs to keep unless someone else chose it (then
    they choose a new one at their first login), and without one they set it through a link."""
    cleaned = normalise_email(email)
    if (role == "superuser") != (customer_id is None):
        raise ValueError("a superuser belongs to no customer; viewers and admins to one")
    hashed = await hashing(checked_hash, password, cleaned) if password is not None else None
    row = {
        "email": cleaned,
        "customer_id": customer_id,
        "role": role,
        "password_hash": hashed,
        # Someone else typed it (an operator at the CLI, an admin's form): it is not secret
        # from them, so its owner replaces it first.
        "must_change_password": int(hashed is not None and actor.email != cleaned),
        "created_at": int(time.time()),
    }
    user_id = await storage.add_user(row)
    await audit.record(storage, actor, "user added", f"{cleaned} ({role})", customer_id)
    stored = await storage.user_by_id(user_id)
    assert stored is not None
    return User.from_row(stored)


async def set_password(storage: Storage, user: User, password: str, actor: audit.Actor) -> None:
    """A new password ends every session the user has. Set by anyone but its owner, it must be
    changed at the next login."""
    hashed = await hashing(checked_hash, password, user.email)
    own = actor.email == user.email
    changes = {"password_hash": hashed, "must_change_password": int(not own)}
    await storage.update_user(user.id, changes, end_sessions=True)
    action = "password changed" if own else "password reset"
    await audit.record(storage, actor, action, user.email, user.customer_id)


async def reset_password(storage: Storage, user: User, actor: audit.Actor, public_url: str) -> str:
    """An administrator's reset: the old password stops working and every session ends at
    once; the user sets a new one through the one-time link returned."""
    changes = {"password_hash": None, "must_change_password": 0}
    await storage.update_user(user.id, changes, end_sessions=True)
    await audit.record(storage, actor, "password reset", user.email, user.customer_id)
    return await password_link(storage, user, public_url)


async def block(storage: Storage, user: User, actor: audit.Actor) -> None:
    await storage.update_user(user.id, {"blocked_at": int(time.time())}, end_sessions=True)
    await audit.record(storage, actor, "user blocked", user.email, user.customer_id)


async def unblock(storage: Storage, user: User, actor: audit.Actor) -> None:
    await storage.update_user(user.id, {"blocked_at": None}, end_sessions=False)
    await audit.record(storage, actor, "user unblocked", user.email, user.customer_id)


async def set_role(storage: Storage, user: User, role: Role, actor: audit.Actor) -> None:
    if role not in CUSTOMER_ROLES or user.role == "superuser":
        raise ValueError("a customer's user is a viewer or an admin")
    # Sessions end: a page open with the old role's links must not act with the new role's
    # reach, nor the other way round.
    await storage.update_user(user.id, {"role": role}, end_sessions=True)
    await audit.record(
        storage, actor, "role changed", f"{user.email}: {user.role} -> {role}", user.customer_id
    )


async def remove(storage: Storage, user: User, actor: audit.Actor) -> None:
    await storage.remove_user(user.id, user.email, int(time.time()))
    await audit.record(storage, actor, "user removed", user.email, user.customer_id)


async def set_theme(storage: Storage, user: User, theme: str) -> None:
    """The user's own choice of colours. Not audited, as the language is not: it changes how
    the pages look to them alone, and nothing they may see or do."""
    if theme not in THEMES:
        raise ValueError(f"not a theme: {theme!r}; one of {', '.join(THEMES)}")
    await storage.update_user(user.id, {"theme": theme}, end_sessions=False)


async def password_link(storage: Storage, user: User, public_url: str) -> str:
    """A one-time link to set the user's password, valid for LINK_LIFETIME."""
    token = secrets.token_urlsafe(32)
    expires = int(time.time()) + LINK_LIFETIME
    await storage.add_password_link(link_hash(token), user.id, expires)
    return f"{public_url.rstrip('/')}/set-password/{token}"


def link_hash(token: str) -> bytes:
    # As API keys: a random token needs no slow hash, and a copy of the database holds none.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

"""Share links: a site's statistics for people without an account, under conditions.

A link is `PUBLIC_URL/share/TOKEN`. The token is signed (itsdangerous, with the instance's
secret key) and names a share record and that record's random nonce; the record is read on
every request, so a revocation, an expiry or a change of conditions takes effect at once, and
`zeef share set ID --rotate` (a new nonce) kills every copy of the old link. What a share shows
is its `sections` of the dashboard, always under its `filters`; whether it has a password,
whether CSV may be downloaded, and which origins may frame it (`embed_origins`).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeSerializer

from ..accounts import audit
from ..accounts.passwords import hash_password, password_problem
from ..accounts.users import hashing
from ..reports.filters import FilterError, leaves, parse_v1
from ..sites import find_site
from ..storage import Storage

# The dashboard's sections a share may show, in its order, and the dimensions each one's
# panels (and a viewer's filters) may use. `overview` is the top line and the chart.
SECTIONS = ("overview", "pages", "sources", "locations", "devices", "goals", "consent")
SECTION_DIMENSIONS = {
    "pages": ("event:page", "visit:entry_page", "visit:exit_page", "event:hostname"),
    "sources": ("visit:source", "visit:channel", "visit:referrer", "visit:utm_source",
                "visit:utm_medium", "visit:utm_campaign", "visit:utm_content", "visit:utm_term"),
    "locations": ("visit:country", "visit:region", "visit:city"),
    "devices": ("visit:browser", "visit:browser_version", "visit:os", "visit:os_version",
                "visit:device"),
    "goals": ("event:goal", "event:name"),
}  # fmt: skip
SALT = "zeef-share"
# How long the right password opens a password-protected share in one browser.
PASSWORD_GRANT = 24 * 3600
_DURATION = re.compile(r"(\d+)([dwmy])")


class ShareError(ValueError):
    """Conditions that cannot be: the message says which and why (exit 2, a 400)."""


class Failure(Enum):
    """Why a token opens nothing: written to the audit log, never told to the visitor (every
    kind gets the same 404)."""

    TAMPERED = "tampered"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"
    WRONG_SITE = "wrong site"


@dataclass(frozen=True)
class Share:
    id: int
    site_id: int
    domain: str
    label: str
    nonce: str
    password_hash: str | None
    expires_at: int | None
    sections: tuple[str, ...]
    filters: str
    embed_origins: tuple[str, ...]
    csv: bool
    created_by: str
    created_at: int
    updated_at: int
    revoked_at: int | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Share:
        return cls(
            id=row["id"],
            site_id=row["site_id"],
            domain=row["domain"],
            label=row["label"],
            nonce=row["nonce"],
            password_hash=row["password_hash"],
            expires_at=row["expires_at"],
            sections=tuple(json.loads(row["sections"])),
            filters=row["filters"],
            embed_origins=tuple(json.loads(row["embed_origins"])),
            csv=bool(row["csv"]),
            created_by=row["created_by"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            revoked_at=row["revoked_at"],
        )

    def failure(self, now: float) -> Failure | None:
        """Why this share opens nothing now, or None while it is valid."""
        if self.revoked_at is not None:
            return Failure.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return Failure.EXPIRED
        return None

    def dimensions(self) -> frozenset[str]:
        """The dimensions the share's sections show, which a viewer may break down or filter
        by (custom properties with goals)."""
        return frozenset(d for s in self.sections for d in SECTION_DIMENSIONS.get(s, ()))

    def allows(self, dimension: str) -> bool:
        if dimension.startswith("event:props:"):
            return "goals" in self.sections
        return dimension in self.dimensions()

    def public(self, url: str) -> dict[str, Any]:
        """What listings show: never the nonce or the password's hash."""
        return {
            "id": self.id,
            "site": self.domain,
            "label": self.label,
            "url": url,
            "expires_at": self.expires_at,
            "password": self.password_hash is not None,
            "sections": list(self.sections),
            "filters": self.filters,
            "embed_origins": list(self.embed_origins),
            "csv": self.csv,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


# -- tokens ----------------------------------------------------------------------------------


def token(secret: str, share: Share) -> str:
    return str(URLSafeSerializer(secret, salt=SALT).dumps([share.id, share.nonce]))


def url(public_url: str, secret: str, share: Share) -> str:
    return f"{public_url.rstrip('/')}/share/{token(secret, share)}"


async def open_token(
    storage: Storage, secret: str, text: str, now: float | None = None
) -> tuple[Share | None, Failure | None, int | None]:
    """The share a token opens, or why it opens none (and the share ID it named, if any).

    Every kind of failure reads the database once, as success does, so the answer takes the
    same time whether the token was tampered with, revoked or never existed."""
    now = time.time() if now is None else now
    try:
        share_id, nonce = URLSafeSerializer(secret, salt=SALT).loads(text)
        if not isinstance(share_id, int) or not isinstance(nonce, str):
            raise BadSignature("not a share token")
    except (BadSignature, ValueError, TypeError):
        await storage.share(0)
        return None, Failure.TAMPERED, None
    row = await storage.share(share_id)
    if row is None:
        return None, Failure.UNKNOWN, share_id
    share = Share.of(row)
    if not hmac.compare_digest(share.nonce, nonce):
        return None, Failure.TAMPERED, share_id
    failure = share.failure(now)
    return (None, failure, share_id) if failure else (share, None, share_id)


async def current(storage: Storage, share_id: int, nonce: str, now: float) -> Share | None:
    """The share a cookie names (by ID and nonce), if it is still valid."""
    share, _failure = await checked(storage, share_id, nonce, now)
    return share


async def current_of(storage: Storage, share_id: int, now: float) -> Share | None:
    """A share by its ID alone (for Zeef's own links to it, as a report's), if still valid."""
    row = await storage.share(share_id)
    if row is None:
        return None
    share = Share.of(row)
    return None if share.failure(now) else share


async def checked(
    storage: Storage, share_id: int, nonce: str, now: float
) -> tuple[Share | None, Failure | None]:
    """The share a cookie names, or why it opens nothing now (a new link was made: TAMPERED,
    as an old token of it is)."""
    row = await storage.share(share_id)
    if row is None:
        return None, Failure.UNKNOWN
    share = Share.of(row)
    if not hmac.compare_digest(share.nonce, nonce):
        return None, Failure.TAMPERED
    failure = share.failure(now)
    return (None, failure) if failure else (share, None)


# -- conditions ------------------------------------------------------------------------------


def expiry(text: str, now: datetime) -> int:
    """`--expires`: a duration (30d, 2w, 6m, 1y) from now, or a date (the end of that day,
    UTC, is when the link stops)."""
    text = text.strip().lower()
    found = _DURATION.fullmatch(text)
    if found:
        count, unit = int(found.group(1)), found.group(2)
        if count <= 0:
            raise ShareError("--expires must be in the future")
        days = count * {"d": 1, "w": 7, "m": 30, "y": 365}[unit]
        return int((now + timedelta(days=days)).timestamp())
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ShareError(
            f"--expires {text!r}: give a duration (30d, 2w, 6m, 1y) or a date (2027-01-31)"
        ) from None
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
    if end <= now:
        raise ShareError(f"--expires {text}: that day is over")
    return int(end.timestamp())


def sections(names: Sequence[str]) -> tuple[str, ...]:
    chosen = [n.strip() for n in names if n.strip()]
    unknown = [n for n in chosen if n not in SECTIONS]
    if unknown:
        raise ShareError(f"unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    if not chosen:
        raise ShareError("a share shows at least one section")
    return tuple(s for s in SECTIONS if s in chosen)


def filters(text: str) -> str:
    """The filter every view of the share is locked to, checked as the Stats API checks it."""
    text = text.strip()
    if text:
        try:
            parsed = parse_v1(text)
        except FilterError as exc:
            raise ShareError(f"--filter: {exc}") from None
        if any(leaf.dimension == "event:goal" for f in parsed for leaf in leaves(f)):
            raise ShareError("--filter: a share cannot be locked to a goal")
    return text


def origins(values: Sequence[str]) -> tuple[str, ...]:
    """Origins allowed to frame the share: scheme://host[:port], nothing else (a path or a
    wildcard would end up in Content-Security-Policy frame-ancestors as something else)."""
    out = []
    for value in values:
        parts = urlsplit(value.strip())
        if (
            parts.scheme not in ("https", "http")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username
            or "*" in value
        ):
            raise ShareError(f"--embed-origin {value!r}: give an origin, as https://client.example")
        port = f":{parts.port}" if parts.port else ""
        origin = f"{parts.scheme}://{parts.hostname}{port}"
        if origin not in out:
            out.append(origin)
    return tuple(out)


def check_password(password: str) -> str:
    problem = password_problem(password)
    if problem:
        raise ShareError(problem)
    return password


# -- changes ---------------------------------------------------------------------------------


async def create(
    storage: Storage,
    actor: audit.Actor,
    domain: str,
    *,
    label: str = "",
    expires_at: int | None = None,
    password: str | None = None,
    shown: Sequence[str] = SECTIONS,
    locked: str = "",
    embed: Sequence[str] = (),
    csv: bool = True,
    now: float | None = None,
) -> Share:
    site = await find_site(storage, domain)
    if site is None:
        raise ShareError(f"no site {domain!r}")
    chosen, embedded = sections(shown), origins(embed)
    if password is not None and embedded:
        raise ShareError(
            "a password-protected share cannot be embedded: its password would have to live"
            " on the other site"
        )
    at = int(time.time() if now is None else now)
    row = {
        "site_id": site.id,
        "label": label.strip(),
        "nonce": secrets.token_urlsafe(16),
        "password_hash": await hashing(hash_password, check_password(password))
        if password is not None
        else None,
        "expires_at": expires_at,
        "sections": json.dumps(list(chosen)),
        "filters": filters(locked),
        "embed_origins": json.dumps(list(embedded)),
        "csv": int(csv),
        "created_by": actor.name,
        "created_at": at,
    }
    share_id = await storage.add_share(row)
    await audit.record(storage, actor, "share.create", f"share {share_id} of {domain}",
                       site.customer_id)  # fmt: skip
    found = await storage.share(share_id)
    assert found is not None
    return Share.of(found)


async def change(
    storage: Storage, actor: audit.Actor, share: Share, changes: dict[str, Any], now: float
) -> Share:
    """Set conditions (keys of sqlite_shares.SETTABLE, already checked, or `password`, the
    plain text to hash, None to remove it, or `rotate`: a new nonce, old links dead)."""
    row: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "password":
            row["password_hash"] = (
                await hashing(hash_password, check_password(value)) if value is not None else None
            )
        elif key == "rotate":
            if value:
                row["nonce"] = secrets.token_urlsafe(16)
        elif key in ("sections", "embed_origins"):
            row[key] = json.dumps(list(value))
        elif key == "csv":
            row[key] = int(value)
        else:
            row[key] = value
    has_password = row.get("password_hash", share.password_hash) is not None
    embeds = json.loads(row["embed_origins"]) if "embed_origins" in row else share.embed_origins
    if has_password and embeds:
        raise ShareError(
            "a password-protected share cannot be embedded: its password would have to live"
            " on the other site"
        )
    if row:
        await storage.update_share(share.id, row, int(now))
    site = await find_site(storage, share.domain)
    await audit.record(storage, actor, "share.change",
                       f"share {share.id} of {share.domain}: {', '.join(sorted(changes))}",
                       site.customer_id if site else None)  # fmt: skip
    found = await storage.share(share.id)
    assert found is not None
    return Share.of(found)


async def revoke(storage: Storage, actor: audit.Actor, share: Share, now: float) -> None:
    await storage.revoke_share(share.id, int(now))
    site = await find_site(storage, share.domain)
    await audit.record(storage, actor, "share.revoke", f"share {share.id} of {share.domain}",
                       site.customer_id if site else None)  # fmt: skip


async def accessed(
    storage: Storage,
    share_id: int | None,
    domain: str | None,
    outcome: str,
    address: str,
) -> None:
    """An access to a share link, in the audit log: success or the kind of failure, and the
    visitor's truncated address (never the token)."""
    customer_id = None
    if domain is not None:
        site = await find_site(storage, domain)
        customer_id = site.customer_id if site else None
    what = f"share {share_id}" if share_id is not None else "share ?"
    await audit.record(storage, audit.Actor("share link", address), f"share.access.{outcome}",
                       what, customer_id)  # fmt: skip

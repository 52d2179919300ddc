"""Sites: registering them, and the collector's in-memory lookup by domain."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .events import Site
from .storage import Storage

_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)


def normalise_domain(domain: str) -> str:
    """The site's domain as stored: lower case, no scheme, path, port or leading www."""
    text = domain.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).split("/", 1)[0].split(":", 1)[0]
    text = text.rstrip(".")
    if text.startswith("www."):
        text = text[4:]
    if not _DOMAIN.match(text):
        raise ValueError(f"not a domain name: {domain!r}")
    return text


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone: {name!r}") from None
    return name


async def add_site(storage: Storage, domain: str, timezone: str = "UTC") -> Site:
    return await storage.add_site(
        normalise_domain(domain), check_timezone(timezone), int(time.time())
    )


class UnknownSite(LookupError):
    """No site with that domain is registered."""

    def __str__(self) -> str:
        return f"no site {self.args[0]!r}; add it with `zeef site add`"


async def find_site(storage: Storage, domain: str) -> Site | None:
    wanted = normalise_domain(domain)
    return next((site for site in await storage.sites() if site.domain == wanted), None)


async def get_site(storage: Storage, domain: str) -> Site:
    """The site registered for `domain`; UnknownSite when there is none."""
    site = await find_site(storage, domain)
    if site is None:
        raise UnknownSite(domain)
    return site


class SiteRegistry:
    """Domain -> Site, held in memory; reloaded when an unknown domain shows up.

    Reloads are at most one per `min_reload` seconds, so a flood of events for made-up
    domains costs one query a second, not one per event.
    """

    def __init__(self, storage: Storage, min_reload: float = 1.0) -> None:
        self.storage = storage
        self.min_reload = min_reload
        self._by_domain: dict[str, Site] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def reload(self) -> None:
        sites = await self.storage.sites()
        self._by_domain = {site.domain: site for site in sites}
        self._loaded_at = time.monotonic()

    def cached(self, domains: tuple[str, ...]) -> list[Site] | None:
        """The ingest path's synchronous fast path: the one site named, when already loaded."""
        if len(domains) == 1:
            site = self._by_domain.get(_without_www(domains[0]))
            if site is not None:
                return [site]
        return None

    async def lookup(self, domains: Iterable[str]) -> list[Site]:
        wanted = list(dict.fromkeys(_without_www(d) for d in domains))
        found = [self._by_domain[d] for d in wanted if d in self._by_domain]
        if len(found) < len(wanted) and time.monotonic() - self._loaded_at >= self.min_reload:
            async with self._lock:
                if time.monotonic() - self._loaded_at >= self.min_reload:
                    await self.reload()
            found = [self._by_domain[d] for d in wanted if d in self._by_domain]
        return found


def _without_www(domain: str) -> str:
    return domain[4:] if domain.startswith("www.") else domain

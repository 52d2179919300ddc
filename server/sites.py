"""Sites: registering them, and the collector's in-memory lookup by domain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .events import Site
from .storage import Storage

log = logging.getLogger("zeef.sites")

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
    """Domain -> Site, held in memory and kept in step with the database.

    Every `interval` seconds a task reads the settings version (a one-row read; triggers bump
    it on every write to sites or their settings, from any process: migration 0008) and
    reloads the sites when it moved. So a change made with the CLI, in another worker or
    later in the web UI takes effect within about a second, and the ingest path reads only
    this dict: nothing an event.

    An event for a domain not held here is not dropped as unknown until a check begun after
    it arrived has finished, so a site added a moment ago is counted from its first event.
    Those checks begin at least `recheck` seconds apart and are shared by every event waiting
    for one: a flood of made-up domains costs twenty one-row reads a second, not one an event.
    """

    def __init__(self, storage: Storage, interval: float = 1.0, recheck: float = 0.05) -> None:
        self.storage = storage
        self.interval = interval
        self.recheck = recheck
        self.version: int | None = None
        self._by_domain: dict[str, Site] = {}
        # When the last finished check began (time.monotonic()).
        self._checked_at = float("-inf")
        self._check: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read every site now; at start, before the first event, and failing loudly."""
        began = time.monotonic()
        version = await self.storage.settings_version()
        self._use(await self.storage.sites(), version)
        self._checked_at = began

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll(), name="zeef-sites")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        # A check in flight is a read in aiosqlite's thread: let it end before storage closes.
        if self._check is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._check

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
        if len(found) < len(wanted):
            await self.checked_since(time.monotonic())
            found = [self._by_domain[d] for d in wanted if d in self._by_domain]
        return found

    async def checked_since(self, moment: float) -> None:
        """Return once a check of the settings version begun at or after `moment` has ended."""
        while self._checked_at < moment:
            check = self._check
            if check is None or check.done():
                check = self._check = asyncio.create_task(self._run_check(), name="zeef-sites")
            # Shielded: a caller that gives up (a client hanging up) must not cancel the check
            # the others are waiting for.
            await asyncio.shield(check)

    async def _run_check(self) -> None:
        wait = self._checked_at + self.recheck - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        began = time.monotonic()
        try:
            version = await self.storage.settings_version()
            if version != self.version:
                # The version is read first: a change committed between the two reads is
                # in the sites read, and seen again (harmlessly) by the next check.
                self._use(await self.storage.sites(), version)
        except Exception:
            # The message holds no event data. Events go on with the sites already loaded.
            log.exception("could not check the sites for changes; keeping those loaded")
        self._checked_at = began

    async def _poll(self) -> None:
        while True:
            due = self._checked_at + self.interval - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
            else:
                await self.checked_since(time.monotonic())

    def _use(self, sites: list[Site], version: int) -> None:
        self._by_domain = {site.domain: site for site in sites}
        self.version = version


def _without_www(domain: str) -> str:
    return domain[4:] if domain.startswith("www.") else domain

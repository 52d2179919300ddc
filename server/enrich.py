"""Enrichment: user agent, bot verdict, URL and referrer, GeoIP. Pure functions with caches."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import maxminddb

from . import bots, useragent

if TYPE_CHECKING:
    from .privacy import IPAddress


@dataclass(frozen=True, slots=True)
class Agent:
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str  # desktop | mobile | tablet | other
    is_bot: bool


# The bot verdict lives inside this cache, so a known UA costs ~0.2 us whatever it is. A miss
# costs ~0.2 ms on the 2-core dev machine (ua-parser's Rust resolver ~0.06 ms, the verdict the
# rest; tests/test_bots.py prints them), so a flood of made-up UAs is no cheap way to load the
# server. 8,192 entries (~3 MiB) hold every distinct UA of a busy day: the user-agents sample
# of real traffic has 952 in 10,000 draws.
@lru_cache(maxsize=8192)
def parse_agent(user_agent: str) -> Agent:
    """Parse a User-Agent header into browser, OS, device class and the bot verdict."""
    if not user_agent.strip():
        return Agent("", "", "", "", "other", True)
    ua = useragent.parse(user_agent)
    if ua.is_tablet:
        device = "tablet"
    elif ua.is_mobile:
        device = "mobile"
    elif ua.is_pc:
        device = "desktop"
    else:
        device = "other"
    return Agent(
        browser=ua.browser.family,
        browser_version=_major_minor(ua.browser.version_string),
        os=ua.os.family,
        os_version=_major_minor(ua.os.version_string),
        device=device,
        is_bot=bots.bot_reason(user_agent, ua) is not None,
    )


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@dataclass(frozen=True, slots=True)
class Location:
    """Where an event happened: the page's host and path, and the campaign it came from."""

    host: str
    path: str
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None


_SOURCE_KEYS = ("utm_source", "ref", "source")


@lru_cache(maxsize=4096)
def split_url(url: str, hash_mode: bool) -> Location:
    """Host and path of a page URL; the query string is dropped but for campaign fields.

    Raises ValueError for anything but an absolute http(s) URL. Cached: a site's pages repeat,
    and a hit costs 0.2 us against 9 us for urlsplit and the host.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an absolute http(s) URL")
    params: dict[str, str] = {}
    if parts.query:
        for key, value in parse_qsl(parts.query, keep_blank_values=False):
            lowered = key.lower()
            if (lowered.startswith("utm_") or lowered in _SOURCE_KEYS) and lowered not in params:
                params[lowered] = value[:200]
    path = parts.path or "/"
    if hash_mode and parts.fragment:
        path = f"{path}#{parts.fragment}"
    source = next((params[key] for key in _SOURCE_KEYS if key in params), None)
    return Location(
        host=_bare_host(parts.hostname),
        path=path[:2000],
        utm_source=source,
        utm_medium=params.get("utm_medium"),
        utm_campaign=params.get("utm_campaign"),
        utm_term=params.get("utm_term"),
        utm_content=params.get("utm_content"),
    )


def split_referrer(referrer: str | None, page_host: str) -> tuple[str | None, str | None]:
    """(host, path) of the referring page, or (None, None) for none or a self-referral."""
    if not referrer:
        return None, None
    return _split_referrer(referrer, page_host)


# Referrers repeat (search engines, social sites, the site's own pages): a hit is ~0.2 us
# against ~3 us for urlsplit. Bounded, since senders choose the keys.
@lru_cache(maxsize=4096)
def _split_referrer(referrer: str, page_host: str) -> tuple[str | None, str | None]:
    try:
        parts = urlsplit(referrer.strip())
        hostname = parts.hostname
    except ValueError:
        return None, None
    if not hostname:
        return None, None
    host = _bare_host(hostname)
    if host == page_host:
        return None, None
    return host, (parts.path or "/")[:500]


def _bare_host(hostname: str) -> str:
    host = hostname.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def host_matches(host: str, domain: str) -> bool:
    """True when a page on `host` belongs to the site `domain` (itself or a subdomain)."""
    if host == domain:  # the usual case, without normalising the domain again
        return True
    domain = _bare_host(domain)
    return host == domain or host.endswith("." + domain)


@dataclass(frozen=True, slots=True)
class Geo:
    country: str | None = None
    region: str | None = None
    city: str | None = None


NO_GEO = Geo()


def geoip_build(path: Path) -> tuple[int, str]:
    """When a GeoIP database was built (Unix seconds) and its type, for `zeef audit`; reads
    the metadata only. ValueError when the file is not a MaxMind-format database."""
    try:
        reader = maxminddb.open_database(str(path))
    except maxminddb.InvalidDatabaseError as exc:
        raise ValueError(str(exc)) from None
    try:
        meta = reader.metadata()
        return int(meta.build_epoch), str(meta.database_type)
    finally:
        reader.close()


class GeoIP:
    """Country, region and city from a MaxMind-format database (GeoLite2, DB-IP, IPinfo).

    Called by privacy.Addresses only: the full address passes through `lookup`, nothing keeps it.
    """

    def __init__(self, path: Path) -> None:
        self._reader = maxminddb.open_database(str(path))

    def lookup(self, address: IPAddress | None) -> Geo:
        if address is None:
            return NO_GEO
        try:
            record: Any = self._reader.get(address)
        except ValueError:
            return NO_GEO
        if not isinstance(record, dict):
            return NO_GEO
        country = (record.get("country") or {}).get("iso_code")
        subdivisions = record.get("subdivisions") or []
        region = subdivisions[0].get("iso_code") if subdivisions else None
        city = ((record.get("city") or {}).get("names") or {}).get("en")
        return Geo(country, f"{country}-{region}" if country and region else None, city)

    def close(self) -> None:
        self._reader.close()

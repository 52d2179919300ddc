"""Where the full client address lives and dies: the one module that reads it.

`Addresses` takes a request's peer and headers and gives back only what may leave: the visitor
hashes, the geo fields and the truncated label. tests/test_address_holder.py checks that no
other module reads the peer or X-Forwarded-For, calls the geo reader or calls `client_ip`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from starlette.types import Scope

from .config import Network, Settings
from .enrich import NO_GEO, Geo, GeoIP
from .events import Site

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Matomo's convention: masking 1/2/3 IPv4 bytes keeps an IPv6 /64, /48 or /32.
_IPV6_PREFIX = {1: 64, 2: 48, 3: 32}


def parse_ip(text: str) -> IPAddress | None:
    """The address in `text`, or None. inet_pton: 0.3 us where ipaddress's parser takes 12."""
    text = text.strip()
    try:
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        pass
    try:
        address = ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0]))
    except OSError:
        return None
    # A 6to4 address carries the visitor's whole IPv4 address in bits 16-48, which a /48 keeps:
    # treat it as that IPv4 address, so truncation removes what it must.
    return address.ipv4_mapped or address.sixtofour or address


# Each site an event names with the visitor's hash there and, without consent, their hash under
# yesterday's salt; and where the visitor is.
Identity = tuple[list[tuple[Site, int, int | None]], Geo]


class Addresses:
    """The only holder of full client addresses: each one lives for one call, in memory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.geoip = GeoIP(settings.geoip_db) if settings.geoip_db else None
        # Keys the hash of consented visitors' first-party IDs: set at start from the database
        # (server/keys.py), apart from the secret key.
        self.visitor_key = b""

    def identify(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        user_agent: str,
        salts: SaltPair,
        sites: list[Site],
        first_party_id: str | None,
    ) -> Identity:
        """The visitor's hash on each of `sites`, and the geo fields of their address.

        With a first-party ID (consent to analytics) the hash is of that ID, the same on every
        day; without, of the address and User-Agent under the daily salts.
        """
        peer = scope.get("client")
        forwarded = headers.get(b"x-forwarded-for")
        address = client_ip(
            peer[0] if peer else None,
            forwarded.decode("latin-1") if forwarded else None,
            self.settings.trusted_proxies,
        )
        geo = self.geoip.lookup(address) if self.geoip else NO_GEO
        # Loops that append, not comprehensions, and the sites in the tuples so that the caller
        # needs no zip(): bench/cost.py 258.9k -> 253.8k instructions a request (251.7k when the
        # collector did this itself).
        ids: list[tuple[Site, int, int | None]] = []
        if first_party_id is not None:
            key = self.visitor_key
            for site in sites:
                ids.append((site, consented_visitor_hash(key, site.id, first_party_id), None))
        else:
            for site in sites:
                current, previous = visitor_hashes(salts, site.id, address, user_agent)
                ids.append((site, current, previous))
        return ids, geo

    def label(self, scope: Scope) -> str:
        """The client as a log line may show it: see client_label."""
        return client_label(scope, self.settings)

    def close(self) -> None:
        if self.geoip:
            self.geoip.close()


def client_label(scope: Scope, settings: Settings) -> str:
    """The client as a log line may show it: the truncated address, or "-"."""
    peer = scope.get("client")
    forwarded = None
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    address = client_ip(peer[0] if peer else None, forwarded, settings.trusted_proxies)
    if address is None:
        return "-"
    return truncate_ip(address, settings.ip_mask_bytes)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> IPAddress | None:
    """The visitor's address: the socket peer, or X-Forwarded-For when the peer is trusted.

    Only this module calls it (tests/test_address_holder.py): what it returns must not leave.

    X-Forwarded-For is read right to left, skipping trusted proxies, so a visitor cannot
    forge their address by sending the header themselves.
    """
    if not peer:
        return None
    if not forwarded_for or not trusted:
        return parse_ip(peer)
    proxies = _proxies_for(trusted)
    address = proxies.seen.get(peer)
    if address is None:
        address = parse_ip(peer)
        if address is None or not proxies.trust(address):
            return address
        if len(proxies.seen) < 256:
            proxies.seen[peer] = address
    for hop in reversed(forwarded_for.split(",")):
        hop_address = parse_ip(hop)
        if hop_address is None:
            # A malformed hop: stop believing the chain and keep the last good address.
            return address
        address = hop_address
        if not proxies.trust(address):
            return address
    return address


def peer_is_trusted(scope: Scope, trusted: tuple[Network, ...]) -> bool:
    """Whether the request's socket peer is one of ZEEF_TRUSTED_PROXIES, as `client_ip` decides
    it: only then are its forwarding headers (X-Forwarded-Proto too) believed. The answer may
    leave this module; the address does not."""
    peer = scope.get("client")
    if not peer or not trusted:
        return False
    proxies = _proxies_for(trusted)
    if peer[0] in proxies.seen:
        return True
    address = parse_ip(peer[0])
    if address is None or not proxies.trust(address):
        return False
    if len(proxies.seen) < 256:
        proxies.seen[peer[0]] = address
    return True


class _Proxies:
    """ZEEF_TRUSTED_PROXIES as integer ranges, and the ones that have sent requests.

    ipaddress's `address in network` and the hash of a tuple of networks are Python code, ~1 us
    each, on every event behind a proxy; a mask and a compare on ints are ~0.4 us.
    """

    def __init__(self, trusted: tuple[Network, ...]) -> None:
        self.trusted = trusted
        self._ranges = tuple(
            (net.version == 4, int(net.network_address), int(net.netmask)) for net in trusted
        )
        # The proxies that have sent requests, by peer address: a handful of the operator's own
        # machines, never a visitor (an untrusted peer is not kept), so the common case behind
        # a proxy skips parsing and matching the peer.
        self.seen: dict[str, IPAddress] = {}

    def trust(self, address: IPAddress) -> bool:
        v4 = isinstance(address, ipaddress.IPv4Address)
        value = int(address)
        # A loop, not any() over a generator: this runs twice per event.
        for is_v4, network, mask in self._ranges:  # noqa: SIM110
            if is_v4 is v4 and value & mask == network:
                return True
        return False


_proxies: _Proxies | None = None


def _proxies_for(trusted: tuple[Network, ...]) -> _Proxies:
    """The _Proxies of this tuple of networks: the settings' own, the same object each time."""
    global _proxies
    proxies = _proxies
    if proxies is None or proxies.trusted is not trusted:
        proxies = _proxies = _Proxies(trusted)
    return proxies


def truncate_ip(address: IPAddress, mask_bytes: int) -> str:
    """The address with its last `mask_bytes` IPv4 bytes (or IPv6 bits past the prefix) zeroed."""
    if isinstance(address, ipaddress.IPv4Address):
        prefix = 32 - 8 * mask_bytes
    else:
        prefix = _IPV6_PREFIX[mask_bytes]
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def visitor_hash(salt: bytes, site_id: int, address: IPAddress | None, user_agent: str) -> int:
    """A signed 64-bit keyed hash: stable for one visitor on one site for one salt's life.

    BLAKE2b keyed with the daily salt; once the salt is deleted (after 48 h) nobody, us
    included, can link the hash back to an address or to another day's hash.
    """
    return _keyed_hash(_keyed(salt), _visitor_message(site_id, address, user_agent))


def visitor_hashes(
    salts: SaltPair, site_id: int, address: IPAddress | None, user_agent: str
) -> tuple[int, int | None]:
    """The visitor's hash under today's salt, and under yesterday's while that one exists."""
    message = _visitor_message(site_id, address, user_agent)
    current = _keyed_hash(salts.current_key, message)
    previous = salts.previous_key
    return current, _keyed_hash(previous, message) if previous is not None else None


def _visitor_message(site_id: int, address: IPAddress | None, user_agent: str) -> bytes:
    return b"%d\x00%b\x00%b" % (site_id, address.packed if address else b"", user_agent.encode())


def _keyed_hash(keyed: hashlib.blake2b, message: bytes) -> int:
    state = keyed.copy()
    state.update(message)
    return int.from_bytes(state.digest(), "big", signed=True)


def _keyed(salt: bytes) -> hashlib.blake2b:
    return hashlib.blake2b(key=salt, digest_size=8)


def consented_visitor_hash(key: bytes, site_id: int, first_party_id: str) -> int:
    """The hash of a consented visitor's first-party ID: the same on every day, so returning
    visitors can be counted, and never the ID itself, which stays in the visitor's cookie."""
    digest = hashlib.blake2b(
        b"%d\x00%b" % (site_id, first_party_id.encode()), key=key, digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def visitor_key_of_secret(secret: str) -> bytes:
    """The consented-visitor key as it was derived from the secret key before the two were
    apart (issue 14): an install upgraded from then keeps it, so its returning visitors stay
    recognised."""
    return hashlib.blake2b(secret.encode(), person=b"zeef-visitor", digest_size=32).digest()


@dataclass(frozen=True)
class SaltPair:
    day: str
    until: float  # unix time the day ends, UTC
    current: bytes
    previous: bytes | None
    # BLAKE2b keyed with each salt, copied for every hash: keying costs a compression of its
    # own (1.4 -> 0.8 us a hash). They live and die with the pair, like the salts.
    current_key: hashlib.blake2b = field(init=False, repr=False, compare=False)
    previous_key: hashlib.blake2b | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "current_key", _keyed(self.current))
        previous = _keyed(self.previous) if self.previous else None
        object.__setattr__(self, "previous_key", previous)


# Reads or creates the salt for a UTC day, deletes older ones, and returns (current, previous).
SaltLoader = Callable[[str, str, bytes], Awaitable[tuple[bytes, bytes | None]]]


class Salts:
    """Today's and yesterday's salt, shared between processes through the database.

    The first process to need a day's salt creates it; the others read the same row, so two
    workers give a visitor the same hash. The database is asked once per day per process.
    """

    def __init__(self, load: SaltLoader) -> None:
        self._load = load
        self._pair: SaltPair | None = None
        self._lock = asyncio.Lock()

    def cached(self, timestamp: float) -> SaltPair | None:
        """The pair for that unix time when already loaded: the ingest path's fast path."""
        pair = self._pair
        if pair is not None and pair.until > timestamp >= pair.until - 86400:
            return pair
        return None

    async def get(self, now: datetime) -> SaltPair:
        day = now.astimezone(UTC).date().isoformat()
        pair = self._pair
        if pair is not None and pair.day == day:
            return pair
        async with self._lock:
            if self._pair is None or self._pair.day != day:
                today = now.astimezone(UTC).date()
                yesterday = (today - timedelta(days=1)).isoformat()
                until = datetime.combine(today + timedelta(days=1), time(), UTC).timestamp()
                current, previous = await self._load(day, yesterday, secrets.token_bytes(32))
                self._pair = SaltPair(day, until, current, previous)
            return self._pair

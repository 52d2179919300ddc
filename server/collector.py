"""POST /api/event: route -> parse -> privacy -> enrich -> queue, answered at once with 202.

A plain ASGI endpoint: this is the one hot path, and Starlette's Request/Response objects
cost a fifth of its time for nothing it needs.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.types import Receive, Scope, Send

from . import enrich, privacy
from .buffer import EVENT_OVERHEAD, EventBuffer
from .config import Settings
from .events import DropReason, Event, Site
from .headers import ALWAYS, CONTENT_SECURITY_POLICY
from .ingest.plausible import MAX_BODY, Payload, PayloadError, parse_payload
from .logs import CLIENT_GONE
from .sites import SiteRegistry

log = logging.getLogger("zeef.access")

Clock = Callable[[], datetime]

# The security headers (server/headers.py) go on every answer with a body: the refusals' JSON,
# the 503. Not on the bodiless 202 and 204: there is nothing in them to sniff, no document to
# send a Referer from or to frame, and uvicorn checks each header with two regular expressions,
# so the two cost ~10k instructions a request (bench/cost.py, zeef: 252k -> 262k), which the
# visits kept at write time needed more.
_CORS = [(b"access-control-allow-origin", b"*")]
_REFUSED = [*_CORS, *ALWAYS, CONTENT_SECURITY_POLICY]
# Prebuilt, and only what a sender needs: uvicorn validates each header with two regular
# expressions, and the response start was a sixth of the whole request's time (py-spy).
# No body: uvicorn writes a non-empty body with a second send(2) of its own, and that syscall
# cost more than all of our parsing (strace: 2 writes a request against 1; senders ignore it).
_ACCEPTED = [(b"content-length", b"0"), *_CORS]
_PREFLIGHT = [
    *_CORS,
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-allow-headers", b"content-type"),
    (b"access-control-max-age", b"86400"),
]
_ACCEPTED_TYPES = (b"text/plain", b"application/json")
# Past the buffer's bound: a sender (the tracker uses sendBeacon/fetch and does not retry, a
# server-side sender may) is told when to try again; the reason is counted like any drop.
_OVERLOADED = [
    *_CORS,
    *ALWAYS,
    (b"access-control-expose-headers", b"x-zeef-drop, retry-after"),
    (b"x-zeef-drop", DropReason.OVERLOADED.encode()),
]


class TooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client hung up before its body was complete."""


class Collector:
    def __init__(
        self,
        settings: Settings,
        sites: SiteRegistry,
        salts: privacy.Salts,
        buffer: EventBuffer,
        addresses: privacy.Addresses,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.sites = sites
        self.salts = salts
        self.buffer = buffer
        # The client's address stays in there: the collector gets hashes, geo fields, a label.
        self.addresses = addresses
        self.clock = clock or (lambda: datetime.now(UTC))
        # About one flush from now, when room may have been made; capped, since a test or a
        # batch-only set-up may flush once an hour and a minute is long enough to back off.
        retry = min(max(1, math.ceil(settings.flush_interval)), 60)
        self._overloaded = [*_OVERLOADED, (b"retry-after", str(retry).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "OPTIONS":
            await _respond(send, 204, b"", _PREFLIGHT)
            return
        if method != "POST":
            await self.refuse(scope, send, 405, "use POST", [(b"allow", b"POST, OPTIONS")])
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"text/plain").split(b";")[0].strip()
        if content_type.lower() not in _ACCEPTED_TYPES:
            message = "send the event as text/plain or application/json JSON"
            await self.refuse(scope, send, 415, message)
            return
        try:
            body = await _read_body(receive, headers)
        except TooLarge:
            await self.refuse(scope, send, 413, "body larger than 8 KiB")
            return
        except ClientGone:
            # Not an invalid payload: there is no one to answer and nothing to count.
            self.log_refusal(scope, CLIENT_GONE, "client hung up")
            return
        now = self.clock()
        try:
            payload = parse_payload(body)
            location = enrich.split_url(payload.url, payload.hash_mode)
        except (PayloadError, ValueError) as exc:
            self.buffer.drop(0, DropReason.INVALID_PAYLOAD, now)
            await self.refuse(scope, send, 400, str(exc))
            return
        size = len(body) + EVENT_OVERHEAD
        reason = await self.ingest(payload, location, scope, headers, now, size)
        if reason is None:
            await send({"type": "http.response.start", "status": 202, "headers": _ACCEPTED})
            await send({"type": "http.response.body", "body": b""})
        elif reason is DropReason.OVERLOADED:
            # Not a refusal to log line by line: at thousands a second the log would become
            # the next thing to fill; the buffer logs when it fills and when it drains.
            await _respond(send, 503, b"", self._overloaded)
        else:
            drop = [
                *_CORS,
                (b"access-control-expose-headers", b"x-zeef-drop"),
                (b"x-zeef-drop", reason.encode()),
            ]
            await _respond(send, 202, b"", drop)

    async def refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        message: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer a 4xx with a JSON reason, and log it without the payload or full address."""
        self.log_refusal(scope, status)
        body = json.dumps({"error": message}).encode()
        await _respond(send, status, body, [*_REFUSED, *(extra or [])])

    def log_refusal(self, scope: Scope, status: int, why: str = "refused") -> None:
        if self.settings.access_log:
            log.info(
                '%s "%s %s" %d %s',
                self.addresses.label(scope),
                scope["method"],
                scope["path"],
                status,
                why,
            )

    async def ingest(
        self,
        payload: Payload,
        location: enrich.Location,
        scope: Scope,
        headers: dict[bytes, bytes],
        now: datetime,
        size: int = EVENT_OVERHEAD,
    ) -> DropReason | None:
        """Queue the event for each site it names; the drop reason when there is none.

        `size`, the event's estimated memory, counts towards the buffer's byte bound.
        """
        user_agent = headers.get(b"user-agent", b"").decode("latin-1")
        sites = self.sites.cached(payload.domains) or await self.sites.lookup(payload.domains)
        if not sites:
            self.buffer.drop(0, DropReason.UNKNOWN_SITE, now)
            return DropReason.UNKNOWN_SITE
        if not _any_matches(location.host, sites):
            for site in sites:
                self.buffer.drop(site.id, DropReason.DOMAIN_MISMATCH, now, location.host)
            return DropReason.DOMAIN_MISMATCH
        if headers.get(b"sec-gpc") == b"1" or headers.get(b"dnt") == b"1":
            honouring = [site for site in sites if site.honour_dnt]
            for site in honouring:
                self.buffer.drop(site.id, DropReason.OPTED_OUT, now)
            sites = [site for site in sites if not site.honour_dnt]
            if not sites:
                return DropReason.OPTED_OUT
        if payload.visitor is None and _any_requires_consent(sites):
            for site in sites:
                if site.require_consent:
                    self.buffer.drop(site.id, DropReason.NO_CONSENT, now)
            sites = [site for site in sites if not site.require_consent]
            if not sites:
                return DropReason.NO_CONSENT
        agent = enrich.parse_agent(user_agent)
        if agent.is_bot:
            for site in sites:
                self.buffer.drop(site.id, DropReason.BOT, now)
            return DropReason.BOT
        if self.buffer.full:
            # Checked this late so bots and other drops still get their own reason, and
            # before the hashing and GeoIP, which an event that is not kept does not need.
            for site in sites:
                self.buffer.drop(site.id, DropReason.OVERLOADED, now)
            return DropReason.OVERLOADED

        timestamp = now.timestamp()
        salts = self.salts.cached(timestamp) or await self.salts.get(now)
        ids, geo = self.addresses.identify(
            scope, headers, user_agent, salts, sites, payload.visitor
        )

        referrer_host, referrer_path = enrich.split_referrer(payload.referrer, location.host)
        props = json.dumps(payload.props, ensure_ascii=False) if payload.props else None
        revenue = str(payload.revenue_amount) if payload.revenue_amount is not None else None
        ts = int(timestamp)
        for site, visitor_id, previous_id in ids:
            # Positional, in Event's field order: 29 keyword arguments cost 3.9 us an event to
            # match to their names, positional ones 0.6 (tests/test_geo.py checks every
            # column of a fully filled event).
            self.buffer.add(
                Event(
                    site.id,
                    ts,
                    visitor_id,
                    previous_id,
                    payload.name,
                    location.host,
                    location.path,
                    referrer_host,
                    referrer_path,
                    location.utm_source,
                    location.utm_medium,
                    location.utm_campaign,
                    location.utm_term,
                    location.utm_content,
                    agent.browser,
                    agent.browser_version,
                    agent.os,
                    agent.os_version,
                    agent.device,
                    geo.country,
                    geo.region,
                    geo.city,
                    props,
                    revenue,
                    payload.revenue_currency,
                    payload.interactive,
                    payload.scroll_depth,
                    payload.engaged_ms,
                    payload.visitor is not None,  # consented
                ),
                size,
            )
        return None


# Loops, not any() over a generator: these run on every event, and a generator is ~0.5 us.
def _any_matches(host: str, sites: list[Site]) -> bool:
    for site in sites:  # noqa: SIM110
        if enrich.host_matches(host, site.domain):
            return True
    return False


def _any_requires_consent(sites: list[Site]) -> bool:
    for site in sites:  # noqa: SIM110
        if site.require_consent:
            return True
    return False


async def _read_body(receive: Receive, headers: dict[bytes, bytes]) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    start = [(b"content-length", str(len(body)).encode()), *headers]
    if body:
        content_type = b"application/json" if body.startswith(b"{") else b"text/plain"
        start.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})

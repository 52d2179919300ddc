"""A visitor's own data, self-service: `/privacy/DOMAIN/my-data` (docs/subject-rights.md).

The site links here with consent.js's `zeefConsent.myDataUrl()`: the visitor and consent IDs
ride in the fragment, so they reach no server log and no Referer. The page's script reads them
and POSTs them as JSON to `my-data/summary`, `/export`, `/erase` and `/withdraw`. The IDs are
the credential (128 random bits and a random UUID): no cookie, no session, so nothing another
origin could ride on; a JSON content type (which a cross-origin form cannot send, and fetch
only after a preflight we never answer) and Sec-Fetch-Site keep other sites out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import consent, subjects
from ..accounts import audit
from ..buffer import EventBuffer
from ..config import Settings
from ..events import Site
from ..privacy import client_label
from ..sites import find_site
from ..storage import Storage
from .templates import Pages
from .translations import LANGUAGES

MAX_BODY = 1024  # two IDs and their names: ~120 bytes
ACTIONS = ("summary", "export", "erase", "withdraw")
_NO_STORE = {"cache-control": "no-store"}


@dataclass
class Limiter:
    """At most `limit` requests per truncated address per window (in memory, per process):
    each request scans the site's events, and the IDs cannot be guessed anyway."""

    limit: int = 30
    window: int = 600
    clock: Callable[[], float] = time.time
    counts: dict[str, int] = field(default_factory=dict)
    started: int = 0

    def allow(self, key: str) -> bool:
        now = int(self.clock())
        if now - self.started >= self.window:
            self.started, self.counts = now, {}
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key] <= self.limit


class MyData:
    def __init__(
        self,
        storage: Storage,
        pages: Pages,
        settings: Settings,
        endpoints: consent.ConsentEndpoints,
        buffer: EventBuffer,
    ) -> None:
        self.storage, self.pages, self.settings = storage, pages, settings
        self.consent = endpoints  # its clock and the banner's texts, for a withdrawal's record
        # Flushed before an erasure, so the visitor's last hits, accepted but not yet written,
        # are not written after it. NOTE: other workers' buffers are not (up to a flush
        # interval, 1 s by default, of hits).
        self.buffer = buffer
        self.limiter = Limiter()
        # Set at start from the database (server/keys.py), as the collector's.
        self.visitor_key = b""

    def routes(self) -> list[Route]:
        return [
            Route("/privacy/{domain}/my-data", self.page, methods=["GET"]),
            Route("/privacy/{domain}/my-data/{action}", self.act, methods=["POST"]),
        ]

    async def _site(self, domain: str) -> Site | None:
        if len(domain) > 253:
            return None
        try:
            return await find_site(self.storage, domain)
        except ValueError:
            return None

    async def page(self, request: Request) -> Response:
        lang = request.query_params.get("lang")
        if lang in LANGUAGES:
            request.state.language = lang
        site = await self._site(request.path_params["domain"])
        if site is None:
            return self.pages.error(request, 404)
        context = {"site": site.domain, "base": f"/privacy/{site.domain}/my-data"}
        return self.pages.render(request, "my_data.html", context)

    async def act(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            return _refuse(404, "no such action")
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return _refuse(403, "only Zeef's own page may ask")
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            return _refuse(415, "send the IDs as application/json")
        if not self.limiter.allow(client_label(request.scope, self.settings)):
            return _refuse(429, "too many requests; try again in a few minutes")
        site = await self._site(request.path_params["domain"])
        if site is None:
            return _refuse(404, "unknown site")
        body = await _body(request)
        if body is None:
            return _refuse(413, "body larger than 1 KiB")
        try:
            subject = _subject(body)
        except ValueError as exc:
            return _refuse(400, str(exc))
        actor = audit.Actor("visitor", client_label(request.scope, self.settings))
        if action == "summary":
            found = await subjects.find(self.storage, site, subject, self.visitor_key)
            return JSONResponse(_summary(found), headers=_NO_STORE)
        if action == "export":
            document = await subjects.export(self.storage, site, subject, self.visitor_key, actor)
            disposition = f'attachment; filename="zeef-data-{site.domain}.json"'
            return Response(
                orjson.dumps(document, option=orjson.OPT_INDENT_2),
                media_type="application/json",
                headers={**_NO_STORE, "content-disposition": disposition},
            )
        if action == "erase":
            return await self._erase(site, subject, actor)
        return await self._withdraw(request, site, subject, actor)

    async def _erase(self, site: Site, subject: subjects.Subject, actor: audit.Actor) -> Response:
        if subject.visitor is None:
            return _refuse(400, "erasing needs the visitor ID")
        # The visitor's statistics only: consent records are the site's proof of what was
        # agreed (kept for their own period, docs/retention.md); an operator can erase them.
        await self.buffer.flush()
        deleted = await subjects.erase(
            self.storage, site, subjects.Subject(visitor=subject.visitor), self.visitor_key, actor
        )
        return JSONResponse({"erased": deleted}, headers=_NO_STORE)

    async def _withdraw(
        self, request: Request, site: Site, subject: subjects.Subject, actor: audit.Actor
    ) -> Response:
        """A `withdraw` record in the proof log, as the banner would post it, then erasure."""
        if subject.consent is None:
            return _refuse(400, "withdrawing needs the consent ID")
        config = await consent.site_config(self.storage, site)
        translations = self.consent.translations
        lang = translations.pick(request.query_params.get("lang"))
        shown = consent.public_config(site, config, lang, translations)
        decision = {
            "site": site.domain,
            "consent_id": subject.consent,
            "action": "withdraw",
            "choices": {category: category == "necessary" for category in config.categories},
            "revision": config.revision,
            "language": lang,
            "texts_hash": shown["texts_hash"],
            "path": f"/privacy/{site.domain}/my-data",
            "gpc": False,
        }
        now = int(self.consent.clock().timestamp())
        try:
            record = consent.parse_record(decision, site, config, now)
        except ValueError as exc:  # the banner's own checks; the IDs passed them already
            return _refuse(400, str(exc))
        await self.storage.insert_consent_record(record)
        await audit.record(self.storage, actor, "subject.withdraw",
                           f"{site.domain}: {subject.label}", site.customer_id)  # fmt: skip
        deleted: dict[str, int] = {}
        if subject.visitor is not None:
            await self.buffer.flush()
            only_visitor = subjects.Subject(visitor=subject.visitor)
            deleted = await subjects.erase(
                self.storage, site, only_visitor, self.visitor_key, actor
            )
        return JSONResponse({"withdrawn": True, "erased": deleted}, headers=_NO_STORE)


async def _body(request: Request) -> bytes | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return body


def _subject(body: bytes) -> subjects.Subject:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("body is not valid JSON") from None
    if not isinstance(data, dict) or set(data) - {"visitor", "consent"}:
        raise ValueError('body is {"visitor": ID or null, "consent": ID or null}')
    visitor, consent_id = data.get("visitor"), data.get("consent")
    for value in (visitor, consent_id):
        if value is not None and not isinstance(value, str):
            raise ValueError("IDs are strings")
    return subjects.Subject(visitor or None, consent_id or None)


def _summary(found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    visits = found["visits"]
    records = found["consent_records"]
    return {
        "counts": subjects.counts(found),
        "first_visit": min((v["started"] for v in visits), default=None),
        "last_visit": max((v["started"] for v in visits), default=None),
        "consent": records[-1]["choices"] if records else None,
    }


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=_NO_STORE)

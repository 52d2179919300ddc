"""A site's privacy statement and cookie declaration: `/privacy/DOMAIN` (HTML, ?lang=en|nl|es)
and `/privacy/DOMAIN.json` (the same facts, for a site that renders them itself).

Every figure comes from the running configuration (docs/privacy-statement.md says where from),
so changing a setting changes the statement. An unknown domain is the same 404 as any unknown
site; no customer name is ever shown.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import Settings
from ..consent import LANGUAGES, ConsentConfig, Translations, public_config
from ..events import Site
from ..privacy import truncate_ip
from ..retention import site_retention
from ..sites import find_site
from ..storage import Storage
from .templates import CONTENT_SECURITY_POLICY, Pages, language

SCHEMA = 1  # of the JSON; raised when a key changes meaning or goes
# What an event row holds (migrations 0001, 0006, 0007), in the template's words by key.
# "location" is listed only while a GeoIP database is configured: without one, none is derived.
COLLECTED = ("page", "event", "referrer", "campaign", "device", "location", "time", "engagement")
RIGHTS = ("access", "correction", "erasure", "portability", "withdrawal")
CACHE = "public, max-age=300"
# Sites fetch the JSON from their own origin; it is public and carries no credentials.
JSON_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET",
    "cache-control": CACHE,
    "vary": "Accept-Language",
}
# The one page any origin may frame: it is public, sets no cookie, reads no session and has
# nothing to click but links, so a frame cannot trick a visitor into an action.
FRAMED_CSP = CONTENT_SECURITY_POLICY.replace("frame-ancestors 'none'", "frame-ancestors *")


def ipv6_prefix(mask_bytes: int) -> int:
    """The IPv6 bits kept for a mask of `mask_bytes` IPv4 bytes, asked of truncate_ip itself
    so the statement cannot drift from what the ingest path does."""
    everything = ipaddress.IPv6Address(2**128 - 1)
    kept = ipaddress.IPv6Address(truncate_ip(everything, mask_bytes))
    return bin(int(kept)).count("1")


def active_shares(rows: list[dict[str, Any]], now: int) -> int:
    """Share links that work now: neither revoked nor expired."""
    return sum(
        1
        for row in rows
        if row["revoked_at"] is None and (row["expires_at"] is None or row["expires_at"] > now)
    )


def requested_language(request: Request) -> str | None:
    """`?lang=` when it is one of ours; else None, and the page follows Accept-Language."""
    lang = request.query_params.get("lang", "").strip().lower()
    return lang if lang in LANGUAGES else None


class PrivacyPage:
    def __init__(self, storage: Storage, pages: Pages, settings: Settings) -> None:
        self.storage, self.pages, self.settings = storage, pages, settings
        # The banner's own texts: the cookie table says what the banner says, word for word.
        self.banner_texts = Translations()

    def routes(self) -> list[Route]:
        # One route: `{name}` takes the domain with its dots; a trailing ".json" picks JSON.
        # /privacy/DOMAIN/my-data has an extra segment and so never matches this one.
        return [Route("/privacy/{name}", self.page, methods=["GET"])]

    async def site(self, domain: str) -> Site | None:
        try:
            return await find_site(self.storage, domain)
        except ValueError:  # not a domain name at all: as unknown as any other
            return None

    async def facts(self, site: Site, lang: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The statement's facts for `site`, texts in `lang` (the JSON, and the page's context),
        and the banner's texts in that language."""
        periods = await site_retention(self.storage, self.settings, site)
        stored = await self.storage.consent_config(site.id)
        try:
            config = ConsentConfig.from_json(stored) if stored else ConsentConfig()
        except ValueError:
            config = ConsentConfig()
        banner = public_config(site, config, lang, self.banner_texts)
        cookies = [
            {
                "name": cookie["name"],
                "purpose": cookie["purpose"],
                "lifetime": cookie["lifetime"],
                "category": category["id"],
                "category_name": category["name"],
                "set_by": "zeef" if cookie["name"] in ("zeef_consent", "zeef_id") else "site",
            }
            for category in banner["categories"]
            for cookie in category["cookies"]
        ]
        collected = [key for key in COLLECTED if key != "location" or self.settings.geoip_db]
        shares = await self.storage.shares_of_site(site.id)
        mask = self.settings.ip_mask_bytes
        policy = config.policy_url or ""
        facts = {
            "schema": SCHEMA,
            "site": site.domain,
            "language": lang,
            "controller": config.controller,
            # Checked when saved (ConsentConfig.checked); checked again, as it becomes an href.
            "policy_url": policy if policy.startswith(("https://", "http://")) else None,
            "purpose": "visit_statistics",
            "collected": collected,
            "ip_mask_bytes": mask,
            "ipv6_prefix_bits": ipv6_prefix(mask),
            "full_ip_stored": False,
            "cookieless_linkable": False,
            "honours_dnt": site.honour_dnt,
            "requires_consent": config.require_consent,
            "data_location": self.settings.data_location,
            "retention": {
                "events": str(periods.events),
                "events_days": periods.events.approx_days(),
                "consent_proof": str(periods.consent_proof),
                "consent_proof_days": periods.consent_proof.approx_days(),
                "keep_aggregates": periods.keep_aggregates,
            },
            "third_parties": [],
            "active_share_links": active_shares(shares, int(time.time())),
            "consent_lifetime_days": config.lifetime_days,
            "cookies": cookies,
            "rights": list(RIGHTS),
            # Absolute: a site that renders the JSON on its own origin links to us, not itself.
            "my_data_url": f"{self.settings.public_url}/privacy/{site.domain}/my-data",
        }
        return facts, banner["texts"]

    async def page(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        as_json = name.endswith(".json")
        site = await self.site(name.removesuffix(".json") if as_json else name)
        lang = requested_language(request)
        if lang is not None:
            request.state.language = lang
        if as_json:
            if site is None:
                return JSONResponse({"error": "unknown site"}, 404, headers=JSON_HEADERS)
            # Without ?lang=, the texts are English whatever the browser asks: a site that
            # fetches the JSON on its server gets the same answer every time.
            facts, _ = await self.facts(site, lang or "en")
            return JSONResponse(facts, headers=JSON_HEADERS)
        if site is None:
            return self.pages.error(request, 404)
        facts, texts = await self.facts(site, language(request))
        context = {
            "facts": facts,
            "reopen": texts.get("reopen", "Cookie settings"),
            "as_of": time.strftime("%Y-%m-%d", time.gmtime()),
            "embed": request.query_params.get("embed") == "true",
            # A visitor's page, not an admin's: the wordmark leads nowhere, no Referer leaves.
            "shared": True,
        }
        response = self.pages.render(request, "privacy.html", context)
        response.headers["cache-control"] = CACHE
        response.headers["vary"] = "Accept-Language"
        response.headers["content-security-policy"] = FRAMED_CSP
        del response.headers["x-frame-options"]
        return response

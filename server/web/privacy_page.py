"""A site's privacy statement and cookie declaration: `/privacy/DOMAIN` (HTML, ?lang=en|nl|es)
and `/privacy/DOMAIN.json` (the same facts, for a site that renders them itself).

Every figure comes from the running configuration, so changing a setting changes the statement.
An unknown domain is the same 404 as any unknown site; no customer name is ever shown.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import Settings
from ..consent import LANGUAGES, ConsentConfig
from ..retention import site_retention
from ..storage import Storage
from .templates import Pages

# The banner's own cookies (server/static/consent.js): always declared, whatever the config.
ZEEF_COOKIES = (
    {"name": "zeef_consent", "category": "necessary",
     "purpose": "Remembers your cookie choice and its consent ID."},
    {"name": "zeef_id", "category": "analytics",
     "purpose": "A random visitor ID, set only after you allow analytics."},
)  # fmt: skip
COLLECTED = ("page address and event name", "referring site and campaign (utm) tags",
             "browser, operating system and device type", "country, region and city",
             "time of the visit")  # fmt: skip
RIGHTS = ("access", "correction", "erasure", "portability", "withdrawal")
# Sites fetch the JSON from their own origin; it is public and carries no credentials.
JSON_HEADERS = {"access-control-allow-origin": "*", "access-control-allow-methods": "GET",
                "cache-control": "public, max-age=300"}  # fmt: skip


class PrivacyPage:
    def __init__(self, storage: Storage, pages: Pages, settings: Settings) -> None:
        self.storage, self.pages, self.settings = storage, pages, settings

    def routes(self) -> list[Route]:
        # One route: `{name}` takes the domain with its dots; a trailing ".json" picks JSON.
        # /privacy/DOMAIN/my-data has an extra segment and so never matches this one.
        return [Route("/privacy/{name}", self.page, methods=["GET"])]

    async def facts(self, domain: str) -> dict[str, Any] | None:
        site = next((s for s in await self.storage.sites() if s.domain == domain), None)
        if site is None:
            return None
        periods = await site_retention(self.storage, self.settings, site)
        stored = await self.storage.consent_config(site.id)
        try:
            config = ConsentConfig.from_json(stored) if stored else ConsentConfig()
        except ValueError:
            config = ConsentConfig()
        now = int(time.time())
        shares = [s for s in await self.storage.shares_of_site(site.id)
                  if s["revoked_at"] is None and (s["expires_at"] is None or s["expires_at"] > now)]  # fmt: skip
        lifetime = f"{config.lifetime_days} days"
        cookies = [{**cookie, "lifetime": lifetime, "set_by": "zeef"} for cookie in ZEEF_COOKIES
                   if cookie["category"] in config.categories]  # fmt: skip
        cookies += [{"name": c.name, "purpose": c.purpose, "lifetime": c.lifetime,
                     "category": c.category, "set_by": "site"} for c in config.cookies]  # fmt: skip
        return {
            "site": site.domain,
            "controller": config.controller,
            "policy_url": config.policy_url,
            "collected": list(COLLECTED),
            "purpose": "visit statistics",
            "ip_mask_bytes": self.settings.ip_mask_bytes,
            "full_ip_stored": False,
            "data_location": self.settings.data_location,
            "retention": {
                "events": str(periods.events),
                "events_days": periods.events.approx_days(),
                "consent_proof": str(periods.consent_proof),
                "keep_aggregates": periods.keep_aggregates,
            },  # fmt: skip
            "third_parties": [],
            "active_share_links": len(shares),
            "consent_lifetime_days": config.lifetime_days,
            "cookies": cookies,
            "rights": list(RIGHTS),
            "my_data_url": f"/privacy/{site.domain}/my-data",
            "cookieless_linkable": False,
        }

    async def page(self, request: Request) -> Response:
        name = request.path_params["name"]
        as_json = name.endswith(".json")
        facts = await self.facts(name[: -len(".json")] if as_json else name)
        if as_json:
            if facts is None:
                return JSONResponse({"error": "unknown site"}, 404, headers=JSON_HEADERS)
            return JSONResponse(facts, headers=JSON_HEADERS)
        # A bad or missing ?lang falls back to the visitor's Accept-Language, else English.
        lang = request.query_params.get("lang")
        if lang in LANGUAGES:
            request.state.language = lang
        if facts is None:
            return self.pages.error(request, 404)
        # Translated here, as plain text: the template's _() would mark its result safe, and a
        # purpose the site's config declares is its owner's text, to be escaped.
        gettext = self.pages.gettext(request)
        for cookie in facts["cookies"]:
            if cookie["set_by"] == "zeef":
                cookie["purpose"] = gettext(cookie["purpose"])
        response = self.pages.render(request, "privacy.html", {"facts": facts})
        response.headers["cache-control"] = "public, max-age=300"
        return response

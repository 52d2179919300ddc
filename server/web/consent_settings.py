"""A site's consent banner as an admin page: the form over ConsentConfig (what
`zeef consent configure` sets) and a live preview of the banner in each language.

ConsentSettings is an Admin: it uses the admin pages' frame (`_enter`, the one permission and
CSRF check; `_render`; `_actor`; `_site`) and adds only its own routes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import consent
from ..accounts import audit
from ..accounts.permissions import Action
from ..accounts.sessions import Session
from ..consent import ConsentConfig, DeclaredCookie
from ..events import Site
from .admin import Admin
from .forms import field, read_form
from .templates import CONTENT_SECURITY_POLICY, N_, page_headers

OPTIONAL = ("analytics", "marketing", "preferences")
# Each language named in itself, as a language menu does.
PREVIEW_LANGUAGES = {"en": "English", "nl": "Nederlands", "es": "Español"}
DAYS_A_MONTH = 30.44  # as consent.parse_lifetime counts "6m"
MAX_MONTHS = 13
MAX_CONTROLLER = 200
MAX_URL = 2000
SAVED = N_("The consent banner's settings were saved. Visitors see them within five minutes.")

# The settings page frames its previews; everything else stays as every admin page has it.
SETTINGS_POLICY = CONTENT_SECURITY_POLICY + "; frame-src 'self'"
# The preview may be framed by Zeef's own pages, and by nothing else.
PREVIEW_POLICY = CONTENT_SECURITY_POLICY.replace("frame-ancestors 'none'", "frame-ancestors 'self'")

# Not a file in dashboard/templates/: those pages run no script at all (tests/test_web_frame.py
# holds them to that), and this one exists to run the banner.
PREVIEW_PAGE = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="{{ preview_lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{{ heading }}</title>
<link rel="icon" href="{{ favicon }}" type="image/svg+xml">
<link rel="stylesheet" href="{{ stylesheet }}">
</head>
<body>
<main class="preview-page">
<h1>{{ heading }}</h1>
<p>{{ text }}</p>
</main>
<script src="/consent.js" data-site="{{ site.domain }}" data-preview></script>
</body>
</html>
"""
)
PREVIEW_HEADING = N_("An example page")
PREVIEW_TEXT = N_(
    "This is how visitors of %(domain)s see the consent banner. Every button works here, "
    "but nothing is stored and no cookie is set."
)


class ConsentSettings(Admin):
    def routes(self) -> list[Route]:
        return [
            Route("/sites/{domain}/consent", self.consent_page, methods=["GET", "POST"]),
            Route("/sites/{domain}/consent/preview", self.preview),
        ]

    async def _allowed(self, request: Request) -> tuple[Site, Session] | Response:
        """The site and session when the user may manage the site; else the answer."""
        return await self._site_page(request, Action.MANAGE_SITE)

    async def consent_page(self, request: Request) -> Response:
        allowed = await self._allowed(request)
        if isinstance(allowed, Response):
            return allowed
        site, session = allowed
        _ = self.pages.gettext(request)
        config = await consent.site_config(self.storage, site)
        form = _form_of(config)
        errors: dict[str, str] = {}
        cookie_errors: list[str] = []
        messages = []
        if request.method == "POST":
            posted = await read_form(request)
            form = _posted(posted)
            updated, errors, cookie_errors = self._updated(request, config, form)
            if updated is not None:
                changed = _changes(config, updated)
                if changed:
                    await self.storage.set_consent_config(
                        site.id, updated.to_json(), int(time.time())
                    )
                    await audit.record(self.storage, self._actor(request, session),
                                       "consent settings changed",
                                       f"{site.domain}: {', '.join(changed)}",
                                       site.customer_id)  # fmt: skip
                return RedirectResponse(
                    f"/sites/{site.domain}/consent?done=consent-saved", status_code=303
                )
            messages.append(("error", _("The settings were not saved: see what is marked below.")))
        elif request.query_params.get("done") == "consent-saved":
            messages.append(("success", _(SAVED)))
        context = {
            "site": site,
            "form": form,
            "errors": errors,
            "cookie_errors": cookie_errors,
            "revision": config.revision,
            "others": [c for c in config.categories if c not in ("necessary", *OPTIONAL)],
            "max_months": MAX_MONTHS,
            "previews": list(PREVIEW_LANGUAGES.items()),
            "messages": messages,
        }
        status = 400 if errors or cookie_errors else 200
        response = self._render(request, session, "consent_settings.html", context, "/sites",
                                status)  # fmt: skip
        response.headers["content-security-policy"] = SETTINGS_POLICY
        return response

    def _updated(
        self, request: Request, config: ConsentConfig, form: dict[str, Any]
    ) -> tuple[ConsentConfig | None, dict[str, str], list[str]]:
        """The config the form asks for, or the errors per field and per cookie line."""
        _ = self.pages.gettext(request)
        errors: dict[str, str] = {}
        months = form["lifetime_months"].strip()
        lifetime = config.lifetime_days
        # [0-9], not isdigit(): "²" is a digit to Python that int() refuses.
        if not re.fullmatch(r"[0-9]{1,2}", months) or not 1 <= int(months) <= MAX_MONTHS:
            errors["lifetime"] = _("Choose how long a decision holds: 1 to 13 months.")
        elif int(months) != _months(config.lifetime_days):  # an unchanged 90 days stays 90
            lifetime = round(int(months) * DAYS_A_MONTH)
        policy_url = form["policy_url"].strip()
        if policy_url and (len(policy_url) > MAX_URL or not re.match(r"^https?://\S+$",
                                                                     policy_url)):  # fmt: skip
            errors["policy_url"] = _(
                "Give the full address of the privacy statement, starting with https://."
            )
        controller = form["controller"].strip()
        if len(controller) > MAX_CONTROLLER:
            errors["controller"] = _("Keep the name under 200 characters.")
        # Categories set with `zeef consent configure` that this form has no box for are kept.
        others = [c for c in config.categories if c not in ("necessary", *OPTIONAL)]
        categories = ("necessary", *[c for c in OPTIONAL if c in form["categories"]], *others)
        cookies, cookie_errors = _cookies(form["cookies"], categories, config.cookies, _)
        if errors or cookie_errors:
            return None, errors, cookie_errors
        updated = replace(
            config,
            categories=categories,
            lifetime_days=lifetime,
            policy_url=policy_url or None,
            controller=controller or None,
            require_consent=form["require_consent"],
            consent_mode_v2=form["consent_mode_v2"],
            cookies=cookies,
            revision=config.revision + 1 if form["renew"] else config.revision,
        )
        try:
            return updated.checked(), {}, []
        except ValueError as error:  # what the checks above missed, in checked()'s words
            return None, {"form": str(error)}, []

    async def preview(self, request: Request) -> Response:
        allowed = await self._allowed(request)
        if isinstance(allowed, Response):
            return allowed
        site, _session = allowed
        lang = request.query_params.get("lang", "en")
        if lang not in PREVIEW_LANGUAGES:
            return self.pages.error(request, 404)
        gettext = self.pages.translations[lang].gettext
        html = PREVIEW_PAGE.render(
            preview_lang=lang,
            site=site,
            heading=gettext(PREVIEW_HEADING),
            text=gettext(PREVIEW_TEXT) % {"domain": site.domain},
            stylesheet=self.pages.static.url("zeef.css"),
            favicon=self.pages.static.url("favicon.svg"),
        )
        response = page_headers(HTMLResponse(html))
        response.headers["content-language"] = lang
        response.headers["content-security-policy"] = PREVIEW_POLICY
        response.headers["x-frame-options"] = "SAMEORIGIN"
        return response


def _months(days: int) -> int:
    return round(days / DAYS_A_MONTH)


def _form_of(config: ConsentConfig) -> dict[str, Any]:
    """The form's fields as the config stands."""
    return {
        "categories": set(config.categories),
        "lifetime_months": str(_months(config.lifetime_days)),
        "policy_url": config.policy_url or "",
        "controller": config.controller or "",
        "require_consent": config.require_consent,
        "consent_mode_v2": config.consent_mode_v2,
        "cookies": "\n".join(
            f"{c.category}:{c.name}:{c.lifetime}:{c.purpose}" for c in config.cookies
        ),
        "renew": False,
    }


def _posted(posted: Any) -> dict[str, Any]:
    """The form's fields as typed, to show again when something is wrong."""
    chosen = set(posted.getlist("category")) if posted is not None else set()
    return {
        "categories": {"necessary", *(c for c in OPTIONAL if c in chosen)},
        "lifetime_months": field(posted, "lifetime_months"),
        "policy_url": field(posted, "policy_url"),
        "controller": field(posted, "controller"),
        "require_consent": field(posted, "require_consent") == "on",
        "consent_mode_v2": field(posted, "consent_mode_v2") == "on",
        "cookies": field(posted, "cookies"),
        "renew": field(posted, "renew") == "on",
    }


def _cookies(
    text: str,
    categories: tuple[str, ...],
    declared: tuple[DeclaredCookie, ...],
    _: Callable[[str], str],
) -> tuple[tuple[DeclaredCookie, ...], list[str]]:
    """One cookie a line, as `zeef consent configure --cookie` takes it; a cookie declared
    before keeps the domain and path the CLI's JSON may have given it."""
    known = {(c.category, c.name): c for c in declared}
    cookies, errors = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            cookie = consent.parse_cookie(line)
        except ValueError:
            message = _("Line %(line)d: write CATEGORY:NAME:LIFETIME:PURPOSE, "
                        "e.g. marketing:_fbp:3 months:ads.")  # fmt: skip
            errors.append(message % {"line": number})
            continue
        cookie = replace(cookie, category=cookie.category.lower())
        if cookie.category not in categories or cookie.category == "necessary":
            message = _("Line %(line)d: %(category)s is not one of the optional categories "
                        "ticked above.")  # fmt: skip
            errors.append(message % {"line": number, "category": cookie.category})
            continue
        before = known.get((cookie.category, cookie.name))
        if before is not None:
            cookie = replace(cookie, domain=before.domain, path=before.path)
        cookies.append(cookie)
    return tuple(cookies), errors


def _changes(before: ConsentConfig, after: ConsentConfig) -> list[str]:
    """The names of the settings that differ, for the audit log."""
    names = ("categories", "lifetime_days", "policy_url", "controller", "require_consent",
             "consent_mode_v2", "cookies", "revision")  # fmt: skip
    return [name for name in names if getattr(before, name) != getattr(after, name)]

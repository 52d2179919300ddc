"""One-click unsubscribe from reports and alerts by e-mail: `/unsubscribe/TOKEN`.

GET shows what the link ends and a button; it changes nothing, as mail scanners follow every
link in a message. POST ends it: the button's form, and RFC 8058's one-click POST a mail
provider makes (body `List-Unsubscribe=One-Click`) are the same request. Neither carries a
cookie or a CSRF token: the token's signature (server/mail/unsubscribe.py) is the authority.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..accounts import audit
from ..config import Settings
from ..events import Site
from ..mail import unsubscribe
from ..privacy import client_label
from ..storage import Storage
from .forms import MAX_FORM, URLENCODED
from .templates import Pages

ONE_CLICK = ("List-Unsubscribe", "One-Click")


class Unsubscribe:
    def __init__(self, storage: Storage, pages: Pages, settings: Settings) -> None:
        self.storage, self.pages, self.settings = storage, pages, settings
        # Set at start from the stored secret key (server/keys.py).
        self.secret = ""

    def routes(self) -> list[Route]:
        return [Route("/unsubscribe/{token}", self.page, methods=["GET", "POST"])]

    async def page(self, request: Request) -> Response:
        _ = self.pages.gettext(request)
        target = unsubscribe.read(self.secret, request.path_params["token"])
        found = await self._find(target) if target is not None else None
        if target is None or found is None:
            return self.pages.error(request, 404, _("This unsubscribe link is not valid."))
        site, email, live, lang = found
        # The page in the language the mail was written in (languages.language reads this).
        request.state.language = lang
        reports = target.subscription_id is not None
        context = {"site": site.domain, "email": email, "reports": reports, "done": not live,
                   "action": request.url.path}  # fmt: skip
        if request.method == "POST":
            if not await _one_click(request):
                return self.pages.error(request, 400)
            if live and await self._end(target):
                actor = audit.Actor(email, client_label(request.scope, self.settings), email)
                mails = "reports" if reports else "alerts"
                await audit.record(self.storage, actor, "unsubscribed",
                                   f"{site.domain}: {mails} to {email}",
                                   site.customer_id)  # fmt: skip
            context["done"] = True
        return self.pages.render(request, "unsubscribe.html", context)

    async def _find(self, target: unsubscribe.Target) -> tuple[Site, str, bool, str] | None:
        """The site, the address, whether it still gets the mail, and the mail's language."""
        sites = {site.id: site for site in await self.storage.sites()}
        if target.subscription_id is not None:
            row = await self.storage.report_subscription(target.subscription_id)
            if row is None or row["site_id"] not in sites:
                return None
            live = row["unsubscribed_at"] is None
            return sites[row["site_id"]], row["email"], live, row["language"]
        if target.site_id not in sites or target.email is None:
            return None
        found = await self.storage.alert_settings(target.site_id)
        live = bool(found) and target.email in found[0]["recipients"]
        lang = found[0]["language"] if found else "en"
        return sites[target.site_id], target.email, live, lang

    async def _end(self, target: unsubscribe.Target) -> bool:
        if target.subscription_id is not None:
            return await self.storage.unsubscribe_report(target.subscription_id, int(time.time()))
        assert target.site_id is not None and target.email is not None
        return await self.storage.remove_alert_recipient(target.site_id, target.email)


async def _one_click(request: Request) -> bool:
    """Whether the body is RFC 8058's `List-Unsubscribe=One-Click`: urlencoded (our button,
    most providers) or multipart/form-data (which the RFC allows too)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return False
    if content_type == URLENCODED:
        try:
            pairs = parse_qsl(body.decode("utf-8"), max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            return False
        return ONE_CLICK in pairs
    if content_type == "multipart/form-data":
        # One field: its name and value are all there is to see, and no file is read.
        return b'name="List-Unsubscribe"' in body and b"One-Click" in body
    return False

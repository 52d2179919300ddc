"""Share links, opened: `/share/TOKEN` and the read-only dashboard at `/shared/ID`.

Route -> the share (its token once, then a cookie bound to it; the record read on every
request) -> a View of its sections under its filter -> the dashboard's own page, details and
export, so a share shows the figures a user would see (issue 18).

The token leaves the address bar at once: the first visit moves it into an HttpOnly cookie
bound to that share (its ID and nonce, signed) and redirects to `/shared/ID`, as GoatCounter
does; pages send `Referrer-Policy: no-referrer`, and the access log prints `/share/…` without
it. Whatever is wrong with a token or cookie (tampered, unknown, revoked, expired, another
share's), the answer is the same 404 page as for an address that never existed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import reports
from ..accounts.permissions import Principal
from ..accounts.throttle import LoginThrottle
from ..accounts.users import check_password
from ..config import Settings
from ..events import Site
from ..privacy import client_label
from ..reports.query import Query
from ..sharing import shares
from ..sharing.shares import Share
from ..sites import find_site
from ..storage import Storage
from .dashboard import Dashboard
from .export import Export
from .forms import field, read_form
from .templates import CONTENT_SECURITY_POLICY, Pages
from .view import View

COOKIE_SALT = "zeef-share-cookie"
# A share's pages keep only what they show: `embed` and `theme` lay them out, the rest are the
# dashboard's own parameters.
EMBED_PARAMETERS = ("embed", "theme")


class SharePages:
    def __init__(
        self,
        storage: Storage,
        pages: Pages,
        dashboard: Dashboard,
        export: Export,
        throttle: LoginThrottle,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.pages = pages
        self.dashboard = dashboard
        self.export = export
        self.throttle = throttle
        self.settings = settings
        self.clock = clock
        # Set at start from the stored secret key (server/keys.py), as the sessions' is.
        self.secret = ""

    def routes(self) -> list[Route]:
        return [
            Route("/share/{token}", self.open),
            Route("/shared/{id:int}", self.site),
            Route("/shared/{id:int}/password", self.password, methods=["POST"]),
            Route("/shared/{id:int}/details/{dimension}", self.details),
            Route("/shared/{id:int}/export", self.archive),
            Route("/shared/{id:int}/export/{name}.csv", self.single),
            Route("/shared/{id:int}/live", self.live),
            Route("/shared/{id:int}/panel/{index:int}", self.panel),
            Route("/shared/{id:int}/top", self.top),
        ]

    # -- the link --------------------------------------------------------------------------------

    async def open(self, request: Request) -> Response:
        """GET /share/TOKEN: the token into a cookie bound to its share, then its clean URL."""
        address = client_label(request.scope, self.settings)
        found, failure, share_id = await shares.open_token(
            self.storage, self.secret, request.path_params["token"], self.clock()
        )
        if found is None:
            kind = failure.value if failure else "unknown"
            await shares.accessed(self.storage, share_id, None, kind, address)
            return self._not_found(request)
        await shares.accessed(self.storage, found.id, found.domain, "ok", address)
        kept = {k: v for k, v in request.query_params.items() if k in EMBED_PARAMETERS}
        target = f"/shared/{found.id}" + (f"?{urlencode(kept)}" if kept else "")
        response = RedirectResponse(target, status_code=303)
        self._set_cookie(request, response, found, {"c": secrets.token_urlsafe(16)})
        return self._headers(response, found)

    # -- the pages -------------------------------------------------------------------------------

    async def site(self, request: Request) -> Response:
        opened = await self._opened(request)
        if isinstance(opened, Response):
            return opened
        share, site, view, grant = opened
        if share.password_hash is not None and grant.get("p", 0) < self.clock():
            return self._password_page(request, share, grant)
        theme = request.query_params.get("theme")
        response = await self.dashboard.page(
            request, site, view, lambda context: self._frame(request, context, view, theme)
        )
        return self._headers(response, share)

    async def details(self, request: Request) -> Response:
        opened = await self._unlocked(request)
        if isinstance(opened, Response):
            return opened
        share, site, view = opened
        theme = request.query_params.get("theme")
        response = await self.dashboard.details_page(
            request,
            site,
            view,
            lambda context: self._frame(request, context, view, theme, "details.html"),
        )
        return self._headers(response, share)

    async def archive(self, request: Request) -> Response:
        opened = await self._unlocked(request)
        if isinstance(opened, Response):
            return opened
        share, site, view = opened
        return self._headers(await self.export.archive_of(request, site, view), share)

    async def single(self, request: Request) -> Response:
        opened = await self._unlocked(request)
        if isinstance(opened, Response):
            return opened
        share, site, view = opened
        return self._headers(await self.export.single_of(request, site, view), share)

    async def panel(self, request: Request) -> Response:
        """One panel, for a placeholder of the share's page (not audited: the page was)."""
        opened = await self._unlocked(request, audited=False)
        if isinstance(opened, Response):
            return opened
        share, site, view = opened
        return self._headers(await self.dashboard.panel_page(request, site, view), share)

    async def top(self, request: Request) -> Response:
        """The top line and chart, for the page's placeholder (not audited: the page was)."""
        opened = await self._unlocked(request, audited=False)
        if isinstance(opened, Response):
            return opened
        share, site, view = opened
        return self._headers(await self.dashboard.top_page(request, site, view), share)

    async def live(self, request: Request) -> Response:
        """Current visitors, for dashboard.js's refresh (the share's cookie rides along, which
        the Stats API would not read). Not audited: it comes every 30 s."""
        opened = await self._unlocked(request, audited=False)
        if isinstance(opened, Response):
            return opened
        share, site, _view = opened
        if "overview" not in share.sections:
            return self._not_found(request)
        now = self.dashboard.admin.clock()
        count = await reports.realtime_visitors(self.storage, Query.realtime(site, now), now)
        return self._headers(JSONResponse(count), share)

    async def password(self, request: Request) -> Response:
        """POST /shared/ID/password: the right password opens the share in this browser for
        PASSWORD_GRANT; wrong ones are throttled as logins are."""
        share_id = request.path_params["id"]
        grant = self._grant(request, share_id)
        form = await read_form(request)
        # The form's token is bound to the share's cookie: without both, a forged form.
        if (
            grant is None
            or form is None
            or not secrets.compare_digest(str(grant.get("c", "")), field(form, "csrf"))
        ):
            return self.pages.error(request, 403)
        share = await shares.current(self.storage, share_id, grant["n"], self.clock())
        if share is None or share.password_hash is None:
            return self._not_found(request)
        address = client_label(request.scope, self.settings)
        account = f"share {share.id}"
        wait = await self.throttle.wait(account, address)
        if wait is not None:
            refused = self.pages.error(request, 429)
            refused.headers["Retry-After"] = str(wait)
            return self._headers(refused, share)
        if not await check_password(share.password_hash, field(form, "password")):
            await self.throttle.failed(account, address)
            await shares.accessed(self.storage, share.id, share.domain, "wrong password", address)
            _ = self.pages.gettext(request)
            return self._password_page(
                request, share, grant, _("That is not the password of this link."), 400
            )
        await self.throttle.succeeded(account)
        await shares.accessed(self.storage, share.id, share.domain, "password ok", address)
        response = RedirectResponse(f"/shared/{share.id}", status_code=303)
        until = int(self.clock()) + shares.PASSWORD_GRANT
        self._set_cookie(request, response, share, {**grant, "p": until})
        return self._headers(response, share)

    # -- the share behind a request --------------------------------------------------------------

    async def _opened(
        self, request: Request, audited: bool = True
    ) -> Response | tuple[Share, Site, View, dict[str, Any]]:
        """The share this browser opened (its cookie), still valid, its site and its view;
        else the 404 every failure gets."""
        share_id = request.path_params["id"]
        grant = self._grant(request, share_id)
        if grant is None:
            # No cookie of this share (or a forged one): the link was never opened here.
            await self.storage.share(0)  # the same read as the other answers, the same time
            return self._not_found(request)
        address = client_label(request.scope, self.settings)
        share, failure = await shares.checked(
            self.storage, share_id, str(grant.get("n")), self.clock()
        )
        site = await find_site(self.storage, share.domain) if share is not None else None
        if share is None or site is None:
            kind = failure.value if failure else "unknown"
            await shares.accessed(self.storage, share_id, None, kind, address)
            return self._not_found(request)
        if audited:
            await shares.accessed(self.storage, share.id, share.domain, "ok", address)
        embed = request.query_params.get("embed") == "true"
        view = View(
            f"/shared/{share.id}",
            sections=frozenset(share.sections),
            locked=(share.filters,) if share.filters else (),
            allows=share.allows,
            csv=share.csv,
            embed=embed,
            live_url=f"/shared/{share.id}/live" if "overview" in share.sections else "",
            shared=True,
        )
        return share, site, view, grant

    async def _unlocked(
        self, request: Request, audited: bool = True
    ) -> Response | tuple[Share, Site, View]:
        """As _opened, and past the password if the share has one (else its page)."""
        opened = await self._opened(request, audited)
        if isinstance(opened, Response):
            return opened
        share, site, view, grant = opened
        if share.password_hash is not None and grant.get("p", 0) < self.clock():
            return RedirectResponse(f"/shared/{share.id}", status_code=303)
        return share, site, view

    def _grant(self, request: Request, share_id: int) -> dict[str, Any] | None:
        raw = request.cookies.get(_cookie_name(share_id))
        if not raw:
            return None
        try:
            grant = URLSafeSerializer(self.secret, salt=COOKIE_SALT).loads(raw)
        except BadSignature:
            return None
        if not isinstance(grant, dict) or grant.get("s") != share_id:
            return None
        return grant

    def _set_cookie(
        self, request: Request, response: Response, share: Share, grant: dict[str, Any]
    ) -> None:
        value = URLSafeSerializer(self.secret, salt=COOKIE_SALT).dumps(
            {**grant, "s": share.id, "n": share.nonce}
        )
        path = f"/shared/{share.id}"
        if request.query_params.get("embed") == "true" and share.embed_origins:
            # In another site's frame the cookie is a third party's: sent only with
            # SameSite=None (and so Secure), and kept apart per embedding site (CHIPS's
            # Partitioned, which Starlette writes on Python 3.14 only: written here).
            response.headers.append(
                "set-cookie",
                f"{_cookie_name(share.id)}={value}; HttpOnly; Max-Age={shares.PASSWORD_GRANT};"
                f" Path={path}; SameSite=None; Secure; Partitioned",
            )
            return
        response.set_cookie(
            _cookie_name(share.id),
            value,
            max_age=shares.PASSWORD_GRANT,
            path=path,
            httponly=True,
            samesite="lax",
            secure=self.dashboard.admin.auth.secure(request),
        )

    # -- pages' frame ----------------------------------------------------------------------------

    def _frame(
        self,
        request: Request,
        context: dict[str, Any],
        view: View,
        theme: str | None,
        template: str = "dashboard.html",
    ) -> Response:
        return self.pages.render(
            request, template, {**context, "shared": True, "embed": view.embed}, theme=theme
        )

    def _password_page(
        self,
        request: Request,
        share: Share,
        grant: dict[str, Any],
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        context = {
            "share": share,
            "csrf_token": grant.get("c", ""),
            "error": error,
            "shared": True,
        }
        page = self.pages.render(request, "share_password.html", context, status_code=status)
        return self._headers(page, share)

    def _not_found(self, request: Request) -> Response:
        return self._headers(self.pages.error(request, 404), None)

    def _headers(self, response: Response, share: Share | None) -> Response:
        """No Referer from a share's pages; framing by the share's origins only."""
        response.headers["referrer-policy"] = "no-referrer"
        response.headers["cache-control"] = "no-store"
        if share is not None and share.embed_origins:
            ancestors = " ".join(share.embed_origins)
            response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY.replace(
                "frame-ancestors 'none'", f"frame-ancestors {ancestors}"
            )
            if "x-frame-options" in response.headers:
                del response.headers["x-frame-options"]
        return response

    # -- the Stats API ---------------------------------------------------------------------------

    async def bearer(self, request: Request, text: str) -> Principal | None:
        """A share token as the Stats API's Bearer: the share's one site, its sections and
        filter (stats_api.limited), or None (the API's 401)."""
        address = client_label(request.scope, self.settings)
        found, failure, share_id = await shares.open_token(
            self.storage, self.secret, text, self.clock()
        )
        if found is None:
            kind = failure.value if failure else "unknown"
            await shares.accessed(self.storage, share_id, None, f"api {kind}", address)
            return None
        await shares.accessed(self.storage, found.id, found.domain, "api ok", address)
        request.state.share = found
        return Principal.of_share(found.site_id)


def _cookie_name(share_id: int) -> str:
    return f"zeef_share_{share_id}"

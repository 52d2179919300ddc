"""Who a request acts for, and the answer when they may not: the route's side of
accounts/permissions.py.

Pages learn the principal from the session cookie; the Stats API from a Bearer key, or from
the session cookie on reads (GET), so the dashboard's own requests need no key.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..accounts.permissions import ANONYMOUS, Action, Decision, Principal, decide
from ..accounts.sessions import COOKIE, Session, Sessions, csrf_matches
from ..config import Settings
from ..headers import is_https
from .templates import Pages


class Auth:
    def __init__(self, sessions: Sessions, pages: Pages, settings: Settings) -> None:
        self.sessions = sessions
        self.pages = pages
        self.settings = settings

    async def session(self, request: Request) -> Session | None:
        """The request's live session, read once a request."""
        if "session" not in request.state._state:
            found = await self.sessions.find(request.cookies.get(COOKIE))
            request.state.session = found
            if found is not None:
                # Pages.render reads both: the user's own language and colours.
                if found.user.language:
                    request.state.language = found.user.language
                request.state.theme = found.user.theme
        session: Session | None = request.state.session
        return session

    async def principal(self, request: Request) -> Principal:
        session = await self.session(request)
        return Principal.of_user(session.user) if session else ANONYMOUS

    def secure(self, request: Request) -> bool:
        return is_https(request.scope, self.settings.trusted_proxies)

    async def guard(self, request: Request, action: Action, owner: int | None) -> Response | None:
        """None when the request's user may do `action` to an object of `owner`; else the
        page to answer with. A user who must change their password does that first."""
        session = await self.session(request)
        principal = Principal.of_user(session.user) if session else ANONYMOUS
        if session is not None and session.user.must_change_password:
            return RedirectResponse("/account/password", status_code=303)
        return self.refusal(request, decide(principal, action, owner))

    def refusal(self, request: Request, decision: Decision) -> Response | None:
        if decision is Decision.ALLOW:
            return None
        if decision is Decision.LOGIN:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        if decision is Decision.FORBID:
            return self.pages.error(request, 403)
        return self.pages.error(request, 404)

    async def csrf_ok(self, request: Request, sent: str | None) -> bool:
        session = await self.session(request)
        return session is not None and csrf_matches(session, sent)

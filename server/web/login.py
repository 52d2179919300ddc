"""Logging in and out, changing a password, setting one from a one-time link.

Every form posts a CSRF token: the session's, or before login the signed form cookie's.
A failed login costs the same time and gets the same answer whether the email has an account
or not: an unknown email is checked against a stand-in hash.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..accounts import audit, users
from ..accounts.passwords import MIN_LENGTH, hash_password
from ..accounts.sessions import COOKIE, FORM_COOKIE, Sessions, clear_cookie, set_cookie
from ..accounts.throttle import LoginThrottle
from ..accounts.users import User, WeakPassword
from ..config import Settings
from ..privacy import client_label
from ..storage import Storage
from .auth import Auth
from .forms import field, read_form
from .templates import Pages

log = logging.getLogger("zeef.accounts")
HOME = "/sites"


class Login:
    def __init__(
        self,
        storage: Storage,
        sessions: Sessions,
        throttle: LoginThrottle,
        auth: Auth,
        pages: Pages,
        settings: Settings,
    ) -> None:
        self.storage = storage
        self.sessions = sessions
        self.throttle = throttle
        self.auth = auth
        self.pages = pages
        self.settings = settings
        # Checked for an email without an account, so a miss costs what a wrong password does.
        self._stand_in = hash_password("zeef stand-in password, never a real one")

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/account/password", self.change_password, methods=["GET", "POST"]),
            Route("/set-password/{token}", self.set_password, methods=["GET", "POST"]),
        ]

    # -- logging in ---------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        nxt = _local(request.query_params.get("next"))
        if request.method == "GET":
            if await self.auth.session(request) is not None:
                return RedirectResponse(nxt, status_code=303)
            return self._login_page(request, nxt)
        form = await read_form(request)
        if form is None:
            return self.pages.error(request, 403)
        nxt = _local(field(form, "next") or request.query_params.get("next"))
        if not self.sessions.form_token_matches(
            request.cookies.get(FORM_COOKIE), field(form, "csrf")
        ):
            return self._forbidden_form(request)
        email = field(form, "email").strip().lower()[:254]
        password = field(form, "password")
        address = client_label(request.scope, self.settings)
        wait = await self.throttle.wait(email, address)
        if wait is not None:
            refused = self.pages.error(request, 429)
            refused.headers["Retry-After"] = str(wait)
            return refused
        row = await self.storage.user_by_email(email) if email else None
        stored = row["password_hash"] if row and row["password_hash"] else self._stand_in
        matches = await users.check_password(stored, password)
        actor = audit.Actor(email or "-", address, email)
        if row is None or not matches or row["password_hash"] is None:
            await self.throttle.failed(email, address)
            await audit.record(
                self.storage,
                audit.Actor("-", address),
                "login failed",
                email if row else "(no such account)",
                row["customer_id"] if row else None,
            )
            _ = self.pages.gettext(request)
            error = _("That email and password do not match an account.")
            return self._login_page(request, nxt, error=error, email=email, status=400)
        user = User.from_row(row)
        if user.blocked:
            await audit.record(self.storage, actor, "login refused: blocked", user.email,
                               user.customer_id)  # fmt: skip
            _ = self.pages.gettext(request)
            error = _("This account is blocked. Ask your administrator.")
            return self._login_page(request, nxt, error=error, email=email, status=403)
        await self.throttle.succeeded(email)
        cookie, _session = await self.sessions.start(user)
        await audit.record(self.storage, actor, "login", user.email, user.customer_id)
        target = "/account/password" if user.must_change_password else nxt
        response = RedirectResponse(target, status_code=303)
        set_cookie(response, COOKIE, cookie, self.auth.secure(request))
        clear_cookie(response, FORM_COOKIE, self.auth.secure(request))
        return response

    def _login_page(
        self,
        request: Request,
        nxt: str,
        error: str | None = None,
        email: str = "",
        status: int = 200,
    ) -> Response:
        token, cookie = self.sessions.form_token(request.cookies.get(FORM_COOKIE))
        context = {"error": error, "email": email, "csrf_token": token, "next": nxt}
        response = self.pages.render(request, "login.html", context, status_code=status)
        if cookie is not None:
            set_cookie(response, FORM_COOKIE, cookie, self.auth.secure(request))
        return response

    async def logout(self, request: Request) -> Response:
        session = await self.auth.session(request)
        form = await read_form(request)
        if session is not None:
            if form is None or not await self.auth.csrf_ok(request, field(form, "csrf")):
                return self._forbidden_form(request)
            await self.sessions.end(session)
            actor = audit.Actor(session.user.email, client_label(request.scope, self.settings))
            await audit.record(self.storage, actor, "logout", session.user.email,
                               session.user.customer_id)  # fmt: skip
        response = RedirectResponse("/login", status_code=303)
        clear_cookie(response, COOKIE, self.auth.secure(request))
        return response

    # -- passwords ----------------------------------------------------------------------------

    async def change_password(self, request: Request) -> Response:
        session = await self.auth.session(request)
        if session is None:
            return RedirectResponse("/login?next=%2Faccount%2Fpassword", status_code=303)
        user = session.user
        _ = self.pages.gettext(request)
        context: dict[str, Any] = {
            "forced": user.must_change_password,
            "min_length": MIN_LENGTH,
            "csrf_token": session.csrf_token,
            "action": "/account/password",
            "error": None,
            "user": user,
        }
        if request.method == "GET":
            return self.pages.render(request, "password.html", context)
        form = await read_form(request)
        if form is None or not await self.auth.csrf_ok(request, field(form, "csrf")):
            return self._forbidden_form(request)
        row = await self.storage.user_by_id(user.id)
        current = field(form, "current_password")
        if row is None or not await users.check_password(row["password_hash"] or "", current):
            context["error"] = _("Your current password is not right.")
            return self.pages.render(request, "password.html", context, status_code=400)
        new, repeat = field(form, "new_password"), field(form, "repeat_password")
        if new != repeat:
            context["error"] = _("The two new passwords differ.")
            return self.pages.render(request, "password.html", context, status_code=400)
        if new == current:
            context["error"] = _("Choose a password other than the one you have.")
            return self.pages.render(request, "password.html", context, status_code=400)
        actor = audit.Actor(user.email, client_label(request.scope, self.settings), user.email)
        try:
            # Ends every session, this one too; a fresh one follows, so this browser stays in.
            await users.set_password(self.storage, user, new, actor)
        except WeakPassword as exc:
            context["error"] = str(exc)
            return self.pages.render(request, "password.html", context, status_code=400)
        fresh = await self.storage.user_by_id(user.id)
        assert fresh is not None
        cookie, _session = await self.sessions.start(User.from_row(fresh))
        response = RedirectResponse(HOME + "?changed=password", status_code=303)
        set_cookie(response, COOKIE, cookie, self.auth.secure(request))
        return response

    async def set_password(self, request: Request) -> Response:
        token = request.path_params["token"]
        now = int(self.sessions.clock())
        user_id = await self.storage.password_link(users.link_hash(token), now)
        row = await self.storage.user_by_id(user_id) if user_id is not None else None
        if row is None:
            return self.pages.error(request, 404, self.pages.gettext(request)(
                "This link is not valid: it was used already, or it expired. "
                "Ask your administrator for a new one."))  # fmt: skip
        user = User.from_row(row)
        form_token, cookie = self.sessions.form_token(request.cookies.get(FORM_COOKIE))
        _ = self.pages.gettext(request)
        context: dict[str, Any] = {
            "csrf_token": form_token,
            "action": request.url.path,
            "min_length": MIN_LENGTH,
            "email": user.email,
            "error": None,
        }
        if request.method == "POST":
            form = await read_form(request)
            if form is None or not self.sessions.form_token_matches(
                request.cookies.get(FORM_COOKIE), field(form, "csrf")
            ):
                return self._forbidden_form(request)
            new, repeat = field(form, "new_password"), field(form, "repeat_password")
            if new != repeat:
                context["error"] = _("The two passwords differ.")
            else:
                try:
                    hashed = await users.hashing(users.checked_hash, new, user.email)
                except WeakPassword as exc:
                    context["error"] = str(exc)
                else:
                    if await self.storage.use_password_link(
                        users.link_hash(token), user.id, hashed, now
                    ):
                        actor = audit.Actor(
                            user.email, client_label(request.scope, self.settings), user.email
                        )
                        await audit.record(self.storage, actor, "password set from link",
                                           user.email, user.customer_id)  # fmt: skip
                        return RedirectResponse("/login?set=1", status_code=303)
                    return self.pages.error(request, 404)
        status = 400 if context["error"] else 200
        response = self.pages.render(request, "set_password.html", context, status_code=status)
        if cookie is not None:
            set_cookie(response, FORM_COOKIE, cookie, self.auth.secure(request))
        return response

    def _forbidden_form(self, request: Request) -> Response:
        log.info("form refused: missing or wrong CSRF token on %s", request.url.path)
        _ = self.pages.gettext(request)
        return self.pages.error(
            request,
            403,
            _("This form has expired or did not come from this site. Reload the page and "
              "try again."),
        )  # fmt: skip


def _local(target: str | None) -> str:
    """Where to go after login: a path on this server only (no `//host`, no scheme), so the
    login page cannot be used to send someone elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    return target

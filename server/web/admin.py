"""The admin pages: sites (settings, installation check, consent log), users, API keys,
customers and the audit log.

Every handler finds its object, asks `Auth.guard` whether the user may act on it (the one
permission check), then checks the form's CSRF token; another customer's object is answered
exactly as one that does not exist.
"""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from babel.numbers import format_decimal
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import purge, reports, retention, sites
from ..accounts import apikeys, audit, customers, users
from ..accounts.permissions import Action, Principal, may
from ..accounts.sessions import Session
from ..accounts.users import User
from ..config import Settings
from ..events import Site
from ..privacy import client_label
from ..reports.query import Query
from ..storage import CustomerExists, SiteExists, Storage, UserExists
from .auth import Auth
from .forms import field, read_form
from .templates import N_, Pages, language

# Messages after a redirect, named in the query string (?done=...), so a reload does not post
# the form again and no text from the URL is ever shown.
DONE = {
    "site-added": N_("The site was added. Put the snippet below on its pages."),
    "site-saved": N_("The site's settings were saved."),
    "site-deleted": N_("The site and all its data were deleted."),
    "subject-erased": N_("The data was erased, from the database file and its journal."),
    "retention-saved": N_("The retention period was saved; the next purge applies it."),
    "customer-saved": N_("The customer's retention settings were saved."),
    "customer-deleted": N_(
        "The customer, its sites with all their data, and its users were deleted."
    ),
    "role": N_("The role was changed; their sessions have ended."),
    "blocked": N_("The user was blocked; their sessions have ended."),
    "unblocked": N_("The user can log in again."),
    "removed": N_("The user was removed and their API keys revoked."),
    "revoked": N_("The API key was revoked; requests with it are refused from now on."),
    "customer-added": N_("The customer was added."),
    "password": N_("Your password was changed."),
    "account": N_("Your settings were saved."),
}
LANGUAGE_NAMES = {"en": "English", "nl": "Nederlands", "es": "Español"}
THEME_NAMES = {"system": N_("System"), "light": N_("Light"), "dark": N_("Dark")}
DROP_REASONS = {
    "bot": N_("a bot or crawler, not a person"),
    "unknown_site": N_("the event named a site Zeef does not know"),
    "domain_mismatch": N_("the page's host does not belong to this site"),
    "invalid_payload": N_("the event was malformed"),
    "opted_out": N_("the visitor asked not to be tracked (Do Not Track or Global Privacy Control)"),
    "no_consent": N_("the visitor had not consented to analytics"),
    "overloaded": N_("the server was overloaded and asked the browser to retry"),
}
T = TypeVar("T")
TIMEZONES = sorted(zoneinfo.available_timezones())


class Admin:
    def __init__(
        self,
        storage: Storage,
        auth: Auth,
        pages: Pages,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.storage = storage
        self.auth = auth
        self.pages = pages
        self.settings = settings
        # The data's clock (tests set it), for what "the last 7 days" means.
        self.clock = clock

    def routes(self) -> list[Route]:
        return [
            Route("/", self.home),
            Route("/sites", self.site_list, methods=["GET", "POST"]),
            Route("/sites/{domain}/settings", self.site_settings, methods=["GET", "POST"]),
            Route("/sites/{domain}/retention", self.site_retention, methods=["POST"]),
            Route("/sites/{domain}/delete", self.site_delete, methods=["POST"]),
            Route("/sites/{domain}/consent-log", self.consent_log),
            Route("/users", self.user_list, methods=["GET", "POST"]),
            Route("/users/{id:int}", self.user_page),
            Route("/users/{id:int}/{change}", self.user_change, methods=["POST"]),
            Route("/api-keys", self.key_list, methods=["GET", "POST"]),
            Route("/api-keys/{id:int}", self.key_page),
            Route("/api-keys/{id:int}/revoke", self.key_revoke, methods=["POST"]),
            Route("/customers", self.customer_list, methods=["GET", "POST"]),
            Route("/customers/{id:int}", self.customer_page, methods=["GET", "POST"]),
            Route("/customers/{id:int}/delete", self.customer_delete, methods=["POST"]),
            Route("/audit-log", self.audit_page),
            Route("/account", self.account, methods=["GET", "POST"]),
        ]

    # -- the frame ------------------------------------------------------------------------------

    async def _enter(
        self, request: Request, action: Action, owner: int | None
    ) -> tuple[Session, None] | tuple[None, Response]:
        """The session, when its user may do `action` to an object of `owner`; else the
        answer. A POST must also carry the session's CSRF token."""
        refused = await self.auth.guard(request, action, owner)
        if refused is not None:
            return None, refused
        session = await self.auth.session(request)
        assert session is not None
        if request.method == "POST":
            form = await read_form(request)
            if form is None or not await self.auth.csrf_ok(request, field(form, "csrf")):
                _ = self.pages.gettext(request)
                return None, self.pages.error(request, 403, _(
                    "This form has expired or did not come from this site. Reload the page "
                    "and try again."))  # fmt: skip
        return session, None

    def _render(
        self,
        request: Request,
        session: Session,
        name: str,
        context: dict[str, Any],
        current: str,
        status_code: int = 200,
    ) -> Response:
        _ = self.pages.gettext(request)
        principal = Principal.of_user(session.user)
        own = session.user.customer_id
        items = [(_("Sites"), "/sites")]
        if may(principal, Action.MANAGE_USERS, own):
            items.append((_("Users"), "/users"))
        if may(principal, Action.MANAGE_API_KEYS, own):
            items.append((_("API keys"), "/api-keys"))
        if may(principal, Action.MANAGE_CUSTOMERS, None):
            items.append((_("Customers"), "/customers"))
        if may(principal, Action.VIEW_AUDIT_LOG, own):
            items.append((_("Audit log"), "/audit-log"))
        done = request.query_params.get("done")
        messages = [("success", _(DONE[done]))] if done in DONE else []
        full = {
            "nav": [(label, url, url == current) for label, url in items],
            "user": session.user,
            "csrf_token": session.csrf_token,
            "messages": messages + list(context.pop("messages", [])),
            "principal": principal,
            **context,
        }
        return self.pages.render(request, name, full, status_code=status_code)

    def _actor(self, request: Request, session: Session) -> audit.Actor:
        email = session.user.email
        return audit.Actor(email, client_label(request.scope, self.settings), email)

    async def _site(self, request: Request) -> Site | None:
        try:
            return await sites.find_site(self.storage, request.path_params["domain"])
        except ValueError:
            return None

    async def _site_page(self, request: Request, action: Action) -> tuple[Site, Session] | Response:
        """The site the path names and the session, when the user may do `action` to it; else
        the answer (a site that does not exist is answered as another customer's: 404)."""
        site = await self._site(request)
        return await self._gate(request, action, site, site.customer_id if site else None)

    async def _gate(
        self, request: Request, action: Action, found: T | None, owner: int | None
    ) -> tuple[T, Session] | Response:
        """`found` (the object the path names) and the session, when the user may do `action`
        to an object of `owner`; else the answer. An object that does not exist is answered
        as another customer's would be: 404 (only a superuser gets that far without one)."""
        session, refused = await self._enter(request, action, owner)
        if refused is not None:
            return refused
        if found is None:
            return self.pages.error(request, 404)
        assert session is not None
        return found, session

    async def _visible_sites(self, principal: Principal) -> list[Site]:
        return [
            site
            for site in await self.storage.sites()
            if may(principal, Action.VIEW_STATS, site.customer_id)
        ]

    # -- sites ----------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        if await self.auth.session(request) is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/sites", status_code=303)

    async def site_list(self, request: Request) -> Response:
        session = await self.auth.session(request)
        owner = session.user.customer_id if session else None
        action = Action.ADD_SITE if request.method == "POST" else Action.VIEW_STATS
        session, refused = await self._enter(request, action, owner)
        if refused is not None:
            return refused
        assert session is not None
        principal = Principal.of_user(session.user)
        _ = self.pages.gettext(request)
        error = None
        form: dict[str, str] = {"domain": "", "timezone": "UTC", "customer": ""}
        if request.method == "POST":
            posted = await read_form(request)
            form = {key: field(posted, key).strip() for key in form}
            error = await self._add_site(request, session, principal, form)
            if error is None:
                domain = sites.normalise_domain(form["domain"])
                return RedirectResponse(
                    f"/sites/{domain}/settings?done=site-added", status_code=303
                )
        names = await self.storage.site_customers()
        visible = await self._visible_sites(principal)
        today = await self._visitors_today(visible, language(request))
        sparks = await self._sparklines(visible)
        context = {
            "sites": [
                {
                    "domain": site.domain,
                    "today": today[site.id],
                    "spark": sparks[site.id],
                    "timezone": site.timezone,
                    "customer": names.get(site.id) if principal.is_superuser else None,
                    "manage": may(principal, Action.MANAGE_SITE, site.customer_id),
                }
                for site in visible
            ],
            "can_add": may(principal, Action.ADD_SITE, principal.customer_id),
            "customers": [c["name"] for c in await self.storage.customers()]
            if principal.is_superuser
            else [],
            "timezones": TIMEZONES,
            "form": form,
            "error": error,
        }
        status = 400 if error else 200
        return self._render(request, session, "sites.html", context, "/sites", status)

    async def _visitors_today(self, found: list[Site], lang: str) -> dict[int, str]:
        """Each site's visitors today, in its own time zone, from the report engine."""
        now = self.clock()
        totals = await asyncio.gather(*(
            reports.aggregate(self.storage, Query.for_period(site, "day", now), ["visitors"])
            for site in found
        ))  # fmt: skip
        return {
            site.id: format_decimal(total["visitors"] or 0, locale=lang)
            for site, total in zip(found, totals, strict=True)
        }

    async def _sparklines(self, found: list[Site]) -> dict[int, dict[str, Any]]:
        """Each site's visitors on each of the last 7 days, as the points of a small line (a
        100 x 32 box) and the numbers it draws, for a screen reader."""
        now = self.clock()
        series = await asyncio.gather(*(
            reports.timeseries(self.storage, Query.for_period(site, "7d", now), ["visitors"])
            for site in found
        ))  # fmt: skip
        lines = {}
        for site, rows in zip(found, series, strict=True):
            values = [int(row["visitors"] or 0) for row in rows]
            top = max(values, default=0) or 1
            step = 100 / max(1, len(values) - 1)
            points = " ".join(
                f"{i * step:.1f},{30 - 28 * value / top:.1f}" for i, value in enumerate(values)
            )
            lines[site.id] = {"points": points, "values": values}
        return lines

    async def _add_site(
        self, request: Request, session: Session, principal: Principal, form: dict[str, str]
    ) -> str | None:
        _ = self.pages.gettext(request)
        try:
            domain = sites.normalise_domain(form["domain"])
        except ValueError:
            return _("That is not a domain name: write it as example.com.")
        try:
            timezone = sites.check_timezone(form["timezone"] or "UTC")
        except ValueError:
            return _("Choose a time zone from the list, such as Europe/Amsterdam.")
        customer_id = principal.customer_id
        if principal.is_superuser:
            if form["customer"]:
                try:
                    customer_id = (await customers.get_customer(self.storage, form["customer"]))[
                        "id"
                    ]
                except (customers.UnknownCustomer, ValueError):
                    return _("Choose the customer the site belongs to.")
            elif await self.storage.customers():
                return _("Choose the customer the site belongs to.")
        try:
            site = await self.storage.add_site(domain, timezone, int(time.time()))
        except SiteExists:
            # Said alike whether the taken domain is this customer's or another's.
            return _("That site cannot be added: it is registered already.")
        if customer_id is not None:
            await self.storage.set_site_customer(site.id, customer_id)
        await audit.record(self.storage, self._actor(request, session), "site added", domain,
                           customer_id)  # fmt: skip
        return None

    async def site_settings(self, request: Request) -> Response:
        found = await self._site_page(request, Action.MANAGE_SITE)
        if isinstance(found, Response):
            return found
        site, session = found
        return await self._site_settings(request, site, session)

    async def _site_settings(
        self, request: Request, site: Site, session: Session, retention_error: str | None = None
    ) -> Response:
        _ = self.pages.gettext(request)
        error = None
        if request.method == "POST":
            posted = await read_form(request)
            timezone = field(posted, "timezone").strip()
            dnt = field(posted, "dnt")
            try:
                sites.check_timezone(timezone)
            except ValueError:
                error = _("Choose a time zone from the list, such as Europe/Amsterdam.")
            if error is None and dnt in ("honour", "ignore"):
                if timezone != site.timezone:
                    await self.storage.set_site_timezone(site.id, timezone)
                await self.storage.set_honour_dnt(site.id, dnt == "honour")
                await audit.record(self.storage, self._actor(request, session),
                                   "site settings changed",
                                   f"{site.domain}: time zone {timezone}, DNT {dnt}",
                                   site.customer_id)  # fmt: skip
                return RedirectResponse(
                    f"/sites/{site.domain}/settings?done=site-saved", status_code=303
                )
            error = error or _("Choose whether to honour Do Not Track.")
        hits = await self.storage.latest_hits(site.id, 10)
        since = (self.clock() - timedelta(days=7)).astimezone(UTC).date().isoformat()
        drops = await self.storage.latest_drops(site.id, since)
        principal = Principal.of_user(session.user)
        context = {
            "site": site,
            "error": error,
            "timezones": TIMEZONES,
            "public_url": self.settings.public_url,
            "hits": [{**hit, "time": _time(hit["ts"])} for hit in hits],
            "drops": [{**drop, "why": self._why(request, drop)} for drop in drops],
            "consent_log": may(principal, Action.VIEW_CONSENT_LOG, site.customer_id),
            "retention": await self._retention_facts(site),
            "retention_error": retention_error,
        }
        status = 400 if error or retention_error else 200
        return self._render(request, session, "site_settings.html", context, "/sites", status)

    async def _retention_facts(self, site: Site) -> dict[str, Any]:
        periods = await retention.site_retention(self.storage, self.settings, site)
        agreed = await retention.agreed_period(self.storage, self.settings, site.customer_id)
        own = str(periods.events) if periods.events_from == "site" else ""
        now = int(time.time())
        kept_from = periods.events_cutoff(now)
        zone = zoneinfo.ZoneInfo(site.timezone)
        return {
            "period": periods.events,
            "source": periods.events_from,
            "own": own,
            "agreed": agreed,
            "kept_from": datetime.fromtimestamp(kept_from, zone).date().isoformat(),
            "keep_aggregates": periods.keep_aggregates,
            "consent_proof": periods.consent_proof,
            "consent_lifetime_days": periods.consent_lifetime_days,
        }

    async def site_retention(self, request: Request) -> Response:
        """A site's own period. A customer's admin may keep less than the operator agreed with
        the customer, never more: what the privacy statement promises is the agreement."""
        found = await self._site_page(request, Action.MANAGE_SITE)
        if isinstance(found, Response):
            return found
        site, session = found
        _ = self.pages.gettext(request)
        text = field(await read_form(request), "retention").strip().lower()
        period: retention.Period | None = None
        if text and text != "default":
            try:
                period = retention.Period.parse(text)
            except ValueError:
                return await self._site_settings(request, site, session, _(
                    "Give a number and a unit: 90d for days, 6w for weeks, 13m for months or "
                    "2y for years; or leave it empty for the agreed period."))  # fmt: skip
            agreed = await retention.agreed_period(self.storage, self.settings, site.customer_id)
            operator = Principal.of_user(session.user).is_superuser
            if not operator and period.approx_days() > agreed.approx_days():
                return await self._site_settings(request, site, session, _(
                    "At most %(agreed)s: that is the period agreed for your organisation. Ask "
                    "the operator to change the agreement.") % {"agreed": str(agreed)})  # fmt: skip
        await self.storage.set_site_retention(site.id, str(period) if period else None)
        said = f"{site.domain}: {period or 'default'}"
        await audit.record(self.storage, self._actor(request, session), "site.retention", said,
                           site.customer_id)  # fmt: skip
        return RedirectResponse(
            f"/sites/{site.domain}/settings?done=retention-saved#retention", status_code=303
        )

    def _why(self, request: Request, drop: dict[str, Any]) -> str:
        _ = self.pages.gettext(request)
        if drop["reason"] == "domain_mismatch" and drop["example"]:
            return _("the page's host, %(host)s, does not belong to this site") % {
                "host": drop["example"]
            }
        return _(DROP_REASONS.get(drop["reason"], drop["reason"]))

    async def site_delete(self, request: Request) -> Response:
        found = await self._site_page(request, Action.MANAGE_SITE)
        if isinstance(found, Response):
            return found
        site, session = found
        _ = self.pages.gettext(request)
        posted = await read_form(request)
        if field(posted, "confirm").strip().lower() != site.domain:
            return self.pages.error(
                request, 400, _("Type the site's domain to confirm that it is to be deleted.")
            )
        # Every event, visit, consent record and setting, in batches that let ingest through;
        # audited as `zeef site delete` is.
        await purge.delete_site(self.storage, site, self._actor(request, session))
        return RedirectResponse("/sites?done=site-deleted", status_code=303)

    async def consent_log(self, request: Request) -> Response:
        found = await self._site_page(request, Action.VIEW_CONSENT_LOG)
        if isinstance(found, Response):
            return found
        site, session = found
        since = int(time.time()) - 90 * 86400
        records = await self.storage.consent_records(site.id, since)
        records.sort(key=lambda record: record.created_at, reverse=True)
        rows = [
            {
                "time": _time(r.created_at),
                "consent_id": r.consent_id,
                "action": r.action,
                "choices": ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in r.choices.items()),
                "language": r.language,
                "gpc": r.gpc,
            }
            for r in records[:500]
        ]
        context = {"site": site, "records": rows, "total": len(records)}
        return self._render(request, session, "consent_log.html", context, "/sites")

    # -- users ----------------------------------------------------------------------------------

    async def user_list(self, request: Request) -> Response:
        session = await self.auth.session(request)
        owner = session.user.customer_id if session else None
        session, refused = await self._enter(request, Action.MANAGE_USERS, owner)
        if refused is not None:
            return refused
        assert session is not None
        principal = Principal.of_user(session.user)
        _ = self.pages.gettext(request)
        error, link, added = None, None, None
        form = {"email": "", "role": "viewer", "customer": ""}
        if request.method == "POST":
            posted = await read_form(request)
            form = {key: field(posted, key).strip() for key in form}
            error, added = await self._add_user(request, session, principal, form)
            if added is not None:
                link = await users.password_link(self.storage, added, self.settings.public_url)
                form = {"email": "", "role": "viewer", "customer": form["customer"]}
        everyone = [User.from_row(row) for row in await self.storage.users()]
        listed = [u for u in everyone if may(principal, Action.MANAGE_USERS, u.customer_id)]
        context = {
            "users": listed,
            "form": form,
            "error": error,
            "link": link,
            "added": added,
            "customers": [c["name"] for c in await self.storage.customers()]
            if principal.is_superuser
            else [],
            "roles": users.ROLES if principal.is_superuser else users.CUSTOMER_ROLES,
        }
        status = 400 if error else 200
        return self._render(request, session, "users.html", context, "/users", status)

    async def _add_user(
        self, request: Request, session: Session, principal: Principal, form: dict[str, str]
    ) -> tuple[str | None, User | None]:
        _ = self.pages.gettext(request)
        try:
            email = users.normalise_email(form["email"])
        except ValueError:
            return _("That is not an email address."), None
        role = form["role"]
        customer_id = principal.customer_id
        if principal.is_superuser and role != "superuser":
            try:
                customer_id = (await customers.get_customer(self.storage, form["customer"]))["id"]
            except (customers.UnknownCustomer, ValueError):
                return _("Choose the customer the user belongs to."), None
        if role == "superuser":
            customer_id = None
        if role not in users.ROLES or not may(principal, Action.MANAGE_USERS, customer_id):
            return _("Choose a role: viewer or admin."), None
        try:
            added = await users.add_user(
                self.storage, email, role, customer_id, None, self._actor(request, session)
            )
        except UserExists:
            return _("There is an account for that email address already."), None
        return None, added

    async def _user(self, request: Request) -> User | None:
        row = await self.storage.user_by_id(request.path_params["id"])
        return User.from_row(row) if row else None

    async def _user_page(self, request: Request) -> tuple[User, Session] | Response:
        user = await self._user(request)
        return await self._gate(
            request, Action.MANAGE_USERS, user, user.customer_id if user else None
        )

    async def user_page(self, request: Request) -> Response:
        found = await self._user_page(request)
        if isinstance(found, Response):
            return found
        user, session = found
        context = {"subject": user, "roles": users.CUSTOMER_ROLES, "link": None}
        return self._render(request, session, "user.html", context, "/users")

    async def user_change(self, request: Request) -> Response:
        found = await self._user_page(request)
        if isinstance(found, Response):
            return found
        user, session = found
        change = request.path_params["change"]
        if change not in ("role", "block", "unblock", "reset", "remove"):
            return self.pages.error(request, 404)
        _ = self.pages.gettext(request)
        actor = self._actor(request, session)
        if user.id == session.user.id and change in ("role", "block", "remove", "reset"):
            return self.pages.error(request, 403, _(
                "You cannot do that to your own account: ask another administrator. "
                "Change your own password under your account."))  # fmt: skip
        if change == "role":
            role = field(await read_form(request), "role")
            if role not in users.CUSTOMER_ROLES or user.role == "superuser":
                return self.pages.error(request, 403)
            await users.set_role(self.storage, user, role, actor)
        elif change == "block":
            await users.block(self.storage, user, actor)
        elif change == "unblock":
            await users.unblock(self.storage, user, actor)
        elif change == "remove":
            await users.remove(self.storage, user, actor)
            return RedirectResponse("/users?done=removed", status_code=303)
        else:
            link = await users.reset_password(self.storage, user, actor, self.settings.public_url)
            refreshed = await self._user(request)
            context = {"subject": refreshed, "roles": users.CUSTOMER_ROLES, "link": link}
            return self._render(request, session, "user.html", context, "/users")
        done = {"role": "role", "block": "blocked", "unblock": "unblocked"}[change]
        return RedirectResponse(f"/users/{user.id}?done={done}", status_code=303)

    # -- API keys -------------------------------------------------------------------------------

    async def key_list(self, request: Request) -> Response:
        session = await self.auth.session(request)
        owner = session.user.customer_id if session else None
        session, refused = await self._enter(request, Action.MANAGE_API_KEYS, owner)
        if refused is not None:
            return refused
        assert session is not None
        principal = Principal.of_user(session.user)
        created = None
        if request.method == "POST":
            posted = await read_form(request)
            label = field(posted, "label").strip()[:100] or None
            created = apikeys.generate()
            email = session.user.email
            key_id = await self.storage.create_api_key(
                email, label, apikeys.shown_prefix(created), apikeys.digest(created),
                int(time.time()),
            )  # fmt: skip
            await audit.record(self.storage, self._actor(request, session), "API key created",
                               f"{key_id} for {email}", session.user.customer_id)  # fmt: skip
        scope = None if principal.is_superuser else principal.customer_id
        keys = [
            {**row, "created": _time(row["created_at"]),
             "used": _time(row["last_used_at"]) if row["last_used_at"] else None}
            for row in await self.storage.api_keys_of_customer(scope)
        ]  # fmt: skip
        context = {"keys": keys, "created": created}
        return self._render(request, session, "api_keys.html", context, "/api-keys")

    async def _key_page(self, request: Request) -> tuple[dict[str, Any], Session] | Response:
        key_id = request.path_params["id"]
        rows = await self.storage.api_keys_of_customer(None)
        key = next((row for row in rows if row["id"] == key_id), None)
        return await self._gate(
            request, Action.MANAGE_API_KEYS, key, key["customer_id"] if key else None
        )

    async def key_page(self, request: Request) -> Response:
        found = await self._key_page(request)
        if isinstance(found, Response):
            return found
        key, session = found
        shown = {**key, "created": _time(key["created_at"]),
                 "used": _time(key["last_used_at"]) if key["last_used_at"] else None}  # fmt: skip
        return self._render(request, session, "api_key.html", {"key": shown}, "/api-keys")

    async def key_revoke(self, request: Request) -> Response:
        found = await self._key_page(request)
        if isinstance(found, Response):
            return found
        key, session = found
        if await self.storage.revoke_api_key(key["id"], int(time.time())):
            await audit.record(self.storage, self._actor(request, session), "API key revoked",
                               f"{key['id']} of {key['owner']}", key["customer_id"])  # fmt: skip
        return RedirectResponse("/api-keys?done=revoked", status_code=303)

    # -- the operator's pages -------------------------------------------------------------------

    async def customer_list(self, request: Request) -> Response:
        session, refused = await self._enter(request, Action.MANAGE_CUSTOMERS, None)
        if refused is not None:
            return refused
        assert session is not None
        _ = self.pages.gettext(request)
        error = None
        if request.method == "POST":
            name = field(await read_form(request), "name")
            try:
                added = await customers.add_customer(self.storage, name)
            except CustomerExists:
                error = _("There is a customer of that name already.")
            except ValueError:
                error = _("Give the customer a name of at most 100 characters.")
            else:
                await audit.record(self.storage, self._actor(request, session),
                                   "customer added", added["name"], added["id"])  # fmt: skip
                return RedirectResponse("/customers?done=customer-added", status_code=303)
        listed = [
            {**c, "retention": retention.Period.parse(c["retention"]) if c["retention"] else None}
            for c in await self.storage.customers()
        ]
        context = {"customers": listed, "error": error}
        status = 400 if error else 200
        return self._render(request, session, "customers.html", context, "/customers", status)

    async def _customer(self, request: Request) -> dict[str, Any] | None:
        return await self.storage.customer_retention(request.path_params["id"])

    async def customer_page(self, request: Request) -> Response:
        """One customer's agreement: how long its sites' data is kept, how long consent is
        proven, whether aggregates outlive raw events; and deleting the customer."""
        customer = await self._customer(request)
        found = await self._gate(request, Action.MANAGE_CUSTOMERS, customer, None)
        if isinstance(found, Response):
            return found
        customer, session = found
        _ = self.pages.gettext(request)
        error = None
        if request.method == "POST":
            posted = await read_form(request)
            changes: dict[str, Any] = {}
            for name in ("retention", "consent_proof"):
                text = field(posted, name).strip().lower()
                try:
                    changes[name] = str(retention.Period.parse(text)) if text else None
                except ValueError:
                    error = _(
                        "Give a number and a unit: 90d for days, 6w for weeks, 13m for months "
                        "or 2y for years; or leave it empty for the default."
                    )
            changes["keep_aggregates"] = int(field(posted, "keep_aggregates") == "on")
            if error is None:
                await self.storage.set_customer_retention(customer["id"], **changes)
                said = ", ".join(f"{k.replace('_', ' ')} {v if v is not None else 'default'}"
                                 for k, v in changes.items())  # fmt: skip
                await audit.record(self.storage, self._actor(request, session),
                                   "customer.retention", f"{customer['name']}: {said}",
                                   customer["id"])  # fmt: skip
                return RedirectResponse(
                    f"/customers/{customer['id']}?done=customer-saved", status_code=303
                )
        owned = [s for s in await self.storage.sites() if s.customer_id == customer["id"]]
        periods = {
            item.site.id: item
            for item in await retention.site_retentions(self.storage, self.settings)
        }
        context = {
            "customer": customer,
            "error": error,
            "default_retention": self.settings.retention,
            "default_consent_proof": self.settings.consent_proof,
            "sites": [
                {
                    "domain": s.domain,
                    "period": periods[s.id].events,
                    "source": periods[s.id].events_from,
                }
                for s in owned
            ],
        }
        status = 400 if error else 200
        return self._render(request, session, "customer.html", context, "/customers", status)

    async def customer_delete(self, request: Request) -> Response:
        customer = await self._customer(request)
        found = await self._gate(request, Action.MANAGE_CUSTOMERS, customer, None)
        if isinstance(found, Response):
            return found
        customer, session = found
        _ = self.pages.gettext(request)
        posted = await read_form(request)
        if field(posted, "confirm").strip() != customer["name"]:
            return self.pages.error(
                request, 400, _("Type the customer's name exactly to confirm the deletion.")
            )
        await purge.delete_customer(self.storage, customer, self._actor(request, session))
        return RedirectResponse("/customers?done=customer-deleted", status_code=303)

    async def audit_page(self, request: Request) -> Response:
        session = await self.auth.session(request)
        owner = session.user.customer_id if session else None
        session, refused = await self._enter(request, Action.VIEW_AUDIT_LOG, owner)
        if refused is not None:
            return refused
        assert session is not None
        principal = Principal.of_user(session.user)
        since = int(time.time()) - 90 * 86400
        scope = None if principal.is_superuser else principal.customer_id
        rows = await self.storage.audit_log(since, scope, 500)
        entries = [{**row, "time": _time(row["at"])} for row in rows]
        context = {"entries": entries, "operator": principal.is_superuser}
        return self._render(request, session, "audit_log.html", context, "/audit-log")

    # -- one's own account -----------------------------------------------------------------------

    async def account(self, request: Request) -> Response:
        session = await self.auth.session(request)
        if session is None:
            return RedirectResponse("/login?next=%2Faccount", status_code=303)
        if session.user.must_change_password:
            return RedirectResponse("/account/password", status_code=303)
        if request.method == "POST":
            form = await read_form(request)
            if form is None or not await self.auth.csrf_ok(request, field(form, "csrf")):
                return self.pages.error(request, 403)
            # The page's two forms each send their own field; what is not sent stays as it is.
            language = field(form, "language") if "language" in form else None
            theme = field(form, "theme") if "theme" in form else None
            if language is not None and language not in ("", *LANGUAGE_NAMES):
                return self.pages.error(request, 403)
            if theme is not None and theme not in users.THEMES:
                return self.pages.error(request, 400)
            if language is not None:
                await self.storage.update_user(
                    session.user.id, {"language": language or None}, end_sessions=False
                )
            if theme is not None:
                await users.set_theme(self.storage, session.user, theme)
            return RedirectResponse("/account?done=account", status_code=303)
        _ = self.pages.gettext(request)
        themes = {code: _(name) for code, name in THEME_NAMES.items()}
        context = {"languages": LANGUAGE_NAMES, "themes": themes, "subject": session.user}
        return self._render(request, session, "account.html", context, "/account")


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")

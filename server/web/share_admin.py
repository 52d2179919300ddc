"""A site's share links as admin pages: the list with a form to make one, and one link's page
to change its conditions, give it a new address or revoke it (what `zeef share ...` does).

ShareAdmin is an Admin: `_site_page` is the one permission and CSRF check (MANAGE_SITE: the
site's admins and the operator), `_render` the frame. Conditions are checked with
server/sharing/shares.py's parsers, each failure said beside its field in the page's language.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..accounts.passwords import password_problem
from ..accounts.permissions import Action
from ..accounts.sessions import Session
from ..events import Site
from ..sharing import shares
from ..sharing.shares import SECTIONS, Share, ShareError
from .admin import Admin
from .forms import field, read_form
from .templates import N_

SECTION_NAMES = {
    "overview": N_("Overview"),
    "pages": N_("Pages"),
    "sources": N_("Sources"),
    "locations": N_("Locations"),
    "devices": N_("Devices"),
    "goals": N_("Goals"),
    "consent": N_("Consent"),
}
MAX_LABEL = 200
# Messages after a redirect, named in the query string as admin.py's DONE are.
DONE = {
    "share-created": N_("The share link was made: copy it from the list below."),
    "share-saved": N_("The share link's conditions were saved; they hold from its next view."),
    "share-rotated": N_("The share has a new link: the old one opens nothing any more."),
    "share-revoked": N_("The share link was revoked: it opens nothing any more."),
}


@dataclass
class Conditions:
    """The form's fields, as a share holds them or as they were typed."""

    label: str = ""
    expires: str = ""  # the last day, YYYY-MM-DD; empty: never
    password: str = ""
    password_action: str = "keep"  # on a share's page: keep, set or remove
    sections: set[str] = dataclass_field(default_factory=lambda: set(SECTIONS))
    filter: str = ""
    origins: str = ""  # one a line
    csv: bool = True

    @classmethod
    def of(cls, share: Share) -> Conditions:
        return cls(
            label=share.label,
            expires=last_day(share.expires_at) if share.expires_at else "",
            sections=set(share.sections),
            filter=share.filters,
            origins="\n".join(share.embed_origins),
            csv=share.csv,
        )

    @classmethod
    def posted(cls, form: FormData | None) -> Conditions:
        return cls(
            label=field(form, "label"),
            expires=field(form, "expires").strip(),
            password=field(form, "password"),
            password_action=field(form, "password_action") or "keep",
            sections={v for v in form.getlist("section") if isinstance(v, str)} if form else set(),
            filter=field(form, "filter"),
            origins=field(form, "origins"),
            csv=field(form, "csv") == "on",
        )


class ShareAdmin(Admin):
    def routes(self) -> list[Route]:
        return [
            Route("/sites/{domain}/shares", self.share_list, methods=["GET", "POST"]),
            Route("/sites/{domain}/shares/{id:int}", self.share_page, methods=["GET", "POST"]),
            Route("/sites/{domain}/shares/{id:int}/rotate", self.share_rotate, methods=["POST"]),
            Route("/sites/{domain}/shares/{id:int}/revoke", self.share_revoke, methods=["POST"]),
        ]

    # -- the list, and a new link ------------------------------------------------------------

    async def share_list(self, request: Request) -> Response:
        allowed = await self._site_page(request, Action.MANAGE_SITE)
        if isinstance(allowed, Response):
            return allowed
        site, session = allowed
        _ = self.pages.gettext(request)
        form, messages = Conditions(), []
        errors: dict[str, str] = {}
        if request.method == "POST":
            form = Conditions.posted(await read_form(request))
            checked, errors = self._checked(request, form, None)
            if not errors:
                try:
                    await shares.create(
                        self.storage,
                        self._actor(request, session),
                        site.domain,
                        label=checked["label"],
                        expires_at=checked.get("expires_at"),
                        password=checked.get("password"),
                        shown=checked["sections"],
                        locked=checked["filters"],
                        embed=checked["embed_origins"],
                        csv=checked["csv"],
                    )
                except ShareError as error:  # what the checks above missed, in its words
                    errors["form"] = str(error)
                else:
                    return _done(site, None, "share-created")
            messages.append(("error", _("The link was not made: see what is marked below.")))
        listed = [Share.of(row) for row in await self.storage.shares_of_site(site.id)]
        context = {
            "site": site,
            "shares": [self._shown(request, share) for share in listed],
            **self._form_context(request, form, errors, messages),
        }
        status = 400 if errors else 200
        return self._render(request, session, "shares.html", context, "/sites", status)

    # -- one link ------------------------------------------------------------------------------

    async def _found(self, request: Request) -> tuple[Site, Session, Share] | Response:
        """The site, session and share the path names, when the user may manage the site and
        the share is that site's; else the answer (404 for a share of another site)."""
        allowed = await self._site_page(request, Action.MANAGE_SITE)
        if isinstance(allowed, Response):
            return allowed
        site, session = allowed
        row = await self.storage.share(request.path_params["id"])
        if row is None or row["site_id"] != site.id:
            return self.pages.error(request, 404)
        return site, session, Share.of(row)

    async def share_page(self, request: Request) -> Response:
        found = await self._found(request)
        if isinstance(found, Response):
            return found
        site, session, share = found
        _ = self.pages.gettext(request)
        form, messages = Conditions.of(share), []
        errors: dict[str, str] = {}
        if request.method == "POST":
            if share.revoked_at is not None:
                return self._revoked(request)
            form = Conditions.posted(await read_form(request))
            checked, errors = self._checked(request, form, share)
            if not errors:
                changes = _changes(share, checked)
                try:
                    if changes:
                        await shares.change(self.storage, self._actor(request, session), share,
                                            changes, time.time())  # fmt: skip
                except ShareError as error:
                    errors["form"] = str(error)
                else:
                    return _done(site, share, "share-saved")
            messages.append(("error", _("Nothing was saved: see what is marked below.")))
        return self._share_page(request, session, site, share, form, errors, messages)

    def _share_page(
        self,
        request: Request,
        session: Session,
        site: Site,
        share: Share,
        form: Conditions,
        errors: dict[str, str],
        messages: list[tuple[str, str]],
    ) -> Response:
        context = {
            "site": site,
            "share": self._shown(request, share),
            **self._form_context(request, form, errors, messages),
        }
        status = 400 if errors else 200
        return self._render(request, session, "share.html", context, "/sites", status)

    async def share_rotate(self, request: Request) -> Response:
        found = await self._found(request)
        if isinstance(found, Response):
            return found
        site, session, share = found
        if share.revoked_at is not None:
            return self._revoked(request)
        await shares.change(self.storage, self._actor(request, session), share,
                            {"rotate": True}, time.time())  # fmt: skip
        return _done(site, share, "share-rotated")

    async def share_revoke(self, request: Request) -> Response:
        found = await self._found(request)
        if isinstance(found, Response):
            return found
        site, session, share = found
        if share.revoked_at is not None:
            return self._revoked(request)
        _ = self.pages.gettext(request)
        if field(await read_form(request), "confirm") != "on":
            errors = {"confirm": _("Tick the box to confirm that the link is to stop working.")}
            messages = [("error", _("The link was not revoked: see what is marked below."))]
            return self._share_page(request, session, site, share, Conditions.of(share), errors,
                                    messages)  # fmt: skip
        await shares.revoke(self.storage, self._actor(request, session), share, time.time())
        return _done(site, None, "share-revoked")

    def _revoked(self, request: Request) -> Response:
        _ = self.pages.gettext(request)
        message = _("This share link was revoked, and a revoked link stays so: make a new one.")
        return self.pages.error(request, 409, message)

    # -- the conditions ------------------------------------------------------------------------

    def _checked(
        self, request: Request, form: Conditions, share: Share | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The conditions the form asks for, as shares.create takes them (`password` only
        when one is set, None when removed), or the errors by field. On a share's page an
        unchanged last day keeps the end the share has (a `--expires 30d` ends mid-day)."""
        _ = self.pages.gettext(request)
        errors: dict[str, str] = {}
        checked: dict[str, Any] = {"label": form.label.strip(), "csv": form.csv}
        if len(checked["label"]) > MAX_LABEL:
            errors["label"] = _("Keep the label under 200 characters.")
        if share is not None and form.expires == Conditions.of(share).expires:
            checked["expires_at"] = share.expires_at
        elif form.expires:
            try:
                checked["expires_at"] = shares.expiry(form.expires, datetime.now(UTC))
            except ShareError:
                errors["expires"] = _("Choose a day that is not over yet, or none for a link "
                                      "that does not expire.")  # fmt: skip
        else:
            checked["expires_at"] = None
        has_password = share is not None and share.password_hash is not None
        if form.password and form.password_action == "remove":
            errors["password"] = _("Either remove the password or type a new one, not both.")
        elif form.password:  # typed: set, whichever choice was left ticked
            problem = password_problem(form.password)
            if problem:
                errors["password"] = problem
            checked["password"] = form.password
            has_password = True
        elif form.password_action == "set":
            errors["password"] = _("Type the new password.")
        elif form.password_action == "remove":
            checked["password"] = None
            has_password = False
        try:
            checked["sections"] = shares.sections(sorted(form.sections))
        except ShareError:
            errors["sections"] = _("Tick at least one section.")
        try:
            checked["filters"] = shares.filters(form.filter)
        except ShareError as error:
            reason = str(error).removeprefix("--filter: ").rstrip(".")
            errors["filter"] = _("This filter cannot be used: %(reason)s.") % {"reason": reason}
        origins: list[str] = []
        for number, line in enumerate(form.origins.splitlines(), 1):
            if not line.strip():
                continue
            try:
                origins.extend(shares.origins([line]))
            except ShareError:
                message = _("Line %(line)d: write an origin, such as https://client.example, "
                            "with no path.")  # fmt: skip
                errors["origins"] = message % {"line": number}
                break
        checked["embed_origins"] = tuple(dict.fromkeys(origins))
        if has_password and checked["embed_origins"] and "origins" not in errors:
            errors["origins"] = _("A link with a password cannot be embedded in another site: "
                                  "that site would have to hold the password. Remove the "
                                  "password or the sites.")  # fmt: skip
        return checked, errors

    def _form_context(
        self,
        request: Request,
        form: Conditions,
        errors: dict[str, str],
        messages: list[tuple[str, str]],
    ) -> dict[str, Any]:
        _ = self.pages.gettext(request)
        done = request.query_params.get("done")
        if request.method == "GET" and done in DONE:
            messages = [("success", _(DONE[done])), *messages]
        return {
            "form": form,
            "errors": errors,
            "messages": messages,
            "sections": [(name, _(SECTION_NAMES[name])) for name in SECTIONS],
            "today": datetime.now(UTC).date().isoformat(),
            "max_label": MAX_LABEL,
        }

    def _shown(self, request: Request, share: Share) -> dict[str, Any]:
        """A share as the pages show it: its link, dates as days, sections by name."""
        _ = self.pages.gettext(request)
        secret = request.app.state.secret_key
        return {
            "id": share.id,
            "label": share.label,
            "url": shares.url(self.settings.public_url, secret, share),
            "until": last_day(share.expires_at) if share.expires_at else None,
            "expired": share.failure(time.time()) is shares.Failure.EXPIRED,
            "sections": ", ".join(_(SECTION_NAMES[s]) for s in share.sections),
            "filter": share.filters,
            "password": share.password_hash is not None,
            "origins": share.embed_origins,
            "csv": share.csv,
            "created_by": share.created_by,
            "created": _time(share.created_at),
            "revoked": _time(share.revoked_at) if share.revoked_at else None,
        }


def _changes(share: Share, checked: dict[str, Any]) -> dict[str, Any]:
    """What differs from the share, as shares.change takes it: the audit row names these."""
    changes = {"password": checked["password"]} if "password" in checked else {}
    if "password" in changes and changes["password"] is None and share.password_hash is None:
        del changes["password"]  # "remove" when there is none
    now = {"label": share.label, "expires_at": share.expires_at, "sections": share.sections,
           "filters": share.filters, "embed_origins": share.embed_origins,
           "csv": share.csv}  # fmt: skip
    changes.update({key: checked[key] for key, value in now.items() if checked[key] != value})
    return changes


def _done(site: Site, share: Share | None, done: str) -> Response:
    path = f"/sites/{site.domain}/shares" + (f"/{share.id}" if share else "")
    return RedirectResponse(f"{path}?done={done}", status_code=303)


def last_day(expires_at: int) -> str:
    """The last day (UTC) a link works on: an end at midnight is the end of the day before,
    as a date from the form or `--expires 2027-01-31` sets it."""
    return datetime.fromtimestamp(expires_at - 1, UTC).date().isoformat()


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")

"""A site's data-subject requests as an admin page: find what the site holds under a visitor ID
or a consent ID, download it (JSON, or CSV in a ZIP) and erase it, as `zeef subject` does.
SubjectAdmin is an Admin: `_site_page` is the one permission and CSRF check (MANAGE_SITE: the
site's admins and the operator), `_render` the frame. The ID travels in the form's body only,
so it is in no URL, log line or Referer; each action is audited by server/subjects.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import subjects
from ..accounts import audit
from ..accounts.permissions import Action
from ..buffer import EventBuffer
from .admin import Admin
from .forms import field, read_form
from .templates import N_, PAGE_HEADERS

if TYPE_CHECKING:
    from ..events import Site

TABLE_NAMES = {
    "events": N_("Page views and events"),
    "visits": N_("Visits"),
    "consented_visitors": N_("Visitor record"),
    "consent_records": N_("Consent decisions"),
}
ACTIONS = ("find", "json", "csv", "erase")


class SubjectAdmin(Admin):
    # Set at start from the database (server/keys.py), as the collector's; and the process's
    # event buffer, flushed before an erasure so a hit accepted a moment ago goes with it.
    visitor_key: bytes = b""
    buffer: EventBuffer | None = None

    def routes(self) -> list[Route]:
        return [Route("/sites/{domain}/subjects", self.page, methods=["GET", "POST"])]

    async def page(self, request: Request) -> Response:
        found = await self._site_page(request, Action.MANAGE_SITE)
        if isinstance(found, Response):
            return found
        site, session = found
        _ = self.pages.gettext(request)
        context: dict[str, Any] = {
            "site": site, "kind": "visitor", "id": "", "error": None, "found": None,
            "tables": TABLE_NAMES,
        }  # fmt: skip
        if request.method == "GET":
            return self._render(request, session, "subjects.html", context, "/sites")
        posted = await read_form(request)
        kind = field(posted, "kind")
        given = field(posted, "id").strip()
        action = field(posted, "do")
        context.update(kind=kind if kind in ("visitor", "consent") else "visitor", id=given)
        try:
            if action not in ACTIONS:
                raise ValueError
            subject = subjects.Subject(
                visitor=given if kind == "visitor" else None,
                consent=given if kind == "consent" else None,
            )
        except ValueError:
            context["error"] = (
                _("A visitor ID is the 22 characters of the zeef_id cookie.")
                if kind == "visitor"
                else _("A consent ID looks like 0b9e1d2c-5f3a-4c8e-9d71-2a6b4e8f0c13.")
            )
            return self._render(request, session, "subjects.html", context, "/sites", 400)
        actor = self._actor(request, session)
        if action in ("json", "csv"):
            document = await subjects.export(self.storage, site, subject, self.visitor_key, actor)
            stem = f"zeef-{site.domain}-{kind}-{subject.label.split('#')[1]}"
            if action == "csv":
                return _download(subjects.as_zip(document), "application/zip", f"{stem}.zip")
            body = json.dumps(document, indent=2, ensure_ascii=False).encode()
            return _download(body, "application/json", f"{stem}.json")
        if action == "erase":
            if field(posted, "confirm") != "yes":
                context["error"] = _("Tick the box to confirm that this data is to be erased.")
                context["found"] = await self._counts(site, subject)
                return self._render(request, session, "subjects.html", context, "/sites", 400)
            if self.buffer is not None:
                await self.buffer.flush()
            await subjects.erase(self.storage, site, subject, self.visitor_key, actor)
            return RedirectResponse(
                f"/sites/{site.domain}/subjects?done=subject-erased", status_code=303
            )
        context["found"] = await self._counts(site, subject)
        # A lookup shows what is held about a person: audited like the export.
        said = ", ".join(f"{t} {n}" for t, n in context["found"].items()) or "no rows"
        detail = f"{site.domain}: {subject.label} ({said})"
        await audit.record(self.storage, actor, "subject.find", detail, site.customer_id)
        return self._render(request, session, "subjects.html", context, "/sites")

    async def _counts(self, site: Site, subject: subjects.Subject) -> dict[str, int]:
        found = await subjects.find(self.storage, site, subject, self.visitor_key)
        return {table: n for table, n in subjects.counts(found).items() if n}


def _download(content: bytes, media_type: str, filename: str) -> Response:
    headers = {
        **PAGE_HEADERS,
        "content-disposition": f'attachment; filename="{filename}"',
        "cache-control": "no-store",
    }
    return Response(content, media_type=media_type, headers=headers)

"""Pages: the Jinja2 templates of dashboard/templates/, rendered in the request's language with
the headers every HTML page gets.

    pages = Pages()
    routes = [..., pages.static_route()]
    return pages.render(request, "login.html", {"error": None, "email": "", ...})

The templates, styles and catalogues live in the top-level dashboard/ of a checkout; a wheel
carries them as server/web/dashboard/ (pyproject.toml maps the one to the other).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from server.web.static import StaticFiles
from server.web.translations import LANGUAGES, language, load

__all__ = ["CONTENT_SECURITY_POLICY", "ERRORS", "Pages", "language", "page_headers"]

# No inline script or style (not even a style="" attribute): what an injected string could do
# is limited to text. Forms post only to us, nothing may frame a page, and <base> cannot
# redirect relative URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",  # for browsers that predate frame-ancestors
    # Links within Zeef keep their Referer (a login's `next`); links out get none.
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    # Pages show private data, and a shared computer's back button must not show it again.
    "cache-control": "no-store",
}


def N_(message: str) -> str:
    """Marks a string for `pybabel extract`; it is translated where it is shown."""
    return message


# error.html's words for the statuses routes answer with a page; `Pages.error` picks them.
ERRORS = {
    400: (N_("That did not work"), N_("The form was not filled in as needed.")),
    403: (N_("Not allowed"), N_("Your account does not have access to this page.")),
    404: (N_("Page not found"), N_("There is no page at this address.")),
    409: (N_("Not possible now"), N_("This cannot be done in the state things are in.")),
    429: (N_("Too many attempts"), N_("Wait a minute, then try again.")),
}

# The themes that override the device's light or dark setting (zeef.css's [data-theme]).
FORCED_THEMES = ("light", "dark")

# What base.html reads that a page may leave out: no menu, no user, no messages.
_LAYOUT_DEFAULTS: dict[str, Any] = {
    "nav": (),
    "user": None,
    "messages": (),
    # A share link's page: no way into the admin pages; `embed`, laid out for another site's frame.
    "shared": False,
    "embed": False,
}


def date(timestamp: int) -> str:
    """The `date` filter: a unix time as its day in UTC, YYYY-MM-DD."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def dashboard_dir() -> Path:
    """dashboard/: the templates, static files and catalogues, in a wheel or a checkout."""
    packaged = Path(__file__).resolve().parent / "dashboard"  # an installed wheel
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "dashboard"  # a checkout


def page_headers(response: Response) -> Response:
    """Set the headers of an HTML page on `response`; server/headers.py's defaults only fill in
    what a response leaves unset, so these win."""
    for name, value in PAGE_HEADERS.items():
        response.headers[name] = value
    return response


class Pages:
    """The templates, one Jinja2 environment per language, and the static files they link."""

    def __init__(self) -> None:
        root = dashboard_dir()
        self.static = StaticFiles(root / "static")
        self.translations = load(root / "locale")
        loader = FileSystemLoader(root / "templates")
        self._environments = {lang: self._environment(loader, lang) for lang in LANGUAGES}

    def _environment(self, loader: FileSystemLoader, lang: str) -> Environment:
        environment = Environment(
            loader=loader,
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.i18n"],
        )
        # Newstyle: _() escapes its arguments and formats %(name)s itself, so
        # {{ _("Signed in as %(email)s", email=user.email) }} is safe as written.
        environment.install_gettext_translations(  # type: ignore[attr-defined]
            self.translations[lang], newstyle=True
        )
        environment.globals["static"] = self.static.url
        environment.filters["date"] = date
        return environment

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        status_code: int = 200,
        theme: str | None = None,
    ) -> HTMLResponse:
        """The template `name` in the request's language and colours, with the page headers.
        `theme` is for a page that names its own, as an embedded one may: "light", "dark", or
        anything else for the device's setting. Without it the signed-in user's choice
        (`request.state.theme`, set by the session's code) holds, and without one the device's."""
        lang = language(request)
        environment = self._environments[lang]
        chosen = theme if theme is not None else getattr(request.state, "theme", None)
        values = {
            **_LAYOUT_DEFAULTS,
            **context,
            "request": request,
            "lang": lang,
            # base.html's data-theme: only an explicit choice; "system" is the stylesheet's own.
            "theme": chosen if chosen in FORCED_THEMES else None,
        }
        html = environment.get_template(name).render(values)
        response = HTMLResponse(html, status_code=status_code)
        response.headers["content-language"] = lang
        page_headers(response)
        return response

    def gettext(self, request: Request) -> Callable[[str], str]:
        """gettext in the request's language, for messages written in Python."""
        return self.translations[language(request)].gettext

    def error(self, request: Request, status_code: int, message: str | None = None) -> HTMLResponse:
        """error.html for a 403, 404 or 429, in the request's language; `message` (already
        translated) replaces the standard explanation."""
        title, explanation = ERRORS[status_code]
        gettext = self.translations[language(request)].gettext
        context = {"title": gettext(title), "message": message or gettext(explanation)}
        return self.render(request, "error.html", context, status_code=status_code)

    def static_route(self) -> Route:
        """GET /static/{path}: the files of dashboard/static/."""
        return Route("/static/{path:path}", self.static.endpoint, methods=["GET"], name="static")

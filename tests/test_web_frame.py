"""The web frame: server.web.templates.Pages rendering each template of dashboard/templates/ in
a tiny Starlette app of the test's own (the real routes come with accounts), its headers,
languages, escaping and static files; the catalogues against the templates; and the login page
in real Chromium, light and dark, wide and narrow.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po
from jinja2 import UndefinedError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.headers import SecurityHeaders
from server.web.templates import CONTENT_SECURITY_POLICY, Pages

from .live import ROOT, _free_port

DASHBOARD = ROOT / "dashboard"
HOSTILE = "<script>alert(1)</script>"
ATTRIBUTE = '"onmouseover=x'

PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


class User:
    def __init__(self, email: str) -> None:
        self.email = email


# Each template with a context a route would give it; `hostile` puts script and attribute
# breakers in every value that comes from a user or a request.
def contexts(hostile: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    text = HOSTILE if hostile else "Wrong email address or password."
    email = ATTRIBUTE if hostile else "ada@example.com"
    signed_in: dict[str, Any] = {
        "user": User(email),
        "csrf_token": ATTRIBUTE if hostile else "token-123",
        "nav": [
            ("Sites", "/admin/sites", False),
            (HOSTILE if hostile else "Users", "/admin/users", True),
            ("Customers", "/admin/customers", False),
        ],
        "messages": [
            ("success", HOSTILE if hostile else "Password changed."),
            ("error", text),
            ("<b>", "unknown kind"),
        ],
    }
    return {
        "login": ("login.html", {"error": text, "email": email, "csrf_token": "t", "next": email}),
        "login-empty": ("login.html", {"error": None, "email": "", "csrf_token": "t", "next": ""}),
        "password": ("password.html", {**signed_in, "min_length": 12, "error": text}),
        "password-forced": ("password.html", {**signed_in, "min_length": 1, "forced": True}),
        "set-password": (
            "set_password.html",
            {"csrf_token": "t", "action": "/invite/abc", "min_length": 12, "email": email},
        ),
        "error": ("error.html", {"title": text, "message": text}),
    }


def frame_app(pages: Pages) -> Starlette:
    """The tiny app: /page/<name> renders a template; ?hostile=1 fills it with markup;
    ?setting=<lang> plays the user's own language setting."""

    async def page(request: Request) -> Response:
        setting = request.query_params.get("setting")
        if setting:
            request.state.language = setting
        hostile = request.query_params.get("hostile") == "1"
        name, context = contexts(hostile)[request.path_params["name"]]
        status = 404 if name == "error.html" else 200
        return pages.render(request, name, context, status_code=status)

    async def missing(request: Request) -> Response:
        return pages.error(request, 404)

    routes = [Route("/page/{name}", page), Route("/missing", missing), pages.static_route()]
    return Starlette(routes=routes)


@pytest.fixture(scope="module")
def pages() -> Pages:
    return Pages()


@pytest.fixture
async def client(pages: Pages) -> AsyncIterator[httpx.AsyncClient]:
    # Wrapped as server/app.py wraps Zeef: its defaults must not override the pages' headers.
    app = SecurityHeaders(frame_app(pages))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://zeef.test") as http:
        yield http


# -- headers, languages, escaping ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(contexts(False)))
async def test_every_page_has_the_page_headers(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/page/{name}")
    assert response.status_code == (404 if name == "error" else 200)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for header, value in PAGE_HEADERS.items():
        # One value each: server/headers.py's no-referrer and default-src 'none' did not add
        # a second, contradicting header.
        assert response.headers.get_list(header) == [value], header
    html = response.text
    assert html.startswith('<!doctype html>\n<html lang="en">')
    assert '<main id="main"' in html and 'href="#main"' in html
    # The CSP forbids inline script and style: the templates must not need them.
    assert "<script" not in html and "style=" not in html and "<style" not in html


LANGUAGES = [
    ("nl", {}, "nl", "Inloggen bij Zeef"),
    ("es-ES,es;q=0.9", {}, "es", "Inicia sesión en Zeef"),
    ("fr", {}, "en", "Log in to Zeef"),
    ("", {}, "en", "Log in to Zeef"),
    ("fr-CH, fr;q=0.9, nl;q=0.5, es;q=0.4", {}, "nl", "Inloggen bij Zeef"),
    ("nl;q=0, es", {}, "es", "Inicia sesión en Zeef"),
    ("nl;q=0.2, es;q=0.8", {}, "es", "Inicia sesión en Zeef"),
    ("NL-be", {}, "nl", "Inloggen bij Zeef"),
    ("es;q=abc, nl", {}, "nl", "Inloggen bij Zeef"),
    ("*", {}, "en", "Log in to Zeef"),
    (";;,,q=1,-", {}, "en", "Log in to Zeef"),
    ("nl", {"setting": "es"}, "es", "Inicia sesión en Zeef"),
    ("es", {"setting": "fr"}, "es", "Inicia sesión en Zeef"),
]


@pytest.mark.parametrize(
    ("accept", "params", "lang", "heading"),
    LANGUAGES,
    ids=[f"{a or 'none'}{'+' + str(p) if p else ''}" for a, p, _, _ in LANGUAGES],
)
async def test_the_page_speaks_the_best_language(
    client: httpx.AsyncClient, accept: str, params: dict[str, str], lang: str, heading: str
) -> None:
    response = await client.get(
        "/page/login-empty", params=params, headers={"accept-language": accept}
    )
    assert f'<html lang="{lang}">' in response.text
    assert f">{heading}</h1>" in response.text
    assert response.headers["content-language"] == lang


async def test_plurals_follow_the_language(client: httpx.AsyncClient) -> None:
    one = await client.get("/page/password-forced", headers={"accept-language": "nl"})
    assert "Minstens 1 teken." in one.text
    assert "Een beheerder heeft je wachtwoord opnieuw ingesteld" in one.text
    many = await client.get("/page/password", headers={"accept-language": "es"})
    assert "Al menos 12 caracteres." in many.text


async def test_the_standard_error_page_is_translated(client: httpx.AsyncClient) -> None:
    response = await client.get("/missing", headers={"accept-language": "nl"})
    assert response.status_code == 404
    assert ">Pagina niet gevonden</h1>" in response.text
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("name", [name for name in contexts(True) if name != "login-empty"])
async def test_values_are_escaped(client: httpx.AsyncClient, name: str) -> None:
    html = (await client.get(f"/page/{name}", params={"hostile": "1"})).text
    assert "<script" not in html
    assert '"onmouseover' not in html and "<b>" not in html
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert escaped or "&#34;onmouseover=x" in html


async def test_the_layout_shows_the_user_menu_navigation_and_messages(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/page/password")).text
    assert '<form method="post" action="/logout">' in html
    assert '<input type="hidden" name="csrf" value="token-123">' in html
    assert ">ada@example.com</a>" in html
    assert '<a href="/admin/users" aria-current="page">' in html
    assert '<a href="/admin/sites">Sites</a>' in html
    assert '<p class="message message-success" role="status">' in html
    assert '<p class="message message-error" role="alert">' in html
    # A kind that is not one of the three is shown as information, not put into a class.
    assert '<p class="message message-info" role="status">unknown kind</p>' in html
    signed_out = (await client.get("/page/login")).text
    assert "/logout" not in signed_out and "<nav" not in signed_out


async def test_the_login_form_is_what_the_login_route_reads(client: httpx.AsyncClient) -> None:
    html = (await client.get("/page/login")).text
    assert '<form method="post" action="/login"' in html
    assert re.search(r'<input type="email" id="email" name="email" value="ada@example.com" '
                     r'autocomplete="username" required', html)  # fmt: skip
    assert re.search(r'<input type="password" id="password" name="password" '
                     r'autocomplete="current-password" required', html)  # fmt: skip
    assert '<input type="hidden" name="next" value="ada@example.com">' in html
    assert '<label for="email">' in html and '<label for="password">' in html


def test_a_missing_value_is_an_error_not_an_empty_string(pages: Pages) -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    with pytest.raises(UndefinedError, match="csrf_token"):
        pages.render(request, "login.html", {"error": None, "email": "", "next": ""})


# -- static files -------------------------------------------------------------------------------


async def test_the_stylesheet_is_cached_for_a_year_under_its_hash(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/page/login")).text
    [href] = re.findall(r'<link rel="stylesheet" href="([^"]+)">', html)
    assert re.fullmatch(r"/static/zeef\.css\?v=[0-9a-f]{12}", href)
    fresh = await client.get(href)
    assert fresh.status_code == 200
    assert fresh.content == (DASHBOARD / "static" / "zeef.css").read_bytes()
    assert fresh.headers["content-type"] == "text/css; charset=utf-8"
    assert fresh.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert fresh.headers["x-content-type-options"] == "nosniff"
    for stale in ("/static/zeef.css", "/static/zeef.css?v=0123456789ab"):
        response = await client.get(stale)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=300", stale
    again = await client.get(href, headers={"if-none-match": fresh.headers["etag"]})
    assert again.status_code == 304


TRAVERSALS = [
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/%2E%2E%2F%2E%2E%2Fpyproject.toml",
    "/static/..%2f..%2fpyproject.toml",
    "/static//etc/passwd",
    "/static/%2Fetc%2Fpasswd",
    "/static/zeef.css/../../pyproject.toml".replace("..", "%2e%2e"),
    "/static/./zeef.css".replace(".", "%2e", 1),
    "/static/",
    "/static/nothing.css",
    "/static/%00",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_nothing_outside_the_static_folder_is_served(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404, path
    assert b"[project]" not in response.content and b"root:" not in response.content


def test_a_literal_dot_dot_reaches_nothing_either(live: str) -> None:
    # httpx removes "../" from a URL before sending it; a raw request keeps it, as an
    # attacker's would, and uvicorn passes it on as it came.
    host, port = live.removeprefix("http://").split(":")
    for path in ("/static/../../pyproject.toml", "/static/../server/app.py", "/static/.."):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(f"GET {path} HTTP/1.1\r\nHost: zeef\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := raw.recv(65536):
                answer += chunk
        status = answer.split(b"\r\n", 1)[0]
        assert status in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request"), (path, status)
        assert b"[project]" not in answer and b"create_app" not in answer


def test_the_stylesheet_stays_small_and_local() -> None:
    css = (DASHBOARD / "static" / "zeef.css").read_text(encoding="utf-8")
    assert len(css.encode()) < 16_000  # 2 KB of it the charts
    assert "@import" not in css and "//" not in css.replace("/*", "").replace("*/", "")
    # Light and dark by the device's setting (color-scheme), or by the account's (data-theme).
    assert "color-scheme: light dark" in css and "light-dark(" in css
    assert '[data-theme="light"]' in css and '[data-theme="dark"]' in css
    assert 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif' in css


def test_templates_use_neither_inline_code_nor_unescaped_values() -> None:
    for template in (DASHBOARD / "templates").glob("*.html"):
        source = template.read_text(encoding="utf-8")
        for forbidden in ("|safe", "| safe", "style=", "<style", "autoescape"):
            assert forbidden not in source, (template.name, forbidden)
        # A script only as a file of dashboard/static/, never inline (the CSP's script-src).
        linked = re.sub(r"""<script defer src="\{\{ static\('[\w-]+\.js'\) \}\}"></script>""",
                        "", source)  # fmt: skip
        assert "<script" not in linked, template.name
        assert not re.search(r"\son[a-z]+=", source), template.name  # onclick= and the like


# -- catalogues ---------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted(tmp_path: Path) -> dict[str, Any]:
    """`pybabel extract` with the project's babel.cfg, as CONTRIBUTING.md runs it."""
    pot = tmp_path / "messages.pot"
    cli = ["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "-o", str(pot), str(ROOT)]
    CommandLineInterface().run(cli)
    with pot.open("rb") as handle:
        return {message.id: message for message in read_po(handle) if message.id}


def test_babel_cfg_finds_the_strings_of_templates_and_code(tmp_path: Path) -> None:
    found = extracted(tmp_path)
    assert "Log in to Zeef" in found  # login.html
    assert ("At least %(num)d character.", "At least %(num)d characters.") in found  # plural
    assert "Page not found" in found  # server/web/templates.py
    with (DASHBOARD / "locale" / "messages.pot").open("rb") as handle:
        committed = {message.id for message in read_po(handle) if message.id}
    assert committed == set(found), "dashboard/locale/messages.pot is stale: CONTRIBUTING.md"


@pytest.mark.parametrize("lang", ["nl", "es"])
def test_every_string_is_translated_with_its_placeholders(tmp_path: Path, lang: str) -> None:
    found = extracted(tmp_path)
    with (DASHBOARD / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle, locale=lang)
    translated = {message.id: message for message in catalogue if message.id}
    assert set(translated) == set(found), "run pybabel update (CONTRIBUTING.md)"
    for msgid, message in translated.items():
        assert not message.fuzzy, msgid
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        assert len(forms) == (catalogue.num_plurals if message.pluralizable else 1), msgid
        sources = msgid if isinstance(msgid, tuple) else (msgid,)
        wanted = {name for source in sources for name in PLACEHOLDER.findall(source)}
        for form in forms:
            assert form.strip(), (lang, msgid)
            assert set(PLACEHOLDER.findall(form)) == wanted, (lang, msgid, form)


# -- in real Chromium ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(pages: Pages) -> Iterator[str]:
    """The tiny app under a real uvicorn on a free port, in a thread."""
    port = _free_port("127.0.0.1")
    config = uvicorn.Config(
        SecurityHeaders(frame_app(pages)), host="127.0.0.1", port=port, log_level="warning",
        lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_login_page_in_chromium(
    live: str, browser: Any, screenshots: Path, scheme: str
) -> None:
    requests: list[str] = []
    console: list[str] = []
    for width, suffix in ((1280, ""), (360, "-phone")):
        context = browser.new_context(
            viewport={"width": width, "height": 760 if width > 400 else 720},
            color_scheme=scheme,
            locale="en-GB",
        )
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.goto(f"{live}/page/login-empty")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=screenshots / f"login-{scheme}{suffix}.png", full_page=True)
        # After a failed attempt: the error, the address kept, the password field focused.
        page.goto(f"{live}/page/login")
        page.wait_for_load_state("networkidle")

        assert requests and all(url.startswith(live + "/") for url in requests), requests
        assert not [line for line in console if "Content Security Policy" in line], console
        assert not [line for line in console if line.startswith("error")], console
        # The stylesheet applied (a blocked one would leave the browser's white default).
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(245, 246, 248)" if scheme == "light" else "rgb(20, 23, 28)")
        # Nothing wider than the screen; controls a thumb can hit.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for selector in ("#email", "#password", "button[type=submit]"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["height"] >= 44, selector
        page.screenshot(path=screenshots / f"login-error-{scheme}{suffix}.png", full_page=True)
        context.close()


# What the admin lists will be made of, put on a page by the test (DevTools-style, so the
# page's CSP does not apply) to see zeef.css's tables, badges and buttons.
COMPONENTS = """
document.querySelector("main").className = "wide";
document.querySelector("main").innerHTML = `
<section class="card"><h2>Users</h2><div class="table-scroll"><table class="list">
<thead><tr><th>Email</th><th>Role</th><th class="number">Sites</th><th></th></tr></thead>
<tbody><tr><td>ada@example.com</td><td><span class="badge badge-role">admin</span></td>
<td class="number">12</td><td><button class="button button-secondary button-small">Edit</button>
</td></tr><tr><td>bob@example.com</td><td><span class="badge badge-blocked">blocked</span>
<span class="badge">viewer</span></td><td class="number">3</td>
<td><button class="button button-danger button-small">Delete</button></td></tr>
</tbody></table></div><p></p><div class="actions"><button class="button button-primary">
Invite a user</button><button class="button button-secondary">Cancel</button>
<button class="button button-danger">Delete</button></div></section>`;
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_signed_in_layout_in_chromium(
    live: str, browser: Any, screenshots: Path, scheme: str
) -> None:
    for width, suffix in ((1280, ""), (360, "-phone")):
        context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        page = context.new_page()
        page.goto(f"{live}/page/password-forced?setting=nl")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # The username for password managers is in the form but not on the screen.
        assert page.locator("input[autocomplete=username]").is_hidden()
        assert page.locator("button", has_text="Uitloggen").is_visible()
        page.screenshot(path=screenshots / f"password-{scheme}{suffix}.png", full_page=True)
        page.evaluate(COMPONENTS)
        page.screenshot(path=screenshots / f"components-{scheme}{suffix}.png", full_page=True)
        context.close()

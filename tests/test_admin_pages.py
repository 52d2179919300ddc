"""The admin pages in real Chromium against the real app under uvicorn: an operator's superuser
and a customer's admin log in through /login and walk every page they may see, adding a user,
resetting a password and creating an API key on the way. Each page is saved as a screenshot
(ZEEF_SCREENSHOTS names the folder) for a person to judge; the test checks what a browser can:
nothing loaded from elsewhere, no console error or CSP violation, nothing wider than a phone,
every input labelled, and that a customer's admin sees neither customers nor the operator.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.accounts import audit, customers, users
from server.app import create_app
from server.config import Settings
from server.sites import add_site
from server.storage import open_storage

from .conftest import CHROME, served

PASSWORD = "correct horse battery staple"
OPERATOR = "op@zeef.example"
ADMIN = "ann@acme.example"
SITE = "acme.example"
VISITOR = "AnnAnnAnnAnnAnnAnnAn01"


@dataclass
class Live:
    url: str
    ids: dict[str, int]


async def seed(database: Path) -> dict[str, int]:
    """Customer Acme with acme.example and its admin Ann, and the operator's superuser; each
    added by themselves, so neither must change the password at the first login."""
    storage = open_storage(database)
    await storage.migrate()
    try:
        acme = await customers.add_customer(storage, "Acme")
        site = await add_site(storage, SITE, "Europe/Amsterdam")
        await storage.set_site_customer(site.id, acme["id"])
        await add_site(storage, "zeef.example")  # the operator's own, of no customer
        op = await users.add_user(storage, OPERATOR, "superuser", None, PASSWORD,
                                  audit.Actor(OPERATOR, "-", OPERATOR))  # fmt: skip
        ann = await users.add_user(storage, ADMIN, "admin", acme["id"], PASSWORD,
                                   audit.Actor(ADMIN, "-", ADMIN))  # fmt: skip
        await customers.add_customer(storage, "Bakkerij de Vries")
        return {"op": op.id, "ann": ann.id, "acme": acme["id"]}
    finally:
        await storage.close()


def traffic(url: str) -> None:
    """A few pageviews and a bot for the installation check, one consent decision for the log."""
    headers = {"content-type": "text/plain", "user-agent": CHROME}
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
        for path in ("/", "/pricing", "/blog/why-we-left-google-analytics"):
            event = {"n": "pageview", "u": f"https://{SITE}{path}", "d": SITE, "r": None}
            assert http.post("/api/event", content=json.dumps(event), headers=headers).is_success
        # A visitor who accepted statistics cookies: the tracker sends the banner's zeef_id.
        event = {"n": "pageview", "u": f"https://{SITE}/shop", "d": SITE, "r": None, "c": VISITOR}
        assert http.post("/api/event", content=json.dumps(event), headers=headers).is_success
        bot = {**headers, "user-agent": "curl/8.5.0"}
        event = {"n": "pageview", "u": f"https://{SITE}/", "d": SITE, "r": None}
        http.post("/api/event", content=json.dumps(event), headers=bot)
        decision = {
            "site": SITE, "consent_id": str(uuid.uuid4()), "action": "accept_all",
            "choices": {"necessary": True, "analytics": True}, "revision": 1, "language": "nl",
            "texts_hash": "ab" * 32, "path": "/pricing", "gpc": False,
        }  # fmt: skip
        http.post("/api/consent", content=json.dumps(decision), headers=headers)


@pytest.fixture(autouse=True)
def no_connection_left_open() -> Iterator[None]:
    """The module's live server opens readers as requests come and keeps them across tests;
    `live` checks at its end that the server closed every one (conftest's check, per module)."""
    yield


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The real app under a real uvicorn on a free port, in a thread, with the data above."""
    database = tmp_path_factory.mktemp("admin") / "zeef.sqlite3"
    # In a thread of its own: Playwright's sync API may hold this thread's event loop already.
    with ThreadPoolExecutor(1) as pool:
        ids = pool.submit(asyncio.run, seed(database)).result()
    settings = Settings(database=database, public_url="https://stats.zeef.example",
                        flush_interval=0.1)  # fmt: skip
    with served(create_app(settings)) as url:
        traffic(url)
        time.sleep(0.5)  # the buffer's flush
        yield Live(url, ids)


class Visit:
    """One browser context logged in as `email`, recording every request and console line."""

    def __init__(self, browser: Any, live: Live, screenshots: Path, email: str, **options: Any):
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("locale", "en-GB")
        self.context = browser.new_context(**options)
        self.page = self.context.new_page()
        self.live = live
        self.screenshots = screenshots
        self.requests: list[str] = []
        self.console: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda line: self.console.append(f"{line.type}: {line.text}"))
        self.page.goto(f"{live.url}/login")
        self.page.fill("#email", email)
        self.page.fill("#password", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{live.url}/sites")

    def open(self, path: str, shot: str | None = None) -> str:
        response = self.page.goto(f"{self.live.url}{path}")
        assert response is not None and response.status == 200, (path, response)
        self.page.wait_for_load_state("networkidle")
        self.check()
        if shot:
            self.shot(shot)
        return self.page.content()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=self.screenshots / f"{name}.png", full_page=True)

    def check(self) -> None:
        page = self.page
        assert self.requests and all(u.startswith(self.live.url + "/") for u in self.requests)
        assert not [line for line in self.console if "Content Security Policy" in line]
        assert not [line for line in self.console if line.startswith("error")], self.console
        width = page.viewport_size["width"]
        wider = page.evaluate("""w => [...document.querySelectorAll('body *')].filter(
            e => e.getBoundingClientRect().right > w).map(e => e.tagName + '.' + e.className)""",
            width)  # fmt: skip
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (page.url, wider)
        # Every visible control has a label a screen reader reads out.
        unlabelled = page.evaluate("""[...document.querySelectorAll(
            'input:not([type=hidden]), select, textarea')].filter(
            e => !e.hidden && !(e.labels && e.labels.length)).map(e => e.name || e.id)""")
        assert not unlabelled, (page.url, unlabelled)
        # Every form that posts carries the session's CSRF token.
        forms = page.evaluate("""[...document.querySelectorAll('form[method=post]')].map(
            f => f.querySelector('input[type=hidden][name=csrf]')?.value || '')""")
        assert all(len(token) > 10 for token in forms), (page.url, forms)

    def nav(self) -> list[str]:
        return [text.strip() for text in self.page.locator(".site-nav a").all_inner_texts()]

    def close(self) -> None:
        self.context.close()


def test_the_operator_walks_every_admin_page(browser: Any, live: Live, screenshots: Path) -> None:
    visit = Visit(browser, live, screenshots, OPERATOR)
    page = visit.page
    assert visit.nav() == ["Sites", "Users", "API keys", "Customers", "Audit log"]

    html = visit.open("/sites", "admin-sites")
    assert ">Customer</th>" in html and ">Acme</td>" in html
    assert page.locator("select#customer option").all_inner_texts() == [
        "Acme", "Bakkerij de Vries"]  # fmt: skip

    html = visit.open(f"/sites/{SITE}/settings", "admin-site-settings")
    snippet = page.locator("pre.snippet code").inner_text()
    assert snippet == (f'<script defer data-domain="{SITE}" '
                       'src="https://stats.zeef.example/tracker.js"></script>')  # fmt: skip
    assert "<script" not in html  # shown, not run
    assert page.locator("#dnt-honour").is_checked()
    hits = page.locator("section[aria-labelledby=check-heading] table").first
    assert "/pricing" in hits.inner_text()
    assert "a bot or crawler, not a person" in html
    # Saving the settings comes back with the message.
    page.check("#dnt-ignore")
    page.click("text=Save settings")
    page.wait_for_url("**/settings?done=site-saved")
    assert page.locator("#dnt-ignore").is_checked()
    visit.shot("admin-site-settings-saved")

    visit.open(f"/sites/{SITE}/subjects")
    page.fill("#subject-id", VISITOR)
    page.click("button:has-text('Find')")
    page.wait_for_load_state("networkidle")
    assert "Page views and events" in page.locator("table.list").inner_text()
    visit.check()
    visit.shot("admin-subjects")

    html = visit.open(f"/sites/{SITE}/consent-log", "admin-consent-log")
    assert "accept_all" in html and "necessary: yes, analytics: yes" in html

    visit.open("/users", "admin-users")
    page.fill("#email", "vic@acme.example")
    page.select_option("#role", "viewer")
    page.select_option("#customer", "Acme")
    page.click("text=Add user")
    page.wait_for_load_state("networkidle")
    link = page.locator("#new-user-link").input_value()
    assert link.startswith("https://stats.zeef.example/set-password/")
    assert "vic@acme.example" in page.locator("table.list").inner_text()
    visit.check()
    visit.shot("admin-users-added")

    visit.open(f"/users/{live.ids['ann']}", "admin-user")
    visit.open("/users")
    page.click("a:has-text('vic@acme.example')")
    page.wait_for_load_state("networkidle")
    page.click("button:has-text('Reset password')")
    page.wait_for_load_state("networkidle")
    assert page.locator("#reset-link").input_value().startswith("https://stats.zeef.example/")
    visit.check()
    visit.shot("admin-user-reset")
    html = visit.open(f"/users/{live.ids['op']}", "admin-user-self")
    assert "/account/password" in html and f"/users/{live.ids['op']}/block" not in html

    visit.open("/api-keys")
    page.fill("#label", "Weekly report")
    page.click("text=Create key")
    page.wait_for_load_state("networkidle")
    key = page.locator("#new-key").input_value()
    assert key and f"Authorization: Bearer {key}" in page.locator("pre.snippet").inner_text()
    visit.check()
    visit.shot("admin-api-keys-created")
    html = visit.open("/api-keys", "admin-api-keys")
    assert key not in html  # shown once
    page.click("a:has-text('Weekly report')")
    page.wait_for_load_state("networkidle")
    visit.check()
    visit.shot("admin-api-key")

    visit.open("/customers", "admin-customers")
    page.fill("#name", "Acme")
    page.click("text=Add customer")
    page.wait_for_load_state("networkidle")
    assert "There is a customer of that name already." in page.content()
    # The browser reports the 400 that answered; nothing else may be in the console.
    assert visit.console.pop() == (
        "error: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    )
    visit.check()
    visit.shot("admin-customers-error")
    # Acme's agreement: 13 months; its site then says where its period comes from.
    visit.open("/customers")
    page.click("a:has-text('Acme')")
    page.wait_for_load_state("networkidle")
    page.fill("#retention", "13m")
    page.click("text=Save agreement")
    page.wait_for_url("**?done=customer-saved")
    assert page.locator("#retention").input_value() == "13m"
    assert "13 months (agreed with the customer)" in page.locator("table.list").inner_text()
    visit.check()
    visit.shot("admin-customer")
    visit.open(f"/sites/{SITE}/settings")
    page.fill("#retention-period", "90d")
    page.click("text=Save period")
    page.wait_for_url("**?done=retention-saved#retention")
    assert "90 days (set for this site)" in page.locator("#retention").inner_text()
    visit.check()
    page.locator("#retention").scroll_into_view_if_needed()
    visit.shot("admin-site-retention")

    html = visit.open("/audit-log", "admin-audit-log")
    assert "API key created" in html and ">Acme</td>" in html
    visit.close()

    # A phone, and the dark scheme.
    phone = Visit(browser, live, screenshots, OPERATOR, viewport={"width": 360, "height": 740},
                  is_mobile=True, has_touch=True)  # fmt: skip
    phone.open("/sites", "admin-sites-phone")
    phone.open("/users", "admin-users-phone")
    phone.open(f"/sites/{SITE}/settings", "admin-site-settings-phone")
    phone.open(f"/customers/{live.ids['acme']}", "admin-customer-phone")
    phone.open(f"/sites/{SITE}/subjects", "admin-subjects-phone")
    phone.close()
    dark = Visit(browser, live, screenshots, OPERATOR, color_scheme="dark")
    dark.open(f"/sites/{SITE}/settings", "admin-site-settings-dark")
    dark.open("/users", "admin-users-dark")
    dark.open(f"/customers/{live.ids['acme']}", "admin-customer-dark")
    dark.open(f"/sites/{SITE}/subjects")
    dark.page.fill("#subject-id", VISITOR)
    dark.page.click("button:has-text('Find')")
    dark.page.wait_for_load_state("networkidle")
    dark.check()
    dark.shot("admin-subjects-dark")
    dark.close()


def test_a_customers_admin_sees_only_their_customer(
    browser: Any, live: Live, screenshots: Path
) -> None:
    visit = Visit(browser, live, screenshots, ADMIN)
    page = visit.page
    assert visit.nav() == ["Sites", "Users", "API keys", "Audit log"]

    html = visit.open("/sites", "ann-sites")
    assert SITE in html and "zeef.example<" not in html
    assert ">Customer</th>" not in html and 'id="customer"' not in html
    visit.open(f"/sites/{SITE}/settings", "ann-site-settings")
    html = visit.open("/users", "ann-users")
    assert OPERATOR not in html and ">Customer</th>" not in html
    assert page.locator("#role option").all_inner_texts() == ["Viewer", "Admin"]
    visit.open("/api-keys", "ann-api-keys")
    html = visit.open("/audit-log", "ann-audit-log")
    assert ">Customer</th>" not in html and "Bakkerij" not in html
    response = page.goto(f"{live.url}/customers")
    assert response is not None and response.status == 404
    visit.close()


def test_the_pages_speak_dutch(browser: Any, live: Live, screenshots: Path) -> None:
    visit = Visit(browser, live, screenshots, ADMIN, locale="nl-NL")
    html = visit.open(f"/sites/{SITE}/settings", "ann-site-settings-nl")
    assert '<html lang="nl">' in html
    assert "Installatiecontrole" in html
    visit.close()

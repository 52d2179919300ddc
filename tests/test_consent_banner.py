"""consent.js in real Chromium: what it shows, stores, runs and records, and what it never does.

Pages come from `localhost`, Zeef from `127.0.0.1`. Zeef is answered inside the browser with
the built server/static files and a config made by the server's own public_config() from the
real consent/i18n files, so every decision can be read as sent. The last test runs the banner
against a live server and reads the database.
"""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from server.consent import ConsentConfig, DeclaredCookie, Translations, public_config
from server.events import Site

from .live import LiveServer
from .pages import FixtureSite, wait_until

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "server" / "static"
I18N = ROOT / "consent" / "i18n"
ZEEF = "http://127.0.0.1:9"  # never reached: the browser's routes answer for it
SITE = Site(id=1, domain="example.com", timezone="UTC", created_at=0)
TRANSLATIONS = Translations(I18N)
DAY = 86400
RECORD_KEYS = {
    "site", "consent_id", "action", "choices", "revision", "language", "texts_hash", "path", "gpc",
}  # fmt: skip
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ALL = {"necessary": True, "analytics": True, "marketing": True}
NONE = {"necessary": True, "analytics": False, "marketing": False}


class FakeZeef:
    """Answers for Zeef inside one browser context and records what reaches it."""

    def __init__(self, context: Any) -> None:
        self.config = ConsentConfig(
            categories=("necessary", "analytics", "marketing"),
            policy_url="https://example.com/privacy",
            controller="Example BV",
            cookies=(DeclaredCookie("_fbp*", "Facebook advertising", "3 months", "marketing"),),
        ).checked()
        self.records: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.config_queries: list[dict[str, list[str]]] = []
        self.requests: list[Any] = []
        self.held: list[Any] = []
        self.hold = False  # keep config requests waiting until release()
        self.hashes: dict[tuple[int, str], str] = {}  # (revision, language) -> texts_hash served
        context.on("request", lambda request: self.requests.append(request))
        context.route(f"{ZEEF}/**", self.handle)

    def configure(self, **changes: Any) -> None:
        self.config = replace(self.config, **changes).checked()

    def public(self, lang: str) -> dict[str, Any]:
        return public_config(SITE, self.config, TRANSLATIONS.pick(lang), TRANSLATIONS)

    def handle(self, route: Any) -> None:
        request = route.request
        url = urlsplit(request.url)
        cors = {"access-control-allow-origin": "*"}
        if url.path == "/consent/config":
            query = parse_qs(url.query)
            self.config_queries.append(query)
            if self.hold:
                self.held.append(route)
            elif query.get("site") != ["example.com"]:
                route.fulfill(status=404, json={"error": "unknown site"}, headers=cors)
            else:
                config = self.public(query["lang"][0])
                self.hashes[config["revision"], config["language"]] = config["texts_hash"]
                route.fulfill(json=config, headers=cors)
        elif url.path == "/api/consent" and request.method == "POST":
            record = json.loads(request.post_data)
            self.records.append(record)
            route.fulfill(status=201, json={"consent_id": record["consent_id"]}, headers=cors)
        elif url.path == "/api/event" and request.method == "POST":
            self.events.append(json.loads(request.post_data))
            route.fulfill(status=202, body="ok", headers=cors)
        elif url.path in ("/consent.js", "/consent.css", "/tracker.js"):
            kind = "text/css" if url.path.endswith(".css") else "text/javascript"
            route.fulfill(body=(STATIC / url.path[1:]).read_bytes(), content_type=kind)
        else:
            route.fulfill(status=404, body="")

    def release(self) -> None:
        self.hold = False
        for route in self.held:
            self.handle(route)
        self.held.clear()


class Visitor:
    """One browser profile: a Playwright context and tab, with Zeef answered by a FakeZeef."""

    def __init__(self, browser: Any, site: FixtureSite, **options: Any) -> None:
        self.site = site
        self.context = browser.new_context(**options)
        self.zeef = FakeZeef(self.context)
        self.allowed_cookies = {"zeef_consent", "zeef_id"}
        # A third-party-looking script the page serves itself, run only with consent.
        self.context.route(
            f"{site.origin}/marketing.js",
            lambda route: route.fulfill(
                body="(window.ran = window.ran || []).push('src')", content_type="text/javascript"
            ),
        )
        self.tab = self.context.new_page()

    def open(
        self, path: str, html: str, headers: dict[str, str] | None = None, query: str = ""
    ) -> Any:
        self.tab.goto(self.site.add(path, html, headers) + query)
        return self.tab

    def cookies(self) -> dict[str, dict[str, Any]]:
        return {cookie["name"]: cookie for cookie in self.context.cookies()}

    def stored(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(unquote(self.cookies()["zeef_consent"]["value"]))
        return value

    def wait_for_records(self, count: int) -> list[dict[str, Any]]:
        wait_until(self.tab, lambda: len(self.zeef.records) >= count)
        self.tab.wait_for_timeout(50)  # and no more than that
        assert len(self.zeef.records) == count
        return self.zeef.records

    def check(self) -> None:
        """What must hold after any test: checked when the test ends, then closed."""
        cookies = self.cookies()
        assert set(cookies) <= self.allowed_cookies, cookies
        if "zeef_id" in cookies:
            assert "analytics" in self.stored()["c"]
        for tab in self.context.pages:
            if tab.url.startswith(self.site.origin):
                assert tab.evaluate("localStorage.length + sessionStorage.length") == 0
        hosts = {request.url.split("/")[2] for request in self.zeef.requests}
        assert hosts <= {ZEEF.split("/")[2], self.site.origin.split("/")[2]}, hosts
        for record in self.zeef.records:
            assert set(record) == RECORD_KEYS, record  # exactly these, nothing else
            assert UUID4.match(record["consent_id"])
            assert record["site"] == "example.com"
            # The proof names exactly the texts that were shown.
            shown = self.zeef.hashes[record["revision"], record["language"]]
            assert record["texts_hash"] == shown
            assert "?" not in record["path"] and "#" not in record["path"]
            assert record["action"] in ("accept_all", "reject_all", "custom", "withdraw", "renew")
            assert isinstance(record["gpc"], bool)
        self.context.close()


@pytest.fixture
def visitors(browser: Any, fixture_site: FixtureSite) -> Iterator[Callable[..., Visitor]]:
    made: list[Visitor] = []

    def make(**options: Any) -> Visitor:
        made.append(Visitor(browser, fixture_site, **options))
        return made[-1]

    yield make
    for visitor in made:
        visitor.check()


@pytest.fixture
def visitor(visitors: Callable[..., Visitor]) -> Visitor:
    return visitors()


CONSENT = f'<script src="{ZEEF}/consent.js" data-site="example.com"></script>'
# The tracker's side of the contract, and a page listening for decisions (one listener is
# broken: the others still hear).
LISTENERS = (
    "<script>window.zeef = {consented: () => { window.consented = (window.consented || 0) + 1 }};"
    "zeefConsent.onChange(() => { throw new Error('a broken listener') });"
    "zeefConsent.onChange(state => (window.changes = window.changes || []).push(state))</script>"
)
BLOCKED = (
    "<script type='text/plain' data-category='marketing'>"
    "(window.ran = window.ran || []).push('inline')</script>"
    "<script type='text/plain' data-category='marketing' src='/marketing.js'></script>"
    "<script type='text/plain' data-category='analytics'>"
    "(window.ran = window.ran || []).push('analytics')</script>"
)
BODY = (
    "<h1>Shop</h1><button id=before onclick='window.clicks = (window.clicks || 0) + 1'>Buy</button>"
    "<p>Prices.</p>"
)


def site_page(body: str = BODY, head: str = CONSENT + LISTENERS + BLOCKED, lang: str = "en") -> str:
    language = f" lang={lang}" if lang else ""
    return (
        f"<!doctype html><html{language}><head><meta charset=utf-8><title>Shop</title>{head}"
        f"</head><body>{body}</body></html>"
    )


def dialog(tab: Any) -> Any:
    return tab.get_by_role("dialog")


def click(tab: Any, name: str) -> None:
    tab.get_by_role("button", name=name, exact=True).click()


def ran(tab: Any) -> list[str]:
    result: list[str] = tab.evaluate("window.ran || []")
    return result


# -- deciding ---------------------------------------------------------------------------------


def test_nothing_is_stored_or_ticked_before_a_choice(visitor: Visitor) -> None:
    tab = visitor.open("/pricing", site_page(), query="?utm_source=mail")
    expect(dialog(tab)).to_be_visible()
    expect(dialog(tab)).to_have_accessible_name("Cookies on this site")
    expect(dialog(tab)).to_contain_text("Example BV uses the cookies")
    link = dialog(tab).get_by_role("link", name="Privacy statement")
    expect(link).to_have_attribute("href", "https://example.com/privacy")
    assert visitor.zeef.config_queries == [{"site": ["example.com"], "lang": ["en"]}]
    assert visitor.context.cookies() == []
    assert ran(tab) == []
    click(tab, "Preferences")
    prefs = dialog(tab)
    expect(prefs).to_have_accessible_name("Preferences")
    necessary, analytics, marketing = prefs.get_by_role("switch").all()
    expect(necessary).to_be_checked()
    expect(necessary).to_be_disabled()
    expect(prefs).to_contain_text("Always on")
    for optional in (analytics, marketing):  # no pre-ticked boxes
        expect(optional).not_to_be_checked()
        expect(optional).to_be_enabled()
    expect(analytics).to_have_accessible_name("Analytics")
    rows = prefs.locator("tr").all_inner_texts()
    assert [row.split("\t")[0] for row in rows] == [
        "Cookie", "zeef_consent", "Cookie", "zeef_id", "Cookie", "_fbp*",
    ]  # fmt: skip
    assert "Facebook advertising\t3 months" in rows[-1]
    assert "6 months" in rows[1]
    expect(prefs.get_by_text("Your consent ID:")).to_be_hidden()  # none exists yet
    tab.wait_for_timeout(100)
    assert visitor.context.cookies() == []
    assert visitor.zeef.records == []
    assert tab.evaluate("[window.consented, window.changes]") == [None, None]


@pytest.mark.parametrize("how", ["reject button", "close button", "escape key"])
def test_refusal_is_remembered_and_runs_nothing(visitor: Visitor, how: str) -> None:
    tab = visitor.open("/pricing", site_page(), query="?q=1#top")
    expect(dialog(tab)).to_be_visible()
    if how == "reject button":
        click(tab, "Reject all")
    elif how == "close button":
        click(tab, "Close and reject all")  # the X says what it does
    else:
        tab.keyboard.press("Escape")
    [record] = visitor.wait_for_records(1)
    assert record["action"] == "reject_all"  # closing is refusing, recorded as such
    assert (record["choices"], record["path"], record["revision"]) == (NONE, "/pricing", 1)
    assert (record["language"], record["gpc"]) == ("en", False)
    expect(dialog(tab)).to_have_count(0)
    expect(tab.get_by_role("button", name="Cookie settings")).to_be_visible()
    cookie = visitor.cookies()["zeef_consent"]
    assert set(visitor.cookies()) == {"zeef_consent"}  # no zeef_id
    assert (cookie["path"], cookie["sameSite"], cookie["secure"]) == ("/", "Lax", False)
    stored = visitor.stored()
    assert stored["id"] == record["consent_id"]
    assert (stored["r"], stored["c"], stored["e"] - stored["t"]) == (1, ["necessary"], 182 * DAY)
    assert abs(cookie["expires"] - stored["e"]) <= 2  # remembered as long as a "yes"
    assert abs(stored["t"] - time.time()) < 60
    record_time = stored["t"]
    assert ran(tab) == []
    assert tab.evaluate("[window.consented, window.changes.length]") == [None, 1]
    tab.reload()
    expect(tab.get_by_role("button", name="Cookie settings")).to_be_visible()
    expect(dialog(tab)).to_have_count(0)
    assert ran(tab) == []
    assert tab.evaluate("zeefConsent.accepted('analytics') || zeefConsent.visitorId()") is None
    assert tab.evaluate("zeefConsent.consentId()") == record["consent_id"]
    # Reopened with a decision in force, closing leaves it be, and the X says so.
    tab.get_by_role("button", name="Cookie settings").click()
    expect(dialog(tab).get_by_role("button", name="Close", exact=True)).to_be_visible()
    tab.keyboard.press("Escape")
    expect(dialog(tab)).to_have_count(0)
    tab.wait_for_timeout(50)
    assert len(visitor.zeef.records) == 1
    assert visitor.stored()["t"] == record_time


def test_acceptance_runs_blocked_scripts_and_sets_the_visitor_id(visitor: Visitor) -> None:
    tab = visitor.open("/", site_page())
    expect(dialog(tab)).to_be_visible()
    add_script = (
        "category => { const s = document.createElement('script'); s.type = 'text/plain';"
        " s.dataset.category = category; s.text = \"(window.ran = window.ran || []).push('late')\";"
        " document.body.append(s) }"
    )
    tab.evaluate(add_script, "marketing")  # added before the choice: waits for it
    click(tab, "Accept all")
    [record] = visitor.wait_for_records(1)
    assert (record["action"], record["choices"], record["path"]) == ("accept_all", ALL, "/")
    wait_until(tab, lambda: len(ran(tab)) == 4)
    assert sorted(ran(tab)) == ["analytics", "inline", "late", "src"]
    assert tab.evaluate("document.querySelectorAll('script[type=\"text/plain\"]').length") == 0
    tab.evaluate(add_script, "marketing")  # added after it: runs at once (MutationObserver)
    wait_until(tab, lambda: len(ran(tab)) == 5)
    cookies = visitor.cookies()
    stored = visitor.stored()
    assert stored["c"] == ["necessary", "analytics", "marketing"]
    visitor_id = cookies["zeef_id"]["value"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", visitor_id)
    assert (cookies["zeef_id"]["path"], cookies["zeef_id"]["sameSite"]) == ("/", "Lax")
    assert cookies["zeef_id"]["expires"] <= stored["e"] + 1  # never outlives the consent
    assert tab.evaluate("zeefConsent.visitorId()") == visitor_id
    assert tab.evaluate("zeefConsent.consentId()") == record["consent_id"]
    assert tab.evaluate("window.consented") == 1  # the tracker was told, once
    [change] = tab.evaluate("window.changes")
    assert (change["consent_id"], change["choices"]) == (record["consent_id"], ALL)
    # The next page: scripts run straight away, the ID stays, nothing is asked or recorded.
    tab.reload()
    wait_until(tab, lambda: len(ran(tab)) == 3)
    expect(tab.get_by_role("button", name="Cookie settings")).to_be_visible()
    expect(dialog(tab)).to_have_count(0)
    assert visitor.cookies()["zeef_id"]["value"] == visitor_id
    assert tab.evaluate("[window.consented, window.changes.length]") == [1, 1]
    assert len(visitor.zeef.records) == 1


def test_a_custom_choice_in_preferences(visitor: Visitor) -> None:
    tab = visitor.open("/blog/post", site_page())
    click(tab, "Preferences")
    dialog(tab).get_by_role("switch", name="Analytics").check()
    click(tab, "Save choices")
    [record] = visitor.wait_for_records(1)
    choices = {"necessary": True, "analytics": True, "marketing": False}
    assert (record["action"], record["choices"]) == ("custom", choices)
    assert record["path"] == "/blog/post"
    wait_until(tab, lambda: ran(tab) == ["analytics"])
    assert "zeef_id" in visitor.cookies()
    accepted = "['analytics', 'marketing'].map(zeefConsent.accepted)"
    assert tab.evaluate(accepted) == [True, False]
    tab.wait_for_timeout(100)
    assert ran(tab) == ["analytics"]  # marketing never ran


def test_withdrawal_deletes_the_declared_cookies(visitor: Visitor) -> None:
    visitor.allowed_cookies.add("cart")
    tab = visitor.open("/", site_page())
    click(tab, "Accept all")
    [accepted] = visitor.wait_for_records(1)
    # What a marketing script would have left behind, and a cookie of the site's own.
    tab.evaluate(
        "document.cookie = '_fbp=fb.1.1700000000.123; path=/';"
        "document.cookie = '_fbp_extra=2; path=/';"
        "document.cookie = 'cart=3; path=/'"
    )
    assert {"_fbp", "_fbp_extra", "zeef_id"} <= set(visitor.cookies())
    reopen = tab.get_by_role("button", name="Cookie settings")
    reopen.click()
    prefs = dialog(tab)
    expect(prefs).to_contain_text("Your consent ID: " + accepted["consent_id"])
    analytics = prefs.get_by_role("switch", name="Analytics")
    marketing = prefs.get_by_role("switch", name="Marketing")
    expect(analytics).to_be_checked()  # the choice in force, not a default
    expect(marketing).to_be_checked()
    analytics.uncheck()
    marketing.uncheck()
    click(tab, "Save choices")
    withdrawn = visitor.wait_for_records(2)[1]
    assert (withdrawn["action"], withdrawn["choices"]) == ("withdraw", NONE)
    assert withdrawn["consent_id"] == accepted["consent_id"]  # one ID per browser
    assert set(visitor.cookies()) == {"zeef_consent", "cart"}
    assert visitor.stored()["c"] == ["necessary"]
    assert tab.evaluate("zeefConsent.visitorId()") is None
    assert [c["choices"] for c in tab.evaluate("window.changes")] == [ALL, NONE]
    expect(reopen).to_be_focused()  # focus back where it was


def test_a_new_revision_asks_again(visitor: Visitor) -> None:
    tab = visitor.open("/", site_page())
    click(tab, "Accept all")
    [first] = visitor.wait_for_records(1)
    visitor.zeef.configure(revision=2)  # the site changed what it asks
    tab.reload()
    expect(dialog(tab)).to_be_visible()
    tab.wait_for_timeout(100)
    assert ran(tab) == []  # the old answer no longer holds
    assert tab.evaluate("zeefConsent.accepted('marketing')") is False
    click(tab, "Accept all")
    renewed = visitor.wait_for_records(2)[1]
    assert (renewed["action"], renewed["revision"], renewed["choices"]) == ("renew", 2, ALL)
    assert renewed["consent_id"] == first["consent_id"]
    assert visitor.stored()["r"] == 2
    wait_until(tab, lambda: len(ran(tab)) == 3)


def test_an_expired_answer_asks_again(visitor: Visitor) -> None:
    visitor.zeef.configure(lifetime_days=1)
    tab = visitor.open("/", site_page())
    click(tab, "Accept all")
    [first] = visitor.wait_for_records(1)
    stored, cookies = visitor.stored(), visitor.cookies()
    assert stored["e"] - stored["t"] == DAY
    assert abs(cookies["zeef_consent"]["expires"] - stored["e"]) <= 2
    assert cookies["zeef_id"]["expires"] <= stored["e"] + 1  # the ID goes with the consent
    # A day later: the browser would have dropped the cookie; one that claims to be expired
    # (a clock that was off, say) is not believed either.
    stored["e"] = int(time.time()) - 1
    visitor.context.add_cookies([{
        "name": "zeef_consent", "value": quote(json.dumps(stored)), "url": visitor.site.origin,
    }])  # fmt: skip
    tab.reload()
    expect(dialog(tab)).to_be_visible()
    assert tab.evaluate("zeefConsent.accepted('analytics')") is False
    click(tab, "Reject all")
    renewed = visitor.wait_for_records(2)[1]
    assert (renewed["action"], renewed["choices"]) == ("renew", NONE)
    assert renewed["consent_id"] == first["consent_id"]
    assert "zeef_id" not in visitor.cookies()


def test_global_privacy_control(visitor: Visitor) -> None:
    visitor.context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
    )
    tab = visitor.open("/", site_page())
    click(tab, "Preferences")
    for switch in dialog(tab).get_by_role("switch").all()[1:]:
        expect(switch).not_to_be_checked()
    click(tab, "Save choices")
    [record] = visitor.wait_for_records(1)
    assert (record["action"], record["choices"], record["gpc"]) == ("custom", NONE, True)


# -- how it looks and how it is used ----------------------------------------------------------

FOCUSED = """() => {
  let node = document.activeElement
  while (node && node.shadowRoot && node.shadowRoot.activeElement) {
    node = node.shadowRoot.activeElement
  }
  if (!node || node === document.body) return 'body'
  if (node.getAttribute('role') === 'dialog') return 'dialog'
  if (node.labels && node.labels.length) return node.labels[0].textContent
  return node.getAttribute('aria-label') || node.id || node.textContent
}"""
OUTLINE = """() => {
  let node = document.activeElement
  while (node.shadowRoot && node.shadowRoot.activeElement) node = node.shadowRoot.activeElement
  return getComputedStyle(node).outlineStyle
}"""


def test_keyboard_only(visitor: Visitor) -> None:
    visitor.zeef.hold = True  # the banner comes once the visitor is already on the page
    tab = visitor.open("/", site_page())
    tab.keyboard.press("Tab")
    assert tab.evaluate(FOCUSED) == "before"
    visitor.zeef.release()
    expect(dialog(tab)).to_be_visible()
    assert tab.evaluate(FOCUSED) == "dialog"  # focus moved in: the dialog's title is read
    order = []
    for _ in range(6):
        tab.keyboard.press("Tab")
        order.append(tab.evaluate(FOCUSED))
        assert tab.evaluate(OUTLINE) == "solid"  # visible focus
    assert order == [
        "Privacy statement", "Accept all", "Reject all", "Preferences", "Close and reject all",
        "Privacy statement",  # kept inside while open
    ]  # fmt: skip
    tab.keyboard.press("Shift+Tab")
    assert tab.evaluate(FOCUSED) == "Close and reject all"
    tab.keyboard.press("Escape")
    [record] = visitor.wait_for_records(1)
    assert record["action"] == "reject_all"
    assert tab.evaluate(FOCUSED) == "before"  # returned where it was
    # Changing one's mind: Tab to the reopen button, switch analytics on, save.
    for _ in range(5):
        tab.keyboard.press("Tab")
        if tab.evaluate(FOCUSED) == "Cookie settings":
            break
    tab.keyboard.press("Enter")
    expect(dialog(tab)).to_have_accessible_name("Preferences")
    tab.keyboard.press("Tab")
    tab.keyboard.press("Tab")
    assert tab.evaluate(FOCUSED) == "Analytics"  # necessary is always on: not a stop
    tab.keyboard.press("Space")
    expect(dialog(tab).get_by_role("switch", name="Analytics")).to_be_checked()
    for _ in range(4):
        tab.keyboard.press("Tab")
    assert tab.evaluate(FOCUSED) == "Save choices"
    tab.keyboard.press("Enter")
    changed = visitor.wait_for_records(2)[1]
    assert (changed["action"], changed["choices"]["analytics"]) == ("custom", True)
    assert tab.evaluate(FOCUSED) == "Cookie settings"


@pytest.mark.parametrize(
    ("html_lang", "locale", "asked", "buttons"),
    [
        ("nl-NL", "en-US", "nl", ("Alles accepteren", "Alles weigeren", "Voorkeuren")),
        ("", "es-ES", "es", ("Aceptar todo", "Rechazar todo", "Preferencias")),
        ("fr", "nl-NL", "fr", ("Accept all", "Reject all", "Preferences")),
    ],
    ids=["html-lang-nl", "browser-es", "unknown-fr-falls-back-to-en"],
)
def test_language(
    visitors: Callable[..., Visitor],
    html_lang: str,
    locale: str,
    asked: str,
    buttons: tuple[str, str, str],
) -> None:
    visitor = visitors(locale=locale)
    tab = visitor.open("/", site_page(lang=html_lang))
    expect(dialog(tab)).to_be_visible()
    assert visitor.zeef.config_queries[0]["lang"] == [asked]
    names = dialog(tab).locator(".btn").all_inner_texts()
    assert tuple(names) == buttons
    click(tab, buttons[0])
    [record] = visitor.wait_for_records(1)
    assert record["language"] == (asked if asked != "fr" else "en")


def luminance(css: str) -> float:
    channels = [int(value) / 255 for value in re.findall(r"\d+", css)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


STYLE = """node => {
  const style = getComputedStyle(node)
  return Object.fromEntries(['color', 'background-color', 'border', 'border-radius', 'font-size',
    'font-weight', 'font-family', 'padding', 'text-decoration', 'outline', 'animation-name',
    'position'].map(name => [name, style.getPropertyValue(name)]))
}"""


@pytest.mark.parametrize(
    "options",
    [
        {"viewport": {"width": 1280, "height": 800}, "color_scheme": "light"},
        {"viewport": {"width": 360, "height": 740}, "color_scheme": "dark",
         "reduced_motion": "reduce"},
    ],
    ids=["light-desktop", "dark-phone-reduced-motion"],
)  # fmt: skip
def test_accept_and_reject_look_the_same(
    visitors: Callable[..., Visitor], options: dict[str, Any]
) -> None:
    visitor = visitors(**options)
    tab = visitor.open("/", site_page())
    panel = dialog(tab)
    expect(panel).to_be_visible()
    accept, reject, preferences = (
        tab.get_by_role("button", name=name, exact=True)
        for name in ("Accept all", "Reject all", "Preferences")
    )
    tab.wait_for_timeout(300)  # past the entry animation
    boxes = [button.bounding_box() for button in (accept, reject, preferences)]
    assert boxes[0] and boxes[0]["width"] >= 44 and boxes[0]["height"] >= 44
    for box in boxes[1:]:
        assert box and (box["width"], box["height"]) == (boxes[0]["width"], boxes[0]["height"])
    styles = [button.evaluate(STYLE) for button in (accept, reject, preferences)]
    assert styles[0] == styles[1] == styles[2]
    assert accept.get_attribute("class") == reject.get_attribute("class")
    button = styles[0]
    panel_style = panel.evaluate(STYLE)
    link = panel.get_by_role("link").evaluate(STYLE)
    assert contrast(button["color"], button["background-color"]) >= 4.5
    assert contrast(panel_style["color"], panel_style["background-color"]) >= 4.5
    assert contrast(link["color"], panel_style["background-color"]) >= 4.5
    dark = luminance(panel_style["background-color"]) < 0.2
    assert dark == (options["color_scheme"] == "dark")
    reduced = options.get("reduced_motion") == "reduce"
    assert (panel_style["animation-name"] == "none") == reduced
    # A banner at the bottom, not a wall: it covers less than half of the screen.
    box = panel.bounding_box()
    assert box and box["y"] + box["height"] <= options["viewport"]["height"]
    assert box["height"] < options["viewport"]["height"] / 2 or options["viewport"]["width"] < 400


def test_the_page_stays_usable_behind_the_banner(visitor: Visitor) -> None:
    tab = visitor.open("/", site_page())
    expect(dialog(tab)).to_be_visible()
    tab.click("#before")  # a real click at its position: nothing on top of it
    tab.click("#before")
    assert tab.evaluate("window.clicks") == 2
    on_top = "(() => { const r = document.querySelector('#before').getBoundingClientRect();"
    on_top += " return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2).id })()"
    assert tab.evaluate(on_top) == "before"
    assert tab.evaluate("getComputedStyle(document.body).overflow") == "visible"
    expect(dialog(tab)).to_be_visible()  # still waiting for an answer
    assert visitor.zeef.records == []


def test_included_twice_is_harmless(visitor: Visitor) -> None:
    tab = visitor.open("/", site_page(head=CONSENT + CONSENT + LISTENERS + BLOCKED))
    expect(dialog(tab)).to_be_visible()
    assert tab.evaluate("document.querySelectorAll('zeef-consent').length") == 1
    assert len(visitor.zeef.config_queries) == 1
    click(tab, "Accept all")
    visitor.wait_for_records(1)
    wait_until(tab, lambda: len(ran(tab)) == 3)
    tab.wait_for_timeout(100)
    assert sorted(ran(tab)) == ["analytics", "inline", "src"]  # each once


def test_google_consent_mode_v2(visitor: Visitor) -> None:
    visitor.zeef.configure(consent_mode_v2=True)
    tab = visitor.open("/", site_page())
    expect(dialog(tab)).to_be_visible()
    calls = "dataLayer.map(args => Array.from(args))"
    denied = dict.fromkeys(
        ("ad_storage", "ad_user_data", "ad_personalization", "analytics_storage"), "denied"
    )
    assert tab.evaluate(calls) == [["consent", "default", denied]]
    click(tab, "Preferences")
    dialog(tab).get_by_role("switch", name="Analytics").check()
    click(tab, "Save choices")
    visitor.wait_for_records(1)
    update = {**denied, "analytics_storage": "granted"}
    assert tab.evaluate(calls) == [["consent", "default", denied], ["consent", "update", update]]
    tab.reload()  # every page: default first, then the answer in force
    wait_until(tab, lambda: tab.evaluate("(window.dataLayer || []).length") == 2)
    assert tab.evaluate(calls)[1] == ["consent", "update", update]


def test_strict_content_security_policy(visitor: Visitor) -> None:
    policy = f"default-src 'none'; script-src {ZEEF}; style-src {ZEEF}; connect-src {ZEEF}"
    tab = visitor.tab
    messages: list[str] = []
    tab.on("console", lambda message: messages.append(message.text))
    html = site_page("<h1>Shop</h1><button>Buy</button>", head=CONSENT)
    visitor.open("/csp", html, {"content-security-policy": policy})
    panel = dialog(tab)
    expect(panel).to_be_visible()
    assert panel.evaluate(STYLE)["position"] == "fixed"  # the stylesheet applied
    click(tab, "Accept all")
    visitor.wait_for_records(1)
    assert [m for m in messages if "Content Security Policy" in m] == []


def test_an_unknown_site_shows_nothing(visitor: Visitor) -> None:
    tab = visitor.tab
    messages: list[str] = []
    tab.on("console", lambda message: messages.append(message.text))
    script = CONSENT.replace("example.com", "nobody.example")
    visitor.open("/", site_page(head=script + LISTENERS + BLOCKED))
    wait_until(tab, lambda: any("nobody.example" in m for m in messages))
    tab.wait_for_timeout(100)
    expect(dialog(tab)).to_have_count(0)
    assert tab.evaluate("zeefConsent.accepted('analytics')") is False
    assert ran(tab) == [] and visitor.context.cookies() == []


def test_the_tracker_counts_a_consent_only_site_after_the_yes(visitor: Visitor) -> None:
    tracker = (
        f'<script defer src="{ZEEF}/tracker.js" data-domain="example.com" data-allow-local '
        "data-require-consent></script>"
    )
    tab = visitor.open("/", site_page(head=CONSENT + tracker))
    expect(dialog(tab)).to_be_visible()
    tab.wait_for_function("typeof window.zeef === 'function'")
    tab.wait_for_timeout(200)
    assert visitor.zeef.events == []  # nothing before the answer
    click(tab, "Accept all")
    wait_until(tab, lambda: len(visitor.zeef.events) == 1)
    [event] = visitor.zeef.events
    assert event["n"] == "pageview"
    assert event["c"] == visitor.cookies()["zeef_id"]["value"]


# -- the files ----------------------------------------------------------------------------------

REQUIRED_KEYS = {
    "title", "description", "policy_link", "accept_all", "reject_all", "preferences", "save",
    "close", "close_reject", "always_on", "reopen", "consent_id",
    "cookie_name", "cookie_purpose", "cookie_lifetime", "lifetime.months",
    "cookie.zeef_consent.purpose", "cookie.zeef_id.purpose",
    *(f"category.{c}.{k}" for c in ("necessary", "analytics", "marketing", "preferences")
      for k in ("name", "description")),
}  # fmt: skip


def test_translation_files() -> None:
    texts = {lang: json.loads((I18N / f"{lang}.json").read_text()) for lang in ("en", "nl", "es")}
    assert set(texts["en"]) >= REQUIRED_KEYS
    for lang, found in texts.items():
        assert set(found) == set(texts["en"]), lang  # every language says everything
        assert all(isinstance(value, str) and value.strip() for value in found.values())
        assert "{controller}" in found["description"]
    buttons = ("accept_all", "reject_all", "preferences")
    assert [texts["en"][k] for k in buttons] == ["Accept all", "Reject all", "Preferences"]
    assert [texts["nl"][k] for k in buttons] == ["Alles accepteren", "Alles weigeren", "Voorkeuren"]
    assert [texts["es"][k] for k in buttons] == ["Aceptar todo", "Rechazar todo", "Preferencias"]


def test_size_budget() -> None:
    """consent.js + consent.css as served, plus the English texts: 8 KiB after gzip -9."""
    files = [STATIC / "consent.js", STATIC / "consent.css", I18N / "en.json"]
    sizes = {path.name: len(gzip.compress(path.read_bytes(), 9, mtime=0)) for path in files}
    assert sum(sizes.values()) <= 8192, sizes


def test_served_files_are_built_from_the_sources() -> None:
    result = subprocess.run(
        ["node", "build-tracker.mjs", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# -- end to end -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("consent-e2e")
    with LiveServer(directory, sites=["example.com"]) as server:
        yield server


def test_a_decision_reaches_the_database(
    live: LiveServer, browser: Any, fixture_site: FixtureSite
) -> None:
    script = f'<script src="{live.url}/consent.js" data-site="example.com"></script>'
    url = fixture_site.add("/e2e/consent", site_page(head=script))
    context = browser.new_context()
    hosts: set[str] = set()
    context.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    try:
        tab = context.new_page()
        tab.goto(url + "?from=mail")
        click(tab, "Accept all")
        expect(tab.get_by_role("button", name="Cookie settings")).to_be_visible()
        consent_id = tab.evaluate("zeefConsent.consentId()")
        deadline = time.monotonic() + 10
        while True:
            conn = sqlite3.connect(live.database)
            try:
                rows = conn.execute(
                    "SELECT consent_id, action, choices, path, texts_hash FROM consent_records"
                ).fetchall()
            finally:
                conn.close()
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        with httpx.Client(base_url=live.url, trust_env=False) as http:
            config = http.get("/consent/config", params={"site": "example.com", "lang": "en"})
        [(stored_id, action, choices, path, texts_hash)] = rows
        assert (stored_id, action, path) == (consent_id, "accept_all", "/e2e/consent")
        assert json.loads(choices) == {"necessary": True, "analytics": True}
        assert texts_hash == config.json()["texts_hash"]  # proof of exactly what was shown
        assert hosts <= {live.url.split("/")[2], fixture_site.origin.split("/")[2]}, hosts
        assert {c["name"] for c in context.cookies()} == {"zeef_consent", "zeef_id"}
    finally:
        context.close()

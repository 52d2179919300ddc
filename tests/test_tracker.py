"""tracker.js in real Chromium: what it sends, when it sends nothing, what it never leaves behind.

The pages come from `localhost`, Zeef from `127.0.0.1`: every event is a cross-origin request.
Here the collector is intercepted in the browser, so each payload can be read as sent;
test_tracker_e2e.py runs the same tracker against a live server and reads the database.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .pages import FixtureSite, page, wait_until

STATIC = Path(__file__).resolve().parents[1] / "server" / "static"
ZEEF = "http://127.0.0.1:9"  # never reached: the browser's routes answer for it


class Recorder:
    """Answers for Zeef inside the browser and records what reaches it."""

    def __init__(self, context: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests: list[Any] = []
        context.on("request", lambda request: self.requests.append(request))
        context.route(f"{ZEEF}/**", self.handle)

    def handle(self, route: Any) -> None:
        request = route.request
        path = request.url[len(ZEEF) :]
        if path == "/api/event" and request.method == "POST":
            self.events.append(json.loads(request.post_data))
            route.fulfill(status=202, body="ok", headers={"access-control-allow-origin": "*"})
        elif path in ("/tracker.js", "/tracker-auto.js"):
            route.fulfill(
                status=200,
                body=(STATIC / path[1:]).read_bytes(),
                headers={"content-type": "text/javascript"},
            )
        else:
            route.fulfill(status=404, body="")

    def names(self) -> list[str]:
        return [event["n"] for event in self.events]


def tracker(attributes: str = "") -> str:
    return (
        f'<script defer src="{ZEEF}/tracker.js" data-domain="example.com" '
        f"data-allow-local {attributes}></script>"
    )


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    yield context
    context.close()


@pytest.fixture
def recorder(context: Any, fixture_site: FixtureSite) -> Iterator[Recorder]:
    """After every test: no cookie, no storage entry, no request to a third host."""
    recorder = Recorder(context)
    yield recorder
    assert context.cookies() == []
    for tab in context.pages:
        if tab.url.startswith(fixture_site.origin):
            # The visitor's own opt-out flag is the one entry allowed (the test sets it).
            keys = tab.evaluate("[...Object.keys(localStorage), ...Object.keys(sessionStorage)]")
            assert [key for key in keys if key != "zeef_ignore"] == []
    assert_only_zeef_and_the_page(recorder, fixture_site)


def assert_nothing_left_behind(context: Any, tab: Any, site: FixtureSite) -> None:
    assert context.cookies() == []
    assert tab.evaluate("localStorage.length + sessionStorage.length") == 0


def assert_only_zeef_and_the_page(recorder: Recorder, site: FixtureSite) -> None:
    hosts = {request.url.split("/")[2] for request in recorder.requests}
    assert hosts <= {ZEEF.split("/")[2], site.origin.split("/")[2]}, hosts


def test_pageview_on_load(context: Any, recorder: Recorder, fixture_site: FixtureSite) -> None:
    url = fixture_site.add("/load", page("<h1>Hello</h1>", tracker()))
    tab = context.new_page()
    tab.goto(url + "?utm_source=test", referer="https://news.example/item")
    wait_until(tab, lambda: len(recorder.events) == 1)
    [event] = recorder.events
    assert event == {
        "n": "pageview",
        "u": url + "?utm_source=test",
        "d": "example.com",
        "r": "https://news.example/item",
    }
    [sent] = [r for r in recorder.requests if r.url.endswith("/api/event")]
    assert sent.headers["content-type"].startswith("text/plain")  # a simple request...
    assert not [r for r in recorder.requests if r.method == "OPTIONS"]  # ...so no preflight
    tab.wait_for_timeout(200)
    assert len(recorder.events) == 1
    assert_nothing_left_behind(context, tab, fixture_site)
    assert_only_zeef_and_the_page(recorder, fixture_site)


def test_single_page_app_navigation(
    context: Any, recorder: Recorder, fixture_site: FixtureSite
) -> None:
    url = fixture_site.add("/spa", page("SPA", tracker()))
    tab = context.new_page()
    tab.goto(url)
    wait_until(tab, lambda: len(recorder.events) == 1)
    tab.evaluate("history.pushState({}, '', '/spa/settings')")
    tab.evaluate("history.replaceState({}, '', '/spa/settings?tab=2')")  # same path: no view
    tab.evaluate("history.replaceState({}, '', '/spa/profile')")
    wait_until(tab, lambda: len(recorder.events) == 3)
    tab.go_back()
    wait_until(tab, lambda: len(recorder.events) == 4)
    paths = [event["u"].split("localhost", 1)[1].split("/", 1)[1] for event in recorder.events]
    assert paths == ["spa", "spa/settings", "spa/profile", "spa"]
    assert recorder.names() == ["pageview"] * 4


def test_hash_routing(context: Any, recorder: Recorder, fixture_site: FixtureSite) -> None:
    url = fixture_site.add("/hash", page("hash", tracker("data-hash")))
    tab = context.new_page()
    tab.goto(url + "#/home")
    wait_until(tab, lambda: len(recorder.events) == 1)
    tab.evaluate("location.hash = '#/about'")
    wait_until(tab, lambda: len(recorder.events) == 2)
    assert [event["u"].split("#")[1] for event in recorder.events] == ["/home", "/about"]
    assert all(event["h"] == 1 for event in recorder.events)


def test_queued_and_direct_custom_events(
    context: Any, recorder: Recorder, fixture_site: FixtureSite
) -> None:
    snippet = (
        "<script>window.zeef = window.zeef || function () {"
        " (zeef.q = zeef.q || []).push(arguments) };"
        "zeef('Queued', {props: {step: 1}});"
        "zeef('Signup', {props: {plan: 'pro'}, revenue: {amount: 10, currency: 'EUR'}});</script>"
    )
    url = fixture_site.add("/events", page("events", snippet + tracker()))
    tab = context.new_page()
    tab.goto(url)
    wait_until(tab, lambda: len(recorder.events) == 3)
    tab.evaluate(
        "new Promise(done => zeef('Direct', {props: {a: 'b'}, interactive: false, callback: done}))"
    )
    assert recorder.names() == ["pageview", "Queued", "Signup", "Direct"]
    queued, signup, direct = recorder.events[1:]
    assert queued["p"] == {"step": 1}
    assert signup["p"] == {"plan": "pro"}
    assert signup["$"] == {"amount": 10, "currency": "EUR"}
    assert direct["i"] is False
    assert_nothing_left_behind(context, tab, fixture_site)


def test_outbound_and_download_clicks(
    context: Any, recorder: Recorder, fixture_site: FixtureSite
) -> None:
    links = (
        '<a id=out href="https://partner.example/offer?email=jan@example.nl">partner</a>'
        '<a id=pdf href="/files/price-list.pdf?v=2">prices</a>'
        '<a id=local href="/about">about</a>'
    )
    fixture_site.add("/about", page("about"))
    url = fixture_site.add("/links", page(links, tracker("data-outbound data-downloads")))
    tab = context.new_page()
    context.route("https://partner.example/**", lambda route: route.fulfill(body="partner"))
    tab.goto(url)
    wait_until(tab, lambda: len(recorder.events) == 1)
    tab.wait_for_function("window.zeef && window.zeef.script && document.querySelectorAll("
                          "'script[src$=\"tracker-auto.js\"]').length")  # fmt: skip
    tab.wait_for_timeout(100)
    tab.click("#pdf", modifiers=["Control"])  # opens in a new tab: this page stays
    tab.click("#out", modifiers=["Control"])
    tab.click("#local")
    wait_until(tab, lambda: len(recorder.events) >= 3)
    tab.wait_for_timeout(300)
    named = [(e["n"], e.get("p")) for e in recorder.events if e["n"] != "pageview"]
    assert named == [
        ("File Download", {"url": fixture_site.origin + "/files/price-list.pdf"}),
        ("Outbound Link: Click", {"url": "https://partner.example/offer"}),
    ]


@pytest.mark.parametrize(
    "init_script",
    [
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
        "localStorage.setItem('zeef_ignore', 'true')",
    ],
    ids=["do-not-track", "global-privacy-control", "opt-out-flag"],
)
def test_privacy_signals_send_nothing(
    context: Any, recorder: Recorder, fixture_site: FixtureSite, init_script: str
) -> None:
    url = fixture_site.add("/signals", page("signals", tracker()))
    context.add_init_script(init_script)
    tab = context.new_page()
    tab.goto(url)
    called = tab.evaluate("new Promise(done => zeef('Signup', {callback: () => done(true)}))")
    assert called  # the callback still runs, so a site waiting on it is not stuck
    tab.wait_for_timeout(300)
    assert recorder.events == []
    assert context.cookies() == []


def test_localhost_and_automation_are_ignored_by_default(
    context: Any, recorder: Recorder, fixture_site: FixtureSite
) -> None:
    script = f'<script defer src="{ZEEF}/tracker.js" data-domain="example.com"></script>'
    url = fixture_site.add("/default", page("default", script))
    tab = context.new_page()
    tab.goto(url)
    tab.wait_for_function("typeof window.zeef === 'function'")
    tab.wait_for_timeout(300)
    assert recorder.events == []


def test_strict_content_security_policy(
    context: Any, recorder: Recorder, fixture_site: FixtureSite
) -> None:
    policy = f"default-src 'none'; script-src {ZEEF}; connect-src {ZEEF}"
    url = fixture_site.add(
        "/csp",
        page("<a id=out href='https://partner.example/'>out</a>",
             tracker("data-outbound data-engagement")),
        {"content-security-policy": policy},
    )  # fmt: skip
    tab = context.new_page()
    violations: list[str] = []
    tab.on("console", lambda message: violations.append(message.text))
    tab.goto(url)
    wait_until(tab, lambda: len(recorder.events) == 1)
    tab.wait_for_function("document.querySelector('script[src$=\"tracker-auto.js\"]')")
    tab.wait_for_timeout(200)
    assert [v for v in violations if "Content Security Policy" in v] == []
    assert recorder.names() == ["pageview"]


def test_size_budget() -> None:
    """At most 1,024 bytes after gzip -9 for what a page with default attributes downloads."""
    size = len(gzip.compress((STATIC / "tracker.js").read_bytes(), 9, mtime=0))
    assert size <= 1024, f"tracker.js is {size} bytes gzipped, over the 1,024-byte budget"
    readme = (STATIC.parents[1] / "README.md").read_text()
    assert f"{size:,} bytes" in readme, "the README must state the current tracker size"


def test_served_files_are_built_from_the_sources() -> None:
    """server/static/ must be what `npm run build` makes of tracker.js and tracker-auto.js."""
    root = STATIC.parents[1]
    result = subprocess.run(
        ["node", "build-tracker.mjs", "--check"], cwd=root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


CONSENT_STUB = (
    "<script>window.zeefConsent = {accepted: c => c === 'analytics' && !!window.yes,"
    " visitorId: () => window.yes ? 'k3J9xQ2mZ7pL0aB4cD8eFg' : null};</script>"
)


def test_consented_visitors_carry_their_first_party_id(
    context: Any, recorder: Recorder, fixture_site: FixtureSite
) -> None:
    url = fixture_site.add("/consented", page("c", CONSENT_STUB + tracker()))
    tab = context.new_page()
    tab.goto(url)
    wait_until(tab, lambda: len(recorder.events) == 1)
    assert "c" not in recorder.events[0]  # no consent yet: counted without any identifier
    tab.evaluate("window.yes = true; zeef('Signup')")
    wait_until(tab, lambda: len(recorder.events) == 2)
    assert recorder.events[1]["c"] == "k3J9xQ2mZ7pL0aB4cD8eFg"


def test_require_consent_sends_nothing_until_analytics_is_accepted(
    context: Any, recorder: Recorder, fixture_site: FixtureSite
) -> None:
    url = fixture_site.add(
        "/consent-only", page("c", CONSENT_STUB + tracker("data-require-consent"))
    )
    tab = context.new_page()
    tab.goto(url)
    tab.wait_for_function("typeof window.zeef === 'function'")
    tab.evaluate("zeef('Signup')")
    tab.wait_for_timeout(300)
    assert recorder.events == []
    tab.evaluate("window.yes = true; zeef.consented()")  # what consent.js calls on "accept"
    wait_until(tab, lambda: len(recorder.events) == 1)
    assert recorder.events[0]["n"] == "pageview"
    assert recorder.events[0]["c"] == "k3J9xQ2mZ7pL0aB4cD8eFg"

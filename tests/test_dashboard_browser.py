"""The dashboard in real Chromium against the real app under uvicorn: log in, switch the period,
compare, filter by a source and remove the chip, in light, dark and at a phone's width, with
nothing loaded from elsewhere and screenshots for a person to judge."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn

from server.accounts import audit, customers, users
from server.app import create_app
from server.config import Settings
from server.sites import add_site
from server.storage import open_storage

from .conftest import CHROME, FIREFOX, IPHONE, _database_threads
from .live import _free_port

PASSWORD = "correct horse battery staple"
SITE = "acme.example"


async def seed(database: Path) -> None:
    storage = open_storage(database)
    await storage.migrate()
    try:
        acme = await customers.add_customer(storage, "Acme")
        for domain in (SITE, "shop.acme.example"):
            site = await add_site(storage, domain, "Europe/Amsterdam")
            await storage.set_site_customer(site.id, acme["id"])
        email = "ann@acme.example"
        await users.add_user(storage, email, "viewer", acme["id"], PASSWORD,
                             audit.Actor(email, "-", email))  # fmt: skip
    finally:
        await storage.close()


def traffic(url: str) -> None:
    """Visitors from several places, browsers and sources, in the last hour."""
    pages = ["/", "/pricing", "/blog/why-we-left-google-analytics", "/docs/install", "/about"]
    referrers = [
        None,
        "https://www.google.com/",
        "https://duckduckgo.com/",
        "https://news.ycombinator.com/item?id=1",
        "https://www.linkedin.com/feed/",
    ]
    agents = [CHROME, FIREFOX, IPHONE]
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
        for n in range(60):
            tagged = "?utm_source=newsletter&utm_medium=email&utm_campaign=spring" * (n % 4 == 0)
            event = {"n": "pageview", "u": f"https://{SITE}{pages[n % 5]}{tagged}", "d": SITE,
                     "r": referrers[(n * 3) % 5]}  # fmt: skip
            headers = {"content-type": "text/plain", "user-agent": agents[n % 3],
                       "x-forwarded-for": f"81.2.{n % 7}.{n}"}  # fmt: skip
            assert http.post("/api/event", content=json.dumps(event), headers=headers).is_success


@pytest.fixture(autouse=True)
def no_connection_left_open() -> Iterator[None]:
    """The module's live server keeps its readers across tests: `live` checks them at its end."""
    yield


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    before = _database_threads()
    database = tmp_path_factory.mktemp("dash") / "zeef.sqlite3"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed(database)).result()
    port = _free_port("127.0.0.1")
    settings = Settings(database=database, flush_interval=0.1)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    traffic(url)
    time.sleep(0.5)  # the buffer's flush
    yield url
    server.should_exit = True
    thread.join(timeout=15)
    assert not thread.is_alive(), "uvicorn did not stop"
    deadline = time.monotonic() + 2
    while (left := _database_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"{len(left)} database connection(s) left open by the live server"


def logged_in(browser: Any, url: str, **options: Any) -> tuple[Any, Any, list[str]]:
    options.setdefault("viewport", {"width": 1280, "height": 900})
    context = browser.new_context(locale="en-GB", **options)
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.on("console", lambda line: seen.append(f"console {line.type}: {line.text}"))
    page.goto(f"{url}/login")
    page.fill("#email", "ann@acme.example")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/sites")
    return context, page, seen


def only_ours(url: str, seen: list[str]) -> None:
    foreign = [s for s in seen if not s.startswith(url) and not s.startswith("console")]
    assert foreign == [], foreign
    errors = [s for s in seen if s.startswith("console error")]
    assert errors == [], errors


def wide(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"))


def test_the_dashboard_filters_compares_and_reads_well(
    browser: Any, live: str, screenshots: Path
) -> None:
    context, page, seen = logged_in(browser, live)
    page.click(f"main a[href='/sites/{SITE}']")
    page.wait_for_url(f"{live}/sites/{SITE}")
    assert int(page.inner_text(".metrics li:first-child .metric-value").replace(",", "")) > 0
    page.click("nav.dash-periods >> text=Today")
    page.wait_for_url("**period=day**")
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    page.click("text=Previous period")
    page.wait_for_url("**compare=previous_period**")
    page.click("a[title='Filter by Google']")
    page.wait_for_url("**filters=**")
    assert "Source is Google" in page.inner_text(".chips")
    page.screenshot(path=str(screenshots / "dashboard-filtered.png"), full_page=True)
    page.click(".chip a")
    page.wait_for_load_state()
    assert page.locator(".chips").count() == 0
    assert page.locator("svg.chart-svg").count() == 1
    # The UTM tabs, in the sources panel's drop-down.
    sources = page.locator("section.panel", has_text="Top sources")
    sources.locator(".tab-menu summary").click()
    sources.screenshot(path=str(screenshots / "dashboard-utm-menu.png"))
    sources.locator("text=UTM mediums").click()
    page.wait_for_url("**p1=4**")
    assert "email" in page.locator("section.panel", has_text="Top sources").inner_text()
    only_ours(live, seen)
    context.close()


def test_dark_and_phone(browser: Any, live: str, screenshots: Path) -> None:
    context, page, seen = logged_in(browser, live, color_scheme="dark")
    page.goto(f"{live}/sites/{SITE}?period=day")
    page.screenshot(path=str(screenshots / "dashboard-dark.png"), full_page=True)
    context.close()
    context, page, seen = logged_in(browser, live, viewport={"width": 360, "height": 780})
    page.goto(f"{live}/sites/{SITE}?period=7d")
    page.screenshot(path=str(screenshots / "dashboard-phone.png"), full_page=True)
    assert not wide(page), "the dashboard is wider than a phone"
    only_ours(live, seen)
    context.close()


def visitor(url: str, address: str) -> None:
    """One more pageview, from a visitor not seen before."""
    event = {"n": "pageview", "u": f"https://{SITE}/", "d": SITE, "r": None}
    headers = {"content-type": "text/plain", "user-agent": CHROME, "x-forwarded-for": address}
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
        assert http.post("/api/event", content=json.dumps(event), headers=headers).is_success


def live_count(page: Any) -> int:
    return int(page.inner_text(".live-count").replace(",", ""))


def wait_for_count(page: Any, wanted: int) -> None:
    # Polled from here: under page.clock the page's own timers (and rAF) are the fake ones.
    deadline = time.monotonic() + 5
    while live_count(page) != wanted:
        assert time.monotonic() < deadline, f"{live_count(page)} current visitors, not {wanted}"
        time.sleep(0.05)


def test_current_visitors_refresh_without_a_reload(
    browser: Any, live: str, screenshots: Path
) -> None:
    context, page, seen = logged_in(browser, live)
    page.clock.install()
    page.goto(f"{live}/sites/{SITE}?period=day")
    api = page.request.get(f"{live}/api/v1/stats/realtime/visitors?site_id={SITE}")
    shown = live_count(page)
    assert shown == api.json() > 0
    assert page.inner_text(".dash-live").strip() == f"{shown} current visitors"
    page.evaluate("window.sameDocument = true")

    visitor(live, "81.2.99.250")
    time.sleep(0.3)  # the buffer's flush
    page.clock.fast_forward(31_000)
    wait_for_count(page, shown + 1)
    page.screenshot(path=str(screenshots / "dashboard-realtime.png"))

    # A hidden tab asks nothing; shown again, it asks at once.
    asked = lambda: len([s for s in seen if "/stats/realtime/" in s])  # noqa: E731
    before = asked()
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    visitor(live, "81.2.99.251")
    time.sleep(0.3)
    page.clock.fast_forward(95_000)
    time.sleep(0.3)
    assert asked() == before and live_count(page) == shown + 1
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    wait_for_count(page, shown + 2)
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    only_ours(live, seen)
    context.close()


def test_keyboard_shortcuts(browser: Any, live: str, screenshots: Path) -> None:
    context, page, seen = logged_in(browser, live)
    page.goto(f"{live}/sites/{SITE}")
    assert page.is_visible("details.dash-keys")
    page.click("details.dash-keys summary")
    assert "Last 7 days" in page.inner_text("details.dash-keys")
    page.locator("details.dash-keys").screenshot(path=str(screenshots / "dashboard-keys.png"))

    page.keyboard.press("w")
    page.wait_for_url("**period=7d**")
    page.keyboard.press("d")
    page.wait_for_url("**period=day**")
    assert "date=" not in page.url
    today = datetime.now(ZoneInfo("Europe/Amsterdam")).date()
    yesterday = today - timedelta(days=1)
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(f"**date={yesterday.isoformat()}**")
    assert page.inner_text(".dash-range") == f"{yesterday.day} {yesterday:%B %Y}"
    page.keyboard.press("ArrowRight")
    page.wait_for_url(f"**date={today.isoformat()}**")
    page.keyboard.press("x")
    page.wait_for_url("**compare=previous_period**")
    assert "period=day" in page.url
    page.keyboard.press("r")
    page.wait_for_url("**period=realtime**")
    assert "compare=" not in page.url  # nothing to compare realtime with
    page.keyboard.press("7")
    page.wait_for_url("**period=7d**")

    # Not from a modifier, not past today, not while typing.
    here = page.url
    page.keyboard.press("Shift+W")
    page.keyboard.press("ArrowRight")
    page.evaluate("document.querySelector('main').append(document.createElement('input'))")
    page.focus("main > input")
    page.keyboard.type("w7m")
    page.wait_for_timeout(300)
    assert page.url == here
    assert page.input_value("main > input") == "w7m"
    only_ours(live, seen)
    context.close()


def test_without_javascript_the_count_is_there_and_no_shortcuts_are_offered(
    browser: Any, live: str
) -> None:
    context, page, _seen = logged_in(browser, live, java_script_enabled=False)
    page.goto(f"{live}/sites/{SITE}")
    assert live_count(page) > 0
    assert not page.is_visible("details.dash-keys")
    context.close()


EVIL = '<img src=x onerror=alert(1)>"onmouseover=alert(2) =HYPERLINK("http://x")'


def test_what_visitors_send_is_shown_as_text_and_never_runs(
    browser: Any, live: str, screenshots: Path
) -> None:
    from urllib.parse import quote

    with httpx.Client(base_url=live, trust_env=False, timeout=10) as http:
        query = "&".join(f"utm_{name}={quote(EVIL)}" for name in
                         ("source", "medium", "campaign", "content", "term"))  # fmt: skip
        for event in (
            {"n": "pageview", "u": f"https://{SITE}/{quote(EVIL)}?{query}", "d": SITE, "r": None},
            {"n": EVIL, "u": f"https://{SITE}/", "d": SITE, "p": {"plan": EVIL}},
        ):
            headers = {"content-type": "text/plain", "user-agent": CHROME,
                       "x-forwarded-for": "81.2.69.200"}  # fmt: skip
            assert http.post("/api/event", content=json.dumps(event), headers=headers).is_success
    time.sleep(0.5)
    context, page, seen = logged_in(browser, live)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in (f"/sites/{SITE}?period=day&p1=2", f"/sites/{SITE}/details/visit:utm_campaign",
                 f"/sites/{SITE}/details/event:page", f"/sites/{SITE}/details/event:name",
                 f"/sites/{SITE}/details/visit:source"):  # fmt: skip
        page.goto(live + path)
        page.wait_for_load_state("networkidle")
        text = page.inner_text("main")
        # Shown, as text (a path as the browser sent it: percent-encoded).
        assert "onerror=alert(1)" in text or "onerror%3Dalert%281%29" in text, path
        assert page.locator("main img[src=x]").count() == 0, path
    page.goto(f"{live}/sites/{SITE}?period=day&p1=2")
    # A filter by that value, through its link: still text, in the chip too.
    page.click("a[title^='Filter by <img']")
    page.wait_for_load_state("networkidle")
    assert "onerror=alert(1)" in page.inner_text(".chips")
    page.screenshot(path=str(screenshots / "dashboard-hostile-values.png"), full_page=True)
    assert dialogs == []
    only_ours(live, seen)
    context.close()

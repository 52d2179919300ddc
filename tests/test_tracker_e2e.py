"""tracker.js end to end: real Chromium, a live Zeef under uvicorn, then the database and CLI."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import CHROME, CHROMIUM, CHROMIUM_ARGS
from .live import LiveServer
from .pages import FixtureSite, page


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("tracker-e2e")
    with LiveServer(directory, env={"ZEEF_FLUSH_INTERVAL": "0.1"}, sites=["localhost"]) as server:
        yield server


@pytest.fixture(scope="module")
def visitor_browser() -> Iterator[Any]:
    """Chromium that presents itself as a visitor's Chrome, to every request it makes.

    Playwright's per-context user agent does not reach a beacon sent while a page unloads:
    that one would go out as HeadlessChrome and be dropped as a bot, as it should.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, f"--user-agent={CHROME}"]
        )
        yield chromium
        chromium.close()


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(database)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_for_rows(database: Path, sql: str, count: int, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = rows(database, sql)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_tracker_is_served_with_caching_and_an_etag(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as http:
        first = http.get("/tracker.js")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/javascript")
        assert "max-age=86400" in first.headers["cache-control"]
        assert first.headers["content-encoding"] == "gzip"
        again = http.get("/tracker.js", headers={"if-none-match": first.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""


def test_a_visit_arrives_in_the_database(
    live: LiveServer, visitor_browser: Any, fixture_site: FixtureSite
) -> None:
    script = (
        f'<script defer src="{live.url}/tracker.js" data-domain="localhost" '
        "data-allow-local data-engagement></script>"
    )
    tall = "<div style='height:3000px'>article</div>"
    url = fixture_site.add("/e2e/article", page(tall, script))
    fixture_site.add("/e2e/next", page("next"))
    context = visitor_browser.new_context(viewport={"width": 800, "height": 1000})
    hosts: set[str] = set()
    context.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    try:
        tab = context.new_page()
        tab.goto(url, referer="https://search.example/?q=zeef")
        tab.wait_for_function("typeof window.zeef === 'function' && !!window.zeef.script")
        tab.evaluate("new Promise(done => zeef('Signup', {props: {plan: 'pro'}, callback: done}))")
        tab.evaluate("history.pushState({}, '', '/e2e/pricing')")
        tab.wait_for_timeout(1100)
        tab.mouse.wheel(0, 1000)
        tab.wait_for_timeout(200)
        tab.goto(fixture_site.origin + "/e2e/next")  # leaving: engagement on page hide
        database = live.database
        stored = wait_for_rows(database, "SELECT name, path FROM events ORDER BY rowid", 5)
        assert [r[0] for r in stored].count("pageview") == 2
        assert ("Signup", "/e2e/article") in stored
        engagement = rows(
            database, "SELECT path, scroll_depth, engaged_ms FROM events WHERE name='engagement'"
        )
        # One for the article (left by pushState), one for /e2e/pricing (left by navigation).
        assert [e[0] for e in engagement] == ["/e2e/article", "/e2e/pricing"]
        assert engagement[1][1] >= 60 and engagement[1][2] >= 1000
        [referrer] = rows(database, "SELECT referrer_host FROM events WHERE name='pageview' "
                                    "ORDER BY rowid LIMIT 1")  # fmt: skip
        assert referrer == ("search.example",)
        assert context.cookies() == []
        assert hosts <= {live.url.split("/")[2], fixture_site.origin.split("/")[2]}, hosts
    finally:
        context.close()
    figures = live.stats("localhost")
    assert (figures["pageviews"], figures["events"], figures["visits"]) == (2, 1, 1)
    assert figures["visit_duration"] >= 1
    assert rows(live.database, "SELECT * FROM drops") == []


@pytest.mark.parametrize(
    ("viewport", "scheme"),
    [({"width": 1280, "height": 800}, "light"), ({"width": 360, "height": 740}, "dark")],
    ids=["light-desktop", "dark-phone"],
)
def test_the_banner_served_by_zeef_shows_and_records(
    live: LiveServer,
    visitor_browser: Any,
    fixture_site: FixtureSite,
    screenshots: Path,
    viewport: dict[str, int],
    scheme: str,
) -> None:
    """The real server's answers (nosniff, CSP, CORS) reach a site's page as they are: the
    banner loads, shows, and its decision is stored. The other banner tests answer for Zeef."""
    banner = f'<script src="{live.url}/consent.js" data-site="localhost"></script>'
    body = "<h1>Shop</h1><p>Boots, coats and hats, delivered in the Netherlands.</p>"
    url = fixture_site.add(f"/e2e/banner-{scheme}", page(body, banner))
    context = visitor_browser.new_context(viewport=viewport, color_scheme=scheme)
    hosts: set[str] = set()
    context.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    try:
        tab = context.new_page()
        tab.goto(url)
        accept = tab.get_by_role("button", name="Accept all", exact=True)
        accept.wait_for()
        tab.wait_for_timeout(400)  # past the entry animation
        tab.screenshot(path=str(screenshots / f"banner-live-{scheme}.png"))
        before = rows(live.database, "SELECT COUNT(*) FROM consent_records")[0][0]
        accept.click()
        stored = wait_for_rows(live.database, "SELECT consent_id FROM consent_records", before + 1)
        assert len(stored) == before + 1
        assert hosts <= {live.url.split("/")[2], fixture_site.origin.split("/")[2]}, hosts
    finally:
        context.close()

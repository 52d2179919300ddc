"""Data-subject rights end to end (issue 19): a consented visitor in real Chromium on a site with
consent.js and tracker.js, against a live Zeef; then zeefConsent.myDataUrl(), the download, the
erasure (checked in the SQLite file), the withdrawal and the banner's answer to it."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import CHROME, CHROMIUM, CHROMIUM_ARGS
from .live import LiveServer
from .pages import FixtureSite, page, wait_until


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("subjects-e2e")
    with LiveServer(directory, env={"ZEEF_FLUSH_INTERVAL": "0.1"}, sites=["localhost"]) as server:
        yield server


@pytest.fixture(scope="module")
def visitor_browser() -> Iterator[Any]:
    """Chromium as a visitor's Chrome (HeadlessChrome would be dropped as a bot)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, f"--user-agent={CHROME}"]
        )
        yield chromium
        chromium.close()


def count(database: Path, sql: str) -> int:
    conn = sqlite3.connect(database)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def wait_for(database: Path, sql: str, wanted: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (found := count(database, sql)) != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_a_consented_visitor_downloads_erases_and_withdraws(
    live: LiveServer, visitor_browser: Any, fixture_site: FixtureSite, screenshots: Path
) -> None:
    head = (
        f'<script src="{live.url}/consent.js" data-site="localhost"></script>'
        f'<script defer src="{live.url}/tracker.js" data-domain="localhost" data-allow-local '
        "data-require-consent></script>"
    )
    shop = fixture_site.add("/subjects/shop", page("<h1>Shop</h1><p>Boots and coats.</p>", head))
    boots = fixture_site.add("/subjects/boots", page("<h1>Boots</h1>", head))
    database = live.database
    consented = "SELECT COUNT(*) FROM events WHERE consented = 1"
    context = visitor_browser.new_context(viewport={"width": 1000, "height": 900})
    hosts: set[str] = set()
    context.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    try:
        tab = context.new_page()
        tab.goto(shop)
        tab.get_by_role("button", name="Accept all", exact=True).click()
        assert wait_for(database, consented, 1) == 1
        tab.goto(boots)
        assert wait_for(database, consented, 2) == 2
        visitor_id = next(c["value"] for c in context.cookies() if c["name"] == "zeef_id")
        consent_id = tab.evaluate("zeefConsent.consentId()")
        url = tab.evaluate("zeefConsent.myDataUrl()")
        assert url.startswith(f"{live.url}/privacy/localhost/my-data?lang=en#v={visitor_id}&c=")
        assert consent_id in url

        tab.goto(url)
        found = tab.locator("#found")
        found.wait_for()
        assert tab.locator("#count-events").text_content() == "2"
        assert tab.locator("#count-visits").text_content() == "1"
        assert tab.locator("#count-consent").text_content() == "1"
        tab.screenshot(path=str(screenshots / "my-data.png"), full_page=True)

        with tab.expect_download() as download:
            tab.get_by_role("button", name="Download my data (JSON)").click()
        document = json.loads(Path(download.value.path()).read_text())
        assert download.value.suggested_filename == "zeef-data-localhost.json"
        assert [e["path"] for e in document["tables"]["events"]] == [
            "/subjects/shop",
            "/subjects/boots",
        ]
        assert len(document["tables"]["visits"]) == 1
        assert document["tables"]["consent_records"][0]["action"] == "accept_all"

        tab.get_by_role("button", name="Erase my data").click()
        tab.screenshot(path=str(screenshots / "my-data-confirm.png"), full_page=True)
        tab.get_by_role("button", name="Yes, erase").click()
        status = tab.locator("#status")
        wait_until(tab, lambda: "erased" in (status.text_content() or ""))
        assert tab.locator("#count-events").text_content() == "0"
        for table in ("events", "visits"):
            assert count(database, f"SELECT COUNT(*) FROM {table} WHERE consented = 1") == 0
        assert count(database, "SELECT COUNT(*) FROM consented_visitors") == 0
        assert count(database, "SELECT COUNT(*) FROM consent_records") == 1  # the proof stays
        tab.screenshot(path=str(screenshots / "my-data-erased.png"), full_page=True)

        tab.get_by_role("button", name="Withdraw my consent").click()
        tab.get_by_role("button", name="Yes, withdraw").click()
        back = tab.locator("#return-link")
        back.wait_for()
        tab.screenshot(path=str(screenshots / "my-data-withdrawn.png"), full_page=True)
        assert back.get_attribute("href") == boots + "#zeef-withdrawn"  # where the link was made
        back.click()
        # The banner on the site follows: the visitor ID goes, the rejection is recorded.
        wait_until(tab, lambda: "zeef_id" not in {c["name"] for c in context.cookies()})
        assert tab.evaluate("zeefConsent.accepted('analytics')") is False
        assert tab.evaluate("location.hash") == ""
        actions = "SELECT COUNT(*) FROM consent_records WHERE action = 'withdraw'"
        assert wait_for(database, actions, 2) == 2

        tab.goto(f"{live.url}/privacy/localhost/my-data")
        tab.locator("#no-id").wait_for()
        tab.screenshot(path=str(screenshots / "my-data-cookieless.png"), full_page=True)
        assert hosts <= {live.url.split("/")[2], fixture_site.origin.split("/")[2]}, hosts
    finally:
        context.close()
    # The IDs travelled in fragments and JSON bodies: not in Zeef's log.
    log = live.run_log()
    assert "/privacy/localhost/my-data/erase" in log  # the access log has the requests
    assert visitor_id not in log and consent_id not in log


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_page_has_no_serious_accessibility_violation(
    live: LiveServer, visitor_browser: Any, screenshots: Path, scheme: str
) -> None:
    from .test_accessibility import AXE, violations

    assert AXE.is_file(), "run `npm ci`: axe-core comes from package.json"
    # The page's CSP admits no injected script: the context bypasses it for axe alone.
    context = visitor_browser.new_context(
        viewport={"width": 390, "height": 844}, color_scheme=scheme, bypass_csp=True
    )
    try:
        tab = context.new_page()
        fragment = "#v=NobodyNobodyNobody001&c=9b2f7c1e-8a4d-4c3b-9f1e-2d5a6b7c8d9e"
        tab.goto(f"{live.url}/privacy/localhost/my-data{fragment}")
        tab.locator("#found").wait_for()
        assert tab.locator("#count-events").text_content() == "0"
        assert tab.get_by_role("button", name="Erase my data").is_hidden()  # nothing to erase
        assert "Nothing is stored" in (tab.locator("#status").text_content() or "")
        assert violations(tab) == []
        tab.screenshot(path=str(screenshots / f"my-data-phone-{scheme}.png"), full_page=True)
        tab.goto(f"{live.url}/privacy/localhost/my-data?lang=nl")
        tab.locator("#no-id").wait_for()
        assert violations(tab) == []
    finally:
        context.close()

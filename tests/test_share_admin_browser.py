"""The share links' admin pages in real Chromium against the real app under uvicorn: an admin
makes a link through the form from the site's settings, finds it in the list, opens its page
and revokes it; light and at a phone's width, nothing from elsewhere, nothing wider than the
screen, and screenshots for a person to judge; no serious axe-core violation, light and dark."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.accounts import audit, customers, users
from server.app import create_app
from server.config import Settings
from server.sharing import shares
from server.sites import add_site
from server.storage import open_storage

from .conftest import served
from .test_accessibility import AXE, violations

PASSWORD = "correct horse battery staple"
SITE = "acme.example"
PHONE = {"width": 360, "height": 780}


async def seed(database: Path) -> None:
    """Acme owns SITE, with one link made at the terminal; Ann is Acme's admin."""
    storage = open_storage(database)
    await storage.migrate()
    try:
        acme = await customers.add_customer(storage, "Acme")
        site = await add_site(storage, SITE, "Europe/Amsterdam")
        await storage.set_site_customer(site.id, acme["id"])
        email = "ann@acme.example"
        await users.add_user(storage, email, "admin", acme["id"], PASSWORD,
                             audit.Actor(email, "-", email))  # fmt: skip
        await shares.create(storage, audit.CLI, SITE, label="Weekly figures for the board",
                            shown=("overview", "pages", "sources"), csv=False)  # fmt: skip
    finally:
        await storage.close()


@pytest.fixture(autouse=True)
def no_connection_left_open() -> Iterator[None]:
    """The module's live server keeps its readers across tests: `live` checks them at its end."""
    yield


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    database = tmp_path_factory.mktemp("shares") / "zeef.sqlite3"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed(database)).result()
    settings = Settings(database=database, public_url="https://stats.example.net")
    with served(create_app(settings)) as url:
        yield url, database


def logged_in(browser: Any, url: str, **options: Any) -> tuple[Any, Any, list[str]]:
    options.setdefault("viewport", {"width": 1280, "height": 900})
    options.setdefault("color_scheme", "light")
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
    # No CSP report, no error but the refused form's 400.
    refused = "console error: Failed to load resource: the server responded with a status of 400"
    assert [s for s in seen if s.startswith("console") and not s.startswith(refused)] == []


def fits(page: Any) -> bool:
    return not page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")


def rows(database: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(database)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM shares ORDER BY id")]


def test_an_admin_makes_a_link_in_the_page_and_revokes_it(
    browser: Any, live: tuple[str, Path], screenshots: Path
) -> None:
    url, database = live
    context, page, seen = logged_in(browser, url)
    page.goto(f"{url}/sites/{SITE}/settings")
    page.click("text=Share links")
    page.wait_for_url(f"{url}/sites/{SITE}/shares")
    page.screenshot(path=str(screenshots / "shares-before.png"), full_page=True)

    last = (datetime.now(UTC) + timedelta(days=30)).date()
    page.fill("#label", "Acme Corp: Q3 campaign")
    page.fill("#expires", last.isoformat())
    for name in ("goals", "consent", "devices"):
        page.uncheck(f"#section-{name}")
    page.fill("#filter", "visit:country==NL")
    page.fill("#origins", "https://client.example\nhttps://intranet.client.example:8443")
    page.uncheck("#csv")
    page.click("text=Make the link")
    page.wait_for_url(f"{url}/sites/{SITE}/shares?done=share-created")
    assert "The share link was made" in page.inner_text(".messages")

    made = rows(database)[-1]
    assert made["label"] == "Acme Corp: Q3 campaign" and made["filters"] == "visit:country==NL"
    assert made["sections"] == '["overview", "pages", "sources", "locations"]'
    assert made["csv"] == 0 and made["created_by"] == "ann@acme.example"
    link = page.input_value(f"#share-url-{made['id']}")
    assert link.startswith("https://stats.example.net/share/")
    # The newest first, then the one made at the terminal.
    titles = page.locator(".share-list h2").all_inner_texts()
    assert titles == ["Acme Corp: Q3 campaign", "Weekly figures for the board"]
    page.screenshot(path=str(screenshots / "shares-list.png"), full_page=True)
    assert fits(page)

    page.click(f"#share-{made['id']} >> text=Change or revoke")
    page.wait_for_url(f"{url}/sites/{SITE}/shares/{made['id']}")
    assert page.input_value("#expires") == last.isoformat()
    assert page.is_checked("#section-locations") and not page.is_checked("#section-goals")
    page.screenshot(path=str(screenshots / "share-edit.png"), full_page=True)
    # A password while it may be embedded: refused beside the field, nothing saved.
    page.check("#password-set")
    page.fill("#password", "tulips along the long canal")
    page.click("text=Save conditions")
    page.wait_for_load_state()
    assert "cannot be embedded" in page.inner_text("#origins-error")
    assert rows(database)[-1]["password_hash"] is None
    page.screenshot(path=str(screenshots / "share-edit-error.png"), full_page=True)

    # The browser will not send the revocation until its box is ticked.
    page.click("text=Revoke link")
    assert rows(database)[-1]["revoked_at"] is None
    page.check("#confirm")
    page.click("text=Revoke link")
    page.wait_for_url(f"{url}/sites/{SITE}/shares?done=share-revoked")
    assert rows(database)[-1]["revoked_at"] is not None
    assert page.locator(f"#share-url-{made['id']}").count() == 0
    only_ours(url, seen)
    context.close()


def test_the_pages_at_a_phones_width(
    browser: Any, live: tuple[str, Path], screenshots: Path
) -> None:
    url, _database = live
    context, page, seen = logged_in(browser, url, viewport=PHONE)
    page.goto(f"{url}/sites/{SITE}/shares")
    page.screenshot(path=str(screenshots / "shares-list-phone.png"), full_page=True)
    assert fits(page), "the list is wider than a phone"
    # Controls a thumb can hit.
    for selector in ("#label", "#expires", "#filter", "button[type=submit] >> nth=-1"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["height"] >= 44, selector
    page.goto(f"{url}/sites/{SITE}/shares/1")
    page.screenshot(path=str(screenshots / "share-edit-phone.png"), full_page=True)
    assert fits(page), "the link's page is wider than a phone"
    only_ours(url, seen)
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violation(
    browser: Any, live: tuple[str, Path], scheme: str
) -> None:
    assert AXE.is_file(), "run `npm ci`: axe-core comes from package.json"
    url, _database = live
    context, page, _seen = logged_in(browser, url, color_scheme=scheme, bypass_csp=True)
    found = {}
    for path in (f"/sites/{SITE}/shares", f"/sites/{SITE}/shares/1"):
        page.goto(url + path)
        found[path] = violations(page)
    # With the errors marked beside their fields.
    page.fill("#filter", "visit:planet==Mars")
    page.check("#password-set")
    page.click("text=Save conditions")
    page.wait_for_load_state()
    assert page.locator(".field-error").count() == 2
    found["errors"] = violations(page)
    context.close()
    assert {path: v for path, v in found.items() if v} == {}

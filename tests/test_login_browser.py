"""Logging in, as a person does it, in real Chromium against the real app under uvicorn: the
login form (and its error), the forced password change after an operator set the password, a
blocked user's open session ending at their next click, and a form whose CSRF token went stale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from server.accounts import audit, customers, users
from server.app import create_app
from server.config import Settings
from server.sites import add_site
from server.storage import open_storage

from .conftest import served

PASSWORD = "correct horse battery staple"


async def seed(database: Path) -> None:
    storage = open_storage(database)
    await storage.migrate()
    try:
        acme = await customers.add_customer(storage, "Acme")
        site = await add_site(storage, "acme.example", "Europe/Amsterdam")
        await storage.set_site_customer(site.id, acme["id"])
        for email, actor in (("ann@acme.example", audit.Actor("ann@acme.example", "-",
                                                               "ann@acme.example")),
                             ("vic@acme.example", audit.CLI),
                             ("bob@acme.example", audit.Actor("bob@acme.example", "-",
                                                              "bob@acme.example"))):  # fmt: skip
            await users.add_user(storage, email, "admin", acme["id"], PASSWORD, actor)
    finally:
        await storage.close()


async def block(database: Path, email: str) -> None:
    """As `zeef user block` does it, from outside the server."""
    storage = open_storage(database)
    await storage.migrate()
    try:
        await users.block(storage, await users.get_user(storage, email), audit.CLI)
    finally:
        await storage.close()


@pytest.fixture(autouse=True)
def no_connection_left_open() -> Iterator[None]:
    """The module's live server opens readers as requests come and keeps them across tests;
    `live` checks at its end that the server closed every one (conftest's check, per module)."""
    yield


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    database = tmp_path_factory.mktemp("login") / "zeef.sqlite3"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed(database)).result()
    with served(create_app(Settings(database=database))) as url:
        yield url, database


def open_tab(browser: Any, url: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.on("console", lambda line: seen.append(f"console {line.type}: {line.text}"))
    page.goto(f"{url}/login")
    return context, page, seen


def fill_login(page: Any, email: str, password: str = PASSWORD) -> None:
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")


def only_ours(url: str, seen: list[str]) -> None:
    foreign = [s for s in seen if not s.startswith(url) and not s.startswith("console")]
    assert foreign == [], foreign
    # A 4xx answer is logged by Chromium as a failed resource; nothing else may be.
    errors = [s for s in seen if s.startswith("console error") and "status of 4" not in s]
    assert errors == [], errors


def test_a_wrong_password_then_the_right_one(
    browser: Any, live: tuple[str, Path], screenshots: Path
) -> None:
    url, _ = live
    context, page, seen = open_tab(browser, url)
    page.screenshot(path=str(screenshots / "login.png"))
    fill_login(page, "ann@acme.example", "this is not the password")
    page.wait_for_selector("#login-error")
    assert "do not match an account" in page.inner_text("#login-error")
    # The email stays filled in; the password does not.
    assert page.input_value("#email") == "ann@acme.example"
    assert page.input_value("#password") == ""
    page.screenshot(path=str(screenshots / "login-error.png"))
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/sites")
    assert "acme.example" in page.inner_text("main")
    # One's own account, from the menu: the language setting.
    page.click("header >> text=ann@acme.example")
    page.wait_for_url(f"{url}/account")
    page.select_option("#language", "nl")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{url}/account?done=account")
    assert page.locator("html").get_attribute("lang") == "nl"
    page.screenshot(path=str(screenshots / "account-nl.png"))
    page.select_option("#language", "")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{url}/account?done=account")
    assert page.locator("html").get_attribute("lang") == "en"
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["zeef_session"]["httpOnly"] and cookies["zeef_session"]["expires"] == -1
    assert cookies["zeef_session"]["sameSite"] == "Lax"
    # Logging out from the menu ends the session.
    page.click("header >> text=Log out")
    page.wait_for_url(f"{url}/login")
    page.goto(f"{url}/users")
    assert page.url.startswith(f"{url}/login")
    only_ours(url, seen)
    context.close()


def test_a_password_set_by_the_operator_is_changed_first(
    browser: Any, live: tuple[str, Path], screenshots: Path
) -> None:
    url, _ = live
    context, page, seen = open_tab(browser, url)
    fill_login(page, "vic@acme.example")
    page.wait_for_url(f"{url}/account/password")
    assert "An administrator reset your password" in page.inner_text("main")
    page.screenshot(path=str(screenshots / "password-forced.png"))
    page.goto(f"{url}/users")
    assert page.url == f"{url}/account/password"  # nowhere else first
    page.fill("#current-password", PASSWORD)
    page.fill("#new-password", "short")
    page.fill("#repeat-password", "short")
    # The browser's own check (minlength) stops it before the server has to.
    page.click("main button[type=submit]")
    assert page.url == f"{url}/account/password"
    new = "seven green bicycles by the canal"
    page.fill("#new-password", new)
    page.fill("#repeat-password", new)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{url}/sites?changed=password")
    page.goto(f"{url}/users")
    assert page.url == f"{url}/users"
    only_ours(url, seen)
    context.close()


def test_a_blocked_users_open_session_ends_at_the_next_click(
    browser: Any, live: tuple[str, Path], screenshots: Path
) -> None:
    url, database = live
    context, page, seen = open_tab(browser, url)
    fill_login(page, "bob@acme.example")
    page.wait_for_url(f"{url}/sites")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, block(database, "bob@acme.example")).result()
    page.click("nav >> text=Users")
    page.wait_for_url(f"{url}/login*")
    fill_login(page, "bob@acme.example")
    page.wait_for_selector("#login-error")
    assert "blocked" in page.inner_text("#login-error")
    page.screenshot(path=str(screenshots / "login-blocked.png"))
    only_ours(url, seen)
    context.close()


def test_a_form_with_a_stale_token_is_refused(
    browser: Any, live: tuple[str, Path], screenshots: Path
) -> None:
    url, _ = live
    context, page, seen = open_tab(browser, url)
    fill_login(page, "ann@acme.example")
    page.wait_for_url(f"{url}/sites")
    page.goto(f"{url}/api-keys")
    # As if the page had been opened in another session: the token no longer matches.
    page.eval_on_selector("form[action='/api-keys'] input[name=csrf]", "e => e.value = 'stale'")
    page.fill("#label", "grafana")
    with page.expect_response(f"{url}/api-keys") as answer:
        page.click("form[action='/api-keys'] button[type=submit]")
    assert answer.value.status == 403
    assert "did not come from this site" in page.inner_text("main")
    page.screenshot(path=str(screenshots / "csrf-refused.png"))
    page.goto(f"{url}/api-keys")
    assert "grafana" not in page.inner_text("main")
    only_ours(url, seen)
    context.close()

"""Each account's theme over HTTP: System (the device's setting), Light or Dark, chosen on
/account, stored, and worn by every page that account sees as base.html's data-theme; a bad
value or a form without its CSRF token changes nothing. In Chromium: tests/test_theme_browser.py.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import aclosing

import httpx
import pytest
from starlette.requests import Request

from server.web.templates import Pages

from .conftest import Zeef
from .test_login import add_user, client_of, csrf_of, log_in

SITE = "acme.example"
# What an admin of Acme sees, one of each kind: the admin pages, the dashboard and its
# details view, the consent settings, the password form (server/web/login.py), an error page.
PAGES = {
    "/account": 200,
    "/sites": 200,
    f"/sites/{SITE}?period=7d": 200,
    f"/sites/{SITE}/details/event:page?period=7d": 200,
    f"/sites/{SITE}/settings": 200,
    f"/sites/{SITE}/consent": 200,
    "/users": 200,
    "/api-keys": 200,
    "/audit-log": 200,
    "/account/password": 200,
    "/sites/nowhere.example": 404,
}


async def acme_admin(zeef: Zeef, email: str = "ann@acme.example") -> httpx.AsyncClient:
    """A browser logged in as an admin of Acme, which owns SITE."""
    storage = zeef.app.state.storage
    user = await add_user(zeef, email)
    if not zeef.rows(f"SELECT id FROM sites WHERE domain = '{SITE}'"):
        site = await storage.add_site(SITE, "UTC", 0)
        await storage.set_site_customer(site.id, user.customer_id)
    browser = client_of(zeef)
    assert (await log_in(browser, email)).status_code == 303
    return browser


async def choose(browser: httpx.AsyncClient, **form: str) -> httpx.Response:
    page = await browser.get("/account")
    return await browser.post("/account", data={"csrf": csrf_of(page.text), **form})


def checked(html: str) -> list[str]:
    return re.findall(
        r'<input type="radio" id="theme-(\w+)" name="theme" value="\1" checked>', html
    )


def worn(html: str) -> str | None:
    """The theme a page names on <html>, after checking its color-scheme meta agrees."""
    found = re.search(r'<html lang="\w+"(?: data-theme="(\w+)")?>', html)
    assert found, html[:200]
    meta = re.search(r'<meta name="color-scheme" content="([\w ]+)">', html)
    assert meta and meta.group(1) == (found.group(1) or "light dark"), html[:400]
    return found.group(1)


def stored(zeef: Zeef, email: str = "ann@acme.example") -> dict[str, str]:
    [row] = zeef.rows(f"SELECT theme, language FROM users WHERE email = '{email}'")
    return row


async def test_the_choice_is_stored_checked_and_worn_by_every_page(zeef: Zeef) -> None:
    async with aclosing(await acme_admin(zeef)) as browser:
        page = await browser.get("/account")
        assert checked(page.text) == ["system"]
        assert 'name="theme" value="light"' in page.text and 'value="dark"' in page.text
        assert worn(page.text) is None
        # The language, saved first, is not touched by the theme's form, nor the other way.
        assert (await choose(browser, language="nl")).status_code == 303
        for theme in ("dark", "light", "system"):
            saved = await choose(browser, theme=theme)
            assert saved.status_code == 303
            assert saved.headers["location"] == "/account?done=account"
            assert stored(zeef) == {"theme": theme, "language": "nl"}
            account = await browser.get(saved.headers["location"])
            assert checked(account.text) == [theme]
            assert "Je instellingen zijn opgeslagen." in account.text  # done=account, in Dutch
            for path, status in PAGES.items():
                answer = await browser.get(path)
                assert answer.status_code == status, path
                assert worn(answer.text) == (None if theme == "system" else theme), path
        assert (await choose(browser, language="")).status_code == 303
        assert stored(zeef) == {"theme": "system", "language": None}


async def test_a_theme_is_one_accounts_own(zeef: Zeef) -> None:
    async with aclosing(await acme_admin(zeef)) as ann:
        assert (await choose(ann, theme="dark")).status_code == 303
        async with aclosing(await acme_admin(zeef, "bob@acme.example")) as bob:
            assert worn((await bob.get(f"/sites/{SITE}")).text) is None
        assert worn((await ann.get(f"/sites/{SITE}")).text) == "dark"
        # Logged out, the login page follows the device again.
        await ann.post("/logout", data={"csrf": csrf_of((await ann.get("/sites")).text)})
        login = await ann.get("/login")
        assert login.status_code == 200 and worn(login.text) is None


# Each is refused with a good language beside it: neither is saved.
BAD = ["", "Dark", "blue", "dark ", "system;", "<b>"]


async def test_a_bad_theme_is_a_400_and_changes_nothing(zeef: Zeef) -> None:
    async with aclosing(await acme_admin(zeef)) as browser:
        assert (await choose(browser, theme="dark")).status_code == 303
        for value in BAD:
            refused = await choose(browser, theme=value, language="es")
            assert refused.status_code == 400, value
            assert "<b>" not in refused.text
            assert stored(zeef) == {"theme": "dark", "language": None}, value
        assert worn((await browser.get("/sites")).text) == "dark"


async def test_a_form_without_its_csrf_token_changes_no_theme(zeef: Zeef) -> None:
    async with aclosing(await acme_admin(zeef)) as browser:
        for token in (None, "forged"):
            form = {"theme": "dark"} if token is None else {"theme": "dark", "csrf": token}
            answer = await browser.post("/account", data=form)
            assert answer.status_code == 403
        assert stored(zeef)["theme"] == "system"
        assert worn((await browser.get("/account")).text) is None


def test_the_database_holds_only_the_three_themes(zeef: Zeef) -> None:
    # The migration's CHECK: a value the pages never send cannot get in another way either.
    conn = sqlite3.connect(zeef.settings.database)
    try:
        conn.execute(
            "INSERT INTO users (email, role, created_at) VALUES ('op@zeef.example', 'superuser', 0)"
        )
        assert conn.execute("SELECT theme FROM users").fetchall() == [("system",)]
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE users SET theme = 'blue'")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pages() -> Pages:
    return Pages()


def request(theme: str | None = None) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "state": {}}
    bare = Request(scope)
    if theme is not None:
        bare.state.theme = theme  # as server/web/auth.py sets it from the session's user
    return bare


@pytest.mark.parametrize(
    ("explicit", "account", "wanted"),
    [
        ("dark", None, "dark"),  # an embedded page's own ?theme=
        ("light", "dark", "light"),  # beats the viewer's account
        (None, "dark", "dark"),
        (None, "system", None),
        ("blue", None, None),  # only the two that override the device's setting
        ("system", "dark", None),  # the device's, whatever the account says
    ],
)
def test_a_page_may_name_its_own_theme(
    pages: Pages, explicit: str | None, account: str | None, wanted: str | None
) -> None:
    context = {"title": "t", "message": "m"}
    html = pages.render(request(account), "error.html", context, theme=explicit).body.decode()
    assert worn(html) == wanted

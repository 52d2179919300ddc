"""Logging in over HTTP: the form, the session cookie's flags, CSRF, throttling, forced password
changes, set-password links, blocking and logout ending sessions, and the audit trail."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from server.accounts import audit, users
from server.accounts.customers import add_customer
from server.config import Settings
from server.sharing import shares

from .conftest import Clock, Zeef, start, stored_bytes

PASSWORD = "correct horse battery staple"
VISITOR = "81.2.69.142"  # the browser's address, as the trusted proxy (10.0.0.1) forwards it


def client_of(zeef: Zeef, scheme: str = "http", ip: str = VISITOR) -> httpx.AsyncClient:
    """A browser of its own: its own cookie jar, the same server."""
    headers = {"x-forwarded-for": ip}
    return httpx.AsyncClient(
        transport=zeef.client._transport, base_url=f"{scheme}://zeef.test", headers=headers
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def log_in(
    browser: httpx.AsyncClient, email: str, password: str = PASSWORD, next: str = ""
) -> httpx.Response:
    page = await browser.get("/login" + (f"?next={next}" if next else ""))
    assert page.status_code == 200
    form = {"email": email, "password": password, "csrf": csrf_of(page.text), "next": next}
    return await browser.post("/login", data=form)


async def add_user(zeef: Zeef, email: str, role: users.Role = "admin", by_self: bool = True,
                   customer: str | None = "Acme") -> users.User:  # fmt: skip
    storage = zeef.app.state.storage
    customer_id = None
    if role != "superuser":
        known = {c["name"]: c["id"] for c in await storage.customers()}
        customer_id = known.get(customer) or (await add_customer(storage, customer))["id"]
    actor = audit.Actor(email, "-", email) if by_self else audit.CLI
    return await users.add_user(storage, email, role, customer_id, PASSWORD, actor)


def session_cookie(response: httpx.Response) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("zeef_session=")]
    return header


async def test_the_login_page_is_a_form_password_managers_fill(zeef: Zeef) -> None:
    async with client_of(zeef) as browser:
        page = await browser.get("/login")
    assert page.status_code == 200
    assert re.search(r'<input type="email"[^>]+name="email"[^>]+autocomplete="username"', page.text)
    assert re.search(r'<input type="password"[^>]+name="password"', page.text)
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    # The pre-login CSRF cookie is as private as the session's.
    form_cookie = page.headers["set-cookie"]
    assert "httponly" in form_cookie.lower() and "samesite=lax" in form_cookie.lower()


async def test_a_login_starts_a_temporary_private_session_and_logout_ends_it(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    async with client_of(zeef) as browser:
        # A session ID planted before login (fixation) is never the one the login makes.
        browser.cookies.set("zeef_session", "planted", domain="zeef.test")
        done = await log_in(browser, "Ann@Acme.example", next="/users")
        assert (done.status_code, done.headers["location"]) == (303, "/users")
        cookie = session_cookie(done)
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
        assert not any(f.startswith(("expires", "max-age")) for f in flags), cookie
        assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
        assert "planted" not in cookie
        assert (await browser.get("/users")).status_code == 200

        page = await browser.get("/users")
        logout = await browser.post("/logout", data={"csrf": csrf_of(page.text)})
        assert logout.status_code == 303
        stolen = cookie.split(";")[0].split("=", 1)[1]
    # The cookie a thief copied before the logout opens nothing after it.
    async with client_of(zeef) as thief:
        thief.cookies.set("zeef_session", stolen, domain="zeef.test")
        assert (await thief.get("/users")).headers["location"].startswith("/login")


async def test_cookies_are_secure_over_https_and_through_a_trusted_proxy(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    async with client_of(zeef, "https") as browser:
        done = await log_in(browser, "ann@acme.example")
    assert "secure" in [part.strip().lower() for part in session_cookie(done).split(";")]
    assert done.headers["strict-transport-security"].startswith("max-age=")
    # Plain HTTP to the trusted proxy (10.0.0.1), HTTPS from the browser to it.
    async with client_of(zeef) as browser:
        page = await browser.get("/login", headers={"x-forwarded-proto": "https"})
    assert "secure" in [part.strip().lower() for part in page.headers["set-cookie"].split(";")]


async def test_every_form_without_its_csrf_token_is_refused(zeef: Zeef) -> None:
    """Every POST route of the pages, found in the app's routes (so a new form is covered),
    with no token and with a forged one, by the operator's superuser who may post them all."""
    from starlette.routing import Route

    from server.accounts import apikeys

    storage = zeef.app.state.storage
    await add_user(zeef, "op@zeef.example", "superuser")
    vic = await add_user(zeef, "vic@acme.example", "viewer")
    [acme] = await storage.customers()
    site = await storage.add_site("acme.example", "UTC", 0)
    await storage.set_site_customer(site.id, acme["id"])
    secret = apikeys.generate()
    key_id = await storage.create_api_key("vic@acme.example", None, apikeys.shown_prefix(secret),
                                          apikeys.digest(secret), 0)  # fmt: skip
    link = await users.password_link(storage, vic, "http://zeef.test")
    share = await shares.create(storage, audit.CLI, "acme.example")
    values = {"domain": "acme.example", "token": link.rsplit("/", 1)[1]}
    apis = {"/api/event", "/api/consent", "/api/v2/query"}  # APIs: no cookie, no form
    # RFC 8058's one-click unsubscribe: a mail provider POSTs it with no cookie and no form,
    # so no CSRF token is possible; the link's signature is the authority (its own tests are
    # in test_mail_reports.py).
    apis.add("/unsubscribe/{token}")
    # A visitor's own data (server/web/my_data.py): JSON only, no cookie; the IDs in the body
    # are the authority (its own tests, a form refused among them, are in test_subjects.py).
    apis.add("/privacy/{domain}/my-data/{action}")
    forms = []
    for route in zeef.app.router.routes:
        if isinstance(route, Route) and "POST" in (route.methods or ()) and route.path not in apis:
            for change in ("role", "block", "unblock", "reset", "remove"):
                owner = key_id if route.path.startswith("/api-keys") else vic.id
                ids = {"id": str(share.id if "/shares/" in route.path else owner)}
                path = route.path.replace("{id:int}", ids["id"]).replace("{change}", change)
                for name, value in values.items():
                    path = path.replace("{" + name + "}", value)
                forms.append(path)
                if "{change}" not in route.path:
                    break
    assert len(forms) >= 21, forms

    async with client_of(zeef) as browser:
        await browser.get("/login")
        no_token = await browser.post("/login", data={"email": "op@zeef.example",
                                                      "password": PASSWORD})  # fmt: skip
        assert no_token.status_code == 403
        assert (await log_in(browser, "op@zeef.example")).status_code == 303
        before = (zeef.rows("SELECT * FROM users"), zeef.rows("SELECT * FROM api_keys"),
                  zeef.rows("SELECT * FROM shares"))  # fmt: skip
        for path in forms:
            data = {
                "email": "new@acme.example",
                "password": PASSWORD,
                "role": "admin",
                "domain": "new.example",
                "timezone": "UTC",
                "name": "Gamma",
                "label": "x",
                "confirm": "acme.example",
                "current_password": PASSWORD,
                "new_password": "x" * 20,
                "repeat_password": "x" * 20,
                "language": "nl",
                "theme": "dark",
                "section": "pages",
                "csv": "on",
            }
            for token in (None, "forged"):
                sent = data if token is None else {**data, "csrf": token}
                answer = await browser.post(path, data=sent)
                assert answer.status_code == 403, (path, token, answer.status_code)
        # Still logged in, and nothing was changed.
        assert (await browser.get("/users")).status_code == 200
    assert (zeef.rows("SELECT * FROM users"), zeef.rows("SELECT * FROM api_keys"),
            zeef.rows("SELECT * FROM shares")) == before  # fmt: skip
    assert [r["domain"] for r in zeef.rows("SELECT domain FROM sites ORDER BY domain")] == [
        "acme.example", "example.com"]  # fmt: skip
    assert zeef.rows("SELECT name FROM customers") == [{"name": "Acme"}]
    assert zeef.rows("SELECT * FROM consent_configs") == []


async def test_five_failures_throttle_an_account_and_an_unknown_one_alike(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    answers = {}
    # From two networks, so only the account's own count throttles each.
    for email, ip in (("ann@acme.example", "81.2.69.142"), ("nobody@acme.example", "5.6.7.8")):
        async with client_of(zeef, ip=ip) as browser:
            for _ in range(5):
                wrong = await log_in(browser, email, "not the password at all, sorry")
                assert wrong.status_code == 400
                assert "do not match an account" in wrong.text
            refused = await log_in(browser, email)
            answers[email] = refused
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 15 * 60
    known, unknown = answers.values()
    assert known.text == unknown.text
    # Throttled even with the right password: the account waits out its window.
    assert "zeef_session=" not in " ".join(known.headers.get_list("set-cookie"))


async def test_five_failures_from_one_address_throttle_other_accounts(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    async with client_of(zeef) as browser:
        for n in range(5):
            await log_in(browser, f"guess{n}@acme.example", "not the password at all, sorry")
        assert (await log_in(browser, "ann@acme.example")).status_code == 429


async def test_an_operator_set_password_must_be_changed_first(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example", by_self=False)
    async with client_of(zeef) as browser:
        done = await log_in(browser, "ann@acme.example", next="/users")
        assert done.headers["location"] == "/account/password"
        # Every page sends them back until they choose their own.
        held = await browser.get("/users")
        assert (held.status_code, held.headers["location"]) == (303, "/account/password")
        page = await browser.get("/account/password")
        assert "An administrator reset your password" in page.text
        form = {"csrf": csrf_of(page.text), "current_password": PASSWORD}
        short = await browser.post("/account/password",
                                   data={**form, "new_password": "too short",
                                         "repeat_password": "too short"})  # fmt: skip
        assert short.status_code == 400 and "at least 15 characters" in short.text
        new = "a river of fifteen plus letters"
        changed = await browser.post("/account/password",
                                     data={**form, "new_password": new,
                                           "repeat_password": new})  # fmt: skip
        assert changed.status_code == 303
        assert (await browser.get("/users")).status_code == 200
    async with client_of(zeef) as browser:
        assert (await log_in(browser, "ann@acme.example")).status_code == 400
        assert (await log_in(browser, "ann@acme.example", new)).headers["location"] == "/sites"


async def test_blocking_ends_an_open_session_at_its_next_request(zeef: Zeef) -> None:
    ann = await add_user(zeef, "ann@acme.example")
    async with client_of(zeef) as browser:
        await log_in(browser, "ann@acme.example")
        assert (await browser.get("/users")).status_code == 200
        await users.block(zeef.app.state.storage, ann, audit.CLI)
        assert (await browser.get("/users")).headers["location"].startswith("/login")
        blocked = await log_in(browser, "ann@acme.example")
        assert blocked.status_code == 403 and "blocked" in blocked.text


async def test_a_set_password_link_works_once(zeef: Zeef) -> None:
    storage = zeef.app.state.storage
    customer = await add_customer(storage, "Acme")
    vic = await users.add_user(storage, "vic@acme.example", "viewer", customer["id"], None,
                               audit.CLI)  # fmt: skip
    link = await users.password_link(storage, vic, "http://zeef.test")
    path = link.removeprefix("http://zeef.test")
    async with client_of(zeef) as browser:
        # No password yet: no login, not even with an empty one.
        assert (await log_in(browser, "vic@acme.example", "")).status_code == 400
        page = await browser.get(path)
        assert page.status_code == 200
        new = "my own long enough phrase"
        form = {"csrf": csrf_of(page.text), "new_password": new, "repeat_password": new}
        assert (await browser.post(path, data=form)).headers["location"].startswith("/login")
        assert (await browser.get(path)).status_code == 404
        assert (await log_in(browser, "vic@acme.example", new)).status_code == 303
    assert (await zeef.client.get("/set-password/" + "x" * 43)).status_code == 404


async def test_an_idle_session_ends(settings: Settings, clock: Clock) -> None:
    async for zeef in start(replace(settings, session_idle=1), clock):
        await add_user(zeef, "ann@acme.example")
        async with client_of(zeef) as browser:
            await log_in(browser, "ann@acme.example")
            assert (await browser.get("/users")).status_code == 200
            await asyncio.sleep(2.1)
            assert (await browser.get("/users")).headers["location"].startswith("/login")


async def test_logins_and_failures_are_audited_with_truncated_addresses(
    zeef: Zeef, tmp_path: Path
) -> None:
    await add_user(zeef, "ann@acme.example")
    async with client_of(zeef) as browser:
        await log_in(browser, "ann@acme.example", "not the password at all, sorry")
        await log_in(browser, "ann@acme.example")
    rows = zeef.rows("SELECT actor, action, object, address FROM audit_log ORDER BY id")
    assert [(r["action"], r["object"], r["address"]) for r in rows] == [
        ("user added", "ann@acme.example (admin)", "-"),
        ("login failed", "ann@acme.example", "81.2.0.0"),
        ("login", "ann@acme.example", "81.2.0.0"),
    ]
    raw = stored_bytes(Path(zeef.settings.database))
    assert VISITOR.encode() not in raw and PASSWORD.encode() not in raw
    with sqlite3.connect(zeef.settings.database) as db:
        assert db.execute("SELECT COUNT(*) FROM login_failures").fetchone() == (0,)


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"]
)
async def test_after_login_only_local_paths(zeef: Zeef, target: str) -> None:
    await add_user(zeef, "ann@acme.example")
    async with client_of(zeef) as browser:
        done = await log_in(browser, "ann@acme.example", next=target)
    assert done.headers["location"] == "/sites"


async def test_a_users_language_setting_beats_the_browsers(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    async with client_of(zeef) as browser:
        await log_in(browser, "ann@acme.example")
        english = {"accept-language": "en-GB,en;q=0.9"}
        page = await browser.get("/account", headers=english)
        assert page.headers["content-language"] == "en"
        saved = await browser.post("/account", data={"csrf": csrf_of(page.text),
                                                     "language": "nl"})  # fmt: skip
        assert saved.status_code == 303
        assert (await browser.get("/sites", headers=english)).headers["content-language"] == "nl"
        refused = await browser.post("/account", data={"csrf": csrf_of(page.text),
                                                       "language": "fr"})  # fmt: skip
        assert refused.status_code == 403
        page = await browser.get("/account", headers=english)
        await browser.post("/account", data={"csrf": csrf_of(page.text), "language": ""})
        assert (await browser.get("/sites", headers=english)).headers["content-language"] == "en"

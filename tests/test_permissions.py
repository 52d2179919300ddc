"""The role matrix over HTTP: each principal x each resource x its own and another customer's
object. Every cell is asserted; another customer's object is answered as one that does not
exist."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from server.accounts import apikeys, audit, users
from server.accounts.customers import add_customer
from server.events import ConsentRecord
from server.sites import add_site

from .conftest import Zeef
from .test_login import PASSWORD, client_of, log_in

RESOURCES = ("stats", "dashboard", "settings", "user", "consent log", "api key")
# (principal, resource) -> (answer for Acme's object, answer for Beta's). "login": a redirect to
# the login page; 401: the Stats API's refusal without a valid key or session.
MATRIX = {
    "anonymous": {r: ("login", "login") for r in RESOURCES} | {"stats": (401, 401)},
    "viewer": {"stats": (200, 404), "dashboard": (200, 404), "settings": (403, 404),
               "user": (403, 404),
               "consent log": (403, 404), "api key": (403, 404)},
    "admin": {r: (200, 404) for r in RESOURCES},
    "superuser": {r: (200, 200) for r in RESOURCES},
    # A key reads statistics for its owner (Acme's admin); pages take no keys.
    "api key": {r: ("login", "login") for r in RESOURCES} | {"stats": (200, 404)},
    "blocked": {r: ("login", "login") for r in RESOURCES} | {"stats": (401, 401)},
    "blocked user's key": {r: ("login", "login") for r in RESOURCES} | {"stats": (401, 401)},
}  # fmt: skip


@dataclass
class World:
    zeef: Zeef
    paths: dict[str, tuple[str, str]]  # resource -> (Acme's URL, Beta's URL)
    browsers: dict[str, httpx.AsyncClient]


@pytest.fixture
async def world(zeef: Zeef) -> AsyncIterator[World]:
    storage = zeef.app.state.storage
    ids = {}
    for name, domain in (("Acme", "acme.example"), ("Beta", "beta.example")):
        customer = await add_customer(storage, name)
        site = await add_site(storage, domain)
        await storage.set_site_customer(site.id, customer["id"])
        ids[name] = customer["id"]
        await storage.insert_consent_record(ConsentRecord(
            f"consent-{name}", site.id, int(time.time()), "accept_all", {"analytics": True},
            1, "en", "hash", "/", False))  # fmt: skip

    async def user(email: str, role: users.Role, customer: str | None) -> users.User:
        actor = audit.Actor(email, "-", email)
        cid = ids[customer] if customer else None
        return await users.add_user(storage, email, role, cid, PASSWORD, actor)

    await user("vic@acme.example", "viewer", "Acme")
    await user("ann@acme.example", "admin", "Acme")
    await user("op@zeef.example", "superuser", None)
    bob = await user("bob@acme.example", "admin", "Acme")
    ben = await user("ben@beta.example", "viewer", "Beta")
    await user("bea@beta.example", "admin", "Beta")

    async def key(owner: str) -> tuple[int, str]:
        secret = apikeys.generate()
        key_id = await storage.create_api_key(
            owner, None, apikeys.shown_prefix(secret), apikeys.digest(secret), int(time.time())
        )
        return key_id, secret

    ann_key, ann_secret = await key("ann@acme.example")
    _, bob_secret = await key("bob@acme.example")
    bea_key, _ = await key("bea@beta.example")

    browsers = {name: client_of(zeef) for name in MATRIX}
    for name, email in (
        ("viewer", "vic@acme.example"),
        ("admin", "ann@acme.example"),
        ("superuser", "op@zeef.example"),
        ("blocked", "bob@acme.example"),
    ):
        assert (await log_in(browsers[name], email)).status_code == 303  # fmt: skip
    browsers["api key"].headers["authorization"] = f"Bearer {ann_secret}"
    browsers["blocked user's key"].headers["authorization"] = f"Bearer {bob_secret}"
    # Blocked while logged in: the open session ends at its next request.
    await users.block(storage, bob, audit.CLI)

    vic = await storage.user_by_email("vic@acme.example")
    paths = {
        "stats": tuple(f"/api/v1/stats/aggregate?site_id={d}"
                       for d in ("acme.example", "beta.example")),
        "dashboard": ("/sites/acme.example", "/sites/beta.example"),
        "settings": ("/sites/acme.example/settings", "/sites/beta.example/settings"),
        "user": (f"/users/{vic['id']}", f"/users/{ben.id}"),
        "consent log": ("/sites/acme.example/consent-log", "/sites/beta.example/consent-log"),
        "api key": (f"/api-keys/{ann_key}", f"/api-keys/{bea_key}"),
    }  # fmt: skip
    try:
        yield World(zeef, paths, browsers)  # type: ignore[arg-type]
    finally:
        for browser in browsers.values():
            await browser.aclose()


def outcome(response: httpx.Response) -> int | str:
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        return "login"
    return response.status_code


async def test_every_cell_of_the_role_matrix(world: World) -> None:
    seen = {}
    for principal, row in MATRIX.items():
        browser = world.browsers[principal]
        for resource, expected in row.items():
            own, other = world.paths[resource]
            got = (outcome(await browser.get(own)), outcome(await browser.get(other)))
            seen[principal, resource] = got
            assert got == expected, (principal, resource, got)
    assert len(seen) == len(MATRIX) * len(RESOURCES)


async def test_another_customers_object_looks_like_none_at_all(world: World) -> None:
    admin = world.browsers["admin"]
    missing_paths = {"settings": "/sites/nothing.example/settings", "user": "/users/999999",
                     "consent log": "/sites/nothing.example/consent-log",
                     "api key": "/api-keys/999999"}  # fmt: skip
    for resource, missing_path in missing_paths.items():
        hidden = await admin.get(world.paths[resource][1])
        missing = await admin.get(missing_path)
        assert (hidden.status_code, hidden.text) == (missing.status_code, missing.text)
        assert "Beta" not in hidden.text and "beta.example" not in hidden.text
    for path in ("/sites/beta.example/settings", "/users", "/api-keys", "/audit-log", "/sites"):
        page = await admin.get(path)
        assert "beta" not in page.text.lower() and "Beta" not in page.text, path
    stats = await world.browsers["api key"].get(world.paths["stats"][1])
    nothing = await world.browsers["api key"].get("/api/v1/stats/aggregate?site_id=none.example")
    assert (stats.status_code, stats.json()) == (nothing.status_code, nothing.json())


async def test_changes_follow_the_same_check(world: World) -> None:
    """Forms act as their pages read: a viewer changes nothing, an admin only their own."""
    import re

    def token(html: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert found
        return found.group(1)

    viewer, admin = world.browsers["viewer"], world.browsers["admin"]
    viewer_token = token((await viewer.get("/sites")).text)
    admin_token = token((await admin.get("/sites")).text)
    ben = world.paths["user"][1]
    assert (await viewer.post("/sites/acme.example/settings",
                              data={"csrf": viewer_token, "timezone": "UTC",
                                    "dnt": "ignore"})).status_code == 403  # fmt: skip
    assert (await admin.post(ben + "/block", data={"csrf": admin_token})).status_code == 404
    assert (await admin.post("/customers", data={"csrf": admin_token, "name": "Gamma"})
            ).status_code == 404  # fmt: skip
    added = await admin.post("/users", data={"csrf": admin_token, "email": "new@beta.example",
                                             "role": "superuser"})  # fmt: skip
    assert added.status_code == 400
    rows = world.zeef.rows("SELECT email, blocked_at FROM users")
    assert {r["email"] for r in rows} == {"vic@acme.example", "ann@acme.example",
        "op@zeef.example", "bob@acme.example", "ben@beta.example", "bea@beta.example"}  # fmt: skip
    assert [r["email"] for r in rows if r["blocked_at"]] == ["bob@acme.example"]
    changed = await admin.post("/sites/acme.example/settings",
                               data={"csrf": admin_token, "timezone": "Europe/Amsterdam",
                                     "dnt": "ignore"})  # fmt: skip
    assert changed.status_code == 303
    assert world.zeef.rows("SELECT timezone FROM sites WHERE domain = 'acme.example'") == [
        {"timezone": "Europe/Amsterdam"}
    ]

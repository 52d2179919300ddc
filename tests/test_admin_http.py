"""What the admin pages do, over HTTP with rows checked: adding and deleting sites, the
installation check, inviting and resetting users through one-time links, API keys shown once,
customers, and the audit log each action leaves."""

from __future__ import annotations

import re
from contextlib import aclosing

import httpx

from .conftest import Zeef, pageview
from .test_login import PASSWORD, add_user, client_of, csrf_of, log_in


async def logged_in(zeef: Zeef, email: str) -> tuple[httpx.AsyncClient, str]:
    browser = client_of(zeef)
    assert (await log_in(browser, email)).status_code == 303
    return browser, csrf_of((await browser.get("/sites")).text)


async def test_an_admin_adds_a_site_sees_it_counted_and_deletes_another(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    browser, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(browser):
        bad = await browser.post("/sites", data={"csrf": token, "domain": "not a domain",
                                                 "timezone": "UTC"})  # fmt: skip
        assert bad.status_code == 400 and "not a domain name" in bad.text
        taken = await browser.post("/sites", data={"csrf": token, "domain": "example.com",
                                                   "timezone": "UTC"})  # fmt: skip
        # Another's (here: the operator's, of no customer): "registered already", no owner named.
        assert taken.status_code == 400 and "registered already" in taken.text
        added = await browser.post("/sites", data={"csrf": token, "domain": "www.Acme.example",
                                                   "timezone": "Europe/Amsterdam"})  # fmt: skip
        assert added.headers["location"] == "/sites/acme.example/settings?done=site-added"
        page = await browser.get(added.headers["location"])
        assert "Waiting for the first pageview" in page.text
        assert 'data-domain="acme.example"' in page.text.replace("&#34;", '"')

        await zeef.send(pageview("https://acme.example/pricing", d="acme.example"))
        # Sent for acme.example from a page elsewhere: dropped, and the host named.
        await zeef.send(pageview("https://copycat.example/", d="acme.example"))
        await zeef.flush()
        page = await browser.get("/sites/acme.example/settings")
        assert "Waiting for the first pageview" not in page.text
        assert "/pricing" in page.text
        assert "copycat.example, does not belong to this site" in page.text

        await browser.post("/sites", data={"csrf": token, "domain": "empty.example",
                                           "timezone": "UTC"})  # fmt: skip
        unconfirmed = await browser.post("/sites/empty.example/delete",
                                         data={"csrf": token, "confirm": "nope"})  # fmt: skip
        assert unconfirmed.status_code == 400
        deleted = await browser.post("/sites/empty.example/delete",
                                     data={"csrf": token, "confirm": "empty.example"})  # fmt: skip
        assert deleted.headers["location"] == "/sites?done=site-deleted"
        assert not zeef.rows("SELECT domain FROM sites WHERE domain = 'empty.example'")
    actions = [r["action"] for r in zeef.rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("site added") == 2 and actions[-1] == "site.delete"
    owned = zeef.rows("SELECT s.domain, c.name FROM sites s JOIN customers c "
                      "ON c.id = s.customer_id")  # fmt: skip
    assert owned == [{"domain": "acme.example", "name": "Acme"}]


async def test_an_invited_user_sets_a_password_and_a_reset_ends_their_sessions(
    zeef: Zeef,
) -> None:
    await add_user(zeef, "ann@acme.example")
    admin, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(admin):
        invited = await admin.post("/users", data={"csrf": token, "email": "Vic@Acme.example",
                                                   "role": "viewer"})  # fmt: skip
        assert invited.status_code == 200
        link = re.search(r"https?://[^\"<\s]+/set-password/[A-Za-z0-9_-]+", invited.text)
        assert link, invited.text
        path = "/set-password/" + link.group(0).rsplit("/", 1)[1]
        again = await admin.post("/users", data={"csrf": token, "email": "vic@acme.example",
                                                 "role": "viewer"})  # fmt: skip
        assert again.status_code == 400

        async with client_of(zeef) as vic:
            page = await vic.get(path)
            new = "tulips along the long canal"
            form = {"csrf": csrf_of(page.text), "new_password": new, "repeat_password": new}
            assert (await vic.post(path, data=form)).status_code == 303
            assert (await log_in(vic, "vic@acme.example", new)).status_code == 303
            assert (await vic.get("/sites")).status_code == 200

            [row] = zeef.rows("SELECT id FROM users WHERE email = 'vic@acme.example'")
            changed = await admin.post(f"/users/{row['id']}/role",
                                       data={"csrf": token, "role": "admin"})  # fmt: skip
            assert changed.headers["location"] == f"/users/{row['id']}?done=role"
            # A role change ends their sessions: they log in again with the new role.
            assert (await vic.get("/sites")).headers["location"].startswith("/login")
            assert (await log_in(vic, "vic@acme.example", new)).status_code == 303

            reset = await admin.post(f"/users/{row['id']}/reset", data={"csrf": token})
            assert reset.status_code == 200 and "/set-password/" in reset.text
            assert (await vic.get("/sites")).headers["location"].startswith("/login")
            assert (await log_in(vic, "vic@acme.example", new)).status_code == 400

        [ann] = zeef.rows("SELECT id FROM users WHERE email = 'ann@acme.example'")
        self_block = await admin.post(f"/users/{ann['id']}/block", data={"csrf": token})
        assert self_block.status_code == 403
    actions = [r["action"] for r in zeef.rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["user added", "login", "user added", "password set from link", "login",
                       "role changed", "login", "password reset", "login failed"]  # fmt: skip


async def test_an_api_key_is_shown_once_works_and_is_revoked(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    storage = zeef.app.state.storage
    [acme] = await storage.customers()
    site = await storage.add_site("acme.example", "UTC", 0)
    await storage.set_site_customer(site.id, acme["id"])
    admin, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(admin):
        made = await admin.post("/api-keys", data={"csrf": token, "label": "grafana"})
        key = re.search(r"zeef_[A-Za-z0-9_-]{40,}", made.text)
        assert key, made.text
        listing = await admin.get("/api-keys")
        assert key.group(0) not in listing.text and "grafana" in listing.text
    async with httpx.AsyncClient(
        transport=zeef.client._transport,
        base_url="http://zeef.test",
        headers={"authorization": f"Bearer {key.group(0)}"},
    ) as api:
        assert (await api.get("/api/v1/stats/aggregate?site_id=acme.example")).status_code == 200
        assert (await api.get("/api/v1/stats/aggregate?site_id=example.com")).status_code == 404
        [row] = zeef.rows("SELECT id FROM api_keys")
        admin, token = await logged_in(zeef, "ann@acme.example")
        async with aclosing(admin):
            revoked = await admin.post(f"/api-keys/{row['id']}/revoke", data={"csrf": token})
            assert revoked.headers["location"] == "/api-keys?done=revoked"
        assert (await api.get("/api/v1/stats/aggregate?site_id=acme.example")).status_code == 401


async def test_the_operator_adds_customers_and_reads_the_whole_audit_log(zeef: Zeef) -> None:
    await add_user(zeef, "op@zeef.example", "superuser")
    await add_user(zeef, "ann@acme.example")
    op, token = await logged_in(zeef, "op@zeef.example")
    async with aclosing(op):
        added = await op.post("/customers", data={"csrf": token, "name": "Beta <b>SaaS</b>"})
        assert added.headers["location"] == "/customers?done=customer-added"
        page = await op.get("/customers")
        assert "Beta &lt;b&gt;SaaS&lt;/b&gt;" in page.text and "<b>SaaS" not in page.text
        twice = await op.post("/customers", data={"csrf": token, "name": "beta <B>saas</B>"})
        assert twice.status_code == 400
        log = await op.get("/audit-log")
        assert "ann@acme.example" in log.text and "customer added" in log.text
    ann, _ = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        own = await ann.get("/audit-log")
        # Acme's part only: not the operator's customer, not its logins.
        assert own.status_code == 200 and "Beta" not in own.text
        assert "op@zeef.example" not in own.text
    assert PASSWORD not in str(zeef.rows("SELECT * FROM audit_log"))


async def test_an_admin_blocks_and_unblocks_a_user_of_their_customer(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    vic = await add_user(zeef, "vic@acme.example", "viewer")
    admin, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(admin), client_of(zeef) as viewer:
        assert (await log_in(viewer, "vic@acme.example")).status_code == 303
        blocked = await admin.post(f"/users/{vic.id}/block", data={"csrf": token})
        assert blocked.headers["location"] == f"/users/{vic.id}?done=blocked"
        assert "Blocked" in (await admin.get(f"/users/{vic.id}")).text
        assert (await viewer.get("/sites")).headers["location"].startswith("/login")
        assert (await log_in(viewer, "vic@acme.example")).status_code == 403
        await admin.post(f"/users/{vic.id}/unblock", data={"csrf": token})
        assert (await log_in(viewer, "vic@acme.example")).status_code == 303
        removed = await admin.post(f"/users/{vic.id}/remove", data={"csrf": token})
        assert removed.headers["location"] == "/users?done=removed"
        assert (await viewer.get("/sites")).headers["location"].startswith("/login")
    assert zeef.rows("SELECT email FROM users") == [{"email": "ann@acme.example"}]


async def test_the_sites_overview_shows_today_and_a_week_line(zeef: Zeef) -> None:
    await add_user(zeef, "op@zeef.example", "superuser")
    await zeef.send(pageview())
    await zeef.flush()
    op, _ = await logged_in(zeef, "op@zeef.example")
    async with aclosing(op):
        page = await op.get("/sites")
    row = page.text.split('<a href="/sites/example.com">example.com</a>', 1)[1].split("</tr>")[0]
    assert re.search(r'<td class="number">1</td>', row)
    points = re.search(r'<polyline points="([^"]+)"', row)
    assert points and len(points.group(1).split()) == 7
    # The last day (today) is the top of the line: y = 2 in a 32-high box.
    assert points.group(1).split()[-1] == "100.0,2.0"
    assert re.search(r'<span class="visually-hidden">0, 0, 0, 0, 0, 0, 1</span>', row)

"""Retention and deletion in the admin pages, over HTTP with rows checked: a site's own period
(a customer's admin may keep less than the agreement, never more), the operator's agreement per
customer, and deleting a site or a customer with everything of it after a typed confirmation.
Each leaves its audit row, as the CLI's commands do."""

from __future__ import annotations

from contextlib import aclosing

from .conftest import Zeef, pageview
from .test_admin_http import logged_in
from .test_login import add_user


def audit_actions(zeef: Zeef) -> list[str]:
    return [r["action"] for r in zeef.rows("SELECT action FROM audit_log ORDER BY id")]


async def test_an_admin_keeps_a_site_for_less_than_agreed_never_more(zeef: Zeef) -> None:
    await add_user(zeef, "op@zeef.example", "superuser")
    await add_user(zeef, "ann@acme.example")
    op, op_token = await logged_in(zeef, "op@zeef.example")
    async with aclosing(op):
        await op.post(
            "/sites",
            data={
                "csrf": op_token,
                "domain": "acme.example",
                "timezone": "Europe/Amsterdam",
                "customer": "Acme",
            },
        )
        acme = zeef.rows("SELECT id FROM customers WHERE name = 'Acme'")[0]["id"]
        saved = await op.post(
            f"/customers/{acme}",
            data={
                "csrf": op_token,
                "retention": "13m",
                "consent_proof": "5y",
                "keep_aggregates": "on",
            },
        )
        assert saved.headers["location"] == f"/customers/{acme}?done=customer-saved"
        bad = await op.post(f"/customers/{acme}", data={"csrf": op_token, "retention": "soon"})
        assert bad.status_code == 400 and "13m for months" in bad.text
    assert zeef.rows(
        "SELECT retention, consent_proof, keep_aggregates FROM customers WHERE name = 'Acme'"
    ) == [{"retention": "13m", "consent_proof": "5y", "keep_aggregates": 1}]

    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        page = await ann.get("/sites/acme.example/settings")
        assert "kept for 13 months (agreed with the customer)" in page.text
        assert "Daily totals outlive them" in page.text
        longer = await ann.post(
            "/sites/acme.example/retention", data={"csrf": token, "retention": "2y"}
        )
        assert longer.status_code == 400 and "At most 13m" in longer.text
        garbled = await ann.post(
            "/sites/acme.example/retention", data={"csrf": token, "retention": "90 dagen"}
        )
        assert garbled.status_code == 400 and "90d for days" in garbled.text
        shorter = await ann.post(
            "/sites/acme.example/retention", data={"csrf": token, "retention": "90D"}
        )
        assert shorter.headers["location"].endswith("?done=retention-saved#retention")
        page = await ann.get("/sites/acme.example/settings")
        assert "kept for 90 days (set for this site)" in page.text
        assert zeef.rows("SELECT retention FROM sites WHERE domain = 'acme.example'") == [
            {"retention": "90d"}
        ]
        back = await ann.post(
            "/sites/acme.example/retention", data={"csrf": token, "retention": ""}
        )
        assert back.status_code == 303
        # The operator's pages are not theirs, and another customer's page is not found.
        assert (await ann.get(f"/customers/{acme}")).status_code == 404
    assert zeef.rows("SELECT retention FROM sites WHERE domain = 'acme.example'") == [
        {"retention": None}
    ]
    assert audit_actions(zeef).count("site.retention") == 2
    assert "customer.retention" in audit_actions(zeef)


async def test_deleting_a_site_in_the_admin_pages_deletes_all_its_data(zeef: Zeef) -> None:
    await add_user(zeef, "ann@acme.example")
    browser, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(browser):
        for domain in ("acme.example", "keep.example"):
            await browser.post("/sites", data={"csrf": token, "domain": domain, "timezone": "UTC"})
            for path in ("/", "/pricing"):
                await zeef.send(pageview(f"https://{domain}{path}", d=domain))
        await zeef.flush()
        before = zeef.rows("SELECT COUNT(*) AS n FROM events")[0]["n"]
        assert before == 4
        unconfirmed = await browser.post(
            "/sites/acme.example/delete", data={"csrf": token, "confirm": "acme"}
        )
        assert unconfirmed.status_code == 400
        deleted = await browser.post(
            "/sites/acme.example/delete", data={"csrf": token, "confirm": "Acme.example "}
        )
        assert deleted.headers["location"] == "/sites?done=site-deleted"
        assert "all its data were deleted" in (await browser.get(deleted.headers["location"])).text
        assert (await browser.get("/sites/acme.example/settings")).status_code == 404
    assert [r["domain"] for r in zeef.rows("SELECT domain FROM sites ORDER BY domain")] == [
        "example.com",
        "keep.example",
    ]
    kept = zeef.rows(
        "SELECT DISTINCT site_id FROM events UNION SELECT DISTINCT site_id FROM visits"
    )
    assert len(kept) == 1 and zeef.rows("SELECT COUNT(*) AS n FROM events")[0]["n"] == 2
    row = zeef.rows("SELECT actor, object FROM audit_log WHERE action = 'site.delete'")
    assert len(row) == 1 and row[0]["actor"] == "ann@acme.example"
    assert row[0]["object"].startswith("acme.example (") and "events 2" in row[0]["object"]


async def test_the_operator_deletes_a_customer_after_typing_its_name(zeef: Zeef) -> None:
    await add_user(zeef, "op@zeef.example", "superuser")
    await add_user(zeef, "ann@acme.example")
    await add_user(zeef, "bob@beta.example", customer="Beta")
    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        await ann.post("/sites", data={"csrf": token, "domain": "acme.example", "timezone": "UTC"})
    await zeef.send(pageview("https://acme.example/", d="acme.example"))
    await zeef.flush()
    acme = zeef.rows("SELECT id FROM customers WHERE name = 'Acme'")[0]["id"]
    op, op_token = await logged_in(zeef, "op@zeef.example")
    async with aclosing(op):
        page = await op.get(f"/customers/{acme}")
        assert "acme.example" in page.text and "its 1 site with all its data" in page.text
        wrong = await op.post(
            f"/customers/{acme}/delete", data={"csrf": op_token, "confirm": "acme"}
        )
        assert wrong.status_code == 400
        done = await op.post(
            f"/customers/{acme}/delete", data={"csrf": op_token, "confirm": "Acme"}
        )
        assert done.headers["location"] == "/customers?done=customer-deleted"
        assert (await op.get(f"/customers/{acme}")).status_code == 404
    assert [r["name"] for r in zeef.rows("SELECT name FROM customers")] == ["Beta"]
    assert zeef.rows("SELECT email FROM users ORDER BY email") == [
        {"email": "bob@beta.example"},
        {"email": "op@zeef.example"},
    ]
    assert zeef.rows("SELECT COUNT(*) AS n FROM events")[0]["n"] == 0
    assert audit_actions(zeef)[-2:] == ["site.delete", "customer.delete"]

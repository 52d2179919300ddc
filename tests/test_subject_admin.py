"""Data-subject requests in the admin pages, over HTTP with rows checked: a customer's admin
finds what a site holds under a visitor ID or a consent ID, downloads it as JSON and as CSV in
a ZIP, and erases it after ticking the confirmation; each step is audited without the ID, and
another customer's admin finds nothing, not even the page."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from contextlib import aclosing

from .conftest import FIREFOX, Zeef, pageview
from .test_admin_http import logged_in
from .test_consent import record
from .test_login import add_user

ANN_VISITOR = "AnnAnnAnnAnnAnnAnnAn01"
OTHER_VISITOR = "BobBobBobBobBobBobBo02"


async def _seed(zeef: Zeef) -> str:
    """acme.example of Acme, with a consented visitor's three pageviews, another visitor's
    one and a consent decision; the consent ID."""
    await add_user(zeef, "ann@acme.example")
    await add_user(zeef, "bob@beta.example", customer="Beta")
    browser, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(browser):
        await browser.post(
            "/sites", data={"csrf": token, "domain": "acme.example", "timezone": "UTC"}
        )
    for visitor, paths in ((ANN_VISITOR, ["/", "/boots", "/pay"]), (OTHER_VISITOR, ["/"])):
        for path in paths:
            body = pageview(f"https://acme.example{path}", d="acme.example", c=visitor)
            assert (await zeef.send(body, ua=FIREFOX)).status_code == 202
    consent_id = str(uuid.uuid4())
    answer = await zeef.client.post(
        "/api/consent", json=record(site="acme.example", consent_id=consent_id)
    )
    assert answer.status_code == 201
    await zeef.flush()
    return consent_id


async def test_an_admin_finds_downloads_and_erases_a_visitors_data(zeef: Zeef) -> None:
    consent_id = await _seed(zeef)
    ann, token = await logged_in(zeef, "ann@acme.example")
    async with aclosing(ann):
        settings = await ann.get("/sites/acme.example/settings")
        assert 'href="/sites/acme.example/subjects"' in settings.text
        page = await ann.get("/sites/acme.example/subjects")
        assert page.status_code == 200 and "Find a person" in page.text
        form = {"csrf": token, "kind": "visitor", "id": ANN_VISITOR}

        found = await ann.post("/sites/acme.example/subjects", data={**form, "do": "find"})
        assert found.status_code == 200
        assert 'Page views and events</td><td class="number">3<' in found.text
        assert "Visits</td>" in found.text and "Erase this data" in found.text

        as_json = await ann.post("/sites/acme.example/subjects", data={**form, "do": "json"})
        assert as_json.headers["content-type"] == "application/json"
        assert "attachment" in as_json.headers["content-disposition"]
        assert ANN_VISITOR not in as_json.headers["content-disposition"]
        document = json.loads(as_json.text)
        assert document["site"] == "acme.example"
        assert sorted(e["path"] for e in document["tables"]["events"]) == ["/", "/boots", "/pay"]

        as_csv = await ann.post("/sites/acme.example/subjects", data={**form, "do": "csv"})
        assert as_csv.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(as_csv.content)) as archive:
            assert "events.csv" in archive.namelist()
            assert "/boots" in archive.read("events.csv").decode()

        unconfirmed = await ann.post("/sites/acme.example/subjects", data={**form, "do": "erase"})
        assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
        assert len(zeef.rows("SELECT * FROM events")) == 4
        erased = await ann.post(
            "/sites/acme.example/subjects", data={**form, "do": "erase", "confirm": "yes"}
        )
        assert erased.headers["location"] == "/sites/acme.example/subjects?done=subject-erased"
        assert "The data was erased" in (await ann.get(erased.headers["location"])).text
        again = await ann.post("/sites/acme.example/subjects", data={**form, "do": "find"})
        assert "Nothing is stored under this ID" in again.text

        by_consent = await ann.post(
            "/sites/acme.example/subjects",
            data={"csrf": token, "kind": "consent", "id": consent_id, "do": "find"},
        )
        assert 'Consent decisions</td><td class="number">1<' in by_consent.text

        for bad in ("short", "<script>alert(1)</script>", ANN_VISITOR + "!"):
            refused = await ann.post(
                "/sites/acme.example/subjects", data={**form, "id": bad, "do": "find"}
            )
            assert refused.status_code == 400 and "22 characters" in refused.text
            assert "<script>alert" not in refused.text
        wrong = await ann.post("/sites/acme.example/subjects", data={**form, "do": "drop"})
        assert wrong.status_code == 400
    # The other visitor's pageview stays; the consent record (no visitor ID in it) too.
    assert [r["path"] for r in zeef.rows("SELECT path FROM events")] == ["/"]
    assert len(zeef.rows("SELECT * FROM consent_records")) == 1
    logged = zeef.rows(
        "SELECT action, object FROM audit_log WHERE action LIKE 'subject.%' ORDER BY id"
    )
    assert [r["action"] for r in logged] == [
        "subject.find",
        "subject.export",
        "subject.export",
        "subject.erase",
        "subject.find",
        "subject.find",
    ]
    assert all(ANN_VISITOR not in r["object"] and consent_id not in r["object"] for r in logged)


async def test_another_customers_admin_cannot_reach_the_page(zeef: Zeef) -> None:
    await _seed(zeef)
    bob, token = await logged_in(zeef, "bob@beta.example")
    async with aclosing(bob):
        assert (await bob.get("/sites/acme.example/subjects")).status_code == 404
        tried = await bob.post(
            "/sites/acme.example/subjects",
            data={
                "csrf": token,
                "kind": "visitor",
                "id": ANN_VISITOR,
                "do": "erase",
                "confirm": "yes",
            },
        )
        assert tried.status_code == 404
    assert len(zeef.rows("SELECT * FROM events")) == 4

"""Data-subject rights (issue 19): `zeef subject export|erase` by visitor ID or consent ID, the
audit rows they leave, the rollups of the erased visitor's days, and the visitor's own page
(/privacy/DOMAIN/my-data) and its JSON endpoints."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.config import Settings
from server.storage import open_storage, sqlite_rollups

from .conftest import FIREFOX, Clock, Zeef, pageview, start
from .test_cli import zeef as cli
from .test_consent import record

ANN = "AnnAnnAnnAnnAnnAnnAn01"  # two consented visitors, as consent.js makes their IDs
BOB = "BobBobBobBobBobBobBo02"
NOW = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)


def _rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(database)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


async def _visit(app: Zeef, clock: Clock, domain: str, visitor: str, paths: list[str]) -> None:
    for path in paths:
        body = pageview(f"https://{domain}{path}", d=domain, c=visitor)
        answer = await app.send(body, ua=FIREFOX)
        assert answer.status_code == 202, answer.text
        clock.advance(minutes=2)


async def _consent(app: Zeef, domain: str, consent_id: str, action: str = "accept_all") -> None:
    answer = await app.client.post(
        "/api/consent", json=record(site=domain, consent_id=consent_id, action=action)
    )
    assert answer.status_code == 201, answer.text


@pytest.fixture
async def shop(tmp_path: Path) -> tuple[Path, str, str]:
    """Two sites; Ann on both (two visits on shop, a day apart), Bob on shop, a cookieless
    visitor on shop; Ann's and Bob's consent records. Rollups built. Returns the database
    and Ann's and Bob's consent IDs."""
    return await _shop(tmp_path)


async def _shop(tmp_path: Path, rollups: bool = True) -> tuple[Path, str, str]:
    settings = Settings(database=tmp_path / "zeef.sqlite3", flush_interval=3600)
    clock = Clock(NOW)
    ann_consent, bob_consent = str(uuid.uuid4()), str(uuid.uuid4())
    async for app in start(settings, clock):
        await app.add_site("shop.example")
        await app.add_site("blog.example")
        await app.settled()
        await _visit(app, clock, "shop.example", ANN, ["/", "/boots", "/checkout"])
        await _visit(app, clock, "blog.example", ANN, ["/post"])
        await _visit(app, clock, "shop.example", BOB, ["/", "/hats"])
        assert (await app.send(pageview("https://shop.example/", d="shop.example"))).is_success
        await _consent(app, "shop.example", ann_consent)
        await _consent(app, "shop.example", bob_consent)
        await _consent(app, "blog.example", ann_consent)
        clock.advance(days=1)
        await _visit(app, clock, "shop.example", ANN, ["/coats"])
        await app.flush()
        if rollups:
            await app.app.state.storage.build_rollups(int((BUILT_AT).timestamp()))
    return settings.database, ann_consent, bob_consent


BUILT_AT = NOW + timedelta(days=1, hours=1)


def _count(database: Path, table: str, where: str = "1") -> int:
    return int(_rows(database, f"SELECT COUNT(*) FROM {table} WHERE {where}")[0][0])


def test_export_by_visitor_id_as_json(shop: tuple[Path, str, str]) -> None:
    database, _, _ = shop
    done = cli(database.parent, "subject", "export", "--site", "shop.example", "--visitor", ANN)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["format"], document["version"], document["site"]) == (
        "zeef-subject-export", 1, "shop.example",
    )  # fmt: skip
    tables = document["tables"]
    assert [e["path"] for e in tables["events"]] == ["/", "/boots", "/checkout", "/coats"]
    assert len(tables["visits"]) == 2 and len(tables["consented_visitors"]) == 1
    assert tables["consent_records"] == []  # no link from a visitor ID to a consent ID
    assert tables["events"][0]["ts"] == "2026-03-14T10:00:00+00:00"
    # Nothing of Bob's, nothing of the other site's, nothing cookieless.
    assert {e["visitor_id"] for e in tables["events"]} == {tables["visits"][0]["visitor_id"]}


def test_export_by_consent_id_and_as_csv(shop: tuple[Path, str, str], tmp_path: Path) -> None:
    database, ann_consent, _ = shop
    out = tmp_path / "ann.zip"
    done = cli(database.parent, "subject", "export", "--site", "shop.example", "--consent",
               ann_consent, "--format", "csv", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ["consent_records.csv"]
        rows = list(csv.DictReader(io.StringIO(archive.read("consent_records.csv").decode())))
    assert [(r["consent_id"], r["action"]) for r in rows] == [(ann_consent, "accept_all")]
    assert json.loads(rows[0]["choices"]) == {"necessary": True, "analytics": True}
    both = tmp_path / "visitor.zip"
    done = cli(database.parent, "subject", "export", "--site", "shop.example", "--visitor", ANN,
               "--format", "csv", "--out", str(both))  # fmt: skip
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(both) as archive:
        assert sorted(archive.namelist()) == [
            "consented_visitors.csv", "events.csv", "visits.csv",
        ]  # fmt: skip
        events = list(csv.DictReader(io.StringIO(archive.read("events.csv").decode())))
    assert [e["path"] for e in events] == ["/", "/boots", "/checkout", "/coats"]


def test_erase_by_visitor_id_leaves_others_untouched(shop: tuple[Path, str, str]) -> None:
    database, ann_consent, _ = shop
    before = {t: _count(database, t) for t in ("events", "visits", "consented_visitors")}
    keys_before = _count(database, "rollup_days")
    asked = cli(database.parent, "subject", "erase", "--site", "shop.example", "--visitor", ANN)
    assert asked.returncode == 2 and "--yes" in asked.stderr and "events 4" in asked.stderr
    assert _count(database, "events") == before["events"]
    done = cli(database.parent, "subject", "erase", "--site", "shop.example", "--visitor", ANN,
               "--yes")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "events 4, visits 2, consented_visitors 1" in done.stdout
    shop_id = _rows(database, "SELECT id FROM sites WHERE domain = 'shop.example'")[0][0]
    assert _count(database, "events", f"site_id = {shop_id} AND consented = 1") == 2  # Bob's
    assert _count(database, "events") == before["events"] - 4
    assert _count(database, "visits") == before["visits"] - 2
    assert _count(database, "consented_visitors") == before["consented_visitors"] - 1
    # Ann on the blog, and her consent records, stay: erasing by visitor ID is per site and
    # finds no consent record.
    assert _rows(database, "SELECT path FROM events WHERE path = '/post'") == [("/post",)]
    assert _count(database, "consent_records", f"consent_id = '{ann_consent}'") == 2
    # Both of the shop's days counted Ann: their sums are gone, to be built again.
    days = _rows(database, f"SELECT day FROM rollup_days WHERE site_id = {shop_id} "
                 "AND day < 'A'")  # fmt: skip
    assert days == []
    assert _count(database, "rollup_days") < keys_before
    assert _count(database, "rollups", f"site_id = {shop_id} AND day < 'A'") == 0
    # Reports read raw rows meanwhile: Bob and the cookieless visitor.
    stats = cli(database.parent, "stats", "shop.example", "--from", "2026-03-14", "--to",
                "2026-03-15", "--json")  # fmt: skip
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert (figures["visitors"], figures["pageviews"]) == (2, 3)
    again = cli(database.parent, "subject", "erase", "--site", "shop.example", "--visitor", ANN,
                "--yes")  # fmt: skip
    assert again.returncode == 0 and "events 0" in again.stdout


async def test_a_build_that_summed_the_erased_visitor_stores_nothing(tmp_path: Path) -> None:
    # The builder reads a day in one transaction and stores its sums in the next: an erasure
    # that commits in between must not have its visitor's counts stored back.
    database, _, _ = await _shop(tmp_path, rollups=False)
    storage = open_storage(database)
    site = next(s for s in await storage.sites() if s.domain == "shop.example")
    await storage.close()
    conn = sqlite_rollups.connect(str(database))
    erased: list[str] = []

    def between(statement: str) -> None:
        if statement == "BEGIN IMMEDIATE" and not erased:
            done = cli(database.parent, "subject", "erase", "--site", "shop.example",
                       "--visitor", ANN, "--yes")  # fmt: skip
            erased.append(done.stdout)

    conn.set_trace_callback(between)
    try:
        sqlite_rollups.build(conn, site, int(BUILT_AT.timestamp()))
        assert "events 4" in erased[0]
        # The first day's sums were not stored; the second was read after the erasure.
        days = _rows(database, f"SELECT day FROM rollup_days WHERE site_id = {site.id} "
                     "AND day < 'A'")  # fmt: skip
        assert days == [("2026-03-15",)]
        conn.set_trace_callback(None)
        sqlite_rollups.build(conn, site, int(BUILT_AT.timestamp()))
    finally:
        conn.close()
    days = _rows(database, f"SELECT day FROM rollup_days WHERE site_id = {site.id} "
                 "AND day < 'A' ORDER BY day")  # fmt: skip
    assert days == [("2026-03-14",), ("2026-03-15",)]
    stats = cli(database.parent, "stats", "shop.example", "--from", "2026-03-14", "--to",
                "2026-03-15", "--json")  # fmt: skip
    figures = json.loads(stats.stdout)
    assert (figures["visitors"], figures["pageviews"]) == (2, 3)  # Bob and the cookieless one


def test_erase_by_consent_id(shop: tuple[Path, str, str]) -> None:
    database, ann_consent, bob_consent = shop
    done = cli(database.parent, "subject", "erase", "--site", "shop.example", "--consent",
               ann_consent, "--yes")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "consent_records 1" in done.stdout
    left = _rows(database, "SELECT consent_id FROM consent_records ORDER BY id")
    assert left == [(bob_consent,), (ann_consent,)]  # Bob's, and Ann's on the blog


def test_each_action_is_audited_without_the_id(shop: tuple[Path, str, str]) -> None:
    database, ann_consent, _ = shop
    for args in (("export", "--visitor", ANN), ("export", "--consent", ann_consent),
                 ("erase", "--visitor", ANN, "--yes")):  # fmt: skip
        done = cli(database.parent, "subject", args[0], "--site", "shop.example", *args[1:])
        assert done.returncode == 0, done.stderr
    audit = _rows(database, "SELECT actor, action, object FROM audit_log "
                  "WHERE action LIKE 'subject.%' ORDER BY id")  # fmt: skip
    assert [(a[0], a[1]) for a in audit] == [
        ("cli", "subject.export"), ("cli", "subject.export"), ("cli", "subject.erase"),
    ]  # fmt: skip
    assert audit[0][2].startswith("shop.example: visitor #")
    assert "events 4, visits 2, consented_visitors 1" in audit[0][2]
    assert audit[1][2].startswith("shop.example: consent #")
    assert "events 4" in audit[2][2]
    for _, _, said in audit:
        assert ANN not in said and ann_consent not in said
    # Nor anywhere else in the file, or its WAL.
    for path in database.parent.glob("zeef.sqlite3*"):
        assert ANN.encode() not in path.read_bytes()


@pytest.mark.parametrize(
    "args",
    [
        ("--visitor", "short"),
        ("--visitor", "has spaces in it, quite a few"),
        ("--visitor", "x" * 65),
        ("--consent", "not-a-uuid"),
        ("--consent", str(uuid.uuid4()).upper()),
        ("--visitor", ANN, "--consent", str(uuid.uuid4())),
        (),
    ],
    ids=["short", "spaces", "long", "consent-not-uuid", "consent-upper", "both", "neither"],
)
def test_bad_ids_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert cli(tmp_path, "site", "add", "shop.example").returncode == 0
    for action in ("export", "erase"):
        done = cli(tmp_path, "subject", action, "--site", "shop.example", *args)
        assert done.returncode == 2, (action, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr


def test_unknown_site_and_csv_without_out(tmp_path: Path) -> None:
    assert cli(tmp_path, "site", "add", "shop.example").returncode == 0
    unknown = cli(tmp_path, "subject", "export", "--site", "nope.example", "--visitor", ANN)
    assert unknown.returncode == 1 and "nope.example" in unknown.stderr
    csv_out = cli(tmp_path, "subject", "export", "--site", "shop.example", "--visitor", ANN,
                  "--format", "csv")  # fmt: skip
    assert csv_out.returncode == 2 and "--out" in csv_out.stderr


# -- the visitor's own page: /privacy/DOMAIN/my-data --------------------------------------------

MY_DATA = "/privacy/example.com/my-data"
JSON = {"content-type": "application/json"}


@pytest.fixture
async def visited(zeef: Zeef, clock: Clock) -> tuple[Zeef, str]:
    """Ann (consented) on example.com, Bob too, and a cookieless visitor; Ann's consent ID."""
    await zeef.settled()
    consent_id = str(uuid.uuid4())
    await _visit(zeef, clock, "example.com", ANN, ["/", "/boots"])
    await _visit(zeef, clock, "example.com", BOB, ["/"])
    assert (await zeef.send(pageview())).is_success
    await _consent(zeef, "example.com", consent_id)
    await zeef.flush()
    return zeef, consent_id


async def _ask(app: Zeef, action: str, body: Any, **headers: str) -> Any:
    return await app.client.post(
        f"{MY_DATA}/{action}", content=json.dumps(body), headers={**JSON, **headers}
    )


async def test_the_page_is_served_with_its_script(zeef: Zeef) -> None:
    page = await zeef.client.get(MY_DATA, params={"lang": "nl"})
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["content-language"] == "nl"
    assert "/static/my_data.js?v=" in page.text and "<script>" not in page.text
    assert 'data-base="/privacy/example.com/my-data"' in page.text
    script = await zeef.client.get("/static/my_data.js")
    assert script.status_code == 200 and "location.hash" in script.text
    assert (await zeef.client.get("/privacy/nobody.example/my-data")).status_code == 404
    assert (await zeef.client.get("/privacy/%00/my-data")).status_code == 404


async def test_summary_export_and_erase(visited: tuple[Zeef, str]) -> None:
    app, consent_id = visited
    ids = {"visitor": ANN, "consent": consent_id}
    summary = (await _ask(app, "summary", ids)).json()
    assert summary["counts"] == {
        "events": 2, "visits": 1, "consented_visitors": 1, "consent_records": 1,
    }  # fmt: skip
    assert summary["first_visit"] == "2026-03-14T10:00:00+00:00"
    assert summary["consent"] == {"necessary": True, "analytics": True}
    export = await _ask(app, "export", ids)
    assert export.status_code == 200
    assert "attachment" in export.headers["content-disposition"]
    document = export.json()
    assert [e["path"] for e in document["tables"]["events"]] == ["/", "/boots"]
    assert document["consent_id"] == consent_id
    erased = await _ask(app, "erase", ids)
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"]["events"] == 2
    after = (await _ask(app, "summary", ids)).json()["counts"]
    # The proof of consent stays; Bob's and the cookieless rows too.
    assert after == {"events": 0, "visits": 0, "consented_visitors": 0, "consent_records": 1}
    assert len(app.rows()) == 2
    audit = app.rows("SELECT actor, action, object FROM audit_log WHERE action LIKE 'subject.%'")
    assert [(a["actor"], a["action"]) for a in audit] == [
        ("visitor", "subject.export"), ("visitor", "subject.erase"),
    ]  # fmt: skip
    assert all(ANN not in a["object"] and consent_id not in a["object"] for a in audit)


async def test_withdraw_records_it_and_erases(visited: tuple[Zeef, str]) -> None:
    app, consent_id = visited
    answer = await app.client.post(
        f"{MY_DATA}/withdraw?lang=es",
        content=json.dumps({"visitor": ANN, "consent": consent_id}),
        headers=JSON,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["withdrawn"] is True and answer.json()["erased"]["events"] == 2
    records = app.rows("SELECT action, choices, language, path FROM consent_records "
                       "ORDER BY id")  # fmt: skip
    assert [r["action"] for r in records] == ["accept_all", "withdraw"]
    assert json.loads(records[1]["choices"]) == {"necessary": True, "analytics": False}
    assert (records[1]["language"], records[1]["path"]) == ("es", MY_DATA)
    assert app.rows("SELECT * FROM events WHERE consented = 1 AND path = '/boots'") == []
    no_consent = await _ask(app, "withdraw", {"visitor": ANN})
    assert no_consent.status_code == 400


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"visitor": ANN}, {"content-type": "text/plain"}, 415),
        ({"visitor": ANN}, {"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"visitor": ANN}, {"sec-fetch-site": "cross-site"}, 403),
        ({"visitor": "short"}, {}, 400),
        ({"visitor": ANN, "extra": 1}, {}, 400),
        ({"visitor": 12345678901234567890}, {}, 400),
        ({}, {}, 400),
        ([ANN], {}, 400),
        ({"consent": "not-a-uuid"}, {}, 400),
        ({"visitor": ANN, "pad": "x" * 2000}, {}, 413),
    ],
    ids=[
        "text-plain",
        "form",
        "cross-site",
        "short-id",
        "extra-key",
        "number",
        "empty",
        "list",
        "bad-consent",
        "too-large",
    ],
)
async def test_bad_requests_get_a_clear_4xx(
    visited: tuple[Zeef, str], body: Any, headers: dict[str, str], status: int
) -> None:
    app, _ = visited
    answer = await _ask(app, "summary", body, **headers)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
    assert len(app.rows()) == 4  # nothing erased by a refused request


async def test_not_json_unknown_action_and_site(zeef: Zeef) -> None:
    bad = await zeef.client.post(f"{MY_DATA}/summary", content=b"{nope", headers=JSON)
    assert bad.status_code == 400
    unknown = await zeef.client.post(f"{MY_DATA}/delete-all", json={"visitor": ANN})
    assert unknown.status_code == 404
    other = await zeef.client.post("/privacy/nobody.example/my-data/summary",
                                   json={"visitor": ANN})  # fmt: skip
    assert other.status_code == 404


async def test_requests_are_rate_limited(zeef: Zeef) -> None:
    answers = [(await _ask(zeef, "summary", {"visitor": ANN})).status_code for _ in range(32)]
    assert answers[:30] == [200] * 30 and answers[30:] == [429, 429]


@pytest.mark.parametrize(
    ("lang", "heading"),
    [("en", "Your data on example.com"), ("nl", "Uw gegevens op example.com"),
     ("es", "Sus datos en example.com")],
    ids=["en", "nl", "es"],
)  # fmt: skip
async def test_the_page_speaks_three_languages(zeef: Zeef, lang: str, heading: str) -> None:
    page = await zeef.client.get(MY_DATA, params={"lang": lang})
    assert heading in page.text
    negotiated = await zeef.client.get(MY_DATA, headers={"accept-language": f"{lang};q=0.9"})
    assert heading in negotiated.text


async def test_hits_accepted_before_an_erasure_do_not_outlive_it(
    visited: tuple[Zeef, str], clock: Clock
) -> None:
    """A hit the collector accepted (202) but has not written yet is written before the
    erasure, not after it: erased means nothing of the visitor is left."""
    app, consent_id = visited
    await _visit(app, clock, "example.com", ANN, ["/late"])  # buffered, not flushed
    erased = await _ask(app, "erase", {"visitor": ANN, "consent": consent_id})
    assert erased.json()["erased"]["events"] == 3
    await app.flush()
    assert app.rows("SELECT * FROM events WHERE path = '/late'") == []
    assert len(app.rows("SELECT * FROM events WHERE consented = 1")) == 1  # Bob's

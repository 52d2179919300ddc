"""Consent, server side: the banner's config, the proof of each decision, the CLI over both."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIREFOX, Zeef, pageview, stored_bytes


def record(**changes: Any) -> dict[str, Any]:
    body = {
        "site": "example.com",
        "consent_id": str(uuid.uuid4()),
        "action": "accept_all",
        "choices": {"necessary": True, "analytics": True},
        "revision": 1,
        "language": "en",
        "texts_hash": "ab" * 32,
        "path": "/pricing",
        "gpc": False,
    }
    body.update(changes)
    return body


def zeef_cli(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZEEF_DATABASE": str(database)}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True, text=True, env=env, cwd=database.parent, timeout=60,
    )  # fmt: skip


async def test_a_site_never_configured_gets_necessary_and_analytics(zeef: Zeef) -> None:
    response = await zeef.client.get(
        "/consent/config", params={"site": "example.com", "lang": "nl-NL"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    config = response.json()
    assert [c["id"] for c in config["categories"]] == ["necessary", "analytics"]
    assert config["categories"][0]["required"] is True
    assert config["categories"][1]["required"] is False
    assert [c["name"] for c in config["categories"][0]["cookies"]] == ["zeef_consent"]
    assert [c["name"] for c in config["categories"][1]["cookies"]] == ["zeef_id"]
    assert (config["revision"], config["lifetime_days"], config["require_consent"]) == (
        1,
        182,
        False,
    )
    assert config["language"] in ("nl", "en")
    assert len(config["texts_hash"]) == 64
    missing = await zeef.client.get("/consent/config", params={"site": "nobody.example"})
    assert missing.status_code == 404


async def test_configure_from_the_cli(zeef: Zeef) -> None:
    database = zeef.settings.database
    result = zeef_cli(
        database, "consent", "configure", "example.com", "--categories", "analytics,marketing",
        "--revision", "3", "--lifetime", "13m", "--policy-url", "https://example.com/privacy",
        "--controller", "Example BV", "--require-consent", "--consent-mode-v2",
        "--cookie", "marketing:_fbp*:3 months:Facebook advertising",
        "--text", "en:title=We value your privacy",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = (await zeef.client.get("/consent/config", params={"site": "example.com"})).json()
    assert [c["id"] for c in config["categories"]] == ["necessary", "analytics", "marketing"]
    assert (config["revision"], config["lifetime_days"]) == (3, 396)
    assert config["policy_url"] == "https://example.com/privacy"
    assert config["controller"] == "Example BV"
    assert config["require_consent"] is True and config["consent_mode_v2"] is True
    assert config["categories"][2]["cookies"] == [
        {"name": "_fbp*", "purpose": "Facebook advertising", "lifetime": "3 months",
         "domain": None, "path": "/"}
    ]  # fmt: skip
    assert config["texts"]["title"] == "We value your privacy"
    first_hash = config["texts_hash"]
    # Options not given are kept; a new text is a new hash.
    assert zeef_cli(database, "consent", "configure", "example.com", "--text",
                    "en:title=Privacy first").returncode == 0  # fmt: skip
    again = (await zeef.client.get("/consent/config", params={"site": "example.com"})).json()
    assert again["revision"] == 3 and again["texts_hash"] != first_hash
    too_long = zeef_cli(database, "consent", "configure", "example.com", "--lifetime", "14m")
    assert too_long.returncode == 2 and "13 months" in too_long.stderr


async def test_a_decision_is_recorded_with_exactly_its_fields(zeef: Zeef) -> None:
    body = record(choices={"necessary": True, "analytics": False}, action="custom", gpc=True,
                  path="/pricing?email=jan@example.nl")  # fmt: skip
    response = await zeef.client.post(
        "/api/consent",
        content=json.dumps(body),
        headers={"content-type": "text/plain", "x-forwarded-for": "81.2.69.142"},
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"consent_id": body["consent_id"]}
    [row] = zeef.rows("SELECT * FROM consent_records")
    assert row["consent_id"] == body["consent_id"]
    assert (row["action"], row["revision"], row["language"], row["gpc"]) == ("custom", 1, "en", 1)
    assert json.loads(row["choices"]) == {"necessary": True, "analytics": False}
    assert row["path"] == "/pricing"  # the query string is not kept
    assert set(row) == {"id", "consent_id", "site_id", "created_at", "action", "choices",
                        "revision", "language", "texts_hash", "path", "gpc"}  # fmt: skip
    raw = stored_bytes(zeef.settings.database)
    assert b"81.2.69.142" not in raw and b"81.2." not in raw


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"consent_id": "1234"}, "UUID"),
        ({"choices": {"necessary": True}}, "every category"),
        ({"choices": {"necessary": False, "analytics": True}}, "cannot be refused"),
        ({"choices": {"necessary": True, "analytics": "yes"}}, "true or false"),
        ({"action": "maybe"}, "action"),
        ({"language": "fr"}, "language"),
        ({"texts_hash": "abc"}, "SHA-256"),
        ({"path": "https://example.com/"}, "path"),
        ({"ip": "81.2.69.142"}, "unknown"),
        ({"site": "nobody.example"}, "unknown site"),
    ],
    ids=[
        "bad-id",
        "missing-category",
        "necessary-refused",
        "choice-not-bool",
        "bad-action",
        "bad-language",
        "bad-hash",
        "bad-path",
        "extra-field",
        "unknown-site",
    ],
)
async def test_bad_decisions_are_refused(zeef: Zeef, changes: dict[str, Any], message: str) -> None:
    response = await zeef.client.post("/api/consent", content=json.dumps(record(**changes)))
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert zeef.rows("SELECT * FROM consent_records") == []


async def test_oversized_and_malformed_decisions(zeef: Zeef) -> None:
    assert (await zeef.client.post("/api/consent", content=b"{" * 5000)).status_code == 413
    assert (await zeef.client.post("/api/consent", content=b"\xff")).status_code == 400
    preflight = await zeef.client.options("/api/consent")
    assert preflight.status_code == 204


# Sent as JSON escapes ("\ud800"), as json.dumps writes them: the standard library's parser
# turned one into a str SQLite cannot encode, and the record was a 500 at bind.
LONE_SURROGATES = [
    {"path": "/\ud800"},
    {"path": "/a\udc00b"},
    {"site": "example.com\ud800"},
    {"consent_id": "\ud800"},
    {"action": "accept_all\ud800"},
    {"language": "\udbff"},
    {"texts_hash": "ab" * 31 + "\ud800"},
    {"choices": {"necessary": True, "analytics\ud800": True}},
    {"\ud800": 1},
]
SURROGATE_IDS = [
    "path", "path-low", "site", "consent-id", "action", "language", "texts-hash", "choice-key",
    "unknown-key",
]  # fmt: skip


@pytest.mark.parametrize("changes", LONE_SURROGATES, ids=SURROGATE_IDS)
async def test_a_lone_surrogate_in_any_field_is_a_400(zeef: Zeef, changes: dict[str, Any]) -> None:
    body = json.dumps(record(**changes))
    assert "\\ud" in body  # an escape on the wire, not a character
    response = await zeef.client.post("/api/consent", content=body)
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["error"]
    assert zeef.rows("SELECT * FROM consent_records") == []
    # A surrogate pair is a character like any other, and the next good record is stored.
    emoji = record(path="/caf\u00e9/\ud83d\ude00")
    assert (await zeef.client.post("/api/consent", content=json.dumps(emoji))).status_code == 201
    assert [row["path"] for row in zeef.rows("SELECT path FROM consent_records")] == ["/café/😀"]


async def test_a_text_that_is_not_utf8_is_refused_by_the_cli(zeef: Zeef) -> None:
    # A byte that is not UTF-8 in an argument reaches Python as a lone surrogate; stored, it
    # made every /consent/config answer for the site a 500.
    result = zeef_cli(zeef.settings.database, "consent", "configure", "example.com",
                      "--text", "en:title=Caf\udce9")  # fmt: skip
    assert result.returncode == 2 and "UTF-8" in result.stderr, result
    assert zeef.rows("SELECT * FROM consent_configs") == []
    config = await zeef.client.get("/consent/config", params={"site": "example.com"})
    assert config.status_code == 200


async def test_log_show_delete_and_rates_from_the_cli(zeef: Zeef, clock) -> None:
    first, second = record(), record(action="reject_all",
                                     choices={"necessary": True, "analytics": False})  # fmt: skip
    for body in (first, second):
        assert (await zeef.client.post("/api/consent", content=json.dumps(body))).status_code == 201
    database = zeef.settings.database
    exported = zeef_cli(database, "consent", "log", "example.com", "--csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["consent_id"] for r in rows] == [first["consent_id"], second["consent_id"]]
    assert [(r["action"], r["analytics"], r["necessary"]) for r in rows] == [
        ("accept_all", "true", "true"), ("reject_all", "false", "true")]  # fmt: skip
    assert rows[0]["created_at"] == "2026-03-14T10:00:00Z"
    later = zeef_cli(database, "consent", "log", "example.com", "--csv", "--since", "2026-03-15")
    assert later.stdout.count("\n") == 1  # the header only
    shown = zeef_cli(database, "consent", "show", first["consent_id"])
    assert json.loads(shown.stdout)["action"] == "accept_all"
    assert zeef_cli(database, "consent", "delete", first["consent_id"]).returncode == 0
    assert zeef_cli(database, "consent", "show", first["consent_id"]).returncode == 1
    storage = zeef.app.state.storage
    [site] = await storage.sites()
    rates = await storage.consent_rates(site.id, 0, 2**31)
    assert rates == [{"day": "2026-03-14", "decisions": 1,
                      "accepted": {"analytics": 0, "necessary": 1}}]  # fmt: skip


async def test_require_consent_counts_only_consented_visitors(zeef: Zeef, clock) -> None:
    result = zeef_cli(zeef.settings.database, "consent", "configure", "example.com",
                      "--require-consent")  # fmt: skip
    assert result.returncode == 0, result.stderr
    await zeef.settled()
    refused = await zeef.send(pageview(), ua=FIREFOX)
    assert refused.headers["x-zeef-drop"] == "no_consent"
    first_party = "k3J9xQ2mZ7pL0aB4cD8eFg"
    resp = await zeef.send(pageview(c=first_party))
    assert resp.status_code == 202 and "x-zeef-drop" not in resp.headers, resp.text
    clock.advance(days=3)  # new salts; the consented visitor is still recognised
    later = await zeef.send(pageview(c=first_party), ip="203.0.113.50")
    assert later.status_code == 202 and "x-zeef-drop" not in later.headers, later.text
    assert await zeef.flush() == 2
    rows = zeef.rows()
    assert [r["consented"] for r in rows] == [1, 1]
    assert rows[0]["visitor_id"] == rows[1]["visitor_id"]
    raw = stored_bytes(zeef.settings.database)
    assert first_party.encode() not in raw  # only its keyed hash is kept
    from server import reports

    [site] = await zeef.app.state.storage.sites()
    today = await reports.totals(
        zeef.app.state.storage, reports.Query.for_period(site, "day", clock())
    )
    assert (today["visitors"], today["returning_visitors"]) == (1, 1)


async def test_a_bad_first_party_id_is_refused(zeef: Zeef) -> None:
    response = await zeef.send(pageview(c="x"))
    assert response.status_code == 400
    assert "consented visitor ID" in response.json()["error"]


async def test_returning_visitors_are_the_consented_ones_seen_on_an_earlier_day(
    zeef: Zeef, clock
) -> None:
    from server import reports

    regular, newcomer = "k3J9xQ2mZ7pL0aB4cD8eFg", "Zz9xQ2mZ7pL0aB4cD8eFgh"
    await zeef.send(pageview(c=regular))
    await zeef.send(pageview(), ip="203.0.113.60")  # cookieless: never returning
    await zeef.flush()
    clock.advance(days=2)
    await zeef.send(pageview(c=regular))
    await zeef.send(pageview(c=regular))  # twice today, once returning
    await zeef.send(pageview(c=newcomer), ip="203.0.113.61")
    await zeef.send(pageview(), ip="203.0.113.60")
    await zeef.flush()
    [site] = await zeef.app.state.storage.sites()
    today = await reports.totals(
        zeef.app.state.storage, reports.Query.for_period(site, "day", clock())
    )
    assert (today["visitors"], today["returning_visitors"]) == (3, 1)
    assert len(zeef.rows("SELECT * FROM consented_visitors")) == 2

"""Security headers on every answer, and no redirect to whatever host a request names."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from .conftest import Zeef, pageview
from .test_consent import record

NOSNIFF = ("x-content-type-options", "nosniff")
NO_REFERRER = ("referrer-policy", "no-referrer")
NOT_A_DOCUMENT = ("content-security-policy", "default-src 'none'; frame-ancestors 'none'")


def consent_record() -> str:
    return json.dumps(record())


# (method, path, body, status, whether the answer has a body the CSP is for)
ANSWERS = [
    ("GET", "/healthz", None, 200, True),
    ("GET", "/tracker.js", None, 200, True),
    ("GET", "/tracker-auto.js", None, 200, True),
    ("GET", "/consent.js", None, 200, True),
    ("GET", "/consent.css", None, 200, True),
    ("GET", "/consent/config?site=example.com&lang=nl", None, 200, True),
    ("GET", "/consent/config?site=nobody.example", None, 404, True),
    ("POST", "/api/consent", consent_record(), 201, True),
    ("POST", "/api/consent", "{", 400, True),
    ("OPTIONS", "/api/consent", None, 204, True),
    ("GET", "/nowhere", None, 404, True),
    ("POST", "/healthz", None, 405, True),
    ("POST", "/api/event", "{", 400, True),
    ("GET", "/api/event", None, 405, True),
]
IDS = [
    "healthz", "tracker", "tracker-auto", "consent-js", "consent-css", "consent-config",
    "consent-config-404", "consent-record", "consent-record-400", "consent-preflight",
    "not-found", "wrong-method", "event-400", "event-405",
]  # fmt: skip
# The collector's bodiless answers to a beacon: nothing to sniff, no document, and each header
# costs the hot path ~5k instructions in uvicorn's checks (server/collector.py).
BODILESS = [
    ("POST", "/api/event", json.dumps(pageview()), 202),
    ("POST", "/api/event", json.dumps({**pageview(), "d": "nobody.example"}), 202),
    ("OPTIONS", "/api/event", None, 204),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "document"), ANSWERS, ids=IDS)
async def test_every_answer_carries_the_security_headers(
    zeef: Zeef, method: str, path: str, body: str | None, status: int, document: bool
) -> None:
    response = await zeef.client.request(method, path, content=body)
    assert response.status_code == status, response.text
    headers = response.headers
    assert headers.get_list(NOSNIFF[0]) == [NOSNIFF[1]]
    assert headers.get_list(NO_REFERRER[0]) == [NO_REFERRER[1]]
    if document:
        assert headers.get_list(NOT_A_DOCUMENT[0]) == [NOT_A_DOCUMENT[1]]


@pytest.mark.parametrize(("method", "path", "body", "status"), BODILESS,
                         ids=["event", "event-dropped", "event-preflight"])  # fmt: skip
async def test_the_collectors_bodiless_answers_stay_bare(
    zeef: Zeef, method: str, path: str, body: str | None, status: int
) -> None:
    response = await zeef.client.request(method, path, content=body)
    assert response.status_code == status
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    for name in (NOSNIFF[0], NO_REFERRER[0], NOT_A_DOCUMENT[0]):
        assert name not in response.headers


async def test_what_sites_load_cross_origin_still_loads(zeef: Zeef) -> None:
    # The banner and trackers are embedded by other sites: the headers must not fence them in.
    for asset in ("/tracker.js", "/consent.js", "/consent.css"):
        response = await zeef.client.get(asset, headers={"origin": "https://example.com"})
        assert response.headers["cross-origin-resource-policy"] == "cross-origin"
        cached = await zeef.client.get(asset, headers={"if-none-match": response.headers["etag"]})
        assert cached.status_code == 304
        assert cached.headers["x-content-type-options"] == "nosniff"
    config = await zeef.client.get("/consent/config", params={"site": "example.com"})
    assert config.headers["access-control-allow-origin"] == "*"
    recorded = await zeef.client.post("/api/consent", content=consent_record())
    assert recorded.headers["access-control-allow-origin"] == "*"
    event = await zeef.send(pageview())
    assert event.headers["access-control-allow-origin"] == "*"


async def test_a_500_from_starlette_carries_them_too(zeef: Zeef) -> None:
    # A real fault: the table consent records are written to is gone. (Not the configs'
    # table: the site registry reads it too, and would drop the site instead.)
    connection = sqlite3.connect(zeef.settings.database)
    connection.execute("DROP TABLE consent_records")
    connection.close()
    transport = httpx.ASGITransport(app=zeef.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://zeef.test") as client:
        response = await client.post("/api/consent", content=consent_record())
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == NOT_A_DOCUMENT[1]


@pytest.mark.parametrize("path", ["/healthz/", "/consent.js/", "/consent/config/", "/api/event/"])
async def test_a_trailing_slash_is_not_redirected_to_the_host_header(zeef: Zeef, path: str) -> None:
    # Starlette answered 307 with Location: http://evil.example/healthz: an open redirect.
    response = await zeef.client.get(path, headers={"host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers

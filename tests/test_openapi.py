"""The Stats API answers as /api/openapi.json documents it: schemathesis draws requests from
the document and sends them to a live Zeef with a real key; every answer must be a documented
status with a body of the documented shape, and never a 5xx. Bounded: a few dozen requests
an operation, so the suite stays lean."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import CHROME
from .live import LiveServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory: Path = tmp_path_factory.mktemp("openapi")
    with LiveServer(directory, sites=["example.com"]) as server:
        yield server


@pytest.fixture(scope="module")
def key(live: LiveServer) -> str:
    # Some visits, so the reports have rows to shape: three pages, a goal-like event, a referrer.
    with live.client() as http:
        for i, path in enumerate(["/", "/pricing", "/blog/a", "/"]):
            body = {"n": "pageview", "u": f"https://example.com{path}", "d": "example.com",
                    "r": "https://www.google.com/" if i == 1 else None}  # fmt: skip
            agent = {"user-agent": CHROME, "content-type": "text/plain"}
            http.post("/api/event", json=body, headers=agent)
        signup = {"n": "Signup", "u": "https://example.com/pricing", "d": "example.com",
                  "p": {"plan": "pro"}}  # fmt: skip
        http.post("/api/event", json=signup, headers={"user-agent": CHROME})
    live.cli("goal", "add", "example.com", "--event", "Signup")
    return live.cli("apikey", "create", "ops@example.com").strip().splitlines()[-1]


@pytest.fixture(scope="module")
def api_schema(live: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live.url}/api/openapi.json")


def test_the_document_is_served_and_names_every_route(live: LiveServer) -> None:
    with live.client() as http:
        document = http.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/api/v1/stats/realtime/visitors",
        "/api/v1/stats/aggregate",
        "/api/v1/stats/timeseries",
        "/api/v1/stats/breakdown",
        "/api/v2/query",
    }


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_answer_is_as_documented(case: schemathesis.Case, key: str) -> None:
    # A drawn site_id is almost never a site: every other case asks for the one that exists,
    # so the draws reach the report engine and not only the 404.
    if case.query and zlib.crc32(repr(sorted(case.query.items())).encode()) % 2:
        case.query["site_id"] = "example.com"
    if isinstance(case.body, dict) and zlib.crc32(repr(case.body).encode()) % 2:
        case.body["site_id"] = "example.com"
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

"""Bad input: a clear 4xx with a JSON error, never a 5xx, and the server keeps serving."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.ingest.plausible import PayloadError, parse_payload

from .conftest import Zeef, pageview
from .live import LiveServer

CASES = [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'"pageview"', 400, "JSON object"),
    (b"", 400, "not valid JSON"),
    (b"\xff\xfe{}", 400, "UTF-8"),
    (b'{"n": "pageview", "d": "example.com"}', 400, "missing 'url'"),
    (b'{"u": "https://example.com/", "d": "example.com"}', 400, "missing 'name'"),
    (b'{"n": "pageview", "u": "https://example.com/"}', 400, "missing 'domain'"),
    (json.dumps(pageview("ftp://example.com/f")).encode(), 400, "http(s)"),
    (json.dumps(pageview("javascript:alert(1)")).encode(), 400, "http(s)"),
    (json.dumps(pageview("/relative")).encode(), 400, "http(s)"),
    (json.dumps(pageview("https://example.com/" + "a" * 2001)).encode(), 400, "longer than"),
    (json.dumps(pageview(n="x" * 121)).encode(), 400, "longer than"),
    (json.dumps(pageview(color="red")).encode(), 400, "unknown key"),
    (json.dumps({**pageview(), "name": "pageview"}).encode(), 400, "twice"),
    (json.dumps(pageview(n=7)).encode(), 400, "must be a string"),
    (json.dumps(pageview(p=[1])).encode(), 400, "object"),
    (json.dumps(pageview(p={"a": {"b": 1}})).encode(), 400, "string, number or boolean"),
    (json.dumps(pageview(p={str(i): i for i in range(31)})).encode(), 400, "more than 30"),
    (json.dumps(pageview(**{"$": {"amount": "ten", "currency": "EUR"}})).encode(), 400, "number"),
    (json.dumps(pageview(**{"$": {"amount": 1, "currency": "EURO"}})).encode(), 400, "ISO 4217"),
    (json.dumps(pageview(sd=250)).encode(), 400, "between 0 and 100"),
    (json.dumps(pageview(e=-5)).encode(), 400, "between"),
    (json.dumps(pageview(i="no")).encode(), 400, "true or false"),
    (
        b'{"n": "pageview", "u": "https://example.com/", "d": "example.com", "sd": NaN}',
        400,
        "not valid JSON",
    ),
    (b"[" * 5000 + b"]" * 5000, 413, "8 KiB"),
    (b"[" * 3000 + b"]" * 3000, 400, "not valid JSON"),
    (json.dumps(pageview(p={"k": "v" * 9000})).encode(), 413, "8 KiB"),
    (json.dumps(pageview(n="page\x00view")).encode(), 400, "control characters"),
    # Lone surrogates, sent as JSON escapes: no character, and SQLite cannot encode them.
    (json.dumps(pageview("https://example.com/\ud800")).encode(), 400, "not valid JSON"),
    (json.dumps(pageview(r="https://ref.example/\udc00")).encode(), 400, "not valid JSON"),
    (json.dumps(pageview(p={"k\ud800": "v"})).encode(), 400, "not valid JSON"),
    (json.dumps(pageview(p=json.dumps({"k": "\udfff"}))).encode(), 400, "'props' is not valid"),
]
IDS = [
    "malformed", "array", "string", "empty", "invalid-utf8", "no-url", "no-name", "no-domain",
    "ftp-url", "javascript-url", "relative-url", "long-url", "long-name", "unknown-key",
    "key-twice", "name-not-string", "props-array", "props-nested", "props-too-many",
    "revenue-words", "revenue-currency", "scroll-over-100", "engaged-negative",
    "interactive-string", "nan", "deep-nesting-oversize", "deep-nesting", "oversized",
    "nul-in-name", "surrogate-url", "surrogate-referrer", "surrogate-prop",
    "surrogate-props-string",
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "message"), CASES, ids=IDS)
async def test_bad_payloads_get_a_clear_4xx(
    zeef: Zeef, body: bytes, status: int, message: str
) -> None:
    response = await zeef.send(body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert response.headers["access-control-allow-origin"] == "*"
    # ...and the next good event still goes through.
    assert (await zeef.send(pageview())).status_code == 202
    await zeef.flush()
    assert len(zeef.rows()) == 1


async def test_wrong_method_and_content_type(zeef: Zeef) -> None:
    assert (await zeef.client.get("/api/event")).status_code == 405
    response = await zeef.send("n=pageview", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


async def test_oversized_body_without_content_length_is_refused(zeef: Zeef) -> None:
    async def chunks():
        for _ in range(10):
            yield b"x" * 1024

    response = await zeef.client.post(
        "/api/event", content=chunks(), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/api/event", "/api/consent"])
def test_a_client_hanging_up_mid_body_is_logged_as_a_refusal(tmp_path: Path, path: str) -> None:
    # A real uvicorn and a raw socket: the body promises 1,000 bytes and the client hangs up
    # after 10. That was an ERROR traceback and a 500 access line (and, for events, a drop
    # counted as an invalid payload): the client's doing, not the server's.
    head = f"POST {path} HTTP/1.1\r\nHost: zeef.test\r\nContent-Type: text/plain\r\n"
    with LiveServer(tmp_path, sites=["example.com"]) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            client.sendall(f"{head}Content-Length: 1000\r\n\r\n".encode() + b'{"n": "pag')
        server.wait_for_log(f'"POST {path}" 499')
        with server.client() as http:
            assert http.get("/healthz").status_code == 200
    server.check_clean_exit()
    log = server.run_log()
    [line] = [line for line in log.splitlines() if f'"POST {path}"' in line]
    assert " INFO zeef.access: 127.0.0.0 " in line, line
    assert "Traceback" not in log and "ERROR" not in log and '" 500' not in log, log
    connection = sqlite3.connect(server.database)
    try:
        assert connection.execute("SELECT reason, count FROM drops").fetchall() == []
    finally:
        connection.close()


async def test_invalid_payloads_are_counted(zeef: Zeef) -> None:
    await zeef.send(b"{oops")
    await zeef.flush()
    assert zeef.rows("SELECT site_id, reason, count FROM drops") == [
        {"site_id": 0, "reason": "invalid_payload", "count": 1}
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
known_keys = st.sampled_from(
    ["n", "u", "d", "r", "p", "$", "i", "h", "sd", "e", "v", "name", "url", "domain", "props",
     "revenue", "referrer", "interactive", "hashMode", "meta", "m"]
)  # fmt: skip
payloads = st.dictionaries(known_keys | st.text(max_size=5), json_values, max_size=8)


@given(payloads)
@settings(max_examples=400, deadline=None)
def test_parser_accepts_or_refuses_cleanly(data: dict[str, object]) -> None:
    body = json.dumps(data).encode()
    try:
        parse_payload(body)
    except PayloadError as exc:
        assert str(exc)


@given(st.binary(max_size=9000))
@settings(max_examples=300, deadline=None)
def test_parser_never_raises_anything_else_on_bytes(body: bytes) -> None:
    with contextlib.suppress(PayloadError):
        parse_payload(body)


@given(
    url=st.text(max_size=60).map(lambda s: "https://example.com/" + s),
    referrer=st.none() | st.text(max_size=60),
    props=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=5),
)
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_server_never_answers_5xx(zeef: Zeef, url: str, referrer, props) -> None:
    response = await zeef.send(pageview(url, r=referrer, p=props))
    assert response.status_code in (202, 400), response.text

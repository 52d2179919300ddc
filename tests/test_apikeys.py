"""Stats API keys from the outside: made and revoked with the real CLI, checked over HTTP by
api_key_for in a minimal app around a real migrated database, and by the real app's routes."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.accounts import apikeys
from server.accounts.apikeys import RateLimiter, api_key_for
from server.storage import Storage, open_storage

from .conftest import Zeef
from .test_cli import zeef as cli

# 10:59:00 UTC: one minute before the rate window turns over.
START = 1_773_485_940.0


class WallClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Guarded:
    """A minimal app whose one route is api_key_for, over the database the CLI writes."""

    client: httpx.AsyncClient
    clock: WallClock
    database: Path

    async def get(self, key: str | None = None, header: str | None = None) -> httpx.Response:
        headers = {"authorization": header or f"Bearer {key}"} if key or header else {}
        return await self.client.get("/whoami", headers=headers)

    def last_used(self, key_id: int) -> int | None:
        with closing(sqlite3.connect(self.database)) as conn:
            row = conn.execute("SELECT last_used_at FROM api_keys WHERE id = :id", {"id": key_id})
            value: int | None = row.fetchone()[0]
        return value


def create(tmp_path: Path, owner: str = "ops@example.com", label: str = "grafana") -> str:
    made = cli(tmp_path, "apikey", "create", owner, "--label", label)
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[-1]


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Guarded]:
    assert cli(tmp_path, "site", "add", "example.com").returncode == 0
    storage: Storage = open_storage(tmp_path / "zeef.sqlite3", must_exist=True)
    await storage.migrate()
    clock = WallClock()
    limiter = RateLimiter(3, clock)

    async def whoami(request: Request) -> JSONResponse:
        found = await api_key_for(request, storage, limiter)
        if isinstance(found, JSONResponse):
            return found
        key, principal = found
        body = {"id": key.id, "owner": key.owner, "label": key.label, "role": principal.role}
        return JSONResponse(body)

    app = Starlette(routes=[Route("/whoami", whoami)])
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://zeef.test") as client:
            yield Guarded(client, clock, tmp_path / "zeef.sqlite3")
    finally:
        await storage.close()


def test_cli_shows_a_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    assert cli(tmp_path, "site", "add", "example.com").returncode == 0
    made = cli(tmp_path, "apikey", "create", "Ops@Example.com", "--label", "grafana")
    assert made.returncode == 0, made.stderr
    *explanation, key = made.stdout.splitlines()
    assert explanation and "shown only now" in made.stdout
    assert key.startswith("zeef_") and len(key) >= 45 and key.strip() == key
    other = create(tmp_path, label="backup")
    assert other != key

    listing = cli(tmp_path, "apikey", "list", "ops@example.com")
    assert listing.returncode == 0, listing.stderr
    first, second = listing.stdout.splitlines()
    assert apikeys.shown_prefix(key) in first and "grafana" in first and "never used" in first
    assert apikeys.shown_prefix(other) in second and "backup" in second
    as_json = cli(tmp_path, "apikey", "list", "OPS@example.com ", "--json")
    rows = json.loads(as_json.stdout)
    assert [(r["owner"], r["label"]) for r in rows] == [("ops@example.com", "grafana"),
                                                        ("ops@example.com", "backup")]  # fmt: skip
    assert set(rows[0]) == {"id", "owner", "label", "prefix", "created_at", "last_used_at",
                            "revoked_at"}  # fmt: skip
    hashed = hashlib.sha256(key.encode()).digest()
    for shown in (listing.stdout, as_json.stdout):
        assert key not in shown and other not in shown and hashed.hex() not in shown

    files = [tmp_path / name for name in ("zeef.sqlite3", "zeef.sqlite3-wal")]
    stored = b"".join(f.read_bytes() for f in files if f.exists())
    assert hashed in stored  # the check below reads the right bytes
    for secret in (key, other):
        assert secret.encode() not in stored
        assert secret[len(apikeys.shown_prefix(secret)) :].encode() not in stored

    nobody = cli(tmp_path, "apikey", "list", "nobody@example.com")
    assert nobody.returncode == 0 and nobody.stdout == "" and "no API keys" in nobody.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("create", "not-an-email"), 2, "email address"),
        (("create", ""), 2, "email address"),
        (("list", "two words@example.com"), 2, "email address"),
        (("revoke", "999"), 1, "no live API key with id 999"),
        (("revoke", "first"), 2, "invalid int value"),
    ],
    ids=["owner-not-email", "owner-empty", "list-not-email", "revoke-unknown", "revoke-not-id"],
)
def test_cli_refuses_bad_input_clearly(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    assert cli(tmp_path, "site", "add", "example.com").returncode == 0
    result = cli(tmp_path, "apikey", *args)
    assert result.returncode == code and message in result.stderr
    assert cli(tmp_path, "apikey", "list", "ops@example.com", "--json").stdout.strip() == "[]"


async def test_a_key_is_accepted_until_revoked_and_then_refused_at_once(
    tmp_path: Path, guarded: Guarded
) -> None:
    key = create(tmp_path)
    accepted = await guarded.get(key)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["owner"] == "ops@example.com"
    assert accepted.json()["label"] == "grafana"
    # Its owner has no account: a key from the CLI keeps the operator's reach.
    assert accepted.json()["role"] == "superuser"
    # Schemes are case-insensitive (RFC 9110), and stray spaces around the key are no error.
    assert (await guarded.get(header=f"bearer  {key} ")).status_code == 200

    missing = await guarded.get()
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]
    for header in ("Bearer", "Bearer  ", f"Basic {key}", key):
        assert (await guarded.get(header=header)).json() == missing.json(), header

    unknown = await guarded.get("zeef_" + "A" * 43)
    assert unknown.status_code == 401 and unknown.json() != missing.json()
    assert (await guarded.get(key[:-1])).json() == unknown.json()

    key_id = accepted.json()["id"]
    revoked = cli(tmp_path, "apikey", "revoke", str(key_id))  # another process, as in use
    assert revoked.returncode == 0, revoked.stderr
    refused = await guarded.get(key)
    assert refused.status_code == 401
    assert refused.json() == unknown.json()  # never says whether the key once existed
    again = cli(tmp_path, "apikey", "revoke", str(key_id))
    assert again.returncode == 1 and "no live API key" in again.stderr
    listed = json.loads(cli(tmp_path, "apikey", "list", "ops@example.com", "--json").stdout)
    assert listed[0]["revoked_at"] is not None


async def test_past_the_hourly_limit_a_key_gets_429_with_retry_after(
    tmp_path: Path, guarded: Guarded
) -> None:
    key, other = create(tmp_path), create(tmp_path)
    for _ in range(3):
        assert (await guarded.get(key)).status_code == 200
    over = await guarded.get(key)
    assert over.status_code == 429
    assert over.headers["retry-after"] == "60"  # the window turns at 11:00
    assert "3 an hour" in over.json()["error"]
    guarded.clock.now += 30
    assert (await guarded.get(key)).headers["retry-after"] == "30"
    assert (await guarded.get(other)).status_code == 200  # the limit is per key
    assert (await guarded.get("zeef_unknown")).status_code == 401  # not counted, not 429
    guarded.clock.now += 30
    assert (await guarded.get(key)).status_code == 200


async def test_last_use_is_written_at_most_once_a_minute(tmp_path: Path, guarded: Guarded) -> None:
    key = create(tmp_path)
    key_id = (await guarded.get(key)).json()["id"]
    assert guarded.last_used(key_id) == int(START)
    guarded.clock.now += 59
    await guarded.get(key)
    assert guarded.last_used(key_id) == int(START)
    guarded.clock.now += 1
    await guarded.get(key)
    assert guarded.last_used(key_id) == int(START) + 60
    listing = cli(tmp_path, "apikey", "list", "ops@example.com").stdout
    assert "last used 2026-03-14 11:00 UTC" in listing


async def test_the_key_never_reaches_a_log_line(
    zeef: Zeef, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = apikeys.generate()
    storage = zeef.app.state.storage
    await storage.create_api_key("ops@example.com", None, apikeys.shown_prefix(key),
                                 apikeys.digest(key), 1_773_485_940)  # fmt: skip
    path = "/api/v1/stats/aggregate"
    params = {"site_id": "example.com", "period": "day"}
    answers = []
    for sent in (key, key + "x", key[:-1]):
        headers = {"authorization": f"Bearer {sent}"}
        answers.append((await zeef.client.get(path, params=params, headers=headers)).status_code)
    assert answers == [200, 401, 401]
    refused = [r for r in caplog.records if "unknown or revoked" in r.getMessage()]
    assert len(refused) == 2  # the log did record those requests
    assert any(path in r.getMessage() for r in caplog.records)  # and the access log ran
    secret = key[len(apikeys.shown_prefix(key)) :]
    for record in caplog.records:
        assert secret[:12] not in record.getMessage()
        assert secret[:12] not in repr(record.args)
    assert secret[:12] not in caplog.text

"""The Stats API v1 as Plausible's clients call it: keys, parameters and answer shapes."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from server.accounts import apikeys
from server.config import Settings

from .conftest import Clock, Zeef, start
from .test_cli import zeef as cli

DAY = {"site_id": "example.com", "period": "day"}


async def new_key(zeef: Zeef) -> str:
    key = apikeys.generate()
    storage = zeef.app.state.storage
    await storage.create_api_key("ops@example.com", "test", apikeys.shown_prefix(key),
                                 apikeys.digest(key), int(time.time()))  # fmt: skip
    return key


async def get(zeef: Zeef, key: str | None, path: str, **params: Any) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return await zeef.client.get(f"/api/v1/stats/{path}", params=params, headers=headers)


async def test_aggregate_timeseries_and_breakdown_shapes(shop: Zeef) -> None:
    key = await new_key(shop)
    got = await get(shop, key, "aggregate", **DAY, metrics="visitors,pageviews,bounce_rate")
    assert got.status_code == 200, got.text
    assert got.json() == {"results": {"visitors": {"value": 3}, "pageviews": {"value": 5},
                                      "bounce_rate": {"value": 75}}}  # fmt: skip
    compared = await get(shop, key, "aggregate", **DAY, metrics="visitors",
                         compare="previous_period")  # fmt: skip
    assert compared.json()["results"]["visitors"] == {
        "value": 3, "comparison_value": 0, "change": 100}  # fmt: skip
    series = (await get(shop, key, "timeseries", site_id="example.com", period="7d")).json()
    assert series["results"][-1] == {"date": "2026-03-14", "visitors": 3}
    assert len(series["results"]) == 7
    pages = await get(shop, key, "breakdown", **DAY, property="event:page",
                      metrics="visitors,pageviews", limit="2")  # fmt: skip
    assert pages.json()["results"] == [
        {"page": "/", "visitors": 2, "pageviews": 2},
        {"page": "/pricing", "visitors": 2, "pageviews": 2},
    ]
    second = await get(shop, key, "breakdown", **DAY, property="event:page", limit="2", page="2")
    assert second.json() == {"results": [{"page": "/blog/a", "visitors": 1}]}
    filtered = await get(shop, key, "aggregate", **DAY, metrics="visitors",
                         filters="visit:browser==Firefox|Chrome;event:page==/pricing")  # fmt: skip
    assert filtered.json()["results"]["visitors"]["value"] == 2
    custom = await get(shop, key, "aggregate", site_id="example.com", period="custom",
                       date="2026-03-01,2026-03-31", metrics="visits")  # fmt: skip
    assert custom.json()["results"]["visits"]["value"] == 4
    realtime = await get(shop, key, "realtime/visitors", site_id="example.com")
    assert realtime.json() == 1  # C's hit at 11:00 is the only one in the last 5 minutes


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metrics": "visitors,planets"}, "unknown metric"),
        ({"filters": "visit:planet==Mars"}, "unknown dimension"),
        ({"period": "fortnight"}, "period must be one of"),
        ({"period": "custom"}, "date=YYYY-MM-DD,YYYY-MM-DD"),
        ({"date": "yesterday"}, "is not a date"),
        ({"interval": "decade"}, "interval must be"),
    ],
    ids=["metric", "filter", "period", "custom-without-dates", "date", "interval"],
)
async def test_bad_parameters_get_a_400_that_says_why(
    shop: Zeef,
    params: dict[str, str],
    message: str,
) -> None:
    key = await new_key(shop)
    got = await get(shop, key, "aggregate", site_id="example.com", **params)
    assert got.status_code == 400 and message in got.json()["error"]


async def test_breakdown_limits(shop: Zeef) -> None:
    key = await new_key(shop)
    for limit in ("0", "1001", "ten"):
        got = await get(shop, key, "breakdown", **DAY, property="event:page", limit=limit)
        assert got.status_code == 400
    missing = await get(shop, key, "breakdown", **DAY)
    assert missing.status_code == 400 and "property" in missing.json()["error"]


async def test_keys_unknown_revoked_and_missing_are_refused(shop: Zeef) -> None:
    key = await new_key(shop)
    assert (await get(shop, None, "aggregate", **DAY)).status_code == 401
    assert (await get(shop, "zeef_nothing", "aggregate", **DAY)).status_code == 401
    no_site = await get(shop, key, "aggregate", site_id="other.example")
    assert no_site.status_code == 404 and "error" in no_site.json()
    storage = shop.app.state.storage
    (listed,) = await storage.api_keys("ops@example.com")
    assert await storage.revoke_api_key(listed["id"], int(time.time()))
    revoked = await get(shop, key, "aggregate", **DAY)
    assert revoked.status_code == 401
    assert revoked.json() == (await get(shop, "zeef_nothing", "aggregate", **DAY)).json()


async def test_rate_limit_per_key(settings: Settings, clock: Clock) -> None:
    async for zeef in start(replace(settings, api_rate_limit=3), clock):
        await zeef.add_site("example.com")
        key, other = await new_key(zeef), await new_key(zeef)
        for _ in range(3):
            assert (await get(zeef, key, "aggregate", **DAY)).status_code == 200
        over = await get(zeef, key, "aggregate", **DAY)
        assert over.status_code == 429 and 0 < int(over.headers["retry-after"]) <= 3600
        assert (await get(zeef, other, "aggregate", **DAY)).status_code == 200


def test_cli_keys_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    assert cli(tmp_path, "site", "add", "example.com").returncode == 0
    made = cli(tmp_path, "apikey", "create", "ops@example.com", "--label", "grafana")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("zeef_") and len(key) > 40
    listing = cli(tmp_path, "apikey", "list", "ops@example.com", "--json")
    (row,) = __import__("json").loads(listing.stdout)
    assert row["label"] == "grafana" and key.startswith(row["prefix"]) and key not in listing.stdout
    database = (tmp_path / "zeef.sqlite3").read_bytes()
    wal = tmp_path / "zeef.sqlite3-wal"
    assert key.encode() not in database + (wal.read_bytes() if wal.exists() else b"")
    assert cli(tmp_path, "apikey", "revoke", str(row["id"])).returncode == 0
    again = cli(tmp_path, "apikey", "revoke", str(row["id"]))
    assert again.returncode == 1 and "no live API key" in again.stderr

"""GeoIP from MaxMind's test databases: country, region, city; the address itself not kept."""

from __future__ import annotations

import pytest

from .conftest import FIREFOX, Zeef, pageview


@pytest.mark.parametrize(
    ("ip", "country", "region", "city"),
    [
        ("81.2.69.142", "GB", "GB-ENG", "London"),
        ("2001:218::1", "JP", None, None),
        ("127.0.0.1", None, None, None),
    ],
    ids=["london", "japan-v6", "not-in-db"],
)
async def test_location_from_geoip(
    zeef_geo: Zeef, ip: str, country: str | None, region: str | None, city: str | None
) -> None:
    assert (await zeef_geo.send(pageview(), ip=ip)).status_code == 202
    await zeef_geo.flush()
    [row] = zeef_geo.rows()
    assert (row["country"], row["region"], row["city"]) == (country, region, city)


async def test_every_column_of_a_fully_filled_event(zeef_geo: Zeef) -> None:
    # The collector builds the stored event positionally: each value must land in its column.
    body = {
        "n": "Signup",
        "u": "https://shop.example.com/join?utm_source=news&utm_medium=mail&utm_campaign=winter"
        "&utm_term=boots&utm_content=banner",
        "d": "example.com",
        "r": "https://news.ycombinator.com/item?id=1",
        "p": {"plan": "pro"},
        "$": {"amount": "10.50", "currency": "eur"},
        "i": False,
        "sd": 40,
        "e": 1500,
        "c": "consented-visitor-id-0123",
    }
    assert (await zeef_geo.send(body, ip="81.2.69.142", ua=FIREFOX)).status_code == 202
    await zeef_geo.flush()
    [row] = zeef_geo.rows()
    assert isinstance(row.pop("visitor_id"), int)
    ts = row.pop("ts")
    assert row.pop("site_id") == 1 and isinstance(ts, int)
    assert row == {
        "name": "Signup",
        "hostname": "shop.example.com",
        "path": "/join",
        "referrer_host": "news.ycombinator.com",
        "referrer_path": "/item",
        "utm_source": "news",
        "utm_medium": "mail",
        "utm_campaign": "winter",
        "utm_term": "boots",
        "utm_content": "banner",
        "browser": "Firefox",
        "browser_version": "133.0",
        "os": "Linux",
        "os_version": "",
        "device": "desktop",
        "country": "GB",
        "region": "GB-ENG",
        "city": "London",
        "props": '{"plan": "pro"}',
        "revenue_amount": "10.500000",
        "revenue_currency": "EUR",
        "interactive": 0,
        "scroll_depth": 40,
        "engaged_ms": 1500,
        "consented": 1,
        "carried": 0,
        "visit_id": 1,
    }
    # Its visit takes the first hit's source, campaign, place and device, each in its column.
    [visit] = zeef_geo.rows("SELECT * FROM visits")
    assert isinstance(visit.pop("visitor_id"), int) and isinstance(visit.pop("started"), int)
    assert visit.pop("ended") == ts
    # The first hit's fields, each in its own column of the visit (their values are distinct).
    first_hit = (
        "hostname", "referrer_host", "referrer_path", "utm_source", "utm_medium", "utm_campaign",
        "utm_term", "utm_content", "browser", "browser_version", "os", "os_version", "device",
        "country", "region", "city", "consented",
    )  # fmt: skip
    assert visit == {
        **{name: row[name] for name in first_hit},
        "id": 1,
        "site_id": 1,
        "open": 1,
        "entry_page": "/join",
        "exit_page": "/join",
        "pageviews": 0,
        "events": 1,
        "interactions": 0,
        "engaged_ms": 0,
        "previous_started": None,
        "scroll_depths": None,  # scroll depth comes from engagement hits only
        "scroll_sum": 0,
        "scroll_pages": 0,
    }

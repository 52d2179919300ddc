"""GeoIP from MaxMind's test databases: country, region, city; the address itself not kept."""

from __future__ import annotations

import pytest

from .conftest import Zeef, pageview


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

"""The Locations panel's world map: the outlines' data (codes, path syntax, size) and the
shading, then the dashboard drawing it over HTTP, a visitor's country linking to its filter."""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from babel import Locale

from server.app import create_app
from server.config import Settings
from server.web.worldmap import world_map

from . import corpora
from .conftest import CHROME, Zeef, pageview
from .live import _free_port
from .test_accessibility import AXE, violations
from .test_dashboard import DAY, operator
from .test_dashboard_browser import SITE, logged_in, only_ours, seed

WORLD = Path(__file__).parent.parent / "dashboard" / "static" / "world.svg"
# Only numbers and the commands tools/worldmap.mjs writes: nothing in a `d` can close the
# attribute or start markup, whatever the data file holds.
PATH_DATA = re.compile(r"(m[-.\d ]+l[-.\d ]+z)+")


def test_the_sprite_is_small_and_every_code_a_country() -> None:
    assert WORLD.stat().st_size < 120_000
    svg = WORLD.read_text("utf-8")
    assert "public domain" in svg and "world-atlas" in svg
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000 436">')
    # One group the page draws whole, of one path per country and nothing else.
    body = svg.split('<g id="world" fill-rule="evenodd">\n', 1)[1].split("\n</g>\n</svg>\n")
    assert body[1] == ""
    lines = body[0].split("\n")
    countries = dict(re.fullmatch(r'<path id="([A-Z]{2})" d="([^"]*)"/>', line).groups()
                     for line in lines)  # type: ignore[union-attr]  # fmt: skip
    assert len(countries) == len(lines) >= 170
    # CLDR (through Babel) knows every ISO 3166-1 alpha-2 code, and XK for Kosovo.
    territories = Locale("en").territories
    for code, d in countries.items():
        assert code in territories, code
        assert PATH_DATA.fullmatch(d), code
    assert {"NL", "DE", "US", "BR", "AU", "JP", "GB", "CY", "SO", "XK"} <= countries.keys()
    assert "AQ" not in countries  # Antarctica: no visitors, a fifth of the drawing


def test_shades_grow_with_visitors_and_a_small_country_shows() -> None:
    drawn = world_map({"US": 10_000, "DE": 100, "NL": 1, "ZZ": 5})
    shade = {country.code: country.shade for country in drawn.countries}
    assert shade["US"] == "shade5"
    assert shade["DE"] == "shade3"  # 1 + 4 * log(101) / log(10,001), rounded down
    assert shade["NL"] == "shade1"  # one visitor in 10,000 is still on the map
    assert "FR" not in shade  # no visitors: the sprite's grey world shows it
    assert "ZZ" not in shade  # a code with no outline is only in the table
    assert drawn.view_box.startswith("0 0 1000 ")
    assert {c.code: c.visitors for c in drawn.countries}["DE"] == 100
    assert world_map({}).countries == ()
    assert {c.code: c.shade for c in world_map({"NL": 1}).countries}["NL"] == "shade5"


async def test_the_dashboard_maps_a_visitors_country_linking_to_its_filter(
    zeef_geo: Zeef,
) -> None:
    # MaxMind's test database places this address in London, and this one in Japan.
    for ip in ("81.2.69.142", "81.2.69.143", "2001:218::1"):
        assert (await zeef_geo.send(pageview(), ip=ip)).status_code == 202
    await zeef_geo.flush()
    async with aclosing(await operator(zeef_geo)) as browser:
        page = (await browser.get(f"/sites/example.com?{DAY}")).text
        svg = page.split('<svg class="world-map"', 1)[1].split("</svg>", 1)[0]
        assert svg.startswith(' viewBox="0 0 1000 436" aria-hidden="true" focusable="false">')
        sprite = re.search(r'<use href="(/static/world.svg\?v=[0-9a-f]+)#world" class="shade0"/>',
                           svg)  # fmt: skip
        assert sprite, svg[:300]
        links = {
            html.unescape(title): (html.unescape(href), shade)
            for href, code, shade, title in re.findall(
                r'<a href="([^"]+)" tabindex="-1"><use href="/static/world.svg\?v=[0-9a-f]+#'
                r'([A-Z]{2})" class="(shade\d)"><title>([^<]+)</title></use></a>',
                svg,
            )
            if title.startswith(code)
        }
        assert links == {
            "GB: 2 visitors": ("?period=day&date=2026-03-14&filters=visit%3Acountry%3D%3DGB",
                               "shade5"),
            "JP: 1 visitor": ("?period=day&date=2026-03-14&filters=visit%3Acountry%3D%3DJP",
                              "shade3"),  # log(1 + 1) / log(1 + 2) of the way
        }  # fmt: skip
        assert "FR" not in svg and "<path" not in svg  # the outlines come from the sprite
        # Which Zeef serves, cached for a year under its versioned URL.
        served = await browser.get(sprite.group(1))
        assert served.status_code == 200 and served.headers["content-type"] == "image/svg+xml"
        assert "immutable" in served.headers["cache-control"] and '<path id="GB"' in served.text
        # The table's row links to the same filter.
        assert 'href="?period=day&amp;date=2026-03-14&amp;filters=visit%3Acountry%3D%3DGB"' in page

        # Another tab of the panel, or no visitors in the period: no map.
        regions = (await browser.get(f"/sites/example.com?{DAY}&p2=1")).text
        assert "world-map" not in regions
        empty = (await browser.get("/sites/example.com?period=day&date=2026-03-01")).text
        assert "world-map" not in empty


# Addresses MaxMind's test database places: Britain, Sweden, the US, Bhutan, the Philippines,
# China, Japan. Last in the module: the browser fixture's event loop outlives the test.
PLACED = ["81.2.69.142"] * 9 + ["89.160.20.112"] * 4 + ["216.160.83.56"] * 3 + [
    "67.43.156.1", "202.196.224.1", "175.16.199.1", "2001:218::1"]  # fmt: skip


def test_the_map_in_chromium_light_and_dark(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    database = tmp_path / "zeef.sqlite3"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed(database)).result()
    settings = Settings(database=database, flush_interval=0.1,
                        geoip_db=corpora.geoip_test_data() / "GeoIP2-City-Test.mmdb")  # fmt: skip
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=_free_port("127.0.0.1"),
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        url = f"http://127.0.0.1:{config.port}"
        with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
            for n, ip in enumerate(PLACED):
                event = {"n": "pageview", "u": f"https://{SITE}/", "d": SITE, "r": None}
                headers = {"content-type": "text/plain", "user-agent": f"{CHROME} {n}",
                           "x-forwarded-for": ip}  # fmt: skip
                assert http.post("/api/event", content=json.dumps(event), headers=headers)
        time.sleep(0.5)  # the buffer's flush
        for scheme in ("light", "dark"):
            context, page, seen = logged_in(browser, url, color_scheme=scheme)
            page.goto(f"{url}/sites/{SITE}")
            world = page.locator("svg.world-map")
            assert world.is_visible()
            shaded = world.locator("a use")
            assert shaded.count() == 7
            fills = {page.evaluate("p => getComputedStyle(p).fill", p.element_handle())
                     for p in (world.locator("use.shade0").first, shaded.first)}  # fmt: skip
            assert len(fills) == 2, fills  # a country with visitors stands out
            world.screenshot(path=str(screenshots / f"worldmap-{scheme}.png"))
            page.locator("section.panel", has=world).screenshot(
                path=str(screenshots / f"worldmap-panel-{scheme}.png")
            )
            only_ours(url, seen)  # nothing from elsewhere, and no CSP report
            context.close()
            # axe-core finds no serious WCAG 2.1 A/AA violation (contrast, the links in an img).
            context, page, _seen = logged_in(browser, url, color_scheme=scheme, bypass_csp=True)
            page.goto(f"{url}/sites/{SITE}")
            assert AXE.is_file(), "run `npm ci`: axe-core comes from package.json"
            assert violations(page) == []
            context.close()
        # A country's link filters the dashboard to it.
        context, world_link, _seen = logged_in(browser, url)
        world_link.goto(f"{url}/sites/{SITE}")
        world_link.locator("svg.world-map a").first.click()
        world_link.wait_for_url("**filters=visit%3Acountry%3D%3D*")
        assert world_link.locator("svg.world-map a use").count() == 1
        context.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)

"""The account's theme in real Chromium against the real app: Dark chosen under a light system
and Light under a dark one each beat the device's setting, on the page itself, its chart and
its world map, with the form controls' color-scheme; the forced-dark dashboard passes axe-core.
Screenshots for a person to judge: theme-*.png."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings

from . import corpora
from .conftest import CHROME, served
from .test_accessibility import AXE, violations
from .test_dashboard_browser import SITE, logged_in, only_ours, seed, traffic
from .test_worldmap import PLACED

DASHBOARD = f"/sites/{SITE}?period=day"
# zeef.css's --bg, --border and --accent, light and dark.
BACKGROUND = {"light": "rgb(245, 246, 248)", "dark": "rgb(20, 23, 28)"}
NO_VISITORS = {"light": "rgb(215, 219, 225)", "dark": "rgb(47, 53, 63)"}
ACCENT = {"light": "rgb(15, 107, 99)", "dark": "rgb(79, 209, 192)"}


@pytest.fixture(autouse=True)
def no_connection_left_open() -> Iterator[None]:
    """The module's live server keeps its readers across tests: `live` checks them at its end."""
    yield


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """tests/test_dashboard_browser.py's server and visitors, with GeoIP, so the world map
    is drawn too."""
    database = tmp_path_factory.mktemp("theme") / "zeef.sqlite3"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed(database)).result()
    geoip = corpora.geoip_test_data() / "GeoIP2-City-Test.mmdb"
    settings = Settings(database=database, flush_interval=0.1, geoip_db=geoip)
    with served(create_app(settings)) as url:
        traffic(url)
        with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
            for n, ip in enumerate(PLACED):
                event = {"n": "pageview", "u": f"https://{SITE}/", "d": SITE, "r": None}
                headers = {"content-type": "text/plain", "user-agent": f"{CHROME} {n}",
                           "x-forwarded-for": ip}  # fmt: skip
                assert http.post(
                    "/api/event", content=json.dumps(event), headers=headers
                ).is_success
        time.sleep(0.5)  # the buffer's flush
        yield url


def choose(page: Any, url: str, theme: str) -> None:
    """Pick the theme on the account page, as a person does, and save it."""
    page.goto(f"{url}/account")
    page.check(f"#theme-{theme}")
    page.click(f"form:has(#theme-{theme}) button[type=submit]")
    page.wait_for_url(f"{url}/account?done=account")
    assert page.is_checked(f"#theme-{theme}")


def colours(page: Any) -> dict[str, str]:
    """What the dashboard is painted with: its background, its color-scheme (form controls
    and scrollbars follow it), a country without visitors, the chart's line."""
    return dict(
        page.evaluate(
            """() => {
                const style = (selector) => getComputedStyle(document.querySelector(selector));
                return {
                    background: style("body").backgroundColor,
                    scheme: style("html").colorScheme,
                    control: style("select, input:not([type=hidden])").colorScheme,
                    no_visitors: style("svg.world-map use.shade0").fill,
                    busiest: style("svg.world-map use.shade5").fill,
                    line: style(".chart-line").stroke,
                };
            }"""
        )
    )


def painted(theme: str, forced: bool = True) -> dict[str, str]:
    """The colours of `theme`; not `forced`, the device picked it ("light dark" lets it)."""
    scheme = theme if forced else "light dark"
    return {
        "background": BACKGROUND[theme],
        "scheme": scheme,
        "control": scheme,
        "no_visitors": NO_VISITORS[theme],
        "busiest": ACCENT[theme],
        "line": ACCENT[theme],
    }


def test_dark_chosen_under_a_light_system(browser: Any, live: str, screenshots: Path) -> None:
    context, page, seen = logged_in(browser, live, color_scheme="light", bypass_csp=True)
    page.goto(live + DASHBOARD)
    assert colours(page) == painted("light", forced=False)  # System: the device's
    choose(page, live, "dark")
    page.screenshot(path=str(screenshots / "theme-account-dark.png"), full_page=True)
    page.goto(live + DASHBOARD)
    assert page.locator("html[data-theme=dark]").count() == 1
    assert colours(page) == painted("dark")
    page.screenshot(path=str(screenshots / "theme-dashboard-dark.png"), full_page=True)
    # No serious WCAG 2.1 A/AA violation, contrast included, in colours the system did not pick.
    assert AXE.is_file(), "run `npm ci`: axe-core comes from package.json"
    assert violations(page) == []
    choose(page, live, "system")
    page.goto(live + DASHBOARD)
    assert colours(page) == painted("light", forced=False)
    only_ours(live, seen)
    context.close()


def test_light_chosen_under_a_dark_system(browser: Any, live: str, screenshots: Path) -> None:
    context, page, seen = logged_in(browser, live, color_scheme="dark")
    page.goto(live + DASHBOARD)
    assert colours(page) == painted("dark", forced=False)  # System: the device's
    choose(page, live, "light")
    page.screenshot(path=str(screenshots / "theme-account-light.png"), full_page=True)
    page.goto(live + DASHBOARD)
    assert page.locator("html[data-theme=light]").count() == 1
    assert colours(page) == painted("light")
    page.screenshot(path=str(screenshots / "theme-dashboard-light.png"), full_page=True)
    choose(page, live, "system")
    page.goto(live + DASHBOARD)
    assert colours(page) == painted("dark", forced=False)
    only_ours(live, seen)  # nothing from elsewhere, and no CSP report
    context.close()

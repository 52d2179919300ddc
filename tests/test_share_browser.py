"""A share link in real Chromium, logged out (issue 18): the token leaves the address bar, the
page shows the share's sections only, filters, downloads its CSV, and nothing on it leads to
the admin pages, another site or a hidden section; embedded in another origin's frame, dark."""

from __future__ import annotations

import asyncio
import http.server
import io
import ipaddress
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from server.accounts import audit
from server.app import create_app
from server.config import Settings
from server.keys import load_keys
from server.sharing import shares
from server.storage import open_storage

from .conftest import served
from .corpora import geoip_test_data
from .live import _free_port
from .test_dashboard_browser import SITE, download, only_ours, seed, traffic, wide


@pytest.fixture(autouse=True)
def no_connection_left_open() -> Iterator[None]:
    """The module's live server keeps its readers across tests: `linked` checks them."""
    yield


async def make_shares(database: Path, origin: str) -> dict[str, str]:
    """Two shares of the site: sections overview, pages, sources (CSV allowed) and one that
    another origin may frame; their tokens."""
    storage = open_storage(database)
    await storage.migrate()
    try:
        secret = (await load_keys(storage, Settings(database=database))).secret
        board = await shares.create(storage, audit.CLI, SITE, label="Board",
                                    shown=["overview", "pages", "sources"])  # fmt: skip
        framed = await shares.create(storage, audit.CLI, SITE, label="Client site",
                                     embed=[origin])  # fmt: skip
        return {"board": shares.token(secret, board), "framed": shares.token(secret, framed),
                "board_id": str(board.id)}  # fmt: skip
    finally:
        await storage.close()


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    database = tmp_path_factory.mktemp("share") / "zeef.sqlite3"
    port = _free_port("127.0.0.1")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed(database)).result()
        # The port of a client's site that may frame one of the shares (see the last test).
        client_port = _free_port("127.0.0.1")
        client = f"http://localhost:{client_port}"
        tokens = pool.submit(asyncio.run, make_shares(database, client)).result()
        tokens["client_port"] = str(client_port)
    settings = Settings(database=database, flush_interval=0.1,
                        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
                        geoip_db=geoip_test_data() / "GeoIP2-City-Test.mmdb")  # fmt: skip
    with served(create_app(settings), port=port) as url:
        traffic(url)
        time.sleep(0.5)  # the buffer's flush
        yield url, tokens


def watched(browser: Any, **options: Any) -> tuple[Any, Any, list[str], list[str]]:
    options.setdefault("viewport", {"width": 1280, "height": 900})
    context = browser.new_context(locale="en-GB", accept_downloads=True, **options)
    page = context.new_page()
    seen: list[str] = []
    referers: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.on("request", lambda request: referers.append(request.headers.get("referer", "")))
    page.on("console", lambda line: seen.append(f"console {line.type}: {line.text}"))
    return context, page, seen, referers


def test_a_share_link_logged_out(
    browser: Any, linked: tuple[str, dict[str, str]], screenshots: Path
) -> None:
    url, tokens = linked
    token, share_id = tokens["board"], tokens["board_id"]
    context, page, seen, referers = watched(browser)
    page.goto(f"{url}/share/{token}")
    page.wait_for_url(f"{url}/shared/{share_id}")
    assert token not in page.url
    page.click("nav.dash-periods >> text=Today")
    page.wait_for_url("**period=day**")
    page.screenshot(path=str(screenshots / "share.png"), full_page=True)
    text = page.inner_text("body")
    # The share's sections, and nothing else: no admin link, no other site, no hidden panel.
    assert "Top pages" in text and "Top sources" in text and "unique visitors" in text.lower()
    for hidden in ("Locations", "Devices", "Log out", "Settings", "shop.acme.example"):
        assert hidden not in text, hidden
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    outside = [h for h in hrefs if not h.startswith(("?", f"/shared/{share_id}", "#"))]
    assert outside == [], outside
    # Filter by a source, then download the ZIP: the share's files only.
    page.click("a[title='Filter by Google']")
    page.wait_for_url("**filters=visit%3Asource%3D%3DGoogle**")
    assert "Source is Google" in page.inner_text(".chips")
    name, content = download(page, lambda: page.click(".dash-head a[download]"))
    assert name.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        files = archive.namelist()
        sources = archive.read("sources.csv").decode().splitlines()
    assert "countries.csv" not in files and "browsers.csv" not in files and "visitors.csv" in files
    assert [line.split(",")[0] for line in sources[1:]] == ["Google"]
    # Nothing the page asked for carried the token, as address or as Referer.
    assert not [s for s in seen[1:] if token in s] and not [r for r in referers if token in r]
    only_ours(url, seen)
    context.close()

    # At a phone's width it still reads, and in dark.
    context, page, seen, _referers = watched(
        browser, viewport={"width": 390, "height": 800}, color_scheme="dark"
    )
    page.goto(f"{url}/share/{token}")
    page.wait_for_url(f"{url}/shared/{share_id}")
    page.screenshot(path=str(screenshots / "share-phone-dark.png"), full_page=True)
    assert not wide(page), "the share is wider than a phone"
    context.close()


def test_embedded_in_a_frame_of_an_allowed_origin(
    browser: Any, linked: tuple[str, dict[str, str]], screenshots: Path
) -> None:
    url, tokens = linked
    context, page, _seen, _referers = watched(browser)
    # A page of the client's site framing the share: served from another port under another
    # host name (localhost is not 127.0.0.1), so another site, and the share's cookie a third
    # party's (SameSite=None, Partitioned). Served for real, not by the browser: Chromium
    # lets only a page on the local network frame a local address.
    framing = (
        f'<!doctype html><title>Client</title><iframe id="stats" title="Statistics"'
        f' src="{url}/share/{tokens["framed"]}?embed=true&theme=dark" width="1000"'
        ' height="700"></iframe>'
        # A share that names no origin: the browser refuses to show it in the frame.
        f'<iframe id="board" title="Board" src="{url}/share/{tokens["board"]}?embed=true"'
        ' width="400" height="200"></iframe>'
    ).encode()

    class Client(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(framing)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(tokens["client_port"])), Client)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://localhost:{server.server_port}/")
        frame = page.frame_locator("#stats")
        frame.locator(".metrics").wait_for(timeout=10_000)
        assert frame.locator("header.site-header").count() == 0
        page.screenshot(path=str(screenshots / "share-embedded.png"))
        refused = [f for f in page.frames if f.name != "" or f != page.main_frame]
        assert page.frame_locator("#board").locator(".metrics").count() == 0
        assert any(f.url.startswith("chrome-error://") for f in refused), [f.url for f in refused]
    finally:
        server.shutdown()
        server.server_close()
        context.close()

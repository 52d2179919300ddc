"""The privacy statement in real Chromium: read in Dutch on a phone and a desktop, printed, and
framed by the site it describes; nothing is fetched from any other host."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from server.accounts import audit
from server.app import create_app
from server.config import Settings
from server.consent import ConsentConfig, DeclaredCookie
from server.sharing import shares
from server.sites import add_site
from server.storage import open_storage

from .conftest import served
from .live import _free_port
from .test_dashboard_browser import only_ours, wide

SITE = "bakkerij.example"


@pytest.fixture(autouse=True)
def no_connection_left_open() -> Iterator[None]:
    """The module's live server keeps its readers across tests; `served` checks them at the end."""
    yield


async def seed(database: Path) -> None:
    storage = open_storage(database)
    await storage.migrate()
    try:
        site = await add_site(storage, SITE)
        marketing = DeclaredCookie(
            "_fbp", "Meet advertenties van Facebook", "3 maanden", "marketing"
        )
        config = ConsentConfig(
            categories=("necessary", "analytics", "marketing"),
            controller="Bakkerij Voorbeeld B.V., privacy@bakkerij.example",
            policy_url="https://bakkerij.example/privacy",
            cookies=(marketing,),
        )
        await storage.set_consent_config(site.id, config.checked().to_json(), 0)
        await shares.create(storage, audit.CLI, SITE, label="Accountant")
    finally:
        await storage.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("privacy") / "zeef.sqlite3"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed(database)).result()
    port = _free_port("127.0.0.1")
    settings = Settings(
        database=database,
        public_url=f"http://127.0.0.1:{port}",
        ip_mask_bytes=2,
        data_location="onze eigen servers in Nederland",
    )
    with served(create_app(settings), port=port) as url:
        yield url


def watched(browser: Any, **options: Any) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(**options)
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.on("console", lambda line: seen.append(f"console {line.type}: {line.text}"))
    return context, page, seen


def test_the_statement_reads_well_in_dutch(browser: Any, live: str, screenshots: Path) -> None:
    context, page, seen = watched(browser, locale="nl-NL", viewport={"width": 1280, "height": 900})
    try:
        # No ?lang=: the browser's Dutch is enough.
        response = page.goto(f"{live}/privacy/{SITE}")
        assert response is not None and response.status == 200
        page.screenshot(path=str(screenshots / "privacy-nl.png"), full_page=True)
        assert page.inner_text("h1") == f"Bezoekstatistieken en cookies op {SITE}"
        text = page.inner_text("main")
        assert "worden eerst de laatste 2 van de 4 bytes verwijderd" in text
        assert "Een volledig IP-adres wordt nooit opgeslagen." in text
        assert "De statistieken worden opgeslagen op: onze eigen servers in Nederland." in text
        assert "gedeeld via 1 actieve deellink:" in text and "Accountant" not in text
        assert "Bakkerij Voorbeeld B.V., privacy@bakkerij.example" in text
        rows = page.eval_on_selector_all(
            ".cookie-table tbody tr",
            "rows => rows.map(r => Array.from(r.cells, c => c.innerText.trim()))",
        )
        assert [row[0] for row in rows] == ["zeef_consent", "zeef_id", "_fbp"]
        assert rows[1][3] == "Statistieken" and rows[2][2] == "3 maanden"
        # The self-service page (server/web/my_data.py, built beside this one), at the public URL.
        my_data = page.get_attribute("a[href$='/my-data']", "href")
        assert my_data == f"{live}/privacy/{SITE}/my-data"
        assert not wide(page)
        only_ours(live, seen)
        # On paper: no header, no frame round the text, the policy's address written out.
        page.emulate_media(media="print")
        assert page.locator("header.site-header").is_hidden()
        page.screenshot(path=str(screenshots / "privacy-nl-print.png"), full_page=True)
    finally:
        context.close()


def test_on_a_phone_in_english(browser: Any, live: str, screenshots: Path) -> None:
    context, page, seen = watched(
        browser, locale="nl-NL", viewport={"width": 375, "height": 740}, is_mobile=True
    )
    try:
        page.goto(f"{live}/privacy/{SITE}?lang=en")  # ?lang= wins over the browser's Dutch
        assert page.inner_text("h1") == f"Visit statistics and cookies on {SITE}"
        page.screenshot(path=str(screenshots / "privacy-en-phone.png"), full_page=True)
        page.locator("#cookies").screenshot(path=str(screenshots / "privacy-en-phone-cookies.png"))
        assert not wide(page)  # the cookie table scrolls inside its box, the page does not
        only_ours(live, seen)
    finally:
        context.close()


def test_the_site_can_frame_it(browser: Any, live: str, screenshots: Path) -> None:
    port = _free_port("127.0.0.1")
    client = f"http://localhost:{port}"
    framing = (
        "<!doctype html><title>Bakkerij</title><h1>Privacy</h1>"
        f'<iframe id="statement" title="Privacy" src="{live}/privacy/{SITE}?embed=true&lang=es"'
        ' width="900" height="700"></iframe>'
    ).encode()

    class Client(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(framing)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Client)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context, page, seen = watched(browser, viewport={"width": 1000, "height": 800})
    try:
        page.goto(f"{client}/")
        frame = page.frame_locator("#statement")
        frame.locator("h1").wait_for(timeout=10_000)
        assert frame.locator("h1").inner_text() == f"Estadísticas de visitas y cookies en {SITE}"
        assert frame.locator("header.site-header").count() == 0
        link = frame.locator("a[href$='/my-data']")
        assert link.get_attribute("target") == "_blank"
        page.screenshot(path=str(screenshots / "privacy-embedded.png"))
        only_ours(live, [s for s in seen if not s.startswith(client)])
    finally:
        context.close()
        server.shutdown()
        server.server_close()

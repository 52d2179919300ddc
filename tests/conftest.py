"""Fixtures: a fresh migrated SQLite file per test, the app over httpx's ASGI transport, a clock."""

from __future__ import annotations

import asyncio
import ipaddress
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from server.app import create_app
from server.config import Settings
from server.sites import add_site

from . import corpora
from .live import _free_port

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


class Clock:
    """A settable clock: tests move time instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 14, 10, 0, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database=tmp_path / "zeef.sqlite3",
        # The ASGI transport's peer; X-Forwarded-For from it is believed, as from a proxy.
        trusted_proxies=(ipaddress.ip_network("10.0.0.1/32"),),
        flush_interval=3600,  # tests flush by hand
    )


class Zeef:
    """The app under test with the handles tests need: HTTP client, flush, rows."""

    def __init__(self, app: Starlette, client: httpx.AsyncClient, settings: Settings) -> None:
        self.app = app
        self.client = client
        self.settings = settings

    async def add_site(self, domain: str, timezone: str = "UTC") -> None:
        # No reload: the first event for it waits for the registry's next check, as the
        # first event after `zeef site add` does in production.
        await add_site(self.app.state.storage, domain, timezone)

    async def settled(self, timeout: float = 1.5) -> float:
        """Wait until the running app works with the settings last written, as a user waits
        after `zeef site set`; the seconds that took. No reload: the app must get there."""
        wanted = await self.app.state.storage.settings_version()
        registry = self.app.state.collector.sites
        began = time.monotonic()
        while registry.version is None or registry.version < wanted:
            if time.monotonic() - began > timeout:
                raise AssertionError(f"settings version {wanted} not in force after {timeout} s")
            await asyncio.sleep(0.01)
        return time.monotonic() - began

    async def send(
        self,
        payload: dict[str, Any] | str | bytes,
        ip: str = "81.2.69.142",
        ua: str = CHROME,
        content_type: str = "text/plain",
    ) -> httpx.Response:
        import json

        body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        return await self.client.post(
            "/api/event",
            content=body,
            headers={"content-type": content_type, "user-agent": ua, "x-forwarded-for": ip},
        )

    async def flush(self) -> int:
        return int(await self.app.state.buffer.flush())

    def rows(self, sql: str = "SELECT * FROM events ORDER BY rowid") -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.settings.database)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(sql)]
        finally:
            conn.close()


async def start(settings: Settings, clock: Clock) -> AsyncIterator[Zeef]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        # The builder's first run sums whatever is there at start: wait for it, or on a loaded
        # machine it may run late, after a test has sent hits, and sum days the test did not
        # expect summed yet (seen in CI).
        await asyncio.wait_for(app.state.rollups.first_build.wait(), 30)
        transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://zeef.test") as client:
            yield Zeef(app, client, settings)


@pytest.fixture
async def zeef(settings: Settings, clock: Clock) -> AsyncIterator[Zeef]:
    async for instance in start(settings, clock):
        await instance.add_site("example.com")
        yield instance


@pytest.fixture
async def zeef_geo(settings: Settings, clock: Clock) -> AsyncIterator[Zeef]:
    data = corpora.geoip_test_data()  # fails, never skips, when it cannot be fetched
    geo = replace(settings, geoip_db=data / "GeoIP2-City-Test.mmdb")
    async for instance in start(geo, clock):
        await instance.add_site("example.com")
        yield instance


def pageview(url: str = "https://example.com/", **extra: Any) -> dict[str, Any]:
    return {"n": "pageview", "u": url, "d": "example.com", "r": None, **extra}


A, B, C = "81.2.69.142", "81.2.69.143", "81.2.69.144"


@pytest.fixture
async def shop(zeef: Zeef, clock: Clock) -> Zeef:
    """Saturday 14 March 2026, UTC. Three visitors, four visits:
    A (Chrome)  10:00 /  10:05 /pricing  10:10 Signup on /pricing   one visit, 600 s
    B (Firefox) 10:00 /pricing, from Google                          a bounce
    C (iPhone)  10:00 /, then 11:00 /blog/a (60 minutes later)       two visits, two bounces
    """
    start = clock.now
    await zeef.send(pageview(), ip=A)
    await zeef.send(pageview("https://example.com/pricing", r="https://www.google.com/"),
                    ip=B, ua=FIREFOX)  # fmt: skip
    await zeef.send(pageview(), ip=C, ua=IPHONE)
    clock.advance(minutes=5)
    await zeef.send(pageview("https://example.com/pricing"), ip=A)
    clock.advance(minutes=5)
    await zeef.send({"n": "Signup", "u": "https://example.com/pricing", "d": "example.com"}, ip=A)
    clock.now = start + timedelta(hours=1)
    await zeef.send(pageview("https://example.com/blog/a"), ip=C, ua=IPHONE)
    await zeef.flush()
    return zeef


# -- browser tests: real Chromium (Debian's package) through Playwright -------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where browser tests save what a person would see: ZEEF_SCREENSHOTS, or a temporary
    directory. Look at them after a change to a page."""
    import os

    named = os.environ.get("ZEEF_SCREENSHOTS")
    if named:
        Path(named).mkdir(parents=True, exist_ok=True)
        return Path(named)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Module-scoped: Playwright's sync API keeps an event loop of its own running while it is
    open, and pytest-asyncio's tests in later modules need the thread to have none."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def fixture_site():  # type: ignore[no-untyped-def]
    from .pages import FixtureSite

    site = FixtureSite().start()
    yield site
    site.stop()


def _database_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


@contextmanager
def served(app: Any, port: int | None = None, **options: Any) -> Iterator[str]:
    """`app` under a real uvicorn in a thread of this process (so a test may patch what it
    reads), on a free loopback port (or `port`): its URL. Stopped at the end, leaving no
    database connection open."""
    before = _database_threads()
    port = port or _free_port("127.0.0.1")
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    assert not thread.is_alive(), "uvicorn did not stop"
    deadline = time.monotonic() + 2
    while (left := _database_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"{len(left)} database connection(s) left open by the live server"


@pytest.fixture(autouse=True)
def no_connection_left_open() -> Iterator[None]:
    """aiosqlite runs each connection on a thread that is not a daemon: one left open keeps
    the interpreter from exiting, and CI waited 90 minutes on a run whose tests all passed.
    Fail the test that leaves one, by name, instead."""
    before = _database_threads()
    yield
    deadline = time.monotonic() + 2
    while (left := _database_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"{len(left)} database connection(s) left open"


def stored_bytes(database: Path) -> bytes:
    """The database file and its WAL as they are on disk, read by another process: closing a
    descriptor of a SQLite file in a process that has it open drops that process's locks
    (sqlite.org/howtocorrupt.html, 2.2), and the app's readers then missed later writes."""
    files = [database, database.with_name(database.name + "-wal")]
    return b"".join(
        subprocess.run(["cat", str(f)], capture_output=True, check=True).stdout
        for f in files
        if f.exists()
    )

"""Acknowledged means stored, across a shutdown: SIGTERM to `zeef serve --workers 2` while
events are in flight loses none that was answered 202 (issue 14).

Real uvicorn processes and real keep-alive connections: uvicorn stops accepting, lets the
requests it has read finish, closes the connections, and only then runs each worker's lifespan
shutdown, whose last flush writes what the buffer holds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from .live import LiveServer

SITE = "example.com"
CONNECTIONS = 8
# SIGTERM goes out once this many events were accepted, with every connection still sending.
BEFORE_SIGTERM = 1500
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


class Sender(threading.Thread):
    """One keep-alive connection sending events back to back until the server goes away."""

    def __init__(self, server: LiveServer, number: int, accepted: threading.Semaphore) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.number = number
        self.accepted_signal = accepted
        self.accepted = 0
        self.other: list[str] = []
        self.terminating = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        with self.server.client(timeout=20.0) as http:
            i = 0
            while True:
                i += 1
                body = {"n": "pageview", "u": f"https://{SITE}/{self.number}/{i}", "d": SITE}
                headers = {
                    "Content-Type": "text/plain",
                    "User-Agent": FIREFOX,
                    "X-Forwarded-For": f"81.2.{self.number}.{i % 250 + 1}",
                }
                try:
                    answer = http.post("/api/event", content=json.dumps(body), headers=headers)
                except httpx.TransportError as exc:
                    # Expected once the server shuts down (a closed connection, a refused
                    # one): that request was not acknowledged, so it is not counted.
                    if not self.terminating.is_set():
                        self.error = exc
                    return
                if answer.status_code == 202 and "x-zeef-drop" not in answer.headers:
                    self.accepted += 1
                    self.accepted_signal.release()
                else:
                    self.other.append(f"{answer.status_code} {answer.headers}")


def stored_events(database: Path) -> int:
    with closing(sqlite3.connect(database)) as db:
        count: int = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    return count


@pytest.mark.parametrize("run", [1, 2, 3])
def test_sigterm_under_load_loses_no_accepted_event(tmp_path: Path, run: int) -> None:
    env = {"ZEEF_TRUSTED_PROXIES": "127.0.0.1", "ZEEF_FLUSH_INTERVAL": "0.5"}
    server = LiveServer(tmp_path, env=env, workers=2, sites=[SITE]).start()
    try:
        accepted = threading.Semaphore(0)
        senders = [Sender(server, n, accepted) for n in range(CONNECTIONS)]
        for sender in senders:
            sender.start()
        for _ in range(BEFORE_SIGTERM):
            assert accepted.acquire(timeout=20), "the server stopped accepting events"
        for sender in senders:
            sender.terminating.set()
    finally:
        # SIGTERM, with every sender still mid-stream.
        server.stop()
    for sender in senders:
        sender.join(timeout=30)
        assert not sender.is_alive()
        assert sender.error is None, sender.error
        assert sender.other == []
    server.check_clean_exit()

    acknowledged = sum(sender.accepted for sender in senders)
    assert acknowledged >= BEFORE_SIGTERM
    assert stored_events(server.database) == acknowledged

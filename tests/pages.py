"""A fixture web site for browser tests, on another origin than Zeef.

Zeef runs on 127.0.0.1; pages are served from `localhost`, so every event the tracker sends is
a cross-origin request, as on a real site. Pages are registered per test with their headers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FixtureSite:
    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, dict[str, str]]] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].split("#", 1)[0]
                page = site.pages.get(path)
                if page is None:
                    # SPA-style fallback: unknown paths get the page registered as "*".
                    page = site.pages.get("*", (b"not found", {}))
                body, headers = page
                self.send_response(200 if path in site.pages or "*" in site.pages else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, path: str, html: str, headers: dict[str, str] | None = None) -> str:
        self.pages[path] = (html.encode(), headers or {})
        return self.origin + (path if path != "*" else "/")

    def start(self) -> FixtureSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def page(body: str = "", head: str = "", title: str = "Fixture") -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>{head}"
        f"</head><body>{body}</body></html>"
    )


def wait_until(tab: Any, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the browser work until `condition` (checked in Python) holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the browser")
        tab.wait_for_timeout(25)

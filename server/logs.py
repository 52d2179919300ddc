"""Logging: Zeef's own access log, which shows truncated client addresses only.

uvicorn's access log prints the full client address, so `zeef serve` turns it off and this
middleware takes its place. The collector logs its own refusals (it bypasses middleware);
accepted and dropped events are counted, not logged: a line per hit would be the busiest thing
the server does.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings
from .privacy import client_label

access_log = logging.getLogger("zeef.access")

SHARE_PREFIX = "/share/"
# Health checks every few seconds would drown everything else.
_QUIET_PATHS = {"/healthz"}
# nginx's "client closed request": the client hung up before its body was complete. It is
# the client's doing, so a refusal in the access log, not an error with a traceback.
CLIENT_GONE = 499


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.settings.access_log:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = _shown(scope["path"])
            if path not in _QUIET_PATHS or status >= 400:
                access_log.info(
                    '%s "%s %s" %d %.1fms',
                    client_label(scope, self.settings),
                    scope["method"],
                    path,  # never the query string: it may carry personal data
                    status,
                    (time.perf_counter() - started) * 1000,
                )


def _shown(path: str) -> str:
    """The path as the log prints it: a share link's token is a password to its statistics,
    so `/share/TOKEN` is logged as `/share/…` (issue 18)."""
    if path.startswith(SHARE_PREFIX):
        return SHARE_PREFIX + "\N{HORIZONTAL ELLIPSIS}"
    return path


async def client_gone(request: Request, exc: Exception) -> Response:
    """Starlette's handler for ClientDisconnect: an answer nobody reads, for the access log."""
    return Response(status_code=CLIENT_GONE)


def logging_config(level: str = "info") -> dict[str, Any]:
    """dictConfig for `zeef serve`: uvicorn's error log kept, its access log silenced."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
        },
        "loggers": {
            "zeef": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }

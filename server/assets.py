"""Static assets served by Zeef itself (never a CDN): the trackers, built into server/static/."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

STATIC = Path(__file__).parent / "static"

# A day fresh, then a week of serving the cached copy while revalidating with the ETag: a new
# tracker reaches every visitor within a day, and a repeat visit costs no request at all.
_CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=604800"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes  # gzip -9, once at start: what the size budgets are measured on
    etag: str
    media_type: str


def load(name: str, media_type: str = "text/javascript; charset=utf-8") -> Asset:
    body = (STATIC / name).read_bytes()
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return Asset(body, gzip.compress(body, 9, mtime=0), etag, media_type)


def serve(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint answering the asset, or 304 when the browser's copy is current."""

    async def endpoint(request: Request) -> Response:
        headers = {
            "cache-control": _CACHE_CONTROL,
            "etag": asset.etag,
            # Sites that isolate themselves (COEP) may still load it.
            "cross-origin-resource-policy": "cross-origin",
            "x-content-type-options": "nosniff",
            "vary": "accept-encoding",
        }
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["content-encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return endpoint

"""The pages' own styles (and scripts, should a page need one), served from dashboard/static/.

Each file is read and hashed once at start. A page links it as `/static/zeef.css?v=<hash>`:
with the current hash the answer may be cached for a year, since a new file gets a new URL;
with any other `v` (or none) only for five minutes. Only files found at start are served, by
name, so no path (`..`, `%2e%2e`, `/etc/passwd`) can reach outside the folder.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

IMMUTABLE = "public, max-age=31536000, immutable"
# Short: a link without the hash (or with last release's) picks up a new file within minutes.
SHORT = "public, max-age=300"

# mimetypes reads the system's tables, which differ between machines; these are fixed.
_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    version: str  # in the URL's `v`: 12 hex digits of the content's hash
    etag: str
    media_type: str


class StaticFiles:
    """The files under one folder, by their path relative to it (`zeef.css`, `img/logo.svg`)."""

    def __init__(self, directory: Path) -> None:
        self.files: dict[str, StaticFile] = {}
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                body = path.read_bytes()
                digest = hashlib.blake2b(body, digest_size=16).hexdigest()
                media_type = _TYPES.get(path.suffix.lower()) or (
                    mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                )
                name = path.relative_to(directory).as_posix()
                self.files[name] = StaticFile(body, digest[:12], f'"{digest}"', media_type)

    def url(self, name: str) -> str:
        """`/static/<name>?v=<hash>`; a name that is not there is a bug in a template."""
        try:
            return f"/static/{name}?v={self.files[name].version}"
        except KeyError:
            raise LookupError(f"no static file {name!r}") from None

    async def endpoint(self, request: Request) -> Response:
        found = self.files.get(request.path_params["path"])
        if found is None:
            return PlainTextResponse("Not found", status_code=404)
        fresh = request.query_params.get("v") == found.version
        headers = {
            "cache-control": IMMUTABLE if fresh else SHORT,
            "etag": found.etag,
            "x-content-type-options": "nosniff",
            "cross-origin-resource-policy": "same-origin",
        }
        if found.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

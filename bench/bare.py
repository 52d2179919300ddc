"""Bare Starlette baseline for the ingest benchmark.

One route, ``POST /api/event``, that reads the body and answers an empty 202:
the floor cost of the framework + server stack, so ``bench/ingest.py`` can
tell how much of Zeef's throughput goes to Zeef's own work.

Run alone: ``python bench/bare.py --port 8001``.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def event(request: Request) -> Response:
    """Read the body (Zeef must too, so the baseline pays for it) and accept."""
    await request.body()
    return Response(status_code=202)


app = Starlette(routes=[Route("/api/event", event, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # Same stack as `python -m server serve`: one process, uvloop + httptools
    # (what its loop/http="auto" pick when installed), no access log (a line per
    # request would dominate at these rates), no Server header, and no
    # X-Forwarded-For rewriting by uvicorn (Zeef reads that header itself).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()

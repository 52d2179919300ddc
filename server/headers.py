"""Security headers on every answer: no MIME sniffing, no Referer, and no document powers.

The collector (server/collector.py) bypasses middleware and adds `ALWAYS` to its prebuilt
header lists itself; everything else gets them from `SecurityHeaders`, which wraps the whole
Starlette app so that even a 500 from its error middleware carries them. An answer to a request
that came over HTTPS (`is_https`) also tells the browser to use nothing else for a year.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Network
from .privacy import peer_is_trusted

NOSNIFF = (b"x-content-type-options", b"nosniff")
# No Referer at all: share links will carry their token in the URL, and a dashboard page that
# links out to a referring site must not hand that URL over.
REFERRER_POLICY = (b"referrer-policy", b"no-referrer")
# Zeef serves JSON, JavaScript and CSS, none of them a document: if one is opened as a page it
# may load, run and frame nothing. Browsers ignore a CSP on a script or stylesheet response,
# so sites embedding tracker.js or consent.js are not affected. A route serving HTML sets its
# own policy, which this one does not replace.
CONTENT_SECURITY_POLICY = (
    b"content-security-policy",
    b"default-src 'none'; frame-ancestors 'none'",
)

ALWAYS = [NOSNIFF, REFERRER_POLICY]
EVERY = [*ALWAYS, CONTENT_SECURITY_POLICY]
# A year, the host only: the operator's other subdomains may not serve HTTPS, and are not ours to
# bind (no includeSubDomains, no preload). Browsers ignore it over plain HTTP, where an attacker
# could strip or forge it, so it is not sent there. The collector's answers go without: a
# browser takes it from any answer of the host, and pages and scripts carry it.
STRICT_TRANSPORT_SECURITY = (b"strict-transport-security", b"max-age=31536000")
OVER_HTTPS = [*EVERY, STRICT_TRANSPORT_SECURITY]


def is_https(scope: Scope, trusted_proxies: tuple[Network, ...]) -> bool:
    """Whether the browser's request came over HTTPS: to us (uvicorn did the TLS), or to a
    trusted proxy that says so in X-Forwarded-Proto. Anyone else's X-Forwarded-Proto is ignored,
    as their X-Forwarded-For is (server/privacy.py)."""
    if scope.get("scheme") == "https":
        return True
    if not trusted_proxies:
        return False
    forwarded = None
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-proto":
            forwarded = value
            break
    # The first value is the proto the outermost proxy was reached by, i.e. the browser's.
    if forwarded is None or forwarded.split(b",", 1)[0].strip().lower() != b"https":
        return False
    return peer_is_trusted(scope, trusted_proxies)


class SecurityHeaders:
    """Adds each of `EVERY` (`OVER_HTTPS` over HTTPS) to an HTTP answer that does not already
    set it. `trusted_proxies` are those whose X-Forwarded-Proto is believed."""

    def __init__(self, app: ASGIApp, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = OVER_HTTPS if is_https(scope, self.trusted_proxies) else EVERY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in wanted if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

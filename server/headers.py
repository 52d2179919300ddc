"""Security headers on every answer: no MIME sniffing, no Referer, and no document powers.

The collector (server/collector.py) bypasses middleware and adds `ALWAYS` to its prebuilt
header lists itself; everything else gets them from `SecurityHeaders`, which wraps the whole
Starlette app so that even a 500 from its error middleware carries them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeaders:
    """Adds each of `EVERY` to an HTTP answer that does not already set it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in EVERY if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

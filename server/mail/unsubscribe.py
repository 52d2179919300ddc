"""Unsubscribe links: PUBLIC_URL/unsubscribe/TOKEN, the token signed with the secret key.

One click ends it (RFC 8058): a mail provider POSTs `List-Unsubscribe=One-Click` to the link
with no cookie and no form token, so the signature is the only proof the link came from us.
A token names a report subscription by id, or an address on a site's alerts; it does not
expire, as the link in a mail from last year must still work. Rotating the secret key
(`zeef key rotate secret`) voids the links in mails already sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "zeef.unsubscribe"


@dataclass(frozen=True)
class Target:
    """What a token ends: a subscription (`subscription_id`), or `email` on `site_id`'s
    alerts."""

    subscription_id: int | None = None
    site_id: int | None = None
    email: str | None = None


def token(secret: str, target: Target) -> str:
    if target.subscription_id is not None:
        payload: list[object] = ["r", target.subscription_id]
    else:
        payload = ["a", target.site_id, target.email]
    return str(URLSafeSerializer(secret, salt=SALT).dumps(payload))


def url(public_url: str, secret: str, target: Target) -> str:
    return f"{public_url}/unsubscribe/{token(secret, target)}"


def read(secret: str, signed: str) -> Target | None:
    """The target of a token we signed; None for anything else."""
    if not secret or len(signed) > 512:
        return None
    try:
        payload = URLSafeSerializer(secret, salt=SALT).loads(signed)
    except BadSignature:
        return None
    match payload:
        case ["r", int(subscription_id)]:
            return Target(subscription_id=subscription_id)
        case ["a", int(site_id), str(email)]:
            return Target(site_id=site_id, email=email)
    return None

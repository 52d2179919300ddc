"""The server's two keys, kept apart: the secret key (sessions, signed links) and the visitor key
(the hashes of consented visitors' first-party IDs). Both random, stored in `meta`, rotated one
without the other, so revoking a leaked secret does not forget every returning visitor.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .config import Settings
from .storage import Storage

SECRET = "secret_key"
VISITOR = "visitor_key"


@dataclass(frozen=True)
class Keys:
    secret: str
    visitor: bytes


async def load_keys(storage: Storage, settings: Settings) -> Keys:
    """Both keys, generated and stored on first start.

    Before issue 14 the visitor key was derived from the secret key. An install upgraded from
    then gets that same value stored as its visitor key, or its returning visitors would all
    look new; from then on the two rotate apart.
    """
    if settings.secret_key:
        secret = settings.secret_key
        # NOTE: with ZEEF_SECRET_KEY set there is no telling a new install from an upgraded
        # one, and the old code derived the visitor key from that variable: derive it here too.
        # Rotating the visitor key once makes it independent.
        upgraded = True
    else:
        fresh = secrets.token_urlsafe(32)
        secret = await storage.meta_key(SECRET, fresh)
        upgraded = secret != fresh
    generated = _derived(secret) if upgraded else secrets.token_bytes(32)
    visitor = bytes.fromhex(await storage.meta_key(VISITOR, generated.hex()))
    return Keys(secret, visitor)


@dataclass(frozen=True)
class SecretRotation:
    # The visitor key is still the one derived from the old secret on upgrade: whoever holds
    # the old secret can compute it.
    visitor_key_derived: bool


async def rotate_secret(storage: Storage, settings: Settings) -> SecretRotation:
    """Replace the stored secret key with a fresh one; the visitor key is untouched.

    Both keys are loaded (made) first, so an upgraded install pins its visitor key to the old
    secret before that secret is gone.
    """
    if settings.secret_key:
        raise ValueError(
            "ZEEF_SECRET_KEY is set, and the server uses it over the stored key: change it there"
        )
    old = await load_keys(storage, settings)
    await storage.meta_key(SECRET, secrets.token_urlsafe(32), replace=True)
    return SecretRotation(visitor_key_derived=old.visitor == _derived(old.secret))


async def rotate_visitor_key(storage: Storage, settings: Settings) -> None:
    """Replace the visitor key with a fresh random one: returning visitors are forgotten."""
    await load_keys(storage, settings)
    await storage.meta_key(VISITOR, secrets.token_bytes(32).hex(), replace=True)


def _derived(secret: str) -> bytes:
    # Imported here: privacy pulls in the bot sieve and the user-agent parser (~0.4 s), which
    # every `zeef` command paid for before it could print a figure.
    from .privacy import visitor_key_of_secret

    return visitor_key_of_secret(secret)

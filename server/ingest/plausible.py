"""The Plausible Events API payload: JSON with long or short keys, parsed into a Payload.

Plausible's own tracker sends `{n, v, u, d, r, p, $, i, h}` and, for engagement, `sd` and `e`;
the long names are what its docs show for server-side senders. Either works, not both at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

MAX_BODY = 8 * 1024
MAX_URL = 2000
MAX_NAME = 120
MAX_DOMAIN = 1000
MAX_PROPS = 30
MAX_PROP_KEY = 300
MAX_PROP_VALUE = 2000
# An engagement event reports time on one page; a week of it is already implausible.
MAX_ENGAGED_MS = 7 * 24 * 3600 * 1000

_ALIASES = {
    "n": "name",
    "u": "url",
    "d": "domain",
    "r": "referrer",
    "p": "props",
    "$": "revenue",
    "i": "interactive",
    "h": "hashMode",
    "m": "meta",
}
# Keys we take without a long alias: engagement fields, the tracker version, Plausible's
# legacy screen width, and Zeef's own `c`: the first-party visitor ID that exists only after
# the visitor accepted analytics cookies. Anything else is refused: a typo is noticed, not
# silently ignored.
_PLAIN = {
    "sd", "e", "v", "w", "c", "name", "url", "domain", "referrer", "props", "revenue",
    "interactive", "hashMode", "meta",
}  # fmt: skip


# Every accepted key -> its long name: one dict lookup per key on the hot path.
_KEYS = {**{key: key for key in _PLAIN}, **_ALIASES}

_CONTROL = re.compile(r"[\x00-\x1f]")
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class PayloadError(ValueError):
    """The request body is not a valid event; the message is safe to return to the sender."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, 4 us per event.
# parse_payload builds it with positional arguments: keep the fields in order.
@dataclass(slots=True)
class Payload:
    name: str
    url: str
    domains: tuple[str, ...]
    referrer: str | None
    props: dict[str, str] | None
    revenue_amount: Decimal | None
    revenue_currency: str | None
    interactive: bool
    hash_mode: bool
    scroll_depth: int | None
    engaged_ms: int | None
    visitor: str | None = None


def parse_payload(body: bytes) -> Payload:
    """Decode and validate one event. Raises PayloadError with a human-readable reason."""
    if len(body) > MAX_BODY:
        raise PayloadError("body larger than 8 KiB")
    try:
        # orjson: 0.5 us for a pageview where json.loads takes 3-5; strict RFC 8259 (no NaN),
        # strict UTF-8, and a nesting limit instead of a RecursionError.
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PayloadError(_json_error(body)) from None
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object")
    fields: dict[str, Any] = {}
    for key, value in data.items():
        long_key = _KEYS.get(key)
        if long_key is None:
            raise PayloadError(f"unknown key {key[:40]!r}")
        if long_key in fields:
            raise PayloadError(f"{long_key!r} given twice")
        fields[long_key] = value

    name = _required_str(fields, "name", MAX_NAME)
    url = _required_str(fields, "url", MAX_URL)
    domain = _required_str(fields, "domain", MAX_DOMAIN)
    if "," in domain:
        domains = tuple(part.strip().lower() for part in domain.split(",") if part.strip())
    else:
        domains = (domain.lower(),)
    if not domains:
        raise PayloadError("'domain' is empty")
    referrer = fields.get("referrer")
    if referrer is not None and not isinstance(referrer, str):
        raise PayloadError("'referrer' must be a string or null")
    if referrer is not None and len(referrer) > MAX_URL:
        raise PayloadError("'referrer' is too long")
    amount, currency = _revenue(fields["revenue"]) if "revenue" in fields else (None, None)
    scroll_depth = _optional_int(fields, "sd", 0, 100) if "sd" in fields else None
    engaged_ms = _optional_int(fields, "e", 0, MAX_ENGAGED_MS) if "e" in fields else None
    interactive = fields.get("interactive", True)
    if not isinstance(interactive, bool):
        raise PayloadError("'interactive' must be true or false")
    visitor = fields.get("c")
    if visitor is not None and (not isinstance(visitor, str) or not _VISITOR.match(visitor)):
        raise PayloadError("'c' must be the consented visitor ID (16-64 URL-safe characters)")
    hash_mode = fields.get("hashMode", False)
    # A tuple: `bool | int` builds a union object on every call.
    if not isinstance(hash_mode, (bool, int)) or hash_mode not in (0, 1):
        raise PayloadError("'hashMode' must be true, false, 0 or 1")
    # Positional, in Payload's field order: keywords cost ~1 us an event to match to names.
    return Payload(
        name,
        url,
        domains,
        referrer or None,
        _props(fields["props"]) if "props" in fields else None,
        amount,
        currency,
        interactive,
        bool(hash_mode),
        scroll_depth,
        engaged_ms,
        visitor,
    )


def _json_error(body: bytes) -> str:
    """Why orjson refused a body, told apart only when it did: decoding twice cost every event."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not valid UTF-8"
    return "body is not valid JSON"


def _required_str(fields: dict[str, Any], key: str, limit: int) -> str:
    value = fields.get(key)
    if value is None:
        raise PayloadError(f"missing {key!r}")
    if not isinstance(value, str):
        raise PayloadError(f"{key!r} must be a string")
    value = value.strip()
    if not value:
        raise PayloadError(f"{key!r} is empty")
    if len(value) > limit:
        raise PayloadError(f"{key!r} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise PayloadError(f"{key!r} contains control characters")
    return value


def _optional_int(fields: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError(f"{key!r} must be a number")
    number = round(value)
    if not low <= number <= high:
        raise PayloadError(f"{key!r} must be between {low} and {high}")
    return number


def _props(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        # Plausible's legacy tracker sends props JSON-encoded inside a string.
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise PayloadError("'props' is not valid JSON") from None
    if not isinstance(value, dict):
        raise PayloadError("'props' must be an object")
    if len(value) > MAX_PROPS:
        raise PayloadError(f"'props' has more than {MAX_PROPS} keys")
    props: dict[str, str] = {}
    for key, item in value.items():
        if not key or len(key) > MAX_PROP_KEY:
            raise PayloadError("a prop name is empty or too long")
        if item is None:
            continue
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, int | float | str):
            text = str(item)
        else:
            raise PayloadError(f"prop {key[:40]!r} must be a string, number or boolean")
        if len(text) > MAX_PROP_VALUE:
            raise PayloadError(f"prop {key[:40]!r} is too long")
        props[key] = text
    return props or None


def _revenue(value: Any) -> tuple[Decimal | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict) or set(value) != {"amount", "currency"}:
        raise PayloadError('\'revenue\' must be {"amount": ..., "currency": "EUR"}')
    currency = value["currency"]
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise PayloadError("revenue currency must be a three-letter ISO 4217 code")
    raw = value["amount"]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise PayloadError("revenue amount must be a number")
    try:
        amount = Decimal(str(raw).strip())
    except InvalidOperation:
        raise PayloadError("revenue amount must be a number") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e12"):
        raise PayloadError("revenue amount is out of range")
    return amount.quantize(Decimal("0.000001")), currency.upper()

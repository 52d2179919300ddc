"""What the ingest pipeline produces: an anonymised Event to store, or a Drop with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DropReason(StrEnum):
    """Why an event was not stored. Sent back in the X-Zeef-Drop header and counted per day."""

    BOT = "bot"
    UNKNOWN_SITE = "unknown_site"
    DOMAIN_MISMATCH = "domain_mismatch"
    INVALID_PAYLOAD = "invalid_payload"
    OPTED_OUT = "opted_out"  # Do Not Track or Global Privacy Control, on a site that honours them
    NO_CONSENT = "no_consent"  # the site counts only visitors who consented to analytics
    OVERLOADED = "overloaded"  # the write queue was full: answered 503 with Retry-After


@dataclass(slots=True)
class Event:
    """One anonymised event, as stored. No address, full or truncated, is part of it.

    The collector builds it with positional arguments, for speed: keep the fields in order.
    """

    site_id: int
    ts: int  # unix seconds, UTC
    visitor_id: int
    # The visitor's hash under yesterday's salt: the writer keeps a visit that spans midnight
    # under that hash when it was seen in the last 30 minutes. Never stored.
    previous_visitor_id: int | None
    name: str
    hostname: str
    path: str
    referrer_host: str | None
    referrer_path: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str
    country: str | None
    region: str | None
    city: str | None
    props: str | None  # JSON object of string values
    revenue_amount: str | None  # decimal as text: floats would lose cents
    revenue_currency: str | None
    interactive: bool
    scroll_depth: int | None
    engaged_ms: int | None
    consented: bool = False  # visitor_id comes from the first-party ID analytics consent created
    carried: bool = False  # visitor_id is yesterday's hash, continuing a visit across midnight
    visit_id: int | None = None  # set by the writer (server/visits.py)


@dataclass(frozen=True, slots=True)
class Site:
    id: int
    domain: str
    timezone: str
    created_at: int
    honour_dnt: bool = True
    require_consent: bool = False  # from the consent config: count only consented visitors
    # The customer that owns it (accounts); None for a site only the operator's superusers see.
    customer_id: int | None = None


@dataclass(frozen=True)
class ConsentRecord:
    """One visitor decision on a consent banner: the proof, with nothing that identifies them."""

    consent_id: str
    site_id: int
    created_at: int
    action: str
    choices: dict[str, bool]
    revision: int
    language: str
    texts_hash: str
    path: str
    gpc: bool

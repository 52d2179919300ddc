"""Goals, as Plausible defines them: a custom event by name, or pageviews of a path pattern.

Pure: what a goal is, how one is checked, and how its pattern matches a path. Storage keeps
them (SQLiteStorage.add_goal, goals, remove_goal); the report engine counts conversions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

EVENT = "event"
PAGE = "page"
# Plausible's limit for an event name and a page path in a goal.
MAX_LENGTH = 120

# ISO 4217 codes of currencies in circulation (funds, metals and test codes left out): what a
# revenue goal may be counted in. From the ISO 4217 list as of 2024.
_ISO_4217 = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF
    YER ZAR ZMW ZWG ZWL
"""
CURRENCIES = frozenset(_ISO_4217.split())


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal of a site. `kind` is "event" (event_name set) or "page" (page_path set);
    display_name names it in reports and in `event:goal` filters, unique per site."""

    site_id: int
    kind: str
    display_name: str
    event_name: str | None = None
    page_path: str | None = None
    currency: str | None = None  # ISO 4217, for an event goal that carries revenue
    created_at: int = 0
    id: int | None = None  # set by storage

    def matches(self, name: str, path: str) -> bool:
        """Whether an event named `name` on `path` completes this goal: an event goal by
        its name (exact, case-sensitive), a page goal by a pageview whose path matches."""
        if self.kind == EVENT:
            return name == self.event_name
        return name == "pageview" and path_matches(self.page_path or "", path)


def page_pattern_regex(pattern: str) -> str:
    """A page goal's pattern as a Python regex (use with re.S) that must match the whole path.

    As Plausible counts page goals today: `*` stands for any run of characters, `/` included,
    and `**` for the same. So `/thanks*` matches `/thanks`, `/thanks/you` and `/thanksgiving`,
    and `/blog/*` every page under /blog/, however deep, but not `/blog` itself. Everything
    else is literal (`.`, `?`, `(`, `|` ...). The path is the pathname: no query or fragment
    (hash-mode sites keep their `#...` in it, so `/app*` matches those too).
    """
    return "^" + ".*".join(re.escape(piece) for piece in re.split(r"\*+", pattern)) + "$"


def page_pattern_glob(pattern: str) -> str:
    """The same pattern for SQLite's GLOB (case-sensitive, as the regex): `*` as is, `?` and
    `[` escaped as one-character classes, so `path GLOB :glob` equals the regex's verdict.
    A pattern without `*` is an exact path: `path = :pattern` is the cheaper test then."""
    return re.sub(r"\*+", "*", pattern).replace("[", "[[]").replace("?", "[?]")


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(page_pattern_regex(pattern), re.S)


def path_matches(pattern: str, path: str) -> bool:
    """Whether a page goal's pattern matches a pathname (see page_pattern_regex)."""
    if "*" not in pattern:
        return path == pattern
    return _compiled(pattern).match(path) is not None


def new_goal(
    site_id: int,
    created_at: int,
    *,
    event: str | None = None,
    page: str | None = None,
    name: str | None = None,
    currency: str | None = None,
) -> Goal:
    """A checked goal from what a user typed: exactly one of `event` and `page`; `name`
    defaults as Plausible's (the event name, or "Visit /path*"). ValueError says what is
    wrong."""
    if (event is None) == (page is None):
        raise ValueError("a goal is either an event (--event NAME) or a page (--page PATH)")
    if event is not None:
        event = event.strip()
        if not event or len(event) > MAX_LENGTH:
            raise ValueError(f"an event name is 1 to {MAX_LENGTH} characters")
        kind, default = EVENT, event
    else:
        page = (page or "").strip()
        if not page.startswith("/") or len(page) > MAX_LENGTH:
            raise ValueError(f"a page path starts with / and is at most {MAX_LENGTH} characters")
        kind, default = PAGE, f"Visit {page}"
        if currency is not None:
            raise ValueError("only an event goal carries revenue (--currency)")
    display = default if name is None else name.strip()
    if not display or len(display) > MAX_LENGTH + len("Visit "):
        raise ValueError("a goal's name is 1 to 126 characters")
    return Goal(
        site_id=site_id,
        kind=kind,
        display_name=display,
        event_name=event,
        page_path=page,
        currency=None if currency is None else check_currency(currency),
        created_at=created_at,
    )


def check_currency(code: str) -> str:
    """An ISO 4217 currency code, upper case; ValueError for anything else."""
    upper = code.strip().upper()
    if upper not in CURRENCIES:
        raise ValueError(f"not an ISO 4217 currency code: {code!r} (e.g. EUR, USD, GBP)")
    return upper

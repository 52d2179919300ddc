"""Retention periods: how long each kind of data is kept, per customer and site, and the moment
before which it goes. The rules are written out in docs/retention.md; purge.py applies them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from .config import Settings
    from .events import Site
    from .storage import Storage

Unit = Literal["d", "w", "m", "y"]
_PERIOD = re.compile(r"^\s*(\d{1,5})\s*([dwmy])\s*$", re.IGNORECASE)
# A century: past that a period is a typo, and date arithmetic would leave the calendar.
_LONGEST_DAYS = 36_525


@dataclass(frozen=True, order=True)
class Period:
    """A number of days, weeks, calendar months or calendar years."""

    count: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Period:
        """'90d', '6w', '13m', '2y'. ValueError, in words, for anything else."""
        match = _PERIOD.match(str(text))
        if not match:
            raise ValueError(
                f"not a period: {text!r}; give a number and a unit, e.g. 90d, 6w, 13m or 2y"
            )
        period = cls(int(match.group(1)), match.group(2).lower())  # type: ignore[arg-type]
        if period.count < 1:
            raise ValueError(f"a period must be at least one day, not {text!r}")
        if period.approx_days() > _LONGEST_DAYS:
            raise ValueError(f"a period of at most 100 years, not {text!r}")
        return period

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def approx_days(self) -> int:
        return self.count * {"d": 1, "w": 7, "m": 31, "y": 366}[self.unit]

    def before(self, day: date) -> date:
        """The date this period before `day`; a month back from 31 March is 28 or 29
        February, as a calendar would say."""
        if self.unit == "d":
            return day - timedelta(days=self.count)
        if self.unit == "w":
            return day - timedelta(weeks=self.count)
        months = self.count * (12 if self.unit == "y" else 1)
        index = day.year * 12 + day.month - 1 - months
        year, month = divmod(index, 12)
        month += 1
        following = date(year + (month == 12), month % 12 + 1, 1)
        return date(year, month, min(day.day, (following - timedelta(days=1)).day))


DEFAULT_RETENTION = Period(25, "m")  # the CNIL's ceiling for consent-exempt audience measurement
# What a controller keeps to prove a consent after it ran out. NOTE: three years is a common
# reading of how long a complaint can come; a DPO may choose otherwise (ZEEF_CONSENT_PROOF).
DEFAULT_CONSENT_PROOF = Period(3, "y")
DEFAULT_AUDIT_RETENTION = Period(2, "y")


def cutoff(period: Period, timezone: str, now: int) -> int:
    """The first moment kept: midnight, in `timezone`, of the day `period` before today there.
    A row stamped one second before it is past its period; one stamped at it is kept."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, zone).date()
    first = datetime.combine(period.before(today), time(0), zone)
    return int(first.astimezone(UTC).timestamp())


@dataclass(frozen=True)
class SiteRetention:
    """A site's periods, each resolved to what applies, with where it came from."""

    site: Site
    customer: str | None
    events: Period
    events_from: Literal["site", "customer", "default"]
    consent_proof: Period
    consent_lifetime_days: int
    keep_aggregates: bool

    def events_cutoff(self, now: int) -> int:
        return cutoff(self.events, self.site.timezone, now)

    def consent_cutoff(self, now: int) -> int:
        """Records decided before this are past the consent's lifetime plus the proof period."""
        proof = cutoff(self.consent_proof, self.site.timezone, now)
        return proof - self.consent_lifetime_days * 86_400

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site.domain,
            "customer": self.customer,
            "retention": str(self.events),
            "retention_from": self.events_from,
            "consent_proof": str(self.consent_proof),
            "consent_lifetime_days": self.consent_lifetime_days,
            "keep_aggregates": self.keep_aggregates,
        }


async def site_retentions(storage: Storage, settings: Settings) -> list[SiteRetention]:
    """Every site's periods, as the purge applies them now."""
    rows = {row["site_id"]: row for row in await storage.retention_rows()}
    return [
        await _resolve(storage, settings, site, rows.get(site.id, {}))
        for site in await storage.sites()
    ]


async def site_retention(storage: Storage, settings: Settings, site: Site) -> SiteRetention:
    """One site's periods: its own banner only (the privacy page asks per request, and reading
    every site's banner took 240 ms with 1,000 sites)."""
    rows = {row["site_id"]: row for row in await storage.retention_rows()}
    return await _resolve(storage, settings, site, rows.get(site.id, {}))


async def _resolve(
    storage: Storage, settings: Settings, site: Site, row: dict[str, Any]
) -> SiteRetention:
    from .consent import DEFAULT_LIFETIME_DAYS, MAX_LIFETIME_DAYS, ConsentConfig

    if row.get("site_retention"):
        events, source = Period.parse(row["site_retention"]), "site"
    elif row.get("customer_retention"):
        events, source = Period.parse(row["customer_retention"]), "customer"
    else:
        events, source = settings.retention, "default"
    proof = (
        Period.parse(row["consent_proof"]) if row.get("consent_proof") else None
    ) or settings.consent_proof
    lifetime = DEFAULT_LIFETIME_DAYS
    stored = await storage.consent_config(site.id)
    if stored is not None:
        try:
            lifetime = ConsentConfig.from_json(stored).lifetime_days
        except ValueError:
            # A banner Zeef cannot read keeps the longest lifetime it could have had.
            lifetime = MAX_LIFETIME_DAYS
    return SiteRetention(
        site=site,
        customer=row.get("customer"),
        events=events,
        events_from=source,  # type: ignore[arg-type]
        consent_proof=proof,
        consent_lifetime_days=lifetime,
        keep_aggregates=bool(row.get("keep_aggregates")),
    )


async def agreed_period(storage: Storage, settings: Settings, customer_id: int | None) -> Period:
    """What the operator agreed with a site's customer (or the default): a customer's admin
    may keep a site's data for less, and only the operator may set more."""
    row = await storage.customer_retention(customer_id) if customer_id is not None else None
    if row and row["retention"]:
        return Period.parse(row["retention"])
    return settings.retention

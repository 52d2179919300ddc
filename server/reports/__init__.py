"""Reports: a Query (site, date range) and one function per report, over the Storage protocol."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..events import Site
from ..storage import Storage

PERIODS = ("day", "7d", "30d", "all")


@dataclass(frozen=True)
class Query:
    site: Site
    period: str
    start: datetime  # inclusive, in the site's time zone
    end: datetime  # exclusive

    @classmethod
    def for_period(cls, site: Site, period: str, now: datetime | None = None) -> Query:
        """`day` is today so far, `7d` and `30d` end today, all in the site's time zone."""
        if period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}")
        zone = ZoneInfo(site.timezone)
        local_now = (now or datetime.now(UTC)).astimezone(zone)
        today = datetime.combine(local_now.date(), time(), tzinfo=zone)
        end = today + timedelta(days=1)
        if period == "all":
            start = datetime.fromtimestamp(0, zone)
        else:
            days = {"day": 1, "7d": 7, "30d": 30}[period]
            start = today - timedelta(days=days - 1)
        return cls(site, period, start, end)

    @property
    def start_ts(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_ts(self) -> int:
        return int(self.end.timestamp())

    @property
    def utc_days(self) -> tuple[str, str]:
        """The first and last UTC day the range touches, as drops are counted by UTC day."""
        last = self.end.astimezone(UTC) - timedelta(seconds=1)
        return self.start.astimezone(UTC).date().isoformat(), last.date().isoformat()


async def totals(storage: Storage, query: Query) -> dict[str, Any]:
    """The headline figures: visitors, visits, pageviews, events, and how visits went."""
    row = await storage.site_totals(query)
    bounce = row["bounce_rate"]
    duration = row["visit_duration"]
    depth = row["scroll_depth"]
    return {
        "site": query.site.domain,
        "period": query.period,
        "from": query.start.date().isoformat(),
        "to": (query.end - timedelta(days=1)).date().isoformat(),
        "visitors": int(row["visitors"] or 0),
        "visits": int(row["visits"] or 0),
        "pageviews": int(row["pageviews"] or 0),
        "events": int(row["events"] or 0),
        # Only visitors who accepted analytics can be recognised on another day.
        "returning_visitors": int(row["returning_visitors"] or 0),
        "bounce_rate": round(bounce * 100) if bounce is not None else None,
        "visit_duration": round(duration) if duration is not None else None,
        "scroll_depth": round(depth) if depth is not None else None,
    }


async def drops(storage: Storage, query: Query) -> dict[str, int]:
    """Events the sieve kept out, by reason. Drop days are UTC days."""
    return await storage.site_drops(query)

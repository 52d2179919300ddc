"""Which week or month a report covers, and from when it is due, in the site's time zone.

A weekly report covers Monday to Sunday and is due from Monday 06:00; a monthly one covers a
calendar month and is due from the 1st at 06:00. At six the night's last visits have ended
(a visit closes after 30 minutes without a hit), and the report waits in the inbox when
people start their day. Each period has a key ('2026-W11', '2026-03') that names its run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

KINDS = ("weekly", "monthly")
SEND_HOUR = 6


@dataclass(frozen=True)
class Period:
    kind: str  # weekly or monthly
    first: date
    last: date  # included
    due: datetime  # when the report may go, in the site's zone

    @property
    def key(self) -> str:
        if self.kind == "weekly":
            year, week, _day = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.first.year}-{self.first.month:02d}"


def latest_due(kind: str, now: datetime, zone: ZoneInfo, hour: int = SEND_HOUR) -> Period:
    """The newest period whose report is due at `now`: after a restart, only this one of the
    periods missed meanwhile is sent. `hour` 0: the last complete period."""
    local = now.astimezone(zone)
    today = local.date()
    if kind == "weekly":
        start = today - timedelta(days=today.weekday())  # this week's Monday
        if local < _at(start, hour, zone):
            start -= timedelta(days=7)
        return Period(kind, start - timedelta(days=7), start - timedelta(days=1),
                      _at(start, hour, zone))  # fmt: skip
    if kind == "monthly":
        start = today.replace(day=1)
        if local < _at(start, hour, zone):
            start = (start - timedelta(days=1)).replace(day=1)
        last = start - timedelta(days=1)
        return Period(kind, last.replace(day=1), last, _at(start, hour, zone))
    raise ValueError(f"kind must be one of {', '.join(KINDS)}")


def containing(kind: str, day: date, zone: ZoneInfo) -> Period:
    """The week (Monday to Sunday) or month `day` falls in."""
    if kind == "weekly":
        first = day - timedelta(days=day.weekday())
        return latest_due(kind, _at(first + timedelta(days=7), 0, zone), zone, 0)
    after = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return latest_due(kind, _at(after, 0, zone), zone, 0)


def _at(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=zone)

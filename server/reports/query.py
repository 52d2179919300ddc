"""Query: which site, which days (in the site's time zone), which filters, compared with what.

Periods follow Plausible's, so a script written for its Stats API asks for the same days here:
`date` anchors the period (its last day for `7d` and the like, the month or year it falls in
for `month` and `year`), and every day is a calendar day in the site's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..events import Site
from .filters import Condition

PERIODS = ("day", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all", "custom")
# The periods `zeef stats` and `zeef drops` accepted before the report engine: kept valid.
DAYS = {"day": 1, "7d": 7, "28d": 28, "30d": 30, "91d": 91}
MONTHS = {"month": 1, "6mo": 6, "12mo": 12}
INTERVALS = ("minute", "hour", "day", "week", "month")
COMPARISONS = ("previous_period", "year_over_year", "custom")
# A bucket per minute is readable for a few hours at most, and a query returning more than a
# few thousand buckets is a mistake a dashboard should not make a server pay for.
MAX_BUCKETS = 5000


class QueryError(ValueError):
    """A query that cannot be answered as asked: the message says why, for a 400."""


@dataclass(frozen=True)
class Query:
    site: Site
    period: str
    start: datetime  # inclusive, midnight in the site's time zone (or a minute, for realtime)
    end: datetime  # exclusive
    filters: tuple[Condition, ...] = ()
    interval: str | None = None  # None: the default for the period (default_interval)
    comparison: Query | None = field(default=None, compare=False)

    @classmethod
    def for_period(
        cls,
        site: Site,
        period: str,
        now: datetime | None = None,
        *,
        anchor: date | None = None,
        first: date | None = None,
        last: date | None = None,
        filters: tuple[Condition, ...] = (),
        interval: str | None = None,
    ) -> Query:
        """The days of `period` in the site's time zone: `anchor` (default today) picks which;
        `custom` takes `first` and `last`, both included."""
        zone = ZoneInfo(site.timezone)
        today = (now or datetime.now(UTC)).astimezone(zone).date()
        day = anchor or today
        if period in DAYS:
            first, last = day - timedelta(days=DAYS[period] - 1), day
        elif period in MONTHS:
            last = _month_end(day)
            first = _add_months(day.replace(day=1), 1 - MONTHS[period])
        elif period == "year":
            first, last = date(day.year, 1, 1), date(day.year, 12, 31)
        elif period == "all":
            # From the start of time, so nothing is left out; a time series starts at the
            # first visit instead (starting_at).
            first, last = date(1970, 1, 2), today
        elif period == "custom":
            if first is None or last is None:
                raise QueryError("a custom period needs a first and a last date")
            if last < first:
                raise QueryError("the custom period ends before it starts")
        else:
            raise QueryError(f"period must be one of {', '.join(PERIODS)}")
        if interval is not None and interval not in INTERVALS:
            raise QueryError(f"interval must be one of {', '.join(INTERVALS)}")
        query = cls(site, period, _midnight(first, zone), _midnight(last + timedelta(days=1), zone))
        return replace(query, filters=filters, interval=interval)

    @classmethod
    def realtime(cls, site: Site, now: datetime, minutes: int = 30) -> Query:
        """The last `minutes`, to the minute: what the realtime view charts."""
        zone = ZoneInfo(site.timezone)
        end = now.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        return cls(site, "realtime", end - timedelta(minutes=minutes), end, interval="minute")

    # -- derived ------------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.site.timezone)

    @property
    def start_ts(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_ts(self) -> int:
        return int(self.end.timestamp())

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(seconds=1)).date()

    @property
    def utc_days(self) -> tuple[str, str]:
        """The first and last UTC day the range touches, as drops are counted by UTC day."""
        last = self.end.astimezone(UTC) - timedelta(seconds=1)
        return self.start.astimezone(UTC).date().isoformat(), last.date().isoformat()

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def bucket(self) -> str:
        """The interval asked for, or Plausible's default: hours for a day, days up to a
        quarter, months beyond."""
        if self.interval:
            return self.interval
        if self.period == "realtime":
            return "minute"
        if self.days <= 1:
            return "hour"
        if self.period in ("6mo", "12mo", "year") or self.days > 93:
            return "month"
        return "day"

    def starting_at(self, ts: int) -> Query:
        """This query from the local day of `ts` on: `all` as far back as there is data."""
        first = datetime.fromtimestamp(ts, self.zone).date()
        if first <= self.first_day or first > self.last_day:
            return self
        return replace(self, start=_midnight(first, self.zone))

    def with_filters(self, *filters: Condition) -> Query:
        return replace(self, filters=(*self.filters, *filters))

    def compared(self, how: str, first: date | None = None, last: date | None = None) -> Query:
        """This query with a comparison attached: the period before it of the same length
        (calendar months for month-based periods), the same days a year earlier, or a range."""
        if how == "previous_period":
            if self.period in MONTHS or self.period == "year":
                months = 12 if self.period == "year" else MONTHS[self.period]
                first = _add_months(self.first_day, -months)
                last = _month_end(_add_months(self.first_day, -1))
            else:
                first = self.first_day - timedelta(days=self.days)
                last = self.first_day - timedelta(days=1)
        elif how == "year_over_year":
            first, last = _add_years(self.first_day, -1), _add_years(self.last_day, -1)
        elif how == "custom":
            if first is None or last is None or last < first:
                raise QueryError("a custom comparison needs a first and a last date, in order")
        else:
            raise QueryError(f"compare must be one of {', '.join(COMPARISONS)}")
        other = Query(
            self.site,
            "custom",
            _midnight(first, self.zone),
            _midnight(last + timedelta(1), self.zone),
        )
        other = replace(other, filters=self.filters, interval=self.bucket)
        return replace(self, comparison=other)

    def check_buckets(self) -> None:
        """Refuse a time series with more buckets than anyone can read."""
        seconds = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
        span = self.end_ts - self.start_ts
        count = span // seconds[self.bucket] if self.bucket in seconds else self.days // 28
        if count > MAX_BUCKETS:
            raise QueryError(f"{count} {self.bucket}s is too many: pick a longer interval")

    # -- local time -----------------------------------------------------------------------------

    def offsets(self) -> list[tuple[int, int]]:
        """[(from_ts, utc_offset_seconds), ...] covering the range: where the site's clock
        changes (DST), a new entry. Lets SQL turn UTC timestamps into local buckets exactly,
        half- and quarter-hour zones included, without a time zone database of its own."""
        zone = self.zone
        start, end = self.start_ts - 86400, self.end_ts + 86400

        def offset(ts: int) -> int:
            delta = datetime.fromtimestamp(ts, zone).utcoffset()
            return int(delta.total_seconds()) if delta else 0

        segments = [(start, offset(start))]
        ts = start
        while ts < end:
            step = min(ts + 86400, end)
            if offset(step) != segments[-1][1]:
                low, high = ts, step  # the change lies in (low, high]
                while high - low > 1:
                    middle = (low + high) // 2
                    if offset(middle) == segments[-1][1]:
                        low = middle
                    else:
                        high = middle
                segments.append((high, offset(high)))
            ts = step
        return segments

    def bucket_starts(self) -> list[datetime]:
        """Every bucket of the range, in order, as local datetimes: the rows of a time series,
        with those that saw no visit too."""
        zone, bucket = self.zone, self.bucket
        if bucket in ("minute", "hour"):
            step = 60 if bucket == "minute" else 3600
            # Step in UTC, so a DST day has 23 or 25 hours, as the clock on the wall had.
            utc = self.start.astimezone(UTC)
            out: list[datetime] = []
            while utc < self.end:
                local = utc.astimezone(zone)
                if not out or _label(local, bucket) != _label(out[-1], bucket):
                    out.append(local)
                utc += timedelta(seconds=step)
            return out
        day = self.first_day
        if bucket == "week":
            day -= timedelta(days=day.weekday())
        elif bucket == "month":
            day = day.replace(day=1)
        starts = []
        while day <= self.last_day:
            starts.append(_midnight(day, zone))
            if bucket == "day":
                day += timedelta(days=1)
            elif bucket == "week":
                day += timedelta(days=7)
            else:
                day = _add_months(day, 1)
        return starts

    def bucket_labels(self) -> list[str]:
        return [_label(start, self.bucket) for start in self.bucket_starts()]


def _label(local: datetime, bucket: str) -> str:
    """How Plausible names a bucket: the day for days and weeks (a week by its Monday), the
    first of the month for months, a local `YYYY-MM-DD HH:MM:SS` for hours and minutes."""
    if bucket == "minute":
        return local.strftime("%Y-%m-%d %H:%M:00")
    if bucket == "hour":
        return local.strftime("%Y-%m-%d %H:00:00")
    if bucket == "month":
        return local.strftime("%Y-%m-01")
    return local.strftime("%Y-%m-%d")


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def _month_end(day: date) -> date:
    return _add_months(day.replace(day=1), 1) - timedelta(days=1)


def _add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s (periods and buckets start on a first)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, 1)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)

"""The report engine's reads from rollups (sqlite_rollups.py builds them): which of a query's
days they answer (`split`), and each report from their rows for those days and from raw
visits and hits for the rest, with the same answers a raw query gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from ..reports.filters import Filter, leaves
from .sqlite_reports import VISIT_SQL, fetch
from .sqlite_rollups import (
    COUNTS,
    EVERY_HIT,
    NO_VALUE,
    NONE,
    PROPS,
    TOTAL,
    VERSION,
    midnight,
    segment_key,
    span_label,
    week_label,
    with_weeks,
)

if TYPE_CHECKING:
    from ..reports.filters import GoalLike
    from ..reports.query import Query

# How far behind the newest hit the sums may be and still answer: three builds at the default
# interval. Past it the builds have stopped (a failure), and reports read raw rows instead.
STALE = 15 * 60
# Sums more than this behind the newest hit, read, ask for a build before the interval is up:
# someone is looking, and the next look shows the last minute.
FRESH = 60


@dataclass(frozen=True)
class Split:
    """Which of a query's days rollups answer (`days`, from its first), up to what the last
    build summed of them."""

    days: tuple[str, ...]
    first: str
    # The rows to read for those days: whole weeks' where there are, days' for the rest.
    labels: tuple[str, ...] = ()
    # What the query is narrowed to: a visit dimension and one value of it, or the totals.
    dimension: str = TOTAL
    value: Any = None
    # The label of the same days summed whole (sqlite_rollups.SPANS), if the last build did.
    span: str | None = None
    # The segment summed (0012_segments.sql): the whole site, or the query's filter set.
    segment: int = 0
    # Whether that filter set has event filters (sqlite_rollups.Segment.by_hits).
    by_hits: bool = False


def _narrowed_to(query: Query) -> tuple[str, Any] | None:
    """(dimension, value) when the query's one filter is a visit dimension equal to one
    value (what a rollup row is); (TOTAL, None) without filters; None otherwise."""
    if not query.filters:
        return TOTAL, None
    if len(query.filters) == 1:
        f = query.filters[0]
        if (
            isinstance(f, Filter)
            and f.op == "is"
            and len(f.values) == 1
            and f.dimension in VISIT_SQL
        ):
            return f.dimension, f.values[0]
    return None


# Everything split() needs, in one statement (each one is a hop to the reader's thread): the
# period's days and weeks, the site's first and last summed day, and its newest hit.
SUMMED = """
SELECT day, timezone, start, covered, end,
       -- The site's first day: a segment summed newest day first may not have reached it.
       (SELECT MIN(day) FROM rollup_days WHERE site_id = :site AND segment = 0) AS earliest,
       (SELECT MAX(day) FROM rollup_days
        WHERE site_id = :site AND segment = :segment AND day < 'A') AS latest,
       (SELECT ts FROM events WHERE site_id = :site ORDER BY ts DESC LIMIT 1) AS newest
FROM rollup_days
WHERE site_id = :site AND segment = :segment AND version = :version
  AND (day BETWEEN :first AND :last OR day BETWEEN :first_week AND :last_week OR day = :span)
ORDER BY day
"""


async def split(
    conn: Any,
    query: Query,
    narrowed: bool = False,
    ask: Callable[[int, str, bool], None] | None = None,
    behind: Callable[[], None] | None = None,
    goals: Sequence[GoalLike] = (),
) -> Split | None:
    """The rolled-up part of a query, or None when rollups cannot answer it: unfiltered,
    with `narrowed` (totals and time series) filtered to one value of a visit dimension, or
    filtered by a set that is a segment (sqlite_rollups.segment_key) summed back to the
    site's first day. Such a query is told to `ask` (site, segment key, whether it is a
    segment yet). Sums read that are more than FRESH behind the newest hit are told to
    `behind`."""
    if query.period == "realtime":
        return None
    narrow = _narrowed_to(query)
    segment, by_hits = 0, False
    if narrow is None or (narrow[0] != TOTAL and not narrowed):
        key = segment_key(query.filters, goals)
        if key is None:
            return None
        found = await fetch(
            conn,
            "SELECT id FROM segments WHERE site_id = :site AND filters = :key",
            {"site": query.site.id, "key": key},
        )
        if ask is not None:
            ask(query.site.id, key, bool(found))
        if not found:
            return None
        segment, narrow = found[0]["id"], (TOTAL, None)
        by_hits = any(leaf.dimension not in VISIT_SQL for f in query.filters for leaf in leaves(f))
    zone, tz = query.zone, query.site.timezone
    summed = await fetch(
        conn,
        SUMMED,
        {"site": query.site.id, "segment": segment, "version": VERSION,
         "first": query.first_day.isoformat(), "last": query.last_day.isoformat(),
         "first_week": week_label(query.first_day - timedelta(days=6)),
         "last_week": week_label(query.last_day), "span": span_label(query.days, query.last_day)},
    )  # fmt: skip
    rows = [row for row in summed if row["day"][0].isdigit()]
    if not rows:
        return None
    day, start = query.first_day, query.start_ts
    if rows[0]["day"] != day.isoformat():
        # A period from before the site's first visit (`all`): rollups start on that day.
        if rows[0]["earliest"] != rows[0]["day"]:
            return None
        day, start = date.fromisoformat(rows[0]["day"]), rows[0]["start"]
    days: list[str] = []
    until = start
    for row in rows:
        expected = midnight(day, zone)
        if row["day"] != day.isoformat() or row["timezone"] != tz or row["start"] != expected:
            return None  # a day summed in another zone, or not summed: read raw rows
        days.append(row["day"])
        until = row["covered"]
        day += timedelta(days=1)
    if until < query.end_ts:
        # The rest of the period is after the last build (today's last minutes, or a new day
        # not summed yet), or a day in it is missing: only the former is left out, and only
        # while builds go on.
        if rows[0]["latest"] != days[-1]:
            return None
        lag = (rows[0]["newest"] or 0) - until
        if lag > STALE:
            return None  # builds have stopped: raw rows, slower but current
        if lag > FRESH and behind is not None:
            behind()
    weeks = [row["day"] for row in summed if row["day"].startswith("W") and row["timezone"] == tz]
    labels = with_weeks(days, weeks)
    # The whole range summed at the last build (SPANS), when it is exactly these days.
    span = next(
        (row for row in summed if row["day"].startswith("S") and row["timezone"] == tz), None
    )
    whole = span["day"] if span and (span["start"], span["covered"]) == (start, until) else None
    if until < query.end_ts and not await _close_enough(
        conn, query, until, (whole,) if whole else labels
    ):
        return None
    return Split(
        tuple(days), days[0], labels, dimension=narrow[0], value=narrow[1], span=whole,
        segment=segment, by_hits=by_hits,
    )  # fmt: skip


# The visits since the last build may be this share of the summed ones, and reports still read
# the sums: within it a figure is at most ~1 % behind; past it (a new site's first visits, the
# first minutes of a day) raw rows answer, current, and are cheap, being few.
BEHIND = 0.01

CLOSE_ENOUGH = """
SELECT (SELECT COUNT(*) FROM visits
        WHERE site_id = :site AND started >= :until AND started < :end) AS since,
       (SELECT SUM(visits) FROM rollups
        WHERE site_id = :site AND segment = 0 AND dimension = ''
          AND day IN (SELECT value FROM json_each(:labels))) AS summed
"""


async def _close_enough(conn: Any, query: Query, until: int, labels: Sequence[str]) -> bool:
    """Whether the sums, as of `until`, are close enough to the site now (BEHIND)."""
    params = {"site": query.site.id, "until": until, "end": query.end_ts,
              "labels": json.dumps(list(labels))}  # fmt: skip
    [row] = await fetch(conn, CLOSE_ENOUGH, params)
    return bool(row["since"] <= BEHIND * (row["summed"] or 0))


def _metrics(
    value: Any, visitors: int, visits: int, pageviews: int, events: int, bounces: int,
    duration_ms: int, scroll_sum: int, scroll_pages: int,
) -> dict[str, Any]:  # fmt: skip
    """A value's sums (COUNTS, in order) turned into the metrics grouped() answers."""
    return {
        "value": None if value == NONE else value,
        "visitors": visitors or 0,
        "visits": visits or 0,
        "pageviews": pageviews or 0,
        "events": events or 0,
        "bounce_rate": 100.0 * bounces / visits if visits else None,
        "visit_duration": duration_ms / 1000 / visits if visits else None,
        "scroll_depth": 1.0 * scroll_sum / scroll_pages if scroll_pages else None,
    }


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    return _metrics(row.get("value"), *(row.get(name) or 0 for name in COUNTS))


def _merge(into: dict[Any, dict[str, Any]], rows: Iterable[dict[str, Any]], sign: int = 1,
           key: str = "value") -> None:  # fmt: skip
    for row in rows:
        value = None if row[key] == NONE else row[key]
        target = into.setdefault(value, {name: 0 for name in COUNTS} | {key: value})
        for name in COUNTS:
            if name in row and row[name] is not None:
                target[name] += sign * row[name]


ROLLED = """
SELECT {group} AS value, {sums}
FROM rollups
WHERE site_id = :site AND segment = :segment AND dimension = :dimension
  AND day IN (SELECT value FROM json_each(:labels)) {extra}
GROUP BY {group}
"""


def _sums_of(*names: str) -> str:
    # Only what the report shows: each SUM costs ~0.1 us a row, on tens of thousands of rows.
    return ", ".join(f"SUM({name}) AS {name}" for name in names)


VISIT_SUMS = _sums_of(*COUNTS)

# Sums less the visitors (and visits) seen before in the period, in one statement: the
# figures come out final, a row a value, with no Python merging them (a month of pages is
# 3,000 values, and ~3 us each of merging was most of a breakdown).
NET = """
WITH summed AS (
    SELECT {group} AS value, {sums}
    FROM rollups
    WHERE site_id = :site AND segment = :segment AND dimension = :dimension
      AND day IN (SELECT value FROM json_each(:labels)) {extra}
    GROUP BY {group}
), returned AS (
    SELECT {group} AS value, SUM(visitors) AS visitors, SUM(visits) AS visits
    FROM rollup_returns
    WHERE site_id = :site AND segment = :segment AND dimension = :dimension
      AND day IN (SELECT value FROM json_each(:labels)) AND previous_day >= :since {extra}
    GROUP BY {group}
)
SELECT s.value, {net}
FROM summed AS s LEFT JOIN returned AS r ON r.value IS s.value
"""


# A span's rows are final already: one a value, nothing to subtract.
SPAN = """
SELECT value, {columns} FROM rollups
WHERE site_id = :site AND segment = :segment AND dimension = :dimension AND day = :span
  {extra}
"""


def _net(sums: tuple[str, ...], group: str = "value", extra: str = "", span: bool = False) -> str:
    if span:
        return SPAN.format(columns=", ".join(sums), extra=extra)  # `extra`: a narrowed value
    net = ", ".join(
        f"s.{name} - COALESCE(r.{name}, 0) AS {name}"
        if name in ("visitors", "visits")
        else f"s.{name} AS {name}"
        for name in sums
    )
    return NET.format(group=group, sums=_sums_of(*sums), extra=extra, net=net)


HIT_COUNTS = ("visitors", "visits", "pageviews", "events")
ENTRY_COUNTS = ("visits", "bounces", "duration_ms")


def _spanned(part: Split, dimension: str) -> bool:
    return part.span is not None and not dimension.startswith(PROPS)


async def _rows(conn: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = await fetch(conn, sql, params)
    for row in rows:
        if row["value"] == NONE:
            row["value"] = None
    return rows


def _params(query: Query, part: Split, dimension: str) -> dict[str, Any]:
    # A span holds no properties (sqlite_rollups.SPAN_ROWS says why).
    labels = (part.span,) if part.span and not dimension.startswith(PROPS) else part.labels
    return {
        "site": query.site.id, "segment": part.segment, "dimension": dimension,
        "labels": json.dumps(labels),
        "span": part.span,
        "since": part.first,
    }  # fmt: skip


async def aggregate(conn: Any, query: Query, part: Split) -> dict[str, Any]:
    params, extra = _narrowed(query, part)
    rows = await fetch(conn, _net(COUNTS, "NULL", extra, span=_spanned(part, TOTAL)), params)
    return _figures(rows[0] if rows else dict.fromkeys(COUNTS, 0))


def _narrowed(query: Query, part: Split) -> tuple[dict[str, Any], str]:
    """Parameters, and the condition on `value` when the query is narrowed to one."""
    params = {**_params(query, part, part.dimension), "value": part.value}
    return params, "" if part.dimension == TOTAL else "AND value = :value"


async def series(conn: Any, query: Query, part: Split, bucket: str) -> list[dict[str, Any]]:
    """Visit metrics per day, week or month bucket (labels as sqlite_reports.bucket_sql)."""
    params, extra = _narrowed(query, part)
    params["labels"] = json.dumps(part.days)  # days' rows, not weeks': buckets are of days
    label = {"day": _day_label, "week": _week, "month": _month}[bucket]
    by_bucket: dict[Any, dict[str, Any]] = {}
    rolled = ROLLED.format(group="day", sums=VISIT_SUMS, extra=extra)
    for row in await fetch(conn, rolled, params):
        _merge(by_bucket, [{**row, "value": label(row["value"])}])
    returns = await fetch(
        conn,
        "SELECT day, previous_day, SUM(visitors) AS visitors FROM rollup_returns"
        " WHERE site_id = :site AND segment = :segment AND dimension = :dimension"
        " AND day IN (SELECT value FROM json_each(:labels))"
        f" AND previous_day >= :since {extra} GROUP BY day, previous_day",
        params,
    )
    for row in returns:
        bucket_label = label(row["day"])
        # Seen earlier in the same bucket (and the period): counted there already.
        if row["previous_day"] >= max(bucket_label, part.first):
            by_bucket[bucket_label]["visitors"] -= row["visitors"]
    # Under event filters a raw query counts a bucket's hits only where visits started in it.
    return [_figures(row) for row in by_bucket.values() if row["visits"] or not part.by_hits]


def _day_label(day: str) -> str:
    return day


def _month(day: str) -> str:
    return day[:8] + "01"


def _week(day: str) -> str:
    d = date.fromisoformat(day)
    return (d - timedelta(days=d.weekday())).isoformat()


async def by_visit(
    conn: Any, query: Query, part: Split, dimension: str, values: Sequence[Any] | None = None
) -> list[dict[str, Any]]:
    """Visit metrics per value; with `values`, for those only, and without visitors (what
    a page's bounce rate and visit duration, from its entries, ask)."""
    params = _params(query, part, dimension)
    spanned = _spanned(part, dimension)
    if values is not None:
        params["values"] = json.dumps(list(values))
        extra = "AND value IN (SELECT value FROM json_each(:values))"
        rows = await _rows(conn, _net(ENTRY_COUNTS, extra=extra, span=spanned), params)
        return [_figures(row) for row in rows if row["visits"]]
    # Straight from the tuples, one dict a value: a month of entry pages is 3,000 of them, and
    # three dicts each (the row, its figures, the two merged) were a third of the report.
    async with conn.execute(_net(tuple(COUNTS), span=spanned), params) as cursor:
        rows = [_metrics(*row) for row in await cursor.fetchall()]
    # Under event filters a value's hits may come from visits that started before the
    # period, which a raw query leaves out with the value (sqlite_reports.grouped).
    return [row for row in rows if row["visits"]] if part.by_hits else rows


# Every hit a segment keeps, as one value: a goal segment's visitors and events.
EVERY = (EVERY_HIT, NO_VALUE)


def goal_row(goal: GoalLike) -> tuple[str, str] | None:
    """The rollup row that holds a goal's visitors and events (dimension, value): a custom
    event's name, or a page without wildcards; None for the others (a wildcard spans pages,
    whose visitors do not add up; revenue is not summed), which read raw rows."""
    if goal.currency:
        return None
    if goal.kind == "event" and goal.event_name:
        return "event:name", goal.event_name
    if goal.kind == "page" and goal.page_path and "*" not in goal.page_path:
        return "event:page", goal.page_path
    return None


async def hit_values(
    conn: Any, query: Query, part: Split, dimension: str, values: Sequence[Any]
) -> dict[Any, dict[str, Any]]:
    """Hit metrics of some values of an event dimension (not a property)."""
    params = {**_params(query, part, dimension), "values": json.dumps(list(values))}
    extra = "AND value IN (SELECT value FROM json_each(:values))"
    rows = await _rows(conn, _net(HIT_COUNTS, extra=extra, span=_spanned(part, dimension)), params)
    return {row["value"]: row for row in rows}


async def by_hit(conn: Any, query: Query, part: Split, dimension: str) -> list[dict[str, Any]]:
    params = _params(query, part, dimension)
    rows = await _rows(conn, _net(HIT_COUNTS, span=_spanned(part, dimension)), params)
    if dimension.startswith(PROPS):
        # Days before the property's first hit have no rows of it: every hit of theirs is
        # `(none)`, which is what EVERY_HIT sums.
        having = await fetch(
            conn,
            "SELECT DISTINCT day FROM rollups WHERE site_id = :site AND segment = :segment"
            " AND dimension = :dimension AND day IN (SELECT value FROM json_each(:labels))",
            params,
        )
        lacking = sorted(set(part.labels) - {row["day"] for row in having})
        if lacking:
            every = {**params, "dimension": EVERY_HIT, "labels": json.dumps(lacking)}
            sums: dict[Any, dict[str, Any]] = {}
            _merge(sums, rows)
            _merge(sums, await _rows(conn, _net(HIT_COUNTS), every))
            rows = list(sums.values())
    return [
        {"value": row["value"], "visitors": row["visitors"], "visits": row["visits"],
         "pageviews": row["pageviews"], "events": row["events"]}
        for row in rows
    ]  # fmt: skip

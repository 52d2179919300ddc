"""Rollups for SQLite: each local day of a site summed per dimension value (the reads that
answer reports from them: sqlite_rollup_reports.py).

Built out of the ingest path, in a process of its own (`build_all`), by a reader that sums a
day in Python and a short transaction that stores it (`build`), every few minutes
(server/reports/rollups.py). A day is summed again until no visit that started in it can
change (`final`); today is covered up to each build, and reports read what the last build
summed. Segments are the same sums under a filter set that reports asked for. Answers equal the
raw ones (tests/test_rollups.py compares them on random data); visitors too, which do not add
up over days: a day stores, per value, the visitors it shares with each earlier day
(rollup_returns), and a period subtracts those shared within it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..goals import Goal
from ..reports.filters import GOAL, Condition, Filter
from .sqlite_reports import (
    EVENT_SQL,
    FUNCTIONS,
    VISIT_SQL,
    Sql,
    _condition,
    _goal_condition,
    _props_column,
    with_hit,
)

if TYPE_CHECKING:
    from ..events import Site
    from ..reports.filters import GoalLike

# What a day's sums hold: raised when a Zeef sums more (or differently), so days summed
# before are summed again, and read raw until they are.
VERSION = 1
TOTAL = ""  # the dimension of a day's totals
VISIT_DIMENSIONS = tuple(VISIT_SQL)
# Event dimensions rolled up besides properties: page and hostname count pageviews, name
# every hit but engagement (as sqlite_reports.hits_by does; _Day._hit_values).
HIT_DIMENSIONS = ("event:page", "event:hostname", "event:name")
# A hit reaches the file up to a flush interval (1 s by default, longer from another process
# or behind a busy writer) after it came. Today is summed again at every build, so one stored
# after a build shows at the next; a past day is summed again if one of its visits took a hit
# within this many seconds before its last build (_current), so none is missed there either.
MARGIN = 300

# What a missing value is stored as: key columns cannot be NULL (0011_rollups.sql).
NONE = b""

COUNTS = ("visitors", "visits", "pageviews", "events", "bounces", "duration_ms", "scroll_sum",
          "scroll_pages")  # fmt: skip

# -- building ---------------------------------------------------------------------------------

# In a segment (Segment.sql): `{segment}` its conditions on the visit `v`, `{matched}` that
# the visit had a hit its event filters keep (any time before :late, the day's last hit).
DAY_VISITS = f"""
SELECT v.id, v.visitor_id, v.previous_started, v.pageviews, v.pageviews + v.events,
       v.pageviews <= 1 AND v.interactions = 0, MAX((v.ended - v.started) * 1000, v.engaged_ms),
       v.scroll_sum, v.scroll_pages, {", ".join(VISIT_SQL[d] for d in VISIT_DIMENSIONS)}
FROM visits AS v
WHERE v.site_id = :site AND v.started >= :start AND v.started < :covered {{segment}} {{matched}}
"""

# In a segment, the hits of its visits (`{visit}` joins them) that its event filters keep
# (`{hit}`); with event filters, each with its visit's values (`{columns}`), since its
# visit's pageviews are then those hits (as sqlite_reports.grouped counts them).
DAY_HITS = """
SELECT e.visitor_id, e.visit_id, e.name, e.path, e.hostname, e.props {columns}
FROM events AS e {visit}
WHERE e.site_id = :site AND e.ts >= :start AND e.ts < :covered AND e.name != 'engagement'
  {segment} {hit}
"""

# The earlier hits of some visitors, and the earlier visits those hits belong to: where each
# was last seen with each value before the day. The list becomes a lookup table (IN), read
# against one pass over the site's earlier hits: as a join, SQLite scanned those hits once per
# visitor (6 s for three at 10M events). NOTE: that pass grows with the site's history; a
# table of where consented visitors were last seen (their IDs are the ones that come back
# after days) would make it a lookup per visitor.
EARLIER_HITS = """
SELECT e.visitor_id, e.visit_id, e.ts, e.name, e.path, e.hostname, e.props
FROM events AS e {visit}
WHERE e.site_id = :site AND e.ts < {until} AND e.name != 'engagement'
  AND e.visitor_id IN (SELECT value FROM json_each(:visitors)) {segment} {hit}
"""

EARLIER_VISITS = f"""
SELECT v.visitor_id, v.started, {", ".join(VISIT_SQL[d] for d in VISIT_DIMENSIONS)}
FROM json_each(:visits) AS j
CROSS JOIN visits AS v ON v.id = j.value
WHERE v.started < :start {{segment}}
"""

# The property names summed on earlier days: a day sums `(none)` for each of them too, so a
# period that asks for one counts the hits without it on every day (see by_hit).
EARLIER_KEYS = """
SELECT DISTINCT dimension FROM rollups
WHERE site_id = :site AND segment = :segment
  AND dimension >= 'event:props:' AND dimension < 'event:props;'
  AND dimension != :every AND day < :day
"""
PROPS = "event:props:"
# All non-engagement hits, as `(none)`: what a property no hit had yet, on a day before its
# first, stands for.
EVERY_HIT = "event:props:*"
NO_VALUE = "(none)"


def by_hit(dimension: str) -> bool:
    """Whether rollups sum a dimension by hits (as opposed to visits)."""
    return dimension in HIT_DIMENSIONS or dimension.startswith(PROPS)


# Open visits that started before a day's end: while there is one, the day can still change.
STILL_OPEN = """
SELECT 1 FROM visits INDEXED BY visits_open
WHERE site_id = :site AND open = 1 AND started < :end LIMIT 1
"""

INSERT_ROLLUP = """
INSERT INTO rollups (site_id, segment, dimension, day, value, visitors, visits, pageviews,
                     events, bounces, duration_ms, scroll_sum, scroll_pages)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

INSERT_RETURNS = """
INSERT INTO rollup_returns (site_id, segment, dimension, day, value, previous_day, visitors,
                            visits)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""


@dataclass(frozen=True)
class Segment:
    """What a build sums: the whole site (id 0), or what a set of filters keeps of it
    (0012_segments.sql). Filters on visit dimensions keep visits, and their hits; filters on
    event dimensions keep the visits that had such a hit, and those hits alone, as a raw
    query does (sqlite_reports.Plan)."""

    id: int = 0
    filters: tuple[Filter, ...] = ()

    @cached_property
    def _sql(self) -> tuple[str, str, dict[str, Any]]:
        # The raw reports' own conditions (sqlite_reports._condition), so a segment's sums
        # keep exactly the visits and hits a raw query with those filters keeps.
        sql = Sql()
        visits = hits = ""
        for f in self.filters:
            if f.dimension in VISIT_SQL:
                visits += " AND " + _condition(sql, VISIT_SQL[f.dimension], f)
            elif f.dimension == GOAL:
                hits += " AND " + _goal_sql(sql, f)
            else:
                hits += " AND " + _condition(sql, _hit_column(sql, f.dimension), f)
        return visits, hits, sql.params

    @property
    def params(self) -> dict[str, Any]:
        return self._sql[2]

    @property
    def by_hits(self) -> bool:
        """Whether it filters hits: a visit's pageviews are then the hits it keeps."""
        return bool(self._sql[1])

    def sql(self, template: str) -> str:
        """A statement over hits `e` (and visits `v`) with the segment's conditions in it."""
        visits, hits, _ = self._sql
        join, matched, columns = "", "", ""
        if self.id:
            # A hit without a visit counts in the totals, as in a raw query, unless the
            # filters are on visits.
            join = f"{'' if visits else 'LEFT '}JOIN visits AS v ON v.id = e.visit_id"
        if hits:
            matched = "AND " + with_hit(hits.removeprefix(" AND "))
            columns = ", v.id IS NOT NULL, " + ", ".join(VISIT_SQL[d] for d in VISIT_DIMENSIONS)
        # An earlier visit is in the segment by a hit its event filters keep, which may have
        # come after midnight (add_earlier counts the hits of the day itself no further).
        until = ":covered" if hits else ":start"
        return template.format(
            visit=join, segment=visits, hit=hits, matched=matched, columns=columns, until=until
        )


def _hit_column(sql: Sql, dimension: str) -> str:
    return _props_column(sql, dimension) if dimension.startswith(PROPS) else EVENT_SQL[dimension]


WHOLE = Segment()


def segment_key(filters: Sequence[Condition], goals: Sequence[GoalLike] = ()) -> str | None:
    """A filter set as segments.filters stores it (the same set in any order, one key), or
    None when it cannot be one: a group (`or` across dimensions) or behavioural filter, which
    read raw. A goal filter is keyed by what its goals are (`page:/thanks*`, `event:Signup`),
    not by their names: a goal removed and added again otherwise is another segment."""
    simple = [f for f in filters if isinstance(f, Filter)]
    if not filters or len(simple) < len(filters):
        return None
    by_name = {g.display_name: g for g in goals}
    key = []
    for f in simple:
        values = list(f.values)
        if f.dimension == GOAL:
            found = [by_name.get(v) for v in values]
            if f.op not in ("is", "is_not") or None in found:
                return None
            values = [_goal_value(g) for g in found if g is not None]
        elif not (
            f.dimension in VISIT_SQL or f.dimension in EVENT_SQL or f.dimension.startswith(PROPS)
        ):
            return None
        key.append([f.dimension, f.op, sorted(values)])
    return json.dumps(sorted(key))


def _goal_value(goal: GoalLike) -> str:
    return f"event:{goal.event_name}" if goal.kind == "event" else f"page:{goal.page_path}"


def _goal_sql(sql: Sql, f: Filter) -> str:
    """A goal filter keyed by what its goals are (segment_key), as the condition on a hit `e`
    that a raw query writes for those goals."""
    goals = []
    for value in f.values:
        kind, target = value.split(":", 1)
        event, page = (target, None) if kind == "event" else (None, target)
        goals.append(Goal(0, kind, value, event_name=event, page_path=page))
    hit = _goal_condition(sql, goals, f.values)
    return f"NOT {hit}" if f.negated else hit


def segment_of(segment_id: int, key: str) -> Segment:
    return Segment(segment_id, tuple(Filter(d, op, tuple(v)) for d, op, v in json.loads(key)))


def connect(path: str) -> sqlite3.Connection:
    """A connection for the builder, with the report functions the SQL calls."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    for name, arity, function in FUNCTIONS:
        conn.create_function(name, arity, function, deterministic=True)
    return conn


# -- the builder's process (SQLiteStorage.build_rollups) ---------------------------------------

_stop: Any = None  # the Event the server sets to end a build between two days


def _wall() -> int:
    """Now, by the clock (leases and asks); `now` in a build is the data's time."""
    return int(datetime.now().timestamp())


def builder_started(stop: Any) -> None:
    """Set up the builder's process: Ctrl-C is the server's to handle, and it tells this
    process to stop through `stop`."""
    global _stop
    _stop = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_all(
    path: str, sites: Sequence[Site], now: int, asked: dict[tuple[int, str], int]
) -> tuple[int, bool]:
    """Record the segments reports asked for, then bring every site's rollups, and then its
    segments', up to date, if no other process holds the lease. Returns the days built, and
    whether segments were left for the next build (SEGMENT_BUDGET)."""
    conn = connect(path)

    def stopped() -> bool:
        # Asked between two days: the lease is renewed as the build goes on, so a long first
        # build (a year of a big site) is not joined by another process's.
        take_lease(conn, _wall(), renew=True)
        return _stop is not None and _stop.is_set()

    try:
        # Every process notes what its reports asked for; the one holding the lease sums.
        if asked:
            note_asked(conn, [(*key, at) for key, at in asked.items()])
        # One process builds at a time (`serve --workers N` starts N builders); a lease rather
        # than a lock, so a process killed mid-build holds it for minutes only.
        if not take_lease(conn, _wall()):
            return 0, False
        try:
            built = 0
            for site in sites:
                built += build(conn, site, now, stopped)
            # Segments after every site's whole, within a budget (SEGMENT_BUDGET).
            deadline = _wall() + SEGMENT_BUDGET

            def spent() -> bool:
                return stopped() or _wall() > deadline

            for site in sites:
                built += build_segments(conn, site, now, _wall(), spent)
            return built, _wall() > deadline
        finally:
            release_lease(conn)
    finally:
        conn.close()


LEASE = "rollups_lease"
# How long a lease lasts unless renewed: a day of a 10M-event month sums in ~10 s, and the
# builder renews it between days.
LEASE_FOR = 15 * 60


def take_lease(conn: sqlite3.Connection, now: int, renew: bool = False) -> bool:
    """Whether this process may build now (no other holds an unexpired lease); `renew`: this
    process holds it and extends it."""
    cursor = conn.execute(
        "INSERT INTO meta (key, value) VALUES (:key, :until) ON CONFLICT (key) DO UPDATE"
        " SET value = :until WHERE :renew OR CAST(value AS INTEGER) <= :now",
        {"key": LEASE, "until": str(now + LEASE_FOR), "now": now, "renew": renew},
    )
    return cursor.rowcount == 1


def release_lease(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = '0' WHERE key = ?", (LEASE,))


def midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, time(), tzinfo=zone).timestamp())


def build(
    conn: sqlite3.Connection,
    site: Site,
    now: int,
    stop: Callable[[], bool] | None = None,
    segment: Segment = WHOLE,
) -> int:
    """Roll up every day of the site (or of one of its segments) that is not final and
    summed in its current time zone, from the day of its first visit to today (a segment: at
    most SEGMENT_DAYS back). Returns how many days were (re)built. `stop` set ends it between
    two days (the server is shutting down)."""
    zone = ZoneInfo(site.timezone)
    (first,) = conn.execute(
        "SELECT MIN(started) FROM visits WHERE site_id = ?", (site.id,)
    ).fetchone()
    if first is None:
        return 0
    summed = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT day, timezone, final, covered, end, built_at FROM rollup_days"
            " WHERE site_id = ? AND segment = ? AND version = ? AND day < 'A'",
            (site.id, segment.id, VERSION),
        )
    }
    day = datetime.fromtimestamp(first, zone).date()
    today = datetime.fromtimestamp(now, zone).date()
    if segment.id:
        day = max(day, today - timedelta(days=SEGMENT_DAYS - 1))
    days = [day + timedelta(days=n) for n in range((today - day).days + 1)]
    if segment.id:
        days.reverse()  # newest first: the last 7 and 30 days answer soonest
    built = 0
    for day in days:
        if stop and stop():
            break
        was = summed.get(day.isoformat())
        if was is None or was[0] != site.timezone or not _current(conn, site, day, was, segment):
            built += build_day(conn, site, day, now, segment=segment)
    built += _build_weeks(conn, site, now, stop, segment)
    _build_spans(conn, site, today, segment)
    return built


# A segment sums this many days back (a year and its month's comparison: what the dashboard
# can ask under a filter). Longer ranges under it read raw rows.
SEGMENT_DAYS = 400
# Segments summed per site, the most recently asked for: each one costs a build of its own.
SEGMENTS = 20
# A segment nobody asked for in this long is dropped, with its rows.
SEGMENT_KEPT = 30 * 86400
# Seconds of segments a build sums at most before it ends (and the next starts at once, the
# sites' today first): a new segment's year on a big site is many minutes of summing, and the
# sites' own sums must not wait that long.
SEGMENT_BUDGET = 60

ASKED = """
INSERT INTO segments (site_id, filters, asked_at) VALUES (?, ?, ?)
ON CONFLICT (site_id, filters) DO UPDATE SET asked_at = MAX(asked_at, excluded.asked_at)
"""


@contextlib.contextmanager
def _writing(conn: sqlite3.Connection) -> Iterator[None]:
    """One short write transaction: rolled back if anything in it fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def note_asked(conn: sqlite3.Connection, asked: Iterable[tuple[int, str, int]]) -> None:
    """Record the segments reports asked for: (site, segment_key, when)."""
    with _writing(conn):
        conn.executemany(ASKED, asked)


def build_segments(
    conn: sqlite3.Connection, site: Site, now: int, clock: int,
    stop: Callable[[], bool] | None = None,
) -> int:  # fmt: skip
    """Build the segments of a site asked for lately (`clock`: the wall time, which asks are
    stamped with; `now`: the data's), and drop the others with their rows. `stop` set ends
    it between two days."""
    rows = conn.execute(
        "SELECT id, filters, asked_at FROM segments WHERE site_id = ? ORDER BY asked_at DESC",
        (site.id,),
    ).fetchall()
    built = 0
    for n, (segment_id, filters, asked_at) in enumerate(rows):
        if n >= SEGMENTS or asked_at < clock - SEGMENT_KEPT:
            _drop_segment(conn, site.id, segment_id)
        elif not (stop and stop()):
            built += build(conn, site, now, stop, segment_of(segment_id, filters))
    return built


def _drop_segment(conn: sqlite3.Connection, site_id: int, segment_id: int) -> None:
    with _writing(conn):
        for table in ("rollup_days", "rollups", "rollup_returns"):
            conn.execute(
                f"DELETE FROM {table} WHERE site_id = ? AND segment = ?", (site_id, segment_id)
            )
        conn.execute("DELETE FROM segments WHERE id = ?", (segment_id,))


# The last hit of the visits that started in a day (or up to when it is covered): where a
# segment looks for the hits that its event filters keep.
# A site's rows deleted (an erasure, a purge, the site's deletion) bump its count here, in the
# transaction that deletes them. A build stores a day only if the count is what its snapshot
# read: one that summed rows since deleted would put their counts back into the sums.
DELETED_COUNT = "SELECT value FROM meta WHERE key = 'rows_deleted:' || :site"
ROWS_DELETED = """
INSERT INTO meta (key, value) VALUES ('rows_deleted:' || :site_id, '1')
ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1
"""


def _deleted_count(conn: sqlite3.Connection, site_id: int) -> str | None:
    row = conn.execute(DELETED_COUNT, {"site": site_id}).fetchone()
    return None if row is None else str(row[0])


LAST_HIT = """
SELECT MAX(ended) FROM visits
WHERE site_id = :site AND started >= :start AND started < :covered
"""

# Visits of a day that a hit has changed since a time: each hit moves its visit's end.
CHANGED = """
SELECT 1 FROM visits
WHERE site_id = :site AND started >= :start AND started < :end AND ended >= :since LIMIT 1
"""


def _current(
    conn: sqlite3.Connection, site: Site, day: date, was: Sequence[Any], segment: Segment
) -> bool:
    """Whether a day summed whole is still what its visits say: final, or none of them has
    taken a hit since (yesterday stops changing an hour or so after midnight, and summing it
    again at every build cost 9 s at 10M events a month). One that has no open visit left
    becomes final here."""
    _, final, covered, end, built_at = was
    if final:
        return True
    if covered != end:
        return False  # summed while it was today
    start = midnight(day, ZoneInfo(site.timezone))
    params = {"site": site.id, "start": start, "end": end, "since": built_at - MARGIN}
    if conn.execute(CHANGED, params).fetchone() is not None:
        return False
    if conn.execute(STILL_OPEN, params).fetchone() is None:
        conn.execute(
            "UPDATE rollup_days SET final = 1 WHERE site_id = ? AND segment = ? AND day = ?",
            (site.id, segment.id, day.isoformat()),
        )
    return True


def week_label(monday: date) -> str:
    """A week's rows are stored under its Monday's date after a W, so that a range of days
    (day >= '2026-11-04' AND day <= '2026-12-03') never takes them in."""
    return "W" + monday.isoformat()


def _build_weeks(
    conn: sqlite3.Connection,
    site: Site,
    now: int,
    stop: Callable[[], bool] | None,
    segment: Segment = WHOLE,
) -> int:
    """Sum each week (Monday to Sunday) whose seven days are final, once: a month's long
    tail of pages is then four weeks' rows and a few days', where it was thirty days' (the
    GROUP BY's sort is most of a breakdown's cost, ~0.5 us a row)."""
    rows = conn.execute(
        "SELECT day, timezone, final FROM rollup_days"
        " WHERE site_id = ? AND segment = ? AND version = ?",
        (site.id, segment.id, VERSION),
    ).fetchall()
    final = {day for day, timezone, done in rows if done and timezone == site.timezone}
    built = 0
    for label in sorted(final):
        if not label[0].isdigit():
            continue
        monday = date.fromisoformat(label)
        week = [(monday + timedelta(days=n)).isoformat() for n in range(7)]
        if monday.weekday() != 0 or week_label(monday) in final or not set(week) <= final:
            continue
        if stop and stop():
            break
        built += build_day(conn, site, monday, now, days=7, segment=segment)
    return built


# The ranges a dashboard opens on, ending today: summed whole at each build from the day and
# week rows, as a report over them would, so that such a report reads one row a value (a
# month of pages: 3,000 rows, where its days and weeks are 30,000 to 90,000).
SPANS = (7, 30)


def span_label(days: int, last: date) -> str:
    return f"S{days}:{last.isoformat()}"


def with_weeks(days: Sequence[str], weeks: Iterable[str]) -> tuple[str, ...]:
    """The labels to read for `days`: a week's where all seven of its days are among them."""
    left = set(days)
    labels = []
    for label in weeks:
        monday = date.fromisoformat(label[1:])
        week = {(monday + timedelta(days=n)).isoformat() for n in range(7)}
        if week <= left:
            left -= week
            labels.append(label)
    return (*labels, *sorted(left))


# A span's rows: its labels' sums, less the visitors (and visits) each value had already had
# on an earlier day of the span. Properties are left out: their days may lack a property's
# rows, which only a read knows how to stand in for (sqlite_rollup_reports.by_hit).
SPAN_ROWS = """
WITH summed AS (
    SELECT dimension, value, SUM(visitors) AS visitors, SUM(visits) AS visits,
           SUM(pageviews) AS pageviews, SUM(events) AS events, SUM(bounces) AS bounces,
           SUM(duration_ms) AS duration_ms, SUM(scroll_sum) AS scroll_sum,
           SUM(scroll_pages) AS scroll_pages
    FROM rollups
    WHERE site_id = :site AND segment = :segment AND day IN (SELECT value FROM json_each(:labels))
      AND dimension NOT LIKE 'event:props:%'
    GROUP BY dimension, value
), returned AS (
    SELECT dimension, value, SUM(visitors) AS visitors, SUM(visits) AS visits
    FROM rollup_returns
    WHERE site_id = :site AND segment = :segment
      AND day IN (SELECT value FROM json_each(:labels)) AND previous_day >= :first
      AND dimension NOT LIKE 'event:props:%'
    GROUP BY dimension, value
)
INSERT INTO rollups (site_id, segment, dimension, day, value, visitors, visits, pageviews,
                     events, bounces, duration_ms, scroll_sum, scroll_pages)
SELECT :site, :segment, s.dimension, :label, s.value, s.visitors - COALESCE(r.visitors, 0),
       s.visits - COALESCE(r.visits, 0), s.pageviews, s.events, s.bounces, s.duration_ms,
       s.scroll_sum, s.scroll_pages
FROM summed AS s LEFT JOIN returned AS r ON r.dimension = s.dimension AND r.value = s.value
"""


def _build_spans(
    conn: sqlite3.Connection, site: Site, today: date, segment: Segment = WHOLE
) -> None:
    """Sum each of SPANS ending today, in place of the last build's."""
    # The days held are read inside the write: an erasure in between may delete some.
    with _writing(conn):
        rows = conn.execute(
            "SELECT day, timezone, start, covered, end, final FROM rollup_days"
            " WHERE site_id = ? AND segment = ? AND version = ? AND day >= ? AND day <= ?",
            (site.id, segment.id, VERSION, (today - timedelta(days=max(SPANS) - 1)).isoformat(),
             "W" + "9"),
        ).fetchall()  # fmt: skip
        days = {row[0]: row for row in rows if row[0][0].isdigit() and row[1] == site.timezone}
        weeks = [row[0] for row in rows if row[0].startswith("W") and row[1] == site.timezone]
        for table in ("rollups", "rollup_days"):
            conn.execute(
                f"DELETE FROM {table} WHERE site_id = ? AND segment = ?"
                " AND day > 'S' AND day < 'T'",
                (site.id, segment.id),
            )
        last = days.get(today.isoformat())
        for length in SPANS:
            if last is None:
                break
            span = [(today - timedelta(days=n)).isoformat() for n in range(length - 1, -1, -1)]
            held = [day for day in span if day in days]
            # Contiguous to today, from the span's first day or the site's first summed one.
            if not held or held != span[len(span) - len(held) :]:
                continue
            label = span_label(length, today)
            conn.execute(
                SPAN_ROWS,
                {"site": site.id, "segment": segment.id, "label": label, "first": held[0],
                 "labels": json.dumps(with_weeks(held, weeks))},
            )  # fmt: skip
            conn.execute(
                "INSERT INTO rollup_days (site_id, segment, day, timezone, start, covered, end,"
                " built_at, final, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (site.id, segment.id, label, site.timezone, days[held[0]][2], last[3], last[4],
                 last[3], VERSION),
            )  # fmt: skip


def build_day(
    conn: sqlite3.Connection,
    site: Site,
    day: date,
    now: int,
    days: int = 1,
    segment: Segment = WHOLE,
) -> int:
    """Sum one local day (or `days` from it: a week) and store it in place of what was there.
    Returns 1 if stored."""
    zone = ZoneInfo(site.timezone)
    start, end = midnight(day, zone), midnight(day + timedelta(days=days), zone)
    covered = min(end, now)
    if covered <= start:
        return 0
    params = {"site": site.id, "segment": segment.id, "start": start, "covered": covered,
              "end": end, **segment.params}  # fmt: skip
    # One snapshot for everything read, so visits and hits agree with each other.
    conn.execute("BEGIN")
    try:
        deleted = _deleted_count(conn, site.id)
        if segment.by_hits:
            (last,) = conn.execute(LAST_HIT, params).fetchone()
            params["late"] = (last or start) + 1
        final = covered == end and conn.execute(STILL_OPEN, params).fetchone() is None
        day_visits = conn.execute(segment.sql(DAY_VISITS), params).fetchall()
        day_hits = conn.execute(segment.sql(DAY_HITS), params).fetchall()
        earlier = {**params, "day": day.isoformat(), "every": EVERY_HIT}
        keys = {r[0] for r in conn.execute(EARLIER_KEYS, earlier)}
        summed = _Day(
            zone, start, keys | _keys(row[5] for row in day_hits), bool(segment.id),
            segment.by_hits,
        )  # fmt: skip
        summed.add_visits(day_visits)
        summed.add_hits(day_hits)
        earlier_hits = (
            conn.execute(
                segment.sql(EARLIER_HITS),
                {**params, "visitors": json.dumps(sorted(summed.look_back))},
            ).fetchall()
            if summed.look_back
            else []
        )
        visit_ids = sorted({row[1] for row in earlier_hits if row[1] is not None})
        earlier_visits = conn.execute(
            segment.sql(EARLIER_VISITS), {**params, "visits": json.dumps(visit_ids)}
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    summed.add_earlier(earlier_visits, earlier_hits)
    label = day.isoformat() if days == 1 else week_label(day)
    store = {"site": site.id, "segment": segment.id, "day": label}
    with _writing(conn):
        if _deleted_count(conn, site.id) != deleted:
            return 0  # summed rows deleted since: the next build sums what is left
        for table in ("rollups", "rollup_returns"):
            conn.execute(
                f"DELETE FROM {table} WHERE site_id = :site AND segment = :segment AND day = :day",
                store,
            )
        conn.executemany(INSERT_ROLLUP, summed.rows(site.id, segment.id, label))
        conn.executemany(INSERT_RETURNS, summed.returns(site.id, segment.id, label))
        conn.execute(
            "INSERT OR REPLACE INTO rollup_days (site_id, segment, day, timezone, start,"
            " covered, end, built_at, final, version) VALUES (:site, :segment, :day,"
            " :timezone, :start, :covered, :end, :now, :final, :version)",
            {**store, "timezone": site.timezone, "start": start, "covered": covered,
             "end": end, "now": now, "final": int(final), "version": VERSION},
        )  # fmt: skip
    return 1


@lru_cache(maxsize=4096)
def _props(text: str | None) -> dict[str, Any]:
    """A hit's properties, valued as SQLite's json_extract gives them (a missing or null one
    is absent: `(none)`)."""
    if not text:
        return {}
    try:
        given = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(given, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, dict | list):
            value = json.dumps(value, separators=(",", ":"))
        out[key] = value
    return out


def _keys(props: Iterable[str | None]) -> set[str]:
    return {PROPS + key for text in set(props) for key in _props(text)}


class _Day:
    """One day being summed: counts per (dimension, value), the visitors (and, for event
    dimensions, visits) behind each, and where each was last seen with it before the day."""

    def __init__(
        self,
        zone: ZoneInfo,
        start: int,
        keys: Iterable[str] = (),
        segment: bool = False,
        by_hits: bool = False,
    ) -> None:
        self.zone, self.start = zone, start
        # In a segment a visitor's previous visit may have been outside it: the day's
        # visitors are counted as a set, and their earlier days looked up, as a value's are.
        self.segment = segment
        # Under event filters a visit's pageviews and events are the hits they keep, each
        # counted on its own day (Segment.by_hits).
        self.by_hits = by_hits
        # Property names, as dimensions: event:props:NAME.
        self.keys = sorted(k if k.startswith(PROPS) else PROPS + k for k in keys)
        self.keys = [k for k in self.keys if k != EVERY_HIT]
        self.counts: dict[tuple[str, Any], list[int]] = {}
        self.visitors: dict[tuple[str, Any], set[int]] = defaultdict(set)
        self.visits: dict[tuple[str, Any], set[int]] = defaultdict(set)
        self.total_returns: dict[str, int] = defaultdict(int)
        self.day_visits: set[int] = set()
        self.look_back: set[int] = set()  # visitors who may have been seen before the day
        self.seen: dict[tuple[str, Any, int], str] = {}  # (dimension, value, id): last day
        self.seen_visits: dict[tuple[str, Any, int], str] = {}

    def _count(self, key: tuple[str, Any]) -> list[int]:
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0] * len(COUNTS)
        return counts

    def _day(self, ts: int) -> str:
        return datetime.fromtimestamp(ts, self.zone).date().isoformat()

    def add_visits(self, rows: Iterable[Sequence[Any]]) -> None:
        for (
            visit_id,
            visitor,
            previous,
            pageviews,
            events,
            bounce,
            duration,
            ssum,
            spages,
            *values,
        ) in rows:
            self.day_visits.add(visit_id)
            if self.by_hits:
                pageviews = events = 0  # add_hits counts them
            figures = (1, pageviews, events, bounce, duration, ssum, spages)
            first_today = previous is None or previous < self.start
            total = self._count((TOTAL, None))
            total[0] += first_today
            for i, figure in enumerate(figures, 1):
                total[i] += figure
            returning = previous is not None and previous < self.start
            if self.segment:
                self.visitors[(TOTAL, None)].add(visitor)
            elif returning:
                self.total_returns[self._day(previous)] += 1
            # In a segment the visit before may be today's and outside it, with one of the
            # segment's on an earlier day still: any visitor seen before is looked up.
            if returning or (self.segment and previous is not None):
                self.look_back.add(visitor)
            for dimension, value in zip(VISIT_DIMENSIONS, values, strict=True):
                key = (dimension, value)
                counts = self._count(key)
                for i, figure in enumerate(figures, 1):
                    counts[i] += figure
                self.visitors[key].add(visitor)

    def add_hits(self, rows: Iterable[Sequence[Any]]) -> None:
        for visitor, visit_id, name, path, hostname, props, *visit in rows:
            if visit_id is not None and visit_id not in self.day_visits:
                self.look_back.add(visitor)  # a visit that started before the day
            pageview = name == "pageview"
            if self.by_hits:
                self._add_to_visit(pageview, visit)
            for dimension, value in self._hit_values(name, path, hostname, props):
                key = (dimension, value)
                counts = self._count(key)
                counts[2] += pageview
                counts[3] += 1
                self.visitors[key].add(visitor)
                if visit_id is not None:
                    self.visits[key].add(visit_id)

    def _add_to_visit(self, pageview: bool, visit: Sequence[Any]) -> None:
        """A kept hit's pageview and event, on the totals and on its visit's values (a
        visit that started on an earlier day too: hits count on the day they came)."""
        has_visit, *values = visit
        keys = [(TOTAL, None)]
        if has_visit:
            keys += zip(VISIT_DIMENSIONS, values, strict=True)
        for key in keys:
            counts = self._count(key)
            counts[2] += pageview
            counts[3] += 1

    def _hit_values(
        self, name: str, path: str, hostname: str, props: str | None
    ) -> list[tuple[str, Any]]:
        values: list[tuple[str, Any]] = [("event:name", name), (EVERY_HIT, NO_VALUE)]
        if name == "pageview":
            values += [("event:page", path), ("event:hostname", hostname)]
        if self.keys:
            given = _props(props)
            values += [(k, given.get(k[len(PROPS) :], NO_VALUE)) for k in self.keys]
        return values

    def add_earlier(self, visits: Iterable[Sequence[Any]], hits: Iterable[Sequence[Any]]) -> None:
        """Where the day's visitors were last seen with each value before it."""
        for visitor, started, *values in visits:
            day = self._day(started)
            pairs = list(zip(VISIT_DIMENSIONS, values, strict=True))
            if self.segment:
                pairs.append((TOTAL, None))  # counted as a set in a segment (add_visits)
            for dimension, value in pairs:
                key = (dimension, value, visitor)
                if self.seen.get(key, "") < day:
                    self.seen[key] = day
        for visitor, visit_id, ts, name, path, hostname, props in hits:
            if ts >= self.start:
                continue  # the day's own (Segment.sql): for its visits that started earlier
            day = self._day(ts)
            for dimension, value in self._hit_values(name, path, hostname, props):
                key = (dimension, value, visitor)
                if self.seen.get(key, "") < day:
                    self.seen[key] = day
                if visit_id is not None:
                    vkey = (dimension, value, visit_id)
                    if self.seen_visits.get(vkey, "") < day:
                        self.seen_visits[vkey] = day

    def rows(self, site_id: int, segment: int, label: str) -> Iterable[tuple[Any, ...]]:
        for (dimension, value), counts in self.counts.items():
            if dimension != TOTAL or self.segment:
                counts[0] = len(self.visitors[(dimension, value)])
                if by_hit(dimension):
                    counts[1] = len(self.visits[(dimension, value)])
            value = NONE if value is None else value
            yield (site_id, segment, dimension, label, value, *counts)

    def returns(self, site_id: int, segment: int, label: str) -> Iterable[tuple[Any, ...]]:
        back: dict[tuple[str, Any, str], list[int]] = {}
        for previous_day, n in self.total_returns.items():
            back[(TOTAL, None, previous_day)] = [n, 0]
        for (dimension, value), ids in self.visitors.items():
            for visitor in ids & self.look_back:
                day = self.seen.get((dimension, value, visitor))
                if day is not None:
                    back.setdefault((dimension, value, day), [0, 0])[0] += 1
        for (dimension, value), ids in self.visits.items():
            for visit_id in ids - self.day_visits:
                day = self.seen_visits.get((dimension, value, visit_id))
                if day is not None:
                    back.setdefault((dimension, value, day), [0, 0])[1] += 1
        for (dimension, value, day), (visitors, visits) in back.items():
            value = NONE if value is None else value
            yield (site_id, segment, dimension, label, value, day, visitors, visits)

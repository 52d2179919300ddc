"""The report engine's SQL for SQLite: a Query, metrics and a dimension in, rows out.

Two tables answer everything. `visits` (one row a visit, kept by the writer) answers visit
metrics and visit dimensions; `events` answers event dimensions (page, event name, props,
goals) and event filters. A query without event filters reads visits alone, and a visit counts
with its pageviews in the period it started in; with an event filter, a visit counts when one
of its hits matches, and pageviews and events are the matching hits of the period.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..goals import page_pattern_glob
from ..reports import sources
from ..reports.filters import (
    GOAL,
    PROPS,
    AnyOf,
    Condition,
    Filter,
    FilterError,
    HasDone,
    on_visits,
)

if TYPE_CHECKING:
    from ..reports.filters import GoalLike
    from ..reports.query import Query

# Hits of a visit come after its start; a visit stays open for at most a day and a bit
# (visits.OPEN_FOR), so its matching hits lie within two days of the period's end.
LATE_HITS = 2 * 86400
DIRECT = "Direct / None"

# Each dimension as SQL over a visit `v` or a hit `e`.
VISIT_SQL = {
    "visit:entry_page": "v.entry_page",
    "visit:exit_page": "v.exit_page",
    "visit:hostname": "v.hostname",
    "visit:entry_page_hostname": "v.hostname",
    "visit:source": "zeef_source(v.referrer_host, v.utm_source)",
    "visit:channel": "zeef_channel(v.referrer_host, v.utm_source, v.utm_medium, v.utm_campaign)",
    "visit:referrer": "zeef_referrer(v.referrer_host, v.referrer_path)",
    "visit:utm_source": "v.utm_source",
    "visit:utm_medium": "v.utm_medium",
    "visit:utm_campaign": "v.utm_campaign",
    "visit:utm_content": "v.utm_content",
    "visit:utm_term": "v.utm_term",
    "visit:country": "v.country",
    "visit:region": "v.region",
    "visit:city": "v.city",
    "visit:browser": "v.browser",
    "visit:browser_version": "v.browser_version",
    "visit:os": "v.os",
    "visit:os_version": "v.os_version",
    # Stored lower-case; Plausible names device classes capitalised ("Mobile").
    "visit:device": "upper(substr(v.device, 1, 1)) || substr(v.device, 2)",
}
EVENT_SQL = {"event:page": "e.path", "event:hostname": "e.hostname", "event:name": "e.name"}

# Rates as sums over counts, in the order rollups compute them (sqlite_rollup_reports._metrics), so
# both give the same float and round the same way: AVG gave 57.49999 where 23 of 40 is 57.5.
VISIT_METRICS = """
    COUNT(DISTINCT v.visitor_id) AS visitors,
    COUNT(*) AS visits,
    SUM(v.pageviews) AS pageviews,
    SUM(v.pageviews + v.events) AS events,
    100.0 * SUM(v.pageviews <= 1 AND v.interactions = 0) / COUNT(*) AS bounce_rate,
    SUM(MAX((v.ended - v.started) * 1000, v.engaged_ms)) / 1000.0 / COUNT(*) AS visit_duration,
    1.0 * SUM(v.scroll_sum) / NULLIF(SUM(v.scroll_pages), 0) AS scroll_depth
"""
HIT_METRICS = """
    COUNT(DISTINCT e.visitor_id) AS visitors,
    COUNT(DISTINCT e.visit_id) AS visits,
    SUM(e.name = 'pageview') AS pageviews,
    COUNT(*) AS events
"""


def _source(referrer_host: str | None, utm_source: str | None) -> str:
    return sources.source(referrer_host, utm_source) or DIRECT


@lru_cache(maxsize=65536)
def _referrer(host: str | None, path: str | None) -> str:
    if not host:
        return DIRECT
    return host + (path if path and path != "/" else "")


def _channel(
    host: str | None, utm_source: str | None, utm_medium: str | None, utm_campaign: str | None
) -> str:
    return sources.channel(host, utm_source, utm_medium, utm_campaign)


# Functions the report SQL calls, registered on every reader: sources and channels from the
# maintained referrer list. Deterministic, so SQLite may reuse a
# result within a statement.
FUNCTIONS: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("zeef_source", 2, _source),
    ("zeef_channel", 4, _channel),
    ("zeef_referrer", 2, _referrer),
)


@dataclass
class Sql:
    """A WHERE clause being built, with its named parameters."""

    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name


def _condition(sql: Sql, column: str, f: Filter) -> str:
    if f.op in ("is", "is_not"):
        hit = f"{column} IN ({', '.join(sql.bind(v) for v in f.values)})"
    elif f.op in ("contains", "contains_not"):
        hit = " OR ".join(f"instr(lower({column}), {sql.bind(v.lower())}) > 0" for v in f.values)
    else:
        # GLOB runs in SQLite itself; page_pattern_glob gives it the regex's verdict.
        hit = " OR ".join(f"{column} GLOB {sql.bind(page_pattern_glob(v))}" for v in f.values)
    # A visit without a value (direct traffic has no source) is not any named value: `is_not`
    # keeps it, as Plausible's does.
    return f"({column} IS NULL OR NOT ({hit}))" if f.negated else f"({hit})"


def _props_column(sql: Sql, name: str) -> str:
    key = name[len(PROPS) :]
    return f"json_extract(e.props, {sql.bind('$.' + json.dumps(key))})"


def _goal_condition(sql: Sql, goals: Sequence[GoalLike], names: Iterable[str]) -> str:
    by_name = {g.display_name: g for g in goals}
    parts = []
    for name in names:
        goal = by_name.get(name)
        if goal is None:
            raise FilterError(f"no goal named {name!r} on this site")
        parts.append(_one_goal(sql, goal))
    return "(" + " OR ".join(parts) + ")"


def _one_goal(sql: Sql, goal: GoalLike) -> str:
    if goal.kind == "event":
        return f"e.name = {sql.bind(goal.event_name)}"
    glob = page_pattern_glob(goal.page_path or "")
    return f"(e.name = 'pageview' AND e.path GLOB {sql.bind(glob)})"


@dataclass
class Plan:
    """A query split into what filters visits and what filters hits."""

    query: Query
    goals: Sequence[GoalLike]
    sql: Sql = field(default_factory=Sql)
    visit_where: list[str] = field(default_factory=list)
    event_where: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, query: Query, goals: Sequence[GoalLike], drop: str | None = None) -> Plan:
        plan = cls(query, goals)
        for f in query.filters:
            if isinstance(f, Filter) and f.dimension == drop:
                continue
            if on_visits(f):
                plan.visit_where.append(plan.condition(f, on_hits=False))
            else:
                # A group with an event filter in it holds of a hit and its visit together,
                # as an event filter alone does: a visit is kept if one of its hits passes.
                plan.event_where.append(plan.condition(f, on_hits=True))
        return plan

    def condition(self, c: Condition, on_hits: bool) -> str:
        """SQL for a filter or group: over a visit `v`, or over a hit `e` (whose visit's
        values are looked up in visits)."""
        if isinstance(c, HasDone):
            done = with_hit(self.condition(c.hit, on_hits=True), c.negated)
            return self._on_visit(done) if on_hits else done
        if not isinstance(c, Filter):
            joiner = " OR " if isinstance(c, AnyOf) else " AND "
            return "(" + joiner.join(self.condition(item, on_hits) for item in c.items) + ")"
        if c.dimension in VISIT_SQL:
            visit = _condition(self.sql, VISIT_SQL[c.dimension], c)
            return self._on_visit(visit) if on_hits else visit
        if c.dimension == GOAL:
            hit = _goal_condition(self.sql, self.goals, c.values)
            return f"NOT {hit}" if c.negated else hit
        return _condition(self.sql, self.event_column(c.dimension), c)

    @staticmethod
    def _on_visit(visit: str) -> str:
        """A condition on a visit `v`, as one on a hit `e` of it."""
        return (
            "e.visit_id IN (SELECT v.id FROM visits AS v WHERE v.site_id = :site"
            f" AND v.started >= :early AND v.started < :end AND {visit})"
        )

    def event_column(self, name: str) -> str:
        if name.startswith(PROPS):
            return _props_column(self.sql, name)
        return EVENT_SQL[name]

    @property
    def filters_events(self) -> bool:
        return bool(self.event_where)

    def visits_where(self) -> str:
        """Visits of the period (started in it) that pass every filter."""
        where = ["v.site_id = :site AND v.started >= :start AND v.started < :end"]
        where += self.visit_where
        if self.event_where:
            where.append(with_hit(" AND ".join(self.event_where)))
        return " AND ".join(where)

    def hits_where(self, pageviews_only: bool = False) -> str:
        """Hits of the period that pass every filter: their own, and their visit's."""
        where = ["e.site_id = :site AND e.ts >= :start AND e.ts < :end"]
        where.append("e.name = 'pageview'" if pageviews_only else "e.name != 'engagement'")
        where += self.event_where
        if self.visit_where:
            where.append(
                "e.visit_id IN (SELECT v.id FROM visits AS v WHERE v.site_id = :site"
                " AND v.started >= :early AND v.started < :end AND "
                + " AND ".join(self.visit_where)
                + ")"
            )
        return " AND ".join(where)

    def params(self) -> dict[str, Any]:
        q = self.query
        return {
            **self.sql.params,
            "site": q.site.id,
            "start": q.start_ts,
            "end": q.end_ts,
            "late": q.end_ts + LATE_HITS,
            "early": q.start_ts - LATE_HITS,
        }


def with_hit(where: str, negated: bool = False) -> str:
    """Visits `v` with (`negated`: without) a hit `e` that passes `where`, from the period's
    start up to :late (a visit's hits come within two days of its start)."""
    return (
        f"v.id {'NOT ' if negated else ''}IN (SELECT e.visit_id FROM events AS e"
        " WHERE e.site_id = :site AND e.ts >= :start AND e.ts < :late"
        # Not NULL: one NULL in the list and NOT IN keeps no visit at all.
        f" AND e.visit_id IS NOT NULL AND e.name != 'engagement' AND {where})"
    )


def _offset(query: Query, column: str) -> str:
    """The site's UTC offset at a UTC timestamp, piecewise over the range (DST included)."""
    segments = query.offsets()
    if len(segments) == 1:
        return f"{segments[0][1]:d}"
    cases = " ".join(
        f"WHEN {column} < {segments[i + 1][0]:d} THEN {offset:d}"
        for i, (_, offset) in enumerate(segments[:-1])
    )
    return f"(CASE {cases} ELSE {segments[-1][1]:d} END)"


def bucket_sql(query: Query, column: str) -> str:
    """The local-time bucket label of a UTC timestamp column, as Query.bucket_labels() names
    them."""
    local = f"({column} + {_offset(query, column)})"
    bucket = query.bucket
    if bucket == "week":
        return f"date({local}, 'unixepoch', 'weekday 0', '-6 days')"
    formats = {
        "minute": "%Y-%m-%d %H:%M:00",
        "hour": "%Y-%m-%d %H:00:00",
        "day": "%Y-%m-%d",
        "month": "%Y-%m-01",
    }
    return f"strftime('{formats[bucket]}', {local}, 'unixepoch')"


def day_start_sql(query: Query, column: str) -> str:
    """The UTC timestamp of the local midnight that starts the day of a UTC timestamp."""
    local = f"({column} + {_offset(query, column)})"
    midnight = f"({local} - {local} % 86400)"
    # The offset at midnight, not at the hit: they differ after a DST change that day.
    return f"({midnight} - {_offset(query, f'({midnight} - {_offset(query, column)})')})"


async def fetch(conn: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.execute(sql, params) as cursor:
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


# -- the reports --------------------------------------------------------------------------------


async def aggregate(conn: Any, query: Query, goals: Sequence[GoalLike]) -> dict[str, Any]:
    """Every metric of the period, as one row (views_per_visit and conversion rates are the
    caller's, from these)."""
    rows = await grouped(conn, query, goals)
    return rows[0] if rows else {}


async def grouped(
    conn: Any,
    query: Query,
    goals: Sequence[GoalLike],
    visit_group: str | None = None,
    hit_group: str | None = None,
    first_of: str | None = ":start",
) -> list[dict[str, Any]]:
    """Metrics per `visit_group` (SQL over a visit `v`; None: one row). With an event filter,
    pageviews and events are the matching hits, grouped by `hit_group` (SQL over a hit `e` and
    its visit `v`). `first_of`: SQL for when each group's time starts (the period's start
    for one row, a day's start for days), or None when groups are not spans of time."""
    plan = Plan.of(query, goals)
    params = plan.params()
    select = f"{visit_group} AS value," if visit_group else ""
    grouping = "GROUP BY value" if visit_group else ""
    metrics = VISIT_METRICS
    if not plan.visit_where and not plan.event_where and first_of is not None:
        # Without filters a visitor is the visit whose previous one started before the period
        # or bucket (visits.previous_started), counted without COUNT(DISTINCT)'s temporary
        # B-tree: totals for 30 days at 1M events took 246 ms that way, 91 ms this way.
        metrics = metrics.replace(
            "COUNT(DISTINCT v.visitor_id) AS visitors",
            f"SUM(v.previous_started IS NULL OR v.previous_started < {first_of}) AS visitors",
        )
    visits = await fetch(
        conn,
        f"SELECT {select} {metrics} FROM visits AS v WHERE {plan.visits_where()} {grouping}",
        params,
    )
    if not plan.filters_events:
        return visits
    join = "JOIN visits AS v ON v.id = e.visit_id" if hit_group and "v." in hit_group else ""
    hits = await fetch(
        conn,
        f"SELECT {f'{hit_group} AS value,' if hit_group else ''}"
        f" SUM(e.name = 'pageview') AS pageviews, COUNT(*) AS events"
        f" FROM events AS e {join} WHERE {plan.hits_where()} {grouping}",
        params,
    )
    by_value = {row.get("value"): row for row in hits}
    for row in visits:
        hit = by_value.get(row.get("value"), {})
        row["pageviews"] = hit.get("pageviews") or 0
        row["events"] = hit.get("events") or 0
    return visits


async def entry_bounces(
    conn: Any, query: Query, goals: Sequence[GoalLike], pages: Sequence[str] | None
) -> dict[str, dict[str, Any]]:
    """Bounce rate and visit duration of the visits that entered on each page (all pages, or
    those named): what Plausible shows for a page, since a bounce happens on the entry page."""
    plan = Plan.of(query, goals, drop="event:page")
    where = plan.visits_where()
    for f in query.filters:
        if isinstance(f, Filter) and f.dimension == "event:page":
            where += " AND " + _condition(plan.sql, "v.entry_page", f)
    if pages is not None:
        where += f" AND v.entry_page IN ({', '.join(plan.sql.bind(p) for p in pages)})"
    rows = await fetch(
        conn,
        "SELECT v.entry_page AS value, COUNT(*) AS visits,"
        " 100.0 * SUM(v.pageviews <= 1 AND v.interactions = 0) / COUNT(*) AS bounce_rate,"
        " SUM(MAX((v.ended - v.started) * 1000, v.engaged_ms)) / 1000.0 / COUNT(*)"
        " AS visit_duration"
        f" FROM visits AS v WHERE {where} GROUP BY value",
        plan.params(),
    )
    return {row["value"]: row for row in rows}


async def hits_by(
    conn: Any, query: Query, goals: Sequence[GoalLike], dimension: str
) -> list[dict[str, Any]]:
    """Hit metrics per value of an event dimension (page, hostname, name, a property)."""
    plan = Plan.of(query, goals)
    column = plan.event_column(dimension)
    if dimension.startswith(PROPS):
        column = f"COALESCE({column}, '(none)')"
    pageviews_only = dimension in ("event:page", "event:hostname")
    return await fetch(
        conn,
        f"SELECT {column} AS value, {HIT_METRICS} FROM events AS e"
        f" WHERE {plan.hits_where(pageviews_only)} GROUP BY value",
        plan.params(),
    )


async def page_engagement(
    conn: Any, query: Query, goals: Sequence[GoalLike], pages: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per page: mean deepest scroll a visit reached there, and engaged seconds per visit
    that viewed it (time on page), from the engagement hits the tracker sends."""
    plan = Plan.of(query, goals, drop="event:page")
    inside = f"e.path IN ({', '.join(plan.sql.bind(p) for p in pages)})"
    where = plan.hits_where().replace("e.name != 'engagement'", "e.name = 'engagement'")
    rows = await fetch(
        conn,
        "SELECT value, AVG(depth) AS scroll_depth, SUM(engaged) / 1000.0 AS engaged_seconds"
        " FROM (SELECT e.path AS value, MAX(e.scroll_depth) AS depth,"
        " SUM(COALESCE(e.engaged_ms, 0)) AS engaged"
        f" FROM events AS e WHERE {where} AND {inside} GROUP BY e.path, e.visit_id)"
        " GROUP BY value",
        plan.params(),
    )
    return {row["value"]: row for row in rows}


async def goal_rows(
    conn: Any, query: Query, goals: Sequence[GoalLike], names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Per goal: visitors who reached it, how often, and revenue in the goal's currency."""
    out = []
    for goal in goals:
        if names is not None and goal.display_name not in names:
            continue
        plan = Plan.of(query, goals)
        where = plan.hits_where() + " AND " + _one_goal(plan.sql, goal)
        revenue, paid = "NULL", "0"
        if goal.currency:
            # Amounts in another currency are not added in: there is no rate to convert at.
            currency = plan.sql.bind(goal.currency)
            revenue = (
                f"SUM(CASE WHEN e.revenue_currency = {currency}"
                " THEN CAST(e.revenue_amount AS REAL) END)"
            )
            paid = f"COUNT(CASE WHEN e.revenue_currency = {currency} THEN 1 END)"
        row = (
            await fetch(
                conn,
                f"SELECT COUNT(DISTINCT e.visitor_id) AS visitors, COUNT(*) AS events,"
                f" {revenue} AS revenue, {paid} AS paid FROM events AS e WHERE {where}",
                plan.params(),
            )
        )[0]
        row["value"] = goal.display_name
        row["currency"] = goal.currency
        out.append(row)
    return out


async def realtime_visitors(conn: Any, site_id: int, since: int) -> int:
    """Visitors with a hit since `since`: Plausible's current visitors."""
    rows = await fetch(
        conn,
        "SELECT COUNT(DISTINCT visitor_id) AS n FROM events WHERE site_id = :site AND ts >= :since",
        {"site": site_id, "since": since},
    )
    return int(rows[0]["n"] or 0)


async def hits_series(conn: Any, query: Query) -> list[dict[str, Any]]:
    """Visitors and pageviews by the time of their hits (not of their visits' starts): what
    realtime charts, where a visit that began an hour ago is still a visitor now."""
    bucket = bucket_sql(query, "e.ts")
    return await fetch(
        conn,
        f"SELECT {bucket} AS value, COUNT(DISTINCT e.visitor_id) AS visitors,"
        " SUM(e.name = 'pageview') AS pageviews FROM events AS e"
        " WHERE e.site_id = :site AND e.ts >= :start AND e.ts < :end GROUP BY value",
        {"site": query.site.id, "start": query.start_ts, "end": query.end_ts},
    )


async def first_visit(conn: Any, site_id: int) -> int | None:
    rows = await fetch(
        conn, "SELECT MIN(started) AS first FROM visits WHERE site_id = :site", {"site": site_id}
    )
    first = rows[0]["first"]
    return int(first) if first is not None else None


# The property names of a period's hits: those the rollups summed for its days (the primary
# key's run of `event:props:*` dimensions; week and span labels sort after the days'), and those
# of the hits stored since the last build read raw, so a name sent a minute ago is there.
SUMMED_PROPERTY_NAMES = """
SELECT DISTINCT substr(dimension, 13) AS name FROM rollups
WHERE site_id = :site AND segment = 0
  AND dimension >= 'event:props:' AND dimension < 'event:props;' AND dimension != :every
  AND day >= :first AND day <= :last
"""
SUMMED_UNTIL = """
SELECT MAX(covered) AS until FROM rollup_days
WHERE site_id = :site AND segment = 0 AND version = :version AND day >= :first AND day <= :last
"""
RAW_PROPERTY_NAMES = """
SELECT DISTINCT j.key AS name FROM events AS e, json_each(e.props) AS j
WHERE e.site_id = :site AND e.ts >= :since AND e.ts < :end AND e.props IS NOT NULL
  AND json_valid(e.props) AND json_type(e.props) = 'object'
"""


async def property_names(conn: Any, query: Query, every: str, version: int) -> list[str]:
    """Custom property names sent in the query's period, sorted (what the Goals panel's
    Properties tab offers). Unfiltered: a name is offered even where the filters leave none
    of its hits, as a form lists its options."""
    params = {"site": query.site.id, "first": query.first_day.isoformat(),
              "last": query.last_day.isoformat(), "every": every, "version": version,
              "end": query.end_ts}  # fmt: skip
    names = {row["name"] for row in await fetch(conn, SUMMED_PROPERTY_NAMES, params)}
    until = (await fetch(conn, SUMMED_UNTIL, params))[0]["until"]
    params["since"] = max(query.start_ts, int(until or 0))
    names.update(row["name"] for row in await fetch(conn, RAW_PROPERTY_NAMES, params))
    return sorted(str(name) for name in names if name)

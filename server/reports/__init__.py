"""The report engine: a Query in, figures out. The dashboard, the Stats API, the CLI and share
links all read these functions, so their numbers never disagree (definitions: docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ..storage import Storage
from . import metrics as metric
from .filters import (
    GOAL,
    PROPS,
    Condition,
    Filter,
    FilterError,
    GoalLike,
    dimension,
    is_event_dimension,
    leaves,
)
from .query import PERIODS, Query, QueryError

__all__ = [
    "PERIODS",
    "Filter",
    "FilterError",
    "Query",
    "QueryError",
    "aggregate",
    "breakdown",
    "drops",
    "realtime",
    "realtime_visitors",
    "timeseries",
    "totals",
]


async def totals(storage: Storage, query: Query) -> dict[str, Any]:
    """The headline figures: visitors, visits, pageviews, events, and how visits went. All
    but returning visitors through the engine (rollups included), so `zeef stats` says what
    the Stats API and the dashboard say at the same moment."""
    figures = await aggregate(storage, query, TOTALS)
    row = await storage.site_totals(query)
    visited = figures["visits"] > 0
    return {
        "site": query.site.domain,
        "period": query.period,
        "from": query.start.date().isoformat(),
        "to": (query.end - timedelta(days=1)).date().isoformat(),
        "visitors": figures["visitors"],
        "visits": figures["visits"],
        "pageviews": figures["pageviews"],
        # Custom events only, as this key always counted (the engine's count pageviews too).
        "events": figures["events"] - figures["pageviews"],
        # Only visitors who accepted analytics can be recognised on another day.
        "returning_visitors": int(row["returning_visitors"] or 0),
        "bounce_rate": figures["bounce_rate"] if visited else None,
        "visit_duration": figures["visit_duration"] if visited else None,
        "scroll_depth": figures["scroll_depth"],
    }


TOTALS = ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
          "scroll_depth")  # fmt: skip


async def drops(storage: Storage, query: Query) -> dict[str, int]:
    """Events the sieve kept out, by reason. Drop days are UTC days."""
    return await storage.site_drops(query)


# -- the engine ------------------------------------------------------------------------------


async def aggregate(
    storage: Storage, query: Query, metrics: Sequence[str], goals: Sequence[GoalLike] = ()
) -> dict[str, Any]:
    """{metric: value} for the whole period."""
    names = _whole(metric.check(metrics))
    row = await storage.report_totals(query, goals)
    out = _derive(row)
    if any(n in names for n in metric.NEEDS_GOAL):
        out.update(await _conversions(storage, query, goals, out.get("visitors") or 0))
    if "time_on_page" in names:
        pages = _pages_filtered(query)
        engaged = await storage.report_engagement(query, goals, pages) if pages else {}
        seconds = sum(r["engaged_seconds"] or 0 for r in engaged.values())
        out["time_on_page"] = seconds / out["visits"] if pages and out.get("visits") else None
    if _pages_filtered(query) is not None or any(
        isinstance(f, Filter) and f.dimension == "event:page" for f in query.filters
    ):
        # With a page filter, a bounce is judged on the visits that entered on that page.
        entries = await storage.report_entries(query, goals, None)
        visits = sum(r["visits"] for r in entries.values())
        out["bounce_rate"] = (
            sum(r["bounce_rate"] * r["visits"] for r in entries.values()) / visits
            if visits
            else None
        )
    return {name: metric.rounded(name, out.get(name)) for name in names}


async def timeseries(
    storage: Storage, query: Query, metrics: Sequence[str], goals: Sequence[GoalLike] = ()
) -> list[dict[str, Any]]:
    """One row a bucket (query.bucket), every bucket of the period, empty ones as zeros."""
    names = _whole(metric.check(metrics))
    for name in names:
        if name in ("time_on_page", *metric.NEEDS_GOAL) and name != "conversion_rate":
            raise metric.MetricError(f"{name} is not available in a time series")
    if query.period == "all":
        first = await storage.first_visit(query.site.id)
        query = (
            query.starting_at(first)
            if first is not None
            else query.starting_at(int(datetime.now().timestamp()))
        )
    query.check_buckets()
    rows = {row["value"]: _derive(row) for row in await storage.report_series(query, goals)}
    totals: dict[str, int] = {}
    if "conversion_rate" in names:
        unfiltered = _without_goal(query)
        base = await storage.report_series(unfiltered, goals)
        totals = {row["value"]: row["visitors"] or 0 for row in base}
    out = []
    for label in query.bucket_labels():
        row = rows.get(label) or _derive({})
        if "conversion_rate" in names:
            total = totals.get(label, 0)
            row["conversion_rate"] = 100.0 * (row.get("visitors") or 0) / total if total else 0.0
        out.append({"date": label, **{n: metric.rounded(n, row.get(n)) for n in names}})
    return out


async def breakdown(
    storage: Storage,
    query: Query,
    by: str,
    metrics: Sequence[str],
    goals: Sequence[GoalLike] = (),
    window: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Rows of {"value": ..., metric: ...} for each value of a dimension, most visitors first;
    with `window` (offset, limit), only those rows. A page's bounce rate, scroll depth and
    conversion rate are then computed for the rows shown alone: 100 pages, not 3,000."""
    names = metric.check(metrics)
    by = dimension(by)
    if "group_conversion_rate" in names and by != GOAL and not _goal_names(query):
        raise metric.MetricError(
            "group_conversion_rate needs a goal filter (event:goal==NAME) or event:goal as the"
            " dimension"
        )
    if by == GOAL:
        rows = await _goal_breakdown(storage, query, goals)
    elif is_event_dimension(by):
        rows = await storage.report_by_hit(query, goals, by)
    else:
        rows = await storage.report_by_visit(query, goals, by)
        # Plausible leaves out visits with no value where none would mean "unknown".
        rows = [r for r in rows if r["value"] is not None]
    rows.sort(key=_by_visitors)
    if window is not None:
        offset, limit = window
        rows = rows[offset : offset + limit]
    # Derived for the rows shown only: a month of pages is 3,000 rows, a page of them 100.
    rows = [_derive(r) for r in rows]
    if by == "event:page":
        await _page_extras(storage, query, goals, rows, names)
    if any(n in names for n in metric.NEEDS_GOAL) and by != GOAL:
        await _group_conversions(storage, query, goals, by, rows)
    for row in rows:
        # Within a group (a row), the rate is Plausible's group_conversion_rate.
        row["group_conversion_rate"] = row.get("conversion_rate")
    if "percentage" in names:
        # Of the period's visitors under the same filters, as Plausible's share column.
        total = int((await storage.report_totals(query, goals)).get("visitors") or 0)
        for row in rows:
            row["percentage"] = 100.0 * row["visitors"] / total if total else 0.0
    return [{"value": r["value"], **{n: metric.rounded(n, r.get(n)) for n in names}} for r in rows]


async def realtime_visitors(storage: Storage, query: Query, now: datetime) -> int:
    """Visitors with a hit in the last 5 minutes."""
    since = int(now.timestamp()) - 300
    return await storage.realtime_visitors(query.site.id, since)


async def realtime(storage: Storage, site: Any, now: datetime) -> dict[str, Any]:
    """What the realtime view shows: visitors in the last 5 minutes, and visitors and
    pageviews in each of the last 30 minutes (by the time of their hits)."""
    query = Query.realtime(site, now)
    rows = {r["value"]: r for r in await storage.report_hits_series(query)}
    minutes = []
    for label in query.bucket_labels():
        row = rows.get(label, {})
        minutes.append({"date": label, "visitors": int(row.get("visitors") or 0),
                        "pageviews": int(row.get("pageviews") or 0)})  # fmt: skip
    return {"visitors": await realtime_visitors(storage, query, now), "minutes": minutes}


def _goal_names(query: Query) -> list[str]:
    return [
        v
        for f in query.filters
        if isinstance(f, Filter) and f.dimension == GOAL and f.op == "is"
        for v in f.values
    ]


def _whole(names: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics asked of a whole period (no rows): those of a row refused by name."""
    for name in names:
        if name in metric.PER_ROW:
            raise metric.MetricError(f"{name} is a share within a breakdown: it needs a dimension")
    return names


def _by_visitors(row: dict[str, Any]) -> tuple[int, str]:
    return -int(row.get("visitors") or 0), str(row["value"])


def _derive(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("visitors", "visits", "pageviews", "events"):
        out[name] = int(out.get(name) or 0)
    out["views_per_visit"] = out["pageviews"] / out["visits"] if out["visits"] else 0.0
    for name in ("bounce_rate", "visit_duration", "scroll_depth"):
        out.setdefault(name, None)
    if out["visits"] == 0:
        out["bounce_rate"] = out["bounce_rate"] or 0
        out["visit_duration"] = out["visit_duration"] or 0
    return out


def _pages_filtered(query: Query) -> list[str] | None:
    """The pages of an `event:page is` filter, if the query has one."""
    for f in query.filters:
        if isinstance(f, Filter) and f.dimension == "event:page" and f.op == "is":
            return list(f.values)
    return None


def _without_goal(query: Query) -> Query:
    return Query(
        query.site,
        query.period,
        query.start,
        query.end,
        # A group with a goal or property in it goes too: the base is the visitors before
        # any conversion was asked of them.
        tuple(f for f in query.filters if not _about_goals(f)),
        query.interval,
    )


def _about_goals(f: Condition) -> bool:
    return any(leaf.dimension == GOAL or leaf.dimension.startswith(PROPS) for leaf in leaves(f))


async def _conversions(
    storage: Storage, query: Query, goals: Sequence[GoalLike], visitors: int
) -> dict[str, Any]:
    goal_names = _goal_names(query)
    if not goal_names:
        raise metric.MetricError(
            "conversion rate and revenue need a goal filter (event:goal==NAME)"
        )
    base = await storage.report_totals(_without_goal(query), goals)
    total = int(base.get("visitors") or 0)
    out: dict[str, Any] = {"conversion_rate": 100.0 * visitors / total if total else 0.0}
    rows = await storage.report_goals(query, goals, goal_names)
    currencies = {r["currency"] for r in rows if r["currency"]}
    if len(currencies) == 1:
        currency = currencies.pop()
        revenue = sum(r["revenue"] or 0 for r in rows)
        events = sum(r["paid"] for r in rows)
        out["total_revenue"] = {"value": round(revenue, 2), "currency": currency}
        out["average_revenue"] = {
            "value": round(revenue / events, 2) if events else 0.0,
            "currency": currency,
        }
    return out


async def _goal_breakdown(
    storage: Storage, query: Query, goals: Sequence[GoalLike]
) -> list[dict[str, Any]]:
    base = await storage.report_totals(_without_goal(query), goals)
    total = int(base.get("visitors") or 0)
    rows = []
    for r in await storage.report_goals(_without_goal(query), goals, None):
        row = _derive({"value": r["value"], "visitors": r["visitors"], "events": r["events"]})
        row["conversion_rate"] = 100.0 * (r["visitors"] or 0) / total if total else 0.0
        if r["currency"]:
            revenue = r["revenue"] or 0.0
            row["total_revenue"] = {"value": round(revenue, 2), "currency": r["currency"]}
            row["average_revenue"] = {
                "value": round(revenue / r["paid"], 2) if r["paid"] else 0.0,
                "currency": r["currency"],
            }
        if row["visitors"]:
            rows.append(row)
    return rows


async def _group_conversions(
    storage: Storage, query: Query, goals: Sequence[GoalLike], by: str, rows: list[dict[str, Any]]
) -> None:
    """Per row, converted visitors over the row's visitors without the goal filter."""
    unfiltered = _without_goal(query)
    if is_event_dimension(by):
        base = await storage.report_by_hit(unfiltered, goals, by)
    else:
        base = await storage.report_by_visit(unfiltered, goals, by)
    totals = {r["value"]: int(r["visitors"] or 0) for r in base}
    for row in rows:
        total = totals.get(row["value"], 0)
        row["conversion_rate"] = 100.0 * row["visitors"] / total if total else 0.0


async def _page_extras(
    storage: Storage,
    query: Query,
    goals: Sequence[GoalLike],
    rows: list[dict[str, Any]],
    names: Sequence[str],
) -> None:
    """A page's bounce rate and visit duration are those of the visits that entered on it;
    its scroll depth and time on page come from the engagement hits sent from it."""
    pages = [r["value"] for r in rows]
    if not pages:
        return
    if "bounce_rate" in names or "visit_duration" in names:
        entries = await storage.report_entries(query, goals, pages)
        for row in rows:
            entry = entries.get(row["value"])
            row["bounce_rate"] = entry["bounce_rate"] if entry else None
            row["visit_duration"] = entry["visit_duration"] if entry else None
    if "scroll_depth" in names or "time_on_page" in names:
        engaged = await storage.report_engagement(query, goals, pages)
        for row in rows:
            e = engaged.get(row["value"])
            row["scroll_depth"] = e["scroll_depth"] if e else None
            seconds = e["engaged_seconds"] if e else None
            row["time_on_page"] = (
                seconds / row["visits"] if seconds is not None and row["visits"] else None
            )


async def property_names(storage: Storage, query: Query) -> list[str]:
    """The custom property names sent in the period, sorted: what `event:props:NAME` can be
    broken down or filtered by."""
    return await storage.property_names(query)


async def summed(
    storage: Storage, query: Query, goals: Sequence[GoalLike] = (), narrowed: bool = False
) -> bool:
    """Whether breakdowns of the query (with `narrowed`: its totals and time series) are read
    from rollups (fast at any size) rather than from every raw visit of the period: a filter
    set reports have not asked for before is summed by the builder within minutes, and read
    raw until then; totals under one value of a visit dimension are summed already."""
    return await storage.summed(query, goals, narrowed)

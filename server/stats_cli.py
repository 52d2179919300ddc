"""`zeef stats DOMAIN`: the report engine from the command line, with the Stats API's filters,
breakdowns and comparisons. Without any of them it prints the headline figures as it always
has, and `--json` keeps its keys, which scripts read."""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import Any

from . import reports, sites
from .reports import metrics as metric
from .reports.filters import Filter, parse_v1
from .reports.query import PERIODS, Query, QueryError
from .storage import Storage

LABELS = {
    "visitors": "Unique visitors",
    "visits": "Visits",
    "pageviews": "Pageviews",
    "events": "Custom events",
    "bounce_rate": "Bounce rate (%)",
    "visit_duration": "Visit duration (s)",
    "scroll_depth": "Scroll depth (%)",
    "views_per_visit": "Views per visit",
    "time_on_page": "Time on page (s)",
    "conversion_rate": "Conversion rate (%)",
    "total_revenue": "Total revenue",
    "average_revenue": "Average revenue",
}
HEADLINE = ("visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration",
            "scroll_depth")  # fmt: skip


def add_command(commands: argparse._SubParsersAction, with_storage) -> None:  # type: ignore[type-arg, no-untyped-def]
    stats = commands.add_parser(
        "stats",
        help="a site's figures: totals, filtered, broken down or compared",
        description="Figures as the dashboard and the Stats API show them (docs/metrics.md).",
    )
    stats.add_argument("domain")
    stats.add_argument("--period", choices=[p for p in PERIODS if p != "custom"], default="30d")
    stats.add_argument("--date", type=date.fromisoformat, help="the day the period ends on")
    stats.add_argument("--from", dest="first", type=date.fromisoformat, help="YYYY-MM-DD")
    stats.add_argument("--to", dest="last", type=date.fromisoformat, help="YYYY-MM-DD")
    stats.add_argument(
        "--filter", action="append", default=[], help="e.g. 'visit:country==NL' (repeatable)"
    )
    stats.add_argument("--breakdown", help="a dimension, e.g. event:page or visit:source")
    stats.add_argument("--compare", choices=["previous_period", "year_over_year"])
    stats.add_argument(
        "--metrics",
        help="comma-separated, as the Stats API names them (its `events` counts pageviews too)",
    )
    stats.add_argument("--limit", type=int, default=20, help="rows of a breakdown (20)")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=with_storage(run))


async def run(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    try:
        query = _query(site, args)
        metrics = metric.check(args.metrics.split(",")) if args.metrics else None
        goals = await storage.goals(site.id)
        if args.breakdown:
            return await _breakdown(storage, query, args, metrics, goals)
        if not (args.filter or metrics or args.compare):
            figures = await reports.totals(storage, query)
            _show(figures, HEADLINE, args.json)
            return 0
        figures = _header(query) | await _figures(storage, query, metrics, goals)
        if query.comparison is not None:
            before = await _figures(storage, query.comparison, metrics, goals)
            figures["comparison"] = _header(query.comparison) | before
            figures["change"] = {
                name: metric.change(name, figures[name], before[name]) for name in before
            }
        _show(figures, metrics or HEADLINE, args.json)
        return 0
    except (QueryError, reports.FilterError, metric.MetricError, ValueError) as exc:
        raise SystemExit(f"zeef stats: {exc}") from None


def _query(site: Any, args: argparse.Namespace) -> Query:
    filters = tuple(f for text in args.filter for f in parse_v1(text))
    if args.first or args.last:
        query = Query.for_period(site, "custom", first=args.first, last=args.last, filters=filters)
    else:
        query = Query.for_period(site, args.period, anchor=args.date, filters=filters)
    return query.compared(args.compare) if args.compare else query


def _header(query: Query) -> dict[str, Any]:
    return {
        "site": query.site.domain,
        "period": query.period,
        "from": query.first_day.isoformat(),
        "to": query.last_day.isoformat(),
        "filters": [f.v1() for f in query.filters if isinstance(f, Filter)],  # no groups in v1
    }


async def _figures(
    storage: Storage, query: Query, metrics: tuple[str, ...] | None, goals: list[Any]
) -> dict[str, Any]:
    if metrics:
        return await reports.aggregate(storage, query, metrics, goals)
    # The headline keys with their `zeef stats` meanings: `events` is custom events only.
    got = await reports.aggregate(storage, query, HEADLINE, goals)
    got["events"] = got["events"] - got["pageviews"]
    return got


async def _breakdown(
    storage: Storage,
    query: Query,
    args: argparse.Namespace,
    metrics: tuple[str, ...] | None,
    goals: list[Any],
) -> int:
    names = metrics or ("visitors", "visits", "pageviews")
    window = (0, max(args.limit, 0))
    rows = await reports.breakdown(storage, query, args.breakdown, names, goals, window)
    if args.json:
        print(json.dumps(_header(query) | {"breakdown": args.breakdown, "results": rows}))
        return 0
    head = _header(query)
    print(f"{head['site']}  {head['from']} .. {head['to']}  by {args.breakdown}")
    width = max([len(str(r["value"])) for r in rows] + [5])
    print("  " + "value".ljust(width) + "".join(f"{n:>16}" for n in names))
    for row in rows:
        cells = "".join(f"{_cell(row[n]):>16}" for n in names)
        print("  " + str(row["value"]).ljust(width) + cells)
    return 0


def _show(figures: dict[str, Any], names: tuple[str, ...] | Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    print(f"{figures['site']}  {figures['from']} .. {figures['to']}")
    for text in figures.get("filters", []):
        print(f"  filter: {text}")
    for key in names:
        line = f"  {LABELS.get(key, key):<20} {_cell(figures[key])}"
        if "change" in figures and figures["change"].get(key) is not None:
            line += f"   ({_signed(figures['change'][key])} vs {figures['comparison']['from']}"
            line += f" .. {figures['comparison']['to']}: {_cell(figures['comparison'][key])})"
        print(line)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['value']} {value['currency']}"
    return str(value)


def _signed(change: float | int) -> str:
    return f"{change:+}" + ("" if isinstance(change, float) else "%")

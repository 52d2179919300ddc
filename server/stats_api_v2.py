"""The Stats API, version 2, as Plausible's: `POST /api/v2/query` with a JSON query, answered
with rows of dimensions and metrics, so a client written for Plausible's v2 reads Zeef too.

The engine breaks down by one property a call; a second dimension (time or another property)
is made here from several calls, each narrowed to one bucket or one value of the first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import reports
from .reports import metrics as metric
from .reports.filters import (
    GOAL,
    OPERATORS,
    PROPS,
    AllOf,
    AnyOf,
    Condition,
    Filter,
    FilterError,
    HasDone,
    dimension,
    is_event_dimension,
    leaves,
    negate,
)
from .reports.query import PERIODS, Query, QueryError
from .stats_api import Authorise, BadRequest, Clock, error, limited, no_site, readable_site
from .storage import Storage

FIELDS = ("site_id", "metrics", "date_range", "date", "dimensions", "filters", "order_by",
          "include", "pagination")  # fmt: skip
TIME = {"time": None, "time:minute": "minute", "time:hour": "hour", "time:day": "day",
        "time:week": "week", "time:month": "month"}  # fmt: skip
DEFAULT_LIMIT = 10_000
MAX_DIMENSIONS = 2
# A second dimension costs one engine call per bucket or value of the first: past these, the
# query is refused rather than left to run for minutes.
MAX_BUCKETS = 500
MAX_VALUES = 200
FIELD_OF: dict[type[Exception], str] = {
    QueryError: "date_range",
    FilterError: "filters",
    metric.MetricError: "metrics",
}


@dataclass
class Plan:
    """A request body checked and resolved: what to run and what to echo back."""

    query: Query
    metrics: list[str]
    dimensions: list[str]  # as asked, for the echo and the order_by names
    time: str | None = None  # the time dimension asked for, if any
    props: list[str] = field(default_factory=list)  # canonical property dimensions
    order_by: list[list[str]] = field(default_factory=list)
    include: dict[str, bool] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    filters: list[Any] = field(default_factory=list)


class StatsAPIv2:
    def __init__(self, storage: Storage, authorise: Authorise, clock: Clock) -> None:
        self.storage = storage
        self.authorise = authorise
        self.clock = clock

    def routes(self) -> list[Route]:
        return [Route("/api/v2/query", self.endpoint, methods=["POST"])]

    async def endpoint(self, request: Request) -> Response:
        refused = await self.authorise(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return error("The body must be a JSON object (the query)", 400)
        if not isinstance(body, dict):
            return error("The body must be a JSON object (the query)", 400)
        site_id = body.get("site_id")
        if not isinstance(site_id, str) or not site_id.strip():
            return error("site_id: required, the site's domain as a string", 400)
        site = await readable_site(self.storage, site_id, request)
        if site is None:
            return no_site()
        try:
            plan = await self._plan(body, site)
            plan.query = limited(request, plan.query, plan.props)
            rows = await self._rows(plan)
        except BadRequest as exc:
            return error(str(exc), 400)
        except (QueryError, FilterError, metric.MetricError) as exc:
            # The engine's own refusals, named by the field they come from.
            named = next(name for kind, name in FIELD_OF.items() if isinstance(exc, kind))
            return error(f"{named}: {exc}", 400)
        return JSONResponse(self._answer(plan, site.domain, rows))

    # -- the body --------------------------------------------------------------------------------

    async def _plan(self, body: dict[str, Any], site: Any) -> Plan:
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            raise BadRequest(f"{unknown[0]}: not a field of a query; known: {', '.join(FIELDS)}")
        names = body.get("metrics")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest('metrics: a list of metric names is required, e.g. ["visitors"]')
        try:
            metric.check(names)
        except metric.MetricError as exc:
            raise BadRequest(f"metrics: {exc}") from None
        if len(set(names)) != len(names):
            raise BadRequest("metrics: a metric is listed twice")
        query = await self._date_range(body, site)
        dims = _list(body, "dimensions")
        if len(dims) > MAX_DIMENSIONS:
            raise BadRequest(f"dimensions: at most {MAX_DIMENSIONS} at once")
        if len(set(dims)) != len(dims) or not all(isinstance(d, str) for d in dims):
            raise BadRequest("dimensions: a list of distinct dimension names")
        times = [d for d in dims if d in TIME]
        if len(times) > 1:
            raise BadRequest("dimensions: one time dimension at most")
        time = times[0] if times else None
        try:
            props = [dimension(d) for d in dims if d not in TIME]
        except FilterError as exc:
            raise BadRequest(f"dimensions: {exc}") from None
        if GOAL in props and any(p.startswith(PROPS) for p in props):
            raise BadRequest("dimensions: event:goal cannot be combined with a custom property")
        goal_metrics = [n for n in names if n in metric.NEEDS_GOAL and n not in metric.PER_ROW]
        if goal_metrics and dims and props != [GOAL]:
            # The engine's rate within a group is Plausible's group_conversion_rate (asked by
            # that name), not its conversion_rate: refused rather than answered with the other.
            raise BadRequest(
                f"metrics: {goal_metrics[0]} is available with no dimension or "
                "with event:goal as the only dimension"
            )
        if time is not None:
            query = replace(query, interval=TIME[time])
            try:
                query.check_buckets()
            except QueryError as exc:
                raise BadRequest(f"dimensions: {exc}") from None
        filters = _list(body, "filters")
        query = query.with_filters(*_filters(filters))
        plan = Plan(query, names, dims, time, props, filters=filters)
        plan.order_by = _order_by(body, names, dims, time)
        plan.include = _include(body, time)
        plan.limit, plan.offset = _pagination(body)
        return plan

    async def _date_range(self, body: dict[str, Any], site: Any) -> Query:
        raw = body.get("date_range")
        anchor = None
        if body.get("date") is not None:
            anchor = _date(body["date"], "date")
        if isinstance(raw, str) and raw in PERIODS and raw != "custom":
            query = Query.for_period(site, raw, self.clock(), anchor=anchor)
            if raw == "all":
                earliest = await self.storage.first_visit(site.id)
                # From the first visit, as Plausible starts "all" at the site's first stats.
                now = int(self.clock().timestamp())
                query = query.starting_at(earliest if earliest is not None else now)
            return query
        if isinstance(raw, list) and len(raw) == 2 and all(isinstance(r, str) for r in raw):
            if all(len(r) == 10 for r in raw):
                first, last = (_date(r, "date_range") for r in raw)
                if last < first:
                    raise BadRequest("date_range: the range ends before it starts")
                return Query.for_period(site, "custom", self.clock(), first=first, last=last)
            start, end = (_datetime(r) for r in raw)
            if end < start:
                raise BadRequest("date_range: the range ends before it starts")
            zone = Query.for_period(site, "day", self.clock()).zone
            # Plausible's last second is included: the range ends one second after it.
            return Query(
                site,
                "custom",
                start.astimezone(zone),
                (end + timedelta(seconds=1)).astimezone(zone),
            )
        shortcuts = ", ".join(p for p in PERIODS if p != "custom")
        raise BadRequest(
            f"date_range: one of {shortcuts}, or [first, last] as "
            "YYYY-MM-DD dates or ISO 8601 times with an offset"
        )

    # -- running it -----------------------------------------------------------------------------

    async def _rows(self, plan: Plan) -> list[dict[str, Any]]:
        goals = await self.storage.goals(plan.query.site.id)
        names, query = plan.metrics, plan.query
        if plan.time is not None:
            rows = await self._by_time(plan, goals)
        elif not plan.props:
            values = await reports.aggregate(self.storage, query, names, goals)
            rows = [{"dimensions": [], "metrics": [values[n] for n in names]}]
        elif len(plan.props) == 1:
            found = await reports.breakdown(self.storage, query, plan.props[0], names, goals)
            rows = [{"dimensions": [r["value"]], "metrics": [r[n] for n in names]} for r in found]
        else:
            rows = await self._by_two(plan, goals)
        _sort(rows, plan)
        return rows

    async def _by_time(self, plan: Plan, goals: Sequence[Any]) -> list[dict[str, Any]]:
        # Visitors decide which buckets have data: Plausible returns no row for an empty one.
        wanted = list(dict.fromkeys([*plan.metrics, "visitors"]))
        series = await reports.timeseries(self.storage, plan.query, wanted, goals)
        if not plan.props:
            return [
                {"dimensions": [s["date"]], "metrics": [s[n] for n in plan.metrics]}
                for s in series
                if s["visitors"]
            ]
        spans = _bucket_spans(plan.query)
        busy = [
            (label, span) for (label, span), s in zip(spans, series, strict=True) if s["visitors"]
        ]
        if len(busy) > MAX_BUCKETS:
            raise BadRequest(
                f"dimensions: {len(busy)} time buckets with data, each broken "
                f"down apart; at most {MAX_BUCKETS}: pick a longer interval"
            )
        rows = []
        for label, (start, end) in busy:
            bucket = replace(plan.query, period="custom", start=start, end=end)
            found = await reports.breakdown(
                self.storage, bucket, plan.props[0], plan.metrics, goals
            )
            dims = [
                (label, r["value"]) if plan.dimensions[0] in TIME else (r["value"], label)
                for r in found
            ]
            rows += [
                {"dimensions": list(d), "metrics": [r[n] for n in plan.metrics]}
                for d, r in zip(dims, found, strict=True)
            ]
        return rows

    async def _by_two(self, plan: Plan, goals: Sequence[Any]) -> list[dict[str, Any]]:
        first, second = plan.props
        counts = [
            await reports.breakdown(self.storage, plan.query, p, ["visitors"], goals)
            for p in (first, second)
        ]
        # The dimension with fewer values is the outer loop: fewer calls, same rows.
        outer, inner, flip = (
            (second, first, True) if len(counts[1]) < len(counts[0]) else (first, second, False)
        )
        values = [r["value"] for r in counts[1 if flip else 0] if r["value"] is not None]
        if len(values) > MAX_VALUES:
            raise BadRequest(
                f"dimensions: {first} and {second} have {len(values)} values or "
                f"more each; at most {MAX_VALUES}: add a filter to narrow one"
            )
        rows = []
        for value in values:
            within = plan.query.with_filters(Filter(outer, "is", (value,)))
            found = await reports.breakdown(self.storage, within, inner, plan.metrics, goals)
            for r in found:
                pair = [r["value"], value] if flip else [value, r["value"]]
                rows.append({"dimensions": pair, "metrics": [r[n] for n in plan.metrics]})
        return rows

    def _answer(self, plan: Plan, domain: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if plan.include.get("imports"):
            meta["imports_included"] = False  # Zeef imports nothing
        if plan.include.get("time_labels"):
            meta["time_labels"] = plan.query.bucket_labels()
        if plan.include.get("total_rows"):
            meta["total_rows"] = len(rows)
        query = plan.query
        return {
            "results": rows[plan.offset : plan.offset + plan.limit],
            "meta": meta,
            "query": {
                "site_id": domain,
                "metrics": plan.metrics,
                "date_range": [
                    query.start.isoformat(),
                    (query.end - timedelta(seconds=1)).isoformat(),
                ],
                "filters": plan.filters,
                "dimensions": plan.dimensions,
                "order_by": plan.order_by,
                "include": {k: v for k, v in plan.include.items() if v},
                "pagination": {"limit": plan.limit, "offset": plan.offset},
            },
        }


def _bucket_spans(query: Query) -> list[tuple[str, tuple[datetime, datetime]]]:
    """Each bucket's label and [start, end), clipped to the query's range (a week or month
    bucket may begin before the range does)."""
    starts = query.bucket_starts()
    labels = query.bucket_labels()
    ends = [*starts[1:], query.end]
    return [
        (label, (max(s, query.start), min(e, query.end)))
        for label, s, e in zip(labels, starts, ends, strict=True)
    ]


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name, [])
    if not isinstance(value, list):
        raise BadRequest(f"{name}: must be a list")
    return value


def _filters(entries: list[Any]) -> list[Condition]:
    """The top-level list is an AND (an `and` in it flattens into it); `or` and `not` nest
    to any depth. `not` is pushed down to the filters, each taking the opposite operator;
    an `or` of filters on one dimension with one positive operator becomes one filter with
    several values, which rollups and segments answer."""
    out: list[Condition] = []
    for entry in entries:
        condition = _condition(entry)
        out += condition.items if isinstance(condition, AllOf) else (condition,)
    return out


def _condition(entry: Any) -> Condition:
    if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
        raise BadRequest(f"filters: {entry!r} is not [operator, dimension, [values]]")
    if entry[0] in ("and", "or"):
        parts = tuple(_condition(e) for e in _group(entry))
        if len(parts) == 1:
            return parts[0]
        if entry[0] == "and":
            return AllOf(parts)
        simple = [p for p in parts if isinstance(p, Filter)]
        kinds = {(p.dimension, p.op) for p in simple}
        if len(simple) == len(parts) and len(kinds) == 1 and not simple[0].negated:
            values = tuple(v for p in simple for v in p.values)
            return Filter(simple[0].dimension, simple[0].op, values)
        return AnyOf(parts)
    if entry[0] == "not":
        if len(entry) != 2:
            raise BadRequest('filters: "not" takes one filter or group: ["not", [...]]')
        return negate(_condition(entry[1]))
    if entry[0] in ("has_done", "has_not_done"):
        if len(entry) != 2:
            raise BadRequest(f'filters: "{entry[0]}" takes one filter: ["{entry[0]}", [...]]')
        hit = _condition(entry[1])
        if any(not is_event_dimension(f.dimension) for f in leaves(hit)):
            raise BadRequest(f'filters: "{entry[0]}" takes filters on event dimensions only')
        return HasDone(hit, negated=entry[0] == "has_not_done")
    return _simple(entry)


def _group(entry: list[Any]) -> list[Any]:
    if len(entry) != 2 or not isinstance(entry[1], list) or not entry[1]:
        raise BadRequest(f'filters: "{entry[0]}" takes a list of filters: ["{entry[0]}", [...]]')
    return list(entry[1])


def _simple(entry: Any) -> Filter:
    if not isinstance(entry, list) or len(entry) not in (3, 4):
        raise BadRequest(f"filters: {entry!r} is not [operator, dimension, [values]]")
    op, name, values = entry[:3]
    if op not in OPERATORS:
        raise BadRequest(
            f"filters: operator {op!r} is not supported; use one of "
            f'{", ".join(OPERATORS)}, "and", "or" or "not"'
        )
    if not isinstance(name, str) or name in TIME:
        raise BadRequest("filters: filter by a property; a time range goes in date_range")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise BadRequest(f"filters: the values of the filter on {name} must be a list of strings")
    if len(entry) == 4:
        _modifiers(op, entry[3])
    if name == GOAL and op not in ("is", "contains"):
        raise BadRequest("filters: event:goal takes only is and contains")
    if op in ("matches", "matches_not"):
        values = [_wildcard(v) for v in values]
    try:
        return Filter(name, op, tuple(values))
    except FilterError as exc:
        raise BadRequest(f"filters: {exc}") from None


def _modifiers(op: str, modifiers: Any) -> None:
    """Zeef's `contains` ignores case and its `is` does not: a modifier asking for just that
    is accepted, one asking for the other is refused."""
    if not isinstance(modifiers, dict) or set(modifiers) - {"case_sensitive"}:
        raise BadRequest('filters: the only modifier is {"case_sensitive": true|false}')
    sensitive = modifiers.get("case_sensitive", True)
    if op.startswith("contains") and sensitive is False:
        return
    if op.startswith("is") and sensitive is True:
        return
    raise BadRequest(f"filters: {op} with case_sensitive={sensitive} is not supported")


def _wildcard(regex: str) -> str:
    """Plausible's `matches` takes a regular expression, searched anywhere in the value; the
    engine matches wildcards over the whole value. The regexes a wildcard can say (literal
    text, `.*`, `^` and `$`) are turned into one; any other is refused, not guessed at."""
    core, lead, trail = regex, "*", "*"
    if core.startswith("^"):
        core, lead = core[1:], ""
    if core.endswith("$") and not core.endswith("\\$"):
        core, trail = core[:-1], ""
    out, i = [lead], 0
    while i < len(core):
        char = core[i]
        if core.startswith(".*", i):
            out.append("*")
            i += 2
        elif char == "\\" and i + 1 < len(core) and not core[i + 1].isalnum():
            if core[i + 1] == "*":  # a literal star: a wildcard has no way to say it
                break
            out.append(core[i + 1])
            i += 2
        elif char in "\\.^$*+?()[]{}|":
            break
        else:
            out.append(char)
            i += 1
    else:
        return re.sub(r"\*+", "*", "".join([*out, trail]))
    raise BadRequest(
        f"filters: cannot match {regex!r}: Zeef matches regular expressions made "
        "of literal text, .* and the anchors ^ and $"
    )


def _order_by(
    body: dict[str, Any], names: list[str], dims: list[str], time: str | None
) -> list[list[str]]:
    raw = body.get("order_by")
    if raw is None:
        # Plausible's default: time first if it is a dimension, then the first metric.
        return [*([[time, "asc"]] if time else []), [names[0], "desc"]]
    if not isinstance(raw, list) or not raw:
        raise BadRequest('order_by: a list of [metric or dimension, "asc" or "desc"]')
    for entry in raw:
        if not isinstance(entry, list) or len(entry) != 2 or entry[1] not in ("asc", "desc"):
            raise BadRequest(f'order_by: {entry!r} is not [name, "asc" or "desc"]')
        if entry[0] not in names and entry[0] not in dims:
            raise BadRequest(
                f"order_by: {entry[0]!r} is not among the query's metrics or dimensions"
            )
    return [list(entry) for entry in raw]


def _include(body: dict[str, Any], time: str | None) -> dict[str, bool]:
    raw = body.get("include", {})
    known = ("total_rows", "time_labels", "imports")
    if not isinstance(raw, dict):
        raise BadRequest("include: must be an object")
    for key, value in raw.items():
        if key not in known:
            raise BadRequest(f"include: {key!r} is not supported; known: {', '.join(known)}")
        if not isinstance(value, bool):
            raise BadRequest(f"include.{key}: must be true or false")
    if raw.get("time_labels") and time is None:
        raise BadRequest("include.time_labels: needs a time dimension")
    return dict(raw)


def _pagination(body: dict[str, Any]) -> tuple[int, int]:
    raw = body.get("pagination", {})
    if not isinstance(raw, dict) or set(raw) - {"limit", "offset"}:
        raise BadRequest('pagination: {"limit": N, "offset": N}')
    limit, offset = raw.get("limit", DEFAULT_LIMIT), raw.get("offset", 0)
    for name, value, low in (("limit", limit, 1), ("offset", offset, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise BadRequest(f"pagination.{name}: must be a whole number from {low}")
    if limit > DEFAULT_LIMIT:
        raise BadRequest(f"pagination.limit: at most {DEFAULT_LIMIT}")
    return limit, offset


def _sort(rows: list[dict[str, Any]], plan: Plan) -> None:
    """order_by, last key first, each sort stable; a missing value (None) goes last."""
    for name, direction in reversed(plan.order_by):
        if name in plan.metrics:
            at, part = plan.metrics.index(name), "metrics"
        else:
            at, part = plan.dimensions.index(name), "dimensions"

        def key(row: dict[str, Any], at: int = at, part: str = part) -> Any:
            value = row[part][at]
            return value["value"] if isinstance(value, dict) else value

        present = [r for r in rows if key(r) is not None]
        present.sort(key=key, reverse=direction == "desc")
        rows[:] = present + [r for r in rows if key(r) is None]


def _date(text: Any, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise BadRequest(f"{name}: {text!r} is not a date: write YYYY-MM-DD") from None


def _datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise BadRequest(
            f"date_range: {text!r} is neither a YYYY-MM-DD date nor an ISO 8601 time with an offset"
        )
    return value

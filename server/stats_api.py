"""The Stats API, version 1, as Plausible's: the same paths, parameters and answers, so a script
or client library written for Plausible reads Zeef by changing its base URL and key.

Every route: key (accounts/apikeys.py), site, Query from the parameters, the report engine, JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import reports
from .accounts.permissions import Action, may
from .events import Site
from .reports import metrics as metric
from .reports.filters import GOAL, PROPS, FilterError, dimension, leaves, parse_v1
from .reports.query import Query, QueryError
from .sites import find_site
from .storage import Storage

Clock = Callable[[], datetime]
# Answers a request's key: None when it may go on, or the 401/429 answer to send instead.
Authorise = Callable[[Request], Awaitable[Response | None]]

MAX_LIMIT = 1000
# v1 names a day bucket "date"; the newer names are accepted too.
V1_INTERVALS = {"date": "day", "day": "day", "minute": "minute", "hour": "hour",
                "week": "week", "month": "month"}  # fmt: skip


class BadRequest(ValueError):
    """A parameter the API cannot use: answered 400 with the message."""


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class StatsAPI:
    def __init__(self, storage: Storage, authorise: Authorise, clock: Clock) -> None:
        self.storage = storage
        self.authorise = authorise
        self.clock = clock

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/stats/realtime/visitors", self._wrap(self.realtime)),
            Route("/api/v1/stats/aggregate", self._wrap(self.aggregate)),
            Route("/api/v1/stats/timeseries", self._wrap(self.timeseries)),
            Route("/api/v1/stats/breakdown", self._wrap(self.breakdown)),
        ]

    def _wrap(
        self, handler: Callable[[Request, Query], Awaitable[Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            refused = await self.authorise(request)
            if refused is not None:
                return refused
            site_id = request.query_params.get("site_id", "").strip()
            if not site_id:
                return error("Missing site ID: add site_id=DOMAIN to the request", 400)
            site = await readable_site(self.storage, site_id, request)
            if site is None:
                return no_site()
            try:
                prop = request.query_params.get("property") if handler == self.breakdown else None
                query = limited(
                    request, self._query(request, site), [dimension(prop)] if prop else []
                )
                return JSONResponse(await handler(request, query))
            except (BadRequest, QueryError, FilterError, metric.MetricError) as exc:
                return error(str(exc), 400)

        return endpoint

    # -- parameters -------------------------------------------------------------------------

    def _query(self, request: Request, site: Any) -> Query:
        return query_from_params(request.query_params, site, self.clock())

    def _metrics(self, request: Request, default: str = "visitors") -> list[str]:
        raw = request.query_params.get("metrics", default)
        return [m.strip() for m in raw.split(",") if m.strip()]

    async def _goals(self, query: Query) -> list[Any]:
        return list(await self.storage.goals(query.site.id))

    # -- endpoints --------------------------------------------------------------------------

    async def realtime(self, request: Request, query: Query) -> int:
        return await reports.realtime_visitors(self.storage, query, self.clock())

    async def aggregate(self, request: Request, query: Query) -> dict[str, Any]:
        names = self._metrics(request)
        goals = await self._goals(query)
        now = await reports.aggregate(self.storage, query, names, goals)
        results: dict[str, Any] = {name: {"value": value} for name, value in now.items()}
        if query.comparison is not None:
            before = await reports.aggregate(self.storage, query.comparison, names, goals)
            for name, value in before.items():
                results[name]["comparison_value"] = value
                results[name]["change"] = metric.change(name, now[name], value)
        return {"results": results}

    async def timeseries(self, request: Request, query: Query) -> dict[str, Any]:
        names = self._metrics(request)
        if query.period == "realtime":
            # The last 30 minutes by the minute, by the time of each hit.
            live = await reports.realtime(self.storage, query.site, self.clock())
            for name in names:
                if name not in ("visitors", "pageviews"):
                    raise BadRequest("realtime has visitors and pageviews only")
            rows = [{"date": m["date"], **{n: m[n] for n in names}} for m in live["minutes"]]
            return {"results": rows}
        goals = await self._goals(query)
        return {"results": await reports.timeseries(self.storage, query, names, goals)}

    async def breakdown(self, request: Request, query: Query) -> dict[str, Any]:
        params = request.query_params
        prop = params.get("property")
        if not prop:
            raise BadRequest("Missing property: add property=event:page (or another dimension)")
        prop = dimension(prop)
        limit, page = (
            _bounded(params.get("limit", "100"), "limit", 1, MAX_LIMIT),
            _bounded(params.get("page", "1"), "page", 1, 10**6),
        )
        names = self._metrics(request)
        goals = await self._goals(query)
        window = ((page - 1) * limit, limit)
        rows = await reports.breakdown(self.storage, query, prop, names, goals, window)
        key = _result_key(prop)
        return {"results": [{key: r.pop("value"), **r} for r in rows]}


def query_from_params(params: Mapping[str, str], site: Site, now: datetime) -> Query:
    """The Query that v1's parameters (period, date, filters, interval, compare) describe: the
    Stats API's, and the dashboard's, so both read the same period the same way."""
    period = params.get("period", "30d")
    raw_date = params.get("date")
    anchor = first = last = None
    if period == "custom":
        if not raw_date or "," not in raw_date:
            raise BadRequest("period=custom needs date=YYYY-MM-DD,YYYY-MM-DD")
        first, last = (_date(part) for part in raw_date.split(",", 1))
    elif raw_date:
        anchor = _date(raw_date)
    if period == "realtime":
        return Query.realtime(site, now)
    interval = params.get("interval")
    if interval is not None:
        if interval not in V1_INTERVALS:
            raise BadRequest(f"interval must be one of {', '.join(V1_INTERVALS)}")
        interval = V1_INTERVALS[interval]
    query = Query.for_period(
        site, period, now, anchor=anchor, first=first, last=last,
        filters=parse_v1(params.get("filters", "")), interval=interval,
    )  # fmt: skip
    compare = params.get("compare")
    if compare == "custom":
        # Zeef's extension of v1 (Plausible's dashboard compares with any range too): the
        # range as `period=custom` takes its own, `compare_date=FROM,TO`.
        raw_compare = params.get("compare_date", "")
        if "," not in raw_compare:
            raise BadRequest("compare=custom needs compare_date=YYYY-MM-DD,YYYY-MM-DD")
        since, until = (_date(part) for part in raw_compare.split(",", 1))
        query = query.compared("custom", since, until)
    elif compare:
        if compare not in ("previous_period", "year_over_year"):
            raise BadRequest("compare must be previous_period, year_over_year or custom")
        query = query.compared(compare)
    return query


def no_site() -> JSONResponse:
    """The same answer whether the site does not exist or the key may not read it."""
    return error("Site does not exist or the API key may not read it", 404)


async def readable_site(storage: Storage, site_id: str, request: Request) -> Site | None:
    """The site a Stats API request names, if whom it acts for may read it (the permission
    check's verdict); None alike for a site that does not exist and one of another customer."""
    try:
        site = await find_site(storage, site_id)
    except ValueError:  # not even a domain name: no such site either
        return None
    principal = request.state.principal
    if site is None or not may(principal, Action.VIEW_STATS, site.customer_id, site.id):
        return None
    return site


def limited(request: Request, query: Query, dimensions: Sequence[str]) -> Query:
    """The query as a share token may ask it (issue 18): broken down and filtered by its
    sections' dimensions only, totals and series only if it shows the overview, and always
    under its filter (the comparison too). Any other caller's query is returned as it is."""
    share = getattr(request.state, "share", None)
    if share is None:
        return query
    asked = [leaf.dimension for f in query.filters for leaf in leaves(f)]
    for name in [*dimensions, *asked]:
        if not share.allows(name):
            raise BadRequest(f"{name}: this share link does not show it")
    if not dimensions and "overview" not in share.sections:
        raise BadRequest("this share link does not show the site's totals")
    locked = parse_v1(share.filters)
    comparison = query.comparison.with_filters(*locked) if query.comparison else None
    return replace(query.with_filters(*locked), comparison=comparison)


def _result_key(prop: str) -> str:
    """How Plausible names a breakdown's column: `event:page` -> page, `event:props:plan` ->
    plan, `event:goal` -> goal."""
    if prop.startswith(PROPS):
        return prop[len(PROPS) :]
    if prop == GOAL:
        return "goal"
    return prop.split(":", 1)[1]


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadRequest(f"{text!r} is not a date: write YYYY-MM-DD") from None


def _bounded(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def utc_now() -> datetime:
    return datetime.now(UTC)

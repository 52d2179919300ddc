"""A site's dashboard: `/sites/DOMAIN`, the statistics at a glance.

Route -> permission (Auth.guard) -> Query from the same parameters as the Stats API
(stats_api.query_from_params) -> the one report engine -> template. So the page's figures are
the API's figures for the same query string.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import reports
from ..accounts.permissions import Action, Principal, may
from ..events import Site
from ..reports import metrics as metric
from ..reports.filters import FilterError
from ..reports.query import Query, QueryError
from ..stats_api import BadRequest, query_from_params
from .admin import Admin
from .chart import build_chart
from .dashboard_filters import FormError, from_form, submitted
from .dashboard_filters import chips as _chips
from .dashboard_filters import filtered as _filtered
from .dashboard_filters import filters as _filters
from .dashboard_filters import form as _filter_form
from .export import FILES_OF, columns_of, sort_rows
from .templates import N_, language
from .view import View, as_user, with_range
from .worldmap import world_map

# The top line, in Plausible's order; each can be charted.
TOP_LINE = (
    ("visitors", N_("Unique visitors")),
    ("visits", N_("Total visits")),
    ("pageviews", N_("Total pageviews")),
    ("views_per_visit", N_("Views per visit")),
    ("bounce_rate", N_("Bounce rate")),
    ("visit_duration", N_("Visit duration")),
    ("scroll_depth", N_("Scroll depth")),
)
# Periods the picker offers, as the Stats API names them.
PERIODS = (
    ("realtime", N_("Realtime")),
    ("day", N_("Today")),
    ("yesterday", N_("Yesterday")),
    ("7d", N_("Last 7 days")),
    ("28d", N_("Last 28 days")),
    ("30d", N_("Last 30 days")),
    ("91d", N_("Last 91 days")),
    ("month", N_("This month")),
    ("last_month", N_("Last month")),
    ("12mo", N_("Last 12 months")),
    ("year", N_("This year")),
    ("all", N_("All time")),
)
COMPARISONS = (
    ("", N_("No comparison")),
    ("previous_period", N_("Previous period")),
    ("year_over_year", N_("Year over year")),
)


@dataclass(frozen=True)
class Tab:
    """A panel's tab: a dimension, the tab's label and its table's column heading. Tabs with a
    `menu` sit in that drop-down (UTM tags: five are too many tabs for a phone). `drill` is
    shown instead while the dashboard is filtered to one value of the dimension, as Plausible
    drills from a source to its referrers and from a browser to its versions."""

    dimension: str
    label: str
    column: str
    menu: str | None = None
    drill: Tab | None = None


# The Goals panel's property tab: its dimension is `event:props:NAME` for the chosen NAME.
PROPERTIES = "event:props"
PROPS = PROPERTIES + ":"
PANELS = (
    (N_("Top pages"), (Tab("event:page", N_("Pages"), N_("Page")),
                       Tab("visit:entry_page", N_("Entry pages"), N_("Entry page")),
                       Tab("visit:exit_page", N_("Exit pages"), N_("Exit page")))),
    (N_("Top sources"), (
        Tab("visit:source", N_("Sources"), N_("Source"),
            drill=Tab("visit:referrer", N_("Referrers"), N_("Referrer"))),
        Tab("visit:channel", N_("Channels"), N_("Channel")),
        Tab("visit:utm_campaign", N_("UTM campaigns"), N_("Campaign"), menu=N_("Campaigns")),
        Tab("visit:utm_source", N_("UTM sources"), N_("UTM source"), menu=N_("Campaigns")),
        Tab("visit:utm_medium", N_("UTM mediums"), N_("UTM medium"), menu=N_("Campaigns")),
        Tab("visit:utm_content", N_("UTM contents"), N_("UTM content"), menu=N_("Campaigns")),
        Tab("visit:utm_term", N_("UTM terms"), N_("UTM term"), menu=N_("Campaigns")))),
    (N_("Locations"), (Tab("visit:country", N_("Countries"), N_("Country")),
                       Tab("visit:region", N_("Regions"), N_("Region")),
                       Tab("visit:city", N_("Cities"), N_("City")))),
    (N_("Devices"), (
        Tab("visit:browser", N_("Browsers"), N_("Browser"),
            drill=Tab("visit:browser_version", N_("Browser versions"), N_("Browser version"))),
        Tab("visit:os", N_("OS"), N_("Operating system"),
            drill=Tab("visit:os_version", N_("OS versions"), N_("OS version"))),
        Tab("visit:device", N_("Devices"), N_("Device")))),
)  # fmt: skip
GOALS_PANEL = (N_("Goals"), (Tab("event:goal", N_("Goals"), N_("Goal")),
                              Tab("event:name", N_("Custom events"), N_("Event")),
                              Tab(PROPERTIES, N_("Properties"), N_("Value"))))  # fmt: skip
# Every dimension a details view lists, with its heading and column.
DETAILS = {
    tab.dimension: (heading, tab.column)
    for heading, tabs in (*PANELS, GOALS_PANEL)
    for top in tabs
    for tab in (top, *((top.drill,) if top.drill else ()))
    if tab.dimension != PROPERTIES
}
PANEL_ROWS = 9
# A site with more visits than this in the period loads its panels after the page while a new
# filter is summed (Dashboard._lazy): below it, raw rows answer within a fraction of a second.
LAZY_VISITS = 50_000
# The Countries tab's map colours every country with visitors (there are fewer than 250), so
# that tab reads them all and its table shows the first PANEL_ROWS.
MAP_DIMENSION, MAP_ROWS = "visit:country", 250
# The details view: every row, a page at a time, sortable by these.
DETAILS_PAGE = 100
VISIT_COLUMNS = ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration")
# NOTE: no scroll depth or time on page yet: per page they read raw engagement hits (no
# rollup), 1 s for 30 days at 1M events where the other columns take 20 ms.
PAGE_COLUMNS = ("visitors", "pageviews", "bounce_rate")
GOAL_COLUMNS = ("visitors", "events", "conversion_rate")
COLUMN_LABELS = {
    "visitors": N_("Visitors"),
    "visits": N_("Visits"),
    "pageviews": N_("Pageviews"),
    "bounce_rate": N_("Bounce rate"),
    "visit_duration": N_("Visit duration"),
    "scroll_depth": N_("Scroll depth"),
    "events": N_("Events"),
    "conversion_rate": N_("Conversion rate"),
    "total_revenue": N_("Revenue"),
    "average_revenue": N_("Average revenue"),
}
MONEY = ("total_revenue", "average_revenue")


# Each panel's section, as share links name them (server/sharing/shares.py), in PANELS' order.
PANEL_SECTIONS = ("pages", "sources", "locations", "devices")


class Dashboard:
    def __init__(self, admin: Admin) -> None:
        # The admin pages' frame: the same navigation, permission check and clock.
        self.admin = admin
        self.storage = admin.storage
        self.pages = admin.pages

    def routes(self) -> list[Route]:
        return [
            Route("/sites/{domain}", self.site),
            Route("/sites/{domain}/details/{dimension}", self.details),
            Route("/sites/{domain}/panel/{index:int}", self.panel),
            Route("/sites/{domain}/top", self.top),
        ]

    async def site(self, request: Request) -> Response:
        found = await self.admin._site_page(request, Action.VIEW_STATS)
        if isinstance(found, Response):
            return found
        site, session = found
        principal = Principal.of_user(session.user)
        view = View(
            f"/sites/{site.domain}",
            manage=may(principal, Action.MANAGE_SITE, site.customer_id),
            live_url=f"/api/v1/stats/realtime/visitors?site_id={quote(site.domain)}",
        )
        sites = [s.domain for s in await self.storage.sites()
                 if may(principal, Action.VIEW_STATS, s.customer_id)]  # fmt: skip

        def frame(context: dict[str, Any]) -> Response:
            return self.admin._render(request, session, "dashboard.html", context, "/sites")

        return await self.page(request, site, view, frame, sites)

    async def page(
        self,
        request: Request,
        site: Site,
        view: View,
        frame: Callable[[dict[str, Any]], Response],
        sites: Sequence[str] = (),
    ) -> Response:
        """The dashboard of `site` as `view` shows it; `frame` renders dashboard.html with the
        context (in the admin pages' frame, or a share's bare one)."""
        _ = self.pages.gettext(request)
        if submitted(request.query_params):
            # The filter form: its fields folded into `filters`, so the address is a clean one.
            try:
                clean = from_form(request.query_params, _)
            except FormError as exc:
                return self.pages.error(request, 400, str(exc))
            return RedirectResponse(f"{view.base}{clean}", status_code=303)
        lang = language(request)
        params = request.query_params
        now = self.admin.clock()
        try:
            query = query_from_params(view.filters(params), site, now)
        except (BadRequest, QueryError, FilterError) as exc:
            return self.pages.error(request, 400, str(exc))
        chosen = params.get("metric", "visitors")
        if chosen not in dict(TOP_LINE):
            chosen = "visitors"
        goals = list(await self.storage.goals(site.id))
        overview = "overview" in view.sections
        keys = await reports.property_names(self.storage, query) if "goals" in view.sections else []
        shown = _shown_panels(view, goals, keys)
        chosen_tabs = [_chosen(params, i, tabs, keys) for i, _heading, tabs in shown]
        revenue = any(goal.currency for goal in goals)
        lazy = await self._lazy(query, goals, params)
        # The top line too, when even it would read raw rows (a filter on an event, or more
        # than one value): then the page is its frame, and everything loads after it.
        lazy_top = lazy and not await reports.summed(self.storage, query, goals, narrowed=True)
        shown_query = f"?{request.url.query}" if request.url.query else ""
        panel_tasks = [
            _panel_rows(self.storage, query, tab, goals, revenue) if not lazy else _nothing()
            for tab, _index in chosen_tabs
        ]
        top_task = (
            self._top(query, goals, params, chosen, lang, _)
            if overview and not lazy_top
            else _empty()
        )
        live_task = reports.realtime_visitors(self.storage, Query.realtime(site, now), now)
        try:
            results = await asyncio.gather(top_task, live_task, *panel_tasks)
        except (QueryError, FilterError, metric.MetricError) as exc:
            # What the engine refuses only once it reads (a goal filter naming no goal).
            return self.pages.error(request, 400, str(exc))
        top, current_visitors = results[0] or None, results[1]
        panels_rows = results[2:]
        if overview and lazy_top:
            top = {"lazy_url": f"{view.base}/top{shown_query}", "wait_url": _with(params, wait="1")}
        number = _number_format(lang)

        if lazy:
            # Placeholders dashboard.js fills from panel(); the query string is the page's.
            panels = [
                {"heading": _(heading), "n": i + 1,
                 "lazy_url": f"{view.base}/panel/{i}{shown_query}",
                 "wait_url": _with(params, wait="1")}
                for i, heading, _tabs in shown
            ]  # fmt: skip
        else:
            panels = [
                _panel(view, params, i, heading, tabs, chosen_tabs[place], panels_rows[place],
                       keys, revenue, lang, _)
                for place, (i, heading, tabs) in enumerate(shown)
            ]  # fmt: skip

        consent = (
            await self._consent(site.id, query, number) if "consent" in view.sections else None
        )
        drops = await self._drops(request, query, number) if view.manage else None
        has_data = await self.storage.first_visit(site.id) is not None
        # The installation check, on a site with nothing counted yet: what arrived and was
        # refused in the last 7 days, and why (a host that is not the site's, a bot...).
        refused = []
        if not has_data and view.manage:
            since = (self.admin.clock() - timedelta(days=7)).astimezone(UTC).date().isoformat()
            refused = [
                {**drop, "why": self.admin._why(request, drop)}
                for drop in await self.storage.latest_drops(site.id, since)
            ]
        context = {
            "site": site,
            "query": query,
            "has_data": has_data,
            "refused": refused,
            "base": view.base,
            "view": view,
            # The share's own filter: shown, never removable.
            "locked": _chips({"filters": ";".join(view.locked)}, _) if view.locked else [],
            # Visitors in the last 5 minutes; dashboard.js refreshes it from live_url.
            "current_visitors": {"count": current_visitors, "shown": number(current_visitors)},
            "public_url": self.admin.settings.public_url,
            "manage": view.manage,
            "consent": consent,
            "drops": drops,
            "top": top,
            "periods": _periods(params, query, now, _),
            "realtime": query.period == "realtime",
            "comparisons": [
                {
                    "label": _(label),
                    "url": _with(
                        params,
                        compare=key or None,
                        compare_date=None,
                        compare_from=None,
                        compare_to=None,
                    ),
                    "current": key == params.get("compare", ""),
                }
                for key, label in COMPARISONS
            ],
            # The custom comparison's form: its range, or the previous period's to start from.
            "compare_custom": {
                "current": with_range(params).get("compare") == "custom",
                "first": (
                    query.comparison or query.compared("previous_period").comparison or query
                ).first_day.isoformat(),
                "last": (
                    query.comparison or query.compared("previous_period").comparison or query
                ).last_day.isoformat(),
                "hidden": [
                    (k, v)
                    for k, v in params.items()
                    if k not in ("compare", "compare_date", "compare_from", "compare_to")
                ],
            }
            if query.period != "realtime"
            else None,
            "range": _range_label(query, lang),
            "chips": _chips(params, _),
            "filter_form": _filter_form(params, _, goals=bool(goals), offered=view.allows),
            "range_hidden": [
                (k, v) for k, v in params.items() if k not in ("period", "date", "from", "to")
            ],
            "panels": panels,
            "sites": list(sites),
        }
        return frame(context)

    async def _top(
        self,
        query: Query,
        goals: Sequence[Any],
        params: Any,
        chosen: str,
        lang: str,
        _: Callable[[str], str],
    ) -> dict[str, Any]:
        """The top line and the chart of `chosen` (_top.html), with the comparison's."""
        names = [name for name, _label in TOP_LINE]
        asked = [
            reports.aggregate(self.storage, query, names, goals),
            reports.timeseries(self.storage, query, [chosen], goals),
        ]
        if query.comparison is not None:
            asked += [
                reports.aggregate(self.storage, query.comparison, names, goals),
                reports.timeseries(self.storage, query.comparison, [chosen], goals),
            ]
        found: list[Any] = list(await asyncio.gather(*asked))
        totals, series = found[0], found[1]
        before, before_series = (found[2], found[3]) if len(found) > 2 else (None, None)
        now = self.admin.clock()
        number = _number_format(lang)
        items = []
        for name, label in TOP_LINE:
            value = totals.get(name)
            change = metric.change(name, value, before.get(name)) if before else None
            items.append({
                "name": name, "label": _(label), "value": _shown(name, value, number, _),
                "change": change, "good": _good(name, change),
                # In the UI language's digits: "2,5" in Dutch, and "100", not "100.0".
                "change_shown": number(abs(change)) if change is not None else None,
                "url": _with(params, metric=name), "current": name == chosen,
            })  # fmt: skip
        labels = [_bucket_label(row["date"], query.bucket, lang) for row in series]
        values = [row.get(chosen) for row in series]
        previous = [row.get(chosen) for row in before_series] if before_series else None
        if previous is not None:
            previous = (previous + [None] * len(values))[: len(values)]
        partial = _partial_from(series, query, now)
        if partial is not None:
            # Buckets still to come have no value yet, not a zero.
            values = values[: partial + 1] + [None] * (len(values) - partial - 1)
        chart = build_chart(labels, values, previous, partial,
                            lambda v: _shown(chosen, v, number, _))  # fmt: skip
        return {
            "metrics": items,
            "chart": chart,
            "metric_label": _(dict(TOP_LINE)[chosen]),
            "compare_label": _("Previous period") if query.comparison is not None else None,
        }

    async def top(self, request: Request) -> Response:
        """GET /sites/DOMAIN/top: the top line and chart alone, for the page's placeholder."""
        return await as_user(self.admin, request, self.top_page)

    async def top_page(self, request: Request, site: Site, view: View) -> Response:
        if "overview" not in view.sections:
            return self.pages.error(request, 404)
        _ = self.pages.gettext(request)
        params = request.query_params
        chosen = params.get("metric", "visitors")
        if chosen not in dict(TOP_LINE):
            chosen = "visitors"
        try:
            query = query_from_params(view.filters(params), site, self.admin.clock())
            goals = list(await self.storage.goals(site.id))
            top = await self._top(query, goals, params, chosen, language(request), _)
        except (BadRequest, QueryError, FilterError, metric.MetricError) as exc:
            return self.pages.error(request, 400, str(exc))
        return self.pages.render(request, "top.html", {"top": top})

    async def _lazy(self, query: Query, goals: Sequence[Any], params: Any) -> bool:
        """Whether the page's panels load after it: on a big site, under a filter the rollups
        have not summed yet, each breakdown reads every visit of the period (seconds at 10M
        events) until the builder has summed it (a minute or two, woken by this ask). The top
        line and the chart come from the rollups even so; `wait=1` waits for everything."""
        if not query.filters or params.get("wait") or query.period == "realtime":
            return False
        if await reports.summed(self.storage, query, goals):
            return False
        whole = replace(query, filters=(), comparison=None)
        visits = (await reports.aggregate(self.storage, whole, ["visits"], goals))["visits"]
        return int(visits or 0) > LAZY_VISITS

    async def panel(self, request: Request) -> Response:
        """GET /sites/DOMAIN/panel/N: panel N alone, for a placeholder the page left."""
        return await as_user(self.admin, request, self.panel_page)

    async def panel_page(self, request: Request, site: Site, view: View) -> Response:
        """Panel N (the p0..p4 of the URL) of `site` as `view` shows it (panel.html)."""
        _ = self.pages.gettext(request)
        params = request.query_params
        try:
            query = query_from_params(view.filters(params), site, self.admin.clock())
        except (BadRequest, QueryError, FilterError) as exc:
            return self.pages.error(request, 400, str(exc))
        goals = list(await self.storage.goals(site.id))
        keys = await reports.property_names(self.storage, query) if "goals" in view.sections else []
        wanted = [entry for entry in _shown_panels(view, goals, keys)
                  if entry[0] == request.path_params["index"]]  # fmt: skip
        if not wanted:
            return self.pages.error(request, 404)
        [(i, heading, tabs)] = wanted
        chosen = _chosen(params, i, tabs, keys)
        revenue = any(goal.currency for goal in goals)
        try:
            rows = await _panel_rows(self.storage, query, chosen[0], goals, revenue)
        except (QueryError, FilterError, metric.MetricError) as exc:
            return self.pages.error(request, 400, str(exc))
        built = _panel(view, params, i, heading, tabs, chosen, rows, keys, revenue,
                       language(request), _)  # fmt: skip
        return self.pages.render(request, "panel.html", {"panel": built})

    async def _consent(
        self, site_id: int, query: Query, number: Callable[[float], str]
    ) -> dict[str, Any] | None:
        """The banner's decisions in the period, and how many accepted each optional
        category; None when the site recorded none (it may not use the banner)."""
        days = await self.storage.consent_rates(site_id, query.start_ts, query.end_ts)
        decisions = sum(day["decisions"] for day in days)
        if not decisions:
            return None
        accepted: dict[str, int] = {}
        for day in days:
            for category, count in day["accepted"].items():
                accepted[category] = accepted.get(category, 0) + int(count or 0)
        rows = [
            {"category": category, "accepted": number(count),
             "rate": f"{number(round(100 * count / decisions))}%"}
            for category, count in sorted(accepted.items()) if category != "necessary"
        ]  # fmt: skip
        return {"count": decisions, "decisions": number(decisions), "rows": rows}

    async def _drops(
        self, request: Request, query: Query, number: Callable[[float], str]
    ) -> list[dict[str, str]]:
        """Events not counted in the period, by reason in words (for those who manage the
        site: it is how they find a broken installation)."""
        counts = await reports.drops(self.storage, query)
        return [
            {"why": self.admin._why(request, {"reason": reason, "example": None}),
             "count": number(count)}
            for reason, count in sorted(counts.items(), key=lambda kv: -kv[1]) if count
        ]  # fmt: skip

    async def details(self, request: Request) -> Response:
        """Every row of one dimension: searchable, sortable, a page at a time."""
        found = await self.admin._site_page(request, Action.VIEW_STATS)
        if isinstance(found, Response):
            return found
        site, session = found

        def frame(context: dict[str, Any]) -> Response:
            return self.admin._render(request, session, "details.html", context, "/sites")

        return await self.details_page(request, site, View(f"/sites/{site.domain}"), frame)

    async def details_page(
        self,
        request: Request,
        site: Site,
        view: View,
        frame: Callable[[dict[str, Any]], Response],
    ) -> Response:
        """Every row of the dimension the path names, as `view` shows it."""
        by = request.path_params["dimension"]
        if by not in DETAILS and not (by.startswith(PROPS) and len(by) > len(PROPS)):
            return self.pages.error(request, 404)
        if not view.allows(by):
            return self.pages.error(request, 404)
        _ = self.pages.gettext(request)
        lang = language(request)
        params = request.query_params
        search = params.get("search", "").strip()[:200]
        extra = []
        if search:
            escaped = search.replace("\\", "\\\\").replace("|", "\\|").replace(";", "\\;")
            extra.append(f"{by}~{escaped}")
        if by == "event:name":
            # Custom events: pageviews have their own panel, and custom_events.csv, this
            # view's download, leaves them out as Plausible's does.
            extra.append("event:name!=pageview")
        # The viewer's filters and the search: what the download carries (a share adds its own).
        mine = [*_filters(params), *extra]
        try:
            narrowed = view.filters({**params, "filters": ";".join(mine)})
            query = query_from_params(narrowed, site, self.admin.clock())
        except (BadRequest, QueryError, FilterError) as exc:
            return self.pages.error(request, 400, str(exc))
        goals = list(await self.storage.goals(site.id))
        columns = _panel_metrics(by, True, any(goal.currency for goal in goals))
        order = params.get("order", "visitors")
        if order not in (*columns, "name"):
            order = "visitors"
        descending = params.get("dir", "desc") != "asc"
        raw_page = params.get("page", "1")
        wanted = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
        try:
            # Every value with its visitors is cheap; the other columns (a page's bounce rate,
            # scroll depth) cost a query over the rows they are computed for. So the usual
            # order, most visitors first, computes them for the 100 rows shown only: at 1M
            # events, 30 days of pages took 1.9 s computed for all 3,000.
            everything = await reports.breakdown(self.storage, query, by, ["visitors"], goals)
            pages = max(1, -(-len(everything) // DETAILS_PAGE))
            page = min(wanted, pages)
            window = ((page - 1) * DETAILS_PAGE, DETAILS_PAGE)
            if order == "visitors" and descending:
                rows = await reports.breakdown(
                    self.storage, query, by, list(columns), goals, window
                )
            else:
                rows = await reports.breakdown(self.storage, query, by, list(columns), goals)
                # The same sort as the download's (export.sort_rows): the same rows in order.
                rows = sort_rows(rows, order, descending)[window[0] : window[0] + DETAILS_PAGE]
        except (QueryError, FilterError, metric.MetricError) as exc:
            return self.pages.error(request, 400, str(exc))
        number = _number_format(lang)
        shown_rows = [
            {"value": row["value"] if row["value"] not in (None, "") else _("(none)"),
             "filter_url": view.base + _filtered(params, by, row["value"]),
             "cells": [_money(row.get(name), lang) or _shown(name, row.get(name), number, _)
                       if name in MONEY else _shown(name, row.get(name), number, _)
                       for name in columns]}
            for row in rows
        ]  # fmt: skip

        def sort_url(name: str) -> str:
            flip = "asc" if order == name and descending else "desc"
            return _with(params, order=name, dir=flip, page=None)

        # Every row, not this page's: the export's file for the same query, its search a
        # filter, no comparison, sorted as here.
        kept = {key: narrowed[key] for key in ("period", "date") if narrowed.get(key)}
        if mine:
            kept["filters"] = ";".join(mine)
        file = FILES_OF.get(by, "custom_props")
        if by.startswith(PROPS):
            kept["property"] = by.removeprefix(PROPS)
        if (order, descending) != ("visitors", True) and order in ("name", *columns_of(file)):
            # Not revenue, which conversions.csv has no column for: that file keeps its order.
            kept |= {"order": order, "dir": "desc" if descending else "asc"}
        csv_url = f"{view.base}/export/{file}.csv?{urlencode(kept)}" if view.csv else None
        heading, column = DETAILS.get(by, (GOALS_PANEL[0], by.removeprefix(PROPS)))
        context = {
            "site": site,
            "heading": _(heading),
            "column": _(column) if by in DETAILS else column,
            "range": _range_label(query, lang),
            "columns": [
                {
                    "label": _(COLUMN_LABELS[name]),
                    "url": sort_url(name),
                    "sorted": ("descending" if descending else "ascending")
                    if order == name
                    else None,
                }
                for name in columns
            ],
            "name_sort": {
                "url": sort_url("name"),
                "sorted": ("descending" if descending else "ascending")
                if order == "name"
                else None,
            },
            "rows": shown_rows,
            "count": len(everything),
            "total": number(len(everything)),
            "search": search,
            "csv_url": csv_url,
            "hidden": [(k, v) for k, v in params.items() if k not in ("search", "page")],
            "back_url": view.base + _with(params, search=None, order=None, dir=None, page=None),
            "page": page,
            "pages": pages,
            "previous_url": _with(params, page=str(page - 1)) if page > 1 else None,
            "next_url": _with(params, page=str(page + 1)) if page < pages else None,
            "chips": _chips(params, _),
            "locked": _chips({"filters": ";".join(view.locked)}, _) if view.locked else [],
        }
        return frame(context)


def _panel(
    view: View,
    params: Any,
    i: int,
    heading: str,
    tabs: Sequence[Tab],
    chosen: tuple[Tab, int],
    found: list[dict[str, Any]],
    keys: Sequence[str],
    revenue: bool,
    lang: str,
    _: Callable[[str], str],
) -> dict[str, Any]:
    """One panel as _panel.html draws it: panel `i` (the p0..p4 of the URL) with `chosen`
    (its tab and that tab's place) and the engine's rows for it."""
    tab, current = chosen
    dimension = tab.dimension
    number = _number_format(lang)
    # Custom events are those a site sends itself, as in custom_events.csv.
    rows = [r for r in found if dimension != "event:name" or r["value"] != "pageview"]
    rows = rows[:PANEL_ROWS]
    metrics = _panel_metrics(dimension, revenue=revenue)
    rate = "conversion_rate" in metrics
    top_value = max((row.get("visitors") or 0 for row in rows), default=0)
    return {
        "heading": _(heading),
        "n": i + 1,  # its heading's id: panel-N, the same in a page and alone
        "column": _(tab.column) if not dimension.startswith(PROPS) else
        dimension.removeprefix(PROPS),
        "rate": rate,
        "revenue": "total_revenue" in metrics,
        "details_url": _details_url(view.base, dimension, params),
        # A drill-down names the tab for what it lists ("Referrers").
        "tabs": [{"label": _((tab if n == current else t).label),
                  "url": _with(params, **{f"p{i}": str(n)}),
                  "current": n == current}
                 for n, t in enumerate(tabs) if t.menu is None],
        "menu": _menu(params, i, tabs, current, _),
        "properties": [{"name": key, "url": _with(params, prop=key),
                        "current": dimension == PROPS + key} for key in keys]
        if tabs[current].dimension == PROPERTIES else None,
        "rows": [{"value": row["value"] if row["value"] not in (None, "") else
                  _("(none)"),
                  "visitors": number(row.get("visitors") or 0),
                  "rate": _shown("conversion_rate", row.get("conversion_rate"),
                                 number, _) if rate else None,
                  "revenue": _money(row.get("total_revenue"), lang),
                  "bar": _bar(row.get("visitors") or 0, top_value),
                  "filter_url": _filtered(params, dimension, row["value"])}
                 for row in rows],
        "map": _map(found, params, number)
        if dimension == MAP_DIMENSION and rows else None,
    }  # fmt: skip


def _shown_panels(
    view: View, goals: Sequence[Any], keys: Sequence[str]
) -> list[tuple[int, str, tuple[Tab, ...]]]:
    """(index in the URL's p0..p4, heading, tabs) of the panels `view` shows: its sections',
    and Goals when the site has goals or custom properties."""
    return [
        (i, heading, tabs)
        for i, (heading, tabs) in enumerate([*PANELS, GOALS_PANEL])
        if (PANEL_SECTIONS[i] if i < len(PANELS) else "goals") in view.sections
        and (i < len(PANELS) or goals or keys)
    ]


async def _panel_rows(
    storage: Any, query: Query, tab: Tab, goals: Sequence[Any], revenue: bool
) -> list[dict[str, Any]]:
    if tab.dimension == PROPERTIES:
        return []
    # The Countries tab's map reads every country; others one row more than they show, for
    # the pageview row the Custom events tab leaves out.
    limit = MAP_ROWS if tab.dimension == MAP_DIMENSION else PANEL_ROWS + 1
    metrics = _panel_metrics(tab.dimension, revenue=revenue)
    return await reports.breakdown(storage, query, tab.dimension, metrics, goals, (0, limit))


def _chosen(params: Any, index: int, tabs: Sequence[Tab], keys: Sequence[str]) -> tuple[Tab, int]:
    """The tab panel `index` shows (`p0`, `p1`... in the URL) and its place among `tabs`: its
    drill-down while the dashboard is filtered to one value of its dimension, and for the
    Properties tab `event:props:NAME` of the name in `prop` (else the first)."""
    raw = params.get(f"p{index}", "0")
    current = int(raw) if raw.isdigit() and int(raw) < len(tabs) else 0
    tab = tabs[current]
    if tab.drill is not None and _one_value(params, tab.dimension):
        return tab.drill, current
    if tab.dimension == PROPERTIES and keys:
        name = params.get("prop")
        return replace(tab, dimension=PROPS + (name if name in keys else keys[0])), current
    return tab, current


def _one_value(params: Any, dimension: str) -> bool:
    """Whether the filters hold `dimension` equal to a single value."""
    return any(
        f.startswith(dimension + "==") and "|" not in f.replace("\\|", "") for f in _filters(params)
    )


def _menu(
    params: Any, index: int, tabs: Sequence[Tab], current: int, _: Callable[[str], str]
) -> dict[str, Any] | None:
    """A panel's drop-down of further tabs (UTM tags), labelled by the chosen one of them."""
    items = [(n, tab) for n, tab in enumerate(tabs) if tab.menu is not None]
    if not items:
        return None
    chosen = next((tab for n, tab in items if n == current), None)
    return {
        "label": _(chosen.label if chosen else items[0][1].menu or ""),
        "current": chosen is not None,
        "entries": [{"label": _(tab.label), "url": _with(params, **{f"p{index}": str(n)}),
                   "current": n == current} for n, tab in items],
    }  # fmt: skip


async def _nothing() -> list[dict[str, Any]]:
    return []


async def _empty() -> dict[str, Any]:
    return {}


def _money(value: Any, lang: str) -> str | None:
    """Revenue as the engine gives it ({"value", "currency"}), in the UI language's format."""
    if not isinstance(value, dict):
        return None
    return str(format_currency(value["value"], value["currency"], locale=lang))


def _details_url(base: str, dimension: str, params: Any) -> str | None:
    # A property name with a slash cannot be a path segment: its tab has no details view.
    if "/" in dimension:
        return None
    return f"{base}/details/{quote(dimension, safe=':')}" + _with(params, metric=None)


def _panel_metrics(by: str, details: bool = False, revenue: bool = False) -> tuple[str, ...]:
    if by == "event:goal":
        # Revenue only where a goal carries it: the engine has none to give otherwise.
        return (*GOAL_COLUMNS, "total_revenue", "average_revenue") if revenue else GOAL_COLUMNS
    if not details:
        return ("visitors",)
    if by == "event:name" or by.startswith(PROPS):
        return ("visitors", "events")
    return PAGE_COLUMNS if by == "event:page" else VISIT_COLUMNS


def _with(params: Any, **changes: str | None) -> str:
    """This page's URL with some parameters changed (None: removed). `wait` goes: it asked
    for this page whole, not for every page after it."""
    merged = {key: value for key, value in params.items() if key != "wait"}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return "?" + urlencode(merged) if merged else "?"


def _map(
    rows: Sequence[dict[str, Any]], params: Any, number: Callable[[float], str]
) -> dict[str, Any]:
    """The Countries tab's map: the countries with visitors, shaded by them, each linking to the
    filter its table row links to."""
    counts = {str(row["value"]): int(row.get("visitors") or 0) for row in rows if row["value"]}
    drawn = world_map(counts)
    return {
        "view_box": drawn.view_box,
        "countries": [
            {"code": country.code, "shade": country.shade,
             "visitors": country.visitors, "shown": number(country.visitors),
             "filter_url": _filtered(params, MAP_DIMENSION, country.code)}
            for country in drawn.countries
        ],
    }  # fmt: skip


def _number_format(lang: str) -> Callable[[float], str]:
    return lambda value: format_decimal(value, locale=lang)


def _shown(name: str, value: float | None, number: Callable[[float], str], _: Any) -> str:
    if value is None:
        return "\N{EN DASH}"
    if name == "conversion_rate":
        return f"{number(value)}%"  # as precise as the Stats API gives it
    if name in ("bounce_rate", "scroll_depth"):
        return f"{number(round(value))}%"
    if name == "visit_duration":
        seconds = int(value)
        return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    if name == "views_per_visit":
        return number(round(value, 2))
    return number(round(value))


def _good(name: str, change: float | None) -> bool | None:
    if change is None or change == 0:
        return None
    # A falling bounce rate is good news.
    return (change < 0) if name == "bounce_rate" else (change > 0)


def _bar(value: float, top: float) -> int:
    """The row's bar as a class step of 10 % (the CSP allows no style attribute)."""
    return round(10 * value / top) * 10 if top else 0


def _bucket_label(text: str, bucket: str, lang: str) -> str:
    moment = datetime.fromisoformat(text)
    if bucket in ("minute", "hour"):
        return format_datetime(moment, "HH:mm", locale=lang)
    if bucket == "month":
        return format_date(moment, "MMM y", locale=lang)
    return format_date(moment, "d MMM", locale=lang)


def _partial_from(series: list[dict[str, Any]], query: Query, now: datetime) -> int | None:
    """The index of the bucket in progress (today's, this hour's, this week's), if the period
    holds it: the last bucket that starts before now."""
    if not query.start <= now < query.end:
        return None
    local = now.astimezone(query.zone).strftime("%Y-%m-%d %H:%M:%S")
    started = [i for i, row in enumerate(series) if row["date"] <= local]
    return started[-1] if started else None


def _periods(params: Any, query: Query, now: datetime, _: Any) -> list[dict[str, Any]]:
    """The picker's entries. Yesterday and last month are Plausible's shortcuts for a day and
    a month anchored one step back (`date=`), which the Stats API reads the same way."""
    today = now.astimezone(query.zone).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1).isoformat()
    anchor = params.get("date")
    out = []
    for key, label in PERIODS:
        period, date = {
            "yesterday": ("day", yesterday),
            "last_month": ("month", last_month),
        }.get(key, (key, None))
        if key == "day":
            current = query.period == "day" and anchor in (None, today.isoformat())
        elif key == "month":
            current = query.period == "month" and (anchor is None or anchor[:7] == str(today)[:7])
        elif date is not None:
            current = (
                query.period == period
                and anchor is not None
                and (anchor == date if key == "yesterday" else anchor[:7] == date[:7])
            )
        else:
            current = query.period == period
        extra = {"compare": None} if key == "realtime" else {}
        url = _with(params, period=period, date=date, **extra)
        out.append({"label": _(label), "url": url, "current": current})
    return out


def _range_label(query: Query, lang: str) -> str:
    if query.period == "realtime":
        return (
            format_datetime(query.start, "HH:mm", locale=lang)
            + " \N{EN DASH} "
            + (format_datetime(query.end, "HH:mm", locale=lang))
        )
    first, last = query.first_day, query.last_day
    if first == last:
        return format_date(first, "d MMMM y", locale=lang)
    since, until = (format_date(day, "d MMM y", locale=lang) for day in (first, last))
    return f"{since} \N{EN DASH} {until}"

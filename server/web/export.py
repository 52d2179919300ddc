"""A site's figures as CSV files: `/sites/DOMAIN/export` (a ZIP, one file a panel, as Plausible's
CSV export) and `/sites/DOMAIN/export/NAME.csv` (one of them), for the dashboard's query string.
One file may also come sorted as a details view sorts (`order`, `dir`): that view's "Download
CSV" is this file, for its query with its search as a filter (FILES_OF).

Route -> permission (the dashboard's) -> Query (stats_api.query_from_params) -> the one report
engine, every row -> CSV cells made safe for spreadsheets -> ZIP or CSV.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import reports
from ..events import Site
from ..reports.filters import GOAL, FilterError
from ..reports.metrics import MetricError
from ..reports.query import Query, QueryError
from ..stats_api import BadRequest, query_from_params
from .admin import Admin
from .templates import PAGE_HEADERS
from .view import View, as_user

# Plausible's file names, each for one dimension of the engine, in the ZIP's order.
BREAKDOWNS = (
    ("pages", "event:page"),
    ("entry_pages", "visit:entry_page"),
    ("exit_pages", "visit:exit_page"),
    ("sources", "visit:source"),
    ("channels", "visit:channel"),
    ("referrers", "visit:referrer"),
    ("utm_sources", "visit:utm_source"),
    ("utm_mediums", "visit:utm_medium"),
    ("utm_campaigns", "visit:utm_campaign"),
    ("utm_contents", "visit:utm_content"),
    ("utm_terms", "visit:utm_term"),
    ("countries", "visit:country"),
    ("regions", "visit:region"),
    ("cities", "visit:city"),
    ("browsers", "visit:browser"),
    ("browser_versions", "visit:browser_version"),
    ("operating_systems", "visit:os"),
    ("operating_system_versions", "visit:os_version"),
    ("devices", "visit:device"),
)
# What the engine has for a visit dimension and for pages (a page's bounce rate and duration
# are those of the visits that entered on it).
ROW_METRICS = ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration")
# Plausible's visitors.csv, in its column order.
SERIES_METRICS = ("visitors", "pageviews", "visits", "views_per_visit", "bounce_rate",
                  "visit_duration")  # fmt: skip
# A custom event is a hit, not a visit: bounce rate and duration mean nothing per event name.
EVENT_METRICS = ("visitors", "events")
CONVERSION_METRICS = ("visitors", "events", "conversion_rate")
CONVERSION_HEADER = ("name", "unique_conversions", "total_conversions", "conversion_rate")
NAMES = (
    "visitors",
    *(name for name, _dim in BREAKDOWNS),
    "custom_events",
    "conversions",
    "custom_props",
)
# custom_props.csv: every custom property's values (or, with `property=NAME`, one property's:
# its details view's download).
PROPS_HEADER = ("property", "value", *EVENT_METRICS)
PROPS = "event:props:"
# The file holding each dimension's rows: a details view's download. The Custom events tab is
# custom_events.csv, so the view leaves pageviews out as that file does.
FILES_OF = {
    **{dimension: name for name, dimension in BREAKDOWNS},
    "event:name": "custom_events",
    GOAL: "conversions",
}
# Rows asked of the engine at a time; a shorter answer is the last.
WINDOW = 1000
# What the engine raises for a query it cannot answer (a goal filter naming no goal, minutes
# over a month): a 400 that says why.
REFUSED = (QueryError, FilterError, MetricError)
# A spreadsheet reads a cell starting with one of these as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str | int | float:
    """A value as a CSV cell a spreadsheet will not run: text starting with `=`, `+`, `-`, `@`,
    a tab or a carriage return gets a leading `'`, as OWASP's CSV Injection page advises
    (https://owasp.org/www-community/attacks/CSV_Injection). Visitors write page paths,
    referrers, UTM tags and event names; opened in Excel or LibreOffice, `=HYPERLINK(...)` would
    be a live link. Numbers the engine computed stay numbers: `-1` there is not a formula."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def sort_rows(rows: list[dict[str, Any]], order: str, descending: bool) -> list[dict[str, Any]]:
    """Rows as a details view orders them: by name (`order="name"`, case-folded) or by a
    column, the engine's order (most visitors first) among equals. A row without the column's
    value sorts as below every number: last ascending, first descending."""
    if order == "name":
        return sorted(rows, key=lambda r: str(r["value"]).lower(), reverse=descending)
    return sorted(rows, key=lambda r: _sort_key(r.get(order)), reverse=descending)


def _sort_key(value: Any) -> tuple[bool, float]:
    if isinstance(value, dict):  # revenue: {"value": 12.5, "currency": "EUR"}
        value = value.get("value")
    return (value is None, float(value or 0))


def to_csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    """RFC 4180 (CRLF, quoted as needed), every cell through safe_cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(name) for name in header])
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    # NOTE: UTF-8 without a byte order mark, as Plausible's export: scripts written for its
    # files read ours unchanged, and a BOM would land in their first header ("\ufeffname").
    # The cost: Excel, opening a file by double-click, reads it in the system's code page
    # ("São Paulo" shows as "SÃ£o Paulo"); its Data > From Text/CSV takes UTF-8, and
    # LibreOffice, Numbers and Google Sheets read UTF-8 as it is.
    return out.getvalue().encode("utf-8")


class Export:
    def __init__(self, admin: Admin) -> None:
        # The dashboard's frame: the same permission check, clock and error pages.
        self.admin = admin
        self.storage = admin.storage
        self.pages = admin.pages

    def routes(self) -> list[Route]:
        return [
            Route("/sites/{domain}/export", self.archive),
            Route("/sites/{domain}/export/{name}.csv", self.single),
        ]

    async def archive(self, request: Request) -> Response:
        """GET /sites/DOMAIN/export: every file, zipped."""
        return await as_user(self.admin, request, self.archive_of)

    async def single(self, request: Request) -> Response:
        """GET /sites/DOMAIN/export/NAME.csv: the one file the ZIP holds under that name."""
        return await as_user(self.admin, request, self.single_of)

    async def archive_of(self, request: Request, site: Site, view: View) -> Response:
        """Every file `view` may show (a share link's sections), zipped."""
        prepared = await self._prepare(request, site, view)
        if isinstance(prepared, Response):
            return prepared
        query, goals = prepared
        keys = await reports.property_names(self.storage, query)
        names = [
            n
            for n in NAMES
            if (n != "conversions" or goals) and (n != "custom_props" or keys) and shows(view, n)
        ]
        try:
            files = await asyncio.gather(*(self._file(n, query, goals, keys=keys) for n in names))
        except REFUSED as exc:
            return self.pages.error(request, 400, str(exc))
        now = self.admin.clock().astimezone(query.zone)
        stamp = (now.year, now.month, now.day, now.hour, now.minute, now.second)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in zip(names, files, strict=True):
                # A fixed time on each entry: the same request at the same moment, the same bytes.
                entry = zipfile.ZipInfo(f"{name}.csv", date_time=stamp)
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, content)
        stem = await self._stem(site, query)
        return _download(out.getvalue(), "application/zip", f"{stem}.zip")

    async def single_of(self, request: Request, site: Site, view: View) -> Response:
        """The file NAME.csv, if `view` shows it."""
        prepared = await self._prepare(request, site, view)
        if isinstance(prepared, Response):
            return prepared
        query, goals = prepared
        name = request.path_params["name"]
        if name not in NAMES or (name == "conversions" and not goals) or not shows(view, name):
            return self.pages.error(request, 404)
        wanted = request.query_params.get("property")
        if wanted is not None and name != "custom_props":
            return self.pages.error(request, 400, "property= is for custom_props.csv only")
        if wanted is not None and not view.allows(PROPS + wanted):
            return self.pages.error(request, 404)
        try:
            order = _order(request.query_params, name)
            keys = [wanted] if wanted else await reports.property_names(self.storage, query)
            content = await self._file(name, query, goals, order, keys)
        except (BadRequest, *REFUSED) as exc:
            return self.pages.error(request, 400, str(exc))
        stem = await self._stem(site, query)
        return _download(content, "text/csv; charset=utf-8", f"{stem}-{name}.csv")

    async def _prepare(
        self, request: Request, site: Site, view: View
    ) -> Response | tuple[Query, list[Any]]:
        """The query and the site's goals; or the answer when the request cannot have them."""
        if not view.csv:
            return self.pages.error(request, 404)
        try:
            query = query_from_params(view.filters(request.query_params), site, self.admin.clock())
        except (BadRequest, QueryError, FilterError) as exc:
            return self.pages.error(request, 400, str(exc))
        return query, list(await self.storage.goals(site.id))

    async def _file(
        self,
        name: str,
        query: Query,
        goals: list[Any],
        order: tuple[str, bool] | None = None,
        keys: Sequence[str] = (),
    ) -> bytes:
        """The file's content; `order` (a column or "name", descending?) sorts a breakdown's
        rows as a details view does, else they come in the engine's order. `keys`: the
        property names custom_props.csv lists."""
        if name == "visitors":
            series = await reports.timeseries(self.storage, query, SERIES_METRICS, goals)
            return to_csv(
                ("date", *SERIES_METRICS),
                [[row["date"], *(row[m] for m in SERIES_METRICS)] for row in series],
            )
        if name == "custom_events":
            rows = await self._rows(query, "event:name", EVENT_METRICS, goals)
            # Pageviews have their own files; this one is the events a site sends itself.
            rows = [row for row in rows if row["value"] != "pageview"]
            return _table(EVENT_METRICS, _sorted(rows, order))
        if name == "custom_props":
            table = []
            for key in keys:
                rows = await self._rows(query, PROPS + key, EVENT_METRICS, goals)
                table += [[key, row["value"], *(row[m] for m in EVENT_METRICS)]
                          for row in _sorted(rows, order)]  # fmt: skip
            return to_csv(PROPS_HEADER, table)
        if name == "conversions":
            rows = await self._rows(query, GOAL, CONVERSION_METRICS, goals)
            return to_csv(CONVERSION_HEADER, [
                [row["value"], *(row[m] for m in CONVERSION_METRICS)]
                for row in _sorted(rows, order)
            ])  # fmt: skip
        rows = await self._rows(query, dict(BREAKDOWNS)[name], ROW_METRICS, goals)
        return _table(ROW_METRICS, _sorted(rows, order))

    async def _rows(
        self, query: Query, by: str, metrics: Sequence[str], goals: list[Any]
    ) -> list[dict[str, Any]]:
        """Every row, not a top ten: the engine a window at a time, so a page's extras (bounce
        rate, duration) are computed for 1,000 pages at once, not for all 30,000 in one go."""
        rows: list[dict[str, Any]] = []
        while True:
            window = (len(rows), WINDOW)
            got = await reports.breakdown(self.storage, query, by, metrics, goals, window)
            rows.extend(got)
            if len(got) < WINDOW:
                return rows

    async def _stem(self, site: Site, query: Query) -> str:
        """DOMAIN-FROM-TO: the domain is a checked hostname, the dates ISO, so the name needs
        no quoting. `all` starts at the first visit, as its time series does."""
        if query.period == "all":
            first = await self.storage.first_visit(site.id)
            if first is not None:
                query = query.starting_at(first)
        return f"{site.domain}-{query.first_day.isoformat()}-{query.last_day.isoformat()}"


def shows(view: View, name: str) -> bool:
    """Whether `view` (a share link's sections) shows the figures of file `name`."""
    if name == "visitors":
        return "overview" in view.sections
    if name in ("custom_events", "conversions", "custom_props"):
        return "goals" in view.sections
    return view.allows(dict(BREAKDOWNS)[name])


def columns_of(name: str) -> tuple[str, ...]:
    """The engine's metrics a file has a column for (what it may be sorted by)."""
    if name == "visitors":
        return ()
    return {
        "custom_events": EVENT_METRICS,
        "conversions": CONVERSION_METRICS,
        "custom_props": EVENT_METRICS,
    }.get(name, ROW_METRICS)


def _order(params: Any, name: str) -> tuple[str, bool] | None:
    """`order` and `dir` as a details view sends them; None when neither is given."""
    if "order" not in params and "dir" not in params:
        return None
    order, direction = params.get("order", "visitors"), params.get("dir", "desc")
    columns = columns_of(name)
    if not columns:
        raise BadRequest(f"{name}.csv is a time series: it has no order to choose")
    if order not in ("name", *columns):
        raise BadRequest(f"order must be name or one of {', '.join(columns)}")
    if direction not in ("asc", "desc"):
        raise BadRequest("dir must be asc or desc")
    return order, direction == "desc"


def _sorted(rows: list[dict[str, Any]], order: tuple[str, bool] | None) -> list[dict[str, Any]]:
    return rows if order is None else sort_rows(rows, *order)


def _table(metrics: Sequence[str], rows: list[dict[str, Any]]) -> bytes:
    return to_csv(("name", *metrics), [[row["value"], *(row[m] for m in metrics)] for row in rows])


def _download(content: bytes, media_type: str, filename: str) -> Response:
    headers = {**PAGE_HEADERS, "content-disposition": f'attachment; filename="{filename}"'}
    return Response(content, media_type=media_type, headers=headers)

"""The report e-mail: a week's or a month's figures from the report engine (the numbers the
dashboard and the Stats API give for the same days), written in the recipient's language.

    found = await figures(storage, site, period)
    letter = compose(letters, found, "nl", links)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_date, format_skeleton
from babel.numbers import format_decimal

from .. import reports
from ..events import Site
from ..reports import metrics as metric
from ..reports.query import Query
from ..sharing import shares
from ..storage import Storage
from ..web.templates import N_
from .bar_chart import bar_chart
from .letters import Letters, content_id
from .periods import Period

# The top line of the dashboard, less what needs a scroll-tracking tracker to mean anything.
TOP_LINE = (
    ("visitors", N_("Unique visitors")),
    ("visits", N_("Total visits")),
    ("pageviews", N_("Total pageviews")),
    ("bounce_rate", N_("Bounce rate")),
    ("visit_duration", N_("Visit duration")),
)
TOP_ROWS = 5


@dataclass(frozen=True)
class Figures:
    site: Site
    period: Period
    query: Query
    totals: dict[str, Any]
    before: dict[str, Any]
    series: list[dict[str, Any]]  # {"date", "visitors"} a day
    sources: list[dict[str, Any]]  # {"value", "visitors"}, most visitors first
    pages: list[dict[str, Any]]


@dataclass(frozen=True)
class Links:
    """Where the e-mail points: all on ZEEF_PUBLIC_URL."""

    public_url: str
    # The subscription's share link, when it names one (share_link); else the dashboard.
    share: str | None = None
    unsubscribe: str | None = None


@dataclass(frozen=True)
class Letter:
    subject: str
    text: str
    html: str
    images: dict[str, tuple[str, bytes]]


def query_for(site: Site, period: Period) -> Query:
    """The report's days as the Stats API's `period=7d&date=SUNDAY` or `period=month&
    date=FIRST`, compared with the week or calendar month before."""
    if period.kind == "weekly":
        query = Query.for_period(site, "7d", anchor=period.last)
    else:
        query = Query.for_period(site, "month", anchor=period.first)
    return query.compared("previous_period")


def dashboard_url(public_url: str, site: Site, period: Period) -> str:
    """The site's dashboard showing the report's period."""
    if period.kind == "weekly":
        params = {"period": "7d", "date": period.last.isoformat()}
    else:
        params = {"period": "month", "date": period.first.isoformat()}
    return f"{public_url}/sites/{site.domain}?{urlencode(params)}"


async def share_link(
    storage: Storage, share_id: int | None, public_url: str, secret: str, site: Site, now: float
) -> str | None:
    """The URL of the share link a subscription names (PUBLIC_URL/share/TOKEN), if it is the
    site's and still opens; else None, and the report links to the dashboard (which asks the
    reader to log in)."""
    if share_id is None:
        return None
    found = await shares.current_of(storage, share_id, now)
    if found is None or found.site_id != site.id:
        return None
    return shares.url(public_url, secret, found)


async def figures(storage: Storage, site: Site, period: Period) -> Figures:
    query = query_for(site, period)
    assert query.comparison is not None
    goals = list(await storage.goals(site.id))
    names = [name for name, _label in TOP_LINE]
    totals, before, series, sources, pages = await asyncio.gather(
        reports.aggregate(storage, query, names, goals),
        reports.aggregate(storage, query.comparison, names, goals),
        reports.timeseries(storage, query, ["visitors"], goals),
        reports.breakdown(storage, query, "visit:source", ["visitors"], goals, (0, TOP_ROWS)),
        reports.breakdown(storage, query, "event:page", ["visitors"], goals, (0, TOP_ROWS)),
    )
    return Figures(site, period, query, totals, before, series, sources, pages)


def compose(letters: Letters, found: Figures, lang: str, links: Links) -> Letter:
    """The subject, the text and HTML bodies and the chart of a report, in `lang`."""
    _ = letters.gettext(lang)
    site, period = found.site, found.period

    def number(value: float) -> str:
        return str(format_decimal(value, locale=lang))

    visited = found.totals.get("visits", 0) > 0
    top = []
    for name, label in TOP_LINE:
        value = found.totals.get(name)
        change = metric.change(name, value, found.before.get(name))
        shown = _shown(name, value, number) if visited or name in _COUNTS else "\N{EN DASH}"
        top.append({
            "label": _(label), "value": shown, "change": change,
            "arrow": "\N{UPWARDS ARROW}" if change and change > 0
            else "\N{DOWNWARDS ARROW}" if change and change < 0 else "",
            "change_shown": None if change is None else
            f"{number(abs(change))} {_('pts')}" if name in metric.PERCENTAGES
            else f"{number(abs(change))}%",
            "good": _good(name, change),
        })  # fmt: skip
    days = _range(period, lang)
    values = [row.get("visitors") or 0 for row in found.series]
    peak = max(range(len(values)), key=lambda i: values[i], default=None)
    chart_cid = content_id("chart", links.public_url)
    if peak is not None and values[peak]:
        chart_alt = _("Visitors per day, most on %(day)s: %(visitors)s") % {
            "day": format_date(_day(found.series[peak]["date"]), "EEEE d MMMM", locale=lang),
            "visitors": number(values[peak]),
        }
    else:
        chart_alt = _("Visitors per day: none in this period")
    weekly = period.kind == "weekly"
    context = {
        "site": site.domain,
        "title": _("Weekly report") if weekly else _("Monthly report"),
        "range": days,
        "compared": _("Compared with the week before") if weekly
        else _("Compared with the month before"),
        "top": top,
        "chart": {"cid": chart_cid, "alt": chart_alt,
                  "first": format_date(period.first, "d MMM", locale=lang),
                  "last": format_date(period.last, "d MMM", locale=lang)},
        "sources": _rows(found.sources, number, _("(none)")),
        "pages": _rows(found.pages, number, _("(none)")),
        "link": links.share or dashboard_url(links.public_url, site, period),
        "link_label": _("Open the shared dashboard") if links.share
        else _("Open the dashboard"),
        "unsubscribe": links.unsubscribe,
        "public_url": links.public_url,
    }  # fmt: skip
    subject = (
        _("%(site)s: weekly report, %(range)s")
        if weekly
        else _("%(site)s: monthly report, %(range)s")
    ) % {"site": site.domain, "range": days}
    return Letter(
        subject=subject,
        text=letters.render(lang, "report.txt", context),
        html=letters.render(lang, "report.html", context),
        images={chart_cid: ("visitors.png", bar_chart(values))},
    )


_COUNTS = ("visitors", "visits", "pageviews")


def _shown(name: str, value: float | None, number: Any) -> str:
    """As the dashboard shows a figure: whole numbers in the language's digits, a rate in
    %, a duration in minutes and seconds."""
    if value is None:
        return "\N{EN DASH}"
    if name == "bounce_rate":
        return f"{number(round(value))}%"
    if name == "visit_duration":
        seconds = int(value)
        return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    return str(number(round(value)))


def _good(name: str, change: float | None) -> bool | None:
    if not change:
        return None
    return (change < 0) if name == "bounce_rate" else (change > 0)


def _rows(rows: list[dict[str, Any]], number: Any, empty: str) -> list[dict[str, Any]]:
    top = max((row.get("visitors") or 0 for row in rows), default=0)
    return [
        {"value": str(row["value"]) if row["value"] not in (None, "") else empty,
         "visitors": number(row.get("visitors") or 0),
         # The bar behind the row, in whole percent of the first row's.
         "bar": round(100 * (row.get("visitors") or 0) / top) if top else 0}
        for row in rows
    ]  # fmt: skip


def _range(period: Period, lang: str) -> str:
    if period.kind == "monthly":
        # The language's own pattern: "March 2026", "maart 2026", "marzo de 2026".
        return str(format_skeleton("yMMMM", period.first, locale=lang))
    since, until = (format_date(day, "d MMM y", locale=lang) for day in (period.first, period.last))
    return f"{since} \N{EN DASH} {until}"


def _day(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text[:10])

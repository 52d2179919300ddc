"""The export over HTTP: a ZIP of CSV files whose rows are the Stats API's for the same query
string, every row of them, one panel alone as the same file, the dashboard's permission check,
and visitors' values that cannot become spreadsheet formulas."""

from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from server.goals import new_goal
from server.sites import find_site
from server.web import dashboard, export
from server.web.export import safe_cell

from .conftest import FIREFOX, IPHONE, Zeef, pageview
from .test_dashboard import DAY, operator
from .test_login import add_user, client_of, log_in

FILES = [
    "visitors.csv", "pages.csv", "entry_pages.csv", "exit_pages.csv", "sources.csv",
    "channels.csv", "referrers.csv", "utm_sources.csv", "utm_mediums.csv", "utm_campaigns.csv",
    "utm_contents.csv", "utm_terms.csv", "countries.csv", "regions.csv", "cities.csv",
    "browsers.csv", "browser_versions.csv", "operating_systems.csv",
    "operating_system_versions.csv", "devices.csv", "custom_events.csv",
]  # fmt: skip
ROW_METRICS = "visitors,visits,pageviews,bounce_rate,visit_duration"
SERIES_METRICS = "visitors,pageviews,visits,views_per_visit,bounce_rate,visit_duration"


def unzip(answer: httpx.Response) -> dict[str, list[list[str]]]:
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        names = archive.namelist()
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
        return {n: table(archive.read(n)) for n in names}


def table(content: bytes) -> list[list[str]]:
    assert not content.startswith(b"\xef\xbb\xbf")  # no BOM, as Plausible's files
    return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))


def cells(row: dict[str, Any], columns: str) -> list[str]:
    """An API row as CSV cells: numbers as written, no value as an empty cell."""
    return ["" if row[c] is None else str(row[c]) for c in columns.split(",")]


async def api(browser: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    answer = await browser.get(f"/api/v1/stats/{path}")
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


async def test_the_zip_holds_a_file_per_panel_with_the_stats_apis_rows(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        answer = await browser.get(f"/sites/example.com/export?{DAY}")
        assert answer.headers["content-type"] == "application/zip"
        assert answer.headers["content-disposition"] == (
            'attachment; filename="example.com-2026-03-14-2026-03-14.zip"'
        )
        assert answer.headers["cache-control"] == "no-store"
        files = unzip(answer)
        assert list(files) == FILES  # the site has no goals: no conversions.csv

        for name, prop in (("pages.csv", "event:page"), ("sources.csv", "visit:source")):
            rows = await api(browser, f"breakdown?site_id=example.com&{DAY}&property={prop}"
                                      f"&metrics={ROW_METRICS}&limit=1000")  # fmt: skip
            key = prop.split(":")[1]
            assert files[name][0] == ["name", *ROW_METRICS.split(",")]
            assert files[name][1:] == [[row[key], *cells(row, ROW_METRICS)] for row in rows]
            assert len(rows) >= 2
        series = await api(browser, f"timeseries?site_id=example.com&{DAY}"
                                    f"&metrics={SERIES_METRICS}")  # fmt: skip
        assert files["visitors.csv"][0] == ["date", *SERIES_METRICS.split(",")]
        assert files["visitors.csv"][1:] == [[r["date"], *cells(r, SERIES_METRICS)] for r in series]
        # C came at 10:00 and at 11:00: a visitor in each of two hours.
        assert len(series) == 24 and sum(r["visitors"] for r in series) == 4
        # Pageviews are in pages.csv; custom_events.csv holds the site's own events.
        assert files["custom_events.csv"] == [["name", "visitors", "events"], ["Signup", "1", "1"]]
        assert files["devices.csv"][1:] == [["Desktop", "2", "2", "3", "50", "300"],
                                           ["Mobile", "1", "2", "2", "100", "0"]]  # fmt: skip


async def test_with_goals_the_zip_has_conversions(shop: Zeef) -> None:
    storage = shop.app.state.storage
    site = await find_site(storage, "example.com")
    assert site is not None
    await storage.add_goal(new_goal(site.id, 0, event="Signup"))
    async with aclosing(await operator(shop)) as browser:
        files = unzip(await browser.get(f"/sites/example.com/export?{DAY}"))
    assert list(files) == [*FILES, "conversions.csv"]
    assert files["conversions.csv"] == [
        ["name", "unique_conversions", "total_conversions", "conversion_rate"],
        ["Signup", "1", "1", "33.33"],
    ]


async def test_the_query_strings_filter_applies(shop: Zeef) -> None:
    query = f"{DAY}&filters=visit:source==Google"
    async with aclosing(await operator(shop)) as browser:
        files = unzip(await browser.get(f"/sites/example.com/export?{query}"))
        pages = await api(browser, f"breakdown?site_id=example.com&{query}&property=event:page"
                                   f"&metrics={ROW_METRICS}")  # fmt: skip
    assert [row[0] for row in files["sources.csv"][1:]] == ["Google"]
    assert files["pages.csv"][1:] == [[r["page"], *cells(r, ROW_METRICS)] for r in pages]
    assert [row[0] for row in files["pages.csv"][1:]] == ["/pricing"]
    assert sum(int(row[1]) for row in files["visitors.csv"][1:]) == 1


async def test_every_row_is_exported_a_window_at_a_time(
    shop: Zeef, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three pages, read two at a time: the second window is short, and the file has all three.
    monkeypatch.setattr(export, "WINDOW", 2)
    async with aclosing(await operator(shop)) as browser:
        answer = await browser.get(f"/sites/example.com/export/pages.csv?{DAY}")
    assert [row[0] for row in table(answer.content)[1:]] == ["/", "/pricing", "/blog/a"]


async def test_one_panel_alone_is_the_same_file_as_in_the_zip(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        archive = await browser.get(f"/sites/example.com/export?{DAY}")
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
            for name in ("pages", "sources", "visitors", "operating_system_versions"):
                answer = await browser.get(f"/sites/example.com/export/{name}.csv?{DAY}")
                assert answer.status_code == 200
                assert answer.headers["content-type"] == "text/csv; charset=utf-8"
                assert answer.headers["content-disposition"] == (
                    f'attachment; filename="example.com-2026-03-14-2026-03-14-{name}.csv"'
                )
                assert answer.headers["cache-control"] == "no-store"
                assert answer.content == zipped.read(f"{name}.csv")
        for unknown in ("nonsense", "conversions", "visitors.csv", "..%2Fsettings"):
            answer = await browser.get(f"/sites/example.com/export/{unknown}.csv?{DAY}")
            assert answer.status_code == 404, unknown
        assert (await browser.get("/sites/nothing.example/export")).status_code == 404
        # Bad parameters, and a query only the engine can refuse: a 400 page, never a 500.
        for query in ("period=fortnight", "period=30d&interval=minute",
                      "filters=event:goal==Nothing"):  # fmt: skip
            answer = await browser.get(f"/sites/example.com/export?{query}")
            assert answer.status_code == 400, query


async def test_the_dashboard_links_to_the_export_of_its_query(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get(f"/sites/example.com?{DAY}&filters=visit:source%3D%3DGoogle")
    assert (
        '<a class="button button-secondary button-small" href="/sites/example.com/export?'
        f'{DAY.replace("&", "&amp;")}&amp;filters=visit:source%3D%3DGoogle" download>Export</a>'
    ) in page.text


async def test_only_who_may_see_the_dashboard_may_export(zeef: Zeef) -> None:
    storage = zeef.app.state.storage
    await add_user(zeef, "vic@acme.example", "viewer", customer="Acme")
    await add_user(zeef, "ben@beta.example", "viewer", customer="Beta")
    acme = {c["name"]: c["id"] for c in await storage.customers()}["Acme"]
    site = await find_site(storage, "example.com")
    assert site is not None
    await storage.set_site_customer(site.id, acme)
    # The last: a details view's download, its search a filter, sorted.
    paths = ("/sites/example.com/export", "/sites/example.com/export/pages.csv",
             "/sites/example.com/export/sources.csv?period=day&filters=visit%3Asource~goo"
             "&order=name&dir=asc")  # fmt: skip
    async with client_of(zeef) as anonymous:
        for path in paths:
            answer = await anonymous.get(path)
            assert answer.status_code in (302, 303) and "/login" in answer.headers["location"]
    for email, status in (("vic@acme.example", 200), ("ben@beta.example", 404)):
        async with client_of(zeef) as browser:
            assert (await log_in(browser, email)).status_code == 303
            shown = await browser.get("/sites/example.com")
            assert shown.status_code == status
            for path in paths:
                answer = await browser.get(path)
                assert answer.status_code == status, (email, path)
                if status == 404:  # the dashboard's answer: nothing says the site exists
                    assert answer.text == shown.text, path


FORMULAS = ['=HYPERLINK("http://x")', "+1", "-1+1", "@SUM(1)"]


async def test_visitors_values_cannot_become_formulas(zeef: Zeef) -> None:
    storage = zeef.app.state.storage
    site = await find_site(storage, "example.com")
    assert site is not None
    await storage.add_goal(new_goal(site.id, 0, event=FORMULAS[0]))
    utm = ("utm_source=%3DHYPERLINK(%22http%3A%2F%2Fx%22)&utm_medium=%2B1&utm_campaign=-1%2B1"
           "&utm_content=%40SUM(1)&utm_term=%3Cscript%3E")  # fmt: skip
    await zeef.send(pageview(f"https://example.com/=1?{utm}"))
    await zeef.send(pageview("https://example.com/", r="https://x.example/=HYPERLINK(1)"),
                    ip="81.2.69.143", ua=FIREFOX)  # fmt: skip
    for name in [*FORMULAS, "<script>"]:
        await zeef.send({"n": name, "u": "https://example.com/", "d": "example.com",
                         "p": {"plan": name}})  # fmt: skip
    await zeef.flush()
    async with aclosing(await operator(zeef)) as browser:
        files = unzip(await browser.get("/sites/example.com/export?period=day"))
    seen = set()
    for name, rows in files.items():
        for row in rows:
            for cell in row:
                if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    float(cell)  # only a number the engine computed may start so
                seen.add((name, cell))
    for name, value in (
        ("sources.csv", FORMULAS[0]),
        ("utm_sources.csv", FORMULAS[0]),
        ("utm_mediums.csv", "+1"),
        ("utm_campaigns.csv", "-1+1"),
        ("utm_contents.csv", "@SUM(1)"),
        *(("custom_events.csv", formula) for formula in FORMULAS),
        ("conversions.csv", FORMULAS[0]),
    ):
        # Prefixed with a quote, and otherwise whole.
        assert (name, "'" + value) in seen, (name, value)
    assert ("utm_terms.csv", "<script>") in seen
    assert ("custom_events.csv", "<script>") in seen
    assert ("pages.csv", "/=1") in seen
    assert ("referrers.csv", "x.example/=HYPERLINK(1)") in seen


CELLS = [
    ("equals", "=1+1", "'=1+1"),
    ("plus", "+1", "'+1"),
    ("minus", "-1", "'-1"),
    ("at", "@SUM(1)", "'@SUM(1)"),
    ("tab", "\tx", "'\tx"),
    ("carriage return", "\rx", "'\rx"),
    ("inside", "/=1", "/=1"),
    ("empty", "", ""),
    ("none", None, ""),
    ("negative int", -1, -1),
    ("negative float", -2.5, -2.5),
    ("zero", 0, 0),
]


@pytest.mark.parametrize(("value", "cell"), [c[1:] for c in CELLS], ids=[c[0] for c in CELLS])
def test_a_cell_is_made_safe_and_a_number_stays_a_number(value: object, cell: object) -> None:
    assert safe_cell(value) == cell


# -- a details view's download -------------------------------------------------------------------

# Every details view but a property's (event:props:NAME), which has no file of its own yet.
DETAILS_DIMENSIONS = list(dashboard.DETAILS)
HYPERLINK = '=HYPERLINK("x;y|z")'


async def geo_traffic(zeef: Zeef) -> None:
    """Rows in every panel: four visitors from three places, campaigns, a goal and a visitor
    whose source is a formula."""
    storage = zeef.app.state.storage
    site = await find_site(storage, "example.com")
    assert site is not None
    await storage.add_goal(new_goal(site.id, 0, event="Signup"))
    await zeef.send(pageview("https://example.com/?utm_source=Newsletter&utm_campaign=spring"
                             "&utm_medium=email&utm_content=top&utm_term=shoes"),
                    ip="81.2.69.142")  # fmt: skip
    await zeef.send(pageview("https://example.com/pricing"), ip="81.2.69.142")
    await zeef.send({"n": "Signup", "u": "https://example.com/pricing", "d": "example.com"},
                    ip="81.2.69.142")  # fmt: skip
    await zeef.send(pageview("https://example.com/pricing", r="https://www.google.com/"),
                    ip="89.160.20.112", ua=FIREFOX)  # fmt: skip
    await zeef.send(pageview("https://example.com/blog/a", r="https://duckduckgo.com/"),
                    ip="216.160.83.56", ua=IPHONE)  # fmt: skip
    await zeef.send(pageview("https://example.com/?utm_source=" + quote(HYPERLINK)),
                    ip="89.160.20.113")  # fmt: skip
    await zeef.flush()


async def listed(browser: httpx.AsyncClient, url: str) -> tuple[list[str], str | None]:
    """A details view's values over all its pages, and its download's address."""
    values: list[str] = []
    download = None
    while True:
        page = await browser.get(url)
        assert page.status_code == 200, (url, page.text)
        values += [html.unescape(v) for v in re.findall(
            r'<td class="details-value"><a href="[^"]*">([^<]*)</a>', page.text)]  # fmt: skip
        link = re.search(r'<a class="[^"]*" href="([^"]+)" download>Download CSV</a>', page.text)
        download = html.unescape(link.group(1)) if link else None
        more = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        if not more:
            return values, download
        url = url.split("?", 1)[0] + html.unescape(more.group(1))


async def test_each_details_view_downloads_its_rows_as_the_stats_api_gives_them(
    zeef_geo: Zeef, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "DETAILS_PAGE", 2)  # so the views have pages to walk
    await geo_traffic(zeef_geo)
    async with aclosing(await operator(zeef_geo)) as browser:
        for dim in DETAILS_DIMENSIONS:
            values, download = await listed(browser, f"/sites/example.com/details/{dim}?{DAY}")
            assert download == f"/sites/example.com/export/{export.FILES_OF[dim]}.csv?" + (
                f"{DAY}&filters=event%3Aname%21%3Dpageview" if dim == "event:name" else DAY
            ), dim
            answer = await browser.get(download)
            assert answer.status_code == 200, (dim, answer.text)
            assert answer.headers["content-type"] == "text/csv; charset=utf-8"
            rows = table(answer.content)[1:]
            # Every row the view lists over its pages, in its order, and no other.
            assert [row[0] or "(none)" for row in rows] == [safe_cell(v) for v in values], dim
            assert values, dim
            columns = ",".join(export.columns_of(export.FILES_OF[dim]))
            narrowed = "&filters=event:name!%3Dpageview" if dim == "event:name" else ""
            key = "goal" if dim == "event:goal" else dim.split(":", 1)[1]
            stats = await api(browser, f"breakdown?site_id=example.com&{DAY}&property={dim}"
                                       f"&metrics={columns}{narrowed}&limit=1000")  # fmt: skip
            assert rows == [[safe_cell(r[key]), *cells(r, columns)] for r in stats], dim
        # Countries, custom events, the formula: what the views list is not trivial.
        assert (await listed(browser, f"/sites/example.com/details/visit:country?{DAY}"))[0] == [
            "SE", "GB", "US"]  # fmt: skip
        assert (await listed(browser, f"/sites/example.com/details/event:name?{DAY}"))[0] == [
            "Signup"]  # fmt: skip
        sources = await browser.get(f"/sites/example.com/export/sources.csv?{DAY}")
        # Quoted for CSV, and prefixed so that a spreadsheet reads text, not a formula.
        assert b'"\'=HYPERLINK(""x;y|z"")"' in sources.content


async def test_the_download_has_the_views_search_and_order(
    zeef_geo: Zeef, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "DETAILS_PAGE", 2)
    await geo_traffic(zeef_geo)
    async with aclosing(await operator(zeef_geo)) as browser:
        base = f"/sites/example.com/details/visit:source?{DAY}"
        values, download = await listed(browser, f"{base}&search=goo&compare=previous_period")
        assert values == ["Google"] and download is not None
        assert "compare" not in download and "search" not in download
        rows = table((await browser.get(download)).content)[1:]
        stats = await api(browser, f"breakdown?site_id=example.com&{DAY}&property=visit:source"
                                   f"&filters=visit:source~goo&metrics={ROW_METRICS}")  # fmt: skip
        assert rows == [["Google", *cells(r, ROW_METRICS)] for r in stats] and len(rows) == 1
        # A search with the filter syntax's own characters (; and |) is one value, there and in
        # the download: the formula, quoted and prefixed.
        values, download = await listed(browser, f"{base}&search=" + quote("x;y|z"))
        assert values == [HYPERLINK] and download is not None
        content = (await browser.get(download)).content
        assert table(content)[1:] == [["'" + HYPERLINK, "1", "1", "1", "100", "0"]]
        assert content.split(b"\r\n")[1].startswith(b'"\'=HYPERLINK(""x;y|z"")",')

        for order in ("order=name&dir=asc", "order=name&dir=desc", "order=bounce_rate&dir=asc",
                      "order=visits&dir=desc", "order=visitors&dir=asc"):  # fmt: skip
            values, download = await listed(browser, f"{base}&{order}")
            assert download is not None and order in download
            rows = table((await browser.get(download)).content)[1:]
            assert [row[0] for row in rows] == [safe_cell(v) for v in values], order
            assert len(values) == 4, order
            stats = await api(browser, f"breakdown?site_id=example.com&{DAY}"
                                       f"&property=visit:source&metrics={ROW_METRICS}")  # fmt: skip
            assert sorted(rows) == sorted([safe_cell(r["source"]), *cells(r, ROW_METRICS)]
                                          for r in stats)  # fmt: skip
        values, _download = await listed(browser, f"{base}&order=name&dir=asc")
        assert values == sorted(values, key=str.lower)
        # What the view would not send: a 400 that says why.
        for query in ("order=nonsense", "order=pageviews&dir=up", "order=visitors&dir=asc"):
            name = "visitors" if query.endswith("asc") else "sources"
            answer = await browser.get(f"/sites/example.com/export/{name}.csv?{DAY}&{query}")
            assert answer.status_code == 400, query


async def test_the_dashboards_date_form_range_is_exported(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        answer = await browser.get("/sites/example.com/export?from=2026-03-14&to=2026-03-14")
        assert answer.headers["content-disposition"] == (
            'attachment; filename="example.com-2026-03-14-2026-03-14.zip"'
        )
        assert sum(int(row[1]) for row in unzip(answer)["visitors.csv"][1:]) == 4

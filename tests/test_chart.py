"""The dashboard's chart: server.web.chart.build_chart's layout (round ticks that cover the
data, x labels that do not collide, gaps and the partial bucket), dashboard/templates/_chart.html
rendered through Pages' own environment (escaping, the table), and a page with two charts in
real Chromium, light and dark, wide and phone-sized.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from server.headers import SecurityHeaders
from server.web.chart import Chart, build_chart
from server.web.templates import Pages, page_headers

from .live import _free_port

HOSTILE = "<script>alert(1)</script>"
ATTRIBUTE = '"onmouseover=x'
DAYS = [f"{day} Mar" for day in range(1, 32)]


def dutch(value: float) -> str:
    """A caller's locale-aware formatter: 1234 as 1.234, fractions with a comma."""
    if float(value).is_integer():
        return f"{value:,.0f}".replace(",", ".")
    return f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")


def tick_values(chart: Chart) -> list[float]:
    return [float(tick.label) for tick in chart.ticks]


def subpaths(d: str) -> list[list[tuple[float, float]]]:
    """SVG path data of M and L commands as its runs of points."""
    return [
        [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+) (-?[\d.]+)", run)]
        for run in d.split("M")[1:]
    ]


# -- layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "highest", [1, 3, 7, 10, 11, 99, 101, 480, 1234, 99_999, 5_000_001, 0.37, 2.5, 0.004]
)
def test_ticks_are_round_numbers_from_zero_just_past_the_highest_value(highest: float) -> None:
    values = [highest / 3, highest, None, highest / 2]
    chart = build_chart(DAYS[:4], values)
    ticks = tick_values(chart)
    step = ticks[1] - ticks[0]
    assert ticks[0] == 0
    assert all(math.isclose(b - a, step) for a, b in itertools.pairwise(ticks))
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 5)), step
    assert ticks[-1] >= highest > ticks[-2], ticks  # covers it, by less than a step
    # 3 to 5 steps; whole numbers never get half a visitor, so a low count may have fewer.
    whole = all(float(v).is_integer() for v in values if v is not None)
    assert 3 <= len(ticks) - 1 <= 5 or (whole and step == 1), ticks
    # The ticks span the plot: 0 on its floor, the last on its ceiling.
    assert chart.ticks[0].y == chart.bottom and chart.ticks[-1].y == chart.top


def test_the_axis_labels_come_from_the_callers_formatter() -> None:
    chart = build_chart(DAYS[:3], [1200, 4000, 2500], format_value=dutch)
    assert [tick.label for tick in chart.ticks] == ["0", "1.000", "2.000", "3.000", "4.000"]
    assert [bucket.value for bucket in chart.buckets] == ["1.200", "4.000", "2.500"]
    rates = build_chart(DAYS[:2], [0.25, 0.55], format_value=dutch)
    assert [tick.label for tick in rates.ticks] == ["0", "0,20", "0,40", "0,60"]


@pytest.mark.parametrize("values", [[None] * 5, [0] * 5, [0.0, None, 0.0, 0.0, None]])
def test_no_data_or_only_zeros_is_a_flat_chart_on_a_zero_to_one_axis(
    values: list[float | None],
) -> None:
    chart = build_chart(DAYS[:5], values)
    assert tick_values(chart) == [0, 1]
    for run in subpaths(chart.line):
        assert all(y == chart.bottom for _, y in run)
    assert all(b.y in (None, chart.bottom) for b in chart.buckets)


def test_one_bucket_is_one_point_in_the_middle() -> None:
    chart = build_chart(["14:00"], [42], previous=[40])
    [bucket] = chart.buckets
    assert bucket.x == chart.width / 2 and bucket.y is not None and bucket.y < chart.bottom
    assert (bucket.left, bucket.right) == (0, chart.width)  # its tooltip strip: all of it
    assert chart.line == "" and chart.previous_line == ""  # nothing to join it to
    assert [label.label for label in chart.x_labels] == ["14:00"]
    assert build_chart([], []).buckets == ()


def test_x_labels_are_thinned_so_they_never_overlap() -> None:
    few = build_chart(DAYS[:5], [1] * 5)
    assert [label.label for label in few.x_labels] == DAYS[:5]
    for count in (8, 9, 24, 31, 90):
        labels = [f"{h % 24:02d}:00" for h in range(count)] if count == 24 else DAYS * 3
        labels = labels[:count]
        chart = build_chart(labels, [1] * count)
        for shown, most, font in ((chart.x_labels, 8, 12), (chart.x_labels_narrow, 4, 28)):
            assert 2 <= len(shown) <= most, (count, shown)
            assert shown[0].label == labels[0]
            # A generous 0.6 em per character: centres a label's width apart, and the
            # outermost ones inside the SVG.
            width = max(len(label) for label in labels) * 0.6 * font
            xs = [label.x for label in shown]
            assert all(b - a >= width for a, b in itertools.pairwise(xs)), (count, xs)
            assert xs[0] - width / 2 >= 0 and xs[-1] + width / 2 <= chart.width
            # Evenly thinned: every k-th bucket.
            gaps = {round(b - a, 0) for a, b in itertools.pairwise(xs)}
            assert max(gaps) - min(gaps) <= 1, gaps


def test_the_partial_bucket_is_drawn_dashed_from_the_last_complete_one() -> None:
    chart = build_chart(DAYS[:7], [5, 6, 7, 8, 9, 4, 2], partial_from=5)
    xs = [b.x for b in chart.buckets]
    [solid] = subpaths(chart.line)
    [dashed] = subpaths(chart.partial_line)
    assert [x for x, _ in solid] == xs[:5]
    assert [x for x, _ in dashed] == xs[4:]  # joined to the last complete point
    assert chart.partial
    whole = build_chart(DAYS[:7], [5, 6, 7, 8, 9, 4, 2])
    assert whole.partial_line == "" and not whole.partial
    assert [x for x, _ in subpaths(whole.line)[0]] == xs
    # Today as the only bucket, or the only one with data: a point, no line at all.
    today = build_chart(DAYS[:3], [1, 2, 3], partial_from=0)
    assert today.line == ""
    assert [x for x, _ in subpaths(today.partial_line)[0]] == [b.x for b in today.buckets]


def test_the_comparison_line_is_there_only_when_given() -> None:
    alone = build_chart(DAYS[:4], [1, 2, 3, 4])
    assert alone.previous_line == "" and not alone.has_previous
    assert all(b.previous is None for b in alone.buckets)
    compared = build_chart(DAYS[:4], [1, 2, 3, 4], previous=[4, 3, None, 1])
    assert compared.has_previous
    assert [len(run) for run in subpaths(compared.previous_line)] == [2]  # the lone 1 is a gap
    assert [b.previous for b in compared.buckets] == ["4", "3", None, "1"]
    with pytest.raises(ValueError, match="one entry per bucket"):
        build_chart(DAYS[:4], [1, 2, 3, 4], previous=[1, 2])


def test_a_missing_value_breaks_the_line_instead_of_dropping_to_zero() -> None:
    chart = build_chart(DAYS[:6], [3, 4, None, 5, 6, 7])
    runs = subpaths(chart.line)
    xs = [b.x for b in chart.buckets]
    assert [[x for x, _ in run] for run in runs] == [xs[:2], xs[3:]]
    assert all(y < chart.bottom for run in runs for _, y in run)
    assert chart.buckets[2].y is None and chart.buckets[2].value is None
    assert [[x for x, _ in run][1:-1] for run in subpaths(chart.area.replace(" Z", ""))] == [
        xs[:2],
        xs[3:],
    ]
    assert chart.peak is not None and chart.peak.label == DAYS[5]


# -- the template -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages() -> Pages:
    return Pages()


def render(pages: Pages, chart: Chart, *args: str, lang: str = "en") -> str:
    # Pages' own environment (escaping, translations, StrictUndefined), the macro imported as
    # a page will import it.
    template = pages._environments[lang].from_string(
        '{% import "_chart.html" as charts %}{{ charts.chart(chart, *args) }}'
    )
    return template.render(chart=chart, args=args)


def test_labels_titles_and_the_table_are_escaped(pages: Pages) -> None:
    chart = build_chart([HOSTILE, ATTRIBUTE, "3 Mar"], [1, 2, 3], previous=[3, 2, 1])
    html = render(pages, chart, HOSTILE, ATTRIBUTE, HOSTILE)
    assert "<script" not in html and '"onmouseover' not in html
    svg, table = html.split("<details", 1)
    script, attribute = "&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;onmouseover=x"
    assert f'<title id="{chart.id}-title">{script}</title>' in svg
    assert re.search(rf"<text [^>]*>{re.escape(script)}</text>", svg)  # an x label
    assert re.search(rf"<text [^>]*>{attribute}</text>", svg)
    tooltips = re.findall(r"<title>([^<]*)</title>", svg)
    assert f"{script}: 1 {attribute}; {script}: 3" in tooltips
    assert f'<th scope="row">{script}</th>' in table
    assert f'<th scope="row">{attribute}</th>' in table
    assert f'<th scope="col" class="number">{attribute}</th>' in table


def test_the_table_has_a_row_per_bucket_with_the_formatted_numbers(pages: Pages) -> None:
    values: list[float | None] = [1234, 980.5, None, 2000]
    chart = build_chart(DAYS[:4], values, previous=[1100, 1000, 900, None], format_value=dutch)
    html = render(pages, chart, "Visitors", "visitors", "Last month")
    [body] = re.findall(r"<tbody>(.*)</tbody>", html, re.S)
    rows = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in body.split("</tr>")[:-1]]
    # A dash on the screen, words for a screen reader.
    missing = '<span aria-hidden="true">\u2013</span><span class="visually-hidden">No data</span>'
    assert rows == [
        ["1 Mar", "1.234", "1.100"],
        ["2 Mar", "980,50", "1.000"],
        ["3 Mar", missing, "900"],
        ["4 Mar", "2.000", missing],
    ]
    assert re.findall(r"<th scope=\"col\"[^>]*>([^<]*)</th>", html) == [
        "Period",
        "visitors",
        "Last month",
    ]
    tooltips = re.findall(r"<title>([^<]*)</title>", html)
    assert tooltips == [
        "1 Mar: 1.234 visitors; Last month: 1.100",
        "2 Mar: 980,50 visitors; Last month: 1.000",
        "3 Mar: no data; Last month: 900",
        "4 Mar: 2.000 visitors",
    ]
    assert "Highest: 2.000 visitors (4 Mar)" in html
    assert html.count('class="chart-dot"') == 3  # none for the missing value
    # Without a comparison: two columns, no key, no comparison line.
    alone = render(pages, build_chart(DAYS[:2], [1, 2]), "Visitors", "visitors")
    assert "chart-previous" not in alone and "chart-key" not in alone
    assert len(re.findall(r"<th scope=\"col\"", alone)) == 2


@pytest.mark.parametrize(
    ("labels", "values"), [([], []), (["14:00"], [7]), (DAYS[:3], [None] * 3), (DAYS[:3], [0] * 3)]
)
def test_an_empty_flat_or_single_chart_renders(
    pages: Pages, labels: list[str], values: list[float | None]
) -> None:
    chart = build_chart(labels, values, previous=values, partial_from=len(values) - 1)
    html = render(pages, chart, "Visitors", "visitors")
    assert html.count("<tr>") == len(labels) + 1
    assert html.count('class="chart-dot"') == sum(v is not None for v in values)
    assert re.findall(r'<text x="0" [^>]*>([^<]*)</text>', html) == ["0", "1"] or values == [7]
    if all(v is None for v in values):
        assert f'<desc id="{chart.id}-desc">No data</desc>' in html


def test_the_chart_speaks_the_pages_language(pages: Pages) -> None:
    chart = build_chart(DAYS[:2], [1, None], previous=[2, 3], partial_from=1)
    html = render(pages, chart, "Bezoekers", "bezoekers", lang="nl")
    assert "Vorige periode" in html and "Als tabel tonen" in html and "Onvolledig" in html
    assert "2 Mar: geen gegevens; Vorige periode: 3" in html


# -- in real Chromium ---------------------------------------------------------------------------

PAGE = """{% extends "base.html" %}
{% import "_chart.html" as charts %}
{% block title %}Chart{% endblock %}
{% block content %}
<section class="card">
  <h2>Visitors</h2>
  {{ charts.chart(days, "Visitors per day", "visitors") }}
</section>
<section class="card">
  <h2>Today</h2>
  {{ charts.chart(hours, "Pageviews per hour", "pageviews", "Yesterday") }}
</section>
{% endblock %}"""


def chart_app(pages: Pages) -> Starlette:
    """A page extending base.html with two charts: 31 days against the month before, today
    to be completed; and 24 hours with the afternoon still to come."""
    wave = [round(900 + 400 * math.sin(day / 2.5) + 37 * (day % 4)) for day in range(31)]
    days = build_chart(
        DAYS, wave, previous=[v * 0.8 + 90 for v in reversed(wave)], partial_from=30,
        format_value=dutch,
    )  # fmt: skip
    visits: list[float | None] = [3, 1, 0, 0, 1, 2, 8, 20, 34, 41, 38, 44, 39, 30, 12]
    hours = build_chart(
        [f"{h:02d}:00" for h in range(24)], visits + [None] * 9,
        previous=[2, 1, 1, 0, 0, 3, 9, 25, 30, 36, 40, 41, 37, 33, 35, 36, 30, 28, 20, 18, 14,
                  9, 6, 4], partial_from=14,
    )  # fmt: skip

    async def page(request: Request) -> Response:
        environment = pages._environments["en"]
        html = environment.from_string(PAGE).render(
            days=days,
            hours=hours,
            nav=(),
            user=None,
            messages=(),
            request=request,
            lang="en",
            theme=None,
            shared=False,
            embed=False,
        )
        return page_headers(HTMLResponse(html))

    return Starlette(routes=[Route("/chart", page), pages.static_route()])


@pytest.fixture(scope="module")
def live(pages: Pages) -> Iterator[str]:
    port = _free_port("127.0.0.1")
    config = uvicorn.Config(
        SecurityHeaders(chart_app(pages)), host="127.0.0.1", port=port, log_level="warning",
        lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_chart_in_chromium(live: str, browser: Any, screenshots: Path, scheme: str) -> None:
    console: list[str] = []
    for width, suffix in ((1280, ""), (360, "-phone")):
        context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        page = context.new_page()
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.goto(f"{live}/chart")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=screenshots / f"chart-{scheme}{suffix}.png", full_page=True)
        assert not [line for line in console if line.startswith("error")], console
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        svg = page.locator(".chart-svg").first.bounding_box()
        card = page.locator(".card").first.bounding_box()
        assert svg is not None and card is not None and svg["width"] > card["width"] * 0.8
        # The axis labels stay readable: at least 9 px tall on the phone, and only the
        # narrow screen's sparser row of x labels is shown there.
        label = page.locator(".chart-x text").first.bounding_box()
        assert label is not None and label["height"] >= 9, label
        wide, narrow = page.locator(".chart-x").first, page.locator(".chart-x-narrow").first
        assert wide.is_visible() != (width < 400) and narrow.is_visible() == (width < 400)
        # The styles applied: the main line in the accent colour, the comparison dotted.
        stroke = page.evaluate("getComputedStyle(document.querySelector('.chart-line')).stroke")
        assert stroke == ("rgb(15, 107, 99)" if scheme == "light" else "rgb(79, 209, 192)")
        dashes = "getComputedStyle(document.querySelector('.chart-previous')).strokeDasharray"
        assert page.evaluate(dashes) == "1px, 5px"
        # The hover strips take the pointer (their <title> is the tooltip) and light up.
        hit = page.locator(".chart-hit").nth(10)
        hit.hover()
        assert (
            page.evaluate(
                "getComputedStyle(document.querySelector('.chart-hit:hover')).fillOpacity"
            )
            == "0.06"
        )
        assert (
            hit.locator("title").text_content() == "11 Mar: 671 visitors; Previous period: 1.126,80"
        )
        page.get_by_text("Show as table").first.click()
        assert page.locator("table.list").first.is_visible()
        page.screenshot(path=screenshots / f"chart-table-{scheme}{suffix}.png", full_page=True)
        context.close()

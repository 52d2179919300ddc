"""A site's dashboard over HTTP: its figures are the Stats API's for the same query string,
rows filter, chips remove their filter, visitors' values are escaped, and a site with no data
shows how to install the snippet."""

from __future__ import annotations

import html
import re
from contextlib import aclosing

import httpx

from .conftest import FIREFOX, Zeef, pageview
from .test_login import add_user, client_of, log_in

DAY = "period=day&date=2026-03-14"


async def operator(zeef: Zeef) -> httpx.AsyncClient:
    await add_user(zeef, "op@zeef.example", "superuser")
    browser = client_of(zeef)
    assert (await log_in(browser, "op@zeef.example")).status_code == 303
    return browser


def metric_values(page: str) -> list[str]:
    return [
        html.unescape(v) for v in re.findall(r'<span class="metric-value">([^<]*)</span>', page)
    ]


def panel_rows(page: str, heading: str) -> list[tuple[str, str]]:
    section = page.split(f">{heading}</h2>", 1)[1].split("</section>", 1)[0]
    cells = re.findall(r'title="[^"]*">([^<]*)</a></td>\s*<td class="number">([^<]*)</td>', section)
    return [(html.unescape(label), count) for label, count in cells]


async def test_the_figures_are_the_stats_apis(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get(f"/sites/example.com?{DAY}")
        assert page.status_code == 200
        api = (await browser.get(
            f"/api/v1/stats/aggregate?site_id=example.com&{DAY}"
            "&metrics=visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration"
        )).json()["results"]  # fmt: skip
        shown = metric_values(page.text)
        assert shown[:3] == [str(api[m]["value"]) for m in ("visitors", "visits", "pageviews")]
        assert shown[3] == str(api["views_per_visit"]["value"])
        assert shown[4] == f"{api['bounce_rate']['value']}%"
        duration = api["visit_duration"]["value"]
        assert shown[5] == (f"{duration // 60}m {duration % 60:02d}s" if duration >= 60
                            else f"{duration}s")  # fmt: skip

        pages = (await browser.get(
            f"/api/v1/stats/breakdown?site_id=example.com&{DAY}&property=event:page"
        )).json()["results"]  # fmt: skip
        assert panel_rows(page.text, "Top pages") == [
            (row["page"], str(row["visitors"])) for row in pages
        ]
        sources = (await browser.get(
            f"/api/v1/stats/breakdown?site_id=example.com&{DAY}&property=visit:source"
        )).json()["results"]  # fmt: skip
        assert panel_rows(page.text, "Top sources") == [
            (row["source"], str(row["visitors"])) for row in sources
        ]
        # The chart's table holds the same series as the API's timeseries.
        series = (await browser.get(
            f"/api/v1/stats/timeseries?site_id=example.com&{DAY}&metrics=visitors"
        )).json()["results"]  # fmt: skip
        assert sum(row["visitors"] for row in series) >= 1
        assert page.text.count("<tr") >= len(series)


async def test_a_row_filters_the_dashboard_and_its_chip_removes_the_filter(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get(f"/sites/example.com?{DAY}")
        link = re.search(r'<a href="([^"]+)" title="Filter by Google">', page.text)
        assert link, page.text
        filtered = await browser.get("/sites/example.com" + html.unescape(link.group(1)))
        assert filtered.status_code == 200
        api = (await browser.get(
            f"/api/v1/stats/aggregate?site_id=example.com&{DAY}&filters=visit:source==Google"
        )).json()["results"]  # fmt: skip
        assert metric_values(filtered.text)[0] == str(api["visitors"]["value"]) == "1"
        assert "Source is Google" in filtered.text
        remove = re.search(r'<a href="([^"]+)" aria-label="Remove filter', filtered.text)
        assert remove
        back = await browser.get("/sites/example.com" + html.unescape(remove.group(1)))
        assert metric_values(back.text)[0] == "3" and "Source is Google" not in back.text


async def test_visitors_values_are_escaped(zeef: Zeef) -> None:
    evil = '/<script>alert(1)</script>"onmouseover=x'
    await zeef.send(pageview("https://example.com" + evil.replace(" ", "%20"),
                             r="https://=HYPERLINK(1)/"), ua=FIREFOX)  # fmt: skip
    await zeef.flush()
    async with aclosing(await operator(zeef)) as browser:
        page = await browser.get("/sites/example.com?period=day&date=2026-03-14")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert '"onmouseover=x' not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover=x" in page.text


async def test_a_site_without_data_shows_the_snippet(zeef: Zeef) -> None:
    async with aclosing(await operator(zeef)) as browser:
        page = await browser.get("/sites/example.com")
    assert "Waiting for the first pageview" in page.text
    assert "data-domain=&#34;example.com&#34;" in page.text or 'data-domain="example.com"' in (
        html.unescape(page.text)
    )
    assert 'class="metric-value"' not in page.text


async def test_bad_parameters_are_a_400_page(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        for query in ("period=fortnight", "period=custom&date=2026-03-01",
                      "filters=visit:nonsense==x", "compare=sometimes",
                      "filters=event:goal==Nothing"):  # fmt: skip
            answer = await browser.get(f"/sites/example.com?{query}")
            assert answer.status_code == 400, (query, answer.status_code)
        assert (await browser.get("/sites/nothing.example")).status_code == 404


async def test_a_details_view_lists_searches_sorts_and_pages(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get(f"/sites/example.com?{DAY}")
        link = re.search(
            r'<a href="(/sites/example.com/details/event:page[^"]*)">Details', page.text
        )
        assert link, page.text
        details = await browser.get(html.unescape(link.group(1)))
        assert details.status_code == 200
        api = (await browser.get(
            f"/api/v1/stats/breakdown?site_id=example.com&{DAY}&property=event:page"
            "&metrics=visitors,pageviews"
        )).json()["results"]  # fmt: skip
        cells = re.findall(r'<td class="details-value"><a href="[^"]*">([^<]*)</a></td>\s*'
                           r'<td class="number">([^<]*)</td>\s*<td class="number">([^<]*)</td>',
                           details.text)  # fmt: skip
        assert [(c[0], c[1], c[2]) for c in cells] == [
            (r["page"], str(r["visitors"]), str(r["pageviews"])) for r in api
        ]
        found = await browser.get(f"/sites/example.com/details/event:page?{DAY}&search=blog")
        assert re.findall(r'<td class="details-value"><a href="[^"]*">([^<]*)</a>', found.text) == [
            "/blog/a"
        ]
        by_name = await browser.get(
            f"/sites/example.com/details/event:page?{DAY}&order=name&dir=asc"
        )
        names = re.findall(r'<td class="details-value"><a href="[^"]*">([^<]*)</a>', by_name.text)
        assert names == sorted(names) and len(names) == 3
        assert (await browser.get(f"/sites/example.com/details/visit:nonsense?{DAY}")
                ).status_code == 404  # fmt: skip


async def test_a_custom_range_from_the_date_form(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get("/sites/example.com?from=2026-03-14&to=2026-03-14")
        api = (await browser.get(
            "/api/v1/stats/aggregate?site_id=example.com&period=custom&date=2026-03-14,2026-03-14"
        )).json()["results"]  # fmt: skip
        assert metric_values(page.text)[0] == str(api["visitors"]["value"]) == "3"
        assert "14 March 2026" in page.text


async def test_goals_show_with_their_conversion_rates(shop: Zeef) -> None:
    from server.goals import Goal

    storage = shop.app.state.storage
    [site] = [s for s in await storage.sites() if s.domain == "example.com"]
    await storage.add_goal(Goal(site.id, "event", "Signup", event_name="Signup"))
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get(f"/sites/example.com?{DAY}")
        api = (await browser.get(
            f"/api/v1/stats/breakdown?site_id=example.com&{DAY}&property=event:goal"
            "&metrics=visitors,conversion_rate"
        )).json()["results"]  # fmt: skip
    section = page.text.split(">Goals</h2>", 1)[1].split("</section>", 1)[0]
    cells = re.findall(r'title="[^"]*">([^<]*)</a></td>\s*<td class="number">([^<]*)</td>\s*'
                       r'<td class="number">([^<]*)</td>', section)  # fmt: skip
    assert cells == [(r["goal"], str(r["visitors"]), f"{r['conversion_rate']}%") for r in api]
    assert cells == [("Signup", "1", "33.33%")]


async def test_realtime_yesterday_and_last_month_in_the_picker(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get("/sites/example.com?period=day")
        picker = page.text.split('class="dash-periods"', 1)[1].split("</ul>", 1)[0]
        links = re.findall(r'<li><a href="([^"]+)"[^>]*>([^<]+)</a></li>', picker)
        by_label = {label: html.unescape(url) for url, label in links}
        assert by_label["Yesterday"] == "?period=day&date=2026-03-13"
        assert by_label["Last month"] == "?period=month&date=2026-02-01"
        live = await browser.get("/sites/example.com" + by_label["Realtime"])
        assert live.status_code == 200
        assert 'aria-label="Comparison"' not in live.text
        yesterday = await browser.get("/sites/example.com" + by_label["Yesterday"])
        assert re.search(r'aria-current="true">Yesterday<', yesterday.text)
        assert "13 March 2026" in yesterday.text
        api = (await browser.get(
            "/api/v1/stats/aggregate?site_id=example.com&period=day&date=2026-03-13"
        )).json()["results"]  # fmt: skip
        assert metric_values(yesterday.text)[0] == str(api["visitors"]["value"])


async def test_consent_and_drops_panels(shop: Zeef) -> None:
    import json
    import uuid

    decision = {"site": "example.com", "consent_id": str(uuid.uuid4()), "action": "custom",
                "choices": {"necessary": True, "analytics": True}, "revision": 1,
                "language": "en", "texts_hash": "ab" * 32, "path": "/", "gpc": False}  # fmt: skip
    assert (await shop.client.post("/api/consent", content=json.dumps(decision))).status_code < 300
    await shop.send(pageview(), ua="curl/8.5.0")
    await shop.flush()
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get(f"/sites/example.com?{DAY}")
    consent = page.text.split(">Consent</h2>", 1)[1].split("</section>", 1)[0]
    assert "1 decision" in consent
    assert re.search(r"<td>analytics</td><td class=\"number\">1</td><td class=\"number\">100%</td>",
                     consent)  # fmt: skip
    drops = page.text.split(">Not counted</h2>", 1)[1].split("</section>", 1)[0]
    assert "a bot or crawler, not a person" in drops

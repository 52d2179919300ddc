"""The dashboard's further tabs over HTTP, each equal to the Stats API's breakdown: UTM tags,
a source's referrers and a browser's versions (drill-downs while filtered to one value), custom
properties and goal revenue; and their details views."""

from __future__ import annotations

import html
import io
import re
import zipfile
from contextlib import aclosing

import pytest

from server.goals import Goal

from .conftest import FIREFOX, IPHONE, A, B, C, Clock, Zeef, pageview
from .test_dashboard import operator
from .test_login import client_of

DAY = "period=day&date=2026-03-14"


def panel(page: str, heading: str) -> str:
    return page.split(f">{heading}</h2>", 1)[1].split("</section>", 1)[0]


def rows(section: str, columns: int = 1) -> list[tuple[str, ...]]:
    cell = r'\s*<td class="number">([^<]*)</td>'
    found = re.findall(r'title="[^"]*">([^<]*)</a></td>' + cell * columns, section)
    return [tuple(html.unescape(c) for c in row) for row in found]


async def campaign(zeef: Zeef, clock: Clock) -> Zeef:
    """Saturday 14 March 2026: three visitors from tagged links and Google, one buying."""
    tagged = "https://example.com/?utm_source=news&utm_medium=email&utm_campaign=spring"
    await zeef.send(pageview(tagged + "&utm_content=top&utm_term=shoes"), ip=A)
    await zeef.send(pageview(tagged + "&utm_content=bottom"), ip=B, ua=FIREFOX)
    await zeef.send(pageview("https://example.com/", r="https://www.google.com/search?q=x"),
                    ip=C, ua=IPHONE)  # fmt: skip
    clock.advance(minutes=2)
    await zeef.send({"n": "Purchase", "u": "https://example.com/cart", "d": "example.com",
                     "p": {"plan": "pro", "<b>key</b>": "<script>x</script>"},
                     "$": {"amount": "49.90", "currency": "EUR"}}, ip=A)  # fmt: skip
    await zeef.send({"n": "Purchase", "u": "https://example.com/cart", "d": "example.com",
                     "p": {"plan": "basic"}, "$": {"amount": "10", "currency": "EUR"}},
                    ip=C, ua=IPHONE)  # fmt: skip
    await zeef.flush()
    storage = zeef.app.state.storage
    [site] = [s for s in await storage.sites() if s.domain == "example.com"]
    await storage.add_goal(Goal(site.id, "event", "Purchase", event_name="Purchase",
                                currency="EUR"))  # fmt: skip
    return zeef


async def api_rows(browser: object, prop: str, key: str, extra: str = "") -> list[tuple[str, str]]:
    answer = await browser.get(  # type: ignore[attr-defined]
        f"/api/v1/stats/breakdown?site_id=example.com&{DAY}&property={prop}{extra}"
    )
    assert answer.status_code == 200, answer.text
    return [(str(r[key]), str(r["visitors"])) for r in answer.json()["results"]]


async def test_utm_tabs_sit_in_a_menu_and_equal_the_api(zeef: Zeef, clock: Clock) -> None:
    await campaign(zeef, clock)
    async with aclosing(await operator(zeef)) as browser:
        page = (await browser.get(f"/sites/example.com?{DAY}")).text
        menu = panel(page, "Top sources").split('class="tab-menu"', 1)[1].split("</details>")[0]
        labels = re.findall(r">([^<>]+)</a></li>", menu)
        assert labels == [
            "UTM campaigns",
            "UTM sources",
            "UTM mediums",
            "UTM contents",
            "UTM terms",
        ]
        for index, (prop, key) in enumerate(
            [("visit:utm_campaign", "utm_campaign"), ("visit:utm_source", "utm_source"),
             ("visit:utm_medium", "utm_medium"), ("visit:utm_content", "utm_content"),
             ("visit:utm_term", "utm_term")], start=2
        ):  # fmt: skip
            page = (await browser.get(f"/sites/example.com?{DAY}&p1={index}")).text
            section = panel(page, "Top sources")
            assert rows(section) == await api_rows(browser, prop, key), prop
            # The menu names the tab shown.
            assert '<summary class="current">UTM ' in section
        assert rows(panel(page, "Top sources")) == [("shoes", "1")]


async def test_a_source_drills_down_to_its_referrers(zeef: Zeef, clock: Clock) -> None:
    await campaign(zeef, clock)
    async with aclosing(await operator(zeef)) as browser:
        page = (await browser.get(f"/sites/example.com?{DAY}")).text
        assert ("Google", "1") in rows(panel(page, "Top sources"))
        filtered = f"{DAY}&filters=visit:source%3D%3DGoogle"
        page = (await browser.get(f"/sites/example.com?{filtered}")).text
        section = panel(page, "Top sources")
        assert 'aria-current="true">Referrers</a>' in section
        expected = await api_rows(browser, "visit:referrer", "referrer",
                                  "&filters=visit:source%3D%3DGoogle")  # fmt: skip
        assert rows(section) == expected
        assert expected and expected[0][0].startswith("google.com")
        # Its details view lists the referrers too.
        details = await browser.get(f"/sites/example.com/details/visit:referrer?{filtered}")
        assert details.status_code == 200
        assert expected[0][0] in html.unescape(details.text)
        # Two sources at once is no drill-down: the tab lists sources.
        both = f"{DAY}&filters=visit:source%3D%3DGoogle%7Cnews"
        section = panel((await browser.get(f"/sites/example.com?{both}")).text, "Top sources")
        assert 'aria-current="true">Sources</a>' in section


async def test_a_browser_drills_down_to_its_versions(zeef: Zeef, clock: Clock) -> None:
    await campaign(zeef, clock)
    async with aclosing(await operator(zeef)) as browser:
        filtered = f"{DAY}&filters=visit:browser%3D%3DFirefox"
        section = panel((await browser.get(f"/sites/example.com?{filtered}")).text, "Devices")
        expected = await api_rows(browser, "visit:browser_version", "browser_version",
                                  "&filters=visit:browser%3D%3DFirefox")  # fmt: skip
        assert expected and rows(section) == expected
        assert 'aria-current="true">Browser versions</a>' in section
        filtered = f"{DAY}&p3=1&filters=visit:os%3D%3DiOS"
        section = panel((await browser.get(f"/sites/example.com?{filtered}")).text, "Devices")
        expected = await api_rows(browser, "visit:os_version", "os_version",
                                  "&filters=visit:os%3D%3DiOS")  # fmt: skip
        assert expected and rows(section) == expected


async def test_properties_and_revenue_in_the_goals_panel(zeef: Zeef, clock: Clock) -> None:
    await campaign(zeef, clock)
    async with aclosing(await operator(zeef)) as browser:
        page = (await browser.get(f"/sites/example.com?{DAY}")).text
        goals = panel(page, "Goals")
        # Goal, visitors, conversion rate, revenue: as the API's goal breakdown.
        api = (await browser.get(
            f"/api/v1/stats/breakdown?site_id=example.com&{DAY}&property=event:goal"
            "&metrics=visitors,conversion_rate"
        )).json()["results"]  # fmt: skip
        assert rows(goals, 3) == [("Purchase", "2", f"{api[0]['conversion_rate']}%", "€59.90")]

        page = (await browser.get(f"/sites/example.com?{DAY}&p4=2")).text
        section = panel(page, "Goals")
        names = re.findall(r'<li><a href="[^"]*"(?: aria-current="true")?>([^<]*)</a>', section)
        # The names are sorted, escaped, and the first is shown.
        assert [html.unescape(n) for n in names][-2:] == ["<b>key</b>", "plan"]
        assert "<b>key</b>" not in section and "<script>x" not in section
        page = (await browser.get(f"/sites/example.com?{DAY}&p4=2&prop=plan")).text
        section = panel(page, "Goals")
        assert rows(section) == await api_rows(browser, "event:props:plan", "plan")
        # Hits without it are `(none)`, as in Plausible.
        assert sorted(rows(section)) == [("(none)", "3"), ("basic", "1"), ("pro", "1")]
        # A row filters by the property; its details view lists its values with events.
        assert "filters=event%3Aprops%3Aplan%3D%3Dbasic" in section
        details = await browser.get(f"/sites/example.com/details/event:props:plan?{DAY}")
        assert details.status_code == 200
        assert ">basic</a>" in details.text and "<th" in details.text
        # Revenue in the goal details, sortable by it.
        details = await browser.get(
            f"/sites/example.com/details/event:goal?{DAY}&order=total_revenue&dir=asc"
        )
        assert details.status_code == 200 and "€59.90" in details.text
        assert "€29.95" in details.text  # the average of two purchases


async def test_properties_tab_without_any_says_so(zeef: Zeef, clock: Clock) -> None:
    await zeef.send(pageview(), ip=A)
    await zeef.flush()
    storage = zeef.app.state.storage
    [site] = [s for s in await storage.sites() if s.domain == "example.com"]
    await storage.add_goal(Goal(site.id, "page", "Home", page_path="/"))
    async with aclosing(await operator(zeef)) as browser:
        page = await browser.get(f"/sites/example.com?{DAY}&p4=2")
        assert page.status_code == 200
        assert "No custom properties were sent in this period." in panel(page.text, "Goals")
        assert (await browser.get("/sites/example.com/details/event:props:")).status_code == 404


def changes(page: str) -> list[str]:
    found = re.findall(r'<span class="metric-change[^"]*">([^<]*)</span>', page)
    return [" ".join(html.unescape(c).split()) for c in found]


async def test_comparison_deltas_are_the_apis_changes(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        page = (await browser.get(f"/sites/example.com?{DAY}&compare=previous_period")).text
        api = (await browser.get(
            f"/api/v1/stats/aggregate?site_id=example.com&{DAY}&compare=previous_period"
            "&metrics=visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration"
        )).json()["results"]  # fmt: skip
        shown = changes(page)
        assert shown[0] == f"↑ {api['visitors']['change']}%" == "↑ 100%"
        # A rate changes by points, written as the UI language writes numbers: not "75.0".
        points = api["bounce_rate"]["change"]
        assert shown[4] == f"↑ {points:g} pts"
        dutch = (await browser.get(
            f"/sites/example.com?{DAY}&compare=previous_period",
            headers={"accept-language": "nl"},
        )).text  # fmt: skip
        assert changes(dutch)[0] == "↑ 100%"


async def test_a_propertys_details_view_downloads_custom_props(zeef: Zeef, clock: Clock) -> None:
    await campaign(zeef, clock)
    async with aclosing(await operator(zeef)) as browser:
        details = (await browser.get(f"/sites/example.com/details/event:props:plan?{DAY}")).text
        link = re.search(r'href="([^"]+)" download>Download CSV', details)
        assert link, "no download link"
        url = html.unescape(link.group(1))
        assert url == f"/sites/example.com/export/custom_props.csv?{DAY}&property=plan"
        answer = await browser.get(url)
        assert answer.status_code == 200
        lines = answer.text.splitlines()
        api = (await browser.get(
            f"/api/v1/stats/breakdown?site_id=example.com&{DAY}&property=event:props:plan"
            "&metrics=visitors,events"
        )).json()["results"]  # fmt: skip
        assert lines == ["property,value,visitors,events"] + [
            f"plan,{r['plan']},{r['visitors']},{r['events']}" for r in api
        ]
        # The ZIP holds every property's values in one file; a formula-like name is quoted.
        archive = await browser.get(f"/sites/example.com/export?{DAY}")
        with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
            everything = files.read("custom_props.csv").decode().splitlines()
        assert everything[0] == "property,value,visitors,events"
        assert {line.split(",")[0] for line in everything[1:]} == {"<b>key</b>", "plan"}
        # property= belongs to that file alone.
        wrong = await browser.get(f"/sites/example.com/export/pages.csv?{DAY}&property=plan")
        assert wrong.status_code == 400


async def test_panels_load_after_the_page_under_a_filter_not_summed_yet(
    shop: Zeef, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.web import dashboard

    monkeypatch.setattr(dashboard, "LAZY_VISITS", 0)  # as if the site were big
    filtered = f"{DAY}&filters=visit:browser%3D%3DFirefox"
    async with aclosing(await operator(shop)) as browser:
        page = (await browser.get(f"/sites/example.com?{filtered}")).text
        # Each part a placeholder naming where it comes from: the top line too, as the test's
        # rollups are not built (a single value of a visit dimension is summed once they are).
        urls = [html.unescape(u) for u in re.findall(r'data-panel="([^"]+)"', page)]
        assert urls == [f"/sites/example.com/top?{filtered}"] + [
            f"/sites/example.com/panel/{i}?{filtered}" for i in range(4)]  # fmt: skip
        assert 'aria-busy="true"' in page and 'title="Filter by' not in page
        assert "metric-value" not in page
        top = (await browser.get(urls[0])).text
        assert re.findall(r'<span class="metric-value">([^<]*)</span>', top)[0] == "1"
        # Each part is what the whole page (wait=1) draws, ids and all.
        whole = (await browser.get(f"/sites/example.com?{filtered}&wait=1")).text
        assert "data-panel" not in whole
        for i, url in enumerate(urls):
            fragment = await browser.get(url)
            assert fragment.status_code == 200
            if i:
                assert f'id="panel-{i}"' in fragment.text
            squeezed = " ".join(fragment.text.split())
            # The chart's ids are numbered per drawing: compare without them.
            squeezed = re.sub(r"chart\d+", "chartN", squeezed)
            assert squeezed in re.sub(r"chart\d+", "chartN", " ".join(whole.split()))
        assert (await browser.get("/sites/example.com/panel/9")).status_code == 404
        # Without a filter, or with one the rollups answer, the page is whole at once.
        assert "data-panel" not in (await browser.get(f"/sites/example.com?{DAY}")).text
    async with aclosing(client_of(shop)) as stranger:
        assert (await stranger.get(urls[0])).status_code in (303, 307)


async def test_a_site_without_data_shows_why_its_events_were_refused(zeef: Zeef) -> None:
    async with aclosing(await operator(zeef)) as browser:
        page = (await browser.get("/sites/example.com")).text
        assert "Nothing has arrived from the site yet" in page
        # An event from a page on another host: refused, and the reason is on the dashboard.
        wrong = {"n": "pageview", "u": "https://staging.example.net/", "d": "example.com"}
        await zeef.send(wrong)
        await zeef.flush()
        page = (await browser.get("/sites/example.com")).text
        assert "Waiting for the first pageview" in page
        assert "Not counted in the last 7 days" in page and "staging.example.net" in page


async def test_a_custom_comparison_range(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        page = await browser.get(
            f"/sites/example.com?{DAY}&compare_from=2026-03-01&compare_to=2026-03-13"
        )
        assert page.status_code == 200
        api = (await browser.get(
            f"/api/v1/stats/aggregate?site_id=example.com&{DAY}&compare=custom"
            "&compare_date=2026-03-01,2026-03-13&metrics=visitors"
        )).json()["results"]  # fmt: skip
        assert api["visitors"] == {"value": 3, "comparison_value": 0, "change": 100}
        assert changes(page.text)[0] == "↑ 100%"
        assert '<summary class="current">Custom range</summary>' in page.text
        assert 'name="compare_from" value="2026-03-01"' in page.text
        bad = await browser.get(f"/api/v1/stats/aggregate?site_id=example.com&{DAY}&compare=custom")
        assert bad.status_code == 400 and "compare_date" in bad.json()["error"]
        backwards = await browser.get(
            f"/sites/example.com?{DAY}&compare_from=2026-03-13&compare_to=2026-03-01"
        )
        assert backwards.status_code == 400

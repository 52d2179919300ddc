"""The dashboard's filter form over HTTP: it adds a filter with each operator and several values,
edits a chip in its place, answers with a 303 to a clean URL whose filters the Stats API reads
the same, keeps `|`, `;` and markup in values as text, and says 400 to a form filled in wrong."""

from __future__ import annotations

import html
import re
from contextlib import aclosing
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from .conftest import Zeef, pageview
from .test_dashboard import DAY, metric_values, operator

BASE = {"period": "day", "date": "2026-03-14"}


async def submit(browser: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """The filter form as a browser sends it: GET /sites/DOMAIN with the page's parameters."""
    return await browser.get("/sites/example.com?" + urlencode(fields))


def redirected(answer: httpx.Response) -> dict[str, str]:
    """The parameters of the clean URL a form's 303 points to."""
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert location.path == "/sites/example.com"
    return dict(parse_qsl(location.query))


async def visitors(browser: httpx.AsyncClient, filters: str) -> int:
    answer = await browser.get(
        f"/api/v1/stats/aggregate?site_id=example.com&{DAY}&" + urlencode({"filters": filters})
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["results"]["visitors"]["value"])


def chip_labels(page: str) -> list[str]:
    return [html.unescape(label) for label in re.findall(r'class="chip-label">([^<]*)<', page)]


@pytest.mark.parametrize(
    ("operator_", "value", "written", "label", "shown"),
    [
        ("is", "Google", "visit:source==Google", "Source is Google", 1),
        ("is_not", "Google", "visit:source!=Google", "Source is not Google", 2),
        ("contains", "goo", "visit:source~goo", "Source contains goo", 1),
        ("contains_not", "goo", "visit:source!~goo", "Source does not contain goo", 2),
    ],
    ids=["is", "is-not", "contains", "does-not-contain"],
)
async def test_the_form_adds_a_filter_with_each_operator(
    shop: Zeef, operator_: str, value: str, written: str, label: str, shown: int
) -> None:
    async with aclosing(await operator(shop)) as browser:
        answer = await submit(browser, **BASE, compare="previous_period",
                              filter_dimension="visit:source", filter_operator=operator_,
                              filter_value=value)  # fmt: skip
        # The period and comparison stay; the form's own fields are gone.
        assert redirected(answer) == {**BASE, "compare": "previous_period", "filters": written}
        page = await browser.get(answer.headers["location"])
        assert page.status_code == 200
        assert chip_labels(page.text) == [label]
        assert metric_values(page.text)[0] == str(await visitors(browser, written)) == str(shown)


async def test_several_values_one_a_line_are_any_of_them(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        lines = "/blog/a\r\n\r\n  /pricing \n"
        answer = await submit(browser, **BASE, filter_dimension="event:page",
                              filter_operator="is", filter_value=lines)  # fmt: skip
        assert redirected(answer)["filters"] == "event:page==/blog/a|/pricing"
        page = await browser.get(answer.headers["location"])
        assert chip_labels(page.text) == ["Page is /blog/a or /pricing"]
        assert (
            metric_values(page.text)[0]
            == "3"
            == str(await visitors(browser, "event:page==/blog/a|/pricing"))
        )
        # Its Edit form holds them one a line again.
        assert "<textarea" in page.text
        assert re.search(r'name="filter_value"[^>]*>/blog/a\n/pricing</textarea>', page.text)


async def test_filters_combine_and_a_second_is_on_a_dimension_takes_the_firsts_place(
    shop: Zeef,
) -> None:
    async with aclosing(await operator(shop)) as browser:
        start = {**BASE, "filters": "visit:source==Google;event:page!=/"}
        adds = {"filter_dimension": "visit:source", "filter_operator": "is"}
        answer = await submit(browser, **start, **adds, filter_value="Bing")
        assert redirected(answer)["filters"] == "visit:source==Bing;event:page!=/"
        answer = await submit(browser, **start, filter_dimension="event:page",
                              filter_operator="is_not", filter_value="/blog/a")  # fmt: skip
        assert redirected(answer)["filters"] == start["filters"] + ";event:page!=/blog/a"
        # The same filter twice is once.
        answer = await submit(browser, **start, filter_dimension="event:page",
                              filter_operator="is_not", filter_value="/")  # fmt: skip
        assert redirected(answer)["filters"] == start["filters"]


async def test_a_chips_edit_form_is_prefilled_and_replaces_that_filter(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        filters = "visit:source==Google;event:page==/pricing"
        page = await browser.get("/sites/example.com?" + urlencode({**BASE, "filters": filters}))
        assert chip_labels(page.text) == ["Source is Google", "Page is /pricing"]
        first = page.text.split('id="filter-0-dimension"', 1)[1].split("</form>", 1)[0]
        assert '<option value="visit:source" selected>Source</option>' in first
        assert '<option value="is" selected>is</option>' in first
        assert ">Google</textarea>" in first
        before = page.text.split('id="filter-0-dimension"', 1)[0].rsplit("<form", 1)[1]
        assert '<input type="hidden" name="filter_replace" value="0">' in before
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', before))
        assert {k: html.unescape(v) for k, v in hidden.items()} == {
            **BASE,
            "filters": filters,
            "filter_replace": "0",
        }

        answer = await submit(browser, **BASE, filters=filters, filter_replace="0",
                              filter_dimension="visit:source", filter_operator="contains",
                              filter_value="oogl")  # fmt: skip
        assert redirected(answer)["filters"] == "visit:source~oogl;event:page==/pricing"
        edited = await browser.get(answer.headers["location"])
        assert chip_labels(edited.text) == ["Source contains oogl", "Page is /pricing"]
        assert metric_values(edited.text)[0] == "1"
        # Another dimension altogether, in the second chip's place.
        answer = await submit(browser, **BASE, filters=filters, filter_replace="1",
                              filter_dimension="visit:browser", filter_operator="is_not",
                              filter_value="Chrome")  # fmt: skip
        assert redirected(answer)["filters"] == "visit:source==Google;visit:browser!=Chrome"


async def test_a_chip_for_a_filter_the_form_does_not_offer_keeps_its_dimension(
    shop: Zeef,
) -> None:
    async with aclosing(await operator(shop)) as browser:
        filters = "visit:hostname==example.com;event:props:plan!~free"
        page = await browser.get("/sites/example.com?" + urlencode({**BASE, "filters": filters}))
        assert page.status_code == 200
        assert chip_labels(page.text) == ["Hostname is example.com",
                                          "Property plan does not contain free"]  # fmt: skip
        assert '<option value="event:props:plan" selected>Property plan</option>' in page.text
        # Edited, a property's filter keeps its dimension.
        answer = await submit(browser, **BASE, filters=filters, filter_replace="1",
                              filter_dimension="event:props:plan", filter_operator="is",
                              filter_value="pro")  # fmt: skip
        assert redirected(answer)["filters"] == "visit:hostname==example.com;event:props:plan==pro"
        # No goal to choose on a site without goals.
        assert 'value="event:goal"' not in page.text


async def test_chips_speak_the_pages_language(shop: Zeef) -> None:
    async with aclosing(await operator(shop)) as browser:
        query = urlencode({**BASE, "filters": "visit:source!=Google|Bing"})
        page = await browser.get(f"/sites/example.com?{query}", headers={"accept-language": "nl"})
        assert chip_labels(page.text) == ["Bron is niet Google of Bing"]
        page = await browser.get(f"/sites/example.com?{query}", headers={"accept-language": "es"})
        assert chip_labels(page.text)[0].startswith("Fuente ")


HOSTILE = 'a|b;c<script>alert(1)</script>"onmouseover=x'


async def test_bars_semicolons_and_markup_in_values_round_trip_as_text(
    zeef: Zeef,
) -> None:
    path = "/" + HOSTILE
    await zeef.send(pageview("https://example.com" + path))
    await zeef.send(pageview("https://example.com/other"), ip="81.2.69.150")
    await zeef.flush()
    async with aclosing(await operator(zeef)) as browser:
        answer = await submit(browser, **BASE, filter_dimension="event:page",
                              filter_operator="is", filter_value=path)  # fmt: skip
        written = 'event:page==/a\\|b\\;c<script>alert(1)</script>"onmouseover=x'
        assert redirected(answer)["filters"] == written
        page = await browser.get(answer.headers["location"])
        assert page.status_code == 200
        # One value, one filter: the one visitor who saw that page.
        assert metric_values(page.text)[0] == "1" == str(await visitors(browser, written))
        assert chip_labels(page.text) == [f"Page is {path}"]
        # Text everywhere: in the chip, the textarea, the hidden fields and the links.
        assert "<script>alert(1)" not in page.text
        assert '"onmouseover=x' not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover=x" in page.text
        hidden = re.search(r'<input type="hidden" name="filters" value="([^"]*)">', page.text)
        assert hidden and html.unescape(hidden.group(1)) == written
        # Sent back unchanged, the chip's own form gives the same URL.
        prefilled = re.search(r'id="filter-0-value"[^>]*>([^<]*)</textarea>', page.text)
        assert prefilled and html.unescape(prefilled.group(1)) == path
        again = await submit(browser, **BASE, filters=written, filter_replace="0",
                             filter_dimension="event:page", filter_operator="is",
                             filter_value=html.unescape(prefilled.group(1)))  # fmt: skip
        assert redirected(again)["filters"] == written
        # A row's link keeps the escaped filter whole beside its own.
        other = await browser.get(
            "/sites/example.com?" + urlencode({**BASE, "filters": written.replace("==", "!=")})
        )
        assert chip_labels(other.text) == [f"Page is not {path}"]
        link = re.search(r'<a href="([^"]+)" title="Filter by /other">', other.text)
        assert link
        query = dict(parse_qsl(urlsplit(html.unescape(link.group(1))).query))
        assert query["filters"] == written.replace("==", "!=") + ";event:page==/other"
        removed = re.search(r'<a href="([^"]+)" aria-label="Remove filter', other.text)
        assert removed and "filters" not in dict(
            parse_qsl(urlsplit(html.unescape(removed.group(1))).query)
        )


@pytest.mark.parametrize(
    "fields",
    [
        {"filter_dimension": "visit:nonsense", "filter_operator": "is", "filter_value": "x"},
        {"filter_dimension": "", "filter_operator": "is", "filter_value": "x"},
        {"filter_operator": "is", "filter_value": "x"},
        {"filter_dimension": "visit:screen", "filter_operator": "is", "filter_value": "x"},
        {"filter_dimension": "visit:source", "filter_operator": "matches", "filter_value": "x"},
        {"filter_dimension": "visit:source", "filter_operator": "", "filter_value": "x"},
        {"filter_dimension": "visit:source", "filter_operator": "is", "filter_value": ""},
        {"filter_dimension": "visit:source", "filter_operator": "is", "filter_value": " \n \n"},
        {"filter_dimension": "visit:source", "filter_operator": "is"},
        {"filter_dimension": "visit:source", "filter_operator": "is", "filter_value": "x",
         "filter_replace": "5"},
        {"filter_dimension": "visit:source", "filter_operator": "is", "filter_value": "x",
         "filter_replace": "-1"},
        {"filter_replace": "0"},
        {"filter_dimension": "event:props:a==b", "filter_operator": "is", "filter_value": "x"},
        {"filter_dimension": "event:props:a;visit:os", "filter_operator": "is",
         "filter_value": "x"},
        {"filter_dimension": "visit:source", "filter_operator": "is", "filter_value": "x\\\ny"},
        {"filter_dimension": "visit:source", "filter_operator": "is", "filter_value": "x\\|y"},
    ],
    ids=["unknown-dimension", "empty-dimension", "no-dimension", "not-recorded", "bad-operator",
         "no-operator", "empty-value", "blank-lines", "no-value", "replace-past-the-end",
         "replace-negative", "replace-alone", "property-name-with-operator",
         "property-name-with-separator", "value-ending-in-backslash", "backslash-before-bar"],
)  # fmt: skip
async def test_a_form_filled_in_wrong_is_a_400_page(shop: Zeef, fields: dict[str, str]) -> None:
    async with aclosing(await operator(shop)) as browser:
        answer = await submit(browser, **BASE, filters="visit:source==Google", **fields)
    assert answer.status_code == 400
    assert "That did not work" in answer.text
    # The form's own words, not the dashboard's for a bad query.
    said = re.findall(r"Choose what to filter by|Choose is, is not|Enter a value|"
                      r"That filter is no longer|A value cannot end", answer.text)  # fmt: skip
    assert len(said) == 1, answer.text
    assert "text/html" in answer.headers["content-type"]


async def test_the_form_asks_nothing_of_someone_who_may_not_see_the_site(shop: Zeef) -> None:
    answer = await submit(shop.client, **BASE, filter_dimension="visit:source",
                          filter_operator="is", filter_value="Google")  # fmt: skip
    assert answer.status_code in (303, 302) and "/login" in answer.headers["location"]

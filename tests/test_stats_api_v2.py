"""The Stats API v2 (POST /api/v2/query) as Plausible's clients call it, against the shop's day:
A (Chrome) / then /pricing then Signup, one visit; B (Firefox) /pricing, a bounce; C (Mobile
Safari) / at 10:00 and /blog/a at 11:00, two visits. All on 14 March 2026, UTC."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Zeef
from .test_stats_api import new_key

DAY = ["2026-03-14T00:00:00+00:00", "2026-03-14T23:59:59+00:00"]


async def query(zeef: Zeef, key: str | None, **body: Any) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"site_id": "example.com", "date_range": "day", **body}
    return await zeef.client.post("/api/v2/query", json=body, headers=headers)


async def test_aggregate_without_dimensions(shop: Zeef) -> None:
    key = await new_key(shop)
    got = await query(shop, key, metrics=["visitors", "visits", "pageviews", "bounce_rate"])
    assert got.status_code == 200, got.text
    assert got.json() == {
        # Three visitors, four visits (C came twice), five pageviews, three bounces of four.
        "results": [{"dimensions": [], "metrics": [3, 4, 5, 75]}],
        "meta": {},
        "query": {
            "site_id": "example.com",
            "metrics": ["visitors", "visits", "pageviews", "bounce_rate"],
            "date_range": DAY,
            "filters": [],
            "dimensions": [],
            "order_by": [["visitors", "desc"]],
            "include": {},
            "pagination": {"limit": 10000, "offset": 0},
        },
    }
    month = await query(shop, key, metrics=["visits"], date_range=["2026-03-01", "2026-03-31"])
    assert month.json()["results"] == [{"dimensions": [], "metrics": [4]}]
    assert month.json()["query"]["date_range"] == [
        "2026-03-01T00:00:00+00:00",
        "2026-03-31T23:59:59+00:00",
    ]
    # The day before, by its anchor: nobody came.
    before = await query(shop, key, metrics=["visitors"], date="2026-03-13")
    assert before.json()["results"] == [{"dimensions": [], "metrics": [0]}]


async def test_breakdown_by_page_ordered_and_paged(shop: Zeef) -> None:
    key = await new_key(shop)
    # Visitors (pageviews) per page: / 2 (2), /pricing 2 (2), /blog/a 1 (1); ties by page, z-a.
    got = await query(shop, key, metrics=["visitors", "pageviews"], dimensions=["event:page"],
                      order_by=[["visitors", "asc"], ["event:page", "desc"]],
                      include={"total_rows": True},
                      pagination={"limit": 2, "offset": 1})  # fmt: skip
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["results"] == [
        {"dimensions": ["/pricing"], "metrics": [2, 2]},
        {"dimensions": ["/"], "metrics": [2, 2]},
    ]
    assert body["meta"] == {"total_rows": 3}
    assert body["query"]["include"] == {"total_rows": True}
    assert body["query"]["pagination"] == {"limit": 2, "offset": 1}
    by_name = await query(shop, key, metrics=["pageviews"], dimensions=["event:page"],
                          order_by=[["event:page", "asc"]])  # fmt: skip
    assert [r["dimensions"][0] for r in by_name.json()["results"]] == ["/", "/blog/a", "/pricing"]


async def test_time_by_day_leaves_out_empty_days_and_labels_them_all(shop: Zeef) -> None:
    key = await new_key(shop)
    got = await query(shop, key, metrics=["visitors", "pageviews"], date_range="7d",
                      dimensions=["time:day"], include={"time_labels": True})  # fmt: skip
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["results"] == [{"dimensions": ["2026-03-14"], "metrics": [3, 5]}]
    assert body["meta"]["time_labels"] == [f"2026-03-{d:02d}" for d in range(8, 15)]
    assert body["query"]["date_range"] == ["2026-03-08T00:00:00+00:00", DAY[1]]
    assert body["query"]["order_by"] == [["time:day", "asc"], ["visitors", "desc"]]


async def test_hour_and_browser(shop: Zeef) -> None:
    key = await new_key(shop)
    got = await query(shop, key, metrics=["visitors", "visits"],
                      dimensions=["time:hour", "visit:browser"])  # fmt: skip
    assert got.status_code == 200, got.text
    # 10:00 all three arrive; 11:00 only C's second visit. Four visits in all.
    assert got.json()["results"] == [
        {"dimensions": ["2026-03-14 10:00:00", "Chrome"], "metrics": [1, 1]},
        {"dimensions": ["2026-03-14 10:00:00", "Firefox"], "metrics": [1, 1]},
        {"dimensions": ["2026-03-14 10:00:00", "Mobile Safari"], "metrics": [1, 1]},
        {"dimensions": ["2026-03-14 11:00:00", "Mobile Safari"], "metrics": [1, 1]},
    ]
    flipped = await query(shop, key, metrics=["visits"], dimensions=["visit:browser", "time:hour"],
                          order_by=[["visits", "desc"], ["visit:browser", "asc"]])  # fmt: skip
    assert flipped.json()["results"][0] == {
        "dimensions": ["Chrome", "2026-03-14 10:00:00"],
        "metrics": [1],
    }
    assert len(flipped.json()["results"]) == 4


async def test_two_properties(shop: Zeef) -> None:
    key = await new_key(shop)
    got = await query(shop, key, metrics=["visitors"], dimensions=["event:page", "visit:browser"],
                      order_by=[["event:page", "asc"], ["visit:browser", "asc"]],
                      include={"total_rows": True})  # fmt: skip
    assert got.status_code == 200, got.text
    # / by A and C, /blog/a by C, /pricing by A and B.
    assert [(r["dimensions"], r["metrics"]) for r in got.json()["results"]] == [
        (["/", "Chrome"], [1]),
        (["/", "Mobile Safari"], [1]),
        (["/blog/a", "Mobile Safari"], [1]),
        (["/pricing", "Chrome"], [1]),
        (["/pricing", "Firefox"], [1]),
    ]
    assert got.json()["meta"]["total_rows"] == 5


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # A and B are Chrome and Firefox, and both saw /pricing.
        ([["is", "visit:browser", ["Firefox", "Chrome"]], ["is", "event:page", ["/pricing"]]],
         [2, 2]),
        # The matching pageviews only: A's and B's on /pricing.
        ([["contains", "event:page", ["pric"]]], [2, 2]),
        # Chrome on /pricing: A alone.
        ([["and", [["is", "event:page", ["/pricing"]], ["is", "visit:browser", ["Chrome"]]]]],
         [1, 1]),
        # Not Firefox: A and C, with C's two pageviews and A's two.
        ([["not", ["is", "visit:browser", ["Firefox"]]]], [2, 4]),
        ([["or", [["is", "visit:browser", ["Firefox"]], ["is", "visit:browser", ["Chrome"]]]]],
         [2, 3]),
        # A regular expression a wildcard can say: C's /blog/a.
        ([["matches", "event:page", ["^/blog/.*"]]], [1, 1]),
        # Across dimensions, a hit passes with its visit: B's Firefox visit, C's /blog/a.
        ([["or", [["is", "visit:browser", ["Firefox"]], ["is", "event:page", ["/blog/a"]]]]],
         [2, 2]),
        # Neither Firefox nor /: A's /pricing (and Signup), C's /blog/a.
        ([["not", ["or", [["is", "visit:browser", ["Firefox"]], ["is", "event:page", ["/"]]]]]],
         [2, 2]),
        # Chrome on /pricing, or any iPhone hit: A's /pricing, C's two pageviews.
        ([["or", [["and", [["is", "visit:browser", ["Chrome"]],
                           ["is", "event:page", ["/pricing"]]]],
                  ["is", "visit:browser", ["Mobile Safari"]]]]], [2, 3]),
        # The visits with a Signup in them, every pageview of theirs: A's / and /pricing.
        ([["has_done", ["is", "event:name", ["Signup"]]]], [1, 2]),
        # B's /pricing, C's / and /blog/a.
        ([["has_not_done", ["is", "event:name", ["Signup"]]]], [2, 3]),
        # A page filter beside it still keeps its own hits: A's /pricing.
        ([["has_done", ["is", "event:name", ["Signup"]]], ["is", "event:page", ["/pricing"]]],
         [1, 1]),
    ],
    ids=["is", "contains", "and", "not", "or-same-dimension", "matches", "or-across-dimensions",
         "not-of-a-group", "or-of-and", "has-done", "has-not-done", "has-done-and-page"],
)  # fmt: skip
async def test_filters(shop: Zeef, filters: list[Any], expected: list[int]) -> None:
    key = await new_key(shop)
    got = await query(shop, key, metrics=["visitors", "pageviews"], filters=filters)
    assert got.status_code == 200, got.text
    assert got.json()["results"] == [{"dimensions": [], "metrics": expected}]
    assert got.json()["query"]["filters"] == filters


async def test_a_group_filters_every_report(shop: Zeef) -> None:
    key = await new_key(shop)
    either = [["or", [["is", "visit:browser", ["Firefox"]], ["is", "event:page", ["/blog/a"]]]]]
    pages = await query(shop, key, metrics=["visitors", "pageviews"], filters=either,
                        dimensions=["event:page"])  # fmt: skip
    assert pages.json()["results"] == [
        {"dimensions": ["/blog/a"], "metrics": [1, 1]},
        {"dimensions": ["/pricing"], "metrics": [1, 1]},
    ]
    # C's second visit alone: the one with /blog/a in it.
    browsers = await query(shop, key, metrics=["visitors", "visits", "pageviews"],
                           filters=either, dimensions=["visit:browser"])  # fmt: skip
    assert browsers.json()["results"] == [
        {"dimensions": ["Firefox"], "metrics": [1, 1, 1]},
        {"dimensions": ["Mobile Safari"], "metrics": [1, 1, 1]},
    ]
    hours = await query(shop, key, metrics=["visitors"], filters=either,
                        dimensions=["time:hour"])  # fmt: skip
    assert [r["dimensions"][0][11:13] for r in hours.json()["results"]] == ["10", "11"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"metrics": ["visitors", "planets"]}, "metrics: unknown metric 'planets'"),
        ({"metrics": ["visitors"], "date_range": "fortnight"}, "date_range:"),
        ({"metrics": ["visitors"], "date_range": ["2026-03-14", "yesterday"]}, "date_range:"),
        ({"metrics": ["visitors"],
          "dimensions": ["event:page", "visit:browser", "time:day"]}, "dimensions: at most 2"),
        ({"metrics": ["visitors"], "dimensions": ["visit:planet"]}, "dimensions: unknown"),
        ({"metrics": ["visitors"], "site_id": ""}, "site_id: required"),
        ({"metrics": ["visitors"], "filters": [["not", ["is", "visit:browser", ["Chrome"]],
                                                 ["is", "event:page", ["/"]]]]}, '"not" takes'),
        ({"metrics": ["visitors"], "filters": [["has_done", ["is", "visit:browser", ["X"]]]]},
         "event dimensions only"),
        ({"metrics": ["visitors"], "filters": [["matches", "event:page", ["^/a/\\d+$"]]]},
         "cannot match"),
        ({"metrics": ["visitors"], "order_by": [["visits", "desc"]]}, "order_by:"),
        ({"metrics": ["visitors"], "include": {"time_labels": True}}, "include.time_labels"),
        ({"metrics": ["visitors"], "pagination": {"limit": 0}}, "pagination.limit"),
        ({"metrics": ["visitors"], "period": "day"}, "period: not a field"),
        ({"metrics": ["visitors"], "dimensions": ["time:minute"], "date_range": "7d"},
         "dimensions: 10080 minutes is too many"),
        ({"metrics": ["conversion_rate"]}, "metrics: conversion rate and revenue need a goal"),
        ({"metrics": ["visitors"], "filters": [["is", "event:goal", ["Nope"]]]},
         "filters: no goal named 'Nope'"),
    ],
    ids=["metric", "date-range", "date-range-date", "three-dimensions", "dimension",
         "site-id", "not-of-two", "has-done-on-a-visit", "regex", "order-by", "time-labels",
         "limit",
         "unknown-field", "too-many-buckets", "goal-metric", "unknown-goal"],
)  # fmt: skip
async def test_bad_queries_get_a_400_naming_the_field(
    shop: Zeef, body: dict[str, Any], message: str
) -> None:
    key = await new_key(shop)
    got = await query(shop, key, **body)
    assert got.status_code == 400, got.text
    assert message in got.json()["error"]


async def test_keys_sites_and_bodies(shop: Zeef) -> None:
    key = await new_key(shop)
    assert (await query(shop, None, metrics=["visitors"])).status_code == 401
    assert (await query(shop, "zeef_nothing", metrics=["visitors"])).status_code == 401
    missing = await shop.client.post(
        "/api/v2/query", json={"metrics": ["visitors"], "date_range": "day"},
        headers={"authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert missing.status_code == 400 and "site_id" in missing.json()["error"]
    other = await query(shop, key, metrics=["visitors"], site_id="other.example")
    assert other.status_code == 404 and "error" in other.json()
    garbage = await shop.client.post("/api/v2/query", content=b"{not json",
                                     headers={"authorization": f"Bearer {key}"})  # fmt: skip
    assert garbage.status_code == 400 and "JSON" in garbage.json()["error"]

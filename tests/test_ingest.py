"""The collector through HTTP: what a good event becomes, and why others are dropped."""

from __future__ import annotations

import json

import pytest

from server.sites import add_site

from .conftest import FIREFOX, IPHONE, Zeef, pageview, stored_bytes


async def test_pageview_is_accepted_and_stored_anonymised(zeef: Zeef) -> None:
    response = await zeef.send(pageview("https://www.example.com/pricing?plan=pro&utm_source=nl"))
    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-zeef-drop" not in response.headers
    assert zeef.rows() == []  # nothing written until the flush
    assert await zeef.flush() == 1
    [row] = zeef.rows()
    assert row["name"] == "pageview"
    assert row["hostname"] == "example.com"
    assert row["path"] == "/pricing"
    assert row["utm_source"] == "nl"
    assert (row["browser"], row["os"], row["device"]) == ("Chrome", "Windows", "desktop")
    assert row["country"] is None  # no GeoIP database configured
    assert isinstance(row["visitor_id"], int)


async def test_long_and_short_keys_mean_the_same(zeef: Zeef) -> None:
    short = {
        "n": "Signup",
        "u": "https://example.com/join",
        "d": "example.com",
        "r": "https://news.ycombinator.com/item?id=1",
        "p": {"plan": "pro", "seats": 3, "trial": True},
        "$": {"amount": "10.50", "currency": "eur"},
        "i": False,
        "h": 0,
    }
    long = {
        "name": "Signup",
        "url": "https://example.com/join",
        "domain": "example.com",
        "referrer": "https://news.ycombinator.com/item?id=1",
        "props": {"plan": "pro", "seats": 3, "trial": True},
        "revenue": {"amount": 10.5, "currency": "EUR"},
        "interactive": False,
        "hashMode": False,
    }
    for body in (short, long):
        assert (await zeef.send(body)).status_code == 202
    await zeef.flush()
    first, second = zeef.rows()
    for row in (first, second):
        assert row["name"] == "Signup"
        assert row["referrer_host"] == "news.ycombinator.com"
        assert row["referrer_path"] == "/item"
        assert json.loads(row["props"]) == {"plan": "pro", "seats": "3", "trial": "true"}
        assert (row["revenue_amount"], row["revenue_currency"]) == ("10.500000", "EUR")
        assert row["interactive"] == 0
    assert first["visitor_id"] == second["visitor_id"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=utf-8"])
async def test_both_content_types(zeef: Zeef, content_type: str) -> None:
    response = await zeef.send(pageview(), content_type=content_type)
    assert response.status_code == 202


async def test_cors_preflight_allows_any_origin(zeef: Zeef) -> None:
    response = await zeef.client.options(
        "/api/event",
        headers={"origin": "https://shop.example", "access-control-request-method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_engagement_feeds_duration_and_scroll_not_pageviews(zeef: Zeef, clock) -> None:
    await zeef.send(pageview("https://example.com/article"))
    clock.advance(seconds=40)
    engagement = {"n": "engagement", "u": "https://example.com/article", "d": "example.com",
                  "sd": 75, "e": 38000, "v": 30}  # fmt: skip
    assert (await zeef.send(engagement)).status_code == 202
    await zeef.flush()
    rows = zeef.rows()
    assert [r["name"] for r in rows] == ["pageview", "engagement"]
    assert (rows[1]["scroll_depth"], rows[1]["engaged_ms"]) == (75, 38000)
    from server import reports

    site = (await zeef.app.state.storage.sites())[0]
    figures = await reports.totals(
        zeef.app.state.storage, reports.Query.for_period(site, "day", clock())
    )
    assert (figures["pageviews"], figures["visits"], figures["events"]) == (1, 1, 0)
    assert figures["visit_duration"] == 40
    assert figures["scroll_depth"] == 75


async def test_hash_mode_keeps_the_fragment(zeef: Zeef) -> None:
    await zeef.send(pageview("https://example.com/app#/settings", h=1))
    await zeef.send(pageview("https://example.com/app#/settings"))
    await zeef.flush()
    assert [r["path"] for r in zeef.rows()] == ["/app#/settings", "/app"]


async def test_query_string_is_stripped_but_for_campaign_fields(zeef: Zeef) -> None:
    url = ("https://example.com/p?email=jan%40example.nl&utm_medium=mail&utm_campaign=winter"
           "&utm_term=shoes&utm_content=top&token=secret")  # fmt: skip
    await zeef.send(pageview(url))
    await zeef.send(pageview("https://example.com/?ref=producthunt"))
    await zeef.flush()
    first, second = zeef.rows()
    assert first["path"] == "/p"
    assert (first["utm_medium"], first["utm_campaign"], first["utm_term"]) == (
        "mail", "winter", "shoes")  # fmt: skip
    assert first["utm_content"] == "top"
    assert second["utm_source"] == "producthunt"
    raw = stored_bytes(zeef.settings.database)
    # (the WAL holds the row "secret_key" of the server's keys, hence the whole pair)
    assert b"jan%40example.nl" not in raw and b"token=secret" not in raw


async def test_self_referral_is_ignored(zeef: Zeef) -> None:
    await zeef.send(pageview("https://example.com/b", r="https://www.example.com/a"))
    await zeef.flush()
    [row] = zeef.rows()
    assert row["referrer_host"] is None


async def test_device_classes(zeef: Zeef) -> None:
    await zeef.send(pageview(), ua=IPHONE)
    await zeef.send(pageview(), ua=FIREFOX)
    await zeef.flush()
    assert [(r["browser"], r["device"]) for r in zeef.rows()] == [
        ("Mobile Safari", "mobile"), ("Firefox", "desktop")]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (pageview("https://other.org/", d="other.org"), "unknown_site"),
        (pageview("https://evil.example/"), "domain_mismatch"),
    ],
    ids=["unknown-site", "domain-mismatch"],
)
async def test_drops_are_answered_in_a_header_and_counted(
    zeef: Zeef, payload: dict[str, str], reason: str
) -> None:
    response = await zeef.send(payload)
    assert response.status_code == 202
    assert response.headers["x-zeef-drop"] == reason
    await zeef.flush()
    assert zeef.rows() == []
    [drop] = zeef.rows("SELECT reason, count FROM drops")
    assert drop == {"reason": reason, "count": 1}


@pytest.mark.parametrize(
    "ua",
    [
        "",
        "curl/8.5.0",
        "python-requests/2.32.3",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36",
    ],
    ids=["empty", "curl", "python-requests", "googlebot", "headless-chrome"],
)
async def test_bots_leave_no_row(zeef: Zeef, ua: str) -> None:
    response = await zeef.send(pageview(), ua=ua)
    assert response.headers["x-zeef-drop"] == "bot"
    await zeef.flush()
    assert zeef.rows() == []
    assert zeef.rows("SELECT reason, count FROM drops") == [{"reason": "bot", "count": 1}]


async def test_a_site_added_while_running_is_picked_up(zeef: Zeef, clock) -> None:
    first = await zeef.send(pageview("https://late.example/", d="late.example"))
    assert first.headers["x-zeef-drop"] == "unknown_site"
    await add_site(zeef.app.state.storage, "late.example")  # as `zeef site add` would
    second = await zeef.send(pageview("https://late.example/", d="late.example"))
    assert "x-zeef-drop" not in second.headers


async def test_one_event_for_several_sites(zeef: Zeef) -> None:
    await zeef.add_site("rollup.example")
    response = await zeef.send(pageview(d="example.com,rollup.example"))
    assert "x-zeef-drop" not in response.headers
    await zeef.flush()
    assert sorted(r["site_id"] for r in zeef.rows()) == [1, 2]


async def test_healthz(zeef: Zeef) -> None:
    response = await zeef.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("header", ["dnt", "sec-gpc"], ids=["do-not-track", "gpc"])
async def test_privacy_signals_are_honoured_unless_the_site_opted_out(
    zeef: Zeef, header: str
) -> None:
    signalled = {"content-type": "text/plain", "user-agent": FIREFOX, header: "1"}
    body = json.dumps(pageview())
    response = await zeef.client.post("/api/event", content=body, headers=signalled)
    assert response.headers["x-zeef-drop"] == "opted_out"
    storage = zeef.app.state.storage
    [site] = await storage.sites()
    await storage.set_honour_dnt(site.id, False)
    await zeef.settled()
    response = await zeef.client.post("/api/event", content=body, headers=signalled)
    assert "x-zeef-drop" not in response.headers
    await zeef.flush()
    assert len(zeef.rows()) == 1
    assert zeef.rows("SELECT reason, count FROM drops") == [{"reason": "opted_out", "count": 1}]


async def test_absent_fields_are_stored_as_null_and_zeros_as_values(zeef: Zeef) -> None:
    # The writer binds absent values as 0 or -1 and lets SQL turn them into NULL: a real "0"
    # campaign or a 0 % scroll depth must survive that, and nothing absent may become a value.
    bare = pageview("https://example.com/")
    zeros = {
        "n": "engagement",
        "u": "https://example.com/?utm_source=0&utm_medium=0&utm_campaign=0",
        "d": "example.com",
        "sd": 0,
        "e": 0,
    }
    for body in (bare, zeros):
        assert (await zeef.send(body)).status_code == 202
    await zeef.flush()
    first, second = zeef.rows()
    optional = [
        "referrer_host", "referrer_path", "utm_source", "utm_medium", "utm_campaign",
        "utm_term", "utm_content", "country", "region", "city", "props", "revenue_amount",
        "revenue_currency", "scroll_depth", "engaged_ms",
    ]  # fmt: skip
    assert {key: first[key] for key in optional} == dict.fromkeys(optional)
    assert (second["utm_source"], second["utm_medium"], second["utm_campaign"]) == ("0",) * 3
    assert (second["scroll_depth"], second["engaged_ms"]) == (0, 0)
    assert second["utm_term"] is None and second["referrer_host"] is None

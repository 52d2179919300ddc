"""Share links opened over HTTP (issue 18): the token moves into a cookie and out of the
address, the read-only dashboard shows the share's sections under its filter with the Stats
API's figures, every bad token or cookie gets the same 404, a password guards what it should,
embedding follows the share's origins, and the token works as the Stats API's Bearer."""

from __future__ import annotations

import io
import logging
import re
import time
import zipfile
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from server.accounts import apikeys, audit
from server.sharing import shares
from server.sharing.shares import Share

from .conftest import Clock, Zeef
from .test_login import client_of

DAY = "period=day&date=2026-03-14"
PASSWORD = "a long and quiet river of numbers"


async def make(zeef: Zeef, **conditions: Any) -> tuple[Share, str]:
    storage = zeef.app.state.storage
    share = await shares.create(storage, audit.CLI, "example.com", now=_now(zeef), **conditions)
    return share, shares.token(zeef.app.state.secret_key, share)


def _now(zeef: Zeef) -> float:
    # When a change is made: written as updated_at and revoked_at, never compared with the
    # app's (test) clock, which decides expiry.
    return time.time()


async def opened(
    zeef: Zeef, token: str, query: str = "", scheme: str = "http"
) -> tuple[httpx.AsyncClient, str]:
    """A browser that followed the link: its cookie set, at the clean address."""
    browser = client_of(zeef, scheme)
    answer = await browser.get(f"/share/{token}{query}")
    assert answer.status_code == 303, answer.text
    return browser, answer.headers["location"]


async def api(zeef: Zeef, path: str) -> Any:
    """The Stats API's answer to an operator's key (no account: the operator's reach)."""
    key = apikeys.generate()
    await zeef.app.state.storage.create_api_key(
        "op@zeef.example", "test", apikeys.shown_prefix(key), apikeys.digest(key), int(time.time())
    )
    answer = await zeef.client.get(path, headers={"authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def metric_values(page: str) -> list[str]:
    return re.findall(r'<span class="metric-value">([^<]*)</span>', page)


async def test_the_link_moves_its_token_into_a_cookie_and_shows_the_dashboard(shop: Zeef) -> None:
    share, token = await make(shop, label="Board")
    browser, location = await opened(shop, token, "?embed=true&utm=x")
    async with aclosing(browser):
        # The address keeps the layout only, never the token.
        assert location == f"/shared/{share.id}?embed=true"
        answer = await browser.get(f"/share/{token}")
        cookie = answer.headers["set-cookie"]
        assert f"zeef_share_{share.id}=" in cookie and "HttpOnly" in cookie
        assert f"Path=/shared/{share.id}" in cookie and "SameSite=lax" in cookie
        assert token not in cookie
        assert answer.headers["referrer-policy"] == "no-referrer"
        page = await browser.get(f"/shared/{share.id}?{DAY}")
        assert page.status_code == 200
        assert token not in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert '<meta name="referrer" content="no-referrer">' in page.text
        totals = await api(shop, f"/api/v1/stats/aggregate?site_id=example.com&{DAY}"
                                 "&metrics=visitors,visits,pageviews")  # fmt: skip
        shown = metric_values(page.text)
        assert shown[:3] == [str(totals["results"][m]["value"]) for m in
                             ("visitors", "visits", "pageviews")]  # fmt: skip
        # Nothing leads into the admin pages; no login, no other site.
        for needle in ('href="/"', 'href="/sites', "/settings", "Log out", 'action="/logout"'):
            assert needle not in page.text, needle
        # Its details views and export stay under /shared/ID.
        assert f'href="/shared/{share.id}/details/event:page?' in page.text
        assert f'href="/shared/{share.id}/export?' in page.text


async def every_404(zeef: Zeef) -> str:
    async with aclosing(client_of(zeef)) as browser:
        answer = await browser.get("/share/never-was-a-link")
        assert answer.status_code == 404
        return answer.text


async def test_every_bad_token_gets_the_same_404(shop: Zeef, clock: Clock) -> None:
    plain = await every_404(shop)
    storage = shop.app.state.storage
    secret = shop.app.state.secret_key
    good, token = await make(shop)
    revoked, revoked_token = await make(shop)
    await shares.revoke(storage, audit.CLI, revoked, _now(shop))
    _expiring, expiring_token = await make(shop, expires_at=int(clock.now.timestamp()) + 3600)
    forged = shares.token("not the secret", good)
    unknown = shares.token(secret, Share(**{**good.__dict__, "id": 999}))
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    clock.advance(hours=2)
    for name, bad in [("tampered", tampered), ("forged", forged), ("unknown", unknown),
                      ("revoked", revoked_token), ("expired", expiring_token)]:  # fmt: skip
        async with aclosing(client_of(shop)) as browser:
            answer = await browser.get(f"/share/{bad}")
            assert answer.status_code == 404, name
            assert answer.text == plain, name
            assert "set-cookie" not in answer.headers, name
    # Each failure is in the audit log by its kind, with a truncated address.
    rows = await storage.audit_log(0, None, 100)
    kinds = {row["action"] for row in rows}
    assert {"share.access.tampered", "share.access.unknown", "share.access.revoked",
            "share.access.expired"} <= kinds  # fmt: skip
    assert all(row["address"] in ("-", "") or row["address"].endswith(".0")
               for row in rows if row["action"].startswith("share.access"))  # fmt: skip

    # A cookie: revoked after it was set, or another share's, opens nothing either.
    other, _other_token = await make(shop)
    browser, _location = await opened(shop, token)
    async with aclosing(browser):
        assert (await browser.get(f"/shared/{good.id}")).status_code == 200
        wrong = await browser.get(f"/shared/{other.id}")
        assert wrong.status_code == 404 and wrong.text == plain
        await shares.revoke(storage, audit.CLI, good, _now(shop))
        for path in ("", "/details/event:page", "/export", "/export/pages.csv", "/live"):
            gone = await browser.get(f"/shared/{good.id}{path}")
            assert gone.status_code == 404 and gone.text == plain, path


async def test_sections_and_the_locked_filter_hold_on_every_route(shop: Zeef) -> None:
    share, token = await make(shop, shown=["pages"], locked="visit:browser==Firefox")
    browser, _location = await opened(shop, token)
    async with aclosing(browser):
        page = (await browser.get(f"/shared/{share.id}?{DAY}")).text
        assert ">Top pages</h2>" in page
        for hidden in (">Top sources</h2>", ">Locations</h2>", ">Devices</h2>", "metric-value"):
            assert hidden not in page, hidden
        # The share's filter shows, locked: no link removes it, and it applies whatever the URL.
        assert "chips-locked" in page and "Browser is Firefox" in page
        pages = await api(shop, f"/api/v1/stats/breakdown?site_id=example.com&{DAY}"
                          "&property=event:page&filters=visit:browser%3D%3DFirefox")  # fmt: skip
        rows = re.findall(r'title="[^"]*">([^<]*)</a></td>\s*<td class="number">([^<]*)</td>',
                          page.split(">Top pages</h2>", 1)[1])  # fmt: skip
        assert rows == [(r["page"], str(r["visitors"])) for r in pages["results"]]
        assert rows == [("/pricing", "1")]
        # A viewer's filter on a hidden section's dimension, or its details, or its file: no.
        assert (await browser.get(f"/shared/{share.id}?filters=visit:source%3D%3DGoogle"))\
            .status_code == 400  # fmt: skip
        assert (await browser.get(f"/shared/{share.id}/details/visit:source")).status_code == 404
        assert (await browser.get(f"/shared/{share.id}/export/sources.csv")).status_code == 404
        assert (await browser.get(f"/shared/{share.id}/export/visitors.csv")).status_code == 404
        assert (await browser.get(f"/shared/{share.id}/live")).status_code == 404
        # A filter within its sections narrows further; the locked one still holds.
        narrowed = await browser.get(f"/shared/{share.id}?{DAY}&filters=event:page%3D%3D/")
        assert narrowed.status_code == 200 and "No data for this period." in narrowed.text
        archive = await browser.get(f"/shared/{share.id}/export?{DAY}")
        assert archive.status_code == 200
        with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
            assert files.namelist() == ["pages.csv", "entry_pages.csv", "exit_pages.csv"]
            assert files.read("pages.csv").decode().splitlines()[1:] == ["/pricing,1,1,1,100,0"]
        details = await browser.get(f"/shared/{share.id}/details/event:page?{DAY}")
        assert details.status_code == 200 and ">/pricing</a>" in details.text
        assert f'href="/shared/{share.id}/export/pages.csv?' in details.text


async def test_without_csv_there_is_no_download(shop: Zeef) -> None:
    share, token = await make(shop, csv=False)
    browser, _location = await opened(shop, token)
    async with aclosing(browser):
        page = (await browser.get(f"/shared/{share.id}?{DAY}")).text
        assert "/export" not in page and "Download CSV" not in page
        assert (await browser.get(f"/shared/{share.id}/export")).status_code == 404
        assert (await browser.get(f"/shared/{share.id}/export/pages.csv")).status_code == 404


async def test_a_password_guards_the_share(shop: Zeef) -> None:
    share, token = await make(shop, password=PASSWORD)
    browser, _location = await opened(shop, token)
    async with aclosing(browser):
        form = await browser.get(f"/shared/{share.id}")
        assert form.status_code == 200 and 'type="password"' in form.text
        assert "metric-value" not in form.text
        for path in ("/details/event:page", "/export", "/live"):
            assert (await browser.get(f"/shared/{share.id}{path}")).status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        url = f"/shared/{share.id}/password"
        assert (await browser.post(url, data={"password": PASSWORD})).status_code == 403
        wrong = await browser.post(url, data={"csrf": csrf.group(1), "password": "no" * 10})
        assert wrong.status_code == 400 and "not the password" in wrong.text
        right = await browser.post(url, data={"csrf": csrf.group(1), "password": PASSWORD})
        assert right.status_code == 303
        assert "Max-Age=86400" in right.headers["set-cookie"]
        page = await browser.get(f"/shared/{share.id}?{DAY}")
        assert page.status_code == 200 and "metric-value" in page.text
    # Another browser with the link still needs the password; guesses are throttled.
    browser, _location = await opened(shop, token)
    async with aclosing(browser):
        csrf = re.search(r'name="csrf" value="([^"]+)"', (await browser.get(_location)).text)
        assert csrf
        statuses = [
            (await browser.post(url, data={"csrf": csrf.group(1), "password": f"guess {n}"}))
            .status_code for n in range(6)
        ]  # fmt: skip
        assert statuses[:4] == [400] * 4 and statuses[-1] == 429


async def test_embedding_follows_the_shares_origins(shop: Zeef) -> None:
    _framed, token = await make(shop, embed=["https://client.example"])
    # A frame's cookie is Secure: another site embeds over HTTPS.
    browser, location = await opened(shop, token, "?embed=true&theme=dark", "https")
    async with aclosing(browser):
        answer = await browser.get(f"/share/{token}?embed=true")
        cookie = answer.headers["set-cookie"]
        assert "SameSite=None" in cookie and "Secure" in cookie and "Partitioned" in cookie
        page = await browser.get(location)
        assert page.status_code == 200
        assert "frame-ancestors https://client.example" in page.headers["content-security-policy"]
        assert "x-frame-options" not in page.headers
        assert 'class="embedded"' in page.text and 'data-theme="dark"' in page.text
        assert "site-header" not in page.text
    _plain, plain_token = await make(shop)
    browser, location = await opened(shop, plain_token, "?embed=true")
    async with aclosing(browser):
        page = await browser.get(location)
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
    with pytest.raises(shares.ShareError, match="cannot be embedded"):
        await make(shop, embed=["https://client.example"], password=PASSWORD)


async def test_the_token_reads_the_stats_api_within_its_limits(shop: Zeef) -> None:
    share, token = await make(shop, shown=["overview", "pages"], locked="visit:browser==Firefox")
    bearer = {"authorization": f"Bearer {token}"}
    base = "/api/v1/stats"
    own = await shop.client.get(f"{base}/aggregate?site_id=example.com&{DAY}", headers=bearer)
    assert own.status_code == 200
    expected = await api(shop, f"{base}/aggregate?site_id=example.com&{DAY}"
                               "&filters=visit:browser%3D%3DFirefox")  # fmt: skip
    assert own.json() == expected
    pages = await shop.client.get(
        f"{base}/breakdown?site_id=example.com&{DAY}&property=event:page", headers=bearer
    )
    assert pages.status_code == 200 and pages.json()["results"] == [
        {"page": "/pricing", "visitors": 1}]  # fmt: skip
    refused = await shop.client.get(
        f"{base}/breakdown?site_id=example.com&{DAY}&property=visit:source", headers=bearer
    )
    assert refused.status_code == 400
    filtered = await shop.client.get(
        f"{base}/aggregate?site_id=example.com&{DAY}&filters=visit:country%3D%3DNL",
        headers=bearer,
    )
    assert filtered.status_code == 400
    # v2 too, the comparison included.
    v2 = await shop.client.post("/api/v2/query", headers=bearer, json={
        "site_id": "example.com", "metrics": ["visitors"], "date_range": ["2026-03-14",
        "2026-03-14"], "dimensions": ["event:page"]})  # fmt: skip
    assert v2.status_code == 200 and v2.json()["results"] == [
        {"dimensions": ["/pricing"], "metrics": [1]}]  # fmt: skip
    v2_hidden = await shop.client.post("/api/v2/query", headers=bearer, json={
        "site_id": "example.com", "metrics": ["visitors"], "date_range": "all",
        "dimensions": ["visit:country"]})  # fmt: skip
    assert v2_hidden.status_code == 400
    # Another site is as if it did not exist; a revoked token is an unknown key.
    await shop.add_site("other.example")
    other = await shop.client.get(f"{base}/aggregate?site_id=other.example", headers=bearer)
    assert other.status_code == 404
    await shares.revoke(shop.app.state.storage, audit.CLI, share, _now(shop))
    gone = await shop.client.get(f"{base}/aggregate?site_id=example.com", headers=bearer)
    assert gone.status_code == 401


async def test_the_access_log_never_prints_the_token(
    shop: Zeef, caplog: pytest.LogCaptureFixture
) -> None:
    _share, token = await make(shop)
    caplog.set_level(logging.INFO, logger="zeef")
    browser, location = await opened(shop, token)
    async with aclosing(browser):
        await browser.get(location)
    await shop.client.get("/api/v1/stats/aggregate?site_id=example.com",
                          headers={"authorization": f"Bearer {token}"})  # fmt: skip
    assert token not in caplog.text
    assert token[:20] not in caplog.text


async def test_a_share_changed_takes_effect_at_once(shop: Zeef, clock: Clock) -> None:
    storage = shop.app.state.storage
    share, token = await make(shop)
    browser, location = await opened(shop, token)
    async with aclosing(browser):
        assert ">Top sources</h2>" in (await browser.get(f"{location}?{DAY}")).text
        await shares.change(storage, audit.CLI, share, {"sections": ("pages",)}, _now(shop))
        assert ">Top sources</h2>" not in (await browser.get(f"{location}?{DAY}")).text
        # A new link (rotated): the old token and the cookie made from it open nothing.
        await shares.change(storage, audit.CLI, share, {"rotate": True}, _now(shop))
        assert (await browser.get(location)).status_code == 404
        assert (await browser.get(f"/share/{token}")).status_code == 404


async def test_every_bad_token_is_refused_by_the_api_alike(shop: Zeef, clock: Clock) -> None:
    storage = shop.app.state.storage
    good, token = await make(shop)
    revoked, revoked_token = await make(shop)
    await shares.revoke(storage, audit.CLI, revoked, _now(shop))
    _expiring, expiring_token = await make(shop, expires_at=int(clock.now.timestamp()) + 60)
    clock.advance(minutes=2)
    bad = {
        "tampered": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "forged": shares.token("not the secret", good),
        "revoked": revoked_token,
        "expired": expiring_token,
        "unknown": shares.token(shop.app.state.secret_key, Share(**{**good.__dict__, "id": 999})),
    }
    answers = {}
    for name, value in bad.items():
        answer = await shop.client.get(
            f"/api/v1/stats/aggregate?site_id=example.com&{DAY}",
            headers={"authorization": f"Bearer {value}"},
        )
        answers[name] = (answer.status_code, answer.json())
    # Each as an unknown API key: nothing tells a revoked link from one that never was.
    unknown_key = await shop.client.get(
        f"/api/v1/stats/aggregate?site_id=example.com&{DAY}",
        headers={"authorization": "Bearer zeef_nothing"},
    )
    assert all(status == 401 for status, _body in answers.values()), answers
    assert all(body == unknown_key.json() for _status, body in answers.values()), answers
    good_answer = await shop.client.get(
        f"/api/v1/stats/aggregate?site_id=example.com&{DAY}",
        headers={"authorization": f"Bearer {token}"},
    )
    assert good_answer.status_code == 200

"""The consent banner's admin page, /sites/{domain}/consent, and its preview: over HTTP (saving,
validation, who may, the audit trail, the headers) and in real Chromium against a real uvicorn
(the previews show the banner in each language and a click in them stores and sends nothing).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from server.app import create_app
from server.config import Settings
from server.sites import add_site, find_site
from server.web.templates import CONTENT_SECURITY_POLICY

from .conftest import Zeef
from .live import _free_port
from .test_admin_pages import ADMIN, SITE, Live, Visit, seed
from .test_login import add_user, client_of, csrf_of, log_in

PAGE = "/sites/acme.example/consent"
PREVIEW = PAGE + "/preview"


@pytest.fixture
async def acme(zeef: Zeef) -> Zeef:
    """acme.example of customer Acme (admin Ann, viewer Vic); beta.example of Beta (admin Bea);
    the operator's superuser."""
    storage = zeef.app.state.storage
    await add_user(zeef, "ann@acme.example", "admin", customer="Acme")
    await add_user(zeef, "vic@acme.example", "viewer", customer="Acme")
    await add_user(zeef, "bea@beta.example", "admin", customer="Beta")
    await add_user(zeef, "op@zeef.example", "superuser")
    ids = {c["name"]: c["id"] for c in await storage.customers()}
    for domain, customer in (("acme.example", "Acme"), ("beta.example", "Beta")):
        site = await add_site(storage, domain)
        await storage.set_site_customer(site.id, ids[customer])
    return zeef


@pytest.fixture
async def ann(acme: Zeef) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(acme) as browser:
        assert (await log_in(browser, "ann@acme.example")).status_code == 303
        yield browser


def form(csrf: str, **changes: Any) -> dict[str, Any]:
    """The form as a browser posts it: the boxes ticked are the fields present."""
    fields: dict[str, Any] = {
        "csrf": csrf,
        "category": ["analytics"],
        "lifetime_months": "6",
        "policy_url": "",
        "controller": "",
        "cookies": "",
    }
    fields.update(changes)
    return fields


def stored(zeef: Zeef) -> list[dict[str, Any]]:
    return zeef.rows("SELECT site_id, config FROM consent_configs")


def audited(zeef: Zeef) -> list[dict[str, Any]]:
    return zeef.rows(
        "SELECT actor, action, object, customer_id FROM audit_log "
        "WHERE action = 'consent settings changed' ORDER BY id"
    )


async def test_an_admin_saves_the_banner_and_visitors_get_it(
    acme: Zeef, ann: httpx.AsyncClient
) -> None:
    page = await ann.get(PAGE)
    assert page.status_code == 200
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"  # the page itself is framed by no one
    for lang in ("en", "nl", "es"):
        assert f'src="{PREVIEW}?lang={lang}"' in page.text
    sent = form(
        csrf_of(page.text),
        category=["analytics", "marketing"],
        lifetime_months="13",
        policy_url="https://acme.example/privacy",
        controller="Acme B.V.",
        require_consent="on",
        consent_mode_v2="on",
        cookies="marketing:_fbp*:3 months:Meta's advertising\n\n analytics:_ga:13 months:counting",
        renew="on",
    )
    saved = await ann.post(PAGE, data=sent)
    assert (saved.status_code, saved.headers["location"]) == (303, PAGE + "?done=consent-saved")
    shown = await ann.get(saved.headers["location"])
    assert "were saved" in shown.text and 'value="Acme B.V."' in shown.text

    config = (await acme.client.get("/consent/config?site=acme.example&lang=nl")).json()
    assert [c["id"] for c in config["categories"]] == ["necessary", "analytics", "marketing"]
    assert (config["language"], config["texts"]["accept_all"]) == ("nl", "Alles accepteren")
    assert config["lifetime_days"] == 396 and config["revision"] == 2
    assert config["policy_url"] == "https://acme.example/privacy"
    assert config["controller"] == "Acme B.V."
    assert config["require_consent"] is True and config["consent_mode_v2"] is True
    marketing = {c["id"]: c for c in config["categories"]}["marketing"]
    assert marketing["cookies"] == [
        {"name": "_fbp*", "purpose": "Meta's advertising", "lifetime": "3 months",
         "domain": None, "path": "/"}]  # fmt: skip
    [row] = audited(acme)
    assert row["actor"] == "ann@acme.example"
    assert row["object"].startswith("acme.example: categories, lifetime_days, policy_url")
    assert row["customer_id"] == acme.rows("SELECT customer_id FROM sites WHERE domain = "
                                           "'acme.example'")[0]["customer_id"]  # fmt: skip
    # The collector counts only consented visitors from now on, without a restart.
    await acme.settled()

    # Posted again as the page now shows it: nothing changes, nothing more is audited, and
    # the revision is bumped only when asked.
    again = form(csrf_of(shown.text), category=["analytics", "marketing"], lifetime_months="13",
                 policy_url="https://acme.example/privacy", controller="Acme B.V.",
                 require_consent="on", consent_mode_v2="on",
                 cookies="marketing:_fbp*:3 months:Meta's advertising\n"
                         "analytics:_ga:13 months:counting")  # fmt: skip
    assert (await ann.post(PAGE, data=again)).status_code == 303
    assert len(audited(acme)) == 1
    config = (await acme.client.get("/consent/config?site=acme.example&lang=en")).json()
    assert config["revision"] == 2


async def test_an_odd_lifetime_from_the_cli_survives_a_save(
    acme: Zeef, ann: httpx.AsyncClient
) -> None:
    site = await find_site(acme.app.state.storage, "acme.example")
    assert site is not None
    await acme.app.state.storage.set_consent_config(
        site.id, '{"categories": ["necessary", "analytics", "social"], "lifetime_days": 90}', 1
    )
    page = await ann.get(PAGE)
    assert 'value="3"' in page.text and "social" in page.text
    saved = await ann.post(PAGE, data=form(csrf_of(page.text), lifetime_months="3",
                                           controller="Acme"))  # fmt: skip
    assert saved.status_code == 303
    config = (await acme.client.get("/consent/config?site=acme.example")).json()
    assert config["lifetime_days"] == 90  # not 91: the months shown were not changed
    assert [c["id"] for c in config["categories"]] == ["necessary", "analytics", "social"]


INVALID = {
    "lifetime-zero": ({"lifetime_months": "0"}, "1 to 13 months"),
    "lifetime-fourteen": ({"lifetime_months": "14"}, "1 to 13 months"),
    "lifetime-words": ({"lifetime_months": "six"}, "1 to 13 months"),
    "lifetime-superscript": ({"lifetime_months": "\u00b2"}, "1 to 13 months"),
    "policy-ftp": ({"policy_url": "ftp://acme.example/privacy"}, "starting with https://"),
    "policy-spaces": ({"policy_url": "https://acme.example/a b"}, "starting with https://"),
    "controller-long": ({"controller": "x" * 201}, "under 200 characters"),
    "cookie-format": ({"cookies": "analytics:_ga:13 months:counting\n_fbp 3 months"},
                      "Line 2: write CATEGORY:NAME:LIFETIME:PURPOSE"),
    "cookie-unticked": ({"cookies": "marketing:_fbp:3m:ads"},
                        "Line 1: marketing is not one of the optional categories"),
    "cookie-necessary": ({"cookies": "necessary:sid:1d:login"},
                         "Line 1: necessary is not one of the optional categories"),
}  # fmt: skip


@pytest.mark.parametrize("changes, message", INVALID.values(), ids=INVALID.keys())
async def test_invalid_input_is_refused_with_what_was_typed(
    acme: Zeef, ann: httpx.AsyncClient, changes: dict[str, str], message: str
) -> None:
    page = await ann.get(PAGE)
    typed = {"controller": "<script>alert(1)</script>", **changes}
    refused = await ann.post(PAGE, data=form(csrf_of(page.text), **typed))
    assert refused.status_code == 400
    assert message in refused.text
    assert "not saved" in refused.text
    assert "<script>alert" not in refused.text
    if len(typed["controller"]) < 200:
        assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in refused.text
    for name, value in changes.items():
        if name == "cookies":
            assert value.replace("'", "&#39;") in refused.text
        elif name == "lifetime_months":
            assert f'value="{value}"' in refused.text
    assert stored(acme) == [] and audited(acme) == []


async def test_who_may_see_and_change_it(acme: Zeef) -> None:
    answers = {}
    for who in ("vic@acme.example", "bea@beta.example", "op@zeef.example", None):
        async with client_of(acme) as browser:
            if who:
                assert (await log_in(browser, who)).status_code == 303
            token = csrf_of((await browser.get("/sites")).text) if who else "x"
            got = []
            for path in (PAGE, PREVIEW + "?lang=es"):
                response = await browser.get(path)
                login = response.status_code == 303 and response.headers["location"].startswith(
                    "/login?next="
                )
                got.append("login" if login else response.status_code)
            posted = await browser.post(PAGE, data=form(token, controller="Not theirs"))
            login = posted.status_code == 303 and posted.headers["location"].startswith("/login")
            got.append("login" if login else posted.status_code)
            answers[who] = got
    assert answers == {
        "vic@acme.example": [403, 403, 403],
        "bea@beta.example": [404, 404, 404],
        "op@zeef.example": [200, 200, 303],
        None: ["login", "login", "login"],
    }
    [row] = audited(acme)  # the superuser's, and no one else's
    assert row["actor"] == "op@zeef.example"
    async with client_of(acme) as browser:
        await log_in(browser, "op@zeef.example")
        assert (await browser.get("/sites/nothing.example/consent")).status_code == 404


async def test_a_post_without_its_csrf_token_is_refused(acme: Zeef, ann: httpx.AsyncClient) -> None:
    for token in ("", "forged"):
        refused = await ann.post(PAGE, data=form(token, controller="Forged"))
        assert refused.status_code == 403
    assert stored(acme) == [] and audited(acme) == []


async def test_the_preview_is_framed_by_zeef_alone_and_other_pages_by_no_one(
    acme: Zeef, ann: httpx.AsyncClient
) -> None:
    preview = await ann.get(PREVIEW + "?lang=nl")
    assert preview.status_code == 200
    assert preview.text.startswith('<!doctype html>\n<html lang="nl">')
    assert '<script src="/consent.js" data-site="acme.example" data-preview>' in preview.text
    assert preview.headers["content-language"] == "nl"
    assert "frame-ancestors 'self'" in preview.headers["content-security-policy"]
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"
    assert "default-src 'none'" in preview.headers["content-security-policy"]
    assert (await ann.get(PREVIEW)).headers["content-language"] == "en"
    assert (await ann.get(PREVIEW + "?lang=de")).status_code == 404
    for path in ("/sites/acme.example/settings", "/sites"):
        other = await ann.get(path)
        assert other.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert other.headers["x-frame-options"] == "DENY", path
    settings = await ann.get("/sites/acme.example/settings")
    assert f'href="{PAGE}"' in settings.text


# -- in Chromium ---------------------------------------------------------------------------------

BANNERS = {"en": "Accept all", "nl": "Alles accepteren", "es": "Aceptar todo"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Live, Path]]:
    """The real app under uvicorn with Acme and its admin (tests/test_admin_pages.py's seed),
    and its database, which no one has decided anything in. For one test: it stops, and closes
    its database connections, before the test's end is checked for connections left open."""
    database = tmp_path / "zeef.sqlite3"
    with ThreadPoolExecutor(1) as pool:
        ids = pool.submit(asyncio.run, seed(database)).result()
    port = _free_port("127.0.0.1")
    settings = Settings(database=database, flush_interval=0.1)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Live(f"http://127.0.0.1:{port}", ids), database
    server.should_exit = True
    thread.join(timeout=15)


def consent_records(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT COUNT(*) FROM consent_records").fetchone()[0])


def test_the_previews_show_the_banner_and_keep_nothing(
    browser: Any, served: tuple[Live, Path], screenshots: Path
) -> None:
    live, database = served
    visit = Visit(browser, live, screenshots, ADMIN)
    page = visit.page
    visit.open(f"/sites/{SITE}/settings")
    page.click("text=Consent banner")
    page.wait_for_url(f"**/sites/{SITE}/consent")
    for lang, accept in BANNERS.items():
        frame = page.frame_locator(f"iframe[src$='lang={lang}']")
        # The first layer, at once, in the frame's language: Playwright pierces the shadow root.
        first = frame.locator("zeef-consent .first")
        first.wait_for()
        assert first.get_attribute("role") == "dialog"
        assert frame.locator("zeef-consent .first button", has_text=accept).is_visible()
    page.wait_for_load_state("networkidle")
    visit.check()
    visit.shot("consent-settings")

    # The banner is fixed to the frame's bottom: Playwright scrolls the frame into view only
    # when asked.
    page.locator("iframe[src$='lang=nl']").scroll_into_view_if_needed()
    frame = page.frame_locator("iframe[src$='lang=nl']")
    frame.locator("zeef-consent .first button", has_text="Alles accepteren").click()
    frame.locator("zeef-consent .first").wait_for(state="hidden")
    frame.locator("zeef-consent .reopen").click()  # the preferences layer, after a choice
    prefs = frame.locator("zeef-consent .prefs")
    prefs.wait_for()
    assert "Voorkeuren" in prefs.inner_text()
    # Nothing was chosen: every optional switch is still off.
    assert not frame.locator("zeef-consent #c-analytics").is_checked()
    frame.locator("zeef-consent .prefs button", has_text="Opslaan").click()
    page.wait_for_timeout(300)  # a beacon would be on its way by now

    assert not [url for url in visit.requests if "/api/consent" in url], visit.requests
    assert all(url.startswith(live.url + "/") for url in visit.requests), visit.requests
    cookies = {cookie["name"] for cookie in visit.context.cookies()}
    assert cookies <= {"zeef_session", "zeef_form"}, cookies
    assert consent_records(database) == 0
    visit.check()
    visit.close()

    # Saved in the browser: a wrong line comes back marked, then the preview shows the change
    # at once (the banner fetches its config past the five-minute cache).
    visit = Visit(browser, live, screenshots, ADMIN)
    page = visit.page
    visit.open(f"/sites/{SITE}/consent")
    page.check("#category-marketing")
    page.fill("#controller", "Acme Bakkerij B.V.")
    page.fill("#cookies", "marketing:_fbp:3 months:Meta's advertising\nsocial:_tw")
    page.click("text=Save settings")
    error = page.locator("#cookies-error")
    assert "Line 2:" in error.inner_text()
    assert page.locator("#controller").input_value() == "Acme Bakkerij B.V."
    page.frame_locator("iframe[src$='lang=es']").locator("zeef-consent .first").wait_for()
    page.wait_for_timeout(300)  # the banners' 0.2 s slide-in
    visit.shot("consent-settings-error")
    visit.console.clear()  # Chromium logs the 400 itself as an error
    page.fill("#cookies", "marketing:_fbp:3 months:Meta's advertising")
    page.click("text=Save settings")
    page.wait_for_url("**/consent?done=consent-saved")
    frame = page.frame_locator("iframe[src$='lang=es']")
    assert "Acme Bakkerij B.V." in frame.locator("zeef-consent .first p").inner_text()
    visit.check()
    visit.close()

    # The preview on its own, as "Open full size" shows it.
    visit = Visit(browser, live, screenshots, ADMIN)
    visit.open(f"/sites/{SITE}/consent/preview?lang=nl")
    visit.page.locator("zeef-consent .first").wait_for()
    visit.page.wait_for_timeout(300)  # the banner's 0.2 s slide-in
    visit.shot("consent-preview-nl")
    visit.close()

    phone = Visit(browser, live, screenshots, ADMIN, viewport={"width": 360, "height": 740},
                  is_mobile=True, has_touch=True)  # fmt: skip
    phone.open(f"/sites/{SITE}/consent")
    for lang in BANNERS:
        phone.page.frame_locator(f"iframe[src$='lang={lang}']").locator(
            "zeef-consent .first"
        ).wait_for()
    phone.page.wait_for_timeout(300)
    phone.check()
    phone.shot("consent-settings-phone")
    phone.close()

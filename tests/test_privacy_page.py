"""The privacy statement and cookie declaration: /privacy/DOMAIN and /privacy/DOMAIN.json."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from server.accounts import audit
from server.config import Settings
from server.consent import ConsentConfig, DeclaredCookie
from server.sharing import shares

from .conftest import Clock, Zeef, start

LANGS = ("en", "nl", "es")
HEADING = {"en": "Visit statistics", "nl": "Bezoekstatistieken", "es": "Estadísticas de visitas"}
# The sentence each language gives a figure in: a missing translation or a stale figure fails.
MASKED = {
    "en": "the last {n} of its 4 bytes are removed first",
    "nl": "worden eerst de laatste {n} van de 4 bytes verwijderd",
    "es": "antes se eliminan los últimos {n} de sus 4 bytes",
}
PREFIX = {
    "en": "everything after the first {n} bits",
    "nl": "alles na de eerste {n} bits",
    "es": "todo lo que sigue a los primeros {n} bits",
}
PLACE = {
    "en": "The statistics are stored on {place}.",
    "nl": "De statistieken worden opgeslagen op: {place}.",
    "es": "Las estadísticas se guardan en: {place}.",
}
KEPT = {
    "en": "Page views and visits are kept for {period}, then deleted automatically.",
    "nl": "Paginaweergaven en bezoeken worden {period} bewaard en daarna automatisch verwijderd.",
    "es": "Las páginas vistas y las visitas se conservan durante {period} y después se borran",
}
NINETY_DAYS = {"en": "90 days", "nl": "90 dagen", "es": "90 días"}
TWENTY_FIVE_MONTHS = {"en": "25 months", "nl": "25 maanden", "es": "25 meses"}
SHARED_ONCE = {
    "en": "through 1 active share link: a read-only link",
    "nl": "gedeeld via 1 actieve deellink: een link",
    "es": "mediante 1 enlace activo: un enlace",
}
NOT_SHARED = {
    "en": "not shared through any share link",
    "nl": "via geen enkele deellink gedeeld",
    "es": "no se comparten mediante ningún enlace",
}


def text_of(page: str) -> str:
    """The page's words, tags out, entities decoded, white space folded."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@asynccontextmanager
async def running(settings: Settings, clock: Clock) -> AsyncIterator[Zeef]:
    """The app with example.com, stopped (lifespan and connections) on leaving the block."""
    app = start(settings, clock)
    zeef = await anext(app)
    try:
        if not await zeef.app.state.storage.sites():
            await zeef.add_site("example.com")
        yield zeef
    finally:
        await app.aclose()


async def statement(zeef: Zeef) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON, and the page's text in each language."""
    data = (await zeef.client.get("/privacy/example.com.json")).json()
    pages = {}
    for lang in LANGS:
        response = await zeef.client.get(f"/privacy/example.com?lang={lang}")
        assert response.status_code == 200
        assert response.headers["content-language"] == lang
        pages[lang] = text_of(response.text)
    return data, pages


async def example(zeef: Zeef) -> Any:
    storage = zeef.app.state.storage
    return next(s for s in await storage.sites() if s.domain == "example.com")


async def test_json_keys_and_headers(zeef: Zeef) -> None:
    response = await zeef.client.get("/privacy/example.com.json")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "public, max-age=300"
    data = response.json()
    # docs/privacy-statement.md documents each of these; a new key goes there too.
    assert set(data) == {
        "schema", "site", "language", "controller", "policy_url", "purpose", "collected",
        "ip_mask_bytes", "ipv6_prefix_bits", "full_ip_stored", "cookieless_linkable",
        "honours_dnt", "requires_consent", "data_location", "retention", "third_parties",
        "active_share_links", "consent_lifetime_days", "cookies", "rights", "my_data_url",
    }  # fmt: skip
    assert data["schema"] == 1 and data["site"] == "example.com" and data["language"] == "en"
    assert data["full_ip_stored"] is False and data["cookieless_linkable"] is False
    assert (data["ip_mask_bytes"], data["ipv6_prefix_bits"]) == (2, 48)
    assert data["third_parties"] == [] and data["active_share_links"] == 0
    # Absolute, at the public URL: a site rendering the JSON links to Zeef, not to itself.
    assert data["my_data_url"] == "http://localhost:8000/privacy/example.com/my-data"
    assert data["rights"] == ["access", "correction", "erasure", "portability", "withdrawal"]
    assert data["retention"] == {
        "events": "25m", "events_days": 775, "consent_proof": "3y", "consent_proof_days": 1098,
        "keep_aggregates": False,
    }  # fmt: skip
    # No GeoIP database in these settings: no location is derived, and none is claimed.
    assert "location" not in data["collected"] and "page" in data["collected"]
    assert [(c["name"], c["category"], c["set_by"]) for c in data["cookies"]] == [
        ("zeef_consent", "necessary", "zeef"),
        ("zeef_id", "analytics", "zeef"),
    ]
    assert data["cookies"][1]["lifetime"] == "6 months"


async def test_json_texts_follow_lang(zeef: Zeef) -> None:
    data = (await zeef.client.get("/privacy/example.com.json?lang=nl")).json()
    assert data["language"] == "nl"
    assert data["cookies"][1]["category_name"] == "Statistieken"
    assert data["cookies"][1]["lifetime"] == "6 maanden"
    # Without ?lang= the JSON is English whatever the browser prefers: a server that fetches
    # it gets the same answer every time.
    plain = await zeef.client.get("/privacy/example.com.json", headers={"accept-language": "es"})
    assert plain.json()["language"] == "en"


@pytest.mark.parametrize(
    "path",
    [
        "/privacy/nowhere.example",
        "/privacy/nowhere.example.json",
        "/privacy/not%20a%20domain",
        "/privacy/.json",
        "/privacy/example.com.json.json",
    ],
)
async def test_unknown_site_is_404(zeef: Zeef, path: str) -> None:
    response = await zeef.client.get(path)
    assert response.status_code == 404
    assert "example.com" not in response.text  # nothing about any site that does exist


async def test_unknown_site_is_the_standard_404(zeef: Zeef) -> None:
    """The error page every unknown page gets, in the asked language: it names no site, so
    asking cannot tell a registered domain from one that never was."""
    page = await zeef.client.get("/privacy/nowhere.example?lang=nl")
    assert page.status_code == 404 and "Pagina niet gevonden" in page.text
    assert "nowhere.example" not in page.text
    data = await zeef.client.get("/privacy/nowhere.example.json")
    assert data.json() == {"error": "unknown site"}


async def test_language_from_lang_then_browser_then_english(zeef: Zeef) -> None:
    async def heading(query: str, accept: str = "") -> str:
        response = await zeef.client.get(
            f"/privacy/example.com{query}", headers={"accept-language": accept}
        )
        assert response.status_code == 200
        return response.headers["content-language"]

    assert await heading("?lang=nl", "es") == "nl"
    assert await heading("?lang=ES") == "es"
    assert await heading("?lang=xx", "es-ES,es;q=0.9") == "es"  # unknown: the browser's
    assert await heading("?lang=<script>") == "en"
    assert await heading("") == "en"
    page = await zeef.client.get("/privacy/example.com?lang=xx")
    assert "Visit statistics" in page.text and "<script>" not in page.text.split("</head>")[1]


async def test_settings_change_the_statement_in_every_language(
    settings: Settings, clock: Clock
) -> None:
    async with running(settings, clock) as zeef:
        before, pages_before = await statement(zeef)
    place = "our own servers in Utrecht"
    changed = replace(settings, ip_mask_bytes=3, data_location=place)
    async with running(changed, clock) as zeef:
        after, pages = await statement(zeef)
    assert (before["ip_mask_bytes"], before["data_location"]) == (2, None)
    assert (after["ip_mask_bytes"], after["ipv6_prefix_bits"]) == (3, 32)
    assert after["data_location"] == place
    for lang in LANGS:
        old, new = pages_before[lang], pages[lang]
        assert HEADING[lang] in new
        assert MASKED[lang].format(n=2) in old and MASKED[lang].format(n=3) in new
        assert PREFIX[lang].format(n=48) in old and PREFIX[lang].format(n=32) in new
        assert PLACE[lang].format(place=place) in new and place not in old
        assert KEPT[lang].format(period=TWENTY_FIVE_MONTHS[lang]) in old
        assert NOT_SHARED[lang] in old


async def test_retention_and_share_links_change_the_statement(zeef: Zeef) -> None:
    storage = zeef.app.state.storage
    site = await example(zeef)
    await storage.set_site_retention(site.id, "90d")
    actor = audit.Actor("test", "-", "test")
    await shares.create(storage, actor, "example.com")
    await shares.create(storage, actor, "example.com", expires_at=int(time.time()) - 10)
    revoked = await shares.create(storage, actor, "example.com")
    await storage.revoke_share(revoked.id, int(time.time()))
    data, pages = await statement(zeef)
    assert data["retention"]["events"] == "90d" and data["retention"]["events_days"] == 90
    assert data["active_share_links"] == 1  # the expired and the revoked ones do not count
    for lang in LANGS:
        assert KEPT[lang].format(period=NINETY_DAYS[lang]) in pages[lang]
        assert SHARED_ONCE[lang] in pages[lang] and NOT_SHARED[lang] not in pages[lang]
    # Share links are counted, never listed: no label, token or address of one.
    assert "/share/" not in str(data) and all("/share" not in page for page in pages.values())


async def test_consent_config_changes_the_cookie_table(zeef: Zeef) -> None:
    storage = zeef.app.state.storage
    site = await example(zeef)
    cookie = DeclaredCookie("_pk_ref", "Remembers the campaign", "6 months", "marketing")
    config = ConsentConfig(
        categories=("necessary", "marketing"),
        controller="Voorbeeld B.V., privacy@example.com",
        policy_url="https://example.com/privacy",
        lifetime_days=90,
        cookies=(cookie,),
    )
    await storage.set_consent_config(site.id, config.checked().to_json(), 0)
    data, pages = await statement(zeef)
    # Analytics is not asked for, so zeef_id is never set and not declared.
    assert [(c["name"], c["set_by"]) for c in data["cookies"]] == [
        ("zeef_consent", "zeef"), ("_pk_ref", "site")
    ]  # fmt: skip
    assert data["consent_lifetime_days"] == 90
    assert data["controller"] == "Voorbeeld B.V., privacy@example.com"
    assert data["policy_url"] == "https://example.com/privacy"
    for lang in LANGS:
        assert "_pk_ref" in pages[lang] and "Remembers the campaign" in pages[lang]
        assert "Voorbeeld B.V., privacy@example.com" in pages[lang]
    assert "90 dagen" in pages["nl"] and "90 días" in pages["es"]
    assert "Een willekeurige ID die uw browser herkent" not in pages["nl"]  # zeef_id's purpose
    page = await zeef.client.get("/privacy/example.com?lang=nl")
    assert 'href="https://example.com/privacy"' in page.text


async def test_configured_values_are_escaped(zeef: Zeef) -> None:
    storage = zeef.app.state.storage
    site = await example(zeef)
    cookie = DeclaredCookie("<b>x</b>", "<script>alert(1)</script>", "1 day", "analytics")
    # Stored as an old or hand-edited row might hold it: not through checked().
    config = ConsentConfig(
        controller="<i>Evil & Co</i>",
        policy_url="javascript:alert(1)",
        cookies=(cookie,),
        texts={"nl": {"reopen": '<img src=x onerror="alert(1)">'}},
    )
    await storage.set_consent_config(site.id, config.to_json(), 0)
    for lang in LANGS:
        text = (await zeef.client.get(f"/privacy/example.com?lang={lang}")).text
        assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
        assert "<i>Evil" not in text and "&lt;i&gt;Evil &amp; Co" in text
        assert "&lt;b&gt;x&lt;/b&gt;" in text
        assert "javascript:" not in text and "<img" not in text
    data = (await zeef.client.get("/privacy/example.com.json")).json()
    assert data["policy_url"] is None


async def test_any_origin_may_frame_this_page_only(zeef: Zeef) -> None:
    page = await zeef.client.get("/privacy/example.com")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors *" in policy and "frame-ancestors 'none'" not in policy
    assert "x-frame-options" not in page.headers
    # Everything else in the policy stays: no inline script, nothing from another host.
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert page.headers["vary"] == "Accept-Language"
    assert page.headers["cache-control"] == "public, max-age=300"
    assert "set-cookie" not in page.headers
    login = await zeef.client.get("/login")
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"


async def test_embedded_page_has_no_header_and_opens_links_in_a_new_tab(zeef: Zeef) -> None:
    plain = (await zeef.client.get("/privacy/example.com")).text
    framed = (await zeef.client.get("/privacy/example.com?embed=true")).text
    assert 'class="site-header"' in plain and 'class="site-header"' not in framed
    link = '<a href="http://localhost:8000/privacy/example.com/my-data"'
    assert f"{link}>" in plain and f'{link} target="_blank" rel="noopener">' in framed
    # The wordmark links nowhere: a visitor has no business on the admin's login page.
    assert '<a class="wordmark"' not in plain


async def test_rights_and_self_service(zeef: Zeef) -> None:
    _, pages = await statement(zeef)
    en = pages["en"]
    for right in ("Access", "Correction", "Erasure", "Portability", "Withdrawal"):
        assert right in en
    assert "change it at any time with the “Cookie settings” button on example.com" in en
    assert "only visitors who accepted analytics cookies have data there" in en
    assert "A full IP address is never stored." in en
    assert "met de knop \u2018Cookie-instellingen\u2019 op example.com" in pages["nl"]
    assert "con el botón «Configuración de cookies» de example.com" in pages["es"]
    assert "Alleen bezoekers die statistiekcookies hebben geaccepteerd" in pages["nl"]

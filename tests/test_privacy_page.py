"""The privacy statement and cookie declaration: /privacy/DOMAIN and /privacy/DOMAIN.json."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from server.accounts import audit
from server.config import Settings
from server.consent import ConsentConfig, DeclaredCookie
from server.sharing import shares

from .conftest import Clock, Zeef, start

LANGS = {"en": "Visit statistics", "nl": "Bezoekstatistieken", "es": "Estadísticas de visitas"}


async def running(settings: Settings, clock: Clock) -> AsyncIterator[Zeef]:
    async for zeef in start(settings, clock):
        if not await zeef.app.state.storage.sites():
            await zeef.add_site("example.com")
        yield zeef


async def facts(settings: Settings, clock: Clock) -> tuple[dict, dict[str, str]]:  # type: ignore[type-arg]
    app = running(settings, clock)
    zeef = await anext(app)
    try:
        data = (await zeef.client.get("/privacy/example.com.json")).json()
        pages = {}
        for lang in LANGS:
            response = await zeef.client.get(f"/privacy/example.com?lang={lang}")
            assert response.status_code == 200
            pages[lang] = response.text
        return data, pages
    finally:
        await app.aclose()


async def test_json_shape_and_headers(zeef: Zeef) -> None:
    response = await zeef.client.get("/privacy/example.com.json")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "max-age" in response.headers["cache-control"]
    data = response.json()
    assert set(data) == {
        "site", "controller", "policy_url", "collected", "purpose", "ip_mask_bytes",
        "full_ip_stored", "data_location", "retention", "third_parties", "active_share_links",
        "consent_lifetime_days", "cookies", "rights", "my_data_url", "cookieless_linkable",
    }  # fmt: skip
    assert data["site"] == "example.com" and data["full_ip_stored"] is False
    assert data["my_data_url"] == "/privacy/example.com/my-data"
    assert [c["name"] for c in data["cookies"]] == ["zeef_consent", "zeef_id"]
    assert set(data["retention"]) == {"events", "events_days", "consent_proof", "keep_aggregates"}


@pytest.mark.parametrize("path", ["/privacy/nowhere.example", "/privacy/nowhere.example.json"])
async def test_unknown_site_is_404(zeef: Zeef, path: str) -> None:
    assert (await zeef.client.get(path)).status_code == 404


async def test_bad_lang_falls_back_to_english(zeef: Zeef) -> None:
    response = await zeef.client.get("/privacy/example.com?lang=xx")
    assert response.status_code == 200 and "Visit statistics" in response.text


async def test_settings_change_the_statement(settings: Settings, clock: Clock) -> None:
    before, pages_before = await facts(settings, clock)
    assert before["ip_mask_bytes"] == 2 and before["data_location"] is None
    changed = replace(settings, ip_mask_bytes=3, data_location="our own servers in Utrecht")
    after, pages = await facts(changed, clock)
    assert after["ip_mask_bytes"] == 3
    assert after["data_location"] == "our own servers in Utrecht"
    for lang, heading in LANGS.items():
        assert heading in pages[lang]
        assert "our own servers in Utrecht" in pages[lang]
        assert "our own servers in Utrecht" not in pages_before[lang]


async def test_retention_and_share_links_change_the_statement(zeef: Zeef) -> None:
    storage = zeef.app.state.storage
    site = next(s for s in await storage.sites() if s.domain == "example.com")
    await storage.set_site_retention(site.id, "90d")
    actor = audit.Actor("test", "-", "test")
    await shares.create(storage, actor, "example.com")
    await shares.create(storage, actor, "example.com", expires_at=int(time.time()) - 10)
    data = (await zeef.client.get("/privacy/example.com.json")).json()
    assert data["retention"]["events"] == "90d" and data["retention"]["events_days"] == 90
    assert data["active_share_links"] == 1
    for lang in LANGS:
        text = (await zeef.client.get(f"/privacy/example.com?lang={lang}")).text
        assert "90d" in text


async def test_configured_values_are_escaped(zeef: Zeef) -> None:
    storage = zeef.app.state.storage
    site = next(s for s in await storage.sites() if s.domain == "example.com")
    cookie = DeclaredCookie("<b>x</b>", "<script>alert(1)</script>", "1 day", "analytics")
    config = ConsentConfig(controller="<i>Evil & Co</i>", cookies=(cookie,))
    await storage.set_consent_config(site.id, config.to_json(), 0)
    text = (await zeef.client.get("/privacy/example.com")).text
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
    assert "<i>Evil" not in text and "&lt;i&gt;Evil &amp; Co" in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text

"""Reports and traffic alerts by e-mail, delivered to a real SMTP server (aiosmtpd) on a free
local port: what arrives, in which language, once, with which figures (the Stats API's), and
the one-click unsubscribe of RFC 8058.

The scheduler is driven by calling its tick with the test clock: no test waits for a minute.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from babel.numbers import format_decimal

from server.accounts import audit
from server.config import ConfigError, Settings, load_settings
from server.mail import subscriptions
from server.mail.smtp import SMTPTarget, parse_smtp_url
from server.sites import get_site

from .conftest import CHROME, FIREFOX, IPHONE, Clock, Zeef, pageview, start
from .live import _free_port
from .test_cli import zeef as cli
from .test_stats_api import get, new_key

PUBLIC = "https://stats.example.org"
A, B, C, D, E = "81.2.69.142", "81.2.69.143", "81.2.69.144", "81.2.69.145", "81.2.69.146"
# Monday 16 March 2026: the weekly report of 9-15 March (2026-W11) is due from 06:00.
MONDAY = datetime(2026, 3, 16, 6, 30, tzinfo=UTC)
MANY = 1230  # pageviews of one long visit: more than a thousand, for the digit grouping


class Inbox:
    """aiosmtpd's handler: every message the server accepted, parsed, with its envelope."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = _free_port("127.0.0.1")
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def settings(settings: Settings, inbox: tuple[Inbox, int]) -> Settings:
    # Plain SMTP to the local server: on a loopback address STARTTLS is used only if offered.
    return replace(settings, smtp_url=f"smtp://127.0.0.1:{inbox[1]}", public_url=PUBLIC,
                   mail_from="Zeef <reports@stats.example.org>")  # fmt: skip


@pytest.fixture
async def week(zeef: Zeef, clock: Clock) -> Zeef:
    """Thursday 5 March (the week before): one visitor. Tuesday 10 March: one visitor with a
    long visit of MANY pageviews. Saturday 14 March: three more (conftest's shop)."""
    clock.now = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
    await zeef.send(pageview("https://example.com/old"), ip=D)
    clock.now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    for n in range(MANY):
        await zeef.send(pageview(f"https://example.com/docs/{n % 3}"), ip=E, ua=FIREFOX)
        clock.advance(seconds=1)
    clock.now = start_at = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
    await zeef.send(pageview(), ip=A)
    await zeef.send(pageview("https://example.com/pricing", r="https://www.google.com/"),
                    ip=B, ua=FIREFOX)  # fmt: skip
    await zeef.send(pageview(), ip=C, ua=IPHONE)
    clock.advance(minutes=5)
    await zeef.send(pageview("https://example.com/pricing"), ip=A)
    clock.now = start_at + timedelta(hours=1)
    await zeef.send(pageview("https://example.com/blog/a"), ip=C, ua=IPHONE)
    await zeef.flush()
    return zeef


async def subscribe(zeef: Zeef, clock: Clock, to: str, **options: Any) -> int:
    storage = zeef.app.state.storage
    site = await get_site(storage, "example.com")
    return await subscriptions.subscribe(storage, site, to, now=int(clock().timestamp()),
                                         actor=audit.CLI, **options)  # fmt: skip


async def tick(zeef: Zeef) -> list[Any]:
    return list(await zeef.app.state.mail.tick())


def parts(message: EmailMessage) -> tuple[str, str, dict[str, bytes]]:
    """The plain text, the HTML, and the inline images by Content-ID."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    images = {
        str(part["Content-ID"]).strip("<>"): part.get_content()
        for part in message.walk()
        if part.get_content_type() == "image/png"
    }
    # Lines end in CRLF on the wire (RFC 5322).
    return text.get_content().replace("\r\n", "\n"), html.get_content(), images


def links_go_only_to_zeef(text: str, html: str, images: dict[str, bytes]) -> None:
    targets = re.findall(r'(?:href|src)="([^"]*)"', html)
    assert targets
    for target in targets:
        if target.startswith("cid:"):
            assert target[4:] in images, target
        else:
            assert target.startswith(PUBLIC + "/") or target == PUBLIC, target
    for url in re.findall(r"\w+://\S+", text):
        assert url.startswith(PUBLIC + "/"), url


# -- the weekly report --------------------------------------------------------------------


async def test_the_weekly_report_arrives_once_in_dutch_with_the_stats_api_figures(
    week: Zeef, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    mails, _port = inbox
    await subscribe(week, clock, "Anne@Example.nl", language="nl")
    clock.now = MONDAY - timedelta(hours=1)  # 05:30: not yet
    assert await tick(week) == [] and mails.messages == []
    clock.now = MONDAY
    [sent] = await tick(week)
    assert (sent.kind, sent.email, sent.period) == ("weekly", "anne@example.nl", "2026-W11")
    assert await tick(week) == []  # once
    [message] = mails.messages
    assert mails.envelopes == [("reports@stats.example.org", ["anne@example.nl"])]
    assert message["To"] == "anne@example.nl"
    assert message["Subject"] == "example.com: weekrapport, 9 mrt 2026 – 15 mrt 2026"
    assert message["Content-Language"] == "nl"
    assert message.get_content_type() == "multipart/alternative"
    text, html, images = parts(message)

    # The figures are the Stats API's for the same days, in Dutch digits.
    key = await new_key(week)
    days = {"site_id": "example.com", "period": "7d", "date": "2026-03-15"}
    api = (await get(week, key, "aggregate", **days, compare="previous_period",
                     metrics="visitors,visits,pageviews,bounce_rate,visit_duration")).json()
    figures = {name: result["value"] for name, result in api["results"].items()}
    assert figures["pageviews"] == MANY + 5 and figures["visitors"] == 4
    nl = {name: format_decimal(value, locale="nl") for name, value in figures.items()}
    assert nl["pageviews"] == "1.235"
    lines = {line.split("  ")[0]: line for line in text.splitlines()}
    assert re.search(rf"Unieke bezoekers +{nl['visitors']} +↑ 300%", lines["Unieke bezoekers"])
    assert re.search(rf"Bezoeken +{nl['visits']} +↑ 400%", lines["Bezoeken"])
    assert re.search(rf"Paginaweergaven +{nl['pageviews']} +↑ ", lines["Paginaweergaven"])
    assert re.search(rf"Bouncepercentage +{nl['bounce_rate']}% +↓ ", text)
    duration = figures["visit_duration"]
    assert f"{duration // 60}m {duration % 60:02d}s" in lines["Bezoekduur"]
    assert f">{nl['pageviews']}</div>" in html
    for api_key, dimension, section in (("source", "visit:source", "Topbronnen"),
                                        ("page", "event:page", "Toppagina's")):  # fmt: skip
        rows = (await get(week, key, "breakdown", **days, property=dimension, limit="5")).json()
        block = text.split(section, 1)[1].split("\n\n", 1)[0]
        shown = [line.strip().rsplit(": ", 1) for line in block.strip().splitlines()]
        assert shown == [[r[api_key], format_decimal(r["visitors"], locale="nl")]
                         for r in rows["results"]]  # fmt: skip
    # HTML and text, an inline chart, and every link back to Zeef only.
    assert '<html lang="nl">' in html and "Unieke bezoekers" in html
    [(cid, png)] = images.items()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and f'src="cid:{cid}"' in html
    links_go_only_to_zeef(text, html, images)
    assert f'href="{PUBLIC}/sites/example.com?period=7d&amp;date=2026-03-15"' in html
    # RFC 8058: the one-click unsubscribe, on Zeef.
    assert re.fullmatch(rf"<{PUBLIC}/unsubscribe/[\w.-]+>", message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    [run] = week.rows("SELECT * FROM mail_runs")
    assert (run["kind"], run["period"], run["attempts"], run["error"]) == (
        "weekly", "2026-W11", 1, None)  # fmt: skip
    assert run["sent_at"] == int(MONDAY.timestamp())
    [row] = week.rows("SELECT * FROM audit_log WHERE action = 'report sent'")
    assert (row["actor"], row["object"]) == (
        "scheduler", "example.com: weekly 2026-W11 to anne@example.nl")  # fmt: skip


"""Reports and traffic alerts by e-mail, delivered to a real SMTP server (aiosmtpd) on a free
local port: what arrives, in which language, once, with which figures (the Stats API's), and
the one-click unsubscribe of RFC 8058.

The scheduler is driven by calling its tick with the test clock: no test waits for a minute.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from babel.numbers import format_decimal
from itsdangerous import URLSafeSerializer

from server.accounts import audit
from server.config import ConfigError, Settings, load_settings
from server.mail import subscriptions
from server.mail.smtp import SMTPTarget, parse_smtp_url
from server.sites import get_site

from .conftest import FIREFOX, IPHONE, Clock, Zeef, pageview, start
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
    assert message["Subject"] == "example.com: weekrapport, 9 mrt 2026 \N{EN DASH} 15 mrt 2026"
    assert message["Content-Language"] == "nl"
    assert message.get_content_type() == "multipart/alternative"
    text, html, images = parts(message)

    # The figures are the Stats API's for the same days, in Dutch digits.
    key = await new_key(week)
    days = {"site_id": "example.com", "period": "7d", "date": "2026-03-15"}
    api = (
        await get(
            week,
            key,
            "aggregate",
            **days,
            compare="previous_period",
            metrics="visitors,visits,pageviews,bounce_rate,visit_duration",
        )
    ).json()
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


async def test_two_workers_at_the_same_moment_send_it_once(
    week: Zeef, settings: Settings, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    await subscribe(week, clock, "ann@example.com", monthly=True)
    await subscribe(week, clock, "bob@example.com")
    clock.now = datetime(2026, 4, 6, 7, 0, tzinfo=UTC)  # a Monday that is in April too
    # A second worker: its own app, connections and scheduler over the same SQLite file.
    async for other in start(settings, clock):
        sent = await asyncio.gather(tick(week), tick(other), tick(week), tick(other))
    done = sorted((s.kind, s.email, s.period) for tick_sent in sent for s in tick_sent)
    assert done == [("monthly", "ann@example.com", "2026-03"),
                    ("weekly", "ann@example.com", "2026-W14"),
                    ("weekly", "bob@example.com", "2026-W14")]  # fmt: skip
    mails = inbox[0].messages
    assert sorted((m["To"], m["Subject"].split(":")[1].split(",")[0]) for m in mails) == [
        ("ann@example.com", " monthly report"), ("ann@example.com", " weekly report"),
        ("bob@example.com", " weekly report")]  # fmt: skip
    runs = week.rows("SELECT kind, period, attempts, sent_at IS NOT NULL AS sent FROM mail_runs")
    assert all(run["attempts"] == 1 and run["sent"] for run in runs) and len(runs) == 3


async def test_after_a_restart_the_missed_monday_is_sent_once(
    week: Zeef, settings: Settings, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    await subscribe(week, clock, "ann@example.com")  # on Saturday 14 March
    clock.now = datetime(2026, 3, 16, 5, 0, tzinfo=UTC)  # the server stops before 06:00
    # The week due before the subscription was made (2-8 March) is not sent.
    assert await tick(week) == []
    # Down for two Mondays (16 and 23 March); back on Tuesday 24 March.
    clock.now = datetime(2026, 3, 24, 12, 0, tzinfo=UTC)
    async for restarted in start(settings, clock):
        [sent] = await tick(restarted)
        assert await tick(restarted) == []
    assert (sent.kind, sent.period) == ("weekly", "2026-W12")  # the latest week, not both
    [message] = inbox[0].messages
    assert message["Subject"] == "example.com: weekly report, 16 Mar 2026 \N{EN DASH} 22 Mar 2026"


async def test_the_monthly_report_goes_on_the_first(
    week: Zeef, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    await week.app.state.storage.set_site_timezone(1, "Europe/Madrid")
    await subscribe(week, clock, "eva@example.es", language="es", weekly=False, monthly=True)
    clock.now = datetime(2026, 4, 1, 3, 30, tzinfo=UTC)  # 05:30 in Madrid (summer time)
    assert await tick(week) == []
    clock.now = datetime(2026, 4, 1, 4, 0, tzinfo=UTC)  # 06:00 in Madrid
    [sent] = await tick(week)
    assert (sent.kind, sent.period) == ("monthly", "2026-03")
    [message] = inbox[0].messages
    assert message["Subject"] == "example.com: informe mensual, marzo de 2026"
    text, html, images = parts(message)
    key = await new_key(week)
    api = (await get(week, key, "aggregate", site_id="example.com", period="month",
                     date="2026-03-01", metrics="visitors,pageviews")).json()  # fmt: skip
    assert api["results"]["pageviews"]["value"] == MANY + 6
    assert re.search(r"Páginas vistas +1\.236 ", text)  # Spanish groups thousands with a dot
    assert "Comparado con el mes anterior" in text and images
    links_go_only_to_zeef(text, html, images)
    assert f'href="{PUBLIC}/sites/example.com?period=month&amp;date=2026-03-01"' in html


async def test_a_failed_send_is_recorded_and_tried_again_by_any_worker(
    week: Zeef, settings: Settings, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    await subscribe(week, clock, "ann@example.com")
    clock.now = MONDAY
    nowhere = replace(settings, smtp_url=f"smtp://127.0.0.1:{_free_port('127.0.0.1')}")
    async for broken in start(nowhere, clock):  # a worker whose mail server is down
        assert await tick(broken) == []
    [run] = week.rows("SELECT * FROM mail_runs")
    assert run["sent_at"] is None and "127.0.0.1" in run["error"]
    assert await tick(week) == []  # claimed a moment ago: not yet
    clock.advance(minutes=16)
    [sent] = await tick(week)
    assert sent.period == "2026-W11" and len(inbox[0].messages) == 1
    [run] = week.rows("SELECT * FROM mail_runs")
    assert (run["attempts"], run["error"]) == (2, None) and run["sent_at"]


# -- traffic alerts -----------------------------------------------------------------------


async def alerts_to(zeef: Zeef, clock: Clock, **options: Any) -> None:
    storage = zeef.app.state.storage
    site = await get_site(storage, "example.com")
    await subscriptions.set_alerts(storage, site, recipients=["ops@example.com"], language="en",
                                   now=int(clock().timestamp()), actor=audit.CLI,
                                   **options)  # fmt: skip


async def visit(zeef: Zeef, *ips: str) -> None:
    for ip in ips:
        await zeef.send(pageview(), ip=ip)
    await zeef.flush()


async def test_a_spike_alert_goes_once_in_12_hours(
    zeef: Zeef, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    await alerts_to(zeef, clock, spike=2, drop=False)
    await visit(zeef, A)
    assert await tick(zeef) == []  # one current visitor
    await visit(zeef, B)
    [sent] = await tick(zeef)
    assert (sent.kind, sent.email) == ("spike", "ops@example.com")
    assert await tick(zeef) == []
    clock.advance(hours=11, minutes=50)
    await visit(zeef, A, B, C)
    assert await tick(zeef) == []  # within 12 hours of the last
    clock.advance(minutes=11)
    await visit(zeef, A, B, C)
    [again] = await tick(zeef)
    assert again.kind == "spike"
    first, second = inbox[0].messages
    assert first["Subject"] == "example.com: 2 visitors right now"
    assert second["Subject"] == "example.com: 3 visitors right now"
    text, html, images = parts(second)
    assert "3 people are on example.com right now" in text
    links_go_only_to_zeef(text, html, images)
    assert [r["object"] for r in zeef.rows("SELECT object FROM audit_log WHERE action = "
                                           "'alert sent'")] == ["example.com: spike to "
                                                                "ops@example.com"] * 2  # fmt: skip
    # One click takes the address off the site's alerts.
    path = second["List-Unsubscribe"].strip("<>").removeprefix(PUBLIC)
    done = await zeef.client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    assert "no longer receives the traffic alerts of example.com" in done.text
    assert zeef.rows("SELECT recipients FROM alert_settings") == [{"recipients": "[]"}]


async def test_a_drop_alert_after_12_hours_without_visitors(
    zeef: Zeef, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    await alerts_to(zeef, clock, spike=None, drop=True)
    assert await tick(zeef) == []  # never a visitor: nothing dropped
    await visit(zeef, A)  # Saturday 10:00
    clock.advance(hours=11, minutes=59)
    assert await tick(zeef) == []
    clock.advance(minutes=2)
    [sent] = await tick(zeef)
    assert sent.kind == "drop"
    clock.advance(hours=13)
    assert await tick(zeef) == []  # still quiet: one alert per silence
    await visit(zeef, B)  # back on Sunday 11:01, then quiet again
    clock.advance(hours=12, minutes=1)
    [again] = await tick(zeef)
    assert again.kind == "drop"
    first, second = inbox[0].messages
    assert first["Subject"] == second["Subject"] == "example.com: no visitors for 12 hours"
    text, _html, _images = parts(first)
    assert "the last visit was on March 14, 2026, 10:00." in text


# -- unsubscribing --------------------------------------------------------------------------


async def test_one_click_unsubscribe_stops_the_reports_and_is_audited(
    zeef: Zeef, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    await subscribe(zeef, clock, "ann@example.com")
    clock.now = MONDAY
    [_sent] = await tick(zeef)
    [message] = inbox[0].messages
    path = message["List-Unsubscribe"].strip("<>").removeprefix(PUBLIC)
    assert path.startswith("/unsubscribe/")
    form = {"content-type": "application/x-www-form-urlencoded"}

    # A link scanner's GET changes nothing; the page asks, with a button that posts.
    page = await zeef.client.get(path)
    assert page.status_code == 200
    assert "Stop sending the reports of example.com to ann@example.com?" in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    # A token changed (another subscription's id, a signature character), or not signed with
    # this server's key, is refused and changes nothing.
    payload, signature = path.rsplit("/", 1)[1].split(".")
    assert payload == "WyJyIiwxXQ"  # ["r", 1]
    other = "WyJyIiwyXQ." + signature  # ["r", 2]
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = f"{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    foreign = URLSafeSerializer("another key", salt="zeef.unsubscribe").dumps(["r", 1])
    for bad in (other, tampered, foreign, "x" * 600, payload):
        for method in ("GET", "POST"):
            refused = await zeef.client.request(
                method, f"/unsubscribe/{bad}", headers=form, content=b"List-Unsubscribe=One-Click"
            )
            assert refused.status_code == 404, (bad, method)
    # RFC 8058: the POST carries List-Unsubscribe=One-Click; anything else is a 400.
    assert (await zeef.client.post(path, headers=form, content=b"x=1")).status_code == 400
    assert zeef.rows("SELECT unsubscribed_at FROM report_subscriptions") == [
        {"unsubscribed_at": None}]  # fmt: skip

    done = await zeef.client.post(path, headers=form, content=b"List-Unsubscribe=One-Click")
    assert done.status_code == 200
    assert "ann@example.com no longer receives the reports of example.com." in done.text
    [row] = zeef.rows("SELECT unsubscribed_at FROM report_subscriptions")
    assert row["unsubscribed_at"] is not None
    again = await zeef.client.post(path, headers=form, content=b"List-Unsubscribe=One-Click")
    assert again.status_code == 200 and "no longer receives" in again.text
    [audited] = zeef.rows("SELECT * FROM audit_log WHERE action = 'unsubscribed'")
    assert audited["object"] == "example.com: reports to ann@example.com"
    assert audited["actor"] == "ann@example.com" and audited["address"] == "10.0.0.0"
    # The next Monday: nothing for an unsubscribed address.
    clock.advance(days=7)
    assert await tick(zeef) == [] and len(inbox[0].messages) == 1


async def test_a_multipart_one_click_post_counts_too(
    zeef: Zeef, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    await subscribe(zeef, clock, "ann@example.com", language="nl")
    clock.now = MONDAY
    await tick(zeef)
    path = inbox[0].messages[0]["List-Unsubscribe"].strip("<>").removeprefix(PUBLIC)
    # The page speaks the mail's language, whatever the browser asks for.
    page = await zeef.client.get(path, headers={"accept-language": "es"})
    assert "De rapporten van example.com niet meer naar ann@example.com sturen?" in page.text
    done = await zeef.client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert done.status_code == 200 and '<html lang="nl">' in done.text
    [row] = zeef.rows("SELECT unsubscribed_at FROM report_subscriptions")
    assert row["unsubscribed_at"] is not None


# -- the command line -----------------------------------------------------------------------


async def test_zeef_report_send_and_the_subscription_commands(
    week: Zeef, settings: Settings, tmp_path: Path, inbox: tuple[Inbox, int]
) -> None:
    mails = inbox[0].messages
    env = {"ZEEF_SMTP_URL": str(settings.smtp_url), "ZEEF_PUBLIC_URL": PUBLIC}

    async def zeef(*args: str, **extra: str) -> Any:
        # In a thread: the app under test (and its database) stays responsive meanwhile.
        return await asyncio.to_thread(cli, tmp_path, *args, **{**env, **extra})

    sent = await zeef("report", "send", "example.com", "--weekly", "--to", "a@b.example",
                      "--date", "2026-03-14")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == ("sent the weekly report of example.com for 2026-03-09 .. 2026-03-15 "
                           "(2026-W11) to a@b.example in en\n")  # fmt: skip
    [message] = mails
    assert message["From"] == "Zeef <zeef@stats.example.org>"  # no ZEEF_MAIL_FROM: the default
    assert message["Subject"] == "example.com: weekly report, 9 Mar 2026 \N{EN DASH} 15 Mar 2026"
    text, _html, _images = parts(message)
    assert re.search(r"Total pageviews +1,235 ", text)
    # No subscription, so nothing to unsubscribe from.
    assert message["List-Unsubscribe"] is None and "/unsubscribe/" not in text

    added = await zeef("report", "add", "example.com", "--to", "Nina@Example.nl", "--lang", "nl",
                       "--weekly", "--monthly")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("subscription 1: nina@example.nl gets the weekly and monthly")
    assert (await zeef("report", "add", "example.com", "--to", "nina@example.nl")).returncode == 1
    [listed] = json.loads((await zeef("report", "list", "example.com", "--json")).stdout)
    assert {k: listed[k] for k in ("id", "email", "language", "weekly", "monthly")} == {
        "id": 1,
        "email": "nina@example.nl",
        "language": "nl",
        "weekly": True,
        "monthly": True,
    }
    # A subscriber's copy comes in its language, with its unsubscribe link; both periods.
    both = await zeef("report", "send", "example.com", "--weekly", "--monthly",
                      "--to", "nina@example.nl", "--date", "2026-03-14")  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert [m["Subject"] for m in mails[1:]] == [
        "example.com: weekrapport, 9 mrt 2026 \N{EN DASH} 15 mrt 2026",
        "example.com: maandrapport, maart 2026"]  # fmt: skip
    assert all(m["List-Unsubscribe"].startswith(f"<{PUBLIC}/unsubscribe/") for m in mails[1:])
    removed = await zeef("report", "remove", "1")
    assert removed.returncode == 0, removed.stderr
    assert json.loads((await zeef("report", "list", "--json")).stdout) == []
    assert (await zeef("report", "remove", "1")).returncode == 1

    alert = await zeef("alert", "set", "example.com", "--spike", "50", "--drop",
                       "--to", "ops@example.com", "--to", "dev@example.com")  # fmt: skip
    assert alert.returncode == 0, alert.stderr
    [shown] = json.loads((await zeef("alert", "show", "--json")).stdout)
    assert (shown["spike_threshold"], shown["drop_alert"], shown["recipients"]) == (
        50, True, ["ops@example.com", "dev@example.com"])  # fmt: skip
    await zeef("alert", "set", "example.com", "--spike", "0", "--no-drop")
    [shown] = json.loads((await zeef("alert", "show", "example.com", "--json")).stdout)
    assert (shown["spike_threshold"], shown["drop_alert"], len(shown["recipients"])) == (
        None, False, 2)  # fmt: skip

    actions = [(r["actor"], r["action"]) for r in week.rows("SELECT * FROM audit_log ORDER BY id")]
    assert actions == [("cli", "report sent"), ("cli", "report subscription added"),
                       ("cli", "report sent"), ("cli", "report sent"), ("cli", "unsubscribed"),
                       ("cli", "alerts changed"), ("cli", "alerts changed")]  # fmt: skip
    # What it refuses, and why.
    nothing = await zeef("report", "send", "example.com", "--to", "a@b.example")
    assert nothing.returncode == 2 and "--weekly" in nothing.stderr
    unset = await zeef("report", "send", "example.com", "--weekly", "--to", "a@b.example",
                       ZEEF_SMTP_URL="")  # fmt: skip
    assert unset.returncode == 2 and "ZEEF_SMTP_URL" in unset.stderr
    wrong = await zeef("report", "list", ZEEF_SMTP_URL="smtp//mail.example.com")
    assert wrong.returncode == 2 and "ZEEF_SMTP_URL" in wrong.stderr
    down = await zeef("report", "send", "example.com", "--weekly", "--to", "a@b.example",
                      ZEEF_SMTP_URL=f"smtp://127.0.0.1:{_free_port('127.0.0.1')}")  # fmt: skip
    assert down.returncode == 1 and "127.0.0.1" in down.stderr
    assert len(mails) == 3


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("smtp://user:pa%40ss%3A@mail.example.com:587",
         SMTPTarget("mail.example.com", 587, "user", "pa@ss:", start_tls=True)),
        ("smtp://mail.example.com", SMTPTarget("mail.example.com", 587, start_tls=True)),
        ("SMTP://mail.example.com:2525", SMTPTarget("mail.example.com", 2525, start_tls=True)),
        ("smtps://me%2Bzeef%40example.com:secret@mail.example.com",
         SMTPTarget("mail.example.com", 465, "me+zeef@example.com", "secret", use_tls=True,
                    start_tls=False)),
        ("smtps://mail.example.com:2465/",
         SMTPTarget("mail.example.com", 2465, use_tls=True, start_tls=False)),
        ("smtp://localhost:25", SMTPTarget("localhost", 25, start_tls=None)),
        ("smtp://127.0.0.1:1025", SMTPTarget("127.0.0.1", 1025, start_tls=None)),
        ("smtp://[::1]", SMTPTarget("::1", 587, start_tls=None)),
    ],
    ids=["starttls-with-login", "starttls-default-port", "scheme-in-capitals", "smtps-login",
         "smtps-port", "local-relay", "loopback", "loopback-v6"],
)  # fmt: skip
def test_the_smtp_url_picks_tls_port_and_login(url: str, target: SMTPTarget) -> None:
    assert parse_smtp_url(url) == target
    assert load_settings({"ZEEF_SMTP_URL": url}, Path("/nonexistent.toml")).smtp_url == url


@pytest.mark.parametrize(
    "url",
    ["http://mail.example.com", "mail.example.com:587", "smtp://", "smtp://:secret@host",
     "smtp://host:port", "smtp://host:99999", "smtp://host/inbox", "smtp://host?tls=no"],
)  # fmt: skip
def test_a_wrong_smtp_url_stops_the_start_with_its_name(url: str) -> None:
    with pytest.raises(ConfigError, match="ZEEF_SMTP_URL"):
        load_settings({"ZEEF_SMTP_URL": url}, Path("/nonexistent.toml"))


def test_the_sender_is_checked() -> None:
    good = load_settings({"ZEEF_MAIL_FROM": "Zeef <reports@example.com>"}, Path("/x.toml"))
    assert good.mail_from == "Zeef <reports@example.com>"
    for bad in ("reports", "Zeef <reports@example.com>\r\nBcc: x@example.com"):
        with pytest.raises(ConfigError, match="ZEEF_MAIL_FROM"):
            load_settings({"ZEEF_MAIL_FROM": bad}, Path("/x.toml"))


async def test_a_report_links_to_its_share_link_while_it_opens(
    week: Zeef, clock: Clock, inbox: tuple[Inbox, int]
) -> None:
    from server.sharing import shares

    storage = week.app.state.storage
    share = await shares.create(storage, audit.CLI, "example.com", label="Board")
    await subscribe(week, clock, "ann@example.com", share_id=share.id)
    clock.now = datetime(2026, 3, 16, 7, 0, tzinfo=UTC)  # Monday
    await tick(week)
    [mail] = inbox[0].messages
    text, html, images = parts(mail)
    token = shares.token(week.app.state.secret_key, share)
    assert f"{PUBLIC}/share/{token}" in text and f'href="{PUBLIC}/share/{token}"' in html
    links_go_only_to_zeef(text, html, images)
    # Revoked, the next report links to the dashboard instead (which asks to log in).
    await shares.revoke(storage, audit.CLI, share, clock().timestamp())
    clock.now = datetime(2026, 3, 23, 7, 0, tzinfo=UTC)
    await tick(week)
    text = parts(inbox[0].messages[-1])[0]
    assert "/share/" not in text and f"{PUBLIC}/sites/example.com" in text


# -- what a reader sees (last: Playwright's sync API holds an event loop while it is open) --

HOSTILE = "/<script>alert(1)</script>"


def test_the_report_mail_in_chromium(browser: Any, screenshots: Path, tmp_path: Path) -> None:
    """The HTML part as a mail client shows it (the chart's cid: as the image itself), wide
    and on a phone. Look at the screenshots after a change to the mail."""
    from server.events import Site
    from server.mail import alerts, periods, report
    from server.mail.letters import Letters

    site = Site(1, "example.com", "Europe/Amsterdam", 0)
    period = periods.latest_due("weekly", MONDAY, ZoneInfo("Europe/Amsterdam"))
    found = report.Figures(
        site, period, report.query_for(site, period),
        totals={"visitors": 1234, "visits": 1620, "pageviews": 4321, "bounce_rate": 41,
                "visit_duration": 95},
        before={"visitors": 1100, "visits": 1700, "pageviews": 4321, "bounce_rate": 45,
                "visit_duration": 80},
        series=[{"date": f"2026-03-{day:02d}", "visitors": v}
                for day, v in zip(range(9, 16), (180, 210, 0, 260, 190, 120, 95), strict=True)],
        sources=[{"value": v, "visitors": n} for v, n in (
            ("Direct / None", 610), ("Google", 402), ("news.ycombinator.com", 121),
            (HOSTILE, 60), ("DuckDuckGo", 41))],
        pages=[{"value": v, "visitors": n} for v, n in (("/", 700), ("/pricing", 388),
               ("/blog/a-very-long-title-that-goes-on-and-on-and-on-until-it-is-cut", 150),
               (HOSTILE, 77), ("/docs", 20))],
    )  # fmt: skip
    links = report.Links(PUBLIC, unsubscribe=f"{PUBLIC}/unsubscribe/abc")
    letter = report.compose(Letters(), found, "nl", links)
    html = letter.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    [(cid, (_name, png))] = letter.images.items()
    shown = html.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(png).decode())
    page_file = tmp_path / "report.html"
    page_file.write_text(shown, encoding="utf-8")
    drop = alerts.Alert("drop", site, last_seen=MONDAY - timedelta(hours=13))
    alert_file = tmp_path / "alert.html"
    alert_file.write_text(alerts.compose(Letters(), drop, "es", links).html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 760, "height": 500})
    try:
        page.goto(alert_file.as_uri())
        assert page.get_by_text("Nadie ha visitado example.com en 12 horas").is_visible()
        page.screenshot(path=str(screenshots / "mail-alert-es.png"), full_page=True)
    finally:
        page.close()
    for name, width in (("mail-report-nl", 760), ("mail-report-nl-phone", 380)):
        page = browser.new_page(viewport={"width": width, "height": 900})
        try:
            page.goto(page_file.as_uri())
            assert page.locator("script").count() == 0
            assert page.get_by_text("Unieke bezoekers").is_visible()
            assert page.get_by_text("1.234", exact=True).is_visible()
            image = page.locator("img")
            assert image.evaluate("img => img.complete && img.naturalWidth") == 1120
            page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
            # Nothing wider than the screen: a phone reads it without scrolling sideways.
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            page.close()

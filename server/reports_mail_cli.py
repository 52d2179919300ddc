"""`zeef report send|add|list|remove` and `zeef alert set|show`: reports and traffic alerts by
e-mail, from the operator's terminal (audit.CLI). Mail goes through ZEEF_SMTP_URL."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import sites
from .accounts import audit
from .accounts.users import normalise_email
from .config import load_settings
from .keys import load_keys
from .mail import periods, subscriptions
from .mail.outbox import Outbox, Recipient
from .mail.smtp import Mailer, MailError, sender
from .mail.unsubscribe import Target
from .storage import Storage, SubscriptionExists
from .web.translations import LANGUAGES


def add_commands(commands: Any, with_storage: Callable[..., Any]) -> None:
    group = commands.add_parser("report", help="a site's reports by e-mail")
    sub = group.add_subparsers(title="report commands")

    send = sub.add_parser(
        "send",
        help="send a report now",
        description="Sends the report of the last complete week (Monday to Sunday) or month, "
        "in the site's time zone, through ZEEF_SMTP_URL. An address with a subscription gets "
        "it in its language, with its unsubscribe link.",
    )
    send.add_argument("domain")
    _kinds(send)
    send.add_argument("--to", action="append", required=True, metavar="EMAIL",
                      help="a recipient; repeat for more")  # fmt: skip
    send.add_argument("--lang", choices=LANGUAGES, help="the language (default: the "
                      "subscription's, else en)")  # fmt: skip
    send.add_argument(
        "--date",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the week or month this day is in, instead of the last complete one",
    )
    send.set_defaults(run=with_storage(_send))

    add = sub.add_parser("add", help="subscribe an address to a site's reports")
    add.add_argument("domain")
    add.add_argument("--to", required=True, metavar="EMAIL")
    _kinds(add, "(default: weekly)")
    add.add_argument("--lang", choices=LANGUAGES, default="en")
    add.add_argument("--share", type=int, metavar="ID", help="link the report to this share link")
    add.set_defaults(run=with_storage(_add))

    listing = sub.add_parser("list", help="list subscriptions, of one site or of all")
    listing.add_argument("domain", nargs="?")
    listing.add_argument("--all", action="store_true", help="ended subscriptions too")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=with_storage(_list))

    remove = sub.add_parser("remove", help="end a subscription (by the id `report list` shows)")
    remove.add_argument("id", type=int)
    remove.set_defaults(run=with_storage(_remove))

    alert = commands.add_parser("alert", help="a site's traffic alerts by e-mail")
    alerts = alert.add_subparsers(title="alert commands")
    change = alerts.add_parser(
        "set",
        help="set a site's traffic alerts",
        description="A spike alert goes when the current visitors (the last 5 minutes) reach "
        "--spike; a drop alert when no visitor came for 12 hours. Each at most once in 12 "
        "hours. What is not given stays as it was.",
    )
    change.add_argument("domain")
    change.add_argument("--spike", type=int, metavar="N", help="current visitors; 0 turns it off")
    change.add_argument("--drop", action=argparse.BooleanOptionalAction, default=None,
                        help="alert after 12 hours without a visitor")  # fmt: skip
    change.add_argument("--to", action="append", metavar="EMAIL",
                        help="the recipients (replacing the list); repeat for more")  # fmt: skip
    change.add_argument("--lang", choices=LANGUAGES)
    change.set_defaults(run=with_storage(_alert_set))
    show = alerts.add_parser("show", help="show traffic alerts, of one site or of all")
    show.add_argument("domain", nargs="?")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=with_storage(_alert_show))


def _kinds(parser: argparse.ArgumentParser, note: str = "") -> None:
    parser.add_argument("--weekly", action="store_true", help=f"the weekly report {note}")
    parser.add_argument("--monthly", action="store_true", help="the monthly report")


async def _send(storage: Storage, args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.smtp_url:
        print("zeef: set ZEEF_SMTP_URL (smtp://user:pass@host:587) to send mail", file=sys.stderr)
        return 2
    kinds = [kind for kind in periods.KINDS if getattr(args, kind)]
    if not kinds:
        print("zeef: report send: say --weekly, --monthly or both", file=sys.stderr)
        return 2
    site = await sites.get_site(storage, args.domain)
    emails = [normalise_email(email) for email in args.to]
    mailer = Mailer(settings.smtp_url, sender(settings.public_url, settings.mail_from))
    outbox = Outbox(storage, mailer, settings.public_url, lambda: datetime.now(UTC))
    outbox.secret = (await load_keys(storage, settings)).secret
    subscribed = {row["email"]: row for row in await storage.report_subscriptions(site.id)}
    zone = ZoneInfo(site.timezone)
    failed = 0
    for kind in kinds:
        if args.date is not None:
            period = periods.containing(kind, args.date, zone)
        else:
            period = periods.latest_due(kind, datetime.now(UTC), zone, hour=0)
        for email in emails:
            row = subscribed.get(email)
            recipient = Recipient(
                email,
                args.lang or (row["language"] if row else "en"),
                Target(subscription_id=row["id"]) if row else None,
                row["share_id"] if row else None,
            )
            try:
                await outbox.report(site, period, recipient, audit.CLI)
            except MailError as exc:
                print(f"zeef: {kind} report of {site.domain} to {email}: {exc}", file=sys.stderr)
                failed += 1
                continue
            print(f"sent the {kind} report of {site.domain} for {period.first} .. {period.last} "
                  f"({period.key}) to {email} in {recipient.language}")  # fmt: skip
    return 1 if failed else 0


async def _add(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    weekly = args.weekly or not args.monthly
    try:
        subscription_id = await subscriptions.subscribe(
            storage, site, args.to, language=args.lang, weekly=weekly, monthly=args.monthly,
            share_id=args.share, now=int(time.time()), actor=audit.CLI,
        )  # fmt: skip
    except SubscriptionExists:
        print(f"zeef: {args.to} gets the reports of {site.domain} already; "
              "`zeef report remove ID` first to change what it gets", file=sys.stderr)  # fmt: skip
        return 1
    kinds = " and ".join(k for k, on in (("weekly", weekly), ("monthly", args.monthly)) if on)
    print(f"subscription {subscription_id}: {args.to.strip().lower()} gets the {kinds} report "
          f"of {site.domain} in {args.lang}")  # fmt: skip
    return 0


async def _list(storage: Storage, args: argparse.Namespace) -> int:
    site_id = (await sites.get_site(storage, args.domain)).id if args.domain else None
    rows = await storage.report_subscriptions(site_id, everyone=args.all)
    listing = [
        {"id": r["id"], "domain": r["domain"], "email": r["email"], "language": r["language"],
         "weekly": r["weekly"], "monthly": r["monthly"], "share_id": r["share_id"],
         "created_at": r["created_at"], "unsubscribed_at": r["unsubscribed_at"]}
        for r in rows
    ]  # fmt: skip
    if args.json:
        print(json.dumps(listing))
        return 0
    for row in listing:
        kinds = ",".join(k for k in ("weekly", "monthly") if row[k])
        ended = "\tunsubscribed" if row["unsubscribed_at"] else ""
        print(f"{row['id']}\t{row['domain']}\t{row['email']}\t{kinds}\t{row['language']}{ended}")
    return 0


async def _remove(storage: Storage, args: argparse.Namespace) -> int:
    row = await storage.report_subscription(args.id)
    if row is None:
        print(f"zeef: no subscription {args.id}; `zeef report list` shows them", file=sys.stderr)
        return 1
    site = await sites.get_site(storage, row["domain"])
    if not await subscriptions.unsubscribe(storage, row, site, int(time.time()), audit.CLI):
        print(f"zeef: subscription {args.id} has ended already", file=sys.stderr)
        return 1
    print(f"removed subscription {args.id}: {row['email']} no longer gets {site.domain}'s reports")
    return 0


async def _alert_set(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    found = await storage.alert_settings(site.id)
    current = found[0] if found else None
    spike = current["spike_threshold"] if current else None
    if args.spike is not None:
        if args.spike < 0:
            print("zeef: --spike is a number of current visitors (0: off)", file=sys.stderr)
            return 2
        spike = args.spike or None
    row = await subscriptions.set_alerts(
        storage, site, spike=spike,
        drop=args.drop if args.drop is not None else bool(current and current["drop_alert"]),
        recipients=args.to if args.to is not None else (current["recipients"] if current else []),
        language=args.lang or (current["language"] if current else "en"),
        now=int(time.time()), actor=audit.CLI,
    )  # fmt: skip
    print(_alert_line(site.domain, row))
    if not row["recipients"]:
        print("nobody gets them yet: add recipients with --to EMAIL", file=sys.stderr)
    return 0


async def _alert_show(storage: Storage, args: argparse.Namespace) -> int:
    site_id = (await sites.get_site(storage, args.domain)).id if args.domain else None
    rows = await storage.alert_settings(site_id)
    if args.json:
        keys = ("domain", "spike_threshold", "drop_alert", "recipients", "language",
                "spike_sent", "drop_sent")  # fmt: skip
        print(json.dumps([{key: row[key] for key in keys} for row in rows]))
        return 0
    for row in rows:
        print(_alert_line(row["domain"], row))
    return 0


def _alert_line(domain: str, row: dict[str, Any]) -> str:
    spike = f"spike at {row['spike_threshold']} current visitors" if row["spike_threshold"] else (
        "no spike alert")  # fmt: skip
    drop = "drop after 12 h without visitors" if row["drop_alert"] else "no drop alert"
    return (f"{domain}: {spike}, {drop}, to {', '.join(row['recipients']) or 'nobody'} "
            f"in {row['language']}")  # fmt: skip

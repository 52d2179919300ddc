"""`zeef consent ...`: configure a site's banner, export and look up the proof of consent."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, date, datetime

from . import consent, reports, sites
from .events import ConsentRecord
from .storage import Storage


def add_commands(commands: argparse._SubParsersAction, with_storage) -> None:  # type: ignore[type-arg, no-untyped-def]
    group = commands.add_parser("consent", help="the consent banner and its records")
    sub = group.add_subparsers(title="consent commands")

    configure = sub.add_parser("configure", help="set a site's banner (unset options are kept)")
    configure.add_argument("domain")
    configure.add_argument("--categories", help="comma-separated, e.g. analytics,marketing")
    configure.add_argument("--revision", type=int, help="bump to ask every visitor again")
    configure.add_argument(
        "--lifetime", help="how long a decision holds: 6m (default), 13m at most"
    )
    configure.add_argument("--policy-url", help="the privacy statement")
    configure.add_argument("--controller", help="who processes the data, as shown in the banner")
    configure.add_argument(
        "--require-consent",
        action=argparse.BooleanOptionalAction,
        help="count only visitors who accepted analytics (default: count cookielessly)",
    )
    configure.add_argument(
        "--consent-mode-v2", action=argparse.BooleanOptionalAction, help="Google Consent Mode v2"
    )
    configure.add_argument(
        "--cookie",
        action="append",
        metavar="CATEGORY:NAME:LIFETIME:PURPOSE",
        help="declare a cookie (repeat; replaces the declared list); NAME may end in *",
    )
    configure.add_argument(
        "--text", action="append", metavar="LANG:KEY=TEXT", help="override a banner text"
    )
    configure.add_argument("--json", action="store_true", help="print the resulting config")
    configure.set_defaults(run=with_storage(_configure))

    log = sub.add_parser("log", help="export the site's consent records")
    log.add_argument("domain")
    log.add_argument("--since", type=date.fromisoformat, help="YYYY-MM-DD (UTC)")
    log.add_argument("--csv", action="store_true", help="CSV with one column per category")
    log.set_defaults(run=with_storage(_log))

    show = sub.add_parser("show", help="every record of one consent ID")
    show.add_argument("consent_id")
    show.set_defaults(run=with_storage(_show))

    delete = sub.add_parser("delete", help="delete every record of one consent ID")
    delete.add_argument("consent_id")
    delete.set_defaults(run=with_storage(_delete))

    rates = sub.add_parser("rates", help="decisions and acceptance per day")
    rates.add_argument("domain")
    rates.add_argument(
        "--period", choices=[p for p in reports.PERIODS if p != "custom"], default="30d"
    )
    rates.add_argument("--json", action="store_true")
    rates.set_defaults(run=with_storage(_rates))


async def _configure(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    config = await consent.site_config(storage, site)
    changes: dict[str, object] = {}
    if args.categories is not None:
        names = [name.strip().lower() for name in args.categories.split(",") if name.strip()]
        changes["categories"] = tuple(names)
    if args.revision is not None:
        changes["revision"] = args.revision
    if args.lifetime is not None:
        changes["lifetime_days"] = consent.parse_lifetime(args.lifetime)
    for option in ("policy_url", "controller", "require_consent", "consent_mode_v2"):
        if getattr(args, option) is not None:
            changes[option] = getattr(args, option)
    if args.cookie is not None:
        changes["cookies"] = tuple(consent.parse_cookie(text) for text in args.cookie)
    if args.text:
        texts = {lang: dict(values) for lang, values in config.texts.items()}
        for item in args.text:
            lang, _, rest = item.partition(":")
            key, equals, value = rest.partition("=")
            if not equals or not key:
                raise ValueError(f"--text is LANG:KEY=TEXT, not {item!r}")
            texts.setdefault(lang.strip(), {})[key.strip()] = value
        changes["texts"] = texts
    updated = replace(config, **changes).checked()  # type: ignore[arg-type]
    await storage.set_consent_config(site.id, updated.to_json(), int(time.time()))
    if args.json:
        print(updated.to_json())
    else:
        print(
            f"{site.domain}: categories {', '.join(updated.categories)}; revision "
            f"{updated.revision}; consent lasts {updated.lifetime_days} days"
            + ("; counts only consented visitors" if updated.require_consent else "")
        )
    return 0


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def _log(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    since = (
        int(datetime.combine(args.since, datetime.min.time(), UTC).timestamp()) if args.since else 0
    )
    records = await storage.consent_records(site.id, since)
    config = await consent.site_config(storage, site)
    categories = list(dict.fromkeys([*config.categories, *(c for r in records for c in r.choices)]))
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        fixed = ["consent_id", "created_at", "action", "revision", "language", "texts_hash",
                 "path", "gpc"]  # fmt: skip
        writer.writerow(fixed + categories)
        for record in records:
            row = [
                record.consent_id,
                _when(record.created_at),
                record.action,
                record.revision,
                record.language,
                record.texts_hash,
                record.path,
                str(record.gpc).lower(),
            ]
            row += [_choice(record, category) for category in categories]
            writer.writerow(row)
    else:
        for record in records:
            print(json.dumps(_as_json(record)))
    return 0


def _choice(record: ConsentRecord, category: str) -> str:
    value = record.choices.get(category)
    return "" if value is None else str(value).lower()


def _as_json(record: ConsentRecord) -> dict[str, object]:
    data = asdict(record)
    data["created_at"] = _when(record.created_at)
    data.pop("site_id")
    return data


async def _show(storage: Storage, args: argparse.Namespace) -> int:
    records = await storage.consent_records_by_id(args.consent_id.strip().lower())
    if not records:
        print(f"zeef: no consent record {args.consent_id!r}", file=sys.stderr)
        return 1
    for record in records:
        print(json.dumps(_as_json(record)))
    return 0


async def _delete(storage: Storage, args: argparse.Namespace) -> int:
    deleted = await storage.delete_consent_records(args.consent_id.strip().lower())
    if not deleted:
        print(f"zeef: no consent record {args.consent_id!r}", file=sys.stderr)
        return 1
    print(f"deleted {deleted} record(s) of {args.consent_id}")
    return 0


async def _rates(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    query = reports.Query.for_period(site, args.period)
    days = await storage.consent_rates(site.id, query.start_ts, query.end_ts)
    if args.json:
        print(json.dumps(days))
        return 0
    for day in days:
        shares = ", ".join(
            f"{category} {accepted / day['decisions']:.0%}"
            for category, accepted in day["accepted"].items()
            if category != "necessary"
        )
        print(f"{day['day']}  {day['decisions']} decisions  {shares}")
    return 0

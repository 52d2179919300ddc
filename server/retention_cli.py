"""`zeef purge`, `zeef customer set`, `zeef site delete`, `zeef customer delete`: retention and
deletion from the command line. `zeef site set DOMAIN --retention` is in __main__ with the
site's other settings."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from . import purge, retention, sites
from .accounts import audit, customers
from .config import Settings
from .storage import Storage


def add_commands(
    commands: Any, with_storage: Callable[..., Any], settings_command: Callable[..., Any]
) -> None:
    cleanup = commands.add_parser(
        "purge",
        help="delete everything past its retention period (docs/retention.md)",
        description="Deletes, per site and table, the rows older than their retention period, "
        "then returns the freed pages and empties the WAL. The server does the same every "
        "hour; this runs it now.",
    )
    cleanup.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    cleanup.add_argument("--json", action="store_true")
    cleanup.add_argument(
        "--vacuum",
        action="store_true",
        help="also rewrite the file once so freed pages can be returned from then on "
        "(databases made before Zeef 0.19; holds the write lock while it runs)",
    )
    cleanup.set_defaults(run=settings_command(_purge))


def add_customer_commands(sub: Any, with_storage: Callable[..., Any]) -> None:
    change = sub.add_parser("set", help="a customer's retention periods")
    change.add_argument("name")
    change.add_argument(
        "--retention",
        metavar="PERIOD",
        help="how long its sites' data is kept: 90d, 6w, 13m, 2y; 'default' for "
        f"the install's ({retention.DEFAULT_RETENTION} unless ZEEF_RETENTION says otherwise)",
    )
    change.add_argument(
        "--consent-proof",
        metavar="PERIOD",
        help="how long consent records outlive the consent, to prove it; 'default' for the "
        "install's",
    )
    change.add_argument(
        "--keep-aggregates",
        action=argparse.BooleanOptionalAction,
        help="keep daily counts (no visitor-level data) after raw events are deleted",
    )
    change.set_defaults(run=with_storage(_customer_set))
    remove = sub.add_parser(
        "delete", help="delete a customer: its sites and all their data, its users and keys"
    )
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="needed: this cannot be undone")
    remove.set_defaults(run=with_storage(_customer_delete))


def add_site_commands(site: Any, with_storage: Callable[..., Any]) -> None:
    remove = site.add_parser("delete", help="delete a site and all its data")
    remove.add_argument("domain")
    remove.add_argument("--yes", action="store_true", help="needed: this cannot be undone")
    remove.set_defaults(run=with_storage(_site_delete))


def parse_setting(text: str) -> str | None:
    """A period as stored ('13m'), or None for 'default'; ValueError in words."""
    if text.strip().lower() == "default":
        return None
    return str(retention.Period.parse(text))


async def _purge(settings: Settings, storage: Storage, args: argparse.Namespace) -> int:
    report = await purge.purge(storage, settings, dry_run=args.dry_run, force=True)
    size = await storage.vacuum() if args.vacuum and not args.dry_run else None
    if args.json:
        figures = report.as_json()
        if size is not None:
            figures["file_bytes"] = size
        print(json.dumps(figures))
        return 1 if report.skipped else 0
    if report.skipped:
        print("zeef: another purge is running (the server's job); try again later",
              file=sys.stderr)  # fmt: skip
        return 1
    verb = "would delete" if report.dry_run else "deleted"
    if not report.total:
        print(f"Nothing is past its retention period: {verb} no rows.")
    for domain, tables in report.sites.items():
        cut = report.cutoffs[domain]
        print(f"{domain} (kept: {cut['retention']}, from {cut['events_before'][:10]})")
        for table, count in tables.items():
            print(f"  {table:<20} {verb} {count}")
    for table, count in report.install.items():
        print(f"install  {table:<20} {verb} {count}")
    if size is not None:
        print(f"Vacuumed: the file is {size:,} bytes, and returns freed pages from now on.")
    return 0


async def _customer_set(storage: Storage, args: argparse.Namespace) -> int:
    customer = await customers.get_customer(storage, args.name)
    changes: dict[str, Any] = {}
    if args.retention is not None:
        changes["retention"] = parse_setting(args.retention)
    if args.consent_proof is not None:
        changes["consent_proof"] = parse_setting(args.consent_proof)
    if args.keep_aggregates is not None:
        changes["keep_aggregates"] = int(args.keep_aggregates)
    if not changes:
        print("zeef: customer set: give --retention, --consent-proof or --keep-aggregates",
              file=sys.stderr)  # fmt: skip
        return 2
    await storage.set_customer_retention(customer["id"], **changes)
    said = ", ".join(f"{k.replace('_', ' ')} {_words(v)}" for k, v in changes.items())
    await audit.record(storage, audit.CLI, "customer.retention", f"{customer['name']}: {said}",
                       customer_id=customer["id"])  # fmt: skip
    print(f"{customer['name']}: {said}")
    return 0


def _words(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, int):
        return "on" if value else "off"
    return str(value)


async def _site_delete(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    if not args.yes:
        print(f"zeef: this deletes {site.domain} and every event, visit, consent record and "
              "setting of it, for good. Add --yes to do it.", file=sys.stderr)  # fmt: skip
        return 2
    deleted = await purge.delete_site(storage, site, audit.CLI)
    print(f"deleted {site.domain}: {sum(deleted.values())} rows")
    return 0


async def _customer_delete(storage: Storage, args: argparse.Namespace) -> int:
    customer = await customers.get_customer(storage, args.name)
    owned = [s for s in await storage.sites() if s.customer_id == customer["id"]]
    if not args.yes:
        print(f"zeef: this deletes customer {customer['name']}, its {len(owned)} site(s) with "
              "all their data, its users and their API keys, for good. Add --yes to do it.",
              file=sys.stderr)  # fmt: skip
        return 2
    count, rows, users = await purge.delete_customer(storage, customer, audit.CLI)
    print(f"deleted customer {customer['name']}: {count} site(s), {rows} rows, "
          f"{users} user(s)")  # fmt: skip
    return 0

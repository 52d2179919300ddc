"""`zeef subject export|erase --site DOMAIN --visitor ID|--consent ID`: a data subject's rows on
one site, for an operator answering a request (server/subjects.py, docs/subject-rights.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import sites, subjects
from .accounts import audit
from .config import Settings
from .keys import load_keys
from .storage import Storage


def add_commands(commands: Any, settings_command: Callable[..., Any]) -> None:
    group = commands.add_parser(
        "subject", help="a visitor's data: export or erase it (docs/subject-rights.md)"
    )
    sub = group.add_subparsers(title="subject commands")
    export = sub.add_parser(
        "export",
        help="everything a site holds under a visitor ID or consent ID",
        description="JSON (one document, on stdout or in --out) or CSV (a ZIP of one CSV file "
        "per table, --out needed). Audited, without the ID.",
    )
    _who(export)
    export.add_argument("--format", choices=["json", "csv"], default="json")
    export.add_argument("--out", metavar="FILE", type=Path)
    export.set_defaults(run=settings_command(_export))
    erase = sub.add_parser(
        "erase",
        help="delete everything a site holds under a visitor ID or consent ID",
        description="Without --yes, says what would be deleted. Audited, without the ID.",
    )
    _who(erase)
    erase.add_argument("--yes", action="store_true", help="needed: this cannot be undone")
    erase.set_defaults(run=settings_command(_erase))


def _who(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", metavar="DOMAIN", required=True)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--visitor", metavar="ID", help="the zeef_id cookie's value")
    who.add_argument("--consent", metavar="ID", help="the consent ID (the zeef_consent cookie)")


async def _prepare(
    settings: Settings, storage: Storage, args: argparse.Namespace
) -> tuple[Any, subjects.Subject, bytes]:
    subject = subjects.Subject(args.visitor, args.consent)  # ValueError: exit 2
    site = await sites.get_site(storage, args.site)
    keys = await load_keys(storage, settings)
    return site, subject, keys.visitor


async def _export(settings: Settings, storage: Storage, args: argparse.Namespace) -> int:
    if args.format == "csv" and args.out is None:
        print("zeef: subject export --format csv writes a ZIP: give --out FILE", file=sys.stderr)
        return 2
    site, subject, key = await _prepare(settings, storage, args)
    document = await subjects.export(storage, site, subject, key, audit.CLI)
    if args.format == "csv":
        args.out.write_bytes(subjects.as_zip(document))
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if args.out is None:
            sys.stdout.write(text)
            return 0
        args.out.write_text(text, encoding="utf-8")
    found = subjects.counts(document["tables"])
    print(f"wrote {args.out}: " + ", ".join(f"{t} {n}" for t, n in found.items()))
    return 0


async def _erase(settings: Settings, storage: Storage, args: argparse.Namespace) -> int:
    site, subject, key = await _prepare(settings, storage, args)
    if not args.yes:
        found = subjects.counts(await subjects.find(storage, site, subject, key))
        listed = ", ".join(f"{t} {n}" for t, n in found.items())
        print(f"zeef: this deletes from {site.domain}: {listed}, for good. Add --yes to do it.",
              file=sys.stderr)  # fmt: skip
        return 2
    deleted = await subjects.erase(storage, site, subject, key, audit.CLI)
    print(f"erased from {site.domain}: " + ", ".join(f"{t} {n}" for t, n in deleted.items()))
    return 0

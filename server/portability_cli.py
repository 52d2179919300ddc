"""`zeef export DOMAIN --out FILE` and `zeef import FILE [--as NEWDOMAIN]`: a site's data from
one Zeef to another (docs/export-format.md). Refusals exit 2 and write nothing."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import portability, sites
from .accounts import audit, customers
from .config import Settings
from .storage import Storage, database_path, open_storage
from .storage.sqlite_portability import SiteTaken


def add_commands(commands: Any, with_storage: Callable[..., Any]) -> None:
    export = commands.add_parser(
        "export",
        help="write all of a site's data to a file (docs/export-format.md)",
        description="Events, visits, consent log, settings, goals, consented visitors, drops, "
        "consent configuration, and the daily sums kept after a purge, as JSON Lines in a "
        "ZIP with a manifest of row counts and SHA-256 checksums. Safe beside a running "
        "server: it reads one snapshot.",
    )
    export.add_argument("domain")
    export.add_argument("--out", required=True, metavar="FILE", help="the ZIP to write")
    export.add_argument("--progress", action="store_true",
                        help="show progress on stderr even when it is not a terminal")  # fmt: skip
    export.set_defaults(run=with_storage(_export))

    load = commands.add_parser(
        "import",
        help="load a site exported by `zeef export` into this Zeef",
        description="Checks every member against the manifest before anything is written, "
        "then adds the site and all its rows in one transaction. Refuses (exit 2) a damaged "
        "or altered file, a newer schema, or a domain this Zeef has already.",
    )
    load.add_argument("file", type=Path)
    load.add_argument("--as", dest="domain", metavar="NEWDOMAIN",
                      help="register the site under this domain instead")  # fmt: skip
    load.add_argument("--customer", metavar="NAME",
                      help="the customer that owns it (needed once there are any)")  # fmt: skip
    load.add_argument("--progress", action="store_true",
                      help="show progress on stderr even when it is not a terminal")  # fmt: skip
    load.set_defaults(run=_import)


def _progress(label: str, args: argparse.Namespace) -> portability.Progress:
    return portability.Progress(label, sys.stderr, args.progress or sys.stderr.isatty())


def _refuse(message: str) -> int:
    print(f"zeef: {message}", file=sys.stderr)
    return 2


async def _export(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    out = Path(args.out)
    if out.exists():
        return _refuse(f"{out} exists; give another --out or remove it")
    if not out.parent.is_dir():
        return _refuse(f"no directory {out.parent} to write {out.name} in")
    manifest = await portability.export_site(storage, site, out, _progress("export", args))
    rows = sum(entry["rows"] for entry in manifest["files"].values())
    await audit.record(storage, audit.CLI, "site.export", f"{site.domain} to {out} ({rows} rows)",
                       customer_id=site.customer_id)  # fmt: skip
    print(f"exported {site.domain}: {rows:,} rows to {out}")
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_load(settings, args))
    except portability.ExportRefused as exc:
        return _refuse(f"import refused, nothing written: {exc}")
    except (customers.UnknownCustomer, ValueError) as exc:
        return _refuse(str(exc))


async def _load(settings: Settings, args: argparse.Namespace) -> int:
    manifest = portability.read_manifest(args.file)
    domain = sites.normalise_domain(args.domain or manifest["site"])
    database = database_path(settings.database)
    customer_id = None
    # The cheap refusals first, before a large file is read; checked again in the transaction.
    if database.is_file():
        storage = open_storage(database, must_exist=True)
        try:
            await storage.migrate()
            if await sites.find_site(storage, domain) is not None:
                hint = "" if args.domain else "; give --as NEWDOMAIN to import it under another"
                return _refuse(f"this Zeef has a site {domain} already{hint}")
            customer_id = await _owner(storage, args.customer)
        finally:
            await storage.close()
    elif args.customer is not None:
        return _refuse(f"no customer {args.customer!r}: this Zeef has none yet")
    # Staged beside the database: the same disk and the same protection as the data itself,
    # and not a /tmp that may be smaller than the site. Deleted whatever happens.
    database.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".zeef-import-", dir=database.parent))
    try:
        staged = scratch / "stage.sqlite3"
        progress = _progress("import", args)
        portability.stage(args.file, staged, progress)
        if progress.enabled:
            # The copy shows no bar: it is one statement a table, inside the transaction.
            print(f"import: checked; writing {progress.total:,} rows in one transaction",
                  file=sys.stderr)  # fmt: skip
        # A database this import creates is removed again if the copy fails: a refusal
        # leaves no file where there was none.
        created = not database.is_file()
        try:
            said = await _copy(database, staged, domain, customer_id, args.file.name, manifest)
        except BaseException:
            if created:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{database}{suffix}").unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"imported {said}")
    return 0


async def _copy(
    database: Path,
    staged: Path,
    domain: str,
    customer_id: int | None,
    name: str,
    manifest: dict[str, Any],
) -> str:
    storage = open_storage(database)
    try:
        await storage.migrate()
        try:
            copied = await storage.import_staged(staged, domain, customer_id)
        except SiteTaken:
            raise portability.ExportRefused(f"this Zeef has a site {domain} already") from None
        except sqlite3.IntegrityError as exc:
            # Rolled back: a row the target's constraints refuse (a forged or foreign file).
            raise portability.ExportRefused(
                f"a row does not fit this Zeef's tables ({exc})"
            ) from None
        rows = sum(n for table, n in copied.items() if table != "site_id") + 1
        said = f"{domain} from {name} ({rows} rows)"
        if domain != manifest["site"]:
            said += f", exported as {manifest['site']}"
        await audit.record(storage, audit.CLI, "site.import", said, customer_id=customer_id)
        return said
    finally:
        await storage.close()


async def _owner(storage: Storage, name: str | None) -> int | None:
    if name is not None:
        return int((await customers.get_customer(storage, name))["id"])
    if await storage.customers():
        # As `zeef site add`: a site of no customer would be readable by none of them.
        raise ValueError(
            "this install has customers; say which one owns the site with --customer NAME "
            "(`zeef customer list` shows them)"
        )
    return None

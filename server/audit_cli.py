"""`zeef audit [--json] [--logs PATH] [--ssl-certfile FILE --ssl-keyfile FILE]`: the deployment
audit (server/deployment_audit.py). `zeef audit-log` (the audit trail) is a different command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from . import deployment_audit
from .config import Settings
from .storage import Storage

# Exit status: 0 no promise broken (warnings allowed), 1 one is broken, 2 the audit itself
# could not run (bad flags, no database, an error while reading).
TOOL_ERROR = 2


def add_commands(commands: Any, settings_command: Callable[..., Any]) -> None:
    audit = commands.add_parser(
        "audit",
        help="check this deployment keeps its privacy promises (docs/audit.md)",
        description="Prints a report a DPO can file. Exit status 0: no promise broken "
        "(warnings allowed); 1: a promise is broken; 2: the audit could not run.",
    )
    audit.add_argument("--json", action="store_true")
    audit.add_argument(
        "--logs",
        metavar="PATH",
        action="append",
        default=[],
        help="a log file or directory to scan for full IP addresses; repeatable",
    )
    audit.add_argument(
        "--ssl-certfile",
        metavar="FILE",
        help="the certificate `zeef serve --ssl-certfile` is given, when Zeef speaks HTTPS itself",
    )
    audit.add_argument("--ssl-keyfile", metavar="FILE", help="its private key")
    audited = settings_command(_audit)

    def run(settings: Settings, args: argparse.Namespace) -> int:
        # Checked before the database is opened: a missing one is the audit failing to run
        # (2), not a broken promise (1), which `zeef`'s usual "no database" answer would say.
        if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
            return _cannot("--ssl-certfile and --ssl-keyfile go together")
        missing = [path for path in args.logs if not Path(path).exists()]
        if missing:
            return _cannot(f"no log file or directory {missing[0]}")
        if not Path(settings.database).is_file():
            return _cannot(
                f"no database at {settings.database}; point ZEEF_DATABASE at the server's"
            )
        try:
            status: int = audited(settings, args)
        except Exception as exc:
            # Opening the database failed (not a database, locked, unreadable): the audit's
            # failure, which must not read as a broken promise (exit 1, as a traceback would).
            return _cannot(deployment_audit.masked(f"{exc.__class__.__name__}: {exc}",
                                                   settings.ip_mask_bytes))  # fmt: skip
        return status

    audit.set_defaults(run=run)


def _cannot(reason: str) -> int:
    print(f"zeef audit: the audit could not run: {reason}", file=sys.stderr)
    return TOOL_ERROR


async def _audit(settings: Settings, storage: Storage, args: argparse.Namespace) -> int:
    tls = None
    if args.ssl_certfile is not None:
        tls = (Path(args.ssl_certfile), Path(args.ssl_keyfile))
    now = int(time.time())
    try:
        findings = await deployment_audit.run(
            settings, storage, [Path(p) for p in args.logs], tls=tls, now=now
        )
        facts = deployment(settings, now, len(await storage.sites()))
    except Exception as exc:
        # Any failure to read is the tool's, not a finding. Its message could quote a stored
        # value: addresses in it are masked as the report masks them.
        text = f"{exc.__class__.__name__}: {exc}"
        return _cannot(deployment_audit.masked(text, settings.ip_mask_bytes))
    status = deployment_audit.exit_status(findings)
    if args.json:
        report = {
            "ok": status == 0,
            "deployment": facts,
            "findings": [asdict(f) for f in findings],
        }
        print(json.dumps(report, indent=2))
    else:
        print(text_report(facts, findings))
    return status


def deployment(settings: Settings, now: int, sites: int) -> dict[str, object]:
    """The facts at the head of the report."""
    try:
        version = metadata.version("zeef")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    return {
        "version": version,
        "date": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "database": str(Path(settings.database).resolve()),
        "data_location": settings.data_location,
        "public_url": settings.public_url,
        "sites": sites,
    }


def text_report(facts: dict[str, object], findings: Sequence[deployment_audit.Finding]) -> str:
    """The report as a DPO files it: the deployment's facts, a line per check, the verdict."""
    location = facts["data_location"] or (
        "not set (ZEEF_DATA_LOCATION): the privacy statement cannot say where"
    )
    lines = [
        "Zeef deployment audit",
        f"Version:        {facts['version']}",
        f"Date:           {facts['date']}",
        f"Database:       {facts['database']}",
        f"Data location:  {location}",
        f"Public URL:     {facts['public_url']}",
        f"Sites:          {facts['sites']}",
        "",
    ]
    lines += [f"[{f.level.upper():4}] {f.check}: {f.message}" for f in findings]
    broken = [f.check for f in findings if f.level == "fail"]
    warned = [f.check for f in findings if f.level == "warn"]
    if broken:
        verdict = f"{len(broken)} promise(s) broken: {', '.join(broken)}"
    else:
        verdict = "no promise broken"
    if warned:
        verdict += f"; {len(warned)} warning(s): {', '.join(warned)}"
    return "\n".join([*lines, "", "Result: " + verdict])

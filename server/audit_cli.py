"""`zeef audit [--json] [--logs PATH]`: the deployment audit (server/deployment_audit.py).
`zeef audit-log` (the audit trail) is a different command and is untouched."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import deployment_audit
from .config import Settings
from .storage import Storage


def add_commands(commands: Any, settings_command: Callable[..., Any]) -> None:
    audit = commands.add_parser(
        "audit",
        help="check this deployment keeps its privacy promises (docs/audit.md)",
        description="Prints a report a DPO can file; exit status 1 when a promise is broken.",
    )
    audit.add_argument("--json", action="store_true")
    audit.add_argument(
        "--logs",
        metavar="PATH",
        action="append",
        default=[],
        help="a log file or directory to scan for full IP addresses; repeatable",
    )
    audit.set_defaults(run=settings_command(_audit))


async def _audit(settings: Settings, storage: Storage, args: argparse.Namespace) -> int:
    findings = await deployment_audit.run(settings, storage, [Path(p) for p in args.logs])
    status = deployment_audit.exit_status(findings)
    if args.json:
        print(json.dumps({"ok": status == 0, "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        print("Zeef deployment audit")
        for finding in findings:
            print(f"[{finding.level.upper():4}] {finding.check}: {finding.message}")
        print("Result: " + ("no promise broken" if status == 0 else "a promise is broken"))
    return status

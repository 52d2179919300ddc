"""`zeef audit`: checks a deployment keeps its privacy promises and says so in words a DPO can
file. Each check gives pass, warn or fail; only a fail breaks a promise (docs/audit.md).

This version: IP masking configured, no full IP in the stored bytes (database, its WAL, the
given logs), the secret key not a default, and no row past its retention. Consent, HTTPS,
GeoIP age and share links are still to come (see docs/audit.md)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import purge
from .config import Settings
from .privacy import truncate_ip
from .storage import Storage

Level = Literal["pass", "warn", "fail"]

# Dotted quads not glued to another digit, dot or word character: "1.2.3.4.5" and
# "v1.2.3.4" are not addresses. Preceded by "/" is a product version ("Chrome/120.0.1.5").
_IPV4 = re.compile(rb"(?<![\w./])((?:\d{1,3}\.){3}\d{1,3})(?![\w.])")
# Candidate IPv6 literals: hex groups with at least two colons; ipaddress decides.
_IPV6 = re.compile(rb"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})(?![\w:])")
_DEFAULT_KEYS = {"", "changeme", "change-me", "secret", "zeef", "default"}


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str
    details: dict[str, object] = field(default_factory=dict)


def full_addresses(data: bytes, mask_bytes: int) -> list[str]:
    """The full (unmasked) IP literals in `data`, each already masked for printing: an address
    whose masked part is non-zero was never truncated. Loopback and unspecified are skipped."""
    mask = max(mask_bytes, 1)
    found: list[str] = []
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(data):
            try:
                address = ipaddress.ip_address(match.group(1).decode("ascii"))
            except ValueError:
                continue
            if address.is_loopback or address.is_unspecified:
                continue
            masked = truncate_ip(address, mask)
            if str(address) != masked:
                found.append(masked)
    return found


def scan_files(paths: Iterable[Path], mask_bytes: int) -> tuple[dict[str, list[str]], int]:
    """Per file, the masked forms of the full addresses in it; and the bytes read."""
    hits: dict[str, list[str]] = {}
    total = 0
    for path in paths:
        data = path.read_bytes()
        total += len(data)
        found = full_addresses(data, mask_bytes)
        if found:
            hits[str(path)] = found
    return hits, total


def log_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and every file under the directories named."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
    return files


def check_ip_mask(settings: Settings) -> Finding:
    if settings.ip_mask_bytes < 1:
        return Finding(
            "ip_mask",
            "fail",
            "IP masking is off (ip_mask_bytes = 0): full addresses would reach the enrichment "
            "step; set ZEEF_IP_MASK_BYTES to 1 or more.",
        )
    return Finding(
        "ip_mask",
        "pass",
        f"IP addresses are truncated: the last {settings.ip_mask_bytes} byte(s) of IPv4 "
        "(and the matching IPv6 bits) are zeroed before anything else sees them.",
        {"ip_mask_bytes": settings.ip_mask_bytes},
    )


def check_stored_ips(settings: Settings, logs: Iterable[Path]) -> Finding:
    database = Path(settings.database)
    stored = [p for p in (database, Path(f"{database}-wal")) if p.is_file()]
    given = log_files(logs)
    hits, scanned = scan_files([*stored, *given], settings.ip_mask_bytes)
    files = [str(p) for p in (*stored, *given)]
    details: dict[str, object] = {
        "files": files,
        "bytes": scanned,
        "hits": {name: len(found) for name, found in hits.items()},
    }
    if hits:
        where = "; ".join(
            f"{name}: {len(found)} (e.g. {found[0]}/…)" for name, found in hits.items()
        )
        return Finding(
            "stored_ips",
            "fail",
            f"{sum(len(f) for f in hits.values())} full IP address(es) found, shown masked: "
            f"{where}.",
            details,
        )
    return Finding(
        "stored_ips",
        "pass",
        f"No full IP address in {len(files)} file(s), {scanned} bytes scanned.",
        details,
    )


def check_secret_key(settings: Settings) -> Finding:
    key = settings.secret_key
    if key is None:
        return Finding(
            "secret_key",
            "pass",
            "The secret key was generated at first start and is kept in the database.",
        )
    if key.strip().lower() in _DEFAULT_KEYS or len(key) < 16:
        return Finding(
            "secret_key",
            "fail",
            "ZEEF_SECRET_KEY is a default or shorter than 16 characters; set a long random "
            "one (or unset it to use the generated key).",
        )
    return Finding("secret_key", "pass", "ZEEF_SECRET_KEY is set and not a known default.")


async def check_retention(settings: Settings, storage: Storage) -> Finding:
    """A dry purge counts, per site and table, the rows older than their cutoff: any is a row
    kept past its promised period."""
    report = await purge.purge(storage, settings, dry_run=True, by="audit")
    overdue = {site: tables for site, tables in report.sites.items() if tables}
    details: dict[str, object] = {"cutoffs": report.cutoffs, "overdue": overdue}
    if report.install:
        details["install_overdue"] = report.install
    if overdue or report.install:
        where = "; ".join(
            f"{site}: " + ", ".join(f"{n} in {t}" for t, n in tables.items())
            for site, tables in {
                **overdue,
                **({"install": report.install} if report.install else {}),
            }.items()
        )
        return Finding(
            "retention",
            "fail",
            f"Rows older than their retention period: {where}. Run `zeef purge`.",
            details,
        )
    return Finding(
        "retention",
        "pass",
        # "*" holds the install-wide tables' cutoff, not a site.
        f"Every row of {len(set(report.cutoffs) - {'*'})} site(s), and of the install-wide "
        "tables, is within its retention period.",
        details,
    )


async def run(settings: Settings, storage: Storage, logs: Iterable[Path] = ()) -> list[Finding]:
    return [
        check_ip_mask(settings),
        check_stored_ips(settings, logs),
        check_secret_key(settings),
        await check_retention(settings, storage),
    ]


def exit_status(findings: Iterable[Finding]) -> int:
    """1 when any promise is broken (a fail), else 0; warnings do not change it."""
    return 1 if any(f.level == "fail" for f in findings) else 0

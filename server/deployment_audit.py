"""`zeef audit`: checks a deployment keeps its privacy promises and says so in words a DPO can
file. Each check gives pass, warn or fail; only a fail breaks a promise (docs/audit.md).

Checks, in report order: IP masking, no full IP in the stored bytes (database, WAL, given logs),
the secret key, retention (per site and table), consent configured where the banner declares
cookies, HTTPS, the GeoIP database's age, share links without expiry, and the last purge run."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from . import consent, enrich, purge
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
DAY = 86_400
# MaxMind builds GeoLite2 twice a week and DB-IP monthly: past five weeks an update was missed;
# past three months addresses moved between providers and countries are wrong often enough
# that a statement's "country" is no longer what it claims to be.
GEOIP_WARN_DAYS = 35
GEOIP_FAIL_DAYS = 90
# A link that never ends, made over a year ago: likely forgotten, still showing the statistics.
SHARE_MAX_AGE_DAYS = 365


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


def masked(text: str, mask_bytes: int) -> str:
    """`text` with every full IP address in it replaced by its masked form."""
    data = text.encode("utf-8", "replace")
    for pattern in (_IPV4, _IPV6):
        data = pattern.sub(lambda m: _masked_literal(m.group(1), mask_bytes), data)
    return data.decode("utf-8", "replace")


def _masked_literal(literal: bytes, mask_bytes: int) -> bytes:
    try:
        address = ipaddress.ip_address(literal.decode("ascii"))
    except ValueError:
        return literal
    return truncate_ip(address, max(mask_bytes, 1)).encode("ascii")


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


def scan_elsewhere(paths: Sequence[Path], mask_bytes: int) -> tuple[dict[str, list[str]], int]:
    """scan_files in a child process. The database's bytes cannot be read in this one while it
    holds the database open: closing any descriptor of the file drops every POSIX lock this
    process has on it (sqlite.org/howtocorrupt.html, 2.2), and a reader of the server's
    storage then kept an old snapshot (seen in tests/test_deployment_audit.py)."""
    if not paths:
        return {}, 0
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from server.deployment_audit import scan_files\n"
        "print(json.dumps(scan_files([Path(p) for p in sys.argv[2:]], int(sys.argv[1]))))"
    )
    # This checkout's package, whatever the child's working directory puts on its path.
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code, str(mask_bytes), *map(str, paths)],
        capture_output=True, text=True, check=True, timeout=3600,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    hits, total = json.loads(result.stdout)
    return dict(hits), int(total)


def check_stored_ips(settings: Settings, logs: Iterable[Path]) -> Finding:
    database = Path(settings.database)
    stored = [p for p in (database, Path(f"{database}-wal")) if p.is_file()]
    given = log_files(logs)
    hits, scanned = scan_elsewhere(stored, settings.ip_mask_bytes)
    logged, read = scan_files(given, settings.ip_mask_bytes)
    hits.update(logged)
    scanned += read
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


async def check_retention(settings: Settings, storage: Storage, now: int) -> Finding:
    """A dry purge counts, per site and table, the rows older than their cutoff: any is a row
    kept past its promised period."""
    report = await purge.purge(storage, settings, now=now, dry_run=True, by="audit")
    overdue = {site: tables for site, tables in report.sites.items() if tables}
    details: dict[str, object] = {"cutoffs": report.cutoffs, "overdue": overdue}
    if report.install:
        details["install_overdue"] = report.install
    if overdue or report.install:
        parts = []
        for site, tables in overdue.items():
            cut = report.cutoffs.get(site, {})
            rows = ", ".join(f"{n} row(s) in {table}" for table, n in tables.items())
            parts.append(
                f"{site} (kept {cut.get('retention', '?')}, so nothing from before "
                f"{cut.get('events_before', '?')[:10]}; consent records from before "
                f"{cut.get('consent_records_before', '?')[:10]}): {rows}"
            )
        if report.install:
            rows = ", ".join(f"{n} row(s) in {t}" for t, n in report.install.items())
            parts.append(f"install-wide (before {report.cutoffs['*']['audit_log'][:10]}): {rows}")
        return Finding(
            "retention",
            "fail",
            f"Rows older than their retention period: {'; '.join(parts)}. Run `zeef purge`.",
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


def declared_cookies(config: consent.ConsentConfig) -> list[str]:
    """The optional cookies a banner with `config` lists: zeef_id when it offers analytics,
    and every cookie the operator declared (checked() keeps those out of `necessary`)."""
    names = ["zeef_id"] if "analytics" in config.categories else []
    return names + [cookie.name for cookie in config.cookies if cookie.category != "necessary"]


async def check_consent(storage: Storage, now: int) -> Finding:
    """A banner that asks for cookies must say who asks and where the privacy statement is
    (GDPR art. 13: identity of the controller; consent is only valid when informed)."""
    missing: dict[str, list[str]] = {}
    configured: list[str] = []
    unused: list[str] = []
    for site in await storage.sites():
        stored = await storage.consent_config(site.id)
        if stored is None:
            # Never configured: the default banner (necessary + analytics, so zeef_id). It
            # declares cookies only where it runs, and where it runs visitors answer it.
            if not await storage.consent_rates(site.id, 0, now + 1):
                unused.append(site.domain)
                continue
            missing[site.domain] = ["no banner configuration (the defaults are shown)"]
            continue
        config = consent.ConsentConfig.from_json(stored)
        if not declared_cookies(config):
            configured.append(site.domain)
            continue
        lacks = []
        if not (config.controller or "").strip():
            lacks.append("no controller")
        if not (config.policy_url or "").strip():
            lacks.append("no privacy statement link")
        if lacks:
            missing[site.domain] = lacks
        else:
            configured.append(site.domain)
    details: dict[str, object] = {
        "configured": configured,
        "not_configured": missing,
        "no_banner": unused,
    }
    if missing:
        where = "; ".join(f"{site}: {', '.join(why)}" for site, why in missing.items())
        return Finding(
            "consent",
            "fail",
            f"{len(missing)} site(s) ask for cookie consent without saying who asks or where the "
            f"privacy statement is: {where}. Set both with `zeef consent configure DOMAIN "
            "--controller NAME --policy-url URL` (or the site's consent settings page).",
            details,
        )
    parts = []
    if configured:
        parts.append(
            f"{len(configured)} site(s) with a banner name the controller and the privacy "
            "statement (or declare no optional cookie)"
        )
    if unused:
        parts.append(
            f"{len(unused)} site(s) have no banner in use (no configuration, no decision "
            "recorded: cookieless counting only)"
        )
    return Finding("consent", "pass", "; ".join(parts or ["No sites"]) + ".", details)


def _local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_problem(certfile: Path, keyfile: Path) -> str | None:
    """Why this certificate and key would not serve HTTPS, or None."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # No password: `zeef serve` takes an unencrypted key only.
        context.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except OSError as exc:  # ssl.SSLError among them
        return str(getattr(exc, "reason", None) or exc.strerror or exc)
    return None


def check_https(settings: Settings, tls: tuple[Path, Path] | None) -> Finding:
    """HTTPS by Zeef itself (the certificate `zeef serve --ssl-certfile` is given, which only
    the audit's own flags can tell it) or by a proxy in ZEEF_TRUSTED_PROXIES, whose
    X-Forwarded-Proto is then believed (server/headers.py is_https)."""
    url = settings.public_url
    proxies = [str(network) for network in settings.trusted_proxies]
    details: dict[str, object] = {
        "public_url": url,
        "trusted_proxies": proxies,
        "certfile": str(tls[0]) if tls else None,
    }
    plain_public = url.startswith("http://") and not _local(url)
    if tls is not None:
        problem = tls_problem(*tls)
        if problem:
            return Finding(
                "https",
                "fail",
                f"The certificate {tls[0]} and key {tls[1]} do not load ({problem}): "
                "`zeef serve` could not speak HTTPS with them.",
                details,
            )
        if plain_public:
            return Finding(
                "https",
                "warn",
                f"Zeef serves HTTPS itself (certificate {tls[0]}), but ZEEF_PUBLIC_URL is {url}: "
                "set it to the https:// address, so the links Zeef prints and mails use it.",
                details,
            )
        return Finding(
            "https", "pass", f"Zeef serves HTTPS itself, with the certificate {tls[0]}.", details
        )
    if proxies:
        if plain_public:
            return Finding(
                "https",
                "fail",
                f"ZEEF_PUBLIC_URL is {url}: people reach Zeef, and open the set-password links "
                "it mails, over plain HTTP. Set it to the https:// address the proxy serves.",
                details,
            )
        if _local(url):
            # docker/compose.yaml sets the proxy's address even when no proxy runs.
            return Finding(
                "https",
                "warn",
                f"A trusted proxy is set ({', '.join(proxies)}), but ZEEF_PUBLIC_URL is {url}: "
                "set it to the https:// address the proxy serves.",
                details,
            )
        return Finding(
            "https",
            "pass",
            f"HTTPS through a trusted proxy ({', '.join(proxies)}): its X-Forwarded-Proto is "
            "believed, and answers to requests that came over HTTPS carry "
            "Strict-Transport-Security. The proxy's own TLS set-up is not checked here.",
            details,
        )
    if _local(url):
        return Finding(
            "https",
            "warn",
            f"Set up for this machine only (ZEEF_PUBLIC_URL is {url}): before anyone else "
            "reaches it, serve HTTPS with `zeef serve --ssl-certfile --ssl-keyfile` (and give "
            "the audit the same flags), or put a TLS proxy in front and list its address in "
            "ZEEF_TRUSTED_PROXIES.",
            details,
        )
    return Finding(
        "https",
        "fail",
        f"No HTTPS known for {url}: no certificate was given to the audit and "
        "ZEEF_TRUSTED_PROXIES is empty, so a proxy's X-Forwarded-Proto is not believed "
        "(no Strict-Transport-Security, session cookies not limited to HTTPS). Set "
        "ZEEF_TRUSTED_PROXIES to the TLS proxy's address (172.30.80.10/32 with "
        "docker/compose.yaml's Caddy), or serve with --ssl-certfile and --ssl-keyfile and run "
        "`zeef audit` with the same two flags.",
        details,
    )


def check_geoip(settings: Settings, now: int) -> Finding:
    path = settings.geoip_db
    if path is None:
        return Finding(
            "geoip",
            "pass",
            "No GeoIP database is configured (ZEEF_GEOIP_DB): no country, region or city is "
            "derived from addresses.",
            {"path": None},
        )
    try:
        built, database_type = enrich.geoip_build(path)
    except (OSError, ValueError) as exc:
        return Finding(
            "geoip",
            "fail",
            f"ZEEF_GEOIP_DB is {path}, which cannot be read as a MaxMind-format database "
            f"({exc.__class__.__name__}); the server cannot start with it.",
            {"path": str(path)},
        )
    age = (now - built) // DAY
    details: dict[str, object] = {
        "path": str(path),
        "database_type": database_type,
        "built": _date(built),
        "age_days": age,
    }
    said = f"The GeoIP database {path} ({database_type}) was built on {_date(built)}, "
    said += f"{age} day(s) ago"
    if age > GEOIP_FAIL_DAYS:
        return Finding(
            "geoip",
            "fail",
            f"{said}: over {GEOIP_FAIL_DAYS} days, so locations in reports are often wrong. "
            "Update it (e.g. MaxMind's geoipupdate) or unset ZEEF_GEOIP_DB.",
            details,
        )
    if age > GEOIP_WARN_DAYS:
        return Finding(
            "geoip",
            "warn",
            f"{said}: over {GEOIP_WARN_DAYS} days, so at least one update was missed. "
            "Schedule its update (e.g. geoipupdate weekly).",
            details,
        )
    return Finding("geoip", "pass", said + ".", details)


async def check_shares(storage: Storage, now: int) -> Finding:
    """Links that never end and were made over a year ago. Listed by site, date and ID (what
    `zeef share revoke ID` takes); the token, which opens the statistics, never."""
    old: list[dict[str, object]] = []
    active = 0
    for site in await storage.sites():
        for share in await storage.shares_of_site(site.id):
            if share["revoked_at"] is not None:
                continue
            if share["expires_at"] is not None and share["expires_at"] <= now:
                continue
            active += 1
            if share["expires_at"] is None and share["created_at"] < now - SHARE_MAX_AGE_DAYS * DAY:
                old.append(
                    {"site": site.domain, "id": share["id"], "created": _date(share["created_at"])}
                )
    details: dict[str, object] = {"active": active, "old_without_expiry": old}
    if old:
        where = "; ".join(f"{s['site']}: link {s['id']}, made {s['created']}" for s in old)
        return Finding(
            "shares",
            "fail",
            f"{len(old)} share link(s) without an end date were made over a year ago and still "
            f"show statistics: {where}. Give each an end (`zeef share set ID --expires 30d`) or "
            "revoke it (`zeef share revoke ID`).",
            details,
        )
    return Finding(
        "shares",
        "pass",
        f"{active} share link(s) active; none without an end date is older than a year.",
        details,
    )


async def check_last_purge(settings: Settings, storage: Storage, now: int) -> Finding:
    """The server's job purges every purge_interval; two intervals without a finished run
    means it is not running (no server, or one that keeps failing)."""
    last = await storage.last_purge()
    window = 2 * settings.purge_interval
    finished = int(last["finished_at"]) if last else None
    details: dict[str, object] = {
        "last_finished": _stamp(finished) if finished is not None else None,
        "by": last["by"] if last else None,
        "purge_interval": settings.purge_interval,
    }
    if finished is not None and finished >= now - window:
        return Finding(
            "last_purge",
            "pass",
            f"The last purge finished {_stamp(finished)} (by {details['by']}), "
            f"within twice the purge interval ({window} s).",
            details,
        )
    sites = await storage.sites()
    has_data = False
    for site in sites:
        if await storage.first_visit(site.id) is not None or await storage.consent_rates(
            site.id, 0, now + 1
        ):
            has_data = True
            break
    if not has_data:
        return Finding(
            "last_purge",
            "pass",
            "No visits or consent records stored yet, so nothing for the purge to do"
            + (f"; it last finished {_stamp(finished)}." if finished is not None else "."),
            details,
        )
    when = f"last finished {_stamp(finished)}" if finished is not None else "never finished"
    return Finding(
        "last_purge",
        "warn",
        f"The purge {when}, not within twice the purge interval ({window} s), while data is "
        "stored: keep `zeef serve` running (its job purges), or run `zeef purge` from cron.",
        details,
    )


def _stamp(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _date(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).date().isoformat()


async def run(
    settings: Settings,
    storage: Storage,
    logs: Iterable[Path] = (),
    tls: tuple[Path, Path] | None = None,
    now: int | None = None,
) -> list[Finding]:
    """Every check, in report order. `now` (Unix time) is the clock ages are judged by."""
    moment = int(time.time()) if now is None else now
    return [
        check_ip_mask(settings),
        check_stored_ips(settings, logs),
        check_secret_key(settings),
        await check_retention(settings, storage, moment),
        await check_consent(storage, moment),
        check_https(settings, tls),
        check_geoip(settings, moment),
        await check_shares(storage, moment),
        await check_last_purge(settings, storage, moment),
    ]


def exit_status(findings: Sequence[Finding]) -> int:
    """1 when any promise is broken (a fail), else 0; warnings do not change it."""
    return 1 if any(f.level == "fail" for f in findings) else 0

"""The `zeef` command: serve, site add/list, stats, drops."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from . import (
    apikeys_cli,
    audit_cli,
    consent_cli,
    customers_cli,
    goals_cli,
    keys,
    portability_cli,
    reports,
    reports_mail_cli,
    retention_cli,
    shares_cli,
    sites,
    stats_cli,
    subjects_cli,
    users_cli,
)
from .accounts import audit, customers
from .accounts.users import UnknownUser
from .config import ConfigError, Settings, load_settings
from .events import DropReason
from .storage import NoDatabase, SiteExists, Storage, open_storage


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"zeef: {exc}", file=sys.stderr)
        return 2
    result: int = args.run(settings, args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zeef", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--ssl-certfile", metavar="FILE", help="serve HTTPS with this PEM certificate (chain)"
    )
    serve.add_argument("--ssl-keyfile", metavar="FILE", help="its private key (PEM, unencrypted)")
    serve.set_defaults(run=_serve)

    site = commands.add_parser("site", help="register and list sites").add_subparsers(
        title="site commands"
    )
    add = site.add_parser("add", help="register a site")
    add.add_argument("domain")
    add.add_argument("--timezone", default="UTC", help="IANA name, e.g. Europe/Amsterdam")
    add.add_argument("--customer", help="the customer that owns it (needed once there are any)")
    add.set_defaults(run=_with_storage(_site_add, create=True))
    change = site.add_parser("set", help="change a site's settings")
    change.add_argument("domain")
    change.add_argument(
        "--dnt",
        choices=["honour", "ignore"],
        help="honour Do Not Track and Global Privacy Control (the default), or count anyway",
    )
    change.add_argument("--customer", help="move the site to this customer")
    change.add_argument(
        "--retention",
        metavar="PERIOD",
        help="how long this site's data is kept (90d, 6w, 13m, 2y), over its customer's; "
        "'default' to follow the customer's again",
    )
    change.set_defaults(run=_with_storage(_site_set))
    listing = site.add_parser("list", help="list sites")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_with_storage(_site_list))
    retention_cli.add_site_commands(site, _with_storage)

    customers_cli.add_commands(commands, _with_storage)
    users_cli.add_commands(commands, _with_storage)
    consent_cli.add_commands(commands, _with_storage)
    apikeys_cli.add_commands(commands, _with_storage)
    goals_cli.add_commands(commands, _with_storage)
    shares_cli.add_commands(commands, _with_storage)
    reports_mail_cli.add_commands(commands, _with_storage)
    retention_cli.add_commands(commands, _with_storage, _with_settings)
    audit_cli.add_commands(commands, _with_settings)
    subjects_cli.add_commands(commands, _with_settings)
    portability_cli.add_commands(commands, _with_storage)

    stats_cli.add_command(commands, _with_storage)

    drops = commands.add_parser("drops", help="events not stored for a site, by reason")
    drops.add_argument("domain")
    drops.add_argument(
        "--period", choices=[p for p in reports.PERIODS if p != "custom"], default="30d"
    )
    drops.add_argument("--json", action="store_true")
    drops.set_defaults(run=_with_storage(_drops))

    key = commands.add_parser("key", help="rotate the secret key or the visitor key")
    rotate = key.add_subparsers(title="key commands").add_parser(
        "rotate",
        help="replace a key with a fresh random one",
        description="secret: the key for sessions and signed links (rotate it after a leak); "
        "returning visitors are still recognised. visitor: the key of consented visitors' "
        "hashes; rotating it forgets every returning visitor.",
    )
    rotate.add_argument("name", choices=["secret", "visitor"])
    rotate.add_argument("--yes", action="store_true", help="needed to rotate the visitor key")
    rotate.set_defaults(run=_key_rotate)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from .logs import logging_config

    problem = _tls_problem(args.ssl_certfile, args.ssl_keyfile)
    if problem:
        print(f"zeef: {problem}", file=sys.stderr)
        return 2
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="auto",
        http="auto",
        # Ours logs truncated addresses; uvicorn's would print full ones.
        access_log=False,
        # X-Forwarded-For is read by privacy.client_ip, only from ZEEF_TRUSTED_PROXIES.
        proxy_headers=False,
        server_header=False,
        log_config=logging_config(settings.log_level),
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


def _tls_problem(certfile: str | None, keyfile: str | None) -> str | None:
    """What is wrong with the TLS flags, or None. Checked here because uvicorn would answer a
    missing or mismatched file with a traceback, once per worker."""
    if certfile is None and keyfile is None:
        return None
    if keyfile is None:
        return "--ssl-certfile needs --ssl-keyfile (the certificate's private key)"
    if certfile is None:
        return "--ssl-keyfile needs --ssl-certfile (the certificate it is the key of)"
    import ssl

    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return f"{flag} {path}: cannot read it ({exc.strerror or exc})"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback that gives none: an encrypted key fails here instead of
        # prompting on the terminal of a server that may have none.
        context.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except OSError as exc:  # ssl.SSLError among them
        reason = getattr(exc, "reason", None) or exc
        return (
            f"--ssl-certfile {certfile} with --ssl-keyfile {keyfile}: not a PEM certificate "
            f"and its unencrypted private key ({reason})"
        )
    return None


Command = Callable[[Storage, argparse.Namespace], Awaitable[int]]


def _with_settings(
    command: Callable[[Settings, Storage, argparse.Namespace], Awaitable[int]],
) -> Callable[[Settings, argparse.Namespace], int]:
    """As _with_storage, for a command that also reads the settings (retention periods)."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        async def bound(storage: Storage, args: argparse.Namespace) -> int:
            return await command(settings, storage, args)

        return _with_storage(bound)(settings, args)

    return run


def _with_storage(
    command: Command, create: bool = False
) -> Callable[[Settings, argparse.Namespace], int]:
    """`command` with the database open. Only a command that can start from nothing
    (`site add`; `serve` opens its own) may create one: the others need a site in it."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        async def go() -> int:
            storage = open_storage(settings.database, must_exist=not create)
            try:
                await storage.migrate()
                return await command(storage, args)
            finally:
                await storage.close()

        try:
            return asyncio.run(go())
        except NoDatabase as exc:
            print(
                f"zeef: no database at {exc}, and this command does not create one.\n"
                "Run it where the server keeps its database, or point at that file with "
                'ZEEF_DATABASE=/path/to/zeef.sqlite3 (or database = "..." in zeef.toml). '
                "`zeef site add DOMAIN` starts a new database.",
                file=sys.stderr,
            )
            return 1
        except (sites.UnknownSite, customers.UnknownCustomer, UnknownUser) as exc:
            print(f"zeef: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"zeef: {exc}", file=sys.stderr)
            return 2

    return run


async def _site_add(storage: Storage, args: argparse.Namespace) -> int:
    owner = None
    if args.customer is not None:
        owner = await customers.get_customer(storage, args.customer)
    elif await storage.customers():
        # Once there are customers, a site without one would be readable by none of them
        # and by every operator script alike: say whose it is.
        print(
            "zeef: this install has customers; say which one owns the site with "
            "--customer NAME (`zeef customer list` shows them)",
            file=sys.stderr,
        )
        return 2
    try:
        site = await sites.add_site(storage, args.domain, args.timezone)
    except SiteExists as exc:
        print(f"zeef: site {exc} is already registered", file=sys.stderr)
        return 1
    if owner is not None:
        await storage.set_site_customer(site.id, owner["id"])
    owned = f", customer {owner['name']}" if owner is not None else ""
    print(f"added {site.domain} (time zone {site.timezone}{owned})")
    return 0


async def _site_set(storage: Storage, args: argparse.Namespace) -> int:
    if args.dnt is None and args.customer is None and args.retention is None:
        print(
            "zeef: site set: give --dnt honour|ignore, --customer NAME or --retention PERIOD",
            file=sys.stderr,
        )
        return 2
    site = await sites.get_site(storage, args.domain)
    if args.retention is not None:
        period = retention_cli.parse_setting(args.retention)
        await storage.set_site_retention(site.id, period)
        said = f"{site.domain}: {period or 'default'}"
        await audit.record(storage, audit.CLI, "site.retention", said, customer_id=site.customer_id)
        print(
            f"{site.domain}: data is kept " + (f"for {period}" if period else "as its customer's")
        )
    owner = None
    if args.customer is not None:
        owner = await customers.get_customer(storage, args.customer)
    if args.dnt is not None:
        await storage.set_honour_dnt(site.id, args.dnt == "honour")
        print(f"{site.domain}: Do Not Track and Global Privacy Control are {args.dnt}d")
    if owner is not None:
        await storage.set_site_customer(site.id, owner["id"])
        print(f"{site.domain}: now belongs to customer {owner['name']}")
    return 0


async def _site_list(storage: Storage, args: argparse.Namespace) -> int:
    rows = await storage.sites()
    owners = await storage.site_customers()
    if args.json:
        listing = [
            {"domain": s.domain, "timezone": s.timezone, "honour_dnt": s.honour_dnt,
             "customer": owners.get(s.id)}
            for s in rows
        ]  # fmt: skip
        print(json.dumps(listing))
        return 0
    for site in rows:
        dnt = "honours DNT/GPC" if site.honour_dnt else "ignores DNT/GPC"
        owner = owners.get(site.id)
        print(f"{site.domain}\t{site.timezone}\t{dnt}" + (f"\t{owner}" if owner else ""))
    return 0


async def _drops(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    query = reports.Query.for_period(site, args.period)
    counts = await reports.drops(storage, query)
    # Every reason, zeros included, so a script can read any key; then any older reason the
    # table still holds.
    by_reason = {reason.value: counts.pop(reason.value, 0) for reason in DropReason}
    by_reason.update(counts)
    figures = {
        "site": site.domain,
        "period": query.period,
        "from": query.start.date().isoformat(),
        "to": (query.end - timedelta(days=1)).date().isoformat(),
        "drops": by_reason,
        "total": sum(by_reason.values()),
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{figures['site']}  {figures['from']} .. {figures['to']}  (days in UTC)")
    for reason, count in by_reason.items():
        print(f"  {reason:<20} {count}")
    print(f"  {'Total':<20} {figures['total']}")
    return 0


def _key_rotate(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.database.exists():
        print(f"zeef: no database at {settings.database}: set ZEEF_DATABASE", file=sys.stderr)
        return 1
    if args.name == "visitor" and not args.yes:
        print(
            "zeef: rotating the visitor key forgets every returning visitor: consented visitors "
            "seen before count as new from then on, for good. Add --yes to do it.",
            file=sys.stderr,
        )
        return 2

    async def rotate(storage: Storage, args: argparse.Namespace) -> int:
        restart = "Running servers use the new key from their next start: restart them."
        if args.name == "visitor":
            await keys.rotate_visitor_key(storage, settings)
            print(
                f"Rotated the visitor key. Returning visitors are no longer recognised. {restart}"
            )
            return 0
        rotation = await keys.rotate_secret(storage, settings)
        print(f"Rotated the secret key; returning visitors are still recognised. {restart}")
        if rotation.visitor_key_derived:
            print(
                "The visitor key is still the one this install derived from the old secret "
                "before they were apart: if the old secret leaked, rotate it too with "
                "`zeef key rotate visitor --yes` (returning visitors are then forgotten)."
            )
        return 0

    return _with_storage(rotate)(settings, args)


if __name__ == "__main__":
    sys.exit(main())

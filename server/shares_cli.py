"""`zeef share create|list|set|revoke`: share links, from the operator's terminal.

The output is a contract scripts rely on (issue 18): `create --json` prints `{"id", "url"}`,
the URL's last path segment being the token, and `list --json` each share's `Share.public`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import sites
from .accounts import audit
from .config import load_settings
from .keys import load_keys
from .sharing import shares
from .sharing.shares import Share, ShareError
from .storage import Storage

SECTIONS_HELP = f"comma-separated, of {','.join(shares.SECTIONS)} (default: all)"


def add_commands(commands: Any, with_storage: Callable[..., Any]) -> None:
    group = commands.add_parser("share", help="share links: a site's statistics without an account")
    sub = group.add_subparsers(title="share commands")

    create = sub.add_parser(
        "create",
        help="make a share link",
        description='Prints the link; with --json, {"id": ..., "url": ...}. The URL\'s last '
        "path segment is the token.",
    )
    create.add_argument("domain")
    _condition_flags(create, for_set=False)
    create.add_argument("--json", action="store_true")
    create.set_defaults(run=with_storage(_create))

    listing = sub.add_parser("list", help="a site's share links, revoked ones last")
    listing.add_argument("domain")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=with_storage(_list))

    change = sub.add_parser(
        "set",
        help="change a share link's conditions",
        description="Only what is given changes. Prints the link, which is new after --rotate.",
    )
    change.add_argument("id", type=int)
    _condition_flags(change, for_set=True)
    change.add_argument("--json", action="store_true", help='print {"id": ..., "url": ...}')
    change.set_defaults(run=with_storage(_set))

    revoke = sub.add_parser("revoke", help="stop a share link working, at once and for good")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(run=with_storage(_revoke))


def _condition_flags(parser: argparse.ArgumentParser, for_set: bool) -> None:
    """The conditions, as `create` and `set` both take them; for `set` each is optional and
    unset (None) means unchanged."""
    parser.add_argument(
        "--expires",
        metavar="30d|DATE" + ("|never" if for_set else ""),
        help="a duration from now (30d, 2w, 6m, 1y) or the last day (YYYY-MM-DD, UTC)"
        + ("; never: no end" if for_set else "; default: never"),
    )
    password = parser.add_mutually_exclusive_group()
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a password visitors must type from stdin's first line",
    )
    if for_set:
        password.add_argument("--no-password", action="store_true", help="remove the password")
    parser.add_argument("--label", help="what the link is for, shown in listings")
    parser.add_argument("--sections", help=SECTIONS_HELP)
    parser.add_argument(
        "--filter",
        help="a Stats API filter every view is locked to, e.g. 'visit:country==NL'"
        + ("; '' removes it" if for_set else ""),
    )
    embed = parser.add_mutually_exclusive_group()
    embed.add_argument(
        "--embed-origin",
        action="append",
        metavar="ORIGIN",
        help="a site that may frame the link, as https://client.example; repeat for more"
        + (" (replaces the list)" if for_set else ""),
    )
    if for_set:
        embed.add_argument("--no-embed", action="store_true", help="no site may frame it")
        parser.add_argument(
            "--rotate", action="store_true", help="issue a new link; the old one stops working"
        )
    parser.add_argument(
        "--csv",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether visitors may download CSV files" + ("" if for_set else " (default: yes)"),
    )


async def _create(storage: Storage, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        expires_at = _expiry(args.expires, now)
        password = _read_password() if args.password_stdin else None
        share = await shares.create(
            storage,
            audit.CLI,
            args.domain,
            label=args.label or "",
            expires_at=expires_at,
            password=password,
            shown=args.sections.split(",") if args.sections is not None else shares.SECTIONS,
            locked=args.filter or "",
            embed=args.embed_origin or (),
            csv=args.csv is not False,
            now=now.timestamp(),
        )
    except ShareError as exc:
        return _refuse(str(exc))
    link = (await _links(storage))(share)
    if args.json:
        print(json.dumps({"id": share.id, "url": link}))
    else:
        print(f"created share {share.id} of {share.domain}")
        _summary(share, link)
    return 0


async def _list(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.find_site(storage, args.domain)
    if site is None:
        return _refuse(f"no site {args.domain!r}; `zeef site list` shows them")
    found = [Share.of(row) for row in await storage.shares_of_site(site.id)]
    url = await _links(storage)
    links = [url(share) for share in found]
    if args.json:
        print(json.dumps([s.public(link) for s, link in zip(found, links, strict=True)]))
        return 0
    if not found:
        print(f"no share links for {site.domain}; make one with `zeef share create`",
              file=sys.stderr)  # fmt: skip
    now = time.time()
    for share, link in zip(found, links, strict=True):
        print(f"{share.id}\t{share.label or '-'}\t{_state(share, now)}"
              f"\t{','.join(share.sections)}\t{link}")  # fmt: skip
    return 0


async def _set(storage: Storage, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        changes = _changes(args, now)
    except ShareError as exc:
        return _refuse(str(exc))
    if not changes:
        return _refuse(
            "share set: give a condition to change (--expires, --password-stdin, "
            "--no-password, --label, --sections, --filter, --embed-origin, --no-embed, "
            "--csv/--no-csv, --rotate)"
        )
    share = await _share(storage, args.id)
    if isinstance(share, int):
        return share
    if share.revoked_at is not None:
        # A revoked link stays dead: changing it would suggest it could open again.
        return _refuse(f"share {share.id} is revoked; make a new one with `zeef share create`")
    try:
        if args.password_stdin:
            changes["password"] = _read_password()
        share = await shares.change(storage, audit.CLI, share, changes, now.timestamp())
    except ShareError as exc:
        return _refuse(str(exc))
    link = (await _links(storage))(share)
    if args.json:
        print(json.dumps({"id": share.id, "url": link}))
    else:
        rotated = "; a new link, the old one no longer works" if args.rotate else ""
        print(f"changed share {share.id} of {share.domain}{rotated}")
        _summary(share, link)
    return 0


def _changes(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """What `share set`'s flags change, each checked (ShareError); the password is read from
    stdin only once everything else was found right."""
    changes: dict[str, Any] = {}
    if args.expires is not None:
        never = args.expires.strip().lower() == "never"
        changes["expires_at"] = None if never else _expiry(args.expires, now)
    if args.password_stdin:
        changes["password"] = ""  # read last
    elif args.no_password:
        changes["password"] = None
    if args.label is not None:
        changes["label"] = args.label.strip()
    if args.sections is not None:
        changes["sections"] = shares.sections(args.sections.split(","))
    if args.filter is not None:
        changes["filters"] = shares.filters(args.filter)
    if args.embed_origin is not None:
        changes["embed_origins"] = shares.origins(args.embed_origin)
    elif args.no_embed:
        changes["embed_origins"] = ()
    if args.csv is not None:
        changes["csv"] = args.csv
    if args.rotate:
        changes["rotate"] = True
    return changes


async def _revoke(storage: Storage, args: argparse.Namespace) -> int:
    share = await _share(storage, args.id)
    if isinstance(share, int):
        return share
    if share.revoked_at is not None:
        day = _day(share.revoked_at)
        print(f"share {share.id} of {share.domain} was revoked already, on {day}")
        return 0
    await shares.revoke(storage, audit.CLI, share, time.time())
    print(f"revoked share {share.id} of {share.domain}: its link opens nothing from now on")
    return 0


async def _share(storage: Storage, share_id: int) -> Share | int:
    """The share, or the exit code after saying why there is none to change."""
    row = await storage.share(share_id)
    if row is None:
        return _refuse(f"no share {share_id}; `zeef share list DOMAIN` shows a site's")
    return Share.of(row)


async def _links(storage: Storage) -> Callable[[Share], str]:
    """A share's URL, signed with the key the server signs with (load_keys makes and stores
    it when no server has run yet)."""
    settings = load_settings()
    secret = (await load_keys(storage, settings)).secret
    return lambda share: shares.url(settings.public_url, secret, share)


def _expiry(text: str | None, now: datetime) -> int | None:
    return None if text is None else shares.expiry(text, now)


def _read_password() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def _refuse(message: str) -> int:
    print(f"zeef: {message}", file=sys.stderr)
    return 2


def _summary(share: Share, link: str) -> None:
    rows = (
        ("label", share.label or "-"),
        ("url", link),
        ("expires", last_day(share.expires_at) if share.expires_at else "never"),
        ("sections", ", ".join(share.sections)),
        ("filter", share.filters or "none"),
        ("password", "yes" if share.password_hash else "no"),
        ("embed origins", " ".join(share.embed_origins) or "none"),
        ("csv", "yes" if share.csv else "no"),
    )
    for name, value in rows:
        print(f"  {name + ':':<15}{value}")


def last_day(expires_at: int) -> str:
    """The last day (UTC) a link with this end works on: an end at midnight is the day before's
    end, as `--expires 2027-01-31` sets it."""
    return _day(expires_at - 1)


def _state(share: Share, now: float) -> str:
    failure = share.failure(now)
    if failure is shares.Failure.REVOKED and share.revoked_at is not None:
        return f"revoked {_day(share.revoked_at)}"
    if failure is shares.Failure.EXPIRED:
        return "expired"
    return f"until {last_day(share.expires_at)}" if share.expires_at else "live"


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()

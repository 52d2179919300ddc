"""`zeef user add|list|block|unblock|password|remove` and `zeef audit-log`: the operator's
hands on accounts. The CLI acts with a superuser's reach (audit.CLI): it holds the database."""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from .accounts import audit, customers, users
from .accounts.users import WeakPassword
from .config import load_settings
from .storage import Storage, UserExists

AUDIT_COLUMNS = ("time", "actor", "action", "object", "customer", "address")


def add_commands(commands: Any, with_storage: Callable[..., Any]) -> None:
    group = commands.add_parser("user", help="people who log in to Zeef")
    sub = group.add_subparsers(title="user commands")

    add = sub.add_parser(
        "add",
        help="add a user of a customer, or a superuser of the operator",
        description="Without --password-stdin, asks for the password on a terminal; "
        "without a terminal, prints a one-time link where the user sets it.",
    )
    add.add_argument("email")
    owner = add.add_mutually_exclusive_group(required=True)
    owner.add_argument("--customer", help="the customer the user belongs to")
    owner.add_argument(
        "--superuser", action="store_true", help="the operator's: manages everything"
    )
    add.add_argument("--role", choices=users.CUSTOMER_ROLES, help="with --customer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(run=with_storage(_add, create=True))

    listing = sub.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=with_storage(_list))

    for name, helptext, command in (
        ("block", "stop a user logging in; their sessions end at once", _block),
        ("unblock", "let a blocked user log in again", _unblock),
        ("remove", "delete a user; their sessions end and API keys are revoked", _remove),
    ):
        action = sub.add_parser(name, help=helptext)
        action.add_argument("email")
        action.set_defaults(run=with_storage(command))

    password = sub.add_parser(
        "password",
        help="set a user's password; they choose a new one at their next login",
    )
    password.add_argument("email")
    password.add_argument("--password-stdin", action="store_true")
    password.set_defaults(run=with_storage(_password))

    log = commands.add_parser(
        "audit-log", help="logins, blocks, resets, role changes and share links, oldest first"
    )
    log.add_argument("--since", type=_since, help="from this day (YYYY-MM-DD), UTC")
    output = log.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--csv", action="store_true", help="RFC 4180 CSV with a header row")
    log.set_defaults(run=with_storage(_audit_log))


async def _add(storage: Storage, args: argparse.Namespace) -> int:
    if args.superuser:
        if args.role:
            print("zeef: a superuser has no --role: it manages everything", file=sys.stderr)
            return 2
        role: users.Role = "superuser"
        customer_id = None
    else:
        if not args.role:
            print("zeef: say the user's --role: viewer or admin", file=sys.stderr)
            return 2
        role = args.role
        customer_id = (await customers.get_customer(storage, args.customer))["id"]
    email = users.normalise_email(args.email)
    link = not args.password_stdin and not sys.stdin.isatty()
    password = None if link else _read_password(args.password_stdin, email)
    if password == "":
        return 2
    try:
        user = await users.add_user(storage, email, role, customer_id, password, audit.CLI)
    except UserExists:
        print(f"zeef: a user {email} exists already", file=sys.stderr)
        return 1
    except WeakPassword as exc:
        print(f"zeef: {exc}", file=sys.stderr)
        return 2
    whose = f" of {user.customer}" if user.customer else ""
    print(f"added {user.role} {user.email}{whose}")
    if link:
        url = await users.password_link(storage, user, load_settings().public_url)
        print(f"They set their password at this link, which works once, within 7 days:\n{url}")
    elif user.must_change_password:
        print("They choose a new password at their first login.")
    return 0


async def _list(storage: Storage, args: argparse.Namespace) -> int:
    found = [users.User.from_row(row) for row in await storage.users()]
    if args.json:
        print(json.dumps([user.listing() for user in found]))
        return 0
    if not found:
        print("no users; add one with `zeef user add EMAIL --superuser`", file=sys.stderr)
    for user in found:
        state = "blocked" if user.blocked else "active" if user.has_password else "invited"
        print(f"{user.email}\t{user.role}\t{user.customer or '-'}\t{state}")
    return 0


async def _block(storage: Storage, args: argparse.Namespace) -> int:
    user = await users.get_user(storage, args.email)
    await users.block(storage, user, audit.CLI)
    print(f"blocked {user.email}: their sessions have ended and they cannot log in")
    return 0


async def _unblock(storage: Storage, args: argparse.Namespace) -> int:
    user = await users.get_user(storage, args.email)
    await users.unblock(storage, user, audit.CLI)
    print(f"unblocked {user.email}")
    return 0


async def _remove(storage: Storage, args: argparse.Namespace) -> int:
    user = await users.get_user(storage, args.email)
    await users.remove(storage, user, audit.CLI)
    print(f"removed {user.email}")
    return 0


async def _password(storage: Storage, args: argparse.Namespace) -> int:
    user = await users.get_user(storage, args.email)
    password = _read_password(args.password_stdin, user.email)
    if not password:
        return 2
    try:
        await users.set_password(storage, user, password, audit.CLI)
    except WeakPassword as exc:
        print(f"zeef: {exc}", file=sys.stderr)
        return 2
    print(f"set the password of {user.email}; they choose a new one at their next login")
    return 0


async def _audit_log(storage: Storage, args: argparse.Namespace) -> int:
    since = args.since or 0
    rows = await storage.audit_log(since, None, 1_000_000)
    rows.reverse()  # oldest first, as a log reads
    for row in rows:
        row["time"] = datetime.fromtimestamp(row["at"], UTC).isoformat()
    if args.json:
        print(json.dumps([{key: row[key] for key in AUDIT_COLUMNS} for row in rows]))
        return 0
    if args.csv:
        # Imported here: the export module brings the web pages (~0.4 s) every other command
        # would pay for. Its cells are made safe the same way: a label or an email address
        # starting with "=" must not run as a formula in the spreadsheet it is opened in.
        from .web.export import safe_cell

        out = csv.writer(sys.stdout, lineterminator="\r\n")
        out.writerow(AUDIT_COLUMNS)
        # "-" is how the log writes "no address" (the CLI): an empty cell, not the text "'-".
        out.writerows(
            [safe_cell(None if key == "address" and row[key] == "-" else row[key])
             for key in AUDIT_COLUMNS]
            for row in rows
        )  # fmt: skip
        return 0
    for row in rows:
        print(
            f"{row['time']}\t{row['actor']}\t{row['action']}\t{row['object'] or '-'}"
            f"\t{row['customer'] or '-'}\t{row['address']}"
        )
    return 0


def _read_password(from_stdin: bool, email: str) -> str:
    """The new password: stdin's first line, or asked twice on the terminal. "" when the two
    typed on a terminal differ (said on stderr)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"Password for {email}: ")
    if getpass.getpass("Once more: ") != first:
        print("zeef: the two passwords differ; nothing changed", file=sys.stderr)
        return ""
    return first


def _since(text: str) -> int:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())

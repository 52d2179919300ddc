"""`zeef customer add|list`: the customers whose sites this install measures."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from .accounts import customers
from .storage import CustomerExists, Storage

Command = Callable[[Storage, argparse.Namespace], Awaitable[int]]


def add_commands(commands: Any, with_storage: Callable[..., Any]) -> None:
    group = commands.add_parser("customer", help="the customers whose sites are measured")
    sub = group.add_subparsers(title="customer commands")
    add = sub.add_parser("add", help="add a customer")
    add.add_argument("name")
    add.set_defaults(run=with_storage(_add, create=True))
    listing = sub.add_parser("list", help="list customers and how many sites each owns")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=with_storage(_list))
    from . import retention_cli

    retention_cli.add_customer_commands(sub, with_storage)


async def _add(storage: Storage, args: argparse.Namespace) -> int:
    try:
        customer = await customers.add_customer(storage, args.name)
    except CustomerExists as exc:
        print(f"zeef: customer {exc} exists already", file=sys.stderr)
        return 1
    print(f"added customer {customer['name']}")
    return 0


async def _list(storage: Storage, args: argparse.Namespace) -> int:
    rows = await storage.customers()
    if args.json:
        listing = [
            {"name": r["name"], "sites": r["sites"],
             "created_at": datetime.fromtimestamp(r["created_at"], UTC).isoformat()}
            for r in rows
        ]  # fmt: skip
        print(json.dumps(listing))
        return 0
    for row in rows:
        print(f"{row['name']}\t{row['sites']} site{'' if row['sites'] == 1 else 's'}")
    return 0

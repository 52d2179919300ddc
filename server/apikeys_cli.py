"""`zeef apikey create|list|revoke`: keys for the Stats API."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime

from .accounts import apikeys
from .storage import Storage


def add_commands(commands: argparse._SubParsersAction, with_storage) -> None:  # type: ignore[type-arg, no-untyped-def]
    group = commands.add_parser("apikey", help="keys for the Stats API")
    sub = group.add_subparsers(title="apikey commands")
    create = sub.add_parser("create", help="make a key; it is printed once, as the last line")
    create.add_argument("email", help="who the key is for")
    create.add_argument("--label", help="what it is for, shown in listings")
    create.set_defaults(run=with_storage(_create))
    listing = sub.add_parser("list", help="an owner's keys (never the keys themselves)")
    listing.add_argument("email")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=with_storage(_list))
    revoke = sub.add_parser("revoke", help="stop a key working, at once")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(run=with_storage(_revoke))


async def _create(storage: Storage, args: argparse.Namespace) -> int:
    owner = apikeys.owner(args.email)
    if await storage.user_by_email(owner) is None and await storage.users():
        # A key reads what its owner's account may read; one for an address with no account
        # would get the operator's reach, as keys made before accounts existed have.
        print(
            f"zeef: {owner} has no account, and a key acts for its owner's account: add them "
            "first (`zeef user add EMAIL --customer NAME --role viewer`)",
            file=sys.stderr,
        )
        return 2
    label = args.label.strip() if args.label and args.label.strip() else None
    key = apikeys.generate()
    key_id = await storage.create_api_key(
        owner, label, apikeys.shown_prefix(key), apikeys.digest(key), int(time.time())
    )
    print(f"API key {key_id} for {owner}. It is shown only now and cannot be shown again:")
    print("store it safely, and send it as `Authorization: Bearer KEY` to /api/v1/stats/...")
    print(key)
    return 0


async def _list(storage: Storage, args: argparse.Namespace) -> int:
    owner = apikeys.owner(args.email)
    keys = [apikeys.ApiKey.from_row(row) for row in await storage.api_keys(owner)]
    if args.json:
        print(json.dumps([asdict(k) for k in keys]))
        return 0
    if not keys:
        print(f"no API keys for {owner}", file=sys.stderr)
    for k in keys:
        state = "revoked " + _day(k.revoked_at) if k.revoked_at else "live"
        used = "last used " + _day(k.last_used_at) if k.last_used_at else "never used"
        print(f"{k.id}\t{k.prefix}...\t{k.label or '-'}\tcreated {_day(k.created_at)}"
              f"\t{used}\t{state}")  # fmt: skip
    return 0


async def _revoke(storage: Storage, args: argparse.Namespace) -> int:
    if not await storage.revoke_api_key(args.id, int(time.time())):
        print(f"zeef: no live API key with id {args.id}", file=sys.stderr)
        return 1
    print(f"Revoked API key {args.id}; requests with it are refused from now on.")
    return 0


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")

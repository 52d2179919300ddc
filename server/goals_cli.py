"""`zeef goal ...`: add, list and remove a site's goals (custom events or page patterns)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import goals, sites
from .storage import GoalExists, Storage


def add_commands(commands: argparse._SubParsersAction, with_storage) -> None:  # type: ignore[type-arg, no-untyped-def]
    group = commands.add_parser("goal", help="a site's goals: custom events and pages")
    sub = group.add_subparsers(title="goal commands")

    add = sub.add_parser(
        "add",
        help="add a goal",
        description="A goal counts visits that sent a custom event, or viewed a page: in "
        "--page, * stands for any run of characters, / included (/thanks* is /thanks, "
        "/thanks/you and /thanksgiving).",
    )
    add.add_argument("domain")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--event", metavar="NAME", help="a custom event's name, e.g. Signup")
    what.add_argument("--page", metavar="PATH", help="a page path or pattern, e.g. '/thanks*'")
    add.add_argument("--name", help="the name reports show (default: the event's, or 'Visit PATH')")
    add.add_argument(
        "--currency", metavar="CODE", help="ISO 4217 code of the event's revenue, e.g. EUR"
    )
    add.set_defaults(run=with_storage(_add))

    listing = sub.add_parser("list", help="list goals, of one site or of all")
    listing.add_argument("domain", nargs="?")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=with_storage(_list))

    remove = sub.add_parser("remove", help="remove a goal by its name")
    remove.add_argument("domain")
    remove.add_argument("name")
    remove.set_defaults(run=with_storage(_remove))


async def _add(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    goal = goals.new_goal(
        site.id,
        int(time.time()),
        event=args.event,
        page=args.page,
        name=args.name,
        currency=args.currency,
    )
    try:
        goal = await storage.add_goal(goal)
    except GoalExists:
        print(f"zeef: {await _clash(storage, goal)}", file=sys.stderr)
        return 1
    revenue = f", revenue in {goal.currency}" if goal.currency else ""
    print(f"added goal {goal.display_name!r} to {site.domain}{revenue}")
    return 0


async def _clash(storage: Storage, goal: goals.Goal) -> str:
    """Which existing goal a new one collides with, for the message."""
    for other in await storage.goals(goal.site_id):
        if other.display_name == goal.display_name:
            return f"a goal named {goal.display_name!r} exists already"
        if goal.kind == other.kind == goals.EVENT and other.event_name == goal.event_name:
            return f"goal {other.display_name!r} for event {goal.event_name!r} exists already"
        if goal.kind == other.kind == goals.PAGE and other.page_path == goal.page_path:
            return f"goal {other.display_name!r} for {goal.page_path} exists already"
    return f"a goal like {goal.display_name!r} exists already"


async def _list(storage: Storage, args: argparse.Namespace) -> int:
    chosen = [await sites.get_site(storage, args.domain)] if args.domain else await storage.sites()
    rows = []
    for site in chosen:
        for goal in await storage.goals(site.id):
            rows.append(
                {
                    "domain": site.domain,
                    "display_name": goal.display_name,
                    "kind": goal.kind,
                    "event_name": goal.event_name,
                    "page_path": goal.page_path,
                    "currency": goal.currency,
                }
            )
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        target = row["event_name"] if row["kind"] == goals.EVENT else row["page_path"]
        line = f"{row['domain']}\t{row['display_name']}\t{row['kind']}\t{target}"
        print(line + (f"\t{row['currency']}" if row["currency"] else ""))
    return 0


async def _remove(storage: Storage, args: argparse.Namespace) -> int:
    site = await sites.get_site(storage, args.domain)
    if not await storage.remove_goal(site.id, args.name):
        print(f"zeef: {site.domain} has no goal named {args.name!r}", file=sys.stderr)
        return 1
    print(f"removed goal {args.name!r} from {site.domain}")
    return 0

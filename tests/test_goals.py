"""Goals: `zeef goal add/list/remove` as users run them, and how a page pattern matches."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import pytest

from server.goals import Goal, page_pattern_glob, page_pattern_regex, path_matches
from server.storage import open_storage

from .test_cli import zeef


def test_add_list_and_remove_goals(tmp_path: Path) -> None:
    assert zeef(tmp_path, "site", "add", "example.com").returncode == 0
    signup = zeef(tmp_path, "goal", "add", "example.com", "--event", "Signup")
    assert signup.returncode == 0, signup.stderr
    purchase = zeef(tmp_path, "goal", "add", "www.example.com", "--event", "Purchase",
                    "--name", "Bought something", "--currency", "eur")  # fmt: skip
    assert purchase.returncode == 0, purchase.stderr
    thanks = zeef(tmp_path, "goal", "add", "example.com", "--page", "/thanks*")
    assert thanks.returncode == 0, thanks.stderr

    listing = zeef(tmp_path, "goal", "list", "example.com", "--json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout) == [
        {"domain": "example.com", "display_name": "Signup", "kind": "event",
         "event_name": "Signup", "page_path": None, "currency": None},
        {"domain": "example.com", "display_name": "Bought something", "kind": "event",
         "event_name": "Purchase", "page_path": None, "currency": "EUR"},
        {"domain": "example.com", "display_name": "Visit /thanks*", "kind": "page",
         "event_name": None, "page_path": "/thanks*", "currency": None},
    ]  # fmt: skip
    text = zeef(tmp_path, "goal", "list").stdout.splitlines()
    assert text == [
        "example.com\tSignup\tevent\tSignup",
        "example.com\tBought something\tevent\tPurchase\tEUR",
        "example.com\tVisit /thanks*\tpage\t/thanks*",
    ]

    removed = zeef(tmp_path, "goal", "remove", "example.com", "Visit /thanks*")
    assert removed.returncode == 0, removed.stderr
    again = zeef(tmp_path, "goal", "remove", "example.com", "Visit /thanks*")
    assert again.returncode == 1
    assert "no goal named 'Visit /thanks*'" in again.stderr
    names = [g["display_name"] for g in json.loads(zeef(tmp_path, "goal", "list", "--json").stdout)]
    assert names == ["Signup", "Bought something"]


def test_duplicates_unknown_sites_and_bad_goals_are_refused(tmp_path: Path) -> None:
    zeef(tmp_path, "site", "add", "example.com")
    zeef(tmp_path, "site", "add", "other.example")
    assert zeef(tmp_path, "goal", "add", "example.com", "--event", "Signup").returncode == 0
    assert zeef(tmp_path, "goal", "add", "example.com", "--page", "/thanks").returncode == 0
    refused = {
        "same name": (["--event", "Register", "--name", "Signup"], 1, "named 'Signup' exists"),
        "same event": (["--event", "Signup", "--name", "Again"], 1, "event 'Signup' exists"),
        "same page": (["--page", "/thanks", "--name", "Thanks"], 1, "/thanks exists"),
        "both": (["--event", "A", "--page", "/a"], 2, "not allowed with"),
        "neither": (["--name", "A"], 2, "one of the arguments --event --page is required"),
        "relative page": (["--page", "thanks"], 2, "starts with /"),
        "revenue on a page": (["--page", "/buy", "--currency", "EUR"], 2, "only an event"),
        "made-up currency": (["--event", "Buy", "--currency", "EUX"], 2, "ISO 4217"),
        "currency, not a code": (["--event", "Buy", "--currency", "euro"], 2, "ISO 4217"),
    }
    for case, (flags, code, message) in refused.items():
        result = zeef(tmp_path, "goal", "add", "example.com", *flags)
        assert (result.returncode, message in result.stderr) == (code, True), (case, result)
    unknown = zeef(tmp_path, "goal", "add", "nobody.example", "--event", "Signup")
    assert unknown.returncode == 1
    assert "no site 'nobody.example'" in unknown.stderr
    assert zeef(tmp_path, "goal", "list", "nobody.example").returncode == 1
    assert zeef(tmp_path, "goal", "remove", "nobody.example", "Signup").returncode == 1
    # Goals are per site: the same goal on another site is no duplicate, and is not listed.
    assert zeef(tmp_path, "goal", "add", "other.example", "--event", "Signup").returncode == 0
    listing = json.loads(zeef(tmp_path, "goal", "list", "example.com", "--json").stdout)
    assert [g["display_name"] for g in listing] == ["Signup", "Visit /thanks"]


def test_a_goal_change_moves_the_settings_version(tmp_path: Path) -> None:
    """What tells a running server that goals changed (migration 0008's counter)."""

    async def version() -> int:
        storage = open_storage(tmp_path / "zeef.sqlite3")
        try:
            return await storage.settings_version()
        finally:
            await storage.close()

    zeef(tmp_path, "site", "add", "example.com")
    before = asyncio.run(version())
    zeef(tmp_path, "goal", "add", "example.com", "--event", "Signup")
    added = asyncio.run(version())
    zeef(tmp_path, "goal", "remove", "example.com", "Signup")
    assert before < added < asyncio.run(version())


# (pattern, path, matches): as Plausible counts page goals, `*` and `**` both stand for any
# run of characters, `/` included; the pattern must match the whole path; the rest is literal.
PATTERNS = [
    ("/thanks", "/thanks", True),
    ("/thanks", "/thanks/", False),
    ("/thanks", "/Thanks", False),
    ("/thanks*", "/thanks", True),
    ("/thanks*", "/thanks/you", True),
    ("/thanks*", "/thanksgiving", True),
    ("/thanks*", "/en/thanks", False),
    ("/blog/*", "/blog/post", True),
    ("/blog/*", "/blog/2024/post", True),
    ("/blog/*", "/blog", False),
    ("/blog/**", "/blog/2024/post", True),
    ("/*/thanks", "/en/thanks", True),
    ("/*/thanks", "/en/shop/thanks", True),
    ("/*/thanks", "/thanks", False),
    ("/v1.0/*", "/v1x0/a", False),
    ("/a?b*", "/a?b/c", True),
    ("/a?b*", "/ab/c", False),
    ("/[x]*", "/[x]y", True),
    ("/[x]*", "/xy", False),
    ("/a|b*", "/b", False),
]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"), PATTERNS, ids=[f"{p} {q}" for p, q, _ in PATTERNS]
)
def test_page_pattern(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(pattern, path) is expected
    assert (re.match(page_pattern_regex(pattern), path, re.S) is not None) is expected
    # The GLOB form gives SQLite's verdict, for an engine that filters in SQL.
    with sqlite3.connect(":memory:") as conn:
        (hit,) = conn.execute(
            "SELECT :path GLOB :glob", {"path": path, "glob": page_pattern_glob(pattern)}
        ).fetchone()
    assert bool(hit) is expected


@pytest.mark.parametrize(
    ("goal", "name", "path", "expected"),
    [
        (Goal(1, "event", "Signup", event_name="Signup"), "Signup", "/any", True),
        (Goal(1, "event", "Signup", event_name="Signup"), "signup", "/any", False),
        (Goal(1, "event", "Signup", event_name="Signup"), "pageview", "/Signup", False),
        (Goal(1, "page", "Visit /thanks*", page_path="/thanks*"), "pageview", "/thanks/a", True),
        (Goal(1, "page", "Visit /thanks*", page_path="/thanks*"), "Signup", "/thanks", False),
        (Goal(1, "page", "Visit /thanks*", page_path="/thanks*"), "pageview", "/buy", False),
    ],
    ids=["event", "event case", "event not page", "page", "page not event", "other page"],
)
def test_goal_matches(goal: Goal, name: str, path: str, expected: bool) -> None:
    assert goal.matches(name, path) is expected

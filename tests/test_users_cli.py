"""Users through `zeef user ...` and `zeef audit-log`, as operators script them (the accounts
issue's CLI contracts)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from .test_cli import zeef

GOOD = "correct horse battery staple"


def zeef_in(tmp_path: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`zeef` with stdin from a pipe: no terminal, as in a script."""
    environ = {**os.environ, "ZEEF_DATABASE": str(tmp_path / "zeef.sqlite3"),
               "ZEEF_PUBLIC_URL": "https://stats.example.net/"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin, capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=60,
    )  # fmt: skip


def test_users_are_added_listed_blocked_and_removed(tmp_path: Path) -> None:
    assert zeef(tmp_path, "customer", "add", "Acme").returncode == 0
    admin = zeef_in(tmp_path, GOOD + "\n", "user", "add", "Ann@Acme.example", "--customer",
                    "acme", "--role", "admin", "--password-stdin")  # fmt: skip
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.startswith("added admin ann@acme.example of Acme\n")
    # Someone else chose it: the owner replaces it first.
    assert "new password at their first login" in admin.stdout

    again = zeef_in(tmp_path, GOOD + "\n", "user", "add", "ann@acme.example", "--customer",
                    "Acme", "--role", "viewer", "--password-stdin")  # fmt: skip
    assert again.returncode == 1 and "exists already" in again.stderr

    # Without a password and without a terminal: a one-time link on the public URL.
    invited = zeef_in(tmp_path, "", "user", "add", "vic@acme.example", "--customer", "Acme",
                      "--role", "viewer")  # fmt: skip
    assert invited.returncode == 0, invited.stderr
    link = invited.stdout.strip().splitlines()[-1]
    assert link.startswith("https://stats.example.net/set-password/") and len(link) > 80

    boss = zeef_in(tmp_path, GOOD + "\n", "user", "add", "op@zeef.example", "--superuser",
                   "--password-stdin")  # fmt: skip
    assert boss.returncode == 0, boss.stderr

    listing = json.loads(zeef(tmp_path, "user", "list", "--json").stdout)
    assert [(u["email"], u["role"], u["customer"], u["blocked"], u["password_set"])
            for u in listing] == [
        ("op@zeef.example", "superuser", None, False, True),
        ("ann@acme.example", "admin", "Acme", False, True),
        ("vic@acme.example", "viewer", "Acme", False, False),
    ]  # fmt: skip
    assert all("hash" not in json.dumps(u) for u in listing)

    assert zeef(tmp_path, "user", "block", "ANN@acme.example").returncode == 0
    assert json.loads(zeef(tmp_path, "user", "list", "--json").stdout)[1]["blocked"] is True
    assert "blocked" in zeef(tmp_path, "user", "list").stdout
    assert zeef(tmp_path, "user", "unblock", "ann@acme.example").returncode == 0

    reset = zeef_in(tmp_path, "a whole new sentence here\n", "user", "password",
                    "ann@acme.example", "--password-stdin")  # fmt: skip
    assert reset.returncode == 0, reset.stderr

    assert zeef(tmp_path, "user", "remove", "vic@acme.example").returncode == 0
    gone = zeef(tmp_path, "user", "block", "vic@acme.example")
    assert gone.returncode == 1 and "no user 'vic@acme.example'" in gone.stderr

    # No password in the database's clear text, only argon2id hashes.
    with sqlite3.connect(tmp_path / "zeef.sqlite3") as db:
        hashes = [row[0] for row in db.execute("SELECT password_hash FROM users")]
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert GOOD.encode() not in (tmp_path / "zeef.sqlite3").read_bytes()

    log = json.loads(zeef(tmp_path, "audit-log", "--json").stdout)
    assert [(e["actor"], e["action"]) for e in log] == [
        ("cli", "user added"),
        ("cli", "user added"),
        ("cli", "user added"),
        ("cli", "user blocked"),
        ("cli", "user unblocked"),
        ("cli", "password reset"),
        ("cli", "user removed"),
    ]
    assert log[3]["object"] == "ann@acme.example" and log[3]["customer"] == "Acme"
    assert GOOD not in json.dumps(log)
    since = zeef(tmp_path, "audit-log", "--since", "2999-01-01", "--json")
    assert since.returncode == 0 and json.loads(since.stdout) == []
    assert zeef(tmp_path, "audit-log", "--since", "yesterday").returncode == 2


def test_bad_user_commands_say_what_is_wrong(tmp_path: Path) -> None:
    assert zeef(tmp_path, "customer", "add", "Acme").returncode == 0
    cases = [
        (("user", "add", "x@acme.example", "--customer", "Acme"), 2, "--role"),
        (("user", "add", "x@acme.example", "--superuser", "--role", "admin"), 2, "no --role"),
        (("user", "add", "x@acme.example", "--customer", "Nope", "--role", "admin"), 1,
         "no customer 'Nope'"),
        (("user", "add", "not-an-email", "--superuser"), 2, "not an email address"),
        (("user", "add", "x@acme.example"), 2, "--customer"),
    ]  # fmt: skip
    for args, code, message in cases:
        done = zeef_in(tmp_path, "", *args)
        assert (done.returncode, message in done.stderr) == (code, True), (args, done.stderr)

    weak = zeef_in(tmp_path, "password1\n", "user", "add", "x@acme.example", "--superuser",
                   "--password-stdin")  # fmt: skip
    assert weak.returncode == 2 and "at least" in weak.stderr
    assert json.loads(zeef(tmp_path, "user", "list", "--json").stdout) == []


def test_a_key_is_made_for_an_account_once_there_are_accounts(tmp_path: Path) -> None:
    # Before accounts, a key for any address (the operator's scripts) is made as before.
    assert zeef(tmp_path, "customer", "add", "Acme").returncode == 0
    assert zeef(tmp_path, "apikey", "create", "ops@zeef.example").returncode == 0
    added = zeef_in(tmp_path, GOOD + "\n", "user", "add", "ann@acme.example", "--customer",
                    "Acme", "--role", "viewer", "--password-stdin")  # fmt: skip
    assert added.returncode == 0
    stranger = zeef(tmp_path, "apikey", "create", "someone@acme.example")
    assert stranger.returncode == 2 and "has no account" in stranger.stderr
    assert zeef(tmp_path, "apikey", "create", "ann@acme.example").returncode == 0

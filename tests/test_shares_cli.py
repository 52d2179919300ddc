"""Share links through `zeef share ...` and `zeef audit-log --csv`, as operators script them:
the issue's contracts (flags, `--json` shapes, the URL's last segment a token), each link
checked by opening its token as the server does, and bad flags exit 2 saying why."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.accounts.passwords import verify_password
from server.config import Settings
from server.keys import load_keys
from server.sharing import shares
from server.sharing.shares import Failure, Share
from server.storage import open_storage

PUBLIC = "https://stats.example.net"
GOOD = "correct horse battery staple"
PUBLIC_KEYS = {"id", "site", "label", "url", "expires_at", "password", "sections", "filters",
               "embed_origins", "csv", "created_by", "created_at", "revoked_at"}  # fmt: skip


def zeef(directory: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`zeef` in a script: stdin from a pipe, the instance's public address set."""
    environ = {**os.environ, "ZEEF_DATABASE": str(directory / "zeef.sqlite3"),
               "ZEEF_PUBLIC_URL": PUBLIC + "/"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin, capture_output=True, text=True, env=environ, cwd=directory, timeout=60,
    )  # fmt: skip


def ok(directory: Path, *args: str, stdin: str = "") -> str:
    done = zeef(directory, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def acme(directory: Path, customer: str = "Acme") -> None:
    ok(directory, "customer", "add", customer)
    ok(directory, "site", "add", "acme.example", "--customer", customer)


def open_link(directory: Path, url: str) -> tuple[Share | None, Failure | None]:
    """What the server makes of a link: its token opened with the instance's secret key."""
    assert url.startswith(PUBLIC + "/share/")
    token = url.rsplit("/", 1)[1]

    async def go() -> tuple[Share | None, Failure | None]:
        storage = open_storage(directory / "zeef.sqlite3")
        try:
            secret = (
                await load_keys(storage, Settings(database=directory / "zeef.sqlite3"))
            ).secret
            share, failure, _id = await shares.open_token(storage, secret, token)
            return share, failure
        finally:
            await storage.close()

    return asyncio.run(go())


def listed(directory: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(ok(directory, "share", "list", "acme.example",
                                                "--json"))  # fmt: skip
    return found


def stored(directory: Path) -> dict[str, Any]:
    """The one share as `share list --json` shows it (but its URL), read from the file: a
    process less for each look."""
    with closing(sqlite3.connect(directory / "zeef.sqlite3")) as db:
        db.row_factory = sqlite3.Row
        [row] = db.execute("SELECT s.*, t.domain FROM shares s JOIN sites t ON t.id = s.site_id")
        return Share.of(dict(row)).public("")


def csv_log(directory: Path, *args: str) -> str:
    """`zeef audit-log --csv` as the bytes it writes (no newline translation)."""
    environ = {**os.environ, "ZEEF_DATABASE": str(directory / "zeef.sqlite3")}
    done = subprocess.run([sys.executable, "-m", "server", "audit-log", "--csv", *args],
                          capture_output=True, env=environ, cwd=directory, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def end_of(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day) + timedelta(days=1),
                                datetime.min.time(), UTC).timestamp())  # fmt: skip


def test_create_with_every_flag_prints_an_id_and_a_url_whose_last_segment_opens(
    tmp_path: Path,
) -> None:
    acme(tmp_path)
    made = json.loads(ok(
        tmp_path, "share", "create", "acme.example", "--expires", "2099-12-31",
        "--password-stdin", "--label", "Q3 report", "--sections", "pages,overview",
        "--filter", "visit:country==NL", "--no-csv", "--json", stdin=GOOD + "\n"))  # fmt: skip
    assert list(made) == ["id", "url"] and made["id"] == 1
    share, failure = open_link(tmp_path, made["url"])
    assert failure is None and share is not None and share.id == 1
    assert (share.label, share.sections, share.filters, share.csv, share.expires_at) == (
        "Q3 report",
        ("overview", "pages"),
        "visit:country==NL",
        False,
        end_of("2099-12-31"),
    )
    assert share.password_hash and verify_password(share.password_hash, GOOD)  # no newline

    embedded = ok(
        tmp_path, "share", "create", "acme.example", "--expires", "30d",
        "--embed-origin", "https://client.example/", "--embed-origin", "http://b.example:8080",
        "--csv")  # fmt: skip
    # The readable summary: each condition on its line.
    assert embedded.startswith("created share 2 of acme.example\n")
    in30 = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    for line in (f"url:           {PUBLIC}/share/", f"expires:       {in30}",
                 "sections:      overview, pages, sources, locations, devices, goals, consent",
                 "filter:        none", "password:      no",
                 "embed origins: https://client.example http://b.example:8080",
                 "csv:           yes"):  # fmt: skip
        assert line in embedded, line

    every = listed(tmp_path)
    assert [s["id"] for s in every] == [2, 1] and all(set(s) == PUBLIC_KEYS for s in every)
    assert every[1]["url"] == made["url"] and every[1]["password"] is True
    assert every[0]["embed_origins"] == ["https://client.example", "http://b.example:8080"]
    assert every[0]["created_by"] == "cli" and every[0]["revoked_at"] is None
    table = ok(tmp_path, "share", "list", "acme.example").splitlines()
    assert table[1].split("\t")[:4] == ["1", "Q3 report", "until 2099-12-31", "overview,pages"]
    assert table[1].split("\t")[4] == made["url"]


# Each with the message that says what is wrong; nothing is stored by any of them.
BAD = {
    "unknown section": (("--sections", "pages,secrets"), "", "unknown section 'secrets'"),
    "bad filter": (("--filter", "visit:planet==Mars"), "", "--filter: unknown dimension"),
    "bad origin": (("--embed-origin", "https://client.example/page"), "",
                   "--embed-origin 'https://client.example/page': give an origin"),
    "password and embed": (("--password-stdin", "--embed-origin", "https://client.example"),
                           GOOD, "password-protected share cannot be embedded"),
    "weak password": (("--password-stdin",), "passwordpassword", "most common passwords"),
    "past date": (("--expires", "2020-01-31"), "", "--expires 2020-01-31: that day is over"),
    "unknown site": (("--site", "nope.example"), "", "no site 'nope.example'"),
}  # fmt: skip


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shares")
    acme(directory)
    return directory


@pytest.mark.parametrize("flags,stdin,message", list(BAD.values()), ids=list(BAD))
def test_bad_flags_exit_2_saying_why(
    shared: Path, flags: tuple[str, ...], stdin: str, message: str
) -> None:
    domain = flags[1] if flags[0] == "--site" else "acme.example"
    rest = flags[2:] if flags[0] == "--site" else flags
    refused = zeef(shared, "share", "create", domain, *rest, "--json", stdin=stdin + "\n")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith("zeef: ") and message in refused.stderr, refused.stderr
    assert listed(shared) == []


@pytest.mark.parametrize(
    "args,message",
    [
        (("share", "set", "99", "--rotate"), "no share 99"),
        (("share", "revoke", "99"), "no share 99"),
        (("share", "list", "nope.example"), "no site 'nope.example'"),
        (("share", "set", "1"), "give a condition to change"),
        (("share", "set", "1", "--expires", "yesterday"), "--expires 'yesterday'"),
    ],
    ids=["set unknown", "revoke unknown", "list unknown site", "set nothing", "set bad expiry"],
)
def test_unknown_shares_and_empty_changes_exit_2(
    shared: Path, args: tuple[str, ...], message: str
) -> None:
    refused = zeef(shared, *args)
    assert refused.returncode == 2 and message in refused.stderr, refused.stderr


def test_set_changes_only_what_is_given_rotate_kills_the_old_link_revoke_every_link(
    tmp_path: Path,
) -> None:
    acme(tmp_path)
    first = json.loads(ok(tmp_path, "share", "create", "acme.example", "--expires", "7d",
                          "--embed-origin", "https://a.example", "--json"))["url"]  # fmt: skip

    changed = json.loads(ok(
        tmp_path, "share", "set", "1", "--label", "Board", "--sections", "sources,overview",
        "--filter", "visit:device==Mobile", "--no-csv", "--expires", "never",
        "--embed-origin", "https://b.example", "--embed-origin", "https://c.example:8443",
        "--json"))  # fmt: skip
    assert changed == {"id": 1, "url": first}  # the same link: no --rotate
    share = stored(tmp_path)
    assert {k: share[k] for k in ("label", "sections", "filters", "csv", "expires_at",
                                  "embed_origins", "password")} == {
        "label": "Board", "sections": ["overview", "sources"], "filters": "visit:device==Mobile",
        "csv": False, "expires_at": None, "password": False,
        "embed_origins": ["https://b.example", "https://c.example:8443"]}  # fmt: skip

    # A password cannot come while the link may be embedded; once it may not, it can.
    clash = zeef(tmp_path, "share", "set", "1", "--password-stdin", stdin=GOOD + "\n")
    assert clash.returncode == 2 and "cannot be embedded" in clash.stderr
    assert stored(tmp_path)["password"] is False
    readable = ok(tmp_path, "share", "set", "1", "--no-embed", "--password-stdin", "--filter",
                  "", "--csv", "--expires", "2099-01-31", stdin=GOOD + "\n")  # fmt: skip
    assert readable.startswith("changed share 1 of acme.example\n")
    assert "password:      yes" in readable and "filter:        none" in readable
    share = stored(tmp_path)
    assert (share["password"], share["embed_origins"], share["filters"], share["csv"],
            share["expires_at"], share["label"]) == (True, [], "", True, end_of("2099-01-31"),
                                                     "Board")  # fmt: skip
    ok(tmp_path, "share", "set", "1", "--no-password")
    assert stored(tmp_path)["password"] is False

    rotated = ok(tmp_path, "share", "set", "1", "--rotate")
    assert "a new link, the old one no longer works" in rotated
    [second] = re.findall(r"url: +(\S+)", rotated)
    assert second != first
    assert open_link(tmp_path, first) == (None, Failure.TAMPERED)
    share_now, failure = open_link(tmp_path, second)
    assert failure is None and share_now is not None and share_now.label == "Board"

    assert ok(tmp_path, "share", "revoke", "1").startswith("revoked share 1 of acme.example")
    assert open_link(tmp_path, second) == (None, Failure.REVOKED)
    assert "revoked already" in ok(tmp_path, "share", "revoke", "1")
    dead = zeef(tmp_path, "share", "set", "1", "--rotate")
    assert dead.returncode == 2 and "share 1 is revoked" in dead.stderr
    assert stored(tmp_path)["revoked_at"] is not None

    log = json.loads(ok(tmp_path, "audit-log", "--json"))
    shared_rows = [e for e in log if e["action"].startswith("share.")]
    assert [(e["actor"], e["action"], e["customer"]) for e in shared_rows] == [
        ("cli", action, "Acme")
        for action in ("share.create", "share.change", "share.change", "share.change",
                       "share.change", "share.revoke")
    ]  # fmt: skip
    assert shared_rows[1]["object"] == (
        "share 1 of acme.example: csv, embed_origins, expires_at, filters, label, sections"
    )
    assert shared_rows[4]["object"] == "share 1 of acme.example: rotate"
    assert GOOD not in json.dumps(log)


def test_the_audit_log_as_csv_is_rfc_4180_with_cells_a_spreadsheet_will_not_run(
    tmp_path: Path,
) -> None:
    acme(tmp_path, customer="=HYPERLINK(1)")
    ok(tmp_path, "share", "create", "acme.example")
    ok(tmp_path, "share", "set", "1", "--label", "x", "--no-csv")
    text = csv_log(tmp_path)
    assert text.startswith("time,actor,action,object,customer,address\r\n")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["action"] for r in rows][-2:] == ["share.create", "share.change"]
    change = rows[-1]
    assert change["object"] == "share 1 of acme.example: csv, label"  # quoted: it has a comma
    assert '"share 1 of acme.example: csv, label"' in text
    assert change["customer"] == "'=HYPERLINK(1)"  # a formula no more
    assert change["address"] == ""  # the CLI has no address: an empty cell, not "'-"
    assert datetime.fromisoformat(change["time"]).tzinfo is not None
    since = csv_log(tmp_path, "--since", "2999-01-01")
    assert since == "time,actor,action,object,customer,address\r\n"
    both = zeef(tmp_path, "audit-log", "--csv", "--json")
    assert both.returncode == 2 and "not allowed with" in both.stderr

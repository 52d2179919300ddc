"""The secret key and the visitor key, apart: each generated on first start, rotated from the CLI
without the other; an install upgraded from when the visitor key came from the secret keeps
recognising its returning visitors."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from server import reports
from server.config import Settings
from server.privacy import consented_visitor_hash
from server.storage import open_storage

from .conftest import Clock, Zeef, pageview, start
from .test_cli import zeef as run_zeef

FIRST_PARTY = "k3J9xQ2mZ7pL0aB4cD8eFg"


@asynccontextmanager
async def running(settings: Settings, clock: Clock) -> AsyncIterator[Zeef]:
    """A server start to stop: keys are read at start, as `zeef serve` reads them."""
    instances = start(settings, clock)
    instance = await anext(instances)
    try:
        yield instance
    finally:
        await instances.aclose()


def meta(settings: Settings) -> dict[str, str]:
    conn = sqlite3.connect(settings.database)
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()


async def returning_today(zeef: Zeef, clock: Clock) -> int:
    [site] = await zeef.app.state.storage.sites()
    storage = zeef.app.state.storage
    figures = await reports.totals(storage, reports.Query.for_period(site, "day", clock()))
    return int(figures["returning_visitors"])


async def visit_again_after_rotating(
    settings: Settings, clock: Clock, *rotate: str
) -> tuple[int, dict[str, str], dict[str, str]]:
    """A consented visit, `zeef key rotate ...`, a restart and a visit two days later by the
    same first-party ID: the returning visitors counted that day, and the keys before/after."""
    async with running(settings, clock) as zeef:
        await zeef.add_site("example.com")
        assert (await zeef.send(pageview(c=FIRST_PARTY))).status_code == 202
        assert await zeef.flush() == 1
    before = meta(settings)
    result = run_zeef(settings.database.parent, "key", "rotate", *rotate)
    assert result.returncode == 0, result.stderr
    after = meta(settings)
    clock.advance(days=2)
    async with running(settings, clock) as zeef:
        assert (await zeef.send(pageview(c=FIRST_PARTY))).status_code == 202
        assert await zeef.flush() == 1
        assert zeef.app.state.secret_key == after["secret_key"]
        return await returning_today(zeef, clock), before, after


async def test_rotating_the_secret_keeps_returning_visitors(
    settings: Settings, clock: Clock
) -> None:
    returning, before, after = await visit_again_after_rotating(settings, clock, "secret")
    assert after["secret_key"] != before["secret_key"]
    assert after["visitor_key"] == before["visitor_key"]
    assert returning == 1


async def test_rotating_the_visitor_key_forgets_returning_visitors(
    settings: Settings, clock: Clock
) -> None:
    returning, before, after = await visit_again_after_rotating(settings, clock, "visitor", "--yes")
    assert after["visitor_key"] != before["visitor_key"]
    assert after["secret_key"] == before["secret_key"]
    assert returning == 0


async def test_the_visitor_key_is_rotated_only_with_yes(settings: Settings, clock: Clock) -> None:
    async with running(settings, clock):
        pass
    before = meta(settings)
    refused = run_zeef(settings.database.parent, "key", "rotate", "visitor")
    assert refused.returncode == 2
    assert "returning visitor" in refused.stderr and "--yes" in refused.stderr
    assert meta(settings) == before
    done = run_zeef(settings.database.parent, "key", "rotate", "visitor", "--yes")
    assert "no longer recognised" in done.stdout and "next start" in done.stdout


async def test_keys_are_random_apart_and_kept(settings: Settings, clock: Clock) -> None:
    async with running(settings, clock) as zeef:
        first = meta(settings)
        secret, visitor = first["secret_key"], bytes.fromhex(first["visitor_key"])
        assert zeef.app.state.secret_key == secret
        assert zeef.app.state.collector.addresses.visitor_key == visitor
        assert len(visitor) == 32 and visitor != _old_visitor_key(secret)
    async with running(settings, clock):
        again = meta(settings)
    # The keys, and nothing else, are kept alike (the rollup builder's lease comes and goes).
    assert {k: again[k] for k in first if k != "rollups_lease"} == {
        k: first[k] for k in first if k != "rollups_lease"
    }


async def test_an_upgraded_install_keeps_recognising_its_visitors(
    settings: Settings, clock: Clock
) -> None:
    # Before issue 14: a stored secret key, and the visitor key derived from it, not stored.
    storage = open_storage(settings.database)
    await storage.migrate()
    await storage.secret_key("the-secret-of-an-old-install")
    await storage.close()
    async with running(settings, clock) as zeef:
        await zeef.add_site("example.com")
        await zeef.send(pageview(c=FIRST_PARTY))
        await zeef.flush()
    [row] = zeef.rows()
    old_key = _old_visitor_key("the-secret-of-an-old-install")
    assert row["visitor_id"] == consented_visitor_hash(old_key, 1, FIRST_PARTY)
    # Rotating the secret now says the visitor key still comes from the old secret.
    rotated = run_zeef(settings.database.parent, "key", "rotate", "secret")
    assert rotated.returncode == 0, rotated.stderr
    assert "derived from the old secret" in rotated.stdout
    assert meta(settings)["visitor_key"] == old_key.hex()


async def test_the_secret_key_from_the_environment_wins(settings: Settings, clock: Clock) -> None:
    from_env = replace(settings, secret_key="set-by-the-operator")
    async with running(from_env, clock) as zeef:
        assert zeef.app.state.secret_key == "set-by-the-operator"
        assert "secret_key" not in meta(settings)
        # Before issue 14 the visitor key came from this variable: kept, for the upgrade.
        visitor = zeef.app.state.collector.addresses.visitor_key
        assert visitor == _old_visitor_key("set-by-the-operator")
    refused = run_zeef(
        settings.database.parent, "key", "rotate", "secret", ZEEF_SECRET_KEY="set-by-the-operator"
    )
    assert refused.returncode == 2 and "ZEEF_SECRET_KEY" in refused.stderr


def test_rotating_needs_a_database(tmp_path: Path) -> None:
    result = run_zeef(tmp_path, "key", "rotate", "secret")
    assert result.returncode == 1 and "no database" in result.stderr
    assert not (tmp_path / "zeef.sqlite3").exists()


def _old_visitor_key(secret: str) -> bytes:
    # The derivation as server/app.py had it, written out here so a change to it shows.
    return hashlib.blake2b(secret.encode(), person=b"zeef-visitor", digest_size=32).digest()

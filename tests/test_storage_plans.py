"""The writer's and the reports' look-ups use the indexes meant for them.

The events table has one full index, (site_id, ts). Visitor look-ups go through partial
indexes that SQLite only uses when a query repeats their predicate: if a query loses it, the
look-up quietly becomes a scan of the day's hits, on every flush. EXPLAIN QUERY PLAN says.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.storage import sqlite as backend


@pytest.fixture
async def database(tmp_path: Path) -> sqlite3.Connection:
    storage = backend.SQLiteStorage(tmp_path / "zeef.sqlite3")
    await storage.migrate()
    await storage.close()
    return sqlite3.connect(tmp_path / "zeef.sqlite3")


def plan(conn: sqlite3.Connection, sql: str, params: dict[str, object]) -> str:
    return "\n".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        (backend.CONTINUING_VISITORS, {"candidates": "[[1, 2, 3]]"}, "INDEX events_visit_ends"),
        (backend.CARRIED_SINCE, {"since": 0}, "INDEX events_carried"),
        (
            backend.SITE_TOTALS,
            {"site_id": 1, "start": 0, "end": 1},
            "PRIMARY KEY",  # of consented_visitors
        ),
        (backend.OPEN_VISITS, {"keys": "[[1, 2]]"}, "INDEX visits_open"),
        (backend.LAST_STARTED, {"keys": "[[1, 2]]"}, "PRIMARY KEY"),
        (backend.CLOSE_VISITS, {"before": 0}, "INDEX visits_open_ended"),
    ],
    ids=[
        "midnight-carry-over",
        "carried-since",
        "returning-visitors",
        "open-visits",
        "consented-last-visit",
        "close-visits",
    ],
)
def test_visitor_lookups_use_their_partial_index(
    database: sqlite3.Connection, sql: str, params: dict[str, object], index: str
) -> None:
    assert f"USING {index} " in plan(database, sql, params) + " "


def test_the_headline_figures_read_one_covering_index_and_sort_nothing(
    database: sqlite3.Connection,
) -> None:
    """At 10M events the visits of 30 days are ~2M rows: a table read or a temporary B-tree
    (what COUNT(DISTINCT) and GROUP BY build) there is what made a report take seconds."""
    got = plan(database, backend.SITE_TOTALS, {"site_id": 1, "start": 0, "end": 1})
    assert "USING COVERING INDEX visits_site_started" in got
    assert "TEMP B-TREE" not in got
    assert "SCAN" not in got


def test_no_full_index_by_visitor(database: sqlite3.Connection) -> None:
    """Every insert would land on a random page of it (~60 us a row at 300k rows)."""
    indexes = database.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
    ).fetchall()
    full = [name for name, sql in indexes if sql and "visitor_id" in sql and "WHERE" not in sql]
    assert full == []

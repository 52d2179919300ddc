"""SQL for data-subject requests (server/subjects.py): a consented visitor's rows on one site,
found by the hash of their first-party ID, and a consent ID's records; read, or deleted with
the rollup days that counted them. As a part of SQLiteStorage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from .sqlite_rollups import ROWS_DELETED

if TYPE_CHECKING:
    from .writer import Writer

# What a visitor's hash finds, table by table. `consented = 1`: a cookieless hash is of the
# address under a daily salt, and must never be taken for a visitor's (2^-64 apart, but kept
# apart on principle). The events scan reads the site's (site_id, ts) index: there is no
# index by visitor (migration 0004 dropped it, ~4x the cost of every insert), and a request
# like this is rare.
VISITOR_ROWS = {
    "events": "FROM events WHERE site_id = :site_id AND consented = 1 AND visitor_id = :visitor",
    "visits": "FROM visits WHERE site_id = :site_id AND consented = 1 AND visitor_id = :visitor",
    "consented_visitors": (
        "FROM consented_visitors WHERE site_id = :site_id AND visitor_id = :visitor"
    ),
}
CONSENT_ROWS = {
    "consent_records": "FROM consent_records WHERE site_id = :site_id AND consent_id = :consent",
}
TABLES = (*VISITOR_ROWS, *CONSENT_ROWS)
ORDER = {"events": " ORDER BY ts, rowid", "visits": " ORDER BY started"}

# The visitor's hits by rowid, and those written after the scan that found them. The unary
# `+` keeps the planner off the (site_id, ts) index, which it otherwise picks for both: a scan
# of the site's every hit, inside the write transaction.
BY_ROWID = """
DELETE FROM events WHERE rowid IN (SELECT value FROM json_each(:ids))
AND +site_id = :site_id AND +visitor_id = :visitor
"""
NEWER_HITS = (
    "FROM events WHERE rowid > :last AND +site_id = :site_id AND +consented = 1 "
    "AND +visitor_id = :visitor"
)

# Every rollup key of a site (days, weeks, trailing windows; every segment) and its span.
ROLLUP_KEYS = "SELECT segment, day, start, end FROM rollup_days WHERE site_id = :site_id"


class SubjectTables:
    """A data subject's rows; SQLiteStorage supplies the connections."""

    if TYPE_CHECKING:
        writer: Writer

        async def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

    async def subject_rows(
        self, site_id: int, visitors: Sequence[int], consent_id: str | None
    ) -> dict[str, list[dict[str, Any]]]:
        """Every row of the site under any of `visitors` (hashes) or `consent_id`, per table
        (each table of TABLES present, empty or not)."""
        found: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
        for visitor in visitors:
            for table, where in VISITOR_ROWS.items():
                params: dict[str, Any] = {"site_id": site_id, "visitor": visitor}
                found[table] += await self._rows(f"SELECT * {where}{ORDER.get(table, '')}", params)
        if consent_id is not None:
            for table, where in CONSENT_ROWS.items():
                by_id: dict[str, Any] = {"site_id": site_id, "consent": consent_id}
                found[table] += await self._rows(f"SELECT * {where} ORDER BY id", by_id)
        for record in found["consent_records"]:
            record["choices"] = json.loads(record["choices"])
        return found

    async def erase_subject(
        self, site_id: int, visitors: Sequence[int], consent_id: str | None
    ) -> dict[str, int]:
        """Delete what subject_rows finds, in one transaction, and the rollup keys that
        counted the visitor (the builder sums them again from what is left, so reports stay
        right); rows deleted per table.

        The visitor's hits are found first, by a reader: that scan of the site's events takes
        ~0.4 s at 1.1M events, and inside the write transaction it held the write lock (and
        every ingest flush behind it) for 1.1 s. The transaction then deletes them by rowid,
        and looks again only at rows written since the scan began (rowids past the largest
        one before it: SQLite gives a new row the largest rowid plus one)."""
        hits: list[tuple[int, list[int], set[int]]] = []
        for visitor in visitors:
            params: dict[str, Any] = {"site_id": site_id, "visitor": visitor}
            last = await self._rows("SELECT COALESCE(MAX(rowid), 0) AS n FROM events", {})
            rows = await self._rows(f"SELECT rowid AS id, ts {VISITOR_ROWS['events']}", params)
            hits.append((int(last[0]["n"]), [r["id"] for r in rows], {r["ts"] for r in rows}))

        async def job(conn: aiosqlite.Connection) -> dict[str, int]:
            deleted = {table: 0 for table in TABLES}
            times: set[int] = set()
            for visitor, (last, ids, seen) in zip(visitors, hits, strict=True):
                params: dict[str, Any] = {"site_id": site_id, "visitor": visitor}
                times |= seen
                cursor = await conn.execute(BY_ROWID, {**params, "ids": json.dumps(ids)})
                deleted["events"] += max(cursor.rowcount, 0)
                since = NEWER_HITS
                async with conn.execute(f"SELECT ts {since}", {**params, "last": last}) as found:
                    times.update(int(row[0]) for row in await found.fetchall())
                cursor = await conn.execute(f"DELETE {since}", {**params, "last": last})
                deleted["events"] += max(cursor.rowcount, 0)
                # Visits are a quarter as many, and their index covers the look-up.
                async with conn.execute(f"SELECT started {VISITOR_ROWS['visits']}", params) as v:
                    times.update(int(row[0]) for row in await v.fetchall())
                for table in ("visits", "consented_visitors"):
                    cursor = await conn.execute(f"DELETE {VISITOR_ROWS[table]}", params)
                    deleted[table] += max(cursor.rowcount, 0)
            if consent_id is not None:
                for table, where in CONSENT_ROWS.items():
                    by_id: dict[str, Any] = {"site_id": site_id, "consent": consent_id}
                    cursor = await conn.execute(f"DELETE {where}", by_id)
                    deleted[table] += max(cursor.rowcount, 0)
            if times:
                deleted["rollup_days"] = await _forget_rollups(conn, site_id, times)
            await conn.execute(ROWS_DELETED, {"site_id": site_id})
            return deleted

        return await self.writer.run(job)


async def _forget_rollups(conn: aiosqlite.Connection, site_id: int, times: set[int]) -> int:
    """Delete the rollup keys whose span holds one of `times`: their sums counted the erased
    visitor. A key without its rollup_days row is built again (sqlite_rollups.build), and
    reports read raw rows for it meanwhile. The keys deleted.

    A build in the rollup process that read its snapshot before this commits does not store
    what it summed (ROWS_DELETED, bumped in the same transaction)."""
    async with conn.execute(ROLLUP_KEYS, {"site_id": site_id}) as cursor:
        keys = [
            (segment, day)
            for segment, day, start, end in await cursor.fetchall()
            if any(start <= moment < end for moment in times)
        ]
    for segment, day in keys:
        params = {"site_id": site_id, "segment": segment, "day": day}
        for table in ("rollups", "rollup_returns", "rollup_days"):
            await conn.execute(
                f"DELETE FROM {table} WHERE site_id = :site_id AND segment = :segment "
                "AND day = :day",
                params,
            )
    return len(keys)

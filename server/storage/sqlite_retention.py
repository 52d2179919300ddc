"""SQL for retention (migration 0019): periods, the purge's batched deletes, deleting a whole
site, and giving the freed pages back. As a part of SQLiteStorage."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from .sqlite_rollups import ROWS_DELETED

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from .writer import Writer

RETENTION_ROWS = """
SELECT s.id AS site_id, s.retention AS site_retention, c.name AS customer,
       c.retention AS customer_retention, c.consent_proof, c.keep_aggregates
FROM sites AS s LEFT JOIN customers AS c ON c.id = s.customer_id
"""

_EXPIRED_KEYS = "SELECT day FROM rollup_days WHERE site_id = :site_id AND start < :cutoff"

# What each rule deletes: a table and the rows of a site past a cutoff. :cutoff is a Unix time,
# :day a date ('YYYY-MM-DD') in the zone the table's days are in (rollups: the site's, drops:
# UTC). Each runs in batches of :batch rows, one transaction each, so ingest batches get the
# write lock between two of them.
RULES: dict[str, tuple[str, str]] = {
    # (the rows past their period, how to delete a batch of them)
    "events": (
        "FROM events WHERE site_id = :site_id AND ts < :cutoff",
        "DELETE FROM events WHERE rowid IN "
        "(SELECT rowid FROM events WHERE site_id = :site_id AND ts < :cutoff LIMIT :batch)",
    ),
    # A visit goes with its start: what it holds (entry page, source, place) is its first hit's.
    "visits": (
        "FROM visits WHERE site_id = :site_id AND started < :cutoff",
        "DELETE FROM visits WHERE id IN "
        "(SELECT id FROM visits WHERE site_id = :site_id AND started < :cutoff LIMIT :batch)",
    ),
    # A consented visitor not seen since the cutoff is forgotten; one seen since keeps a row,
    # whose first visit is moved up to the cutoff below (CLAMP_FIRST_SEEN).
    "consented_visitors": (
        "FROM consented_visitors WHERE site_id = :site_id "
        "AND COALESCE(last_started, first_seen) < :cutoff",
        "DELETE FROM consented_visitors WHERE site_id = :site_id AND visitor_id IN "
        "(SELECT visitor_id FROM consented_visitors WHERE site_id = :site_id "
        "AND COALESCE(last_started, first_seen) < :cutoff LIMIT :batch)",
    ),
    "drops": (
        "FROM drops WHERE site_id = :site_id AND day < :utc_day",
        "DELETE FROM drops WHERE rowid IN "
        "(SELECT rowid FROM drops WHERE site_id = :site_id AND day < :utc_day LIMIT :batch)",
    ),
    # A rollup key is a day ('2026-01-05'), a week ('W2026-01-05') or a trailing window
    # ('S30:2026-03-14'): each goes once its span starts before the cutoff, as it then sums
    # expired rows. A key whose span straddles the cutoff is summed again from what is left.
    "rollups": (
        f"FROM rollups WHERE site_id = :site_id AND day IN ({_EXPIRED_KEYS})",
        "DELETE FROM rollups WHERE site_id = :site_id AND day = ("
        f"{_EXPIRED_KEYS} AND EXISTS (SELECT 1 FROM rollups AS r WHERE r.site_id = :site_id "
        "AND r.day = rollup_days.day) ORDER BY day LIMIT 1)",
    ),
    # WITHOUT ROWID: its batch is the whole statement (thousands of rows a day, not millions).
    "rollup_returns": (
        f"FROM rollup_returns WHERE site_id = :site_id AND (day IN ({_EXPIRED_KEYS}) "
        "OR previous_day < :day)",
        f"DELETE FROM rollup_returns WHERE site_id = :site_id AND (day IN ({_EXPIRED_KEYS}) "
        "OR previous_day < :day)",
    ),
    # Last of the rollups: a key without its rollup_days row is one to build again.
    "rollup_days": (
        "FROM rollup_days WHERE site_id = :site_id AND start < :cutoff",
        "DELETE FROM rollup_days WHERE site_id = :site_id AND start < :cutoff",
    ),
    "consent_records": (
        "FROM consent_records WHERE site_id = :site_id AND created_at < :consent_cutoff",
        "DELETE FROM consent_records WHERE id IN (SELECT id FROM consent_records "
        "WHERE site_id = :site_id AND created_at < :consent_cutoff LIMIT :batch)",
    ),
}
AGGREGATES = ("rollups", "rollup_returns", "rollup_days")

# A returning consented visitor keeps their row, but not a first visit older than the cutoff.
CLAMP_FIRST_SEEN = """
UPDATE consented_visitors SET first_seen = :cutoff
WHERE site_id = :site_id AND first_seen < :cutoff
"""
# Nor may a later visit name when an expired one started.
CLEAR_PREVIOUS = """
UPDATE visits SET previous_started = NULL
WHERE site_id = :site_id AND consented = 1 AND previous_started < :cutoff
  AND started >= :cutoff
"""

# Whole-install rules: no site, one cutoff (UTC).
GLOBAL_RULES: dict[str, tuple[str, str]] = {
    "audit_log": (
        "FROM audit_log WHERE at < :cutoff",
        "DELETE FROM audit_log WHERE id IN "
        "(SELECT id FROM audit_log WHERE at < :cutoff LIMIT :batch)",
    ),
    "mail_runs": (
        "FROM mail_runs WHERE claimed_at < :cutoff",
        "DELETE FROM mail_runs WHERE id IN "
        "(SELECT id FROM mail_runs WHERE claimed_at < :cutoff LIMIT :batch)",
    ),
    "purge_runs": (
        "FROM purge_runs WHERE started_at < :cutoff",
        "DELETE FROM purge_runs WHERE started_at < :cutoff",
    ),
}

# Every table holding a site's rows, in the order a site's deletion empties them; events come
# first and in batches (they are nearly all of it).
# The tables rollups sum: a build that read rows since deleted from them must not store.
SUMMED = ("events", "visits")
SITE_DATA = ("events", "visits", "consented_visitors", "drops", "rollups", "rollup_returns",
             "rollup_days", "segments", "consent_records", "consent_configs", "goals", "shares",
             "mail_runs", "report_subscriptions", "alert_runs", "alert_settings",
             "site_purges")  # fmt: skip

CLAIM_PURGE = """
INSERT INTO purge_runs (started_at, by)
SELECT :now, :by WHERE NOT EXISTS (
    SELECT 1 FROM purge_runs WHERE finished_at IS NULL AND started_at > :now - 3600
)
"""


class RetentionTables:
    """Retention's reads and writes; SQLiteStorage supplies the connections."""

    if TYPE_CHECKING:
        writer: Writer

        async def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

        async def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> int: ...

        def _read(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def retention_rows(self) -> list[dict[str, Any]]:
        """Per site: its own period, its customer's name, period, proof period and choice."""
        return await self._rows(RETENTION_ROWS, {})

    async def set_site_retention(self, site_id: int, retention: str | None) -> None:
        await self._execute(
            "UPDATE sites SET retention = :retention WHERE id = :site_id",
            {"retention": retention, "site_id": site_id},
        )

    async def set_customer_retention(self, customer_id: int, **changes: Any) -> None:
        """Change any of retention, consent_proof, keep_aggregates (None: back to default,
        for the periods)."""
        allowed = {"retention", "consent_proof", "keep_aggregates"}
        if not changes or set(changes) - allowed:
            raise ValueError(f"retention settings are {sorted(allowed)}")
        assignments = ", ".join(f"{name} = :{name}" for name in sorted(changes))
        await self._execute(
            f"UPDATE customers SET {assignments} WHERE id = :customer_id",
            {**changes, "customer_id": customer_id},
        )

    async def customer_retention(self, customer_id: int) -> dict[str, Any] | None:
        """A customer's own settings: retention, consent_proof (None: the default), and
        keep_aggregates."""
        rows = await self._rows(
            "SELECT id, name, retention, consent_proof, keep_aggregates FROM customers "
            "WHERE id = :customer_id",
            {"customer_id": customer_id},
        )
        return rows[0] if rows else None

    async def claim_purge(self, now: int, by: str) -> int | None:
        """A run's ID, or None while another run (under an hour old) is going."""

        async def job(conn: aiosqlite.Connection) -> int | None:
            cursor = await conn.execute(CLAIM_PURGE, {"now": now, "by": by})
            return int(cursor.lastrowid or 0) if cursor.rowcount else None

        return await self.writer.run(job)

    async def finish_purge(self, run_id: int, now: int, deleted: str) -> None:
        await self._execute(
            "UPDATE purge_runs SET finished_at = :now, deleted = :deleted WHERE id = :id",
            {"now": now, "deleted": deleted, "id": run_id},
        )

    async def last_purge(self) -> dict[str, Any] | None:
        """The latest finished purge run (`zeef audit`: did the purge run lately?)."""
        rows = await self._rows(
            "SELECT * FROM purge_runs WHERE finished_at IS NOT NULL "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            {},
        )
        return rows[0] if rows else None

    async def site_purged(self, site_id: int) -> dict[str, Any] | None:
        rows = await self._rows("SELECT * FROM site_purges WHERE site_id = :s", {"s": site_id})
        return rows[0] if rows else None

    async def mark_site_purged(
        self, site_id: int, cutoff: int, consent_cutoff: int, keep_aggregates: bool
    ) -> None:
        await self._execute(
            "INSERT OR REPLACE INTO site_purges VALUES (:site_id, :cutoff, :consent, :keep)",
            {"site_id": site_id, "cutoff": cutoff, "consent": consent_cutoff,
             "keep": int(keep_aggregates)},
        )  # fmt: skip

    async def expired_rows(self, rule: str, params: dict[str, Any]) -> int:
        """How many rows `rule` (a table in RULES or GLOBAL_RULES) would delete."""
        where = (RULES.get(rule) or GLOBAL_RULES[rule])[0]
        rows = await self._rows(f"SELECT COUNT(*) AS n {where}", params)
        return int(rows[0]["n"])

    async def delete_expired(self, rule: str, params: dict[str, Any]) -> int:
        """Delete one batch (params['batch'] rows at most) of what `rule` finds; the rows
        deleted, 0 when none are left."""
        statement = (RULES.get(rule) or GLOBAL_RULES[rule])[1]

        async def job(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(statement, params)
            count = max(cursor.rowcount, 0)
            if count and rule in SUMMED:
                await conn.execute(ROWS_DELETED, params)
            return count

        return await self.writer.run(job)

    async def forget_expired_firsts(self, params: dict[str, Any]) -> None:
        async def job(conn: aiosqlite.Connection) -> None:
            await conn.execute(CLAMP_FIRST_SEEN, params)
            await conn.execute(CLEAR_PREVIOUS, params)

        await self.writer.run(job)

    async def delete_site_rows(self, site_id: int, table: str, batch: int) -> int:
        """One batch of a site's rows in `table` (one of SITE_DATA); 0 when none are left."""
        if table not in SITE_DATA:
            raise ValueError(table)
        if table == "events":
            sql = (
                "DELETE FROM events WHERE rowid IN "
                "(SELECT rowid FROM events WHERE site_id = :site_id LIMIT :batch)"
            )
        else:
            sql = f"DELETE FROM {table} WHERE site_id = :site_id"

        async def job(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(sql, {"site_id": site_id, "batch": batch})
            await conn.execute(ROWS_DELETED, {"site_id": site_id})
            return max(cursor.rowcount, 0)

        return await self.writer.run(job)

    async def delete_site_record(self, site_id: int) -> None:
        await self._execute("DELETE FROM sites WHERE id = :site_id", {"site_id": site_id})

    async def checkpoint_aside(self) -> None:
        """Copy what the WAL holds into the database file from a reader's connection, beside
        the writer, without waiting on anyone (PASSIVE). A purge fills the WAL fast; left to
        SQLite's automatic checkpoint, the commit that took it past 1,000 pages did the copy,
        and that was most often an ingest flush (bench/purge.py with 1M events: p50 ingest
        latency while purging 2.86x the quiet figure, 1.21x with this after each batch)."""
        async with self._read() as conn, conn.execute("PRAGMA wal_checkpoint(PASSIVE)") as cursor:
            await cursor.fetchall()

    async def reclaim(self, step: int = 0, pause: float = 0.0) -> dict[str, int]:
        """Give freed pages back to the file system (incremental vacuum, `step` pages per
        write-lock hold, 0: all at once) and fold the WAL into the database, truncating it,
        so deleted rows are in neither file."""

        async def pages(conn: aiosqlite.Connection) -> tuple[int, int]:
            async with conn.execute("PRAGMA auto_vacuum") as cursor:
                mode = (await cursor.fetchone() or (0,))[0]
            async with conn.execute("PRAGMA freelist_count") as cursor:
                free = (await cursor.fetchone() or (0,))[0]
            return int(mode), int(free)

        async def vacuum_step(conn: aiosqlite.Connection) -> None:
            # Through executescript: the sqlite3 module steps a PRAGMA once, and this one
            # frees a page per step (one page of the whole freelist, seen in a test).
            await conn.executescript(f"PRAGMA incremental_vacuum({int(step)});")

        async def checkpoint(conn: aiosqlite.Connection) -> int:
            async with conn.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                busy, _, _ = await cursor.fetchone() or (1, 0, 0)
            return int(busy)

        mode, freed = await self.writer.run(pages, transaction=False)
        left = freed
        while mode == 2 and left:
            await self.writer.run(vacuum_step, transaction=False)
            before, (_, left) = left, await self.writer.run(pages, transaction=False)
            if left >= before:
                break  # nothing more can be returned (another writer's pages, say)
            await self.checkpoint_aside()
            await asyncio.sleep(pause)
        busy = await self.writer.run(checkpoint, transaction=False)
        return {"auto_vacuum": mode, "freed_pages": freed, "checkpoint_busy": busy}

    async def vacuum(self) -> int:
        """Rewrite the whole file with incremental auto-vacuum on (older files were made
        without it); the file's size after, in bytes. Holds the write lock throughout."""

        async def job(conn: aiosqlite.Connection) -> int:
            await conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            await conn.execute("VACUUM")
            await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            async with conn.execute(
                "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size"
            ) as cursor:
                return int((await cursor.fetchone() or (0,))[0])

        return await self.writer.run(job, transaction=False)

    async def delete_customer(self, customer_id: int) -> int:
        """A customer's users (their sessions, links and API keys) and the customer itself,
        once its sites are gone; the users deleted."""

        async def job(conn: aiosqlite.Connection) -> int:
            params = {"customer_id": customer_id}
            users = "SELECT id FROM users WHERE customer_id = :customer_id"
            await conn.execute(f"DELETE FROM sessions WHERE user_id IN ({users})", params)
            await conn.execute(f"DELETE FROM password_links WHERE user_id IN ({users})", params)
            await conn.execute(
                "DELETE FROM api_keys WHERE owner IN "
                "(SELECT email FROM users WHERE customer_id = :customer_id)",
                params,
            )
            cursor = await conn.execute(
                "DELETE FROM users WHERE customer_id = :customer_id", params
            )
            count = max(cursor.rowcount, 0)
            await conn.execute(
                "UPDATE sites SET customer_id = NULL WHERE customer_id = :customer_id", params
            )
            await conn.execute("DELETE FROM customers WHERE id = :customer_id", params)
            return count

        return await self.writer.run(job)

"""SQL for `zeef export` and `zeef import` (server/portability.py, docs/export-format.md): a
site's rows read in one snapshot, and a staged export copied in under a new site id in one
transaction. As a part of SQLiteStorage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

if TYPE_CHECKING:
    from .writer import Writer

# The columns of each member of a schema-1 export, in order: the table's own minus site_id
# (the target gives a new one) and minus row ids nothing refers to. visits.id and segments.id
# stay: events.visit_id and rollups' segment refer to them, and the import re-keys both.
COLUMNS: dict[str, tuple[str, ...]] = {
    "site": ("domain", "timezone", "created_at", "honour_dnt", "retention"),
    "goals": ("kind", "event_name", "page_path", "display_name", "currency", "created_at"),
    "consent_config": ("config", "updated_at"),
    "consent_records": ("consent_id", "created_at", "action", "choices", "revision",
                        "language", "texts_hash", "path", "gpc"),
    "consented_visitors": ("visitor_id", "first_seen", "last_started"),
    "visits": ("id", "visitor_id", "started", "ended", "open", "hostname", "entry_page",
               "exit_page", "pageviews", "events", "interactions", "engaged_ms",
               "referrer_host", "referrer_path", "utm_source", "utm_medium", "utm_campaign",
               "utm_term", "utm_content", "browser", "browser_version", "os", "os_version",
               "device", "country", "region", "city", "consented", "previous_started",
               "scroll_depths", "scroll_sum", "scroll_pages"),
    "events": ("ts", "visitor_id", "name", "hostname", "path", "referrer_host",
               "referrer_path", "utm_source", "utm_medium", "utm_campaign", "utm_term",
               "utm_content", "browser", "browser_version", "os", "os_version", "device",
               "country", "region", "city", "props", "revenue_amount", "revenue_currency",
               "interactive", "scroll_depth", "engaged_ms", "consented", "carried", "visit_id"),
    "drops": ("day", "reason", "count", "example"),
    "segments": ("id", "filters", "asked_at"),
    "rollup_days": ("segment", "day", "timezone", "start", "covered", "end", "built_at",
                    "final", "version"),
    "rollups": ("segment", "dimension", "day", "value", "visitors", "visits", "pageviews",
                "events", "bounces", "duration_ms", "scroll_sum", "scroll_pages"),
    "rollup_returns": ("segment", "dimension", "day", "value", "previous_day", "visitors",
                       "visits"),
}  # fmt: skip

# The rollup keys (segment, day) that no build can sum again: those whose span ends before the
# site's first remaining visit, as the builder sums from that visit's day on (sqlite_rollups.
# build). They exist where a purge deleted raw rows while the customer kept aggregates (with
# the empty days between its cutoff and the first visit left); every other key is summed again
# in the target from the events, so it is not exported.
_KEPT = """
SELECT segment, day FROM rollup_days WHERE site_id = :site_id AND "end" <= COALESCE(
    (SELECT MIN(started) FROM visits WHERE site_id = :site_id), 1 << 62)
"""

# Every read is of one site's rows: WHERE site_id = :site_id (or the site's own row).
_FROM: dict[str, str] = {
    "site": "FROM sites WHERE id = :site_id",
    "goals": "FROM goals WHERE site_id = :site_id ORDER BY id",
    "consent_config": "FROM consent_configs WHERE site_id = :site_id",
    "consent_records": "FROM consent_records WHERE site_id = :site_id ORDER BY created_at, id",
    "consented_visitors": "FROM consented_visitors WHERE site_id = :site_id ORDER BY visitor_id",
    # The orders of events_site_ts and visits_site_started (which hold the rowid): no sort
    # before the first row, however many there are.
    "visits": "FROM visits WHERE site_id = :site_id ORDER BY started",
    "events": "FROM events WHERE site_id = :site_id ORDER BY ts, rowid",
    "drops": "FROM drops WHERE site_id = :site_id ORDER BY day, reason",
    "segments": "FROM segments WHERE site_id = :site_id "
    f"AND id IN (SELECT segment FROM ({_KEPT})) ORDER BY id",
    "rollup_days": f"FROM rollup_days WHERE site_id = :site_id AND (segment, day) IN ({_KEPT})",
    "rollups": f"FROM rollups WHERE site_id = :site_id AND (segment, day) IN ({_KEPT})",
    "rollup_returns": "FROM rollup_returns WHERE site_id = :site_id "
    f"AND (segment, day) IN ({_KEPT})",
}

# Rows fetched per trip to the reader's thread.
FETCH = 2_000


def _quoted(columns: Sequence[str]) -> str:
    # "end" is a keyword.
    return ", ".join(f'"{c}"' for c in columns)


def select_rows(table: str) -> str:
    return f"SELECT {_quoted(COLUMNS[table])} {_FROM[table]}"


def select_lines(table: str) -> str:
    pairs = ", ".join(f"'{c}', \"{c}\"" for c in COLUMNS[table])
    return f"SELECT json_object({pairs}) {_FROM[table]}"


@dataclass
class SiteSnapshot:
    """One site's rows as of one moment: every table read in the same read transaction, so
    events and visits a running server writes meanwhile do not half appear."""

    conn: aiosqlite.Connection
    site_id: int

    async def count(self, table: str) -> int:
        async with self.conn.execute(
            f"SELECT COUNT(*) {_FROM[table]}", {"site_id": self.site_id}
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def lines(self, table: str) -> AsyncIterator[str]:
        """The rows as JSON objects, made by SQLite's json_object: ~4x the rows a second of
        encoding them in Python (bench/portability.py). Not for a table with BLOB values,
        which JSON cannot hold (rows() and the caller's encoding, there)."""
        async with self.conn.execute(select_lines(table), {"site_id": self.site_id}) as cursor:
            while batch := await cursor.fetchmany(FETCH):
                for (line,) in batch:
                    yield line

    async def rows(self, table: str) -> AsyncIterator[Sequence[Any]]:
        async with self.conn.execute(select_rows(table), {"site_id": self.site_id}) as cursor:
            while batch := await cursor.fetchmany(FETCH):
                for row in batch:
                    yield row


def create_stage(conn: Any) -> None:
    """The staging file's tables (a sqlite3 connection): one per member, untyped columns,
    so values go in and out as the export wrote them."""
    for table, columns in COLUMNS.items():
        conn.execute(f"CREATE TABLE {table} ({_quoted(columns)})")


def stage_insert(table: str) -> str:
    columns = COLUMNS[table]
    return f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})"


# The copy from the staging file (attached as `stage`) into the target, under :site_id. Visit
# ids move by :offset, past every id the target has, so none collides; events follow them.
_COPY: dict[str, str] = {
    "goals": "INSERT INTO main.goals (site_id, {c}) SELECT :site_id, {c} FROM stage.goals "
    "ORDER BY rowid",
    "consent_config": "INSERT INTO main.consent_configs (site_id, {c}) "
    "SELECT :site_id, {c} FROM stage.consent_config",
    "consent_records": "INSERT INTO main.consent_records (site_id, {c}) "
    "SELECT :site_id, {c} FROM stage.consent_records ORDER BY rowid",
    "consented_visitors": "INSERT INTO main.consented_visitors (site_id, {c}) "
    "SELECT :site_id, {c} FROM stage.consented_visitors",
    "visits": "INSERT INTO main.visits (site_id, {c}) SELECT :site_id, id + :offset, {rest} "
    "FROM stage.visits ORDER BY rowid",
    "events": "INSERT INTO main.events (site_id, {c}) SELECT :site_id, {rest}, "
    "visit_id + :offset FROM stage.events ORDER BY rowid",
    "drops": "INSERT INTO main.drops (site_id, {c}) SELECT :site_id, {c} FROM stage.drops",
    "segments": "INSERT INTO main.segments (site_id, filters, asked_at) "
    "SELECT :site_id, filters, asked_at FROM stage.segments ORDER BY rowid",
    # Segment 0 is the whole site; another is the target's segment with the same filters.
    "rollup_days": "INSERT INTO main.rollup_days (site_id, {c}) SELECT :site_id, {segment}, "
    "{rest} FROM stage.rollup_days AS r",
    "rollups": "INSERT INTO main.rollups (site_id, {c}) SELECT :site_id, {segment}, {rest} "
    "FROM stage.rollups AS r",
    "rollup_returns": "INSERT INTO main.rollup_returns (site_id, {c}) "
    "SELECT :site_id, {segment}, {rest} FROM stage.rollup_returns AS r",
}
_SEGMENT = """CASE WHEN r.segment = 0 THEN 0 ELSE (
    SELECT m.id FROM main.segments AS m JOIN stage.segments AS s ON s.filters = m.filters
    WHERE m.site_id = :site_id AND s.id = r.segment) END"""

INSERT_SITE = """
INSERT INTO main.sites (domain, timezone, created_at, honour_dnt, retention, customer_id)
SELECT :domain, timezone, created_at, honour_dnt, retention, :customer_id FROM stage.site
"""

# Past the target's last visit id and below the export's first: every id, and every visit id
# an event names (a visit purged before its last hits, say), lands past the target's.
OFFSET = """
SELECT (SELECT COALESCE(MAX(id), 0) FROM main.visits) + 1 - MIN(
    (SELECT COALESCE(MIN(id), 0) FROM stage.visits),
    (SELECT COALESCE(MIN(visit_id), 0) FROM stage.events))
"""


def copy_sql(table: str) -> str:
    columns = COLUMNS[table]
    rest = [c for c in columns if c not in ("id", "segment", "visit_id")]
    return _COPY[table].format(c=_quoted(columns), rest=_quoted(rest), segment=_SEGMENT)


class SiteTaken(ValueError):
    """The target has a site with that domain (checked again inside the import's
    transaction, so a site added meanwhile is not doubled)."""


class PortabilityTables:
    """Export's reads and import's one write; SQLiteStorage supplies the connections."""

    if TYPE_CHECKING:
        writer: Writer

        def _read(self) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]: ...

    @contextlib.asynccontextmanager
    async def site_snapshot(self, site_id: int) -> AsyncIterator[SiteSnapshot]:
        """A read transaction on a reader: under WAL a running server writes on while it is
        open (the WAL grows until it ends, as the checkpoint cannot pass it)."""
        async with self._read() as conn:
            await conn.execute("BEGIN")
            try:
                yield SiteSnapshot(conn, site_id)
            finally:
                await conn.execute("COMMIT")

    async def import_staged(
        self, stage: Path, domain: str, customer_id: int | None
    ) -> dict[str, int]:
        """Copy a staged export (portability.stage) in as a new site `domain`, in one
        transaction through the writer; rows copied per table, with the new site's id under
        'site_id'. SiteTaken if the domain is registered already."""

        async def job(conn: aiosqlite.Connection) -> dict[str, int]:
            # ATTACH is refused inside a transaction: this job opens its own after it.
            await conn.execute("ATTACH DATABASE ? AS stage", (str(stage),))
            try:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    copied = await _copy(conn, domain, customer_id)
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                    raise
            finally:
                await conn.execute("DETACH DATABASE stage")
            return copied

        return await self.writer.run(job, transaction=False)


async def _copy(conn: aiosqlite.Connection, domain: str, customer_id: int | None) -> dict[str, int]:
    async with conn.execute("SELECT 1 FROM main.sites WHERE domain = ?", (domain,)) as cursor:
        if await cursor.fetchone():
            raise SiteTaken(domain)
    cursor = await conn.execute(INSERT_SITE, {"domain": domain, "customer_id": customer_id})
    site_id = int(cursor.lastrowid or 0)
    async with conn.execute(OFFSET) as cursor:
        row = await cursor.fetchone()
    params = {"site_id": site_id, "offset": int(row[0]) if row else 0}
    copied = {"site_id": site_id}
    for table in _COPY:
        cursor = await conn.execute(copy_sql(table), params)
        copied[table] = max(cursor.rowcount, 0)
    return copied

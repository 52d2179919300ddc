"""The embedded backend: one SQLite file through aiosqlite, in WAL mode.

One writer per process (storage/writer.py: a task owning the write connection, one
transaction a job) and a small pool of readers, so reports never wait behind a batch insert.
Several processes share the file: SQLite serialises their writes, busy_timeout makes them
queue instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

from .. import visits
from ..events import ConsentRecord, Event, Site
from ..goals import Goal
from ..reports.filters import Filter
from ..visits import VISIT_GAP, Visit
from . import CustomerExists, DropCounts, GoalExists, SiteExists
from . import sqlite_reports as reports_sql
from . import sqlite_rollup_reports as rolled_sql
from . import sqlite_rollups as rollups_sql
from .sqlite_accounts import AccountTables
from .sqlite_mail import MailTables
from .sqlite_portability import PortabilityTables
from .sqlite_retention import RetentionTables
from .sqlite_shares import ShareTables
from .sqlite_subjects import SubjectTables
from .writer import Writer, WriterStatus

if TYPE_CHECKING:
    from ..reports import Query
    from ..reports.filters import GoalLike

MIGRATIONS = "migrations/sqlite"
# How often the writer closes visits that can take no more hits (data time, seconds).
CLOSE_EVERY = 60

# Absent values are bound as 0 (text columns) or -1 (counts) and turned into NULL here. Python's
# sqlite3 binds None through its adaptation lookup (a tuple built, a dict searched, an adapter
# called), ~1,400 instructions a value, and an event row has about fifteen; an empty string
# costs ~650 (SQLite copies it), an integer ~200 (bench/cost.py, callgrind). A text is never
# equal to the integer 0 in SQLite (not even '0'), and no count is negative, so nothing real
# is turned into NULL.
INSERT_EVENT = """
INSERT INTO events (
    site_id, ts, visitor_id, name, hostname, path, referrer_host, referrer_path,
    utm_source, utm_medium, utm_campaign, utm_term, utm_content,
    browser, browser_version, os, os_version, device, country, region, city,
    props, revenue_amount, revenue_currency, interactive, scroll_depth, engaged_ms, consented,
    carried, visit_id
) VALUES (
    ?, ?, ?, ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0),
    NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0),
    ?, ?, ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0),
    NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), ?, NULLIF(?, -1), NULLIF(?, -1), ?,
    ?, NULLIF(?, 0)
)
"""

# The open visits of a batch's visitors (visits_open holds only open ones; see 0007).
OPEN_VISITS = """
SELECT v.id, v.site_id, v.visitor_id, v.started, v.ended, v.entry_page, v.exit_page,
       v.pageviews, v.events, v.interactions, v.engaged_ms, v.consented, v.previous_started,
       v.scroll_depths
FROM json_each(:keys) AS j
JOIN visits AS v INDEXED BY visits_open
  ON v.site_id = j.value ->> 0 AND v.visitor_id = j.value ->> 1 AND v.open = 1
"""

# When consented visitors with no open visit last started one: their ID outlives the open
# window, and a visit must know its visitor's previous one (visits.Visit.previous_started).
LAST_STARTED = """
SELECT c.site_id, c.visitor_id, c.last_started
FROM json_each(:keys) AS j
JOIN consented_visitors AS c ON c.site_id = j.value ->> 0 AND c.visitor_id = j.value ->> 1
WHERE c.last_started IS NOT NULL
"""

NEXT_VISIT_ID = "SELECT COALESCE(MAX(id), 0) + 1 FROM visits"

# Absent texts bound as 0 and turned into NULL, as in INSERT_EVENT; no previous visit as -1.
INSERT_VISIT = """
INSERT INTO visits (
    id, site_id, visitor_id, started, ended, hostname, entry_page, exit_page, pageviews,
    events, interactions, engaged_ms, referrer_host, referrer_path, utm_source, utm_medium,
    utm_campaign, utm_term, utm_content, browser, browser_version, os, os_version, device,
    country, region, city, consented, previous_started, scroll_depths, scroll_sum, scroll_pages
) VALUES (
    ?, ?, ?, ?, ?, ?, ?, ?, ?,
    ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0),
    NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), ?, ?, ?, ?, ?,
    NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), ?, NULLIF(?, -1), NULLIF(?, 0), ?, ?
)
"""

UPDATE_VISIT = """
UPDATE visits SET started = ?, ended = ?, entry_page = ?, exit_page = ?, pageviews = ?,
    events = ?, interactions = ?, engaged_ms = ?, consented = ?, previous_started = ?,
    scroll_depths = ?, scroll_sum = ?, scroll_pages = ?
WHERE id = ?
"""

# Visits past the time a hit can still join them leave visits_open, which keeps it small.
CLOSE_VISITS = """
UPDATE visits INDEXED BY visits_open_ended SET open = 0 WHERE open = 1 AND ended < :before
"""

# Which of yesterday's visitor hashes were active in the 30 minutes before each new event:
# those visits go on under yesterday's hash instead of being split at midnight. The last term
# is events_visit_ends's predicate, repeated so that SQLite can use that partial index: only
# a hit late in a day or carried over can be a visit's last hit before a later midnight hit.
CONTINUING_VISITORS = """
SELECT DISTINCT j.value ->> 0, j.value ->> 1
FROM json_each(:candidates) AS j
JOIN events AS e
  ON e.site_id = j.value ->> 0 AND e.visitor_id = j.value ->> 1 AND e.ts > j.value ->> 2
 AND (e.carried = 1 OR e.ts % 86400 >= 84600)
"""

# A consented visitor's first hit and the start of their last visit, in one upsert: an earlier
# first hit wins when processes flush out of order, and a row already up to date is not
# written again (no page is dirtied for a visitor already known).
ADD_CONSENTED_VISITOR = """
INSERT INTO consented_visitors (site_id, visitor_id, first_seen, last_started)
VALUES (?, ?, ?, NULLIF(?, -1))
ON CONFLICT (site_id, visitor_id) DO UPDATE
SET first_seen = MIN(first_seen, excluded.first_seen),
    last_started = NULLIF(MAX(COALESCE(last_started, -1), COALESCE(excluded.last_started, -1)), -1)
WHERE excluded.first_seen < first_seen
   OR COALESCE(excluded.last_started, -1) > COALESCE(last_started, -1)
"""

# Whether any hit after :since was carried over from yesterday's hash (events_carried).
CARRIED_SINCE = "SELECT EXISTS (SELECT 1 FROM events WHERE carried = 1 AND ts > :since)"

SITES = """
SELECT s.id, s.domain, s.timezone, s.created_at, s.honour_dnt,
       COALESCE(json_extract(c.config, '$.require_consent'), 0), s.customer_id
FROM sites AS s LEFT JOIN consent_configs AS c ON c.site_id = s.id
ORDER BY s.domain
"""

INSERT_GOAL = """
INSERT INTO goals (site_id, kind, event_name, page_path, display_name, currency, created_at)
VALUES (:site_id, :kind, :event_name, :page_path, :display_name, :currency, :created_at)
"""

GOALS = """
SELECT site_id, kind, display_name, event_name, page_path, currency, created_at, id
FROM goals WHERE site_id = :site_id ORDER BY id
"""

REMOVE_GOAL = "DELETE FROM goals WHERE site_id = :site_id AND display_name = :display_name"

INSERT_CONSENT_RECORD = """
INSERT INTO consent_records (
    consent_id, site_id, created_at, action, choices, revision, language, texts_hash, path, gpc
) VALUES (
    :consent_id, :site_id, :created_at, :action, :choices, :revision, :language, :texts_hash,
    :path, :gpc
)
"""

CONSENT_RECORDS = """
SELECT consent_id, site_id, created_at, action, choices, revision, language, texts_hash, path, gpc
FROM consent_records
WHERE site_id = :site_id AND created_at >= :since
ORDER BY created_at, id
"""

CONSENT_RECORDS_BY_ID = """
SELECT consent_id, site_id, created_at, action, choices, revision, language, texts_hash, path, gpc
FROM consent_records WHERE consent_id = :consent_id ORDER BY created_at, id
"""

# Per day (UTC): decisions, and how many of them accepted each category.
CONSENT_RATES = """
SELECT date(created_at, 'unixepoch') AS day, COUNT(*) AS decisions,
       j.key AS category, SUM(j.value = 1) AS accepted
FROM consent_records, json_each(consent_records.choices) AS j
WHERE site_id = :site_id AND created_at >= :start AND created_at < :end
GROUP BY day, category
ORDER BY day, category
"""

ADD_DROPS = """
INSERT INTO drops (site_id, day, reason, count, example)
VALUES (:site_id, :day, :reason, :count, :example)
ON CONFLICT (site_id, day, reason) DO UPDATE SET
    count = count + excluded.count, example = COALESCE(excluded.example, example)
"""

SITE_DROPS = """
SELECT reason, SUM(count) FROM drops
WHERE site_id = :site_id AND day >= :start_day AND day <= :end_day
GROUP BY reason ORDER BY reason
"""

# The headline figures, from the visits the writer keeps (server/visits.py), in one pass over
# a covering index: a visit counts, with its pageviews and events, in the period in which it
# started, so the days of a month add up to the month; a visitor counts once in a period in
# which one of their visits started, at the first of them (the one whose previous visit
# started before the period). Scroll depth is the mean of each visit's deepest scroll on each
# page that reported one.
SITE_TOTALS = """
SELECT
    SUM(previous_started IS NULL OR previous_started < :start) AS visitors,
    COUNT(*) AS visits,
    SUM(pageviews) AS pageviews,
    SUM(events) AS events,
    AVG(pageviews <= 1 AND interactions = 0) AS bounce_rate,
    AVG(MAX(ended - started, engaged_ms / 1000.0)) AS visit_duration,
    -- CASE, not AND: SQLite evaluates both sides of an AND in a value, and this subquery
    -- for every visit took 0.55 of 1.73 s at 10M events.
    SUM(CASE WHEN consented AND (previous_started IS NULL OR previous_started < :start)
        THEN EXISTS (SELECT 1 FROM consented_visitors AS c
                     WHERE c.site_id = v.site_id AND c.visitor_id = v.visitor_id
                       AND c.first_seen < :start) END) AS returning_visitors,
    1.0 * SUM(scroll_sum) / NULLIF(SUM(scroll_pages), 0) AS scroll_depth
FROM visits AS v
WHERE site_id = :site_id AND started >= :start AND started < :end
"""


CUSTOMERS = """
SELECT c.id, c.name, c.created_at, c.retention, COUNT(s.id) AS sites
FROM customers AS c LEFT JOIN sites AS s ON s.customer_id = c.id
GROUP BY c.id ORDER BY c.name COLLATE NOCASE
"""

INSERT_API_KEY = """
INSERT INTO api_keys (owner, label, prefix, key_hash, created_at)
VALUES (:owner, :label, :prefix, :key_hash, :created_at)
"""

API_KEYS = """
SELECT id, owner, label, prefix, created_at, last_used_at, revoked_at FROM api_keys
WHERE owner = :owner ORDER BY id
"""

# With its owner's account, if they have one: a key reads what its owner may read.
API_KEY_BY_HASH = """
SELECT k.id, k.owner, k.label, k.prefix, k.created_at, k.last_used_at, k.revoked_at,
       u.id AS user_id, u.role, u.customer_id, u.blocked_at
FROM api_keys AS k LEFT JOIN users AS u ON u.email = k.owner
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL
"""

REVOKE_API_KEY = "UPDATE api_keys SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL"

# Never backwards: two requests that read the same stale time may write in either order.
TOUCH_API_KEY = """
UPDATE api_keys SET last_used_at = :at
WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :at)
"""


# The installation check: a site's latest stored hits, newest first.
LATEST_HITS = """
SELECT ts, name, hostname, path, browser, os, country FROM events
WHERE site_id = :site_id ORDER BY ts DESC LIMIT :limit
"""

LATEST_DROPS = """
SELECT day, reason, count, example FROM drops WHERE site_id = :site_id AND day >= :since
ORDER BY day DESC, count DESC
"""

API_KEYS_OF_CUSTOMER = """
SELECT k.id, k.owner, k.label, k.prefix, k.created_at, k.last_used_at, k.revoked_at,
       u.customer_id
FROM api_keys AS k LEFT JOIN users AS u ON u.email = k.owner
WHERE :customer_id IS NULL OR u.customer_id = :customer_id
ORDER BY k.revoked_at IS NOT NULL, k.id DESC
"""


class SQLiteStorage(
    AccountTables, ShareTables, MailTables, RetentionTables, SubjectTables, PortabilityTables
):
    def __init__(self, path: Path, readers: int = 4) -> None:
        self.path = path
        self.writer = Writer(self._connect)
        # Readers of their own, so reports never wait behind a batch (WAL: they see the last
        # commit), and a few of them, so a dashboard's parallel panels do not queue on one.
        self._max_readers = readers
        self._readers: list[aiosqlite.Connection] = []
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        # Data time of the last sweep that closed visits (CLOSE_EVERY).
        self._closed_at = 0
        # Set by close(): a rollup build under way stops after the day it is summing.
        self._stopping = threading.Event()
        # Filter sets reports asked for since the last build, (site, segment key): when. The
        # build records them (segments), and sums those asked for lately.
        self._asked: dict[tuple[int, str], int] = {}
        self._wanted = asyncio.Event()  # set when one of them is not a segment yet
        # The process that builds rollups (build_rollups), started at the first build.
        self._builder: ProcessPoolExecutor | None = None
        self._build_stop: Any = None  # a multiprocessing Event it reads between two days

    async def _connect(self) -> aiosqlite.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute("PRAGMA busy_timeout = 10000")
            # Only takes on a new file, before its first page is written: freed pages can then
            # be handed back after a purge (older files: `zeef purge --vacuum`, once).
            await conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            await conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a power cut may lose the last flush, never corrupt the file.
            await conn.execute("PRAGMA synchronous = NORMAL")
            # Deleted rows are overwritten with zeros, not left in free space: a purge or an
            # erasure must leave nothing in the file (docs/retention.md).
            await conn.execute("PRAGMA secure_delete = ON")
            # 32 MiB of page cache for the one writer (SQLite's default is 2 MiB): a purge
            # walking old pages evicted the index pages ingest inserts into, and p50 ingest
            # latency while purging went from 3.3x the quiet figure to 1.5x (bench/purge.py).
            await conn.execute("PRAGMA cache_size = -32768")
        except BaseException:
            # A file that is not a database fails here, after the connection's thread started:
            # that thread is not a daemon, and left open it kept the process from exiting.
            await conn.close()
            raise
        return conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._idle.empty() and len(self._readers) < self._max_readers:
            conn = await self._connect()
            # Known to close() before anything else is awaited: a task cancelled during the
            # set-up below (the rollup builder, at shutdown) would otherwise leave it open.
            self._readers.append(conn)
            try:
                await conn.execute("PRAGMA query_only = 1")
                for name, arity, function in reports_sql.FUNCTIONS:
                    await conn.create_function(name, arity, function, deterministic=True)
            except BaseException:
                self._readers.remove(conn)
                await conn.close()
                raise
        else:
            conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        self._stopping.set()
        if self._builder is not None:
            self._build_stop.set()
            await asyncio.to_thread(self._builder.shutdown, True)
            self._builder = None
        await self.writer.close()
        for conn in self._readers:
            await conn.close()
        self._readers = []
        self._idle = asyncio.Queue()

    async def migrate(self) -> None:
        """Apply the numbered migrations not yet applied, safely from several processes."""
        scripts = sorted(
            (entry.name, entry.read_text())
            for entry in resources.files(__package__).joinpath(MIGRATIONS).iterdir()
            if entry.name.endswith(".sql")
        )

        # The writer's BEGIN IMMEDIATE takes the write lock first, so two workers starting
        # together apply each migration once: the second one sees the first one's user_version.
        async def job(conn: aiosqlite.Connection) -> None:
            async with conn.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            version = row[0] if row else 0
            for name, script in scripts:
                number = int(name.split("_", 1)[0])
                if number <= version:
                    continue
                for statement in _statements(script):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number:d}")

        await self.writer.run(job)

    def health(self) -> WriterStatus:
        """The writer's state, read without touching the database (see app.healthz)."""
        return self.writer.status()

    async def secret_key(self, generated: str) -> str:
        async def job(conn: aiosqlite.Connection) -> str:
            await conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('secret_key', ?)", (generated,)
            )
            async with conn.execute("SELECT value FROM meta WHERE key = 'secret_key'") as cursor:
                row = await cursor.fetchone()
            assert row is not None
            return str(row[0])

        return await self.writer.run(job)

    async def load_salts(
        self, day: str, yesterday: str, fresh: bytes
    ) -> tuple[bytes, bytes | None]:
        async def job(conn: aiosqlite.Connection) -> dict[str, bytes]:
            await conn.execute(
                "INSERT OR IGNORE INTO salts (day, salt, created_at) "
                "VALUES (?, ?, CAST(strftime('%s') AS INTEGER))",
                (day, fresh),
            )
            await conn.execute("DELETE FROM salts WHERE day < ?", (yesterday,))
            async with conn.execute(
                "SELECT day, salt FROM salts WHERE day IN (?, ?)", (day, yesterday)
            ) as cursor:
                return {str(r[0]): bytes(r[1]) for r in await cursor.fetchall()}

        rows = await self.writer.run(job)
        return rows[day], rows.get(yesterday)

    async def add_site(self, domain: str, timezone: str, created_at: int) -> Site:
        async def job(conn: aiosqlite.Connection) -> int:
            try:
                cursor = await conn.execute(
                    "INSERT INTO sites (domain, timezone, created_at) VALUES (?, ?, ?)",
                    (domain, timezone, created_at),
                )
            except sqlite3.IntegrityError:
                raise SiteExists(domain) from None
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return Site(await self.writer.run(job), domain, timezone, created_at)

    async def add_customer(self, name: str, created_at: int) -> int:
        async def job(conn: aiosqlite.Connection) -> int:
            try:
                cursor = await conn.execute(
                    "INSERT INTO customers (name, created_at) VALUES (?, ?)", (name, created_at)
                )
            except sqlite3.IntegrityError:
                raise CustomerExists(name) from None
            return int(cursor.lastrowid or 0)

        return await self.writer.run(job)

    async def customers(self) -> list[dict[str, Any]]:
        return await self._rows(CUSTOMERS, {})

    async def set_site_customer(self, site_id: int, customer_id: int | None) -> None:
        await self._execute(
            "UPDATE sites SET customer_id = :customer WHERE id = :site",
            {"customer": customer_id, "site": site_id},
        )

    async def site_customers(self) -> dict[int, str]:
        rows = await self._rows(
            "SELECT s.id, c.name FROM sites AS s JOIN customers AS c ON c.id = s.customer_id", {}
        )
        return {row["id"]: row["name"] for row in rows}

    async def sites(self) -> list[Site]:
        async with self._read() as conn, conn.execute(SITES) as cursor:
            return [
                Site(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5]), row[6])
                for row in await cursor.fetchall()
            ]

    async def set_site_timezone(self, site_id: int, timezone: str) -> None:
        await self._execute(
            "UPDATE sites SET timezone = :tz WHERE id = :site", {"tz": timezone, "site": site_id}
        )

    async def latest_hits(self, site_id: int, limit: int) -> list[dict[str, Any]]:
        return await self._rows(LATEST_HITS, {"site_id": site_id, "limit": limit})

    async def latest_drops(self, site_id: int, since: str) -> list[dict[str, Any]]:
        return await self._rows(LATEST_DROPS, {"site_id": site_id, "since": since})

    async def api_keys_of_customer(self, customer_id: int | None) -> list[dict[str, Any]]:
        """Keys whose owner is a user of the customer; None: every key."""
        return await self._rows(API_KEYS_OF_CUSTOMER, {"customer_id": customer_id})

    async def add_goal(self, goal: Goal) -> Goal:
        row = asdict(goal)
        del row["id"]

        async def job(conn: aiosqlite.Connection) -> int:
            try:
                cursor = await conn.execute(INSERT_GOAL, row)
            except sqlite3.IntegrityError:
                raise GoalExists(goal.display_name) from None
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return replace(goal, id=await self.writer.run(job))

    async def goals(self, site_id: int) -> list[Goal]:
        params = {"site_id": site_id}
        async with self._read() as conn, conn.execute(GOALS, params) as cursor:
            return [Goal(*row) for row in await cursor.fetchall()]

    async def remove_goal(self, site_id: int, display_name: str) -> bool:
        params = {"site_id": site_id, "display_name": display_name}
        return await self._execute(REMOVE_GOAL, params) > 0

    async def consent_config(self, site_id: int) -> str | None:
        async with (
            self._read() as conn,
            conn.execute(
                "SELECT config FROM consent_configs WHERE site_id = ?", (site_id,)
            ) as cursor,
        ):
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def set_consent_config(self, site_id: int, config: str, updated_at: int) -> None:
        await self._execute(
            "INSERT INTO consent_configs (site_id, config, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (site_id) DO UPDATE SET config = excluded.config, "
            "updated_at = excluded.updated_at",
            (site_id, config, updated_at),
        )

    async def insert_consent_record(self, record: ConsentRecord) -> None:
        row = asdict(record)
        row["choices"] = json.dumps(record.choices)
        row["gpc"] = int(record.gpc)
        await self._execute(INSERT_CONSENT_RECORD, row)

    async def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> int:
        """One statement as a write job of its own; the number of rows it changed."""

        async def job(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

        return await self.writer.run(job)

    async def consent_records(self, site_id: int, since: int) -> list[ConsentRecord]:
        params = {"site_id": site_id, "since": since}
        async with self._read() as conn, conn.execute(CONSENT_RECORDS, params) as cursor:
            return [_consent_record(row) for row in await cursor.fetchall()]

    async def consent_records_by_id(self, consent_id: str) -> list[ConsentRecord]:
        params = {"consent_id": consent_id}
        async with self._read() as conn, conn.execute(CONSENT_RECORDS_BY_ID, params) as cursor:
            return [_consent_record(row) for row in await cursor.fetchall()]

    async def delete_consent_records(self, consent_id: str) -> int:
        return await self._execute(
            "DELETE FROM consent_records WHERE consent_id = ?", (consent_id,)
        )

    async def consent_rates(self, site_id: int, start: int, end: int) -> list[dict[str, Any]]:
        params = {"site_id": site_id, "start": start, "end": end}
        days: dict[str, dict[str, Any]] = {}
        async with self._read() as conn, conn.execute(CONSENT_RATES, params) as cursor:
            for day, decisions, category, accepted in await cursor.fetchall():
                entry = days.setdefault(day, {"day": day, "decisions": decisions, "accepted": {}})
                entry["accepted"][category] = accepted
        return list(days.values())

    async def set_honour_dnt(self, site_id: int, honour: bool) -> None:
        await self._execute("UPDATE sites SET honour_dnt = ? WHERE id = ?", (int(honour), site_id))

    async def write_batch(
        self,
        events: Sequence[Event],
        drops: DropCounts,
        examples: Mapping[tuple[int, str, str], str] | None = None,
    ) -> None:
        """A flush: the batch's events, consented visitors and drop counts, in one transaction,
        so a failure leaves none of them written and the retry cannot store any twice."""
        if not events and not drops:
            return

        async def job(conn: aiosqlite.Connection) -> None:
            if events:
                await self._continue_visits(conn, events)
                created = await self._keep_visits(conn, events)
                await conn.executemany(INSERT_EVENT, [_event_row(event) for event in events])
                await self._add_consented_visitors(conn, events, created)
            if drops:
                seen = examples or {}
                rows = [
                    {"site_id": site_id, "day": day, "reason": reason, "count": count,
                     "example": seen.get((site_id, day, reason))}
                    for (site_id, day, reason), count in drops.items()
                ]  # fmt: skip
                await conn.executemany(ADD_DROPS, rows)

        await self.writer.run(job)

    async def _continue_visits(self, conn: aiosqlite.Connection, events: Sequence[Event]) -> None:
        # Each previous hash, with the time of its first hit in this batch.
        candidates = {
            (e.site_id, e.previous_visitor_id): e.ts
            for e in reversed(events)
            if e.previous_visitor_id is not None
        }
        if not candidates:
            return
        if all(ts % 86400 >= VISIT_GAP for ts in candidates.values()):
            # Every hit here is 30 minutes or more past its midnight (UTC, when salts rotate),
            # a batch that spans midnight included: a visit can only still go on under
            # yesterday's hash from a carried hit.
            since = min(candidates.values()) - VISIT_GAP
            async with conn.execute(CARRIED_SINCE, {"since": since}) as cursor:
                row = await cursor.fetchone()
            if not (row and row[0]):
                return
        payload = json.dumps(
            [[site, prev, ts - VISIT_GAP] for (site, prev), ts in candidates.items()]
        )
        async with conn.execute(CONTINUING_VISITORS, {"candidates": payload}) as cursor:
            continuing = {(int(site), int(prev)) for site, prev in await cursor.fetchall()}
        # The batch's own hits are not in the table yet: a visit that crosses midnight inside
        # one batch goes on from them. Hits come in time order, so one pass sees each earlier.
        last_seen: dict[tuple[int, int], int] = {}
        for event in events:
            prev = event.previous_visitor_id
            if prev is not None and (
                (event.site_id, prev) in continuing
                or last_seen.get((event.site_id, prev), -VISIT_GAP) > event.ts - VISIT_GAP
            ):
                event.visitor_id = prev
                event.carried = True
            last_seen[(event.site_id, event.visitor_id)] = event.ts

    async def _keep_visits(
        self, conn: aiosqlite.Connection, events: Sequence[Event]
    ) -> list[Visit]:
        """Open, extend and close the batch's visits; each event gets its visit_id. Returns
        the visits opened."""
        keys = {(e.site_id, e.visitor_id) for e in events}
        async with conn.execute(OPEN_VISITS, {"keys": json.dumps(list(keys))}) as cursor:
            stored = [
                Visit(r[0], r[1], r[2], r[3], r[4], "", r[5], r[6], r[7], r[8], r[9], r[10],
                      consented=bool(r[11]), previous_started=r[12],
                      depths=json.loads(r[13]) if r[13] else {}, last_pageview=r[4])
                for r in await cursor.fetchall()
            ]  # fmt: skip
        known = {(v.site_id, v.visitor_id) for v in stored}
        consented = {(e.site_id, e.visitor_id) for e in events if e.consented} - known
        last_started: dict[tuple[int, int], int] = {}
        if consented:
            params = {"keys": json.dumps(list(consented))}
            async with conn.execute(LAST_STARTED, params) as cursor:
                last_started = {(r[0], r[1]): r[2] for r in await cursor.fetchall()}
        async with conn.execute(NEXT_VISIT_ID) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        created, changed = visits.assign(events, stored, int(row[0]), last_started)
        if created:
            await conn.executemany(INSERT_VISIT, [_visit_row(v) for v in created])
        if changed:
            await conn.executemany(UPDATE_VISIT, [
                (v.started, v.ended, v.entry_page, v.exit_page, v.pageviews, v.events,
                 v.interactions, v.engaged_ms, int(v.consented), v.previous_started,
                 _depths(v) or None, sum(v.depths.values()), len(v.depths), v.id)
                for v in changed
            ])  # fmt: skip
        latest = max(e.ts for e in events)
        if latest >= self._closed_at + CLOSE_EVERY:
            await conn.execute(CLOSE_VISITS, {"before": latest - visits.OPEN_FOR})
            self._closed_at = latest
        return created

    async def _add_consented_visitors(
        self, conn: aiosqlite.Connection, events: Sequence[Event], created: Sequence[Visit]
    ) -> None:
        first_seen: dict[tuple[int, int], int] = {}
        for e in events:
            if e.consented and first_seen.get((e.site_id, e.visitor_id), e.ts) >= e.ts:
                first_seen[(e.site_id, e.visitor_id)] = e.ts
        # Their ID outlives the open window: the next visit reads when this one started.
        last_started: dict[tuple[int, int], int] = {}
        for v in created:
            key = (v.site_id, v.visitor_id)
            if key in first_seen:
                last_started[key] = max(last_started.get(key, -1), v.started)
        if first_seen:
            rows = [
                (site, visitor, ts, last_started.get((site, visitor), -1))
                for (site, visitor), ts in first_seen.items()
            ]
            await conn.executemany(ADD_CONSENTED_VISITOR, rows)

    async def site_totals(self, query: Query) -> dict[str, float | None]:
        params = {"site_id": query.site.id, "start": query.start_ts, "end": query.end_ts}
        async with self._read() as conn, conn.execute(SITE_TOTALS, params) as cursor:
            row = await cursor.fetchone()
            assert row is not None
            names = [column[0] for column in cursor.description]
        return dict(zip(names, row, strict=True))

    # -- Stats API keys ----------------------------------------------------------------------

    async def create_api_key(
        self, owner: str, label: str | None, prefix: str, key_hash: bytes, created_at: int
    ) -> int:
        params = {"owner": owner, "label": label, "prefix": prefix, "key_hash": key_hash,
                  "created_at": created_at}  # fmt: skip

        async def job(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(INSERT_API_KEY, params)
            return int(cursor.lastrowid or 0)

        return await self.writer.run(job)

    async def api_keys(self, owner: str) -> list[dict[str, Any]]:
        return await self._rows(API_KEYS, {"owner": owner})

    async def api_key_by_hash(self, key_hash: bytes) -> dict[str, Any] | None:
        rows = await self._rows(API_KEY_BY_HASH, {"key_hash": key_hash})
        return rows[0] if rows else None

    async def revoke_api_key(self, key_id: int, at: int) -> bool:
        return await self._execute(REVOKE_API_KEY, {"id": key_id, "at": at}) > 0

    async def touch_api_key(self, key_id: int, at: int) -> None:
        await self._execute(TOUCH_API_KEY, {"id": key_id, "at": at})

    async def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._read() as conn, conn.execute(sql, params) as cursor:
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

    # -- the report engine's reads (server/storage/sqlite_reports.py) --------------------------

    async def report_totals(self, query: Query, goals: Sequence[GoalLike]) -> dict[str, Any]:
        async with self._read() as conn:
            part = await self._split(conn, query, goals, narrowed=True)
            if part is not None:
                return await rolled_sql.aggregate(conn, query, part)
            return await reports_sql.aggregate(conn, query, goals)

    async def report_series(self, query: Query, goals: Sequence[GoalLike]) -> list[dict[str, Any]]:
        visits, hits = (
            reports_sql.bucket_sql(query, "v.started"),
            reports_sql.bucket_sql(query, "e.ts"),
        )
        # Days can count visitors from previous_started; other buckets count distinct IDs.
        start = reports_sql.day_start_sql(query, "v.started") if query.bucket == "day" else None
        async with self._read() as conn:
            if query.bucket in ("day", "week", "month"):
                part = await self._split(conn, query, goals, narrowed=True)
                if part is not None:
                    return await rolled_sql.series(conn, query, part, query.bucket)
            return await reports_sql.grouped(conn, query, goals, visits, hits, start)

    async def summed(self, query: Query, goals: Sequence[GoalLike], narrowed: bool = False) -> bool:
        async with self._read() as conn:
            return await self._split(conn, query, goals, narrowed) is not None

    async def report_by_visit(
        self, query: Query, goals: Sequence[GoalLike], dimension: str
    ) -> list[dict[str, Any]]:
        column = reports_sql.VISIT_SQL[dimension]
        async with self._read() as conn:
            part = await self._split(conn, query, goals)
            if part is not None:
                return await rolled_sql.by_visit(conn, query, part, dimension)
            return await reports_sql.grouped(conn, query, goals, column, column, None)

    async def report_by_hit(
        self, query: Query, goals: Sequence[GoalLike], dimension: str
    ) -> list[dict[str, Any]]:
        async with self._read() as conn:
            if rollups_sql.by_hit(dimension):
                part = await self._split(conn, query, goals)
                if part is not None:
                    return await rolled_sql.by_hit(conn, query, part, dimension)
            return await reports_sql.hits_by(conn, query, goals, dimension)

    async def report_entries(
        self, query: Query, goals: Sequence[GoalLike], pages: Sequence[str] | None
    ) -> dict[str, dict[str, Any]]:
        # A page filter here is on the entry page (sqlite_reports.entry_bounces): `is` some
        # pages reads those pages' entries from the other filters' rollups; any other, the
        # segment with it on the entry page.
        entered = [
            f for f in query.filters if isinstance(f, Filter) and f.dimension == "event:page"
        ]
        others = tuple(f for f in query.filters if f not in entered)
        rest, rolled = query, pages
        if len(entered) == 1 and entered[0].op == "is":
            rest = replace(query, filters=others)
            values = entered[0].values
            rolled = values if pages is None else [p for p in pages if p in values]
        elif entered:
            entries = tuple(Filter("visit:entry_page", f.op, f.values) for f in entered)
            rest = replace(query, filters=others + entries)
        async with self._read() as conn:
            part = await self._split(conn, rest, goals)
            if part is not None:
                rows = await rolled_sql.by_visit(conn, rest, part, "visit:entry_page", rolled)
                return {row["value"]: row for row in rows}
            return await reports_sql.entry_bounces(conn, query, goals, pages)

    async def _split(
        self,
        conn: aiosqlite.Connection,
        query: Query,
        goals: Sequence[GoalLike],
        narrowed: bool = False,
    ) -> rolled_sql.Split | None:
        """What of a query rollups answer (sqlite_rollup_reports.split); a filter set not
        summed yet, or sums a minute behind, wake the builder (rollups_wanted)."""
        return await rolled_sql.split(
            conn, query, narrowed, ask=self._ask, behind=self._wanted.set, goals=goals
        )

    def _ask(self, site_id: int, key: str, summed: bool) -> None:
        self._asked[(site_id, key)] = int(time.time())
        if not summed:
            self._wanted.set()

    async def rollups_wanted(self) -> None:
        # Cleared here, by the one waiter (the builder): asks after it set it again.
        await self._wanted.wait()
        self._wanted.clear()

    async def build_rollups(self, now: int, stop: threading.Event | None = None) -> int:
        """Bring every site's rollups up to date (sqlite_rollups.build_all), in a process of
        its own: summing a day takes seconds of Python on a big site, which in this process
        would hold the interpreter's lock the collector needs. Returns the days (re)built;
        `stop` (or close()) set ends the build after the day it is summing."""
        sites = await self.sites()
        asked, self._asked = self._asked, {}
        if self._builder is None:
            # spawn, not fork: a fork would copy this process's threads' locks mid-use.
            context = multiprocessing.get_context("spawn")
            self._build_stop = context.Event()
            self._builder = ProcessPoolExecutor(
                1, context, rollups_sql.builder_started, (self._build_stop,)
            )
        self._build_stop.clear()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._builder, rollups_sql.build_all, str(self.path), sites, now, asked
        )
        while True:
            done, _ = await asyncio.wait({future}, timeout=0.1)
            if done:
                built, more = future.result()
                if more:
                    self._wanted.set()  # the next build starts at once
                return int(built)
            if self._stopping.is_set() or (stop is not None and stop.is_set()):
                self._build_stop.set()

    async def report_engagement(
        self, query: Query, goals: Sequence[GoalLike], pages: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        async with self._read() as conn:
            return await reports_sql.page_engagement(conn, query, goals, pages)

    async def report_goals(
        self, query: Query, goals: Sequence[GoalLike], names: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        wanted = [g for g in goals if names is None or g.display_name in names]
        rolled = {g.display_name: rolled_sql.goal_row(g) for g in wanted}
        async with self._read() as conn:
            part = await self._split(conn, query, goals) if any(rolled.values()) else None
            rows: dict[str, dict[str, Any]] = {}
            for goal in wanted:
                found, within = rolled[goal.display_name], query
                if found is None and not goal.currency:
                    # A wildcard page goal: the hits its segment keeps (rollup_reports.EVERY).
                    within = query.with_filters(Filter("event:goal", "is", (goal.display_name,)))
                    found = rolled_sql.EVERY
                    where = await self._split(conn, within, goals)
                elif found is not None:
                    where = part
                else:
                    continue  # revenue is not summed: raw rows
                if where is not None:
                    dimension, value = found
                    sums = await rolled_sql.hit_values(conn, within, where, dimension, [value])
                    row = sums.get(value, {})
                    rows[goal.display_name] = {
                        "visitors": row.get("visitors") or 0, "events": row.get("events") or 0,
                        "revenue": None, "paid": 0, "value": goal.display_name, "currency": None,
                    }  # fmt: skip
            left = [g.display_name for g in wanted if g.display_name not in rows]
            if left:
                for row in await reports_sql.goal_rows(conn, query, goals, left):
                    rows[row["value"]] = row
        return [rows[g.display_name] for g in wanted]

    async def realtime_visitors(self, site_id: int, since: int) -> int:
        async with self._read() as conn:
            return await reports_sql.realtime_visitors(conn, site_id, since)

    async def report_hits_series(self, query: Query) -> list[dict[str, Any]]:
        async with self._read() as conn:
            return await reports_sql.hits_series(conn, query)

    async def first_visit(self, site_id: int) -> int | None:
        async with self._read() as conn:
            return await reports_sql.first_visit(conn, site_id)

    async def property_names(self, query: Query) -> list[str]:
        async with self._read() as conn:
            return await reports_sql.property_names(
                conn, query, rollups_sql.EVERY_HIT, rollups_sql.VERSION
            )

    async def site_drops(self, query: Query) -> dict[str, int]:
        start_day, end_day = query.utc_days
        params = {"site_id": query.site.id, "start_day": start_day, "end_day": end_day}
        async with self._read() as conn, conn.execute(SITE_DROPS, params) as cursor:
            return {str(reason): int(count) for reason, count in await cursor.fetchall()}

    async def settings_version(self) -> int:
        """A number that changes whenever a site or its settings change (migration 0008)."""
        async with (
            self._read() as conn,
            conn.execute(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'settings_version'"
            ) as cursor,
        ):
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def meta_key(self, name: str, generated: str, replace: bool = False) -> str:
        verb = "REPLACE" if replace else "IGNORE"

        async def job(conn: aiosqlite.Connection) -> str:
            await conn.execute(
                f"INSERT OR {verb} INTO meta (key, value) VALUES (:name, :value)",
                {"name": name, "value": generated},
            )
            async with conn.execute(
                "SELECT value FROM meta WHERE key = :name", {"name": name}
            ) as cursor:
                row = await cursor.fetchone()
            assert row is not None
            return str(row[0])

        return await self.writer.run(job)


def _consent_record(row: Sequence[Any]) -> ConsentRecord:
    values = list(row)
    values[4] = json.loads(values[4])  # choices
    values[9] = bool(values[9])  # gpc
    return ConsentRecord(*values)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    return statements


def _event_row(e: Event) -> tuple[Any, ...]:
    """The row INSERT_EVENT binds: no None in it (see there)."""
    return (
        e.site_id, e.ts, e.visitor_id, e.name, e.hostname, e.path,
        e.referrer_host or 0, e.referrer_path or 0,
        e.utm_source or 0, e.utm_medium or 0, e.utm_campaign or 0, e.utm_term or 0,
        e.utm_content or 0,
        e.browser, e.browser_version, e.os, e.os_version, e.device,
        e.country or 0, e.region or 0, e.city or 0,
        e.props or 0, e.revenue_amount or 0, e.revenue_currency or 0, int(e.interactive),
        -1 if e.scroll_depth is None else e.scroll_depth,
        -1 if e.engaged_ms is None else e.engaged_ms,
        int(e.consented), int(e.carried), e.visit_id or 0,
    )  # fmt: skip


def _depths(v: Visit) -> str:
    """A visit's deepest scroll by page as JSON, spaced as SQLite's json_group_object does."""
    return json.dumps(v.depths, separators=(",", ":")) if v.depths else ""


def _visit_row(v: Visit) -> tuple[Any, ...]:
    """The row INSERT_VISIT binds: absent texts as 0, as for events."""
    return (
        v.id, v.site_id, v.visitor_id, v.started, v.ended, v.hostname, v.entry_page,
        v.exit_page, v.pageviews, v.events, v.interactions, v.engaged_ms,
        v.referrer_host or 0, v.referrer_path or 0, v.utm_source or 0, v.utm_medium or 0,
        v.utm_campaign or 0, v.utm_term or 0, v.utm_content or 0,
        v.browser, v.browser_version, v.os, v.os_version, v.device,
        v.country or 0, v.region or 0, v.city or 0, int(v.consented),
        -1 if v.previous_started is None else v.previous_started,
        _depths(v) or 0, sum(v.depths.values()), len(v.depths),
    )  # fmt: skip

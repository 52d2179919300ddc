"""The purge: deletes what is past its retention period (server/retention.py), in batches, then
hands the freed pages back and empties the WAL. Run by a job inside the server (PurgeJob) and by
`zeef purge`; the rules, table by table, are in docs/retention.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import retention
from .accounts import audit

if TYPE_CHECKING:
    from .config import Settings
    from .events import Site
    from .storage import Storage

log = logging.getLogger("zeef.purge")

# Rows the first delete of a rule takes; later ones are sized to take about SLICE seconds,
# so an ingest batch waiting for the write lock behind one is not held up for long whatever
# the disk, the indexes or secure_delete cost per row (bench/purge.py: fixed batches of
# 5,000 with 5 ms between them raised p99 ingest latency 8.7x with 1M events to delete).
BATCH = 1_000
BATCH_RANGE = (200, 50_000)
SLICE = 0.005
# Seconds between two batches, for the collector's flushes.
PAUSE = 0.02
# Freed pages one step of the incremental vacuum returns: each step holds the write lock.
VACUUM_STEP = 512
# The order a site's rules run in; aggregates are skipped where the customer keeps them.
SITE_RULES = ("events", "visits", "consented_visitors", "drops", "rollups", "rollup_returns",
              "rollup_days", "consent_records")  # fmt: skip
AGGREGATES = ("rollups", "rollup_returns", "rollup_days")
GLOBAL_RULES = ("audit_log", "mail_runs", "purge_runs")


@dataclass
class PurgeReport:
    """What a purge deleted (or, dry, would delete): rows per site and table."""

    dry_run: bool
    started_at: int
    sites: dict[str, dict[str, int]] = field(default_factory=dict)
    install: dict[str, int] = field(default_factory=dict)
    cutoffs: dict[str, dict[str, str]] = field(default_factory=dict)
    reclaimed: dict[str, int] = field(default_factory=dict)
    skipped: bool = False  # another run was going

    @property
    def total(self) -> int:
        return sum(sum(t.values()) for t in self.sites.values()) + sum(self.install.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "skipped": self.skipped,
            "sites": self.sites,
            "install": self.install,
            "cutoffs": self.cutoffs,
            "total": self.total,
            **({"reclaimed": self.reclaimed} if self.reclaimed else {}),
        }


def _day(moment: int, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(moment, ZoneInfo(zone)).date().isoformat()


async def purge(
    storage: Storage,
    settings: Settings,
    now: int | None = None,
    dry_run: bool = False,
    by: str = "cli",
    batch: int = BATCH,
    pause: float = 0.0,
    force: bool = False,
) -> PurgeReport:
    """Delete every row past its period. `pause` seconds between two batches leave the write
    lock to ingest; `force` purges sites whose cutoff has not moved since the last run."""
    now = int(time.time()) if now is None else now
    report = PurgeReport(dry_run=dry_run, started_at=now)
    run_id = None
    if not dry_run:
        run_id = await storage.claim_purge(now, by)
        if run_id is None:
            report.skipped = True
            return report
    try:
        for item in await retention.site_retentions(storage, settings):
            await _purge_site(storage, item, now, dry_run, batch, pause, force, report)
        cutoff = retention.cutoff(settings.audit_retention, "UTC", now)
        for rule in GLOBAL_RULES:
            params = {"cutoff": cutoff, "batch": batch}
            count = await _apply(storage, rule, params, dry_run, pause)
            if count:
                report.install[rule] = count
        report.cutoffs["*"] = {"audit_log": _stamp(cutoff)}
        if not dry_run and report.total:
            report.reclaimed = await storage.reclaim(VACUUM_STEP, pause)
            actor = audit.CLI if by == "cli" else audit.Actor(by)
            await audit.record(storage, actor, "purge", _summary(report))
    finally:
        if run_id is not None:
            await storage.finish_purge(run_id, int(time.time()), json.dumps(report.as_json()))
    return report


async def _purge_site(
    storage: Storage,
    item: retention.SiteRetention,
    now: int,
    dry_run: bool,
    batch: int,
    pause: float,
    force: bool,
    report: PurgeReport,
) -> None:
    site = item.site
    cutoff = item.events_cutoff(now)
    consent_cutoff = item.consent_cutoff(now)
    report.cutoffs[site.domain] = {
        "retention": str(item.events),
        "events_before": _stamp(cutoff),
        "consent_records_before": _stamp(consent_cutoff),
    }
    if not (dry_run or force):
        done = await storage.site_purged(site.id)
        # The cutoff moves at the site's midnight: in between, nothing new can be past it.
        if done and (done["cutoff"], done["consent_cutoff"], bool(done["keep_aggregates"])) == (
            cutoff,
            consent_cutoff,
            item.keep_aggregates,
        ):
            return
    params = {
        "site_id": site.id,
        "cutoff": cutoff,
        "consent_cutoff": consent_cutoff,
        "day": _day(cutoff, site.timezone),
        "utc_day": _day(cutoff, "UTC"),
        "batch": batch,
    }
    deleted: dict[str, int] = {}
    for rule in SITE_RULES:
        if rule in AGGREGATES and item.keep_aggregates:
            continue
        count = await _apply(storage, rule, params, dry_run, pause)
        if count:
            deleted[rule] = count
    if not dry_run:
        await storage.forget_expired_firsts(params)
        await storage.mark_site_purged(site.id, cutoff, consent_cutoff, item.keep_aggregates)
    if deleted:
        report.sites[site.domain] = deleted
        if not dry_run:
            log.info("purged %s: %s", site.domain, deleted)


async def _apply(
    storage: Storage, rule: str, params: dict[str, Any], dry_run: bool, pause: float
) -> int:
    if dry_run:
        return await storage.expired_rows(rule, params)
    total, size = 0, params["batch"]
    low, high = BATCH_RANGE
    while True:
        count = await storage.delete_expired(rule, {**params, "batch": size})
        # Timed by the writer, inside the transaction: waiting behind ingest does not count.
        took = storage.health().last_job
        total += count
        if count == 0:
            return total
        if took > SLICE:
            size = max(low, size // 2)
        elif took < SLICE / 2 and count == size:
            size = min(high, size * 2)
        # The batch's pages go from the WAL to the file now, off the writer, so no ingest
        # flush's commit pays for that copy; then the write lock is yielded: queued ingest
        # batches commit between two purge batches. One after the other, not side by side:
        # overlapped, the purge ran twice as fast and p50 ingest latency rose to 1.97x
        # (bench/purge.py, 1M events; 1.21x in turn).
        await storage.checkpoint_aside()
        await asyncio.sleep(pause)


async def delete_site(
    storage: Storage, site: Site, actor: audit.Actor, batch: int = BATCH
) -> dict[str, int]:
    """Every row of a site, then the site itself; rows deleted per table. Audited."""
    from .storage.sqlite_retention import SITE_DATA

    deleted: dict[str, int] = {}
    for table in SITE_DATA:
        total = 0
        while True:
            count = await storage.delete_site_rows(site.id, table, batch)
            total += count
            if count == 0 or table != "events":
                break
            await storage.checkpoint_aside()
            await asyncio.sleep(0)
        if total:
            deleted[table] = total
    await storage.delete_site_record(site.id)
    await storage.reclaim(VACUUM_STEP)
    counts = ", ".join(f"{table} {n}" for table, n in deleted.items()) or "no rows"
    await audit.record(
        storage, actor, "site.delete", f"{site.domain} ({counts})", customer_id=site.customer_id
    )
    return deleted


async def delete_customer(
    storage: Storage, customer: dict[str, Any], actor: audit.Actor
) -> tuple[int, int, int]:
    """A customer's sites with all their data, its users and the customer; (sites, rows,
    users) deleted. Each site and the customer are audited."""
    owned = [s for s in await storage.sites() if s.customer_id == customer["id"]]
    rows = 0
    for site in owned:
        rows += sum((await delete_site(storage, site, actor)).values())
    users = await storage.delete_customer(customer["id"])
    await audit.record(storage, actor, "customer.delete",
                       f"{customer['name']} ({len(owned)} sites, {users} users)")  # fmt: skip
    return len(owned), rows, users


def _stamp(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def _summary(report: PurgeReport) -> str:
    parts = [
        f"{domain}: " + ", ".join(f"{t} {n}" for t, n in tables.items())
        for domain, tables in report.sites.items()
    ]
    parts += [f"{t} {n}" for t, n in report.install.items()]
    return "; ".join(parts)[:1000]


class PurgeJob:
    """The purge, every `interval` seconds inside the server. Several workers each run one;
    the claim in purge_runs lets one of them purge at a time."""

    def __init__(
        self, storage: Storage, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="zeef-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> PurgeReport:
        # A short pause between batches: the ingest path's flushes take the lock in between.
        return await purge(
            self.storage, self.settings, now=int(self.clock()), by="server", pause=PAUSE
        )

    async def _loop(self) -> None:
        # First run a minute after start, so a restart loop does not purge at every start.
        delay = 60.0
        while True:
            await asyncio.sleep(delay)
            delay = float(self.settings.purge_interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("purge failed; the next run tries again")

"""The mail scheduler: a task in each server process that wakes every minute and sends what is
due, the reports of the latest week and month (periods.py) and the traffic alerts.

Each report run is claimed in the database before it is sent (storage.claim_mail_run), so
with several workers, or a worker restarted mid-run, a report goes once. After downtime, the
latest missed period of each subscription is sent once when the server is back; older missed
ones are not (last week's figures are in the newer report's comparison). A subscription gets
no report of a period that was due before it was made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from ..accounts import audit
from ..events import Site
from ..storage import Storage
from . import alerts, periods
from .outbox import Outbox, Recipient
from .smtp import MailError
from .unsubscribe import Target

log = logging.getLogger("zeef.mail")

EVERY = 60.0  # seconds between two looks at what is due
# A claim not marked sent this long after it was made failed (a send takes seconds, and
# gives up after smtp.TIMEOUT): another tick, in any worker, may try again, this many times.
RETRY_AFTER = 15 * 60
MAX_ATTEMPTS = 5
SCHEDULER = audit.Actor("scheduler")


@dataclass(frozen=True)
class Sent:
    """One mail a tick sent, for the log and for tests."""

    kind: str  # weekly, monthly, spike, drop
    domain: str
    email: str
    period: str = ""


class MailScheduler:
    def __init__(
        self, storage: Storage, outbox: Outbox, clock: Callable[[], datetime], every: float = EVERY
    ) -> None:
        self.storage, self.outbox, self.clock, self.every = storage, outbox, clock, every
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="zeef-mail")

    async def stop(self) -> None:
        """End the loop; a mail being sent is finished first (its run marked as sent)."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        # The first look one interval after start: a restart loop does not mail at each start,
        # and what was missed meanwhile goes a minute later.
        while not await self._wait():
            try:
                sent = await self.tick()
                if sent:
                    log.info("mail: sent %d", len(sent))
            except Exception:
                # Addresses and counts only in the message; the next tick tries again.
                log.exception("mail: a look at what is due failed")

    async def _wait(self) -> bool:
        """Whether stop() was called within `every` seconds."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=self.every)
        except TimeoutError:
            return False
        return True

    async def tick(self) -> list[Sent]:
        """Send every report and alert due now and not sent yet, by any worker."""
        now = self.clock()
        sites = {site.id: site for site in await self.storage.sites()}
        sent: list[Sent] = []
        for row in await self.storage.report_subscriptions(None):
            site = sites.get(row["site_id"])
            if site is None:
                continue
            zone = ZoneInfo(site.timezone)
            for kind in periods.KINDS:
                if not row[kind]:
                    continue
                period = periods.latest_due(kind, now, zone)
                if period.due.timestamp() < row["created_at"]:
                    continue  # due before the subscription was made
                if not await self.storage.claim_mail_run(
                    kind, site.id, row["id"], period.key, int(now.timestamp()),
                    RETRY_AFTER, MAX_ATTEMPTS,
                ):  # fmt: skip
                    continue
                ends = Target(subscription_id=row["id"])
                recipient = Recipient(row["email"], row["language"], ends, row["share_id"])
                error = None
                try:
                    await self.outbox.report(site, period, recipient, SCHEDULER)
                    sent.append(Sent(kind, site.domain, row["email"], period.key))
                except MailError as exc:
                    error = str(exc)
                    log.warning("mail: %s report %s of %s not sent: %s", kind, period.key,
                                site.domain, error)  # fmt: skip
                except Exception as exc:
                    # Not the mail server's doing (a report that failed to read): recorded,
                    # tried again like a failed send, and the other subscriptions still go.
                    error = f"{type(exc).__name__}: {exc}"
                    log.exception("mail: %s report %s of %s failed", kind, period.key,
                                  site.domain)  # fmt: skip
                await self.storage.finish_mail_run(
                    kind, row["id"], period.key,
                    None if error else int(self.clock().timestamp()), error,
                )  # fmt: skip
        sent += await self._alerts(sites, now)
        return sent

    async def _alerts(self, sites: dict[int, Site], now: datetime) -> list[Sent]:
        sent: list[Sent] = []
        for settings in await self.storage.alert_settings(None):
            site = sites.get(settings["site_id"])
            if site is None or not settings["recipients"]:
                continue
            for alert in await alerts.due(self.storage, site, settings, now):
                if not await self.storage.claim_alert(
                    site.id, alert.kind, int(now.timestamp()), alerts.QUIET
                ):
                    continue
                for email in settings["recipients"]:
                    recipient = Recipient(email, settings["language"],
                                          Target(site_id=alert.site.id, email=email))  # fmt: skip
                    try:
                        await self.outbox.alert(alert, recipient, SCHEDULER)
                        sent.append(Sent(alert.kind, alert.site.domain, email))
                    except MailError as exc:
                        # An alert is about now: it is not retried later, when it is stale.
                        log.warning("mail: %s alert of %s not sent: %s", alert.kind,
                                    alert.site.domain, exc)  # fmt: skip
        return sent

"""SQL for reports and alerts by e-mail (migration 0018): subscriptions, the runs that make
each scheduled report go once, and alert settings, as a part of SQLiteStorage."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from . import SubscriptionExists

if TYPE_CHECKING:
    from .writer import Writer

SUBSCRIPTION_COLUMNS = """
r.id, r.site_id, s.domain, r.email, r.language, r.weekly, r.monthly, r.share_id, r.created_at,
r.unsubscribed_at
"""

INSERT_SUBSCRIPTION = """
INSERT INTO report_subscriptions (site_id, email, language, weekly, monthly, share_id, created_at)
VALUES (:site_id, :email, :language, :weekly, :monthly, :share_id, :created_at)
"""

SUBSCRIPTIONS = f"""
SELECT {SUBSCRIPTION_COLUMNS}
FROM report_subscriptions AS r JOIN sites AS s ON s.id = r.site_id
WHERE (:site_id IS NULL OR r.site_id = :site_id)
  AND (:everyone OR r.unsubscribed_at IS NULL)
ORDER BY s.domain, r.email, r.id
"""

SUBSCRIPTION = f"""
SELECT {SUBSCRIPTION_COLUMNS}
FROM report_subscriptions AS r JOIN sites AS s ON s.id = r.site_id
WHERE r.id = :id
"""

UNSUBSCRIBE = """
UPDATE report_subscriptions SET unsubscribed_at = :at WHERE id = :id AND unsubscribed_at IS NULL
"""

# The claim: a new row, or a claim of the same run that failed (not sent, older than
# :retry_before) taken over while attempts remain. changes() is 1 only for the claimer.
CLAIM_RUN = """
INSERT INTO mail_runs (kind, site_id, subscription_id, period, claimed_at)
VALUES (:kind, :site_id, :subscription_id, :period, :now)
ON CONFLICT (kind, subscription_id, period) DO UPDATE
SET claimed_at = excluded.claimed_at, attempts = attempts + 1
WHERE sent_at IS NULL AND claimed_at <= :retry_before AND attempts < :max_attempts
"""

FINISH_RUN = """
UPDATE mail_runs SET sent_at = :sent_at, error = :error
WHERE kind = :kind AND subscription_id = :subscription_id AND period = :period
"""

SET_ALERTS = """
INSERT INTO alert_settings (site_id, spike_threshold, drop_alert, recipients, language, updated_at)
VALUES (:site_id, :spike_threshold, :drop_alert, :recipients, :language, :updated_at)
ON CONFLICT (site_id) DO UPDATE SET
    spike_threshold = excluded.spike_threshold, drop_alert = excluded.drop_alert,
    recipients = excluded.recipients, language = excluded.language,
    updated_at = excluded.updated_at
"""

ALERTS = """
SELECT a.site_id, s.domain, a.spike_threshold, a.drop_alert, a.recipients, a.language,
       a.updated_at,
       (SELECT last_sent FROM alert_runs WHERE site_id = a.site_id AND kind = 'spike')
           AS spike_sent,
       (SELECT last_sent FROM alert_runs WHERE site_id = a.site_id AND kind = 'drop')
           AS drop_sent
FROM alert_settings AS a JOIN sites AS s ON s.id = a.site_id
WHERE :site_id IS NULL OR a.site_id = :site_id
ORDER BY s.domain
"""

# At most one alert of a kind per site in :quiet seconds, whichever worker asks first.
CLAIM_ALERT = """
INSERT INTO alert_runs (site_id, kind, last_sent) VALUES (:site_id, :kind, :now)
ON CONFLICT (site_id, kind) DO UPDATE SET last_sent = excluded.last_sent
WHERE last_sent <= :now - :quiet
"""


class MailTables:
    """Reads and writes of server/mail; SQLiteStorage supplies the connections."""

    if TYPE_CHECKING:
        writer: Writer

        async def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

        async def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> int: ...

    async def add_report_subscription(self, row: dict[str, Any]) -> int:
        async def job(conn: aiosqlite.Connection) -> int:
            try:
                cursor = await conn.execute(INSERT_SUBSCRIPTION, row)
            except sqlite3.IntegrityError:
                raise SubscriptionExists(row["email"]) from None
            return int(cursor.lastrowid or 0)

        return await self.writer.run(job)

    async def report_subscriptions(
        self, site_id: int | None, everyone: bool = False
    ) -> list[dict[str, Any]]:
        params = {"site_id": site_id, "everyone": everyone}
        return [_subscription(row) for row in await self._rows(SUBSCRIPTIONS, params)]

    async def report_subscription(self, subscription_id: int) -> dict[str, Any] | None:
        rows = await self._rows(SUBSCRIPTION, {"id": subscription_id})
        return _subscription(rows[0]) if rows else None

    async def unsubscribe_report(self, subscription_id: int, at: int) -> bool:
        return await self._execute(UNSUBSCRIBE, {"id": subscription_id, "at": at}) > 0

    async def claim_mail_run(
        self,
        kind: str,
        site_id: int,
        subscription_id: int,
        period: str,
        now: int,
        retry_after: int,
        max_attempts: int,
    ) -> bool:
        params = {"kind": kind, "site_id": site_id, "subscription_id": subscription_id,
                  "period": period, "now": now, "retry_before": now - retry_after,
                  "max_attempts": max_attempts}  # fmt: skip
        return await self._execute(CLAIM_RUN, params) > 0

    async def finish_mail_run(
        self, kind: str, subscription_id: int, period: str, sent_at: int | None, error: str | None
    ) -> None:
        params = {"kind": kind, "subscription_id": subscription_id, "period": period,
                  "sent_at": sent_at, "error": error}  # fmt: skip
        await self._execute(FINISH_RUN, params)

    async def set_alert_settings(self, row: dict[str, Any]) -> None:
        await self._execute(SET_ALERTS, {**row, "recipients": json.dumps(row["recipients"])})

    async def alert_settings(self, site_id: int | None) -> list[dict[str, Any]]:
        rows = await self._rows(ALERTS, {"site_id": site_id})
        for row in rows:
            row["recipients"] = json.loads(row["recipients"])
            row["drop_alert"] = bool(row["drop_alert"])
        return rows

    async def remove_alert_recipient(self, site_id: int, email: str) -> bool:
        """Take `email` off the site's alerts; False when it was not on them."""

        async def job(conn: aiosqlite.Connection) -> bool:
            params = {"site_id": site_id}
            async with conn.execute(
                "SELECT recipients FROM alert_settings WHERE site_id = :site_id", params
            ) as cursor:
                row = await cursor.fetchone()
            recipients = json.loads(row[0]) if row else []
            if email not in recipients:
                return False
            kept = json.dumps([r for r in recipients if r != email])
            await conn.execute(
                "UPDATE alert_settings SET recipients = :kept WHERE site_id = :site_id",
                {**params, "kept": kept},
            )
            return True

        return await self.writer.run(job)

    async def claim_alert(self, site_id: int, kind: str, now: int, quiet: int) -> bool:
        params = {"site_id": site_id, "kind": kind, "now": now, "quiet": quiet}
        return await self._execute(CLAIM_ALERT, params) > 0


def _subscription(row: dict[str, Any]) -> dict[str, Any]:
    row["weekly"], row["monthly"] = bool(row["weekly"]), bool(row["monthly"])
    return row

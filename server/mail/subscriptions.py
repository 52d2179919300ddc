"""Subscriptions to a site's reports and its traffic alerts: checked, stored and audited. The
CLI (server/reports_mail_cli.py) and, later, the site settings page make them here."""

from __future__ import annotations

from typing import Any

from ..accounts import audit
from ..accounts.users import normalise_email
from ..events import Site
from ..storage import Storage
from ..web.translations import LANGUAGES


def check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    return lang


async def subscribe(
    storage: Storage,
    site: Site,
    email: str,
    *,
    language: str = "en",
    weekly: bool = True,
    monthly: bool = False,
    share_id: int | None = None,
    now: int,
    actor: audit.Actor,
) -> int:
    """A new subscription's id; SubscriptionExists when the address has one for the site."""
    if not (weekly or monthly):
        raise ValueError("a subscription is to the weekly report, the monthly one, or both")
    row = {
        "site_id": site.id,
        "email": normalise_email(email),
        "language": check_language(language),
        "weekly": weekly,
        "monthly": monthly,
        "share_id": share_id,
        "created_at": now,
    }
    subscription_id = await storage.add_report_subscription(row)
    kinds = " and ".join(kind for kind in ("weekly", "monthly") if row[kind])
    await audit.record(storage, actor, "report subscription added",
                       f"{site.domain}: {kinds} to {row['email']}", site.customer_id)  # fmt: skip
    return subscription_id


async def unsubscribe(
    storage: Storage, subscription: dict[str, Any], site: Site, now: int, actor: audit.Actor
) -> bool:
    """End a subscription; False when it had ended already."""
    if not await storage.unsubscribe_report(subscription["id"], now):
        return False
    await audit.record(storage, actor, "unsubscribed",
                       f"{site.domain}: reports to {subscription['email']}",
                       site.customer_id)  # fmt: skip
    return True


async def set_alerts(
    storage: Storage,
    site: Site,
    *,
    spike: int | None,
    drop: bool,
    recipients: list[str],
    language: str,
    now: int,
    actor: audit.Actor,
) -> dict[str, Any]:
    """Replace the site's alert settings; the row stored."""
    if spike is not None and spike < 1:
        raise ValueError("the spike threshold is a number of current visitors, 1 or more")
    kept = list(dict.fromkeys(normalise_email(email) for email in recipients))
    row: dict[str, Any] = {
        "site_id": site.id,
        "spike_threshold": spike,
        "drop_alert": drop,
        "recipients": kept,
        "language": check_language(language),
        "updated_at": now,
    }
    await storage.set_alert_settings(row)
    await audit.record(storage, actor, "alerts changed",
                       f"{site.domain}: spike {spike or 'off'}, drop {'on' if drop else 'off'}, "
                       f"to {', '.join(kept) or 'nobody'}",
                       site.customer_id)  # fmt: skip
    return row

"""Traffic alerts: a spike (current visitors at or above the site's threshold) and a drop (no
visitor for 12 hours), each at most once in 12 hours, whichever worker sees it first.

A drop alert goes once per silence: after it, the next one waits until visitors have come
back and gone quiet again, so a site left dead does not mail twice a day for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_decimal

from .. import reports
from ..events import Site
from ..reports.query import Query
from ..storage import Storage
from .letters import Letters
from .report import Letter, Links

SPIKE, DROP = "spike", "drop"
KINDS = (SPIKE, DROP)
QUIET = 12 * 3600  # seconds between two alerts of a kind
SILENCE = 12 * 3600  # seconds without a hit that make a drop


@dataclass(frozen=True)
class Alert:
    kind: str
    site: Site
    current: int = 0  # visitors in the last 5 minutes (a spike)
    threshold: int = 0
    last_seen: datetime | None = None  # the last hit before the silence (a drop)


async def due(storage: Storage, site: Site, settings: dict[str, Any], now: datetime) -> list[Alert]:
    """The alerts whose condition holds at `now` (not yet claimed: the caller claims)."""
    found = []
    threshold = settings["spike_threshold"]
    if threshold:
        # The dashboard's "current visitors": those with a hit in the last 5 minutes.
        current = await reports.realtime_visitors(storage, Query.realtime(site, now), now)
        if current >= threshold:
            found.append(Alert(SPIKE, site, current=current, threshold=threshold))
    if settings["drop_alert"]:
        latest = await storage.latest_hits(site.id, 1)
        last = int(latest[0]["ts"]) if latest else None
        quiet_since = int(now.timestamp()) - SILENCE
        rearmed = settings["drop_sent"] is None or settings["drop_sent"] < (last or 0)
        # A site that never had a visitor has nothing to drop from.
        if last is not None and last <= quiet_since and rearmed:
            found.append(Alert(DROP, site, last_seen=datetime.fromtimestamp(last, UTC)))
    return found


def compose(letters: Letters, alert: Alert, lang: str, links: Links) -> Letter:
    _ = letters.gettext(lang)
    site = alert.site.domain
    if alert.kind == SPIKE:
        title = _("Traffic spike")
        subject = _("%(site)s: %(count)s visitors right now") % {
            "site": site, "count": format_decimal(alert.current, locale=lang)}  # fmt: skip
        text = _("%(count)s people are on %(site)s right now: at or above your alert's "
                 "threshold of %(threshold)s current visitors.") % {
            "count": format_decimal(alert.current, locale=lang), "site": site,
            "threshold": format_decimal(alert.threshold, locale=lang)}  # fmt: skip
    else:
        assert alert.last_seen is not None
        title = _("No visitors")
        subject = _("%(site)s: no visitors for 12 hours") % {"site": site}
        # The language's long date ("14 de marzo de 2026"), at the site's clock time.
        local = alert.last_seen.astimezone(ZoneInfo(alert.site.timezone))
        when = f"{format_date(local, 'long', locale=lang)}, {local:%H:%M}"
        text = _("No one has visited %(site)s for 12 hours; the last visit was on %(when)s. "
                 "Check that the site is up and that its pages still load the tracker.") % {
            "site": site, "when": when}  # fmt: skip
    context = {
        "site": site,
        "title": title,
        "text": text,
        "link": f"{links.public_url}/sites/{site}",
        "link_label": _("Open the dashboard"),
        "unsubscribe": links.unsubscribe,
        "public_url": links.public_url,
    }
    return Letter(
        subject=subject,
        text=letters.render(lang, "alert.txt", context),
        html=letters.render(lang, "alert.html", context),
        images={},
    )

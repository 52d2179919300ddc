"""Visits built as hits are written: which visit each hit belongs to, and what it changes.

Backend-neutral: a storage backend looks up the open visits of a batch's visitors, calls
`assign`, and writes the visits it returns. Every report then reads one row a visit.

The rules are the ones reports used to apply to raw hits: a visit ends after 30 minutes
without a hit, an engagement hit (time on a page, sent when the visitor leaves it) never opens
one, and a bounce is a visit with at most one pageview and no interactive custom event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .events import Event

# Two hits of one visitor this far apart or more belong to two visits.
VISIT_GAP = 30 * 60
# How long after its last hit a visit can still take one: an engagement hit comes when the
# visitor leaves the page, which may be long after they opened it, and every hit of a batch
# flushed late by another process has to find its visit too. Past this a visit is closed.
OPEN_FOR = 6 * 3600

ENGAGEMENT = "engagement"
PAGEVIEW = "pageview"


@dataclass(slots=True)
class Visit:
    """One visit, as stored. Its source, campaign, place and device are its first hit's."""

    id: int
    site_id: int
    visitor_id: int
    started: int
    ended: int
    hostname: str
    entry_page: str
    exit_page: str
    pageviews: int = 0
    events: int = 0
    interactions: int = 0
    engaged_ms: int = 0
    referrer_host: str | None = None
    referrer_path: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device: str = ""
    country: str | None = None
    region: str | None = None
    city: str | None = None
    consented: bool = False
    # Not stored: the time of the pageview that set exit_page, so a late hit cannot move it back.
    last_pageview: int = field(default=-1)

    @property
    def bounced(self) -> bool:
        return self.pageviews <= 1 and self.interactions == 0

    @property
    def duration(self) -> float:
        """Seconds from first to last hit, or the time engaged when that is longer: a one-page
        visit has no second hit, and only the engagement hit tells how long it lasted."""
        return max(self.ended - self.started, self.engaged_ms / 1000)


def _open(visit_id: int, e: Event) -> Visit:
    return Visit(
        visit_id, e.site_id, e.visitor_id, e.ts, e.ts, e.hostname, e.path, e.path,
        0, 0, 0, 0,
        e.referrer_host, e.referrer_path, e.utm_source, e.utm_medium, e.utm_campaign,
        e.utm_term, e.utm_content, e.browser, e.browser_version, e.os, e.os_version, e.device,
        e.country, e.region, e.city, e.consented,
    )  # fmt: skip


def _add(visit: Visit, e: Event) -> None:
    if e.ts < visit.started:
        # A hit flushed late by another process, from before the visit's first known one.
        visit.started = e.ts
        if e.name == PAGEVIEW:
            visit.entry_page = e.path
    visit.ended = max(visit.ended, e.ts)
    if e.name == PAGEVIEW:
        visit.pageviews += 1
        if e.ts >= visit.last_pageview:
            visit.last_pageview = e.ts
            visit.exit_page = e.path
    elif e.name == ENGAGEMENT:
        visit.engaged_ms += e.engaged_ms or 0
    else:
        visit.events += 1
        visit.interactions += e.interactive
    visit.consented = visit.consented or e.consented
    e.visit_id = visit.id


def _find(visits: list[Visit], e: Event) -> Visit | None:
    """The visit `e` belongs to among its visitor's, latest first; None if it opens one."""
    for visit in reversed(visits):
        if e.name == ENGAGEMENT:
            # Time on a page belongs to the visit that showed the page, however long ago.
            if visit.started - VISIT_GAP < e.ts:
                return visit
        elif visit.started - VISIT_GAP < e.ts < visit.ended + VISIT_GAP:
            return visit
    return None


def assign(
    events: Sequence[Event], open_visits: Iterable[Visit], next_id: int
) -> tuple[list[Visit], list[Visit]]:
    """Give each event its visit (setting `event.visit_id`), opening visits where needed.

    `open_visits` are the stored visits of the batch's visitors that may still take hits;
    new visits are numbered from `next_id`. Returns (new visits, stored visits changed).
    An engagement hit with no visit to join keeps visit_id None.
    """
    by_visitor: dict[tuple[int, int], list[Visit]] = {}
    for stored in sorted(open_visits, key=lambda v: v.started):
        by_visitor.setdefault((stored.site_id, stored.visitor_id), []).append(stored)
    first_new = next_id
    created: list[Visit] = []
    changed: dict[int, Visit] = {}
    # In time order, so a visit is opened by its first hit; the sort is stable and batches
    # come nearly sorted, so this costs little.
    for e in sorted(events, key=lambda e: e.ts):
        visits = by_visitor.setdefault((e.site_id, e.visitor_id), [])
        visit = _find(visits, e)
        if visit is None:
            if e.name == ENGAGEMENT:
                continue
            visit = _open(next_id, e)
            next_id += 1
            visits.append(visit)
            created.append(visit)
        elif visit.id < first_new:
            changed[visit.id] = visit
        _add(visit, e)
    return created, list(changed.values())

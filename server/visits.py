"""Visits built as hits are written: which visit each hit belongs to, and what it changes.

Backend-neutral: a storage backend looks up the open visits of a batch's visitors, calls
`assign`, and writes the visits it returns. Every report then reads one row a visit.

The rules are the ones reports used to apply to raw hits: a visit ends after 30 minutes
without a hit, an engagement hit (time on a page, sent when the visitor leaves it) never opens
one, and a bounce is a visit with at most one pageview and no interactive custom event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .events import Event

# Two hits of one visitor this far apart or more belong to two visits.
VISIT_GAP = 30 * 60
# How long after its last hit a visit stays open, that is, can still take a hit and is known
# to the visitor's next visit. An engagement hit comes when the visitor leaves the page, maybe
# long after they opened it, and a batch can be flushed late by another process; and a visit
# must know when the visitor's previous one started, which is what counts visitors in one
# pass (see `previous_started`). A visitor's hash lives one UTC day (plus a visit carried
# past midnight), so a day and two hours covers every visit under one hash; only consented
# visitors keep theirs longer, and the writer reads their last visit from consented_visitors.
OPEN_FOR = 26 * 3600

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
    # When the same visitor's previous visit on this site started, None if it had none that
    # is known: a period's visitors are its visits whose previous one started before it, which
    # counts distinct visitors without the sort that COUNT(DISTINCT) needs (~1 us a visit).
    previous_started: int | None = None
    # The deepest scroll on each page of the visit, in %: scroll depth is the mean of these.
    depths: dict[str, int] = field(default_factory=dict)
    # Not stored: the time of the pageview that set exit_page, so a late hit cannot move it back.
    last_pageview: int = -1


def _open(visit_id: int, e: Event, previous_started: int | None) -> Visit:
    return Visit(
        visit_id, e.site_id, e.visitor_id, e.ts, e.ts, e.hostname, e.path, e.path,
        0, 0, 0, 0,
        e.referrer_host, e.referrer_path, e.utm_source, e.utm_medium, e.utm_campaign,
        e.utm_term, e.utm_content, e.browser, e.browser_version, e.os, e.os_version, e.device,
        e.country, e.region, e.city, e.consented, previous_started,
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
        if e.scroll_depth is not None and e.scroll_depth > visit.depths.get(e.path, -1):
            visit.depths[e.path] = e.scroll_depth
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


def _ts(e: Event) -> int:
    return e.ts


def _started(v: Visit) -> int:
    return v.started


def assign(
    events: Sequence[Event],
    open_visits: Iterable[Visit],
    next_id: int,
    last_started: Mapping[tuple[int, int], int] | None = None,
) -> tuple[list[Visit], list[Visit]]:
    """Give each event its visit (setting `event.visit_id`), opening visits where needed.

    `open_visits` are the stored visits of the batch's visitors that may still take hits;
    `last_started`, by (site_id, visitor_id), when a visitor with no open visit last started
    one (consented visitors: their ID outlives the open window). New visits are numbered from
    `next_id`. Returns (new visits, stored visits changed). An engagement hit with no visit to
    join keeps visit_id None.
    """
    last_started = last_started or {}
    by_visitor: dict[tuple[int, int], list[Visit]] = {}
    for stored in sorted(open_visits, key=_started):
        by_visitor.setdefault((stored.site_id, stored.visitor_id), []).append(stored)
    first_new = next_id
    created: list[Visit] = []
    changed: dict[int, Visit] = {}
    # In time order, so a visit is opened by its first hit; the sort is stable and batches
    # come nearly sorted, so this costs little.
    for e in sorted(events, key=_ts):
        key = (e.site_id, e.visitor_id)
        visits = by_visitor.get(key)
        if visits is None:
            # The common case, a visitor this batch sees first and no visit is open for: spare
            # it the searches below (bench/cost.py, one visit a request: ~2 us an event).
            if e.name == ENGAGEMENT:
                continue
            first = _open(next_id, e, last_started.get(key))
            next_id += 1
            by_visitor[key] = [first]
            created.append(first)
            _add(first, e)
            continue
        visit = _find(visits, e)
        if visit is None:
            if e.name == ENGAGEMENT:
                continue
            before = [v.started for v in visits if v.started < e.ts]
            previous = max(before) if before else last_started.get(key)
            visit = _open(next_id, e, previous)
            next_id += 1
            # A visit flushed late by another process may come between two stored ones.
            for later in visits:
                if later.started > e.ts and (later.previous_started or -1) < e.ts:
                    later.previous_started = e.ts
                    if later.id < first_new:
                        changed[later.id] = later
            visits.append(visit)
            visits.sort(key=_started)
            created.append(visit)
        elif visit.id < first_new:
            changed[visit.id] = visit
        _add(visit, e)
    return created, list(changed.values())

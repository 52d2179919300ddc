"""Data-subject rights: find, export and erase what one site holds under a visitor ID (the
banner's `zeef_id` cookie) or a consent ID (its `zeef_consent` cookie). Used by `zeef subject`
(server/subjects_cli.py) and the visitor's own page (server/web/my_data.py); docs/subject-rights.md.

Zeef never stores a visitor ID: rows hold its keyed hash (privacy.consented_visitor_hash), so
the ID is needed to find them, and only the current visitor key can hash it.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .accounts import audit
from .consent import _CONSENT_ID
from .events import Site
from .privacy import consented_visitor_hash
from .storage import Storage

FORMAT = "zeef-subject-export"
VERSION = 1
# What the tracker accepts as a visitor ID (ingest/plausible.py); consent.js makes 22.
_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Columns holding a Unix time, written out as ISO 8601 (UTC) so a person can read them.
TIMES = ("ts", "started", "ended", "first_seen", "last_started", "previous_started", "created_at")


@dataclass(frozen=True)
class Subject:
    """Whom a request is about: a visitor ID, a consent ID, or both (the self-service page
    has both cookies)."""

    visitor: str | None = None
    consent: str | None = None

    def __post_init__(self) -> None:
        if self.visitor is None and self.consent is None:
            raise ValueError("give a visitor ID or a consent ID")
        if self.visitor is not None and not _VISITOR_ID.match(self.visitor):
            raise ValueError("a visitor ID is 16-64 URL-safe characters (the zeef_id cookie)")
        if self.consent is not None and not _CONSENT_ID.match(self.consent):
            raise ValueError("a consent ID is a random (version 4) UUID, in lower case")

    @property
    def label(self) -> str:
        """For the audit log: a short hash, never the ID (which opens the rows)."""
        digest = hashlib.sha256(f"{self.visitor}\x00{self.consent}".encode()).hexdigest()
        kinds = [k for k, v in (("visitor", self.visitor), ("consent", self.consent)) if v]
        return f"{'+'.join(kinds)} #{digest[:8]}"


def hashes(subject: Subject, site: Site, visitor_key: bytes) -> list[int]:
    """The stored visitor hashes the subject's ID maps to on `site` (none without one)."""
    if subject.visitor is None:
        return []
    return [consented_visitor_hash(visitor_key, site.id, subject.visitor)]


async def find(
    storage: Storage, site: Site, subject: Subject, visitor_key: bytes
) -> dict[str, list[dict[str, Any]]]:
    """Every row the site holds for the subject, per table."""
    rows = await storage.subject_rows(site.id, hashes(subject, site, visitor_key), subject.consent)
    return {table: [_readable(row) for row in found] for table, found in rows.items()}


def counts(found: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {table: len(rows) for table, rows in found.items()}


async def export(
    storage: Storage, site: Site, subject: Subject, visitor_key: bytes, actor: audit.Actor
) -> dict[str, Any]:
    """The JSON document of everything found (docs/subject-rights.md); audited."""
    found = await find(storage, site, subject, visitor_key)
    await audit.record(storage, actor, "subject.export",
                       f"{site.domain}: {subject.label} ({_said(counts(found))})",
                       site.customer_id)  # fmt: skip
    return {
        "format": FORMAT,
        "version": VERSION,
        "site": site.domain,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "visitor_id": subject.visitor,
        "consent_id": subject.consent,
        "tables": found,
    }


def as_zip(document: dict[str, Any]) -> bytes:
    """The export as a ZIP of CSV files, one per table (columns as in the JSON), made safe for
    spreadsheets; a table with no rows is left out. Nested values (a consent's choices) are
    JSON in their cell."""
    import json

    from .web.export import to_csv

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for table, rows in document["tables"].items():
            if not rows:
                continue
            header = list(rows[0])
            cells = [
                [json.dumps(v) if isinstance(v, dict | list) else v for v in row.values()]
                for row in rows
            ]
            archive.writestr(f"{table}.csv", to_csv(header, cells))
    return buffer.getvalue()


async def erase(
    storage: Storage, site: Site, subject: Subject, visitor_key: bytes, actor: audit.Actor
) -> dict[str, int]:
    """Delete every row found, and the rollup sums that counted them (built again from what
    is left); then free the pages and empty the WAL, so the rows are in neither file.
    Rows deleted per table (rollup_days: the day, week and window keys to sum again); audited."""
    deleted = await storage.erase_subject(
        site.id, hashes(subject, site, visitor_key), subject.consent
    )
    if any(deleted.values()):
        await storage.reclaim()
    await audit.record(storage, actor, "subject.erase",
                       f"{site.domain}: {subject.label} ({_said(deleted)})",
                       site.customer_id)  # fmt: skip
    return deleted


def _said(figures: dict[str, int]) -> str:
    return ", ".join(f"{table} {n}" for table, n in figures.items() if n) or "no rows"


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (
            datetime.fromtimestamp(value, UTC).isoformat()
            if name in TIMES and isinstance(value, int)
            else value
        )
        for name, value in row.items()
    }

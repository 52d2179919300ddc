"""The Storage protocol: what the rest of Zeef asks of a database, named after its needs.

SQLite is the embedded default; a ClickHouse backend will implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..events import ConsentRecord, Event, Site
from .writer import WriterStatus

# (site_id, UTC day "YYYY-MM-DD", reason) -> count
DropCounts = Mapping[tuple[int, str, str], int]


class SiteExists(ValueError):
    """A site with that domain is already registered."""


class NoDatabase(FileNotFoundError):
    """No database where one was expected; nothing was created in its place."""


class Storage(Protocol):
    async def migrate(self) -> None: ...

    async def close(self) -> None: ...

    def health(self) -> WriterStatus:
        """The writer's state, read without taking a lock or waiting for the database."""
        ...

    async def secret_key(self, generated: str) -> str:
        """The stored secret key, storing `generated` first if there is none."""
        ...

    async def load_salts(
        self, day: str, yesterday: str, fresh: bytes
    ) -> tuple[bytes, bytes | None]:
        """Today's salt (created from `fresh` if missing) and yesterday's; delete older ones."""
        ...

    async def add_site(self, domain: str, timezone: str, created_at: int) -> Site: ...

    async def sites(self) -> list[Site]: ...

    async def settings_version(self) -> int:
        """A number that changes with every write to sites or their settings, from any process:
        what lets a running server notice a change without reading the settings themselves."""
        ...

    async def set_honour_dnt(self, site_id: int, honour: bool) -> None: ...

    async def consent_config(self, site_id: int) -> str | None:
        """The site's consent config as JSON, or None when never configured."""
        ...

    async def set_consent_config(self, site_id: int, config: str, updated_at: int) -> None: ...

    async def insert_consent_record(self, record: ConsentRecord) -> None: ...

    async def consent_records(self, site_id: int, since: int) -> list[ConsentRecord]: ...

    async def consent_records_by_id(self, consent_id: str) -> list[ConsentRecord]: ...

    async def delete_consent_records(self, consent_id: str) -> int: ...

    async def consent_rates(self, site_id: int, start: int, end: int) -> list[dict[str, Any]]:
        """Per UTC day: decisions, and how many accepted each category."""
        ...

    async def write_batch(self, events: Sequence[Event], drops: DropCounts) -> None:
        """Store a flush's events and drop counts together, or neither."""
        ...

    async def site_totals(self, site_id: int, start: int, end: int) -> dict[str, float | None]:
        """Visitors, visits, pageviews, events, bounce rate, visit duration, scroll depth."""
        ...

    async def site_drops(self, site_id: int, start_day: str, end_day: str) -> dict[str, int]: ...

    async def meta_key(self, name: str, generated: str, replace: bool = False) -> str:
        """The key stored under `name`, storing `generated` first if there is none (or in its
        place, with `replace`): secrets generated on first start and rotated from the CLI."""
        ...


def open_storage(database: Path, *, must_exist: bool = False) -> Storage:
    """The storage at `database`, created on first use unless `must_exist`: a command that only
    reads, run in the wrong directory, must not leave an empty database there."""
    from .sqlite import SQLiteStorage

    if must_exist and not database.is_file():
        raise NoDatabase(str(database.absolute()))

    return SQLiteStorage(database)

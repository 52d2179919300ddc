"""SQL for share links (migration 0017), as a part of SQLiteStorage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

if TYPE_CHECKING:
    from .writer import Writer

SHARE_COLUMNS = """
s.id, s.site_id, t.domain, s.label, s.nonce, s.password_hash, s.expires_at, s.sections,
s.filters, s.embed_origins, s.csv, s.created_by, s.created_at, s.updated_at, s.revoked_at
"""

SHARE = f"""
SELECT {SHARE_COLUMNS} FROM shares AS s JOIN sites AS t ON t.id = s.site_id WHERE s.id = :id
"""

SHARES_OF_SITE = f"""
SELECT {SHARE_COLUMNS} FROM shares AS s JOIN sites AS t ON t.id = s.site_id
WHERE s.site_id = :site_id
ORDER BY s.revoked_at IS NOT NULL, s.id DESC
"""

INSERT_SHARE = """
INSERT INTO shares (site_id, label, nonce, password_hash, expires_at, sections, filters,
                    embed_origins, csv, created_by, created_at, updated_at)
VALUES (:site_id, :label, :nonce, :password_hash, :expires_at, :sections, :filters,
        :embed_origins, :csv, :created_by, :created_at, :created_at)
"""

# The columns `zeef share set` and the admin pages may change (a new nonce: a new link).
SETTABLE = ("label", "nonce", "password_hash", "expires_at", "sections", "filters",
            "embed_origins", "csv")  # fmt: skip


class ShareTables:
    """Share links' reads and writes; SQLiteStorage supplies the connections."""

    if TYPE_CHECKING:
        writer: Writer

        async def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

        async def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> int: ...

    async def add_share(self, share: dict[str, Any]) -> int:
        async def job(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(INSERT_SHARE, share)
            return int(cursor.lastrowid or 0)

        return await self.writer.run(job)

    async def share(self, share_id: int) -> dict[str, Any] | None:
        rows = await self._rows(SHARE, {"id": share_id})
        return rows[0] if rows else None

    async def shares_of_site(self, site_id: int) -> list[dict[str, Any]]:
        return await self._rows(SHARES_OF_SITE, {"site_id": site_id})

    async def update_share(self, share_id: int, changes: dict[str, Any], at: int) -> bool:
        """Set some of SETTABLE's columns (and updated_at); False if no such share."""
        unknown = set(changes) - set(SETTABLE)
        if unknown:
            raise ValueError(f"not a share setting: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        sql = f"UPDATE shares SET {assignments}, updated_at = :at WHERE id = :id"
        return await self._execute(sql, {**changes, "at": at, "id": share_id}) > 0

    async def revoke_share(self, share_id: int, at: int) -> bool:
        """Revoke a share (once: the first time stays); False if no such share."""
        return (
            await self._execute(
                "UPDATE shares SET revoked_at = COALESCE(revoked_at, :at), updated_at = :at"
                " WHERE id = :id",
                {"at": at, "id": share_id},
            )
            > 0
        )

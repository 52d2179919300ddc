"""SQL for accounts (migrations 0014 and 0016): users, sessions, set-password links, login
failures and the audit log, as a part of SQLiteStorage."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from . import UserExists

if TYPE_CHECKING:
    from .writer import Writer

USER_COLUMNS = """
u.id, u.email, u.customer_id, c.name AS customer, u.role, u.password_hash,
u.must_change_password, u.blocked_at, u.language, u.theme, u.created_at
"""

USERS = f"""
SELECT {USER_COLUMNS} FROM users AS u LEFT JOIN customers AS c ON c.id = u.customer_id
ORDER BY c.name COLLATE NOCASE NULLS FIRST, u.email
"""

USER_BY_EMAIL = f"""
SELECT {USER_COLUMNS} FROM users AS u LEFT JOIN customers AS c ON c.id = u.customer_id
WHERE u.email = :email
"""

USER_BY_ID = f"""
SELECT {USER_COLUMNS} FROM users AS u LEFT JOIN customers AS c ON c.id = u.customer_id
WHERE u.id = :id
"""

INSERT_USER = """
INSERT INTO users (email, customer_id, role, password_hash, must_change_password, created_at)
VALUES (:email, :customer_id, :role, :password_hash, :must_change_password, :created_at)
"""

# The session and its user in one read: every request with a cookie makes it.
SESSION = f"""
SELECT s.csrf_token, s.created_at AS session_created_at, s.seen_at, {USER_COLUMNS}
FROM sessions AS s JOIN users AS u ON u.id = s.user_id
LEFT JOIN customers AS c ON c.id = u.customer_id
WHERE s.id_hash = :id_hash
"""

INSERT_SESSION = """
INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, seen_at)
VALUES (:id_hash, :user_id, :csrf_token, :at, :at)
"""

FAILURES = """
SELECT
    (SELECT COUNT(*) FROM login_failures WHERE account = :account AND at > :since),
    (SELECT MIN(at) FROM login_failures WHERE account = :account AND at > :since),
    (SELECT COUNT(*) FROM login_failures WHERE address = :address AND at > :since),
    (SELECT MIN(at) FROM login_failures WHERE address = :address AND at > :since)
"""

AUDIT_LOG = """
SELECT a.id, a.at, a.actor, a.action, a.object, a.customer_id, c.name AS customer, a.address
FROM audit_log AS a LEFT JOIN customers AS c ON c.id = a.customer_id
WHERE a.at >= :since AND (:customer_id IS NULL OR a.customer_id = :customer_id)
ORDER BY a.at DESC, a.id DESC LIMIT :limit
"""


class AccountTables:
    """Accounts' reads and writes; SQLiteStorage supplies the connections."""

    if TYPE_CHECKING:
        writer: Writer

        async def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

        async def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> int: ...

    async def add_user(self, user: dict[str, Any]) -> int:
        async def job(conn: aiosqlite.Connection) -> int:
            try:
                cursor = await conn.execute(INSERT_USER, user)
            except sqlite3.IntegrityError:
                raise UserExists(user["email"]) from None
            return int(cursor.lastrowid or 0)

        return await self.writer.run(job)

    async def users(self) -> list[dict[str, Any]]:
        return await self._rows(USERS, {})

    async def user_by_email(self, email: str) -> dict[str, Any] | None:
        rows = await self._rows(USER_BY_EMAIL, {"email": email})
        return rows[0] if rows else None

    async def user_by_id(self, user_id: int) -> dict[str, Any] | None:
        rows = await self._rows(USER_BY_ID, {"id": user_id})
        return rows[0] if rows else None

    async def update_user(self, user_id: int, changes: dict[str, Any], end_sessions: bool) -> bool:
        """Set the named columns (names from accounts.users, never from a request); with
        `end_sessions`, delete the user's sessions in the same transaction."""
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        params = {**changes, "id": user_id}

        async def job(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(f"UPDATE users SET {assignments} WHERE id = :id", params)
            if end_sessions:
                await conn.execute("DELETE FROM sessions WHERE user_id = :id", params)
            return cursor.rowcount > 0

        return await self.writer.run(job)

    async def remove_user(self, user_id: int, email: str, at: int) -> None:
        """The user, their sessions and links go; their API keys are revoked (kept, so an
        audit can still name them)."""

        async def job(conn: aiosqlite.Connection) -> None:
            params = {"id": user_id, "email": email, "at": at}
            await conn.execute("DELETE FROM sessions WHERE user_id = :id", params)
            await conn.execute("DELETE FROM password_links WHERE user_id = :id", params)
            await conn.execute(
                "UPDATE api_keys SET revoked_at = :at WHERE owner = :email AND revoked_at IS NULL",
                params,
            )
            await conn.execute("DELETE FROM users WHERE id = :id", params)

        await self.writer.run(job)

    # -- sessions ------------------------------------------------------------------------------

    async def add_session(self, id_hash: bytes, user_id: int, csrf_token: str, at: int) -> None:
        params = {"id_hash": id_hash, "user_id": user_id, "csrf_token": csrf_token, "at": at}
        await self._execute(INSERT_SESSION, params)

    async def session(self, id_hash: bytes) -> dict[str, Any] | None:
        rows = await self._rows(SESSION, {"id_hash": id_hash})
        return rows[0] if rows else None

    async def touch_session(self, id_hash: bytes, at: int) -> None:
        await self._execute(
            "UPDATE sessions SET seen_at = :at WHERE id_hash = :id_hash AND seen_at < :at",
            {"id_hash": id_hash, "at": at},
        )

    async def end_session(self, id_hash: bytes) -> None:
        await self._execute("DELETE FROM sessions WHERE id_hash = :id_hash", {"id_hash": id_hash})

    async def end_idle_sessions(self, before: int) -> int:
        return await self._execute(
            "DELETE FROM sessions WHERE seen_at < :before", {"before": before}
        )

    # -- set-password links --------------------------------------------------------------------

    async def add_password_link(self, token_hash: bytes, user_id: int, expires_at: int) -> None:
        params = {"token_hash": token_hash, "user_id": user_id, "expires_at": expires_at}

        async def job(conn: aiosqlite.Connection) -> None:
            # One live link a user: a new one replaces the last.
            await conn.execute("DELETE FROM password_links WHERE user_id = :user_id", params)
            await conn.execute(
                "INSERT INTO password_links (token_hash, user_id, expires_at) "
                "VALUES (:token_hash, :user_id, :expires_at)",
                params,
            )

        await self.writer.run(job)

    async def password_link(self, token_hash: bytes, now: int) -> int | None:
        """The user a live link is for."""
        rows = await self._rows(
            "SELECT user_id FROM password_links WHERE token_hash = :token_hash "
            "AND expires_at > :now",
            {"token_hash": token_hash, "now": now},
        )
        return int(rows[0]["user_id"]) if rows else None

    async def use_password_link(
        self, token_hash: bytes, user_id: int, password_hash: str, now: int
    ) -> bool:
        """Set the password and spend the link together; False if it was spent meanwhile."""

        async def job(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(
                "DELETE FROM password_links WHERE token_hash = :token_hash "
                "AND user_id = :user_id AND expires_at > :now",
                {"token_hash": token_hash, "user_id": user_id, "now": now},
            )
            if cursor.rowcount == 0:
                return False
            await conn.execute(
                "UPDATE users SET password_hash = :hash, must_change_password = 0 "
                "WHERE id = :user_id",
                {"hash": password_hash, "user_id": user_id},
            )
            await conn.execute(
                "DELETE FROM sessions WHERE user_id = :user_id", {"user_id": user_id}
            )
            return True

        return await self.writer.run(job)

    # -- login throttling ----------------------------------------------------------------------

    async def login_failures(
        self, account: bytes, address: str, since: int
    ) -> tuple[int, int | None, int, int | None]:
        """Failures after `since` for the account and for the address, each with its oldest."""
        rows = await self._rows(FAILURES, {"account": account, "address": address, "since": since})
        row = list(rows[0].values())
        return int(row[0]), row[1], int(row[2]), row[3]

    async def add_login_failure(self, account: bytes, address: str, at: int, window: int) -> None:
        async def job(conn: aiosqlite.Connection) -> None:
            params = {"account": account, "address": address, "at": at, "old": at - window}
            await conn.execute("DELETE FROM login_failures WHERE at <= :old", params)
            await conn.execute(
                "INSERT INTO login_failures (at, account, address) "
                "VALUES (:at, :account, :address)",
                params,
            )

        await self.writer.run(job)

    async def clear_login_failures(self, account: bytes) -> None:
        await self._execute(
            "DELETE FROM login_failures WHERE account = :account", {"account": account}
        )

    # -- audit log -----------------------------------------------------------------------------

    async def add_audit(self, row: dict[str, Any]) -> None:
        await self._execute(
            "INSERT INTO audit_log (at, actor, action, object, customer_id, address) "
            "VALUES (:at, :actor, :action, :object, :customer_id, :address)",
            row,
        )

    async def audit_log(
        self, since: int, customer_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        params = {"since": since, "customer_id": customer_id, "limit": limit}
        return await self._rows(AUDIT_LOG, params)

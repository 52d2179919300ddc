"""What the rest of Zeef asks of a database, named after its needs, and open_storage(url).

Two halves: the metadata store (sites, settings, keys, salts, consent) is always SQLite in
the embedded set-up; the event store (batches of hits, their visits and drops, and the reports
over them, each taking a Query) is where ClickHouse will plug in for users who outgrow one
machine. SQLiteStorage is both.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..events import ConsentRecord, Event, Site
from .writer import WriterStatus

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ..goals import Goal
    from ..reports import Query
    from ..reports.filters import GoalLike
    from .sqlite_portability import SiteSnapshot

# (site_id, UTC day "YYYY-MM-DD", reason) -> count
DropCounts = Mapping[tuple[int, str, str], int]


class SiteExists(ValueError):
    """A site with that domain is already registered."""


class CustomerExists(ValueError):
    """A customer with that name (in any case) exists already."""


class UserExists(ValueError):
    """A user with that email exists already."""


class GoalExists(ValueError):
    """The site has a goal of that name already, or one for the same event or page."""


class SubscriptionExists(ValueError):
    """The address gets the site's reports already (a live subscription)."""


class NoDatabase(FileNotFoundError):
    """No database where one was expected; nothing was created in its place."""


class MetadataStore(Protocol):
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

    async def add_goal(self, goal: Goal) -> Goal:
        """Store a checked goal (server/goals.new_goal); the stored one, with its id.
        GoalExists when the site has one of that name, event or page pattern."""
        ...

    async def goals(self, site_id: int) -> list[Goal]:
        """The site's goals, oldest first."""
        ...

    async def remove_goal(self, site_id: int, display_name: str) -> bool:
        """Delete the site's goal of that name; False when there is none."""
        ...

    async def settings_version(self) -> int:
        """A number that changes with every write to sites or their settings, from any process:
        what lets a running server notice a change without reading the settings themselves."""
        ...

    async def set_honour_dnt(self, site_id: int, honour: bool) -> None: ...

    async def set_site_timezone(self, site_id: int, timezone: str) -> None: ...

    async def latest_hits(self, site_id: int, limit: int) -> list[dict[str, Any]]:
        """The site's newest stored hits (ts, name, hostname, path, browser, os, country)."""
        ...

    async def latest_drops(self, site_id: int, since: str) -> list[dict[str, Any]]:
        """Drop counts (day, reason, count, example) from the UTC day `since` on, newest
        first."""
        ...

    async def api_keys_of_customer(self, customer_id: int | None) -> list[dict[str, Any]]: ...

    async def add_customer(self, name: str, created_at: int) -> int:
        """Store a customer; its id. CustomerExists if the name (in any case) is taken."""
        ...

    async def customers(self) -> list[dict[str, Any]]:
        """Every customer: id, name, created_at and how many sites it owns, by name."""
        ...

    async def set_site_customer(self, site_id: int, customer_id: int | None) -> None: ...

    async def site_customers(self) -> dict[int, str]:
        """The owning customer's name of each site that has one, by site id."""
        ...

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

    async def create_api_key(
        self, owner: str, label: str | None, prefix: str, key_hash: bytes, created_at: int
    ) -> int:
        """Store a Stats API key's hash; its id."""
        ...

    async def api_keys(self, owner: str) -> list[dict[str, Any]]:
        """An owner's keys, revoked ones too: id, owner, label, prefix and times, no hash."""
        ...

    async def api_key_by_hash(self, key_hash: bytes) -> dict[str, Any] | None:
        """The key with that hash, unless revoked, with its owner's account (user_id, role,
        customer_id, blocked_at; None when the owner has no account)."""
        ...

    async def revoke_api_key(self, key_id: int, at: int) -> bool:
        """Whether a key that was live is revoked now."""
        ...

    async def touch_api_key(self, key_id: int, at: int) -> None:
        """Record a use; callers write it at most once a minute a key (apikeys.TOUCH_EVERY)."""
        ...


class AccountStore(Protocol):
    """Users, sessions, set-password links, login failures and the audit log
    (server/storage/sqlite_accounts.py). Rows are dicts with the columns of 0014_users.sql and
    0016_user_theme.sql; a user's also carries `customer`, its customer's name."""

    async def add_user(self, user: dict[str, Any]) -> int: ...

    async def users(self) -> list[dict[str, Any]]: ...

    async def user_by_email(self, email: str) -> dict[str, Any] | None: ...

    async def user_by_id(self, user_id: int) -> dict[str, Any] | None: ...

    async def update_user(
        self, user_id: int, changes: dict[str, Any], end_sessions: bool
    ) -> bool: ...

    async def remove_user(self, user_id: int, email: str, at: int) -> None: ...

    async def add_session(self, id_hash: bytes, user_id: int, csrf_token: str, at: int) -> None: ...

    async def session(self, id_hash: bytes) -> dict[str, Any] | None:
        """The session's csrf_token, session_created_at and seen_at, with its user's row."""
        ...

    async def touch_session(self, id_hash: bytes, at: int) -> None: ...

    async def end_session(self, id_hash: bytes) -> None: ...

    async def end_idle_sessions(self, before: int) -> int: ...

    async def add_password_link(self, token_hash: bytes, user_id: int, expires_at: int) -> None: ...

    async def password_link(self, token_hash: bytes, now: int) -> int | None: ...

    async def use_password_link(
        self, token_hash: bytes, user_id: int, password_hash: str, now: int
    ) -> bool: ...

    async def login_failures(
        self, account: bytes, address: str, since: int
    ) -> tuple[int, int | None, int, int | None]: ...

    async def add_login_failure(
        self, account: bytes, address: str, at: int, window: int
    ) -> None: ...

    async def clear_login_failures(self, account: bytes) -> None: ...

    async def add_audit(self, row: dict[str, Any]) -> None: ...

    async def audit_log(
        self, since: int, customer_id: int | None, limit: int
    ) -> list[dict[str, Any]]: ...


class MailStore(Protocol):
    """Reports and alerts by e-mail (server/storage/sqlite_mail.py, 0018_mail_reports.sql).
    A subscription's row carries its site's `domain`."""

    async def add_report_subscription(self, row: dict[str, Any]) -> int:
        """Store a subscription (site_id, email, language, weekly, monthly, share_id,
        created_at); its id. SubscriptionExists if the address has a live one for the site."""
        ...

    async def report_subscriptions(
        self, site_id: int | None, everyone: bool = False
    ) -> list[dict[str, Any]]:
        """Live subscriptions, of one site or of all; with `everyone`, ended ones too."""
        ...

    async def report_subscription(self, subscription_id: int) -> dict[str, Any] | None: ...

    async def unsubscribe_report(self, subscription_id: int, at: int) -> bool:
        """End a subscription; False when it had ended already (or never was)."""
        ...

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
        """Whether this caller may send the run: it is new, or an unsent claim older than
        `retry_after` seconds with fewer than `max_attempts`. Atomic across processes."""
        ...

    async def finish_mail_run(
        self, kind: str, subscription_id: int, period: str, sent_at: int | None, error: str | None
    ) -> None: ...

    async def set_alert_settings(self, row: dict[str, Any]) -> None:
        """Store a site's alerts: site_id, spike_threshold (None: off), drop_alert,
        recipients (a list of addresses), language, updated_at."""
        ...

    async def alert_settings(self, site_id: int | None) -> list[dict[str, Any]]:
        """The alert settings of one site or of all, with when each alert last went
        (spike_sent, drop_sent)."""
        ...

    async def remove_alert_recipient(self, site_id: int, email: str) -> bool: ...

    async def claim_alert(self, site_id: int, kind: str, now: int, quiet: int) -> bool:
        """Whether this caller may send the alert: none of its kind went in the last `quiet`
        seconds (and `now` is recorded as its time). Atomic across processes."""
        ...


class EventStore(Protocol):
    async def write_batch(
        self,
        events: Sequence[Event],
        drops: DropCounts,
        examples: Mapping[tuple[int, str, str], str] | None = None,
    ) -> None:
        """Store a flush's events, the visits they open or extend and the drop counts
        together, or none of them. `examples`: what some drops were about (a host), by the
        same key as `drops`."""
        ...

    async def site_totals(self, query: Query) -> dict[str, float | None]:
        """Visitors, visits, pageviews, events, returning visitors, bounce rate, visit
        duration and scroll depth of the query's site and range."""
        ...

    async def site_drops(self, query: Query) -> dict[str, int]:
        """Events kept out in the query's range (whole UTC days), by reason."""
        ...

    # The report engine's reads (server/reports): each takes the Query with its filters and
    # the site's goals, and answers rows of raw metrics that server/reports rounds and
    # derives from. Rows carry `value` (the bucket or dimension value) where grouped.
    async def report_totals(self, query: Query, goals: Sequence[GoalLike]) -> dict[str, Any]:
        """visitors, visits, pageviews, events (pageviews and custom events), bounce_rate (%),
        visit_duration (s), scroll_depth (%) of the whole range."""
        ...

    async def report_series(self, query: Query, goals: Sequence[GoalLike]) -> list[dict[str, Any]]:
        """report_totals per bucket of query.bucket, `value` the bucket's label."""
        ...

    async def summed(self, query: Query, goals: Sequence[GoalLike], narrowed: bool = False) -> bool:
        """Whether the rollups answer the query's breakdowns (unfiltered, or a filter set
        summed as a segment); asking notes a new filter set for the builder."""
        ...

    async def report_by_visit(
        self, query: Query, goals: Sequence[GoalLike], dimension: str
    ) -> list[dict[str, Any]]:
        """report_totals per value of a visit dimension."""
        ...

    async def report_by_hit(
        self, query: Query, goals: Sequence[GoalLike], dimension: str
    ) -> list[dict[str, Any]]:
        """visitors, visits, pageviews, events per value of an event dimension."""
        ...

    async def report_entries(
        self, query: Query, goals: Sequence[GoalLike], pages: Sequence[str] | None
    ) -> dict[str, dict[str, Any]]:
        """Per entry page: visits, bounce_rate, visit_duration of the visits entering there."""
        ...

    async def report_engagement(
        self, query: Query, goals: Sequence[GoalLike], pages: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Per page: scroll_depth (mean of each visit's deepest) and engaged_seconds."""
        ...

    async def report_goals(
        self, query: Query, goals: Sequence[GoalLike], names: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        """Per goal: value (its name), visitors, events, revenue, currency."""
        ...

    async def realtime_visitors(self, site_id: int, since: int) -> int:
        """Visitors with a hit at or after `since`."""
        ...

    async def report_hits_series(self, query: Query) -> list[dict[str, Any]]:
        """visitors and pageviews per bucket of query.bucket, by the time of each hit."""
        ...

    async def first_visit(self, site_id: int) -> int | None:
        """When the site's first stored visit started: where `all` begins."""
        ...

    async def property_names(self, query: Query) -> list[str]:
        """The custom property names of the period's hits, sorted."""
        ...

    async def build_rollups(self, now: int, stop: threading.Event | None = None) -> int:
        """Bring the per-day sums reports read up to date with what is stored (a backend
        without them returns 0); `stop` set ends it early. Returns the site-days (re)built."""
        ...

    async def rollups_wanted(self) -> None:
        """Return when a report has asked for sums not built yet (a new filter set): the
        builder then builds without waiting for its interval."""
        ...


class ShareStore(Protocol):
    """Share links (server/storage/sqlite_shares.py): rows are dicts with the columns of
    0017_shares.sql and `domain`, the site's."""

    async def add_share(self, share: dict[str, Any]) -> int: ...

    async def share(self, share_id: int) -> dict[str, Any] | None: ...

    async def shares_of_site(self, site_id: int) -> list[dict[str, Any]]: ...

    async def update_share(self, share_id: int, changes: dict[str, Any], at: int) -> bool: ...

    async def revoke_share(self, share_id: int, at: int) -> bool: ...


class RetentionStore(Protocol):
    """Retention (server/retention.py, server/purge.py): periods, and deleting what is past
    them, in batches. Rules are named after tables (storage/sqlite_retention.py: RULES)."""

    async def retention_rows(self) -> list[dict[str, Any]]: ...

    async def set_site_retention(self, site_id: int, retention: str | None) -> None: ...

    async def set_customer_retention(self, customer_id: int, **changes: Any) -> None: ...

    async def customer_retention(self, customer_id: int) -> dict[str, Any] | None: ...

    async def claim_purge(self, now: int, by: str) -> int | None: ...

    async def finish_purge(self, run_id: int, now: int, deleted: str) -> None: ...

    async def last_purge(self) -> dict[str, Any] | None: ...

    async def site_purged(self, site_id: int) -> dict[str, Any] | None: ...

    async def mark_site_purged(
        self, site_id: int, cutoff: int, consent_cutoff: int, keep_aggregates: bool
    ) -> None: ...

    async def expired_rows(self, rule: str, params: dict[str, Any]) -> int: ...

    async def delete_expired(self, rule: str, params: dict[str, Any]) -> int: ...

    async def forget_expired_firsts(self, params: dict[str, Any]) -> None: ...

    async def delete_site_rows(self, site_id: int, table: str, batch: int) -> int: ...

    async def delete_site_record(self, site_id: int) -> None: ...

    async def checkpoint_aside(self) -> None: ...

    async def reclaim(self, step: int = 0, pause: float = 0.0) -> dict[str, int]: ...

    async def vacuum(self) -> int: ...

    async def delete_customer(self, customer_id: int) -> int: ...


class SubjectStore(Protocol):
    """Data-subject requests (server/subjects.py): one visitor's or consent's rows on a site,
    per table (storage/sqlite_subjects.py: TABLES)."""

    async def subject_rows(
        self, site_id: int, visitors: Sequence[int], consent_id: str | None
    ) -> dict[str, list[dict[str, Any]]]: ...

    async def erase_subject(
        self, site_id: int, visitors: Sequence[int], consent_id: str | None
    ) -> dict[str, int]: ...


class PortabilityStore(Protocol):
    """`zeef export` and `zeef import` (server/portability.py, docs/export-format.md)."""

    def site_snapshot(self, site_id: int) -> AbstractAsyncContextManager[SiteSnapshot]: ...

    async def import_staged(
        self, stage: Path, domain: str, customer_id: int | None
    ) -> dict[str, int]: ...


class Storage(
    MetadataStore,
    AccountStore,
    ShareStore,
    MailStore,
    EventStore,
    RetentionStore,
    SubjectStore,
    PortabilityStore,
    Protocol,
):
    """Both stores, as one object: what create_app and the CLI open."""

    async def meta_key(self, name: str, generated: str, replace: bool = False) -> str:
        """The key stored under `name`, storing `generated` first if there is none (or in its
        place, with `replace`): secrets generated on first start and rotated from the CLI."""
        ...


class UnsupportedDatabase(ValueError):
    """A database URL that names no backend Zeef has."""


def database_path(url: str | Path) -> Path:
    """The SQLite file a database setting names: a path (`./zeef.sqlite3`) or a URL in the
    form SQLAlchemy and Datasette users know: `sqlite:///relative.db`, `sqlite:////abs.db`."""
    if isinstance(url, Path):
        return url
    text = str(url).strip()
    if text.startswith("sqlite:"):
        rest = text[len("sqlite:") :]
        if not rest.startswith("///") or len(rest) == 3:
            raise UnsupportedDatabase(f"{text!r}: write sqlite:///relative/path or sqlite:////abs")
        return Path(rest[3:])
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise UnsupportedDatabase(
            f"{scheme}:// is not a database Zeef can use yet; use a SQLite path or sqlite:///"
        )
    return Path(text)


def open_storage(url: str | Path, *, must_exist: bool = False) -> Storage:
    """The storage a database setting names (see database_path), created on first use unless
    `must_exist`: a command that only reads, run in the wrong directory, must not leave an
    empty database there."""
    from .sqlite import SQLiteStorage

    database = database_path(url)
    if must_exist and not database.is_file():
        raise NoDatabase(str(database.absolute()))
    return SQLiteStorage(database)

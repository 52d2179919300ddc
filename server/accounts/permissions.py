"""Who may do what to which object: the one place that decides, for pages, API and CLI alike.

An object is known by the customer that owns it (a site's, a user's, a key's owner's), or by
None when only the operator's superusers may touch it (a site no customer owns, the list of
customers, the whole audit log). Handlers ask `decide` and answer what it says; none of them
compares roles or customers itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Literal

from .users import Role, User


class Action(StrEnum):
    VIEW_STATS = "view stats"
    MANAGE_SITE = "manage site"  # settings, consent banner, goals, deletion
    VIEW_CONSENT_LOG = "view consent log"
    MANAGE_USERS = "manage users"
    MANAGE_API_KEYS = "manage API keys"
    VIEW_AUDIT_LOG = "view audit log"
    MANAGE_CUSTOMERS = "manage customers"
    ADD_SITE = "add site"


# What a customer's admin may do to their customer's objects; a viewer only reads statistics.
ADMIN = frozenset(Action) - {Action.MANAGE_CUSTOMERS}
VIEWER = frozenset({Action.VIEW_STATS})


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: nobody, a logged-in user, or an API key (its owner's reach, for
    reading statistics only). `customer_id` None with role superuser is the operator's."""

    kind: Literal["anonymous", "user", "api key", "cli", "share"]
    role: Role | None = None
    customer_id: int | None = None
    email: str | None = None
    user_id: int | None = None
    site_id: int | None = None  # a share link's one site

    @classmethod
    def of_share(cls, site_id: int) -> Principal:
        """A share link's visitor (or its token on the Stats API): one site's statistics,
        nothing else (server/sharing/shares.py limits the sections and the filter)."""
        return cls("share", site_id=site_id)

    @classmethod
    def of_user(cls, user: User) -> Principal:
        if user.blocked:
            return ANONYMOUS
        return cls("user", user.role, user.customer_id, user.email, user.id)

    @property
    def is_superuser(self) -> bool:
        return self.role == "superuser"


ANONYMOUS = Principal("anonymous")
# The operator at a terminal: the CLI holds the database, so it has a superuser's reach.
OPERATOR_CLI = Principal("cli", "superuser")


class Decision(Enum):
    ALLOW = "allow"
    # Nobody is logged in: pages send them to log in, the API answers 401.
    LOGIN = "login"
    # Their own customer's object, beyond their role: 403.
    FORBID = "forbid"
    # Another customer's object, or one only the operator sees: 404, the answer an object
    # that does not exist gets, so nothing tells a name or an ID exists.
    HIDE = "hide"


def decide(
    principal: Principal, action: Action, owner: int | None, site_id: int | None = None
) -> Decision:
    """May `principal` do `action` to an object owned by customer `owner` (None: the
    operator's), which is site `site_id` if it is a site's statistics?"""
    if principal.kind == "share":
        # Its one site's statistics; anything else is as if it did not exist.
        readable = action is Action.VIEW_STATS and site_id is not None
        return Decision.ALLOW if readable and site_id == principal.site_id else Decision.HIDE
    if principal.kind == "anonymous":
        return Decision.LOGIN
    if principal.is_superuser:
        if principal.kind == "api key" and action is not Action.VIEW_STATS:
            return Decision.FORBID
        return Decision.ALLOW
    if owner is None or owner != principal.customer_id:
        return Decision.HIDE
    allowed = ADMIN if principal.role == "admin" else VIEWER
    if principal.kind == "api key":
        allowed = allowed & VIEWER
    return Decision.ALLOW if action in allowed else Decision.FORBID


def may(
    principal: Principal, action: Action, owner: int | None, site_id: int | None = None
) -> bool:
    return decide(principal, action, owner, site_id) is Decision.ALLOW

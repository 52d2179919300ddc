"""Dimensions (what a report can break down or filter by) and filters on them.

Names are Plausible's (`visit:country`, `event:page`, `event:props:plan`), so its users' filters
and breakdowns work here unchanged. A visit dimension describes a whole visit (where it came
from, where it entered); an event dimension describes one hit, and a filter on it keeps the
visits that had such a hit, as Plausible's does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from ..goals import page_pattern_regex

OPERATORS = ("is", "is_not", "contains", "contains_not", "matches", "matches_not")

# Visit dimensions: one value per visit, that of its first hit (entry and exit page aside).
VISIT_DIMENSIONS = (
    "visit:entry_page",
    "visit:exit_page",
    "visit:hostname",
    "visit:entry_page_hostname",
    "visit:source",
    "visit:channel",
    "visit:referrer",
    "visit:utm_source",
    "visit:utm_medium",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:country",
    "visit:region",
    "visit:city",
    "visit:browser",
    "visit:browser_version",
    "visit:os",
    "visit:os_version",
    "visit:device",
)
# Event dimensions: one value per hit (props and goals are handled apart).
EVENT_DIMENSIONS = ("event:page", "event:hostname", "event:name")
PROPS = "event:props:"
GOAL = "event:goal"
# Plausible's names for a few dimensions, accepted as the same thing.
ALIASES = {
    "visit:country_name": "visit:country",
    "visit:region_name": "visit:region",
    "visit:city_name": "visit:city",
}
# Sent by Plausible's tracker, not by ours; asked for, it is a clear 400, not an empty table.
NOT_RECORDED = {"visit:screen": "screen sizes are not recorded by Zeef"}


class GoalLike(Protocol):
    """What the engine reads of a goal: a custom event by name, or pageviews of a path
    pattern (Plausible's wildcards), with a currency when it carries revenue."""

    @property
    def display_name(self) -> str: ...
    @property
    def kind(self) -> str: ...  # "event" or "page"
    @property
    def event_name(self) -> str | None: ...
    @property
    def page_path(self) -> str | None: ...
    @property
    def currency(self) -> str | None: ...


class FilterError(ValueError):
    """A filter or dimension that cannot be applied: the message says why, for a 400."""


def dimension(name: str) -> str:
    """The canonical name of a dimension, or FilterError naming what is wrong."""
    name = ALIASES.get(name, name)
    if name in NOT_RECORDED:
        raise FilterError(NOT_RECORDED[name])
    if name in VISIT_DIMENSIONS or name in EVENT_DIMENSIONS or name == GOAL:
        return name
    if name.startswith(PROPS) and len(name) > len(PROPS):
        return name
    raise FilterError(f"unknown dimension {name!r}")


def is_event_dimension(name: str) -> bool:
    return name in EVENT_DIMENSIONS or name == GOAL or name.startswith(PROPS)


@dataclass(frozen=True)
class Filter:
    """`dimension op values`: several values mean any of them."""

    dimension: str
    op: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise FilterError(f"operator must be one of {', '.join(OPERATORS)}")
        if not self.values:
            raise FilterError(f"filter on {self.dimension} has no value")
        object.__setattr__(self, "dimension", dimension(self.dimension))

    @property
    def negated(self) -> bool:
        return self.op.endswith("_not")

    def accepts(self, value: str | None) -> bool:
        """Whether a value passes this filter: the rule the SQL follows, for Python callers
        (goals, tests) and for the backend-neutral fixtures."""
        if self.op in ("is", "is_not"):
            hit = value is not None and value in self.values
        elif self.op in ("contains", "contains_not"):
            low = (value or "").lower()
            hit = value is not None and any(v.lower() in low for v in self.values)
        else:
            hit = value is not None and any(wildcard(v).fullmatch(value) for v in self.values)
        return not hit if self.negated else hit

    def v1(self) -> str:
        """The filter in the v1 syntax, as Plausible writes it."""
        ops = {"is": "==", "is_not": "!=", "contains": "~", "contains_not": "!~"}
        op = ops.get(self.op, "==" if self.op == "matches" else "!=")
        return self.dimension + op + "|".join(v.replace("|", "\\|") for v in self.values)


@dataclass(frozen=True)
class AnyOf:
    """Filters (or groups) of which one must hold: Plausible v2's `or` across dimensions."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AllOf:
    """Filters (or groups) that must all hold, inside an AnyOf."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class HasDone:
    """Visits with (or, `negated`, without) a hit that passes `hit`: Plausible's has_done and
    has_not_done. Unlike an event filter, it keeps all of those visits' hits."""

    hit: Condition
    negated: bool = False


Condition = Filter | AnyOf | AllOf | HasDone

NEGATED = {"is": "is_not", "contains": "contains_not", "matches": "matches_not"}
NEGATED |= {v: k for k, v in NEGATED.items()}


def negate(condition: Condition) -> Condition:
    """`not` pushed down to the filters (De Morgan), each with the opposite operator: the
    engine's rule for what `is_not` means on an event dimension holds at any depth."""
    if isinstance(condition, Filter):
        return Filter(condition.dimension, NEGATED[condition.op], condition.values)
    if isinstance(condition, HasDone):
        return HasDone(condition.hit, not condition.negated)
    flipped = tuple(negate(item) for item in condition.items)
    return AllOf(flipped) if isinstance(condition, AnyOf) else AnyOf(flipped)


def leaves(condition: Condition) -> list[Filter]:
    if isinstance(condition, Filter):
        return [condition]
    if isinstance(condition, HasDone):
        return leaves(condition.hit)
    return [f for item in condition.items for f in leaves(item)]


def on_visits(condition: Condition) -> bool:
    """Whether a condition is decided by a visit alone (no hit of its own to pass)."""
    if isinstance(condition, Filter):
        return condition.dimension in VISIT_DIMENSIONS
    if isinstance(condition, HasDone):
        return True
    return all(on_visits(item) for item in condition.items)


def parse_v1(text: str) -> tuple[Filter, ...]:
    """Plausible's v1 filter syntax: `visit:country==NL;event:page==/a|/b`, with `!=`, `~`
    (contains) and `!~`; `*` in an `==` value makes it a wildcard match; `\\|` is a literal
    bar. Filters combine with AND, the values of one with OR."""
    filters = []
    for part in _split(text, ";"):
        if not part.strip():
            continue
        match = re.match(r"\s*([a-z_:]+[^=!~]*?)\s*(==|!=|!~|~)\s*(.*)$", part, re.S)
        if not match:
            raise FilterError(f"cannot read filter {part!r}: expected dimension==value")
        name, op, raw = match.groups()
        values = tuple(v.strip() for v in _split(raw, "|"))
        if any(not v for v in values):
            raise FilterError(f"filter {part!r} has an empty value")
        wild = any("*" in v for v in values)
        operator = {
            "==": "matches" if wild else "is",
            "!=": "matches_not" if wild else "is_not",
            "~": "contains",
            "!~": "contains_not",
        }[op]
        filters.append(Filter(name.strip(), operator, values))
    return tuple(filters)


def _split(text: str, separator: str) -> list[str]:
    """Split on `separator` unless escaped with a backslash."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            if char != separator:
                current.append("\\")
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


@lru_cache(maxsize=1024)
def wildcard(pattern: str) -> re.Pattern[str]:
    """A Plausible wildcard as a regex over the whole value: `*` (or `**`) is any run of
    characters, `/` included, as Plausible matches pages and page goals today (its older
    `[^/]*` for a single `*` is gone). One rule for filters and goals: server/goals.py."""
    return re.compile(page_pattern_regex(pattern), re.S)

"""Metric names, how each is rounded, and how a change between two periods is expressed.

Definitions are in docs/metrics.md; the SQL that computes them is the storage backend's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

METRICS = (
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "scroll_depth",
    "time_on_page",
    "conversion_rate",
    "total_revenue",
    "average_revenue",
    "percentage",
    "group_conversion_rate",
)
# Shares of visits or visitors: a change in them is a difference in points, not a ratio.
PERCENTAGES = ("bounce_rate", "conversion_rate", "scroll_depth", "percentage",
               "group_conversion_rate")  # fmt: skip
NEEDS_GOAL = ("conversion_rate", "total_revenue", "average_revenue", "group_conversion_rate")
# A row's share of something the whole period has: only in a breakdown.
PER_ROW = ("percentage", "group_conversion_rate")


class MetricError(ValueError):
    """A metric that does not exist or cannot be computed for this query; for a 400."""


def check(metrics: Iterable[str]) -> tuple[str, ...]:
    names = tuple(metrics)
    if not names:
        raise MetricError("ask for at least one metric")
    for name in names:
        if name not in METRICS:
            raise MetricError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return names


def rounded(name: str, value: Any) -> Any:
    """As Plausible rounds: whole numbers for counts, percentages and seconds, two decimals
    for views per visit and conversion rates. None stays None (no visit to average over)."""
    if value is None:
        return None
    if name in ("views_per_visit", "conversion_rate", "group_conversion_rate"):
        return round(float(value), 2)
    if name == "percentage":
        return round(float(value), 1)
    if name in ("total_revenue", "average_revenue"):
        return value
    return round(float(value))


def change(name: str, now: Any, before: Any) -> float | int | None:
    """Plausible's `change`: points for percentages, else percent rounded to a whole number
    (100 when the earlier period had none and this one has some)."""
    if now is None or before is None or isinstance(now, dict):
        return None
    if name in PERCENTAGES:
        return round(float(now) - float(before), 1)
    if before == 0:
        return 100 if now else 0
    return round((float(now) - float(before)) / float(before) * 100)

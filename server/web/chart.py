"""Chart: a time series laid out for dashboard/templates/_chart.html, which draws it as an SVG
with no script. `build_chart` does all the arithmetic; the template only places what it is given.

    chart = build_chart(["3 Mar", "4 Mar"], [12, 30], previous=[10, 8], format_value=number)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Bucket", "Chart", "Tick", "XLabel", "build_chart"]

# Font sizes of the axis labels in user units; zeef.css sets the same ones. The SVG scales with
# its container, so an 800-unit chart on a 360 px phone (about 300 px of card) shows 12 units
# as 4.5 px: narrow screens get the bigger font and a sparser row of x labels of their own.
FONT = 12
FONT_NARROW = 28
# Wide enough for digits and most Latin letters in a system sans-serif (about 0.55 em).
CHAR_WIDTH = 0.62
LABEL_GAP = 1.5  # em between two x labels
MAX_X_LABELS = 8
MAX_X_LABELS_NARROW = 4
# Room above the top gridline for its label, below the plot for the x labels.
TOP = FONT_NARROW + 8
BOTTOM = FONT_NARROW + 12

_ids = itertools.count(1)


@dataclass(frozen=True)
class Tick:
    """A horizontal gridline at `y` with its value, formatted."""

    y: float
    label: str


@dataclass(frozen=True)
class XLabel:
    x: float
    label: str


@dataclass(frozen=True)
class Bucket:
    """One bucket: its point (y None: no value), the formatted numbers for the tooltip and the
    table, and the strip from `left` to `right` that shows the tooltip on hover."""

    label: str
    x: float
    y: float | None
    value: str | None
    previous: str | None
    left: float
    right: float


@dataclass(frozen=True)
class Chart:
    """Everything _chart.html draws. Paths are SVG path data; an empty string draws nothing."""

    id: str
    width: int
    height: int
    top: float  # the plot area, in user units
    bottom: float
    ticks: tuple[Tick, ...]
    x_labels: tuple[XLabel, ...]
    x_labels_narrow: tuple[XLabel, ...]
    buckets: tuple[Bucket, ...]
    line: str  # the complete buckets
    partial_line: str  # from the last complete bucket into the ones still in progress
    area: str
    previous_line: str
    has_previous: bool
    partial: bool
    peak: Bucket | None  # the highest bucket, for the description


def build_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    previous: Sequence[float | None] | None = None,
    partial_from: int | None = None,
    format_value: Callable[[float], str] = str,
    width: int = 800,
    height: int = 240,
) -> Chart:
    """Lay out one line per period: `values` (None: no data, which breaks the line), the
    comparison period's `previous`, and from `partial_from` on the buckets still filling."""
    count = len(labels)
    if len(values) != count or (previous is not None and len(previous) != count):
        raise ValueError("labels, values and previous must have one entry per bucket")
    numbers = [v for v in [*values, *(previous or ())] if v is not None]
    low, high, step = _axis(numbers)
    top, bottom = float(TOP), float(height - BOTTOM)

    def y_of(value: float) -> float:
        return round(bottom - (value - low) / (high - low) * (bottom - top), 1)

    # Half the widest narrow-screen label on either side keeps every x label inside the SVG.
    widest = max((len(label) for label in labels), default=0)
    inset = min(widest * CHAR_WIDTH * FONT_NARROW / 2 + 4, width / 6)
    xs = _positions(count, inset, width - inset)
    edges = [0.0, *((a + b) / 2 for a, b in itertools.pairwise(xs)), float(width)]

    def shown(value: float | None) -> str | None:
        return None if value is None else format_value(_plain(value))

    buckets = tuple(
        Bucket(
            label=labels[i],
            x=xs[i],
            y=None if (value := values[i]) is None else y_of(value),
            value=shown(value),
            previous=None if previous is None else shown(previous[i]),
            left=round(edges[i], 1),
            right=round(edges[i + 1], 1),
        )
        for i in range(count)
    )
    points = [None if b.y is None else (b.x, b.y) for b in buckets]
    split = count if partial_from is None else min(max(partial_from, 0), count)
    # The dashed part starts at the last complete point, so the line does not break there.
    complete, in_progress = points[:split], points[max(split - 1, 0) :]
    previous_points = [
        None if v is None else (x, y_of(v))
        for x, v in zip(xs, previous or [None] * count, strict=True)
    ]
    # The first of equal highs: max() on (value, -index).
    highest = max(((v, -i) for i, v in enumerate(values) if v is not None), default=None)
    return Chart(
        id=f"chart{next(_ids)}",
        width=width,
        height=height,
        top=top,
        bottom=bottom,
        ticks=tuple(
            Tick(y_of(tick), format_value(_plain(tick))) for tick in _ticks(low, high, step)
        ),
        x_labels=_thin(labels, xs, FONT, MAX_X_LABELS),
        x_labels_narrow=_thin(labels, xs, FONT_NARROW, MAX_X_LABELS_NARROW),
        buckets=buckets,
        line=_path(complete),
        partial_line=_path(in_progress) if split < count else "",
        area=_area(points, bottom),
        previous_line=_path(previous_points),
        has_previous=previous is not None,
        partial=split < count,
        peak=None if highest is None else buckets[-highest[1]],
    )


def _axis(numbers: Sequence[float]) -> tuple[float, float, float]:
    """The axis from 0 (or the lowest value, when below) to the highest value rounded up to a
    round step of 1, 2 or 5 times a power of ten, in 3 to 5 steps. Whole numbers (visitors,
    pageviews) get no steps below 1: "0.5 visitors" means nothing."""
    low = min(0.0, *numbers) if numbers else 0.0
    high = max(0.0, *numbers) if numbers else 0.0
    if high <= low:
        high = low + 1.0  # nothing, or nothing but zeros: a flat line on a 0..1 axis
    scale = 10.0 ** math.floor(math.log10((high - low) / 5))
    for step in (scale * m * 10**e for e in range(3) for m in (1, 2, 5)):
        if _steps(low, high, step) <= 5:
            break
    if step < 1 and all(float(n).is_integer() for n in numbers):
        step = 1.0
    return math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step, step


def _steps(low: float, high: float, step: float) -> int:
    return math.ceil(high / step - 1e-9) - math.floor(low / step + 1e-9)


def _ticks(low: float, high: float, step: float) -> list[float]:
    # Multiplied, not added up, so 0.1 + 0.2 does not become 0.30000000000000004.
    return [round(low + i * step, 10) for i in range(round((high - low) / step) + 1)]


def _plain(value: float) -> float:
    """A whole float as an int, so the default `str` shows 3, not 3.0."""
    return int(value) if float(value).is_integer() else value


def _positions(count: int, left: float, right: float) -> list[float]:
    if count == 1:
        return [round((left + right) / 2, 1)]
    return [round(left + i * (right - left) / (count - 1), 1) for i in range(count)]


def _thin(labels: Sequence[str], xs: Sequence[float], font: int, most: int) -> tuple[XLabel, ...]:
    """Every k-th label, k the smallest that shows at most `most` and leaves the centres of two
    neighbours a label's width and a gap apart (labels are centred on their point)."""
    if not labels:
        return ()
    room = (max(len(label) for label in labels) * CHAR_WIDTH + LABEL_GAP) * font
    spacing = xs[1] - xs[0] if len(xs) > 1 else math.inf
    every = 1
    while every < len(labels) and (math.ceil(len(labels) / every) > most or every * spacing < room):
        every += 1
    return tuple(XLabel(xs[i], labels[i]) for i in range(0, len(labels), every))


def _runs(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """The unbroken stretches between missing values."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if run]


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    # A lone point draws no line; its marker shows it.
    return " ".join(
        "M" + " L".join(f"{x:g} {y:g}" for x, y in run) for run in _runs(points) if len(run) > 1
    )


def _area(points: Sequence[tuple[float, float] | None], base: float) -> str:
    return " ".join(
        f"M{run[0][0]:g} {base:g} L"
        + " L".join(f"{x:g} {y:g}" for x, y in run)
        + f" L{run[-1][0]:g} {base:g} Z"
        for run in _runs(points)
        if len(run) > 1
    )

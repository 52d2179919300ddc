"""The Locations panel's world map: each country's outline, shaded by its visitors.

The outlines are world.json, Natural Earth's public-domain 1:110m countries made into SVG paths
by tools/worldmap.mjs, so the page draws the map with no request to another host.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

# shade1..shade5 for countries with visitors, shade0 for none.
SHADES = 5


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2, as visit:country stores it
    d: str  # the SVG path
    shade: str  # shade0 .. shade5
    visitors: int


@dataclass(frozen=True)
class WorldMap:
    view_box: str
    countries: tuple[Country, ...]


@cache
def outlines() -> tuple[str, Mapping[str, str]]:
    """The viewBox and each country's path, read once (68 KB)."""
    data = json.loads(files(__package__).joinpath("world.json").read_text("utf-8"))
    return data["viewBox"], data["countries"]


def world_map(counts: Mapping[str, int]) -> WorldMap:
    """Every country on the map, shaded by its visitors relative to the busiest.

    The steps are logarithmic: with 10,000 visitors from one country and 3 from another, a
    linear scale would leave the second as blank as a country with none.
    """
    view_box, paths = outlines()
    # Relative to the busiest country drawn: one too small for 1:110m (Singapore, Malta) is
    # only in the table, and would otherwise leave every country on the map pale.
    top = max((count for code, count in counts.items() if code in paths), default=0)
    return WorldMap(
        view_box,
        tuple(
            Country(code, d, f"shade{_shade(counts.get(code, 0), top)}", counts.get(code, 0))
            for code, d in paths.items()
        ),
    )


def _shade(count: int, top: int) -> int:
    if count <= 0 or top <= 0:
        return 0
    return min(SHADES, 1 + math.floor((SHADES - 1) * math.log1p(count) / math.log1p(top)))

"""The Locations panel's world map: each country's outline, shaded by its visitors.

The outlines are dashboard/static/world.svg, Natural Earth's public-domain 1:110m countries
made into an SVG sprite by tools/worldmap.mjs: the page draws the map from it (`<use>`), served
by Zeef and cached, so no request goes to another host and no page carries 70 KB of outlines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from .templates import dashboard_dir

# shade1..shade5 for countries with visitors, shade0 for none.
SHADES = 5


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2, as visit:country stores it, and its path's id in the sprite
    shade: str  # shade0 .. shade5
    visitors: int


@dataclass(frozen=True)
class WorldMap:
    view_box: str
    countries: tuple[Country, ...]  # those with visitors, drawn over the sprite's grey world


@cache
def outlines() -> tuple[str, frozenset[str]]:
    """The sprite's viewBox and its countries' codes, read once."""
    svg = (dashboard_dir() / "static" / "world.svg").read_text("utf-8")
    view_box = re.search(r'viewBox="([\d .]+)"', svg)
    assert view_box, "world.svg has no viewBox"
    return view_box.group(1), frozenset(re.findall(r'<path id="([A-Z]{2})"', svg))


def world_map(counts: Mapping[str, int]) -> WorldMap:
    """The countries on the map with visitors, shaded by them relative to the busiest.

    The steps are logarithmic: with 10,000 visitors from one country and 3 from another, a
    linear scale would leave the second as blank as a country with none.
    """
    view_box, codes = outlines()
    # Relative to the busiest country drawn: one too small for 1:110m (Singapore, Malta) is
    # only in the table, and would otherwise leave every country on the map pale.
    drawn = {code: count for code, count in counts.items() if code in codes and count > 0}
    top = max(drawn.values(), default=0)
    return WorldMap(
        view_box,
        tuple(
            Country(code, f"shade{_shade(count, top)}", count)
            for code, count in sorted(drawn.items())
        ),
    )


def _shade(count: int, top: int) -> int:
    if count <= 0 or top <= 0:
        return 0
    return min(SHADES, 1 + math.floor((SHADES - 1) * math.log1p(count) / math.log1p(top)))

"""How a site's statistics are seen: through a user's dashboard or a share link (View)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..accounts.permissions import Action
from ..reports.filters import FilterError, leaves, parse_v1
from ..sharing.shares import SECTIONS
from .dashboard_filters import filters as _filters

if TYPE_CHECKING:
    from ..events import Site
    from .admin import Admin

EVERY_SECTION = frozenset(SECTIONS)


@dataclass(frozen=True)
class View:
    """Through what a site's statistics are seen: a logged-in user's dashboard at
    /sites/DOMAIN (everything; `manage` adds what only the site's admins see), or a share
    link's at /shared/ID: its sections only, every query under its `locked` filter, the
    viewer's own filters on the sections' dimensions only, CSV only if the share allows."""

    base: str
    sections: frozenset[str] = EVERY_SECTION
    locked: tuple[str, ...] = ()
    allows: Callable[[str], bool] = lambda _dimension: True
    csv: bool = True
    manage: bool = False
    embed: bool = False
    live_url: str = ""
    shared: bool = False  # a share link's: no installation snippet, no site switcher

    def filters(self, params: Any) -> dict[str, str]:
        """The query's parameters: the viewer's, with the locked filter before theirs and a
        custom range from the date form. FilterError for a filter on a dimension the view
        does not show (a share without pages may not count visitors of /secret)."""
        mine = _filters(params)
        for part in mine:
            for condition in parse_v1(part):
                for leaf in leaves(condition):
                    if not self.allows(leaf.dimension):
                        raise FilterError(f"{leaf.dimension} is not shown here")
        merged = with_range(params)
        if self.locked or mine:
            merged["filters"] = ";".join([*self.locked, *mine])
        return merged


def with_range(params: Any) -> dict[str, str]:
    """The parameters, with a custom range from the date form (`from`, `to`) written as the
    Stats API's `period=custom&date=FROM,TO`, and a custom comparison's (`compare_from`,
    `compare_to`) as `compare=custom&compare_date=FROM,TO`."""
    merged = dict(params.items())
    first, last = merged.pop("from", ""), merged.pop("to", "")
    if first and last:
        merged["period"], merged["date"] = "custom", f"{first},{last}"
    # The comparison's date form alike: `compare=custom&compare_date=FROM,TO`.
    since, until = merged.pop("compare_from", ""), merged.pop("compare_to", "")
    if since and until:
        merged["compare"], merged["compare_date"] = "custom", f"{since},{until}"
    return merged


async def as_user(
    admin: Admin,
    request: Request,
    draw: Callable[[Request, Site, View], Awaitable[Response]],
) -> Response:
    """`draw` of the site the path names, as a logged-in user sees it, if they may see its
    statistics (the answer of the one permission check otherwise)."""
    found = await admin._site_page(request, Action.VIEW_STATS)
    if isinstance(found, Response):
        return found
    site, _session = found
    return await draw(request, site, View(f"/sites/{site.domain}"))

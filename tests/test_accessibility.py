"""axe-core (from its npm package, node_modules/axe-core) in real Chromium over the pages a
customer uses: no serious or critical WCAG 2 A/AA violation (contrast included), in light and
dark. The dashboard's live server and data come from tests/test_dashboard_browser.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .live import ROOT
from .test_dashboard_browser import SITE, live, logged_in, no_connection_left_open

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PAGES = [
    f"/sites/{SITE}?period=day",
    f"/sites/{SITE}?period=7d&compare=previous_period&filters=visit:browser==Firefox",
    f"/sites/{SITE}/details/event:page?period=7d",
    "/sites",
    "/account",
]

__all__ = ["live", "no_connection_left_open"]


def violations(page: Any) -> list[str]:
    # The page's CSP admits no injected script: the context bypasses it for axe alone.
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
        })).violations.filter(v => ['serious', 'critical'].includes(v.impact))
          .map(v => v.id + ': ' + v.help + ' -> '
                    + v.nodes.map(n => n.target.join(' ')).join(', '))"""
    )
    return list(found)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_violation_on_the_customers_pages(
    browser: Any, live: str, screenshots: Path, scheme: str
) -> None:
    assert AXE.is_file(), "run `npm ci`: axe-core comes from package.json"
    context, page, _seen = logged_in(browser, live, color_scheme=scheme, bypass_csp=True)
    found = {}
    for path in PAGES:
        page.goto(live + path)
        found[path] = violations(page)
    page.goto(f"{live}/login")
    context.close()
    assert {path: v for path, v in found.items() if v} == {}
    # The login page, logged out.
    context = browser.new_context(color_scheme=scheme, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{live}/login")
    assert violations(page) == []
    # And axe does find what it should: grey on grey, an image without a text.
    page.set_content('<html lang="en"><title>t</title><main><p class="x">faint</p>'
                     '<img src="data:,"></main>')  # fmt: skip
    page.add_style_tag(content=".x { color: #bbb; background: #ccc; }")
    assert {v.split(":")[0] for v in violations(page)} >= {"color-contrast", "image-alt"}
    context.close()

"""The filter dialog in real Chromium against the real app under uvicorn (this module's own live
server, seeded as tests/test_dashboard_browser.py seeds its own): add a filter, edit its chip,
remove it, by mouse and by keyboard, with and without JavaScript, and screenshots of the open
dialog in light, dark and at a phone's width for a person to judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from playwright.sync_api import expect

from .test_dashboard_browser import SITE, live, logged_in, no_connection_left_open, only_ours, wide

__all__ = ["live", "no_connection_left_open"]

TODAY = f"/sites/{SITE}?period=day"


def shown_visitors(page: Any) -> int:
    return int(page.inner_text(".metrics li:first-child .metric-value").replace(",", ""))


def api_visitors(page: Any, url: str, filters: str = "") -> int:
    query = {"site_id": SITE, "period": "day", "metrics": "visitors"}
    if filters:
        query["filters"] = filters
    answer = page.request.get(f"{url}/api/v1/stats/aggregate?{urlencode(query)}")
    assert answer.ok, answer.text()
    return int(answer.json()["results"]["visitors"]["value"])


def filters_of(page: Any) -> str:
    query = parse_qs(urlsplit(page.url).query)
    assert not [name for name in query if name.startswith("filter_")], page.url
    return query.get("filters", [""])[0]


def chips(page: Any) -> list[str]:
    return [text.strip() for text in page.locator(".chip-label").all_inner_texts()]


def test_add_edit_and_remove_a_filter_with_the_mouse(
    browser: Any, live: str, screenshots: Path
) -> None:
    context, page, seen = logged_in(browser, live)
    page.goto(live + TODAY)
    everyone = shown_visitors(page)
    assert everyone == api_visitors(page, live) > 0
    assert page.is_hidden("#filter-new-dimension")

    page.click(".filter-add summary")
    assert page.is_visible("#filter-new-dimension")
    expect(page.locator("#filter-new-dimension")).to_be_focused()
    page.select_option("#filter-new-dimension", "visit:source")
    page.select_option("#filter-new-operator", "is_not")
    page.fill("#filter-new-value", "Google")
    page.screenshot(path=str(screenshots / "filter-dialog.png"))
    page.click("text=Add filter")
    page.wait_for_url("**filters=**")
    assert filters_of(page) == "visit:source!=Google"
    assert chips(page) == ["Source is not Google"]
    without_google = shown_visitors(page)
    assert without_google == api_visitors(page, live, "visit:source!=Google") < everyone

    page.click(".filter-edit summary")
    assert page.input_value("#filter-0-dimension") == "visit:source"
    assert page.input_value("#filter-0-operator") == "is_not"
    assert page.input_value("#filter-0-value") == "Google"
    page.select_option("#filter-0-operator", "contains")
    page.fill("#filter-0-value", "oogl")
    page.screenshot(path=str(screenshots / "filter-dialog-edit.png"))
    page.click("text=Apply filter")
    page.wait_for_url("**filters=visit%3Asource~oogl**")
    assert filters_of(page) == "visit:source~oogl"
    assert chips(page) == ["Source contains oogl"]
    assert shown_visitors(page) == everyone - without_google > 0

    # Cancel, and a click elsewhere, close a form without a request.
    page.click(".filter-edit summary")
    page.click(".filter-edit .filter-cancel")
    expect(page.locator("#filter-0-value")).to_be_hidden()
    page.click(".filter-add summary")
    page.click("h1")
    expect(page.locator("#filter-new-value")).to_be_hidden()

    page.click(".chip a[aria-label^='Remove filter']")
    page.wait_for_load_state()
    assert filters_of(page) == "" and chips(page) == []
    assert shown_visitors(page) == everyone
    only_ours(live, seen)
    context.close()


def test_by_keyboard_alone(browser: Any, live: str) -> None:
    context, page, seen = logged_in(browser, live)
    page.goto(live + TODAY)
    everyone = shown_visitors(page)
    for _press in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('.filter-add summary')"):
            break
    else:
        raise AssertionError("the Filter button is not in the tab order")
    page.keyboard.press("Enter")
    expect(page.locator("#filter-new-dimension")).to_be_focused()
    page.keyboard.type("Browser")
    assert page.input_value("#filter-new-dimension") == "visit:browser"
    page.keyboard.press("Tab")
    expect(page.locator("#filter-new-operator")).to_be_focused()
    page.keyboard.press("ArrowDown")
    assert page.input_value("#filter-new-operator") == "is_not"
    page.keyboard.press("Tab")
    page.keyboard.type("Firefox")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**filters=**")
    assert filters_of(page) == "visit:browser!=Firefox"
    assert chips(page) == ["Browser is not Firefox"]
    assert shown_visitors(page) == api_visitors(page, live, "visit:browser!=Firefox") < everyone

    # Esc closes an open form and gives the focus back; from its button too, where the
    # shortcut's Esc (remove every filter) would otherwise see it.
    page.focus(".filter-edit summary")
    page.keyboard.press("Enter")
    expect(page.locator("#filter-0-dimension")).to_be_focused()
    for _press in range(3):
        page.keyboard.press("Tab")
    expect(page.locator(".filter-edit button[type=submit]")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#filter-0-dimension")).to_be_hidden()
    expect(page.locator(".filter-edit summary")).to_be_focused()
    page.wait_for_timeout(300)
    assert filters_of(page) == "visit:browser!=Firefox"
    only_ours(live, seen)
    context.close()


def test_without_javascript_the_form_still_filters(browser: Any, live: str) -> None:
    context, page, seen = logged_in(browser, live, java_script_enabled=False)
    page.goto(live + TODAY)
    page.click(".filter-add summary")
    assert page.is_hidden(".filter-add .filter-cancel")
    page.select_option("#filter-new-dimension", "event:page")
    page.fill("#filter-new-value", "/pricing\n/about")
    page.click("text=Add filter")
    page.wait_for_url("**filters=**")
    assert filters_of(page) == "event:page==/pricing|/about"
    assert chips(page) == ["Page is /pricing or /about"]
    assert shown_visitors(page) == api_visitors(page, live, "event:page==/pricing|/about")
    # One form open at a time, without a script too.
    page.click(".filter-add summary")
    page.click(".filter-edit summary")
    expect(page.locator("#filter-new-value")).to_be_hidden()
    page.fill("#filter-0-value", "/pricing")
    page.click("text=Apply filter")
    page.wait_for_url("**filters=event%3Apage%3D%3D%2Fpricing")
    assert chips(page) == ["Page is /pricing"]
    only_ours(live, seen)
    context.close()


def test_the_open_dialog_in_dark_and_on_a_phone(browser: Any, live: str, screenshots: Path) -> None:
    filtered = f"{live}{TODAY}&" + urlencode(
        {"filters": "visit:source!=Google;visit:device==Mobile"}
    )
    for scheme in ("light", "dark"):
        context, page, seen = logged_in(browser, live, color_scheme=scheme)
        page.goto(filtered)
        page.click(".filter-add summary")
        page.screenshot(path=str(screenshots / f"filter-dialog-desktop-{scheme}.png"))
        context.close()
        context, page, seen = logged_in(
            browser, live, color_scheme=scheme, viewport={"width": 390, "height": 844},
            is_mobile=True, has_touch=True, device_scale_factor=2,
        )  # fmt: skip
        page.goto(filtered)
        page.click(".filter-edit summary >> nth=1")
        box = page.locator("#filter-1-value").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert not wide(page), "the open dialog is wider than a phone"
        page.screenshot(path=str(screenshots / f"filter-dialog-phone-{scheme}.png"))
        only_ours(live, seen)
        context.close()


def test_the_open_dialog_has_no_serious_accessibility_violation(browser: Any, live: str) -> None:
    from .test_accessibility import AXE, violations

    assert AXE.is_file(), "run `npm ci`: axe-core comes from package.json"
    for scheme in ("light", "dark"):
        context, page, _seen = logged_in(browser, live, color_scheme=scheme, bypass_csp=True)
        page.goto(f"{live}{TODAY}&filters=visit:source!%3DGoogle")
        page.click(".filter-add summary")
        assert violations(page) == [], scheme
        page.click(".filter-edit summary")
        assert violations(page) == [], scheme
        context.close()

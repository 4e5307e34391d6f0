"""Vary (Region) and Custom Zoom in real Chromium: from an upscale's card to its job page,
a region marked with a rectangle and the lasso (one undone), a new prompt, the press, and
its grid; then a Custom Zoom with its own factor."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Stack
from tests.e2e.test_walk import GRID_TIMEOUT, newest_card, sign_up, wait_for_result

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def drag(page: Any, canvas: Any, points: list[tuple[float, float]]) -> None:
    """Press, move through `points` (shares of the canvas), release: one drawn shape."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    xy = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for point in xy[1:]:
        page.mouse.move(*point, steps=4)
    page.mouse.up()


def shoot(page: Any, section: Any, name: str) -> None:
    """A section of the page as it stands, without the sticky header drawn over it."""
    page.evaluate("window.scrollTo(0, 0)")  # the header sits at the top of the page then
    box = section.bounding_box()
    clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True, clip=clip, caret="initial")


def test_vary_region_and_custom_zoom_from_an_upscale(stack: Stack, browser_page: Any) -> None:
    walk(browser_page, stack, shots=True)


# The unified dialect in the browser; both dialects' wire is walked in tests/gallery.
@pytest.mark.parametrize("piapi_stack", ["unified"], indirect=True)
def test_vary_region_and_custom_zoom_on_piapi(piapi_stack: Stack, browser_page: Any) -> None:
    walk(browser_page, piapi_stack, shots=False)


def walk(page: Any, stack: Stack, *, shots: bool) -> None:
    """An upscale's Vary (Region), marked and pressed, then its Custom Zoom."""
    sign_up(page, stack)
    page.get_by_label("Prompt", exact=True).fill("a cottage by a lake")
    page.locator("#imagine-form").get_by_label("Turbo").check()
    page.get_by_role("button", name="Imagine").click()
    grid = newest_card(page, 1)
    wait_for_result(page, grid)
    grid.get_by_role("button", name=re.compile(r"^U1\b")).click()
    upscale = newest_card(page, 2)
    wait_for_result(page, upscale)

    # On the card both are links to the job page's forms, with their price.
    upscale.get_by_role("link", name=re.compile(r"^Vary \(Region\)")).click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/#vary-region$"))
    editor = page.locator("#vary-region")
    expect(editor.get_by_role("toolbar", name="Region tools")).to_be_visible()
    canvas = editor.locator("canvas")
    editor.locator("img").evaluate("img => img.decode()")
    status = editor.get_by_role("status")
    expect(status).to_have_text("Nothing marked yet.")

    # Nothing marked: the press is held back with a reason, nothing is sent.
    editor.get_by_role("button", name="Repaint the region").click()
    expect(status).to_have_text("Mark the region to repaint first.")
    assert "#vary-region" in page.url

    drag(page, canvas, [(0.1, 0.55), (0.45, 0.9)])  # a rectangle, bottom left
    expect(status).to_have_text("Marked: 1 shape(s).")
    editor.get_by_label("Lasso").check()
    drag(page, canvas, [(0.6, 0.1), (0.9, 0.15), (0.85, 0.45), (0.62, 0.4)])
    expect(status).to_have_text("Marked: 2 shape(s).")
    drag(page, canvas, [(0.5, 0.5), (0.7, 0.7), (0.55, 0.75)])
    editor.get_by_role("button", name="Undo").click()
    expect(status).to_have_text("Marked: 2 shape(s).")
    mask = editor.locator("input[name=mask]").input_value()
    assert mask.startswith("data:image/png;base64,")
    editor.get_by_label("Prompt for the region").fill("a red rowing boat")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if shots:
        shoot(page, editor, "vary-region.png")
    upscale_url = page.url.split("#")[0]

    editor.get_by_role("button", name="Repaint the region").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    assert page.url != upscale_url
    child = page.locator("article.card").first
    expect(child.locator(".badge.action")).to_have_text("Vary (Region)")
    expect(child.locator(".prompt")).to_have_text("a red rowing boat")
    child.locator("img.result").wait_for(timeout=GRID_TIMEOUT)
    expect(page.locator(".crumbs")).to_contain_text("Parent: U1")
    # The rest of the page catches up without a reload: its pictures, the charge, sharing.
    page.evaluate("window.__samePage = true")
    expect(page.locator(".facts")).to_contain_text("charged")
    expect(page.get_by_role("button", name="Share publicly")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Download the grid"))).to_be_visible()
    assert page.evaluate("window.__samePage === true")

    # Custom Zoom: a factor out of range is refused in the form, with the prompt kept.
    page.goto(upscale_url + "#custom-zoom")
    zoom = page.locator("#custom-zoom")
    zoom.get_by_label(re.compile(r"^Zoom out \(1 to 2\)")).fill("1.35")
    zoom.get_by_label("Prompt", exact=True).fill("a cottage by a lake, wide misty hills")
    if shots:
        shoot(page, zoom, "custom-zoom.png")
    zoom.get_by_role("button", name="Zoom out").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    child = page.locator("article.card").first
    expect(child.locator(".badge.action")).to_have_text("Custom Zoom 1.35x")
    expect(child.locator(".prompt")).to_contain_text("--zoom 1.35")
    child.locator("img.result").wait_for(timeout=GRID_TIMEOUT)
    page.screenshot(
        path=str(SCREENSHOTS / "custom-zoom-result.png"), full_page=True, caret="initial"
    )
    assert not page.errors, page.errors  # type: ignore[attr-defined]

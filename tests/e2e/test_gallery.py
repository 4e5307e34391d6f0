"""The gallery in real Chromium: one poll for many running cards, a lineage of five jobs
and its tree, filters, a favorite, and a tile that downloads."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, Stack
from tests.e2e.test_walk import newest_card, sign_up, wait_for_result

pytestmark = pytest.mark.browser


def press(card: Any, name: str) -> None:
    card.get_by_role("button", name=re.compile(name)).click()


def test_gallery_lineage_filters_favorite_and_download(stack: Stack, browser_page: Any) -> None:
    page = browser_page
    requests: list[tuple[float, str]] = []
    page.on("request", lambda r: requests.append((time.monotonic(), r.url)))
    # The poll's own cadence, as where the push stream is unavailable (tests/e2e/test_push.py
    # has the stream: there the live view is also asked whenever a job changes).
    page.route("**/jobs/stream/**", lambda route: route.abort())
    sign_up(page, stack)

    # Three running cards, one poll per interval for all of them.
    for n in range(3):
        page.get_by_label("Prompt", exact=True).fill(f"a blue teapot, study {n}")
        page.get_by_role("button", name="Imagine").click()
        page.locator("article.card").nth(n).wait_for()
    start = time.monotonic()
    page.wait_for_timeout(4000)
    window = [url for t, url in requests if start <= t <= start + 4.0]
    polls = [url for url in window if "/jobs/live/" in url]
    assert 1 <= len(polls) <= 3, polls  # every 2 s: at most one per interval
    assert not [url for url in window if "/card/" in url]
    assert all(url.count("live=") == 3 for url in polls), polls  # all three, in one request
    for n in range(3):
        wait_for_result(page, page.locator("article.card").nth(n))
    page.wait_for_timeout(3000)
    settled = time.monotonic()
    page.wait_for_timeout(4500)
    assert not [u for t, u in requests if t > settled and "/jobs/live/" in u]  # polling stopped

    # A lineage of five: imagine, reroll, U1 of the reroll, then zoom out and pan of the U1.
    page.get_by_label("Prompt", exact=True).fill("a red lighthouse on a cliff")
    page.get_by_role("button", name="Imagine").click()
    card = newest_card(page, 4)
    wait_for_result(page, card)
    press(card, r"^Reroll")
    card = newest_card(page, 5)
    wait_for_result(page, card)
    press(card, r"^U1\b")
    upscale = newest_card(page, 6)
    wait_for_result(page, upscale)
    press(upscale, r"^Zoom Out 2x")
    wait_for_result(page, newest_card(page, 7))
    press(upscale, r"^Pan left")
    card = newest_card(page, 8)
    wait_for_result(page, card)

    # The tree, from the last job's page.
    card.get_by_role("link", name=re.compile("Open")).click()
    tree = page.locator("#lineage")
    expect(tree.locator("li.node")).to_have_count(5)
    expect(tree.locator("li.node.current")).to_contain_text("Pan left")
    expect(tree).to_contain_text("5 jobs")
    page.screenshot(path=str(ARTIFACTS / "gallery-lineage.png"), full_page=True)
    tree.locator("a.node-body").first.click()
    expect(page.locator("#lineage li.node.current")).to_contain_text("Imagine")

    # A tile of the root's grid downloads as a PNG named after the prompt.
    expect(page.locator(".tiles li")).to_have_count(4)
    with page.expect_download() as info:
        page.get_by_role("link", name="Download image 2").click()
    download = info.value
    name = download.suggested_filename
    assert re.match(r"a-red-lighthouse-on-a-cliff.*-2-[0-9a-f]{8}\.png$", name), name
    data = Path(download.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    # Another tile seen at full size: its PNG is cut from the grid on this first request.
    page.locator(".tiles li").nth(2).locator("a.tile-link").click()
    tile = page.locator(".lightbox:target img")
    expect(tile).to_be_visible()
    expect(tile).to_have_js_property("naturalWidth", 512)
    page.screenshot(path=str(ARTIFACTS / "gallery-tile.png"), full_page=False)
    page.locator(".lightbox:target").get_by_role("link", name=re.compile("Close")).click()
    page.get_by_role("link", name="View full size").click()
    expect(page.locator(".lightbox:target img")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "gallery-job.png"), full_page=False)
    page.locator(".lightbox:target").get_by_role("link", name=re.compile("Close")).click()

    # Filters: the lineage view shows the five as one card; "all jobs" shows each.
    page.goto(stack.url + "/?q=lighthouse")
    cards = page.locator("article.card")
    expect(cards).to_have_count(1)
    expect(cards.first.locator(".badge.lineage")).to_contain_text("5")
    page.get_by_label("Show").select_option("all")
    page.get_by_role("button", name="Apply").click()
    expect(cards).to_have_count(5)
    assert "view=all" in page.url and "q=lighthouse" in page.url

    # Favorite one in place, then show favorites only.
    heart = cards.nth(2).get_by_role("button", name=re.compile("Favorite"))
    heart.click()
    expect(cards.nth(2).get_by_role("button", name=re.compile("Favorite"))).to_have_attribute(
        "aria-pressed", "true"
    )
    page.get_by_label("Favorites only").check()
    page.get_by_role("button", name="Apply").click()
    expect(cards).to_have_count(1)
    page.goto(stack.url + "/")
    expect(page.locator("article.card")).to_have_count(4)  # three teapots, one lighthouse
    page.screenshot(path=str(ARTIFACTS / "gallery.png"), full_page=True)
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_the_composer_keys_the_import_box_and_escape(stack: Stack, browser_page: Any) -> None:
    page = browser_page
    sign_up(page, stack)
    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a green teapot")
    prompt.press("Shift+Enter")  # a new line, not a submit
    prompt.press_sequentially("on a table")
    assert prompt.input_value() == "a green teapot\non a table"
    assert page.locator("article.card").count() == 0
    prompt.press("Enter")  # generates
    card = newest_card(page, 1)

    # With the import box open, its button is its own: pressing it imports (here: refuses
    # a malformed id), and leaves Remix mode as it was.
    page.locator("details.import summary").click()
    page.get_by_label("Provider task id").fill("not a task!")
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#import-form .form-error")).to_be_visible()
    expect(page.locator("#remix-toggle button")).to_have_text("Remix mode: off")

    wait_for_result(page, card)
    card.get_by_role("link", name="Open").click()
    page.locator("a[href^='#view-']").first.click()
    expect(page.locator(".lightbox:target")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator(".lightbox:target")).to_have_count(0)

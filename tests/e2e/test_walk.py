"""A new user, in real Chromium: sign up, imagine, watch the grid arrive in place, reroll."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, Stack

pytestmark = pytest.mark.browser

GRID_TIMEOUT = 60_000  # ms; the simulator takes about 5 s per job here


def sign_up(page: Any, stack: Stack) -> str:
    page.goto(stack.url + "/")
    assert "/accounts/login/" in page.url  # the studio asks for an account first
    page.get_by_role("link", name="Sign up").first.click()
    name = f"walker{uuid.uuid4().hex[:6]}"
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.get_by_label("Password", exact=True).fill("a long passphrase 9")
    page.get_by_label("Password confirmation").fill("a long passphrase 9")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(stack.url + "/")
    return name


def test_sign_up_imagine_watch_and_reroll(stack: Stack, browser_page: Any) -> None:
    page = browser_page
    sign_up(page, stack)
    page.evaluate("window.__sameDocument = 'yes'")

    page.get_by_label("Prompt", exact=True).fill("a lighthouse on a cliff at dawn")
    page.locator("#imagine-form").get_by_label("Turbo").check()
    page.get_by_role("button", name="Imagine").click()

    card = page.locator("article.card").first
    card.wait_for()
    assert "a lighthouse on a cliff at dawn" in card.inner_text()
    # Progress shows in place: a rendering percentage and the provider's blurry preview.
    page.locator("article.card .stage", has_text=re.compile(r"Rendering, \d+%")).first.wait_for(
        timeout=GRID_TIMEOUT
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('article.card img.preview')]"
        ".some(i => i.complete && i.naturalWidth > 0)",
        timeout=GRID_TIMEOUT,
    )
    page.screenshot(path=str(ARTIFACTS / "walk-progress.png"))
    parent_image = page.locator("article.card img.result").first
    parent_image.wait_for(timeout=GRID_TIMEOUT)
    assert page.evaluate("window.__sameDocument") == "yes"  # no reload happened
    parent_card = page.locator("article.card").first
    for label in ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "Reroll"]:
        assert parent_card.get_by_role("button", name=re.compile(rf"^{label}\b")).count() == 1
    parent_src = parent_image.get_attribute("src")

    parent_card.get_by_role("button", name=re.compile(r"^Reroll")).click()
    page.locator("article.card").nth(1).wait_for()
    child_card = page.locator("article.card").first
    assert "Reroll" in child_card.locator(".badge.action").inner_text()
    child_image = child_card.locator("img.result")
    child_image.wait_for(timeout=GRID_TIMEOUT)
    assert page.evaluate("window.__sameDocument") == "yes"
    child_src = child_image.get_attribute("src")
    assert child_src != parent_src
    parent_bytes = page.request.get(stack.url + parent_src).body()
    child_bytes = page.request.get(stack.url + child_src).body()
    assert parent_bytes[8:12] == b"WEBP" and child_bytes[8:12] == b"WEBP"
    assert parent_bytes != child_bytes  # a different grid
    page.screenshot(path=str(ARTIFACTS / "walk-gallery.png"), full_page=True)

    # The job page shows the child's parent.
    child_card.get_by_role("link", name=re.compile("Open")).click()
    page.get_by_role("link", name=re.compile("Parent: Imagine")).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "walk-job.png"), full_page=True)
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def wait_for_result(page: Any, card: Any) -> None:
    card.locator("img.result").wait_for(timeout=GRID_TIMEOUT)


def newest_card(page: Any, count: int) -> Any:
    """The newest card, once `count` cards are on the page."""
    page.locator("article.card").nth(count - 1).wait_for()
    # Pinned by id: "the first card" moves as new cards are prepended.
    return page.locator(f"#{page.locator('article.card').first.get_attribute('id')}")


def walk_actions(page: Any, stack: Stack) -> Any:
    """imagine -> U2 -> Vary (Strong) -> reroll; returns the reroll's card."""
    sign_up(page, stack)
    page.get_by_label("Prompt", exact=True).fill("a red fox in the snow")
    page.locator("#imagine-form").get_by_label("Turbo").check()
    page.get_by_role("button", name="Imagine").click()
    grid = newest_card(page, 1)
    wait_for_result(page, grid)

    grid.get_by_role("button", name=re.compile(r"^U2\b")).click()
    upscale = newest_card(page, 2)
    assert upscale.locator(".badge.action").inner_text() == "U2"
    wait_for_result(page, upscale)
    for name in ["Vary (Strong)", "Vary (Subtle)", "Zoom Out 2x", "Zoom Out 1.5x",
                 "Upscale (Subtle)", "Upscale (Creative)", "Pan left", "Pan up"]:  # fmt: skip
        assert upscale.get_by_role("button", name=re.compile(re.escape(name))).count() == 1, name
    assert upscale.get_by_role("button", name=re.compile(r"^Reroll")).count() == 0

    upscale.get_by_role("button", name=re.compile(r"^Vary \(Strong\)")).click()
    vary = newest_card(page, 3)
    assert vary.locator(".badge.action").inner_text() == "Vary (Strong)"
    wait_for_result(page, vary)

    upscale.get_by_role("button", name=re.compile(r"^Zoom Out 1\.5x")).click()
    zoom = newest_card(page, 4)
    assert zoom.locator(".badge.action").inner_text() == "Zoom out 1.5x"
    wait_for_result(page, zoom)
    upscale.get_by_role("button", name="Pan left").click()
    pan = newest_card(page, 5)
    assert pan.locator(".badge.action").inner_text() == "Pan left"
    wait_for_result(page, pan)

    vary.get_by_role("button", name=re.compile(r"^Reroll")).click()
    reroll = newest_card(page, 6)
    wait_for_result(page, reroll)
    return reroll


def test_upscale_vary_reroll_and_a_remix_reroll(stack: Stack, browser_page: Any) -> None:
    reroll = walk_actions(browser_page, stack)
    page = browser_page

    # Remix on: the next reroll stops and asks for the prompt, pre-filled.
    page.get_by_role("button", name="Remix mode: off").click()
    page.get_by_role("button", name="Remix mode: on").wait_for()
    reroll.get_by_role("button", name=re.compile(r"^Reroll")).click()
    remix = newest_card(page, 7)
    box = remix.get_by_label(re.compile("edit the prompt"))
    box.wait_for(timeout=GRID_TIMEOUT)
    assert box.input_value() == "a red fox in the snow"
    box.fill("a red fox in the snow at night, lanterns")
    remix.get_by_role("button", name="Send prompt").click()
    wait_for_result(page, remix)
    page.screenshot(path=str(ARTIFACTS / "actions.png"), full_page=True)
    remix.get_by_role("link", name=re.compile("Open")).click()
    page.get_by_text("a red fox in the snow at night, lanterns").first.wait_for()


def test_a_prompt_past_the_limit_is_counted_and_refused_not_cut(
    stack: Stack, browser_page: Any
) -> None:
    page = browser_page
    sign_up(page, stack)
    box = page.locator("#imagine-form textarea[name=prompt]")
    counter = page.locator("#prompt-count")
    box.fill("a harbour at dusk")
    assert counter.inner_text() == "17 / 2000 characters"
    long_prompt = "a harbour at dusk, " * 110  # 2089 characters and a space, pasted whole
    box.fill(long_prompt)
    assert box.input_value() == long_prompt  # nothing cut
    assert "2089 / 2000 characters: 89 over the limit" in counter.inner_text()
    assert "over" in (counter.get_attribute("class") or "")
    page.get_by_role("button", name=re.compile("^Imagine")).click()
    page.get_by_text("The prompt is 2089 characters long; the limit is 2000").wait_for()
    assert page.locator("#job-list article.card").count() == 0  # nothing was sent
    page.screenshot(path=str(ARTIFACTS / "prompt-limit.png"))


def test_the_access_log_never_holds_the_hook_token(stack: Stack) -> None:
    """After the walks above, the stack's log has the simulator's webhook deliveries, each
    with the path token redacted (mjweb.logs): not one 40-character token is written."""
    log = stack.log.read_text(encoding="utf-8", errors="replace")
    assert re.search(r"POST /hooks/cometapi/<redacted>/", log), "no webhook was logged"
    assert not re.search(r"/hooks/(cometapi|piapi)/[0-9a-f]{40}", log)


def test_every_kind_of_button_on_piapi(piapi_stack: Stack, browser_page: Any) -> None:
    reroll = walk_actions(browser_page, piapi_stack)
    reroll.get_by_role("button", name=re.compile(r"^V3\b")).click()
    wait_for_result(browser_page, newest_card(browser_page, 7))

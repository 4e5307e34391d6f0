"""A public link in real Chromium: an owner shares a finished job from its page, copies the
link, a stranger (another browser context, logged out) sees the picture and prompt, and once
the owner stops sharing the link is a 404."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, Stack
from tests.e2e.test_walk import newest_card, sign_up, wait_for_result

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PROMPT = "a paper lantern drifting over a misty lake at dusk"


def console_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def test_share_a_job_open_it_logged_out_then_stop_sharing(stack: Stack, browser_page: Any) -> None:
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    name = sign_up(page, stack)
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.locator("#imagine-form").get_by_label("Turbo").check()
    page.get_by_role("button", name="Imagine").click()
    card = newest_card(page, 1)
    wait_for_result(page, card)
    card.get_by_role("link", name=re.compile("^Open")).click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    job_url = page.url

    # Not shared yet: one button, and what it means.
    controls = page.locator("#share")
    expect(controls).to_contain_text("Anyone with the link will see the picture and its prompt")
    page.evaluate("window.__sameDocument = 'yes'")
    controls.get_by_role("button", name="Share publicly").click()

    # Swapped in place by htmx (no reload): the link, Copy, Open, Stop sharing.
    link = page.locator("#share-link")
    expect(link).to_have_value(re.compile(rf"^{re.escape(stack.url)}/s/[0-9a-f-]{{36}}/$"))
    assert page.evaluate("window.__sameDocument") == "yes"
    shared_url = link.input_value()
    copy = page.locator("#share").get_by_role("button", name="Copy link")
    expect(copy).to_be_visible()
    copy.click()
    expect(page.locator("#share .copy-status")).to_have_text("Link copied")
    assert page.evaluate("navigator.clipboard.readText()") == shared_url
    expect(page.locator("#share").get_by_role("link", name=re.compile("^Open"))).to_have_attribute(
        "href", shared_url.removeprefix(stack.url)
    )
    expect(page.locator("#share").get_by_role("button", name="Stop sharing")).to_be_visible()
    page.locator(".detail-side").screenshot(path=str(ARTIFACTS / "share-controls.png"))
    assert not page.errors, page.errors

    # A stranger: a new browser context, no session.
    stranger_context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        stranger = stranger_context.new_page()
        stranger_errors = console_errors(stranger)
        stranger.goto(shared_url)
        expect(stranger.get_by_role("heading", level=1)).to_have_text(PROMPT)
        picture = stranger.locator(".shared-picture img")
        expect(picture).to_be_visible()
        stranger.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=picture.element_handle()
        )
        expect(stranger.get_by_role("link", name="Make your own")).to_be_visible()
        expect(stranger.get_by_role("link", name="Log in", exact=True)).to_be_visible()
        body = stranger.locator("body").inner_text()
        assert name not in body and "@example.com" not in body
        og_image = stranger.locator('meta[property="og:image"]').get_attribute("content")
        assert og_image and og_image.startswith(f"{stack.url}/s/")
        assert httpx.get(og_image).headers["content-type"].startswith("image/")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        stranger.screenshot(
            path=str(SCREENSHOTS / "share-page.png"), full_page=True, caret="initial"
        )
        assert not stranger_errors, stranger_errors

        # The owner stops sharing: the link, and its picture, are gone at once.
        page.locator("#share").get_by_role("button", name="Stop sharing").click()
        expect(page.locator("#share").get_by_role("button", name="Share publicly")).to_be_visible()
        expect(page.locator("#share-link")).to_have_count(0)
        assert page.url == job_url and not page.errors, page.errors

        response = stranger.goto(shared_url)
        assert response is not None and response.status == 404
        expect(stranger.get_by_role("heading", level=1)).to_have_text("This link does not work")
        assert httpx.get(og_image).status_code == 404
    finally:
        stranger_context.close()

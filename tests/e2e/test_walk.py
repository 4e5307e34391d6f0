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

    page.get_by_label("Prompt").fill("a lighthouse on a cliff at dawn")
    page.get_by_label("Turbo").check()
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

"""The composer in real Chromium: the parameter chips edit the prompt's text and light
from it, a bad value is flagged as the form would refuse it, and a job's prompt is copied
and used again."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from gallery import prompts
from tests.e2e.conftest import Stack
from tests.e2e.test_walk import newest_card, sign_up, wait_for_result

pytestmark = pytest.mark.browser

SAMPLES = [
    "a fox --ar 16:9 --chaos 500 --v 5",
    "a fox --AR 32:18 --s 100 --stylize 2 --no cars,  people --tile yes",
    "a fox --v 7 --niji 6 --seed 4294967296 --style RAW --sref 1 2",
    "x --ar 16:9 on a hill --weird --c 1e3 --ar 0:1",
]


def test_chips_flags_copy_and_use_as_prompt(stack: Stack, browser_page: Any) -> None:
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_up(page, stack)
    box = page.locator("#imagine-form textarea[name=prompt]")

    # The script reads a prompt as gallery.prompts does, with the same sentences.
    for sample in SAMPLES:
        seen = page.evaluate("text => window.mjweb.readPrompt(text)", sample)
        parsed = prompts.parse(sample)
        assert seen == {
            "parameters": parsed.parameters,
            "others": parsed.others,
            "problems": parsed.problems,
        }, sample

    box.fill("a lighthouse at dawn")
    page.locator(".parameters [data-ar='16:9']").click()
    expect(box).to_have_value("a lighthouse at dawn --ar 16:9")
    page.get_by_label("Chaos").fill("20")
    expect(box).to_have_value("a lighthouse at dawn --ar 16:9 --chaos 20")
    page.locator(".holds [data-remove='chaos']").click()
    expect(box).to_have_value("a lighthouse at dawn --ar 16:9")

    # Typed by hand: 2:3 lights, 16:9 goes out; a bad --chaos is flagged with its range.
    box.fill("a lighthouse at dawn --ar 2:3 --chaos 500")
    expect(page.locator(".parameters [data-ar='2:3']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".parameters [data-ar='16:9']")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#prompt-problems")).to_have_text(
        "--chaos takes a whole number from 0 to 100, not “500”."
    )
    page.get_by_role("button", name="Imagine").click()
    expect(page.locator("#imagine-errors")).to_contain_text("from 0 to 100")
    expect(page.locator("article.card")).to_have_count(0)

    # A good one makes a job whose prompt carries the parameters.
    box.fill("a lighthouse at dawn --ar 2:3 --chaos 20 --no boats")
    expect(page.locator("#prompt-problems")).to_be_hidden()
    page.get_by_role("button", name="Imagine").click()
    card = newest_card(page, 1)
    wait_for_result(page, card)
    expect(card.locator(".prompt")).to_have_text(
        "a lighthouse at dawn --ar 2:3 --chaos 20 --no boats"
    )

    # Copy, then paste: the job's prompt.
    card.get_by_role("button", name="Copy prompt").click()
    expect(card.locator(".copy-status")).to_have_text("Copied")
    pasted = page.evaluate("navigator.clipboard.readText()")
    assert pasted == "a lighthouse at dawn --ar 2:3 --chaos 20 --no boats"

    # Use as prompt: on the studio it fills the box; from the job's page, a link to it.
    box.fill("")
    card.get_by_role("link", name="Use as prompt").click()
    expect(box).to_have_value("a lighthouse at dawn --ar 2:3 --chaos 20 --no boats")
    expect(box).to_be_focused()
    card.get_by_role("link", name="Open").click()
    page.get_by_role("link", name="Use as prompt").click()
    page.wait_for_url(stack.url + "/?prompt=*")
    expect(box).to_have_value("a lighthouse at dawn --ar 2:3 --chaos 20 --no boats")
    expect(page.locator(".parameters [data-ar='2:3']")).to_have_attribute("aria-pressed", "true")
    assert not page.errors  # type: ignore[attr-defined]

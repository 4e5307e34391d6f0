"""The user's own pictures in real Chromium: image prompts chosen, dropped and removed; a
Blend; a Describe whose prompts are each one click from an imagine; and a press sent in
another speed than its parent's."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, Stack
from tests.e2e.test_walk import newest_card, sign_up, wait_for_result

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

# A picture dropped on a picker, made in the page as a file a user would drag in.
DROP = """([selector, color]) => {
  const canvas = document.createElement("canvas");
  canvas.width = 120; canvas.height = 80;
  const context = canvas.getContext("2d");
  context.fillStyle = color; context.fillRect(0, 0, 120, 80);
  return new Promise(resolve => canvas.toBlob(blob => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([blob], "dropped.png", {type: "image/png"}));
    const target = document.querySelector(selector);
    target.dispatchEvent(new DragEvent("drop", {bubbles: true, dataTransfer: transfer}));
    resolve(document.querySelector(selector + " input[type=file]").files.length);
  }, "image/png"));
}"""


def picture(path: Path, size: tuple[int, int], color: str) -> str:
    PILImage.new("RGB", size, color).save(path)
    return str(path)


def test_image_prompts_blend_describe_and_a_press_in_another_speed(
    stack: Stack, browser_page: Any, tmp_path: Path
) -> None:
    walk(browser_page, stack, tmp_path, shots=True)


# The unified dialect in the browser; both dialects' wire is walked in tests/gallery.
@pytest.mark.parametrize("piapi_stack", ["unified"], indirect=True)
def test_image_prompts_blend_and_describe_on_piapi(
    piapi_stack: Stack, browser_page: Any, tmp_path: Path
) -> None:
    """PiAPI fetches the pictures from this site's signed links (SITE_URL)."""
    walk(browser_page, piapi_stack, tmp_path, shots=False)


def walk(page: Any, stack: Stack, tmp_path: Path, *, shots: bool) -> None:
    sign_up(page, stack)
    wide = picture(tmp_path / "wide.png", (600, 400), "#d04010")
    tall = picture(tmp_path / "tall.png", (400, 600), "#1040d0")
    square = picture(tmp_path / "square.png", (300, 300), "#20a060")

    # Image prompts: two chosen, one removed again, then an imagine in 16:9 that keeps one.
    composer = page.locator("#imagine-form")
    composer.get_by_text("Add image prompts").click()
    composer.locator("input[type=file]").set_input_files([wide, square])
    thumbs = composer.locator(".picture-list img")
    expect(thumbs).to_have_count(2)
    composer.get_by_role("button", name=re.compile("Remove this picture: wide.png")).click()
    expect(thumbs).to_have_count(1)
    page.get_by_label("Prompt", exact=True).fill("a meadow at noon --ar 16:9")
    composer.get_by_role("button", name=re.compile("^Imagine")).click()
    imagined = newest_card(page, 1)
    wait_for_result(page, imagined)
    expect(thumbs).to_have_count(0)  # sent with the job, the picker is empty again
    result = imagined.locator("img.result")
    assert int(result.get_attribute("width")) > int(result.get_attribute("height"))

    # Blend: a dropped picture and a chosen one, in portrait.
    page.get_by_text("Blend pictures").click()
    blend = page.locator("#blend-form")
    blend.locator("input[type=file]").set_input_files([tall])
    assert page.evaluate(DROP, ["#blend-form [data-pictures]", "#ffcc00"]) == 2
    expect(blend.locator(".picture-list img")).to_have_count(2)
    blend.get_by_label(re.compile("Portrait")).check()
    if shots:
        page.screenshot(path=str(SCREENSHOTS / "pictures.png"), caret="initial")
    blend.get_by_role("button", name="Blend", exact=True).click()
    blended = newest_card(page, 2)
    expect(blended.locator(".badge.action")).to_have_text("Blend")
    wait_for_result(page, blended)
    image = blended.locator("img.result")
    assert int(image.get_attribute("height")) > int(image.get_attribute("width"))

    # Describe: four prompts, and the first one imagined with one click.
    page.get_by_text("Describe a picture").click()
    describe = page.locator("#describe-form")
    describe.locator("input[type=file]").set_input_files([wide])
    describe.get_by_role("button", name="Describe", exact=True).click()
    described = newest_card(page, 3)
    prompts = described.locator("ol.described li")
    expect(prompts).to_have_count(4, timeout=60_000)
    first = prompts.first.locator("p").inner_text()
    assert "--ar 3:2" in " ".join(prompts.all_inner_texts())
    described.scroll_into_view_if_needed()
    if shots:
        described.screenshot(path=str(SCREENSHOTS / "describe.png"), caret="initial")
    described.get_by_role("button", name="Imagine prompt 1").click()
    again = newest_card(page, 4)
    expect(again.locator(".prompt")).to_have_text(first)
    wait_for_result(page, again)

    # A press in another speed: U1 of the fast grid, sent in turbo, at turbo's price.
    grid = page.locator(f"#{imagined.get_attribute('id')}")
    upscale = grid.get_by_role("button", name=re.compile(r"^U1\b"))
    fast_price = upscale.locator(".price").inner_text()
    grid.get_by_label("Speed of the next press").select_option("turbo")
    expect(upscale.locator(".price")).not_to_have_text(fast_price)
    upscale.click()
    pressed = newest_card(page, 5)
    expect(pressed.locator(".badge.mode")).to_have_text("Turbo")
    wait_for_result(page, pressed)
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors
    if shots:
        page.screenshot(path=str(ARTIFACTS / "pictures-end.png"), full_page=True, caret="initial")


def test_a_picture_that_is_not_one_is_refused_in_place(
    stack: Stack, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    sign_up(page, stack)
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"these are words, not a picture")
    page.get_by_text("Describe a picture").click()
    describe = page.locator("#describe-form")
    describe.locator("input[type=file]").set_input_files([str(fake)])
    describe.get_by_role("button", name="Describe", exact=True).click()
    expect(describe.get_by_role("alert")).to_contain_text("notes.png is not a picture we can use")
    assert page.locator("article.card").count() == 0
    # A real one afterwards goes through.
    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), "#808080").save(out, format="PNG")
    real = tmp_path / "real.png"
    real.write_bytes(out.getvalue())
    describe.locator("input[type=file]").set_input_files([str(real)])
    describe.get_by_role("button", name="Describe", exact=True).click()
    newest_card(page, 1)

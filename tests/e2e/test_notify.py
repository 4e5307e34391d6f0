"""The tab says how the jobs stand, in real Chromium: the title counts the running jobs and
the favicon carries their number; a job that finishes while the tab is hidden leaves a check
on the favicon until it is seen, and an opted-in desktop notification is raised once; and
the card's badges keep their whole words, at desktop and phone widths, in English and in
Chinese."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, ROOT, Stack
from tests.e2e.test_walk import newest_card, sign_up, wait_for_result

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "docs" / "screenshots"
# The page believes its tab went to the background, or came back (as a browser tells it).
HIDE = """() => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
  Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  delete document.visibilityState;
  delete document.hidden;
  document.dispatchEvent(new Event("visibilitychange"));
}"""
# A Notification that records what it was asked to show (a headless browser shows nothing).
NOTIFICATION_STUB = """
window.__notes = [];
window.__asked = 0;
function RecordedNotification(title, options) {
  options = options || {};
  window.__notes.push({title: title, body: options.body, icon: options.icon || null,
                       tag: options.tag || null});
  this.close = function () {};
}
RecordedNotification.permission = "granted";
RecordedNotification.requestPermission = function (callback) {
  window.__asked += 1;
  if (callback) callback("granted");
  return Promise.resolve("granted");
};
window.Notification = RecordedNotification;
"""
ICON = "link[rel~='icon']"


def imagine(page: Any, prompt: str) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.locator("#imagine-form").get_by_label("Turbo").check()
    page.get_by_role("button", name="Imagine").click()


def badge_of(page: Any) -> bytes:
    """The favicon as it is drawn now (a PNG data URL), saved for a look."""
    href = page.locator(ICON).get_attribute("href") or ""
    assert href.startswith("data:image/png;base64,"), href[:40]
    return base64.b64decode(href.split(",", 1)[1])


def test_the_title_counts_running_jobs_and_the_favicon_says_one_ended_unseen(
    stack: Stack, browser_page: Any
) -> None:
    page = browser_page
    sign_up(page, stack)
    expect(page).to_have_title("Studio · mjweb")
    plain_icon = page.locator(ICON).get_attribute("href")
    assert plain_icon and plain_icon.endswith("/img/favicon.svg")

    imagine(page, "a lighthouse in a storm")
    card = newest_card(page, 1)
    expect(card).to_have_class(re.compile(r"\bstatus-(queued|submitted|running)\b"))
    # Running: counted in the title and on the favicon, the tab shown or not.
    expect(page).to_have_title("(1) Studio · mjweb")
    page.wait_for_function(
        "s => document.querySelector(s).getAttribute('href').startsWith('data:image/png')",
        arg=ICON,
    )
    running_badge = badge_of(page)
    page.evaluate(HIDE)
    wait_for_result(page, card)
    # Ended while hidden: no count, and the favicon changes to the check of a result unseen.
    expect(page).to_have_title("Studio · mjweb")
    page.wait_for_function(
        "([s, before]) => { const h = document.querySelector(s).getAttribute('href');"
        " return h.startsWith('data:image/png') && h !== before; }",
        arg=[ICON, "data:image/png;base64," + base64.b64encode(running_badge).decode()],
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "favicon-running.png").write_bytes(running_badge)
    (ARTIFACTS / "favicon-finished.png").write_bytes(badge_of(page))
    assert page.locator(ICON).get_attribute("type") == "image/png"

    # Seen again: the plain favicon.
    page.evaluate(SHOW)
    expect(page).to_have_title("Studio · mjweb")
    expect(page.locator(ICON)).to_have_attribute("href", plain_icon)
    expect(page.locator(ICON)).to_have_attribute("type", "image/svg+xml")

    # A job that finishes while the tab is shown leaves no check, even hidden afterwards;
    # nor does a page loaded with the job already finished.
    imagine(page, "a lighthouse in the fog")
    second = newest_card(page, 2)
    expect(page).to_have_title("(1) Studio · mjweb")
    wait_for_result(page, second)
    expect(page).to_have_title("Studio · mjweb")
    page.evaluate(HIDE)
    page.wait_for_timeout(2500)  # a live poll or two
    expect(page).to_have_title("Studio · mjweb")
    assert page.locator(ICON).get_attribute("href") == plain_icon
    page.reload()
    page.evaluate(HIDE)
    page.wait_for_timeout(2500)
    expect(page).to_have_title("Studio · mjweb")
    assert page.locator(ICON).get_attribute("href") == plain_icon
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_an_opted_in_desktop_notification_once_per_finished_job(
    stack: Stack, browser_page: Any
) -> None:
    page = browser_page
    page.context.grant_permissions(["notifications"])
    page.context.add_init_script(NOTIFICATION_STUB)
    sign_up(page, stack)
    toggle = page.locator("#notify-toggle")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_text("Notify me when jobs finish")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("window.__asked") == 0  # never asked on load

    toggle.click()
    expect(toggle).to_have_text("Desktop notifications on")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("window.__asked") <= 1

    prompt = "a paper lantern drifting over a dark lake, seen from the shore at midnight"
    imagine(page, prompt)
    card = newest_card(page, 1)
    page.evaluate(HIDE)
    wait_for_result(page, card)
    expect(page).to_have_title("Studio · mjweb")
    page.wait_for_timeout(3000)  # more live polls: still one
    notes = page.evaluate("window.__notes")
    assert len(notes) == 1, notes
    assert notes[0]["title"] == "Job finished"
    assert notes[0]["body"] == prompt
    code = (card.get_attribute("id") or "")[len("job-") :]
    assert notes[0]["tag"] == f"job-{code}"
    assert notes[0]["icon"] and f"/{code}/" in notes[0]["icon"]

    # The choice stays on this browser; pressed again, it is off, and nothing is raised.
    page.evaluate(SHOW)
    page.reload()
    expect(toggle).to_have_text("Desktop notifications on")
    toggle.click()
    expect(toggle).to_have_text("Notify me when jobs finish")
    imagine(page, "a second lantern")
    second = newest_card(page, 2)
    page.evaluate(HIDE)
    wait_for_result(page, second)
    expect(second).to_have_class(re.compile(r"\bstatus-succeeded\b"))
    # Ended while hidden: the favicon's check says so, the title counts nothing running.
    page.wait_for_function(
        "s => document.querySelector(s).getAttribute('href').startsWith('data:image/png')",
        arg=ICON,
    )
    expect(page).to_have_title("Studio · mjweb")
    page.wait_for_timeout(1000)
    assert page.evaluate("window.__notes") == []
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def assert_whole_badges(page: Any, where: str) -> None:
    """No badge of a card's head is cut, and no head runs out of its card."""
    cut = page.evaluate(
        """() => [...document.querySelectorAll('article.card .card-head')].flatMap(head =>
             [head, ...head.querySelectorAll('.badge')]
               .filter(e => e.scrollWidth > e.clientWidth)
               .map(e => e.className + ': ' + e.textContent.trim()))"""
    )
    assert not cut, f"{where}: {cut}"


def test_card_badges_keep_their_whole_words(stack: Stack, browser_page: Any) -> None:
    page = browser_page
    sign_up(page, stack)
    imagine(page, "a red fox in the snow")
    grid = newest_card(page, 1)
    wait_for_result(page, grid)
    grid.get_by_role("button", name=re.compile(r"^Reroll")).click()
    reroll = newest_card(page, 2)
    grid.get_by_role("button", name=re.compile(r"^U1\b")).click()
    upscale = newest_card(page, 3)
    wait_for_result(page, upscale)
    upscale.get_by_role("button", name=re.compile(r"^Zoom Out 2x")).click()
    zoom = newest_card(page, 4)
    wait_for_result(page, reroll)
    wait_for_result(page, zoom)
    expect(reroll.locator(".badge.action")).to_have_text("Reroll")
    expect(zoom.locator(".badge.action")).to_have_text("Zoom out 2x")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for language, name in (("en", "badges-375.png"), ("zh-hans", "badges-375-zh.png")):
        if language != "en":
            page.locator(".language-switch").get_by_role("button", name="简体中文").click()
            expect(page.locator("html")).to_have_attribute("lang", language)
        # One card per lineage (its count badge too), then every job.
        for view, cards in (("", 1), ("?view=all", 4)):
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{stack.url}/{view}")
            expect(page.locator("article.card")).to_have_count(cards)
            for width in (1280, 375):
                page.set_viewport_size({"width": width, "height": 900})
                assert_whole_badges(page, f"{language}, {view or 'lineages'}, {width}px")
                if width == 1280:
                    shot = ARTIFACTS / f"badges-1280-{language}{view and '-all'}.png"
                    page.screenshot(path=str(shot))
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True, caret="initial")
    assert not page.errors, page.errors  # type: ignore[attr-defined]

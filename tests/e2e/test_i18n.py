"""The studio in Simplified Chinese in real Chromium: the header's switch, then the settings
page's language and time zone, kept on the account."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_walk import GRID_TIMEOUT, sign_up

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "docs" / "screenshots"


def test_switch_to_chinese_in_the_header_and_pick_a_time_zone(
    stack: Stack, browser_page: Any
) -> None:
    page = browser_page
    sign_up(page, stack)
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.locator(".language-switch").get_by_role("button", name="简体中文").click()
    page.wait_for_url(stack.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    nav = page.get_by_role("navigation", name="主导航")
    expect(nav.get_by_role("link", name="工作室")).to_be_visible()
    expect(nav.get_by_role("button", name="退出登录")).to_be_visible()
    expect(page.locator("#balance")).to_contain_text("积分")
    # The speeds of the composer, as Midjourney's Chinese users call them.
    form = page.locator("#imagine-form")
    for word in ("快速", "慢速", "极速"):
        expect(form.get_by_text(word, exact=True).first).to_be_visible()
    # The other language is offered, named in itself.
    expect(page.locator(".language-switch").get_by_role("button", name="English")).to_be_visible()

    # A job made in Chinese: its card and buttons read in Chinese.
    page.locator("#imagine-form textarea").fill("a paper boat on a puddle")
    form.locator("button[type=submit]").click()
    card = page.locator("article.card").first
    card.locator("img.result").wait_for(timeout=GRID_TIMEOUT)
    expect(card.get_by_role("button", name=re.compile(r"^重新生成"))).to_have_count(1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "studio-zh.png"), full_page=True)

    # The choice was saved on the account: the settings page shows it.
    nav.get_by_role("link", name="设置").click()
    page.wait_for_url(re.compile(r"/accounts/preferences/$"))
    expect(page.get_by_role("heading", name="语言和时区")).to_be_visible()
    expect(page.get_by_label("语言", exact=True)).to_have_value("zh-hans")
    page.get_by_label("时区", exact=True).fill("Asia/Shanghai")
    page.get_by_role("button", name="保存").click()
    expect(page.locator(".messages")).to_contain_text("语言和时区已保存。")
    expect(page.locator("#current-time")).to_contain_text("Asia/Shanghai")
    page.screenshot(path=str(SCREENSHOTS / "settings-zh.png"), full_page=True)

    assert not page.errors, page.errors  # type: ignore[attr-defined]

    # A zone that does not exist is refused (a 400), in the user's language.
    page.get_by_label("时区", exact=True).fill("Mars/Olympus_Mons")
    page.get_by_role("button", name="保存").click()
    expect(page.locator(".form-error")).to_contain_text("不是有效的时区")

    # Back to English with the switch: the saved choice follows it.
    page.locator(".language-switch").get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Language and time zone")).to_be_visible()
    expect(page.get_by_label("Language", exact=True)).to_have_value("en")
    assert all("400" in e for e in page.errors), page.errors  # type: ignore[attr-defined]

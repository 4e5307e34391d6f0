"""Credits in real Chromium: the header follows the hold and the charge without a reload."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, Stack
from tests.e2e.test_walk import GRID_TIMEOUT, sign_up

pytestmark = pytest.mark.browser


def test_the_balance_follows_hold_and_charge_in_place(stack: Stack, browser_page: Any) -> None:
    page = browser_page
    sign_up(page, stack)
    balance = page.locator("#balance")
    expect(balance).to_have_text(re.compile(r"^\s*10000 credits\s*$"))
    page.evaluate("window.__sameDocument = 'yes'")

    # The composer shows the chosen mode's price on the button.
    page.locator("#imagine-form").get_by_label("Fast").check()
    expect(page.locator("#imagine-form button[type=submit]")).to_have_text(
        re.compile(r"Imagine · 56 credits")
    )
    page.get_by_label("Prompt", exact=True).fill("a paper boat on a puddle")
    page.get_by_role("button", name="Imagine").click()
    expect(balance).to_have_text(re.compile(r"9944 credits\s*· 56 held"))

    card = page.locator("article.card").first
    card.locator("img.result").wait_for(timeout=GRID_TIMEOUT)
    expect(balance).to_have_text(re.compile(r"^\s*9944 credits\s*$"))
    expect(card.locator(".charge")).to_have_text(re.compile("Cost 56 credits"))
    # Every button says what it costs before it is pressed.
    expect(card.get_by_role("button", name=re.compile(r"^Reroll.*56 credits$"))).to_have_count(1)
    expect(card.get_by_role("button", name=re.compile(r"^U1.*14 credits$"))).to_have_count(1)
    assert page.evaluate("window.__sameDocument") == "yes"
    page.screenshot(path=str(ARTIFACTS / "credits-studio.png"), full_page=True)

    balance.click()
    page.wait_for_url(re.compile(r"/credits/$"))
    rows = page.locator("table.ledger tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Charge")
    expect(rows.nth(1)).to_contain_text("Hold")
    expect(rows.nth(2)).to_contain_text("Welcome credits")
    page.screenshot(path=str(ARTIFACTS / "credits-statement.png"), full_page=True)

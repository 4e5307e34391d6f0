"""What the studio's markup gives the page without and with JavaScript: a running card says
to reload when scripts are off; the notify button carries its words, in the user's language."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from gallery.models import Job
from tests.gallery.factories import make_finished_job, make_job

pytestmark = pytest.mark.django_db

HINT = (
    "This page updates itself with JavaScript, which is off: "
    "reload the page to see the job's progress."
)


def card(body: str, job: Job) -> str:
    """The markup of one job's card in a page."""
    match = re.search(rf'<article id="job-{job.code}".*?</article>', body, re.S)
    assert match, f"no card for {job.code}"
    return match.group(0)


def test_a_running_card_says_to_reload_without_javascript(alice_client: Client, alice: Any) -> None:
    running = make_job(alice, status=Job.Status.RUNNING, progress=40, prompt="a running fox")
    queued = make_job(alice, prompt="a queued fox")
    done = make_finished_job(alice, prompt="a finished fox")
    failed = make_job(alice, status=Job.Status.FAILED, prompt="a failed fox")
    body = alice_client.get(reverse("gallery:home")).content.decode()
    # The template's own words: not escaped (a translation is trusted as the template is).
    escaped = HINT
    for job in (running, queued):
        assert f'<noscript><p class="noscript-hint">{escaped}</p></noscript>' in card(body, job)
    for job in (done, failed):
        assert "<noscript>" not in card(body, job)
    # The job's own page too, and the live poll's fresh copy of a running card.
    page = alice_client.get(running.get_absolute_url()).content.decode()
    assert escaped in card(page, running)
    live = alice_client.get(
        reverse("gallery:live"), {"live": f"{running.code}~stale~"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert escaped in card(live, running)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_studio_has_the_notify_button_with_its_words(
    alice_client: Client, alice: Any, language: str
) -> None:
    alice.language = language
    alice.save(update_fields=["language"])
    body = alice_client.get(reverse("gallery:home")).content.decode()
    match = re.search(r'<button type="button" id="notify-toggle"[^>]*>(.*?)</button>', body, re.S)
    assert match, "no notify button"
    button = match.group(0)
    # Hidden until the script finds the browser can notify; its words come from the page.
    assert " hidden" in button and 'aria-pressed="false"' in button
    with translation.override(language):
        words = {
            "data-off": gettext("Notify me when jobs finish"),
            "data-on": gettext("Desktop notifications on"),
            "data-finished": gettext("Job finished"),
            "data-failed": gettext("Job failed"),
        }
    for attribute, text in words.items():
        assert f'{attribute}="{text}"' in button, attribute
    assert match.group(1) == words["data-off"]
    assert "js/notify.js" in body

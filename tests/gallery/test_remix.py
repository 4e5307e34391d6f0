"""Remix: a press lands in MODAL, the card asks for the prompt, the modal call follows the id."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ

from gallery import services, sync, tasks
from gallery.models import Job
from tests.conftest import load
from tests.gallery.factories import answer_through, make_finished_job, make_job

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_remix_mode_toggles_and_marks_the_presses_it_applies_to(
    alice_client: Client, alice: Any
) -> None:
    response = alice_client.post(reverse("gallery:remix_mode"), {"remix_mode": "on"}, **HX)
    assert response.status_code == 200
    assert "Remix mode: on" in response.content.decode()
    alice.refresh_from_db()
    assert alice.remix_mode is True
    parent = make_finished_job(alice)
    reroll = services.press(owner=alice, parent=parent, action=Job.Action.REROLL)
    upscale = services.press(owner=alice, parent=parent, action=Job.Action.UPSCALE, index=1)
    assert reroll.remix is True
    assert upscale.remix is False  # Remix never applies to upscales
    alice_client.post(reverse("gallery:remix_mode"), {"remix_mode": "off"})
    alice.refresh_from_db()
    assert alice.remix_mode is False


def test_a_modal_card_asks_for_the_prompt_and_does_not_poll(
    alice_client: Client, alice: Any
) -> None:
    job = make_job(alice, status=Job.Status.MODAL, action=Job.Action.REROLL,
                   final_prompt="red fox in snow --v 6.1", provider_job_id="1001")  # fmt: skip
    body = alice_client.get(reverse("gallery:card", args=[job.code]), **HX).content.decode()
    assert "hx-trigger" not in body  # polling would wipe what the user is typing
    assert reverse("gallery:remix", args=[job.code]) in body
    assert ">red fox in snow --v 6.1</textarea>" in body


def test_answering_the_modal_enqueues_the_modal_call(alice_client: Client, alice: Any) -> None:
    job = make_job(alice, status=Job.Status.MODAL, provider_job_id="1001")
    response = alice_client.post(
        reverse("gallery:remix", args=[job.code]), {"prompt": "red fox, night"}, **HX
    )
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.remix_prompt == "red fox, night"
    assert "Sending your prompt" in response.content.decode()
    # The card polls again: the page's poller is woken (switched on if it was off).
    assert "live-wake" in response["HX-Trigger-After-Swap"]
    assert [q.func() for q in OrmQ.objects.all()] == ["gallery.tasks.submit_modal"]
    # A second answer is refused: the first one is on its way.
    again = alice_client.post(reverse("gallery:remix", args=[job.code]), {"prompt": "x"}, **HX)
    assert "no longer waiting" in again.content.decode()
    assert OrmQ.objects.count() == 1


def test_an_empty_remix_prompt_is_refused(alice_client: Client, alice: Any) -> None:
    job = make_job(alice, status=Job.Status.MODAL, provider_job_id="1001")
    response = alice_client.post(reverse("gallery:remix", args=[job.code]), {"prompt": "  "}, **HX)
    assert "Type a prompt first." in response.content.decode()
    job.refresh_from_db()
    assert job.remix_prompt == ""
    assert OrmQ.objects.count() == 0


def test_other_users_and_anonymous_cannot_answer(
    bob_client: Client, client: Client, alice: Any
) -> None:
    job = make_job(alice, status=Job.Status.MODAL, provider_job_id="1001")
    assert (
        bob_client.post(reverse("gallery:remix", args=[job.code]), {"prompt": "x"}).status_code
        == 404
    )
    assert (
        client.post(reverse("gallery:remix", args=[job.code]), {"prompt": "x"}).status_code == 302
    )
    job.refresh_from_db()
    assert job.remix_prompt == ""


def provider_answering(monkeypatch: pytest.MonkeyPatch, result: str) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={**load("cometapi/submit_success.json"), "result": result})

    answer_through(monkeypatch, handler)
    return seen


@pytest.mark.parametrize("answer_id", ["1001", "2002"])
def test_the_modal_call_follows_the_same_or_a_new_id(
    monkeypatch: pytest.MonkeyPatch, settings: Any, alice: Any, answer_id: str
) -> None:
    seen = provider_answering(monkeypatch, answer_id)
    job = make_job(
        alice, status=Job.Status.MODAL, provider_job_id="1001", remix_prompt="fox at night"
    )
    tasks.submit_modal(job.pk)
    tasks.submit_modal(job.pk)  # redelivered: nothing more is sent
    assert [r.url.path for r in seen] == ["/mj-fast/mj/submit/modal"]  # the mode prefix
    assert json.loads(seen[0].content) == {"taskId": "1001", "prompt": "fox at night"}
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED
    assert job.provider_job_id == answer_id
    assert job.final_prompt == "fox at night" and job.remix_prompt == ""
    assert job.prompt == "fox at night"


def test_a_remix_press_sends_enable_remix(
    monkeypatch: pytest.MonkeyPatch, settings: Any, alice: Any
) -> None:
    seen = provider_answering(monkeypatch, "3003")
    parent = make_finished_job(alice)
    child = make_job(alice, parent=parent, root=parent, action=Job.Action.REROLL, remix=True)
    tasks.dispatch(child.pk)
    assert json.loads(seen[0].content)["enableRemix"] is True


def test_code_1_then_a_fetched_modal_status_asks_for_the_prompt(
    monkeypatch: pytest.MonkeyPatch, settings: Any, alice: Any
) -> None:
    job = make_job(alice, status=Job.Status.SUBMITTED, provider_job_id="1001",
                   action=Job.Action.REROLL)  # fmt: skip
    modal = {**load("cometapi/fetch_in_progress.json"), "id": "1001", "status": "MODAL",
             "progress": "0%", "imageUrl": ""}  # fmt: skip
    answer_through(monkeypatch, lambda request: httpx.Response(200, json=[modal]))
    sync.tick("simulator")
    job.refresh_from_db()
    assert job.status == Job.Status.MODAL
    assert job.awaiting_user


def test_on_piapi_a_remix_press_asks_before_anything_is_sent(
    alice_client: Client, alice: Any, settings: Any
) -> None:
    settings.MJ_SIMULATOR_PROTOCOL = "piapi"
    alice.remix_mode = True
    alice.save()
    parent = make_finished_job(alice, final_prompt="a quiet harbour")
    response = alice_client.post(reverse("gallery:reroll", args=[parent.code]), **HX)
    child = Job.objects.get(parent=parent)
    assert (child.status, child.provider_job_id, child.remix) == ("modal", "", True)
    assert OrmQ.objects.count() == 0  # nothing reaches the provider before the prompt
    assert ">a quiet harbour</textarea>" in response.content.decode()
    alice_client.post(reverse("gallery:remix", args=[child.code]), {"prompt": "a harbour at night"})
    child.refresh_from_db()
    assert (child.status, child.prompt) == ("queued", "a harbour at night")
    assert [q.func() for q in OrmQ.objects.all()] == ["gallery.tasks.dispatch"]

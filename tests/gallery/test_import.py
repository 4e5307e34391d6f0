"""Importing a provider task made elsewhere, then pressing its buttons like any other."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ

from gallery import services
from gallery.models import Job
from tests.conftest import load
from tests.gallery.factories import answer_through, make_job

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.Response]:
    answers: dict[str, httpx.Response] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        task_id = request.url.path.split("/")[3]
        return answers.get(task_id, httpx.Response(400, json=load("cometapi/fetch_unknown.json")))

    answer_through(monkeypatch, handler)
    return answers


def test_a_finished_task_becomes_an_import_root_with_its_buttons(
    alice_client: Client, alice: Any, provider: dict[str, httpx.Response]
) -> None:
    provider["1773314942177684"] = httpx.Response(200, json=load("cometapi/fetch_success.json"))
    response = alice_client.post(reverse("gallery:import"), {"task_id": " 1773314942177684 "}, **HX)
    assert response.status_code == 200
    job = Job.objects.get(owner=alice)
    assert (job.action, job.status, job.root_id) == ("import", "running", job.pk)
    assert job.prompt == "red fox in snow --v 6.1"
    assert job.result_url and len(job.buttons) == 9
    assert f'id="job-{job.code}"' in response.content.decode()
    assert [q.func() for q in OrmQ.objects.all()] == ["gallery.tasks.ingest"]
    assert not job.is_single_image


def test_an_imported_upscale_is_a_single_image(
    alice: Any, provider: dict[str, httpx.Response]
) -> None:
    provider["1773314999000123"] = httpx.Response(
        200, json=load("cometapi/fetch_upscale_success.json")
    )
    job = services.import_task(owner=alice, provider_job_id="1773314999000123")
    assert job.is_single_image


@pytest.mark.parametrize(
    ("task_id", "answer", "message"),
    [
        ("42", None, "does not know this task id"),
        ("1773314942177690", "fetch_failure.json", "failed at the provider"),
        ("not a/valid id", None, "Paste the task id"),
    ],
)
def test_imports_that_cannot_work_say_why_and_write_nothing(
    alice_client: Client,
    provider: dict[str, httpx.Response],
    task_id: str,
    answer: str | None,
    message: str,
) -> None:
    if answer:
        provider[task_id] = httpx.Response(200, json=load(f"cometapi/{answer}"))
    response = alice_client.post(reverse("gallery:import"), {"task_id": task_id}, **HX)
    assert response["HX-Retarget"] == "#import-form"
    assert message in response.content.decode()
    assert Job.objects.count() == 0
    assert OrmQ.objects.count() == 0
    plain = alice_client.post(reverse("gallery:import"), {"task_id": task_id})
    assert plain.status_code == 422 and message in plain.content.decode()


def test_a_task_already_here_is_not_imported_twice(
    alice: Any, bob: Any, provider: dict[str, httpx.Response]
) -> None:
    make_job(bob, provider_job_id="1773314942177684", status=Job.Status.SUCCEEDED)
    with pytest.raises(services.SubmitError, match="another account"):
        services.import_task(owner=alice, provider_job_id="1773314942177684")
    make_job(alice, provider_job_id="1773314942177000", status=Job.Status.SUCCEEDED)
    with pytest.raises(services.SubmitError, match="already in your gallery"):
        services.import_task(owner=alice, provider_job_id="1773314942177000")


def test_a_running_task_is_followed_by_the_poller(
    alice: Any, provider: dict[str, httpx.Response]
) -> None:
    provider["1773314942177684"] = httpx.Response(200, json=load("cometapi/fetch_in_progress.json"))
    job = services.import_task(owner=alice, provider_job_id="1773314942177684")
    assert (job.status, job.progress) == ("submitted", 46)
    assert Job.objects.pollable("simulator").filter(pk=job.pk).exists()


def test_import_needs_login(client: Client) -> None:
    assert client.post(reverse("gallery:import"), {"task_id": "1"}).status_code == 302

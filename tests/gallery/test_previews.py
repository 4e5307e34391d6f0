"""In-progress previews are fetched by the worker once per step and served from our storage:
no web request waits on the provider."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ

from gallery import downloads, previews, services, sync, tasks
from gallery.models import Job
from tests.conftest import load
from tests.gallery.factories import FakeProvider, json_answer, make_job, png_bytes

pytestmark = pytest.mark.django_db


def running(owner: Any) -> Job:
    return make_job(owner, status=Job.Status.SUBMITTED, provider_job_id="1001", progress=0)


def report(fake: FakeProvider, progress: int) -> None:
    task = {
        **load("cometapi/fetch_in_progress.json"),
        "id": "1001",
        "progress": f"{progress}%",
        "imageUrl": f"https://api.cometapi.com/mj/image/1001?rand={progress}",
    }
    fake.routes["/mj/task/list-by-condition"] = json_answer([task])


def queued_previews() -> list[Any]:
    return [q for q in OrmQ.objects.all() if q.func() == "gallery.tasks.preview"]


@pytest.fixture
def downloaded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    urls: list[str] = []

    def download(url: str, **kwargs: Any) -> bytes:
        urls.append(url)
        return png_bytes((512, 512))

    monkeypatch.setattr(downloads, "download", download)
    return urls


def test_each_new_step_is_fetched_once_by_the_worker_and_served_from_storage(
    fake: FakeProvider, alice: Any, client: Client, downloaded: list[str]
) -> None:
    job = running(alice)
    report(fake, 30)
    sync.tick("simulator")
    sync.tick("simulator")  # the same step again: nothing more to fetch
    (queued,) = queued_previews()
    tasks.preview(queued.task["args"][0])
    tasks.preview(job.pk)  # a duplicate delivery fetches nothing more
    assert downloaded == ["https://api.cometapi.com/mj/image/1001?rand=30"]
    job.refresh_from_db()
    first = job.preview_image.name
    assert first.startswith(f"previews/{job.code.hex[:2]}/") and first.endswith(".webp")

    def no_provider(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a page asked the provider: {request.url}")

    fake.routes[""] = no_provider
    client.force_login(alice)
    answer = client.get(reverse("gallery:preview", args=[job.code]))
    assert answer.status_code == 200 and answer["Content-Type"] == "image/webp"
    assert b"".join(answer.streaming_content).startswith(b"RIFF")
    card = client.get(reverse("gallery:card", args=[job.code]), HTTP_HX_REQUEST="true")
    assert b'class="preview"' in card.content
    del fake.routes[""]

    OrmQ.objects.all().delete()
    report(fake, 60)
    sync.tick("simulator")
    tasks.preview(job.pk)
    job.refresh_from_db()
    assert job.preview_image.name != first and len(downloaded) == 2
    assert not job.preview_image.storage.exists(first)  # the step before is removed
    latest = job.preview_image.name
    assert job.preview_image.storage.exists(latest)
    services.delete(job)
    tasks.purge_images(job.pk)
    assert not job.preview_image.storage.exists(latest)  # a deleted job's preview goes too
    assert not Job.objects.get(pk=job.pk).preview_image


def test_without_a_stored_preview_the_page_says_none_and_asks_nobody(
    fake: FakeProvider, alice: Any, client: Client
) -> None:
    job = make_job(
        alice,
        status=Job.Status.RUNNING,
        provider_job_id="1001",
        preview_url="https://api.cometapi.com/mj/image/1001?rand=5",
    )
    client.force_login(alice)
    assert client.get(reverse("gallery:preview", args=[job.code])).status_code == 404
    card = client.get(reverse("gallery:card", args=[job.code]), HTTP_HX_REQUEST="true")
    assert b'class="preview"' not in card.content and b"spinner" in card.content
    assert fake.requests == []


def test_a_preview_that_cannot_be_fetched_is_skipped_for_that_step(
    fake: FakeProvider, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = running(alice)
    report(fake, 30)
    sync.tick("simulator")
    tries: list[str] = []

    def gone(url: str, **kwargs: Any) -> bytes:
        tries.append(url)
        raise downloads.ImageFetchError("The image is gone (HTTP 404).", permanent=False)

    monkeypatch.setattr(downloads, "download", gone)
    tasks.preview(job.pk)
    tasks.preview(job.pk)
    job.refresh_from_db()
    assert len(tries) == 1 and not job.preview_image  # not retried for the same step
    assert job.status == Job.Status.RUNNING  # the job itself goes on


def test_two_runs_at_once_keep_one_file(alice: Any) -> None:
    job = running(alice)
    Job.objects.filter(pk=job.pk).update(preview_url="https://x.example/a.png")
    job.refresh_from_db()
    stale = Job.objects.get(pk=job.pk)
    assert previews.keep(job, "https://x.example/a.png", b"RIFF-first")
    assert not previews.keep(stale, "https://x.example/a.png", b"RIFF-second")  # lost the race
    job.refresh_from_db()
    storage = job.preview_image.storage
    assert storage.open(job.preview_image.name).read() == b"RIFF-first"
    folder = job.preview_image.name.rsplit("/", 1)[0]
    assert len(storage.listdir(folder)[1]) == 1


def test_a_preview_replaced_while_the_page_reads_it_serves_the_new_one(
    alice: Any, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker stores the next step and deletes the one before between the page's read of
    the row and its open of the file: the page serves the new step, not a 404."""
    job = running(alice)
    assert previews.keep(job, "https://api.cometapi.com/mj/image/1001?rand=30", b"RIFF-first")
    job.refresh_from_db()
    real_open = type(job.preview_image).open
    replaced: list[str] = []

    def open_after_the_worker(field: Any, mode: str = "rb") -> Any:
        if not replaced:
            stale = Job.objects.get(pk=job.pk)
            previews.keep(stale, "https://api.cometapi.com/mj/image/1001?rand=60", b"RIFF-next")
            replaced.append(field.name)
        return real_open(field, mode)

    monkeypatch.setattr(type(job.preview_image), "open", open_after_the_worker)
    client.force_login(alice)
    answer = client.get(reverse("gallery:preview", args=[job.code]))
    assert replaced and answer.status_code == 200
    assert b"".join(answer.streaming_content) == b"RIFF-next"

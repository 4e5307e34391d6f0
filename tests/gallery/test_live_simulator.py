"""imagine -> poll -> ingest -> reroll -> ingest through the task functions, against the
real simulator HTTP server on a free port (its clock advanced by the test, not slept)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image as PILImage

from gallery import services, sync, tasks
from gallery.models import Image, Job
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, point_product_at

pytestmark = [pytest.mark.django_db, pytest.mark.live]


@pytest.fixture
def simulator(
    settings: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimulatorServer]:
    with SimulatorServer(port=0, duration=6.0, api_key="live-key", clock=clock) as server:
        point_product_at(server, settings, monkeypatch, api_key="live-key")
        yield server


def run_to_completion(job: Job, clock: FakeClock) -> Job:
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED, (job.status, job.fail_reason)
    seen_progress: set[int] = set()
    for _ in range(40):
        clock.now += 0.5
        sync.tick(job.provider)
        job.refresh_from_db()
        if job.status == Job.Status.RUNNING and not job.result_url:
            seen_progress.add(job.progress)
        if job.result_url:
            break
    assert job.result_url, f"never finished: {job.status} {job.progress} {job.fail_reason}"
    assert len(seen_progress) >= 2, seen_progress  # intermediate progress was visible
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.fail_kind, job.fail_reason)
    return job


def stored_grid(job: Job) -> tuple[bytes, PILImage.Image]:
    image = Image.objects.get(job=job, index=0)
    data = image.file.read()
    assert hashlib.sha256(data).hexdigest() == image.sha256
    with PILImage.open(io.BytesIO(data)) as decoded:
        decoded.load()
        thumb = PILImage.open(image.thumbnail)
        thumb.load()
        assert thumb.format == "WEBP" and thumb.width == image.thumb_width
        return data, decoded.copy()


def test_imagine_then_reroll_end_to_end(
    simulator: SimulatorServer, clock: FakeClock, alice: Any
) -> None:
    parent = services.submit(owner=alice, prompt="a lighthouse on a cliff at dawn", mode="fast")
    parent = run_to_completion(parent, clock)
    assert {b["action"] for b in parent.buttons} == {"upscale", "reroll", "variation"}
    assert len(parent.buttons) == 9
    parent_bytes, parent_image = stored_grid(parent)
    assert parent_image.size == (1024, 1024)

    child = services.press(owner=alice, parent=parent, action=Job.Action.REROLL)
    child = run_to_completion(child, clock)
    assert child.parent_id == parent.pk and child.root_id == parent.pk
    assert child.provider_job_id != parent.provider_job_id
    child_bytes, child_image = stored_grid(child)
    assert child_image.size == (1024, 1024)
    assert child_bytes != parent_bytes  # a reroll is a new picture

    upscale = services.press(owner=alice, parent=child, action=Job.Action.UPSCALE, index=2)
    upscale = run_to_completion(upscale, clock)
    assert Image.objects.get(job=upscale).kind == "single"
    assert {b["action"] for b in upscale.buttons} >= {
        "vary_subtle",
        "vary_strong",
        "zoom_out",
        "pan",
    }


def test_a_wrong_api_key_fails_the_job_with_the_providers_words(
    simulator: SimulatorServer, settings: Any, alice: Any
) -> None:
    settings.MJ_SIMULATOR_API_KEY = "wrong"
    job = services.submit(owner=alice, prompt="anything", mode="fast")
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.fail_kind == Job.FailKind.PROVIDER_ERROR
    assert "HTTP 401" in job.fail_note
    assert job.fail_reason and job.fail_reason in job.fail_note  # the provider's words, quoted


def test_a_remix_reroll_waits_for_the_prompt(
    simulator: SimulatorServer, clock: FakeClock, alice: Any
) -> None:
    parent = run_to_completion(services.submit(owner=alice, prompt="a quiet harbour"), clock)
    alice.remix_mode = True
    alice.save()
    child = services.press(owner=alice, parent=parent, action=Job.Action.REROLL)
    tasks.dispatch(child.pk)
    child.refresh_from_db()
    assert child.status == Job.Status.MODAL and child.awaiting_user
    services.answer_modal(job=child, prompt="a quiet harbour at night, lanterns")
    tasks.submit_modal(child.pk)
    child.refresh_from_db()
    assert child.status == Job.Status.SUBMITTED
    assert child.final_prompt == "a quiet harbour at night, lanterns"
    for _ in range(40):
        clock.now += 0.5
        sync.tick(child.provider)
        child.refresh_from_db()
        if child.result_url:
            break
    tasks.ingest(child.pk)
    child.refresh_from_db()
    assert child.status == Job.Status.SUCCEEDED, (child.fail_kind, child.fail_reason)


def test_an_imported_task_can_be_rerolled(
    simulator: SimulatorServer, clock: FakeClock, alice: Any
) -> None:
    import httpx

    made_elsewhere = httpx.post(
        simulator.base_url + "/mj/submit/imagine",
        json={"prompt": "a windmill in tulip fields"},
        headers={"Authorization": "Bearer live-key"},
    ).json()["result"]
    clock.now += 30
    job = services.import_task(owner=alice, provider_job_id=made_elsewhere)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.action == Job.Action.IMPORT
    child = run_to_completion(
        services.press(owner=alice, parent=job, action=Job.Action.REROLL), clock
    )
    assert child.root_id == job.pk

"""imagine -> poll -> ingest -> reroll -> ingest through the task functions, with the PiAPI
adapter (both dialects) driving the simulator's PiAPI surface on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gallery import services, tasks
from gallery.models import Image, Job
from gallery.providers import get_provider
from gallery.providers.piapi import PiAPI
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, point_product_at
from tests.gallery.test_live_simulator import run_to_completion, stored_grid

pytestmark = [pytest.mark.django_db, pytest.mark.live]


@pytest.fixture(params=["unified", "legacy"])
def piapi_simulator(
    request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SimulatorServer, FakeClock]]:
    clock = FakeClock()
    with SimulatorServer(port=0, duration=6.0, api_key="live-key", clock=clock) as server:
        point_product_at(
            server, settings, monkeypatch, api_key="live-key", protocol="piapi",
            piapi_api=request.param,
        )  # fmt: skip
        yield server, clock


def test_imagine_then_reroll_end_to_end(
    piapi_simulator: tuple[SimulatorServer, FakeClock], settings: Any, alice: Any
) -> None:
    server, clock = piapi_simulator
    with get_provider() as provider:
        assert isinstance(provider, PiAPI) and provider.api == settings.PIAPI_API

    parent = services.submit(owner=alice, prompt="a lighthouse on a cliff at dawn", mode="fast")
    parent = run_to_completion(parent, clock)
    assert server.piapi.record(parent.provider_job_id) is not None  # a PiAPI task id
    assert {b["action"] for b in parent.buttons} == {"upscale", "reroll", "variation"}
    assert len(parent.buttons) == 9
    parent_bytes, parent_image = stored_grid(parent)
    assert parent_image.size == (1024, 1024)

    child = services.press(owner=alice, parent=parent, action=Job.Action.REROLL)
    child = run_to_completion(child, clock)
    assert child.parent_id == parent.pk and child.provider_job_id != parent.provider_job_id
    record = server.piapi.record(child.provider_job_id)
    assert record is not None and record.task_type == "reroll"
    assert record.origin_task_id == parent.provider_job_id
    child_bytes, child_image = stored_grid(child)
    assert child_image.size == (1024, 1024)
    assert child_bytes != parent_bytes  # a reroll is a new picture

    upscale = services.press(owner=alice, parent=child, action=Job.Action.UPSCALE, index=2)
    upscale = run_to_completion(upscale, clock)
    assert Image.objects.get(job=upscale).kind == "single"
    assert {b["action"] for b in upscale.buttons} >= {"vary_subtle", "vary_strong", "zoom_out"}


def test_a_wrong_api_key_fails_the_job_with_the_providers_words(
    piapi_simulator: tuple[SimulatorServer, FakeClock], settings: Any, alice: Any
) -> None:
    settings.MJ_SIMULATOR_API_KEY = "wrong"
    job = services.submit(owner=alice, prompt="anything", mode="fast")
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.fail_kind == Job.FailKind.PROVIDER_ERROR
    assert "HTTP 401" in job.fail_note and "invalid api key" in job.fail_reason


def test_a_remix_reroll_sends_the_edited_prompt_with_the_press(
    piapi_simulator: tuple[SimulatorServer, FakeClock], alice: Any
) -> None:
    from gallery.models import ProviderCall

    _, clock = piapi_simulator
    parent = run_to_completion(services.submit(owner=alice, prompt="a quiet harbour"), clock)
    alice.remix_mode = True
    alice.save()
    child = services.press(owner=alice, parent=parent, action=Job.Action.REROLL)
    assert child.status == Job.Status.MODAL
    child = services.answer_modal(job=child, prompt="a quiet harbour at night, lanterns")
    child = run_to_completion(child, clock)
    assert child.prompt == "a quiet harbour at night, lanterns"
    press = ProviderCall.objects.filter(job=child).order_by("created_at", "id").first()
    assert press is not None and "a quiet harbour at night, lanterns" in press.request_body

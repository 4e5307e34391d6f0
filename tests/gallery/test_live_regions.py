"""Vary (Region) and Custom Zoom pressed end to end against the live simulator, on both
protocols: CometAPI asks for the mask or the --zoom prompt in MODAL and gets it from us at
once; PiAPI takes them with the press (inpaint, outpaint "custom")."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django_q.models import OrmQ
from PIL import Image as PILImage
from PIL import ImageChops, ImageDraw, ImageStat

from gallery import services, sync, tasks
from gallery.models import Image, Job
from mjweb import tokens
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, point_product_at
from tests.gallery.test_live_simulator import run_to_completion

pytestmark = [pytest.mark.django_db, pytest.mark.live]

PROTOCOLS = [("cometapi", "unified"), ("piapi", "unified"), ("piapi", "legacy")]


@pytest.fixture(params=PROTOCOLS, ids=["cometapi", "piapi-unified", "piapi-legacy"])
def live(
    request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeClock, str]]:
    protocol, api = request.param
    clock = FakeClock()
    with SimulatorServer(port=0, duration=6.0, api_key="live-key", clock=clock) as server:
        point_product_at(
            server, settings, monkeypatch, api_key="live-key", protocol=protocol, piapi_api=api
        )
        yield clock, protocol


def left_half_marked(size: tuple[int, int] = (300, 300)) -> str:
    """What the editor posts: a PNG data URL, transparent except a white left half, drawn at
    the size the screen showed (not the picture's)."""
    mask = PILImage.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(mask).rectangle((0, 0, size[0] // 2 - 1, size[1]), fill=(255, 255, 255, 255))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def changed(a: PILImage.Image, b: PILImage.Image) -> float:
    """How much two pictures differ: the mean of their pixels' difference, 0-255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def decoded(job: Job) -> PILImage.Image:
    with Image.objects.get(job=job, index=0).file.open("rb") as stored:
        picture = PILImage.open(io.BytesIO(stored.read()))
        picture.load()
    return picture.convert("RGB")


def run(job: Job, clock: FakeClock, protocol: str) -> Job:
    """The press to its stored picture, through the tasks as the worker runs them."""
    if protocol != "cometapi":
        return run_to_completion(job, clock)
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    # midjourney-proxy asked (code 21): our answer is queued at once, no user involved.
    assert job.status == Job.Status.MODAL and job.remix_prompt == job.prompt
    assert not job.awaiting_user
    assert "gallery.tasks.submit_modal" in [q.func() for q in OrmQ.objects.all()]
    tasks.submit_modal(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED and job.modal_answered_at is not None
    for _ in range(40):
        clock.now += 0.5
        sync.tick(job.provider)
        job.refresh_from_db()
        if job.result_url:
            break
    assert job.result_url, (job.status, job.fail_reason)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.fail_kind, job.fail_reason)
    return job


def an_upscale(alice: Any, clock: FakeClock) -> Job:
    grid = run_to_completion(services.submit(owner=alice, prompt="a red barn in a field"), clock)
    child = services.press(owner=alice, parent=grid, action="upscale", index=2)
    return run_to_completion(child, clock)


def test_vary_region_repaints_only_the_marked_part(live: tuple[FakeClock, str], alice: Any) -> None:
    clock, protocol = live
    upscale = an_upscale(alice, clock)
    job = services.press(
        owner=alice,
        parent=upscale,
        action="vary_region",
        prompt="a blue tractor",
        mask=left_half_marked(),
    )
    assert job.prompt == "a blue tractor" and job.mask
    with job.mask.open("rb") as stored:
        kept = PILImage.open(io.BytesIO(stored.read()))
        kept.load()
    # Flattened to black and white at the picture's own size.
    parent_picture = Image.objects.get(job=upscale, index=0)
    assert kept.size == (parent_picture.width, parent_picture.height)
    assert [value for value, count in enumerate(kept.convert("L").histogram()) if count] == [0, 255]
    job = run(job, clock, protocol)
    # Four takes on the picture, as Midjourney's Vary (Region) gives: in each, outside the
    # region the parent's pixels stay; inside, the picture changed.
    assert Image.objects.get(job=job, index=0).kind == Image.Kind.GRID
    for tile in Image.objects.filter(job=job, kind=Image.Kind.TILE):
        with tile.file.open("rb") as stored:
            after = PILImage.open(io.BytesIO(stored.read())).convert("RGB")
        before = decoded(upscale).resize(after.size, PILImage.Resampling.BILINEAR)
        width, height = after.size
        kept_change = changed(
            before.crop((width // 2 + 8, 0, width, height)),
            after.crop((width // 2 + 8, 0, width, height)),
        )
        repainted_change = changed(
            before.crop((0, 0, width // 2 - 8, height)), after.crop((0, 0, width // 2 - 8, height))
        )
        assert repainted_change > 5 * max(kept_change, 1.0), (
            tile.index,
            kept_change,
            repainted_change,
        )
    assert job.label.startswith("Vary (Region)")


def test_custom_zoom_sends_its_factor_in_the_prompt(
    live: tuple[FakeClock, str], alice: Any
) -> None:
    clock, protocol = live
    upscale = an_upscale(alice, clock)
    job = services.press(
        owner=alice, parent=upscale, action="custom_zoom", zoom="1.25", prompt="a wide valley"
    )
    assert (job.variant, job.prompt) == ("1.25", "a wide valley --zoom 1.25")
    assert job.label == "Custom Zoom 1.25x"
    job = run(job, clock, protocol)
    assert decoded(job).tobytes() != decoded(upscale).tobytes()
    assert "--zoom 1.25" in (job.final_prompt or job.prompt)


def test_through_the_api_the_press_asks_and_modal_answers_with_the_mask(
    live: tuple[FakeClock, str], alice: Any
) -> None:
    """A midjourney-proxy client presses Vary (Region) and Custom Zoom: code 21, as the
    protocol answers them, then /mj/submit/modal with maskBase64 or a --zoom prompt."""
    clock, protocol = live
    upscale = an_upscale(alice, clock)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {tokens.create(alice, 'tests')[1]}")

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = client.post(path, json.dumps(body), content_type="application/json")
        assert answer.status_code == 200, answer.content
        return answer.json()

    # The buttons as our API shows them: midjourney-proxy's customIds, whatever the provider.
    shown = client.get(f"/mj/task/{upscale.code}/fetch").json()["buttons"]
    ids = {
        "vary_region": next(
            b["customId"] for b in shown if b["customId"].startswith("MJ::Inpaint")
        ),
        "custom_zoom": next(b["customId"] for b in shown if "CustomZoom" in b["customId"]),
    }
    asked = post("/mj/submit/action", {"taskId": str(upscale.code), "customId": ids["vary_region"]})
    assert asked["code"] == 21, asked
    job = Job.objects.get(code=asked["result"])
    assert job.status == Job.Status.MODAL and job.awaiting_user and not job.provider_job_id
    # Without the mask, or with a picture that marks nothing: refused, still waiting.
    refused = post("/mj/submit/modal", {"taskId": asked["result"], "prompt": "a hat"})
    assert refused["code"] == 4 and "Mark the region" in refused["description"]
    blank = post(
        "/mj/submit/modal",
        {"taskId": asked["result"], "maskBase64": left_half_marked((10, 10))[:30] + "AAAA"},
    )
    assert blank["code"] == 4
    answered = post(
        "/mj/submit/modal",
        {"taskId": asked["result"], "prompt": "a hat", "maskBase64": left_half_marked()},
    )
    assert answered["code"] == 1, answered
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.mask and job.prompt == "a hat"
    assert run(job, clock, protocol).status == Job.Status.SUCCEEDED

    asked = post("/mj/submit/action", {"taskId": str(upscale.code), "customId": ids["custom_zoom"]})
    assert asked["code"] == 21
    assert Job.objects.get(code=asked["result"]).label == "Custom Zoom"  # no factor yet
    refused = post("/mj/submit/modal", {"taskId": asked["result"], "prompt": "a wide sea"})
    assert refused["code"] == 4 and "--zoom" in refused["description"]
    answered = post(
        "/mj/submit/modal", {"taskId": asked["result"], "prompt": "a wide sea --zoom 1.6"}
    )
    assert answered["code"] == 1
    job = Job.objects.get(code=asked["result"])
    assert (job.variant, job.status) == ("1.6", Job.Status.QUEUED)
    assert run(job, clock, protocol).status == Job.Status.SUCCEEDED

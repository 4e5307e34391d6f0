"""Every button, pressed through the task functions against the live simulator, both protocols."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image as PILImage

from gallery import services
from gallery.models import Image, Job
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, point_product_at
from tests.gallery.test_live_simulator import run_to_completion

pytestmark = [pytest.mark.django_db, pytest.mark.live]

GRID_ACTIONS = [
    ("variation", 1, ""),
    ("variation", 4, ""),
    ("reroll", None, ""),
    ("upscale", 3, ""),
]
UPSCALE_ACTIONS = [
    ("vary_subtle", None, ""),
    ("vary_strong", None, ""),
    ("zoom_out", None, "2x"),
    ("zoom_out", None, "1.5x"),
    ("pan", None, "left"),
    ("pan", None, "right"),
    ("pan", None, "up"),
    ("pan", None, "down"),
    ("upscale_subtle", None, ""),
    ("upscale_creative", None, ""),
]
PROTOCOLS = [("cometapi", "unified"), ("piapi", "unified"), ("piapi", "legacy")]


@pytest.fixture(params=PROTOCOLS, ids=["cometapi", "piapi-unified", "piapi-legacy"])
def live(
    request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeClock]:
    protocol, api = request.param
    clock = FakeClock()
    with SimulatorServer(port=0, duration=6.0, api_key="live-key", clock=clock) as server:
        point_product_at(
            server, settings, monkeypatch, api_key="live-key", protocol=protocol, piapi_api=api
        )
        yield clock


def picture(job: Job) -> bytes:
    return Image.objects.get(job=job, index=0).file.read()


def press(
    alice: Any, parent: Job, clock: FakeClock, action: str, index: int | None, variant: str
) -> Job:
    child = services.press(owner=alice, parent=parent, action=action, index=index, variant=variant)
    child = run_to_completion(child, clock)
    assert (child.action, child.index, child.variant) == (action, index, variant)
    assert child.parent_id == parent.pk and child.root_id == parent.root_id
    return child


def test_every_button_of_a_grid_and_of_an_upscale(live: FakeClock, alice: Any) -> None:
    clock = live
    grid = run_to_completion(services.submit(owner=alice, prompt="a lighthouse at dawn"), clock)
    for action, index, variant in GRID_ACTIONS:
        child = press(alice, grid, clock, action, index, variant)
        assert picture(child) != picture(grid)
        kind = Image.objects.get(job=child, index=0).kind
        assert kind == ("single" if action == "upscale" else "grid")
    upscale = Job.objects.get(parent=grid, action="upscale")
    offered = {(b["action"], b["index"], b["variant"]) for b in upscale.buttons}
    # Vary (Region) and Custom Zoom are offered too; they ask for a region or a factor first.
    assert offered == set(UPSCALE_ACTIONS) | {("vary_region", None, ""), ("custom_zoom", None, "")}
    for action, index, variant in UPSCALE_ACTIONS:
        child = press(alice, upscale, clock, action, index, variant)
        assert picture(child) != picture(upscale)
        with PILImage.open(io.BytesIO(picture(child))) as image:
            assert image.width >= 512

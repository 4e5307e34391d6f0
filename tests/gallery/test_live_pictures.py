"""Image prompts, Blend and Describe through the task functions against the real simulator,
in both protocols: CometAPI takes the pictures inline, PiAPI fetches them from our signed
links (served here by a small server in front of the site, as a provider reaches it)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import close_old_connections
from django.test import Client
from PIL import Image as PILImage

from gallery import references, services, sync, tasks
from gallery.models import Image, Job
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, png_bytes, point_product_at

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


class SiteServer:
    """This site as a provider reaches it for the user's pictures: a plain HTTP server that
    answers each GET through Django (over "https", as the site is served)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                close_old_connections()
                response = Client().get(self.path, secure=True)
                body = b"".join(response) if response.streaming else response.content
                self.send_response(response.status_code)
                self.send_header("Content-Type", response.get("Content-Type", ""))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["cometapi", "piapi-unified", "piapi-legacy"])
def simulator(
    request: pytest.FixtureRequest, settings: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimulatorServer]:
    protocol, _, api = str(request.param).partition("-")
    site = SiteServer()
    settings.SITE_URL = site.url
    try:
        with SimulatorServer(port=0, duration=6.0, api_key="live-key", clock=clock) as server:
            point_product_at(
                server,
                settings,
                monkeypatch,
                api_key="live-key",
                protocol=protocol,
                piapi_api=api or "unified",
            )
            yield server
    finally:
        site.close()


def finish(job: Job, clock: FakeClock) -> Job:
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED, (job.status, job.fail_reason, job.fail_note)
    for _ in range(60):
        clock.now += 0.5
        sync.tick(job.provider)
        job.refresh_from_db()
        if job.result_url or job.is_terminal:
            break
    assert job.result_url, (job.status, job.fail_reason, job.fail_note)
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.fail_kind, job.fail_reason, job.fail_note)
    return job


def picture(job: Job) -> PILImage.Image:
    stored = Image.objects.get(job=job, index=0)
    with PILImage.open(io.BytesIO(stored.file.read())) as decoded:
        decoded.load()
        return decoded.copy()


def test_describe_writes_prompts_from_the_picture(
    simulator: SimulatorServer, clock: FakeClock, alice: Any
) -> None:
    wide = references.take(alice, png_bytes((600, 400), "#d04010"))
    job = finish(services.describe(owner=alice, image=wide), clock)
    assert 1 <= len(job.described) <= 4
    assert all(prompt.strip() for prompt in job.described)
    assert any("--ar 3:2" in prompt for prompt in job.described)
    assert picture(job).size == (600, 400)  # the job shows the picture it described
    assert job.charge == Job.Charge.CAPTURED
    tall = references.take(alice, png_bytes((400, 600), "#1040d0"))
    other = finish(services.describe(owner=alice, image=tall), clock)
    assert other.described != job.described


def test_blend_makes_a_grid_in_the_chosen_shape(
    simulator: SimulatorServer, clock: FakeClock, alice: Any
) -> None:
    pictures = [references.take(alice, png_bytes((256, 256), c)) for c in ("#ff0000", "#0000ff")]
    job = finish(services.blend(owner=alice, images=pictures, dimensions="portrait"), clock)
    width, height = picture(job).size
    assert height > width  # 2:3
    assert {b["action"] for b in job.buttons} >= {"upscale", "variation"}


def test_an_imagine_with_image_prompts(
    simulator: SimulatorServer, clock: FakeClock, alice: Any
) -> None:
    reference = references.take(alice, png_bytes((300, 300), "#20a060"))
    job = finish(
        services.submit(owner=alice, prompt="a meadow --ar 16:9", images=[reference]), clock
    )
    width, height = picture(job).size
    assert width > height

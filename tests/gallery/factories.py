"""Small builders for jobs in known states (no provider involved)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from gallery.models import Image, Job
from gallery.providers.cometapi import CometAPI

GRID_BUTTONS = (
    [{"action": "upscale", "index": i, "variant": "", "label": f"U{i}",
      "custom_id": f"MJ::JOB::upsample::{i}::h", "emoji": ""} for i in range(1, 5)]
    + [{"action": "reroll", "index": None, "variant": "", "label": "",
        "custom_id": "MJ::JOB::reroll::0::h::SOLO", "emoji": "🔄"}]
    + [{"action": "variation", "index": i, "variant": "", "label": f"V{i}",
        "custom_id": f"MJ::JOB::variation::{i}::h", "emoji": ""} for i in range(1, 5)]
)  # fmt: skip


class FakeClock:
    """A clock the simulator reads instead of time.monotonic: tests move it, never sleep."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class HookReceiver:
    """A tiny webhook endpoint: records each POST, lets a test wait for the n-th one."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._changed:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append((headers, body))
                    receiver._changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/test/token/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.received) >= count, timeout)
        assert arrived, f"{len(self.received)} of {count} deliveries within {timeout} s"
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def png_bytes(size: tuple[int, int] = (64, 64), color: str = "#336699") -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def make_job(owner: Any, **fields: Any) -> Job:
    fields.setdefault("action", Job.Action.IMAGINE)
    fields.setdefault("prompt", "a quiet harbour at dawn")
    fields.setdefault("provider", "simulator")
    job = Job.objects.create(owner=owner, **fields)
    if job.root_id is None:
        Job.objects.filter(pk=job.pk).update(root=job)
        job.root_id = job.pk
    return job


def make_finished_job(owner: Any, **fields: Any) -> Job:
    fields.setdefault("status", Job.Status.SUCCEEDED)
    fields.setdefault("progress", 100)
    fields.setdefault("buttons", GRID_BUTTONS)
    fields.setdefault("provider_job_id", str(1773314942177000 + Job.objects.count()))
    job = make_job(owner, **fields)
    image = Image(
        job=job,
        kind=Image.Kind.GRID,
        index=0,
        width=64,
        height=64,
        thumb_width=64,
        thumb_height=64,
        bytes=100,
        sha256="0" * 64,
    )
    image.file.save("grid.png", ContentFile(png_bytes()), save=False)
    image.thumbnail.save("grid-512.webp", ContentFile(png_bytes()), save=False)
    image.save()
    return job


def answer_through(
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    api_key: str = "k",
) -> None:
    """Make `module.get_provider` build a CometAPI adapter answering through `handler` (an
    httpx.MockTransport handler), and the module's backoff sleeps instant."""

    def get_provider(name: str | None = None, **kwargs: Any) -> CometAPI:
        return CometAPI(
            name=name or "simulator",
            base_url="https://api.cometapi.com",
            api_key=api_key,
            mode_prefixes=settings.COMETAPI_MODE_PREFIXES,
            transport=httpx.MockTransport(handler),
            recorder=kwargs.get("recorder"),
        )

    monkeypatch.setattr(module, "get_provider", get_provider)
    if hasattr(module, "time"):
        monkeypatch.setattr(module.time, "sleep", lambda seconds: None)


def point_product_at(
    server: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    api_key: str,
    protocol: str = "cometapi",
    piapi_api: str = "unified",
) -> None:
    """Make the product talk to a running SimulatorServer, with instant backoff sleeps."""
    from gallery import tasks

    host, port = server.base_url.removeprefix("http://").split(":")
    settings.MJ_PROVIDER = "simulator"
    settings.MJ_SIMULATOR_HOST, settings.MJ_SIMULATOR_PORT = host, int(port)
    settings.MJ_SIMULATOR_API_KEY = api_key
    settings.MJ_SIMULATOR_PROTOCOL, settings.PIAPI_API = protocol, piapi_api
    monkeypatch.setattr(tasks.time, "sleep", lambda seconds: None)

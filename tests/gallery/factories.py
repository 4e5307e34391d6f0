"""Small builders for jobs in known states (no provider involved)."""

from __future__ import annotations

import io
import json
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
        job.make_root()
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
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    api_key: str = "k",
) -> None:
    """Make every provider the product opens (gallery.upstream) a CometAPI adapter answering
    through `handler` (an httpx.MockTransport handler), and backoff sleeps instant."""
    from gallery import upstream

    def get_provider(name: str | None = None, **kwargs: Any) -> CometAPI:
        return CometAPI(
            name=name or "simulator",
            base_url="https://api.cometapi.com",
            api_key=api_key,
            mode_prefixes=settings.COMETAPI_MODE_PREFIXES,
            transport=httpx.MockTransport(handler),
            recorder=kwargs.get("recorder"),
            task_list=settings.MJ_TASK_LIST,
        )

    monkeypatch.setattr(upstream, "get_provider", get_provider)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)


class FakeProvider:
    """Routes requests to per-path handlers and records them."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for suffix, handler in self.routes.items():
            if request.url.path.endswith(suffix):
                return handler(request)
        return httpx.Response(404, json={"error": "not_found"})

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def json_answer(data: Any, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=data)


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

    host, port = server.base_url.removeprefix("http://").split(":")
    settings.MJ_PROVIDER = "simulator"
    settings.MJ_SIMULATOR_HOST, settings.MJ_SIMULATOR_PORT = host, int(port)
    settings.MJ_SIMULATOR_API_KEY = api_key
    settings.MJ_SIMULATOR_PROTOCOL, settings.PIAPI_API = protocol, piapi_api
    monkeypatch.setattr(time, "sleep", lambda seconds: None)


# --- images and a scriptable image host (ingest tests) --------------------------------

QUADRANT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0))


def grid_png(size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A PNG whose four quarters (left to right, top to bottom) are QUADRANT_COLOURS."""
    width, height = size
    image = PILImage.new("RGB", size)
    mid_x, mid_y = width // 2, height // 2
    boxes = [(0, 0, mid_x, mid_y), (mid_x, 0, width, mid_y)]
    boxes += [(0, mid_y, mid_x, height), (mid_x, mid_y, width, height)]
    for box, colour in zip(boxes, QUADRANT_COLOURS, strict=True):
        image.paste(colour, box)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG of a few hundred bytes that declares width x height pixels (all black)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    # Only the first rows are present; Pillow reads the header before any pixel.
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


Answer = Callable[["RawServer", socket.socket, bytes], None]


class RawServer:
    """A loopback TCP server that answers each connection with a scripted function.

    `answer(server, conn, request_head)` writes whatever bytes it likes (lying headers,
    chunked bodies, drips). The server records connections, request heads, the TLS server
    name asked for (with `tls`), and `events` an answer notes (e.g. "client closed").
    """

    def __init__(self, answer: Answer, *, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.events: list[str] = []
        self.server_names: list[str | None] = []
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        if tls is not None:
            tls.sni_callback = self._record_sni
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "/image.png", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def note(self, event: str) -> None:
        with self._lock:
            self.events.append(event)

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.bytes_sent += len(data)

    def _record_sni(self, sock: Any, server_name: str | None, context: Any) -> None:
        with self._lock:
            self.server_names.append(server_name)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            with self._lock:
                self.requests.append(head)
            self.answer(self, conn, head)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stopping.set()
        self._listener.close()
        self._thread.join(timeout=2)


def http_answer(
    body: bytes, *, status: str = "200 OK", content_type: str = "image/png", **headers: str
) -> Answer:
    """An answer sending one complete response."""

    def answer(server: RawServer, conn: socket.socket, head: bytes) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}"]
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
        server.send(conn, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return answer

"""HTTP front of the provider simulator: CometAPI's midjourney-proxy surface.

Standard library only, so `python -m gallery.simulator` runs without Django. The answers
copy the new-api gateway that CometAPI runs (see docs/provider-protocols.md, sections 1
and 2): its auth rules and error envelopes, `task_no_found ` with the trailing space,
and a `/mj/image/{id}` proxy that needs no key. PiAPI's routes (/api/v1/task...,
/mj/v2/...) are answered by gallery.simulator.piapi on the same engine.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from gallery.simulator import piapi
from gallery.simulator.engine import Clock, Engine, SubmitError

log = logging.getLogger("gallery.simulator")

_MODE_PREFIXES = {"/mj-fast": "FAST", "/mj-relax": "RELAX", "/mj-turbo": "TURBO"}
_FETCH = re.compile(r"^/mj/task/([^/]+)/fetch$")
_IMAGE = re.compile(r"^/mj/image/([^/]+)$")
_POSTS = (
    "/mj/submit/imagine",
    "/mj/submit/action",
    "/mj/submit/modal",
    "/mj/task/list-by-condition",
)
_MAX_BODY = 32 * 1024 * 1024  # base64Array may carry reference images


def _submit_answer(
    code: int, description: str, result: str | None = None, properties: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "code": code,
        "description": description,
        "result": result,
        "properties": properties or {},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients poll the same connection
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server_version = "mjsim/1.0"
    sys_version = ""
    server: _HTTPServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sim.log_requests:
            log.info("%s %s", self.address_string(), format % args)

    # -- plumbing ----------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _read_body(self) -> bytes:
        # always consume the whole body, or the next request on this connection is garbage
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                total += size
                if total > _MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _authorized(self) -> bool:
        key = self.server.sim.api_key
        if not key:
            return True
        # new-api: "Bearer " and a leading "sk-" are optional; mj-api-secret is the fallback
        # when Authorization is empty or the placeholder "midjourney-proxy"
        token = (self.headers.get("Authorization") or "").strip()
        if not token or token == "midjourney-proxy":
            token = (self.headers.get("mj-api-secret") or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        given, wanted = token.removeprefix("sk-"), key.removeprefix("sk-")
        return bool(given) and hmac.compare_digest(given.encode(), wanted.encode())

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self._json(413, {"error": "request_too_large"}, {"Connection": "close"})
            self.close_connection = True
            return
        path = urlsplit(self.path).path  # query strings such as ?rand=37 never route
        if piapi.handles(path):
            status, payload, headers = self.server.sim.piapi.respond(
                method, path, self.headers, body
            )
            self._json(status, payload, headers)
            return
        mode = "FAST"
        for prefix, prefix_mode in _MODE_PREFIXES.items():
            if path.startswith(prefix + "/"):
                path, mode = path[len(prefix) :], prefix_mode
                break
        if not path.startswith("/mj/"):
            self._json(404, {"error": "not_found"})
            return
        image = _IMAGE.match(path)
        if image is None and not self._authorized():
            request_id = time.strftime("%Y%m%d%H%M%S") + f"{random.randrange(10**12):012d}"
            self._json(
                401,
                {
                    "error": {
                        "message": f"Invalid token (request id: {request_id})",
                        "type": "comet_api_error",
                        "param": "",
                        "code": "invalid_request",
                    }
                },
            )
            return
        fetch = _FETCH.match(path)
        allowed = "GET" if image or fetch else "POST" if path in _POSTS else None
        if allowed is None:
            self._json(404, {"error": "not_found"})
        elif method != allowed and not (method == "HEAD" and allowed == "GET"):
            self._json(405, {"error": "method_not_allowed"}, {"Allow": allowed})
        elif image:
            self._image(image.group(1))
        elif fetch:
            self._fetch(fetch.group(1))
        else:
            self._post(path, body, mode)

    # -- routes ------------------------------------------------------------------------

    def _fetch(self, task_id: str) -> None:
        view = self.server.sim.engine.view(task_id, self.server.sim.public_url)
        if view is None:
            self._json(400, {"description": "task_no_found ", "type": "upstream_error", "code": 4})
        else:
            self._json(200, view)

    def _image(self, task_id: str) -> None:
        found = self.server.sim.engine.image(task_id)
        if found is None:
            self._json(404, {"error": "midjourney_task_not_found"})
            return
        cache = "public, max-age=31536000, immutable" if found.final else "no-store"
        self._send(200, found.body, found.content_type, {"Cache-Control": cache})

    def _post(self, path: str, raw: bytes, mode: str) -> None:
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict):
            self._json(400, _submit_answer(4, "参数错误"))
            return
        if path == "/mj/task/list-by-condition":
            self._list(body)
            return
        engine = self.server.sim.engine

        def text(name: str) -> str:
            value = body.get(name)
            return value if isinstance(value, str) else ""

        try:
            if path == "/mj/submit/imagine":
                task = engine.imagine(
                    text("prompt"),
                    mode=mode,
                    state=text("state"),
                    bot_type=text("botType") or "MID_JOURNEY",
                    notify_hook=text("notifyHook"),
                )
            elif path == "/mj/submit/action":
                if not text("taskId") or not text("customId"):
                    raise SubmitError(4, "参数错误")
                task = engine.action(
                    text("taskId"),
                    text("customId"),
                    mode=mode,
                    state=text("state"),
                    notify_hook=text("notifyHook"),
                    enable_remix=body.get("enableRemix") is True,
                )
                if task.awaiting_modal:
                    self._json(
                        200,
                        _submit_answer(
                            21,
                            "Waiting for window confirm",
                            task.id,
                            {"finalPrompt": task.prompt, "remix": True},
                        ),
                    )
                    return
            else:
                if not text("taskId"):
                    raise SubmitError(4, "参数错误")
                task = engine.modal(text("taskId"), text("prompt") or None, text("maskBase64"))
        except SubmitError as refused:
            self._json(200, _submit_answer(refused.code, refused.description))
            return
        self._json(200, _submit_answer(1, "提交成功", task.id, engine.submit_properties()))

    def _list(self, body: dict[str, Any]) -> None:
        ids = body.get("ids")
        views = []
        if isinstance(ids, list):
            for task_id in ids:
                if isinstance(task_id, str):
                    view = self.server.sim.engine.view(task_id, self.server.sim.public_url)
                    if view is not None:
                        views.append(view)
        self._json(200, views)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    sim: SimulatorServer


class SimulatorServer:
    """A fake CometAPI Midjourney endpoint; `port=0` picks a free port on start."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        duration: float = 6.0,
        api_key: str = "",
        clock: Clock | None = None,
        *,
        public_url: str | None = None,
        log_requests: bool = False,
        engine: Engine | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.log_requests = log_requests
        self.engine = engine or Engine(duration=duration, clock=clock)
        self._public_url = public_url.rstrip("/") if public_url else None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._foreground = False  # serve_forever() is running in some caller's thread
        self.piapi = piapi.PiAPISimulator(self)

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not listening yet: call start()")
        host = self._httpd.server_address[0]
        if host in ("0.0.0.0", "::", ""):  # an address to bind, not one to reach
            host = "127.0.0.1"
        if ":" in str(host):
            host = f"[{host}]"
        return f"http://{host}:{self._httpd.server_address[1]}"

    @property
    def public_url(self) -> str:
        """Where image links point: base_url unless told otherwise (e.g. behind a proxy)."""
        return self._public_url or self.base_url

    def _bind(self) -> _HTTPServer:
        if self._httpd is None:
            httpd = _HTTPServer((self.host, self.port), _Handler)
            httpd.sim = self
            self._httpd = httpd
        return self._httpd

    def start(self) -> SimulatorServer:
        """Serve in a daemon thread; returns once the socket is listening."""
        if self._thread is not None:
            return self
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="mj-simulator",
            daemon=True,
        )
        self._thread.start()
        self.piapi.start()  # webhook watcher
        return self

    def serve_forever(self, on_ready: Callable[[SimulatorServer], None] | None = None) -> None:
        """Serve in the calling thread until stop() or KeyboardInterrupt."""
        httpd = self._bind()
        self._foreground = True
        try:
            self.piapi.start()  # webhook watcher
            if on_ready is not None:
                on_ready(self)
            httpd.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.piapi.stop()
            self._foreground = False
            httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        self.piapi.stop()
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        if self._foreground:
            httpd.shutdown()  # the serving thread closes the socket on its way out
            return
        if thread is not None:
            httpd.shutdown()  # would wait forever on a server that never served
            thread.join()
        httpd.server_close()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""The simulator's HTTP request handler: body reading, auth, fault-shaped replies, routing
(PiAPI's paths go to simulator.piapi), and CometAPI's midjourney-proxy routes with the
new-api gateway's error envelopes: imagine (with base64Array image prompts), action, modal
(Remix, Vary (Region)'s mask, Custom Zoom's --zoom), blend and describe.
simulator.server owns the listening socket.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from simulator import console, faults, piapi, uploads
from simulator.engine import BLEND_DIMENSIONS, SubmitError, Task

if TYPE_CHECKING:
    from simulator.server import SimulatorServer

log = logging.getLogger("simulator")

_MODE_PREFIXES = {"/mj-fast": "FAST", "/mj-relax": "RELAX", "/mj-turbo": "TURBO"}
_FETCH = re.compile(r"^/mj/task/([^/]+)/fetch$")
_IMAGE = re.compile(r"^/mj/image/([^/]+)$")
_POSTS = (
    "/mj/submit/imagine",
    "/mj/submit/action",
    "/mj/submit/modal",
    "/mj/submit/blend",
    "/mj/submit/describe",
    "/mj/task/list-by-condition",
    "/v1/responses",
)
# The form CometAPI's model pages show for every model: {"model": "mj-fast-reroll",
# "input": {"task_id": ...}}; answered as the reroll press it names.
_RESPONSES_MODEL = re.compile(r"mj[-_](fast|relax|turbo)[-_]reroll")
_MAX_BODY = 32 * 1024 * 1024  # base64Array may carry reference images


# new-api's words for the errors it answers itself (section 2.2); CometAPI rebrands `type`
_GATEWAY_ERRORS = {
    429: ("rate_limit_exceeded", "当前分组上游负载已饱和，请稍后再试"),
    500: ("do_request_failed", "upstream error: do request failed"),
    502: ("bad_response_status_code", "bad response status code 502"),
    503: ("model_not_found", "no available channel for this model, please try again later"),
    504: ("do_request_failed", "upstream error: gateway timeout"),
    524: ("do_request_failed", "upstream error: a timeout occurred"),
}


def _data_picture(text: str, what: str, long: int = uploads.REFERENCE_LONG) -> bytes:
    try:
        return uploads.picture(uploads.decode_data_url(text, what), what, long)[0]
    except uploads.BadImage as bad:
        raise SubmitError(4, str(bad)) from None


def _request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S") + f"{random.randrange(10**12):012d}"


def _gateway_error(status: int) -> dict[str, Any]:
    code, message = _GATEWAY_ERRORS.get(status, _GATEWAY_ERRORS[500])
    return {
        "error": {
            "message": f"{message} (request id: {_request_id()})",
            "type": "comet_api_error",
            "param": "",
            "code": code,
        }
    }


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

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Send a JSON answer, or what a fault made of it (raw cut-off bytes, nothing)."""
        if isinstance(payload, faults.NoAnswer):
            self.close_connection = True  # the client gave up long ago
        elif isinstance(payload, faults.RawBody):
            self._send(status, payload.body, "application/json; charset=utf-8", headers)
        else:
            self._json(status, payload, headers)

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self._json(413, {"error": "request_too_large"}, {"Connection": "close"})
            self.close_connection = True
            return
        sim = self.server.sim
        sim.delay()  # the latency fault: every answer, before any work
        path = urlsplit(self.path).path  # query strings such as ?rand=37 never route
        if console.handles(path):
            status, payload = console.respond(
                sim, method, path, urlsplit(self.path).query, self.headers.get("Authorization", "")
            )
            self._json(status, payload)
            return
        if piapi.handles(path):
            status, payload, headers = sim.piapi.respond(method, path, self.headers, body)
            self._reply(status, payload, headers)
            return
        mode = "FAST"
        for prefix, prefix_mode in _MODE_PREFIXES.items():
            if path.startswith(prefix + "/"):
                path, mode = path[len(prefix) :], prefix_mode
                break
        if not path.startswith("/mj/") and path != "/v1/responses":
            self._json(404, {"error": "not_found"})
            return
        image = _IMAGE.match(path)
        if image is None and not self._authorized():
            self._json(
                401,
                {
                    "error": {
                        "message": f"Invalid token (request id: {_request_id()})",
                        "type": "comet_api_error",
                        "param": "",
                        "code": "invalid_request",
                    }
                },
            )
            return
        if image is None:  # image bytes are not API calls: expiry is their fault
            injected = sim.faults.draw_error()
            if injected is not None:
                self._json(injected, _gateway_error(injected))
                return
        fetch = _FETCH.match(path)
        listing = path == "/mj/task/list"
        allowed = "GET" if image or fetch or listing else "POST" if path in _POSTS else None
        if allowed is None:
            self._json(404, {"error": "not_found"})
        elif method != allowed and not (method == "HEAD" and allowed == "GET"):
            self._json(405, {"error": "method_not_allowed"}, {"Allow": allowed})
        elif image:
            self._image(image.group(1))
        elif fetch:
            self._fetch(fetch.group(1))
        elif listing:
            self._every_task()
        else:
            self._post(path, body, mode)

    # -- routes ------------------------------------------------------------------------

    def _fetch(self, task_id: str) -> None:
        view = self.server.sim.engine.view(task_id, self.server.sim.public_url)
        if view is None:
            self._json(400, {"description": "task_no_found ", "type": "upstream_error", "code": 4})
        else:
            self._json_or_malformed([task_id], view)

    def _json_or_malformed(self, task_ids: list[str], payload: Any) -> None:
        """The answer, cut off half way if it carries a task marked [sim:malformed]."""
        if self.server.sim.fault_state.take_malformed(task_ids):
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            self._reply(200, faults.RawBody(faults.malformed(body)))
        else:
            self._json(200, payload)

    def _image(self, task_id: str) -> None:
        sim = self.server.sim
        found = sim.engine.image(task_id, ttl=sim.faults.image_ttl)
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
        if path == "/v1/responses":
            model, given = body.get("model"), body.get("input")
            named = _RESPONSES_MODEL.fullmatch(model) if isinstance(model, str) else None
            task_id = given.get("task_id") if isinstance(given, dict) else None
            if named is None or not isinstance(task_id, str):
                self._json(400, _submit_answer(4, "参数错误"))
                return
            parent = self.server.sim.engine.get(task_id)
            # The parent's own reroll button; the engine refuses it as the press would be.
            custom_id = f"MJ::JOB::reroll::0::{parent.hash if parent else 'none'}::SOLO"
            path, mode = "/mj/submit/action", named[1].upper()
            body = {"taskId": task_id, "customId": custom_id}
        sim = self.server.sim
        engine = sim.engine

        def text(name: str) -> str:
            value = body.get(name)
            return value if isinstance(value, str) else ""

        if self._refused_by_faults(path, text):
            return
        if path.startswith("/mj/submit/") and not console.affords(sim, mode):
            self._json(200, _submit_answer(4, "quota_not_enough"))
            return
        try:
            if path == "/mj/submit/imagine":
                if not text("prompt").strip():
                    raise SubmitError(4, "prompt不能为空")
                try:
                    pictures, failure = uploads.image_prompts(
                        text("prompt"), body.get("base64Array")
                    )
                except uploads.BadImage as bad:
                    raise SubmitError(4, str(bad)) from None
                with sim.admission() as full:  # the count and the create, atomically
                    if full:
                        raise SubmitError(*sim.fault_state.queue_refusal())
                    task = engine.imagine(
                        text("prompt"),
                        mode=mode,
                        state=text("state"),
                        bot_type=text("botType") or "MID_JOURNEY",
                        notify_hook=text("notifyHook"),
                        references=pictures,
                        failure=failure,
                    )
            elif path == "/mj/submit/action":
                if not text("taskId") or not text("customId"):
                    raise SubmitError(4, "参数错误")
                with sim.admission() as full:
                    if full:
                        raise SubmitError(*sim.fault_state.queue_refusal())
                    task = engine.action(
                        text("taskId"),
                        text("customId"),
                        mode=mode,
                        state=text("state"),
                        notify_hook=text("notifyHook"),
                        # account-level Remix parks the same presses an explicit one does
                        enable_remix=body.get("enableRemix") is True or sim.faults.remix,
                    )
                if task.awaiting_modal and not sim.faults.remix_code1:
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
                # remix_code1: the new-api gateway rewrites 21 to 1 (section 2.5.1); only the
                # fetched status says MODAL
            elif path == "/mj/submit/blend":
                task = self._blend(body, mode)
            elif path == "/mj/submit/describe":
                task = self._describe(body, mode)
            else:
                if not text("taskId"):
                    raise SubmitError(4, "参数错误")
                mask = None
                if text("maskBase64"):
                    try:
                        mask = uploads.decode_data_url(text("maskBase64"), "maskBase64")
                    except uploads.BadImage as bad:
                        raise SubmitError(4, str(bad)) from None
                task = engine.modal(text("taskId"), text("prompt") or None, mask)
        except SubmitError as refused:
            self._json(200, _submit_answer(refused.code, refused.description))
            return
        self._json(200, _submit_answer(1, "提交成功", task.id, engine.submit_properties()))

    def _blend(self, body: dict[str, Any], mode: str) -> Task:
        given = body.get("base64Array")
        if not isinstance(given, list) or not all(isinstance(d, str) for d in given):
            raise SubmitError(4, "base64Array must be a list of 2 to 5 data URLs")
        if not 2 <= len(given) <= 5:
            raise SubmitError(4, f"blend takes 2 to 5 images, not {len(given)}")
        dimensions = body.get("dimensions") or "SQUARE"
        if not isinstance(dimensions, str) or dimensions.upper() not in BLEND_DIMENSIONS:
            raise SubmitError(4, "dimensions must be PORTRAIT, SQUARE or LANDSCAPE")
        pictures = tuple(_data_picture(d, f"base64Array[{i}]") for i, d in enumerate(given))
        sim = self.server.sim
        with sim.admission() as full:
            if full:
                raise SubmitError(*sim.fault_state.queue_refusal())
            return sim.engine.blend(
                pictures,
                aspect=BLEND_DIMENSIONS[dimensions.upper()],
                mode=mode,
                bot_type=_text(body, "botType") or "MID_JOURNEY",
                state=_text(body, "state"),
                notify_hook=_text(body, "notifyHook"),
            )

    def _describe(self, body: dict[str, Any], mode: str) -> Task:
        data, link = _text(body, "base64"), _text(body, "link")
        failure, picture, size = None, b"", (1, 1)
        if data:
            try:
                raw = uploads.decode_data_url(data, "base64")
                picture, size = uploads.picture(raw, "base64", uploads.DESCRIBED_LONG)
            except uploads.BadImage as bad:
                raise SubmitError(4, str(bad)) from None
        elif link:
            if not uploads.is_link(link):
                raise SubmitError(4, "link must be an http(s) link")
            try:
                raw = uploads.download(link, f"the image to describe ({link})")
                picture, size = uploads.picture(
                    raw, "the image to describe", uploads.DESCRIBED_LONG
                )
            except uploads.BadImage as bad:
                failure = str(bad)
        else:
            raise SubmitError(4, "base64 or link is required")
        sim = self.server.sim
        with sim.admission() as full:
            if full:
                raise SubmitError(*sim.fault_state.queue_refusal())
            return sim.engine.describe(
                picture,
                size,
                mode=mode,
                bot_type=_text(body, "botType") or "MID_JOURNEY",
                state=_text(body, "state"),
                notify_hook=_text(body, "notifyHook"),
                failure=failure,
            )

    def _refused_by_faults(self, path: str, text: Callable[[str], str]) -> bool:
        """Answer a submit the faults refuse (a directive's error or hang, a banned word)."""
        sim = self.server.sim
        prompt = text("prompt")
        if path == "/mj/submit/imagine":
            key = f"imagine:{prompt}"
        elif path == "/mj/submit/action":
            # a retried press: the parent's prompt carries the directives
            parent = sim.engine.get(text("taskId"))
            prompt = parent.prompt if parent is not None else ""
            key = f"action:{text('taskId')}:{text('customId')}"
        elif path in ("/mj/submit/blend", "/mj/submit/describe"):
            # no prompt, so no directives: a retry is the same pictures again
            key = f"{path}:{text('link')}:{len(text('base64'))}"
        else:
            key = f"modal:{text('taskId')}:{prompt}"
        directive = sim.fault_state.submit_fault(sim.faults, key, prompt)
        if directive == "timeout":
            sim.hang()
            self._reply(504, faults.NO_ANSWER)
            return True
        if directive is not None:
            self._json(int(directive), _gateway_error(int(directive)))
            return True
        word = faults.banned_word(sim.faults.banned_words, text("prompt"))
        if word is not None and path != "/mj/submit/action":  # a press carries no prompt
            properties = {"promptEn": text("prompt"), "bannedWord": word}
            answer = _submit_answer(24, faults.BANNED_DESCRIPTION, None, properties)
            self._json(200, answer)
            return True
        return False

    def _every_task(self) -> None:
        """GET /mj/task/list as novicezk and trueai answer it: every task kept, newest first."""
        sim = self.server.sim
        views = [sim.engine.view(task.id, sim.public_url) for task in reversed(sim.engine.tasks())]
        self._json(200, [view for view in views if view is not None])

    def _list(self, body: dict[str, Any]) -> None:
        ids = body.get("ids")
        views = []
        if isinstance(ids, list):
            for task_id in ids:
                if isinstance(task_id, str):
                    view = self.server.sim.engine.view(task_id, self.server.sim.public_url)
                    if view is not None:
                        views.append(view)
        self._json_or_malformed([v["id"] for v in views], views)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value if isinstance(value, str) else ""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    sim: SimulatorServer

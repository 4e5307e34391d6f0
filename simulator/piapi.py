"""PiAPI's Midjourney surface for the simulator: the unified task API and the legacy v2 API.

The same Engine draws and schedules the jobs as for the CometAPI routes; this module only
translates. PiAPI names tasks with UUIDs, so each PiAPI task id maps to an engine task id
(image links stay the server's `/mj/image/<engine id>`). Shapes follow
docs/provider-protocols.md section 3; where PiAPI documents no body (401, unknown task,
refusals) the envelope copies its other answers: {"code", "data", "message"}.

Webhooks: a task created with an endpoint is POSTed to it once it is completed or failed.
`Watcher` (one thread per server, shared with CometAPI's notifyHook in server.py) looks at
the (injectable) engine clock every 0.2 s of real time and runs each protocol's scan; each
round's deliveries go out in order from one sender thread. `shape_deliveries` is the seam
for fault injection: it gets each round's due deliveries and returns what to send
(duplicated, reordered, dropped); by default the server's `Faults` decide.

Faults (simulator.faults) on this surface: injected 5xx/429 after the key check,
[sim:429|500|timeout] on creates, the banned-word pre-check, the queue limit (HTTP 429, as
PiAPI documents no body for it), and cut-off JSON for [sim:malformed] tasks.

Routes, statuses, action names and `Record` are in simulator.piapi_protocol; `Delivery`,
`Watcher` and the sender in simulator.webhooks (both re-exported here).
"""

from __future__ import annotations

import hmac
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING, Any

from simulator import faults, images, uploads
from simulator.engine import SubmitError, Task, buttons, parse_aspect, prompt_zoom
from simulator.piapi_protocol import (
    _BLEND_DIMENSIONS,
    _BUSY,
    _CREATE,
    _ENGLISH,
    _GET,
    _LEGACY,
    _LEGACY_STATUS,
    _MODES,
    _ORIGINLESS,
    _TASK_TYPES,
    _TERMINAL,
    _UNIFIED_STATUS,
    Record,
    Reply,
    _error,
    _Injected,
    _iso,
    _Refused,
    piapi_action,
    wanted_action,
)
from simulator.piapi_protocol import handles as handles
from simulator.webhooks import Delivery, send
from simulator.webhooks import Watcher as Watcher

if TYPE_CHECKING:
    from simulator.server import SimulatorServer


@dataclass(frozen=True)
class _Pictures:
    """What a create's pictures came to: image prompts or blend inputs, the failReason of a
    link that could not be used, the shape asked for, a region's mask, the described image."""

    pictures: tuple[bytes, ...]
    failure: str | None
    aspect: float | None = None
    mask: bytes | None = None
    described: tuple[bytes, tuple[int, int]] = (b"", (1, 1))


class PiAPISimulator:
    """PiAPI's routes and task records on top of a SimulatorServer's engine."""

    def __init__(self, sim: SimulatorServer, *, webhook_timeout: float = 2.0) -> None:
        self.sim = sim
        self.webhook_timeout = webhook_timeout
        # fault-injection seam: the due deliveries of one round -> what actually gets sent
        self.shape_deliveries: Callable[[list[Delivery]], list[Delivery]] = self._shape
        self.deliveries: list[Delivery] = []  # everything handed to a sender, in order
        self._records: dict[str, Record] = {}
        self._lock = threading.Lock()

    def _shape(self, due: list[Delivery]) -> list[Delivery]:
        # PiAPI sends terminal states only, so shuffling has no earlier state to resend
        return faults.shape(due, self.sim.faults)

    # -- HTTP ------------------------------------------------------------------------

    def respond(self, method: str, path: str, headers: Message, raw: bytes) -> Reply:
        if not self._authorized(headers):
            # PiAPI documents a 401 but not its body: this copies its other envelopes.
            return _error(401, "invalid api key")
        injected = self.sim.faults.draw_error()
        if injected is not None:
            return _error(injected, _BUSY.get(injected, "internal server error"))
        get = _GET.match(path)
        legacy = _LEGACY.match(path)
        if get is None and legacy is None and path != _CREATE:
            return _error(404, "not found")
        allowed = "GET" if get else "POST"
        if method != allowed and not (method == "HEAD" and allowed == "GET"):
            status, payload, _ = _error(405, "method not allowed")
            return status, payload, {"Allow": allowed}
        if get:
            return self._get(get.group(1))
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict):
            return _error(400, "invalid request body")
        if legacy is None:
            return self._create(body)
        if legacy.group(1) == "fetch":
            return self._fetch(body)
        return self._legacy_create(legacy.group(1), body)

    def _authorized(self, headers: Message) -> bool:
        key = self.sim.api_key
        if not key:
            return True
        given = (headers.get("X-API-Key") or "").strip()  # header names are case-insensitive
        return bool(given) and hmac.compare_digest(given.encode(), key.encode())

    def _create(self, body: dict[str, Any]) -> Reply:
        params, config = body.get("input"), body.get("config")
        if body.get("model") != "midjourney" or not isinstance(params, dict):
            return _error(400, "invalid request: model must be midjourney, input an object")
        hook = config.get("webhook_config") if isinstance(config, dict) else None
        hook = hook if isinstance(hook, dict) else {}
        try:
            record = self._start(
                "unified",
                str(body.get("task_type") or ""),
                params,
                str(hook.get("endpoint") or ""),
                str(hook.get("secret") or ""),
            )
        except _Refused as refused:
            return _error(400, refused.message)
        except _Injected as injected:
            return injected.reply
        return 200, {"code": 200, "data": self.unified_data(record), "message": "success"}, {}

    def _legacy_create(self, task_type: str, body: dict[str, Any]) -> Reply:
        endpoint = body.get("webhook_endpoint")
        secret = body.get("webhook_secret")
        try:
            record = self._start(
                "legacy",
                task_type,
                body,
                endpoint if isinstance(endpoint, str) else "",
                secret if isinstance(secret, str) else "",
            )
        except _Refused as refused:
            return 200, {"task_id": "", "status": "failed", "message": refused.message}, {}
        except _Injected as injected:
            return injected.reply
        return 200, {"task_id": record.task_id, "status": "success", "message": ""}, {}

    def _get(self, task_id: str) -> Reply:
        record = self.record(task_id)
        if record is None:
            return _error(404, "task not found")
        payload = {"code": 200, "data": self.unified_data(record), "message": "success"}
        return 200, self._maybe_malformed(record, payload), {}

    def _fetch(self, body: dict[str, Any]) -> Reply:
        record = self.record(str(body.get("task_id") or ""))
        if record is None:
            return _error(404, "task not found")
        return 200, self._maybe_malformed(record, self.legacy_data(record)), {}

    def _maybe_malformed(self, record: Record, payload: dict[str, Any]) -> Any:
        if not self.sim.fault_state.take_malformed([record.engine_id]):
            return payload
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return faults.RawBody(faults.malformed(text))

    # -- tasks -----------------------------------------------------------------------

    def _start(
        self, api: str, task_type: str, params: dict[str, Any], endpoint: str, secret: str
    ) -> Record:
        if task_type not in _TASK_TYPES:
            raise _Refused(f"unsupported task_type {task_type!r}")
        prompt = params.get("prompt") if isinstance(params.get("prompt"), str) else ""
        mode = _MODES.get(str(params.get("process_mode") or "").lower())
        origin = str(params.get("origin_task_id") or "")
        parent = self.record(origin) if task_type not in _ORIGINLESS else None
        parent_task = self.sim.engine.get(parent.engine_id) if parent else None
        self._check_faults(task_type, params, prompt, parent_task.prompt if parent_task else "")
        # the user's pictures are read before the queue is: downloads take their time
        given = self._pictures(task_type, params, prompt, parent_task)
        with self.sim.admission() as full:  # the count and the create, atomically
            if full:
                raise _Injected(_error(429, faults.PIAPI_QUEUE_FULL))
            task = self._create_task(task_type, params, prompt, mode, parent, parent_task, given)
        record = Record(
            task_id=str(uuid.uuid4()),
            engine_id=task.id,
            api=api,
            task_type=task_type,
            input={k: v for k, v in params.items() if not k.startswith("webhook_")},
            process_mode=task.mode.lower(),
            origin_task_id=origin if task_type not in _ORIGINLESS else "",
            endpoint=endpoint,
            secret=secret,
        )
        with self._lock:
            self._records[record.task_id] = record
        return record

    def _create_task(
        self,
        task_type: str,
        params: dict[str, Any],
        prompt: str,
        mode: str | None,
        parent: Record | None,
        parent_task: Task | None,
        given: _Pictures,
    ) -> Task:
        engine = self.sim.engine
        try:
            if task_type == "imagine":
                return engine.imagine(
                    prompt,
                    mode=mode or "FAST",
                    aspect=given.aspect,
                    references=given.pictures,
                    failure=given.failure,
                )
            if task_type == "blend":
                return engine.blend(
                    given.pictures,
                    aspect=given.aspect or 1.0,
                    mode=mode or "FAST",
                    failure=given.failure,
                )
            if task_type == "describe":
                picture, size = given.described
                return engine.describe(picture, size, mode=mode or "FAST", failure=given.failure)
            if parent is None or parent_task is None:
                raise _Refused("origin task not found")
            wanted = wanted_action(task_type, params)
            if wanted is None:
                raise _Refused(f"invalid {task_type} parameters")
            custom_id = next(
                (
                    b["customId"]
                    for b in buttons(parent_task)
                    if piapi_action(b["customId"]) == wanted
                ),
                None,
            )
            if custom_id is None:
                raise _Refused(f"{wanted} is not available on the origin task")
            if wanted in ("inpaint", "outpaint_custom"):
                # PiAPI has no modal step: the press and its confirmation are one request
                task = engine.action(parent.engine_id, custom_id, mode=mode or parent_task.mode)
                return engine.modal(task.id, prompt or None, given.mask)
            # PiAPI takes an edited prompt with the press: the engine redraws under it
            return engine.action(
                parent.engine_id,
                custom_id,
                mode=mode or parent_task.mode,
                prompt=prompt or None,
            )
        except SubmitError as refused:
            raise _Refused(_ENGLISH.get(refused.description, refused.description)) from refused

    def _pictures(
        self, task_type: str, params: dict[str, Any], prompt: str, parent_task: Task | None
    ) -> _Pictures:
        """The pictures a create brings, checked before anything is created: a bad field is
        refused (_Refused), a link that cannot be used becomes the task's failReason."""
        try:
            if task_type == "imagine":
                ratio = params.get("aspect_ratio")
                aspect = None
                if ratio not in (None, ""):
                    aspect = parse_aspect(ratio if isinstance(ratio, str) else "")
                pictures, failure = uploads.image_prompts(prompt)
                return _Pictures(pictures, failure, aspect)
            if task_type == "blend":
                links = params.get("image_urls")
                if not isinstance(links, list) or not all(isinstance(u, str) for u in links):
                    raise _Refused("image_urls must be a list of 2 to 5 image links")
                if not 2 <= len(links) <= 5:
                    raise _Refused(f"blend takes 2 to 5 images, not {len(links)}")
                if not all(uploads.is_link(u) for u in links):
                    raise _Refused("image_urls must be http(s) links")
                dimension = str(params.get("dimension") or "square").lower()
                if dimension not in _BLEND_DIMENSIONS:
                    raise _Refused("dimension must be square, portrait or landscape")
                found, failure = uploads.linked_pictures(links, "blend image")
                aspect = _BLEND_DIMENSIONS[dimension]
                return _Pictures(tuple(p for p, _ in found), failure, aspect)
            if task_type == "describe":
                link = params.get("image_url")
                if not isinstance(link, str) or not uploads.is_link(link):
                    raise _Refused("image_url must be an http(s) image link")
                found, failure = uploads.linked_pictures(
                    [link], "the image to describe", uploads.DESCRIBED_LONG
                )
                return _Pictures((), failure, described=found[0] if found else (b"", (1, 1)))
            if task_type == "inpaint" and parent_task is not None:
                # UNCONFIRMED shape: input {origin_task_id, mask (data URL or bare base64),
                # prompt}; white repaints, as on midjourney-proxy
                text = params.get("mask")
                if not isinstance(text, str) or not text.strip():
                    raise _Refused("mask is required for inpaint")
                raw = uploads.decode_data_url(text, "mask", bare=True)
                uploads.mask(raw, images.picture_size(parent_task.picture), "mask")
                return _Pictures((), None, mask=raw)
            if task_type == "outpaint" and str(params.get("zoom_ratio") or "").lower() == "custom":
                # UNCONFIRMED shape: zoom_ratio "custom" and the factor as --zoom N in prompt
                prompt_zoom(prompt)
        except uploads.BadImage as bad:
            raise _Refused(str(bad)) from None
        except SubmitError as refused:
            raise _Refused(refused.description) from None
        return _Pictures((), None)

    def _check_faults(
        self, task_type: str, params: dict[str, Any], prompt: str, origin_prompt: str
    ) -> None:
        """Refuse a create the way the faults say: a directive's HTTP error or hang, or the
        banned-word pre-check (a full queue is checked with the create, in _start)."""
        sim = self.sim
        if task_type == "imagine":
            key = f"imagine:{prompt}"
        else:  # a retried press: the same origin and the same fields
            key = json.dumps([task_type, params], sort_keys=True, default=str)
        directive = sim.fault_state.submit_fault(sim.faults, key, prompt or origin_prompt)
        if directive == "timeout":
            sim.hang()
            raise _Injected((504, faults.NO_ANSWER, {}))
        if directive is not None:
            status = int(directive)
            raise _Injected(_error(status, _BUSY[status]))
        word = faults.banned_word(sim.faults.banned_words, prompt)
        if word is not None:
            # PiAPI's own words are undocumented (section 3.4); the bannedWord goes in brackets
            # like the proxies' answer, so both read the same in the product.
            raise _Refused(f"Banned prompt detected: the prompt contains a banned word ({word})")

    def record(self, task_id: str) -> Record | None:
        with self._lock:
            return self._records.get(task_id)

    def _state(self, record: Record) -> dict[str, Any]:
        """The engine's view of the task, in the pieces both PiAPI shapes are made of."""
        view = self.sim.engine.view(record.engine_id, self.sim.public_url)
        if view is None:  # pragma: no cover - engine tasks are never deleted
            raise KeyError(record.engine_id)
        status = view["status"]
        done = status == "SUCCESS"
        return {
            "status": status,
            "image_url": view["imageUrl"] if done else "",
            # the engine serves a blurry preview at the in-progress link
            "intermediate": [view["imageUrl"]] if status == "IN_PROGRESS" else [],
            "progress": int(view["progress"].rstrip("%")),
            "actions": [
                a for b in view["buttons"] if (a := piapi_action(b["customId"])) is not None
            ]
            if done
            else [],
            "reason": view["failReason"] if status == "FAILURE" else "",
            "times": (view["submitTime"], view["startTime"], view["finishTime"]),
        }

    def unified_data(self, record: Record) -> dict[str, Any]:
        state = self._state(record)
        created, started, ended = state["times"]
        reason = state["reason"]
        return {
            "task_id": record.task_id,
            "model": "midjourney",
            "task_type": record.task_type,
            "status": _UNIFIED_STATUS.get(state["status"], "pending"),
            "config": {
                "service_mode": "public",
                "webhook_config": {"endpoint": record.endpoint, "secret": record.secret},
            },
            "input": record.input,
            "output": {
                "image_url": state["image_url"],
                "image_urls": [],
                "temporary_image_urls": [],
                "discord_image_url": "",
                "progress": state["progress"],
                "intermediate_image_urls": state["intermediate"],
                "actions": state["actions"],
                **self._described(record, state),
            },
            "meta": {
                "created_at": _iso(created),
                "started_at": _iso(started),
                "ended_at": _iso(ended),
                "usage": {"type": "point", "frozen": 0, "consume": 0},
                "is_using_private_pool": False,
            },
            "detail": None,
            "logs": [],
            # the failure code is undocumented: any non-zero value marks an error
            "error": {
                "code": 10000 if reason else 0,
                "raw_message": reason,
                "message": reason,
                "detail": None,
            },
        }

    def _described(self, record: Record, state: dict[str, Any]) -> dict[str, Any]:
        """Describe's answer. UNCONFIRMED shape: the four prompts as Midjourney numbers them
        in `description`, and as a list in `prompts`."""
        if record.task_type != "describe":
            return {}
        task = self.sim.engine.get(record.engine_id)
        prompts = list(task.described) if task and state["status"] == "SUCCESS" else []
        return {
            "description": uploads.describe_text(prompts) if prompts else "",
            "prompts": prompts,
        }

    def legacy_data(self, record: Record) -> dict[str, Any]:
        state = self._state(record)
        created, started, ended = state["times"]
        reason = state["reason"]

        def seconds(ms: int | None) -> int:
            return ms // 1000 if ms is not None else 0

        return {
            "task_id": record.task_id,
            "status": _LEGACY_STATUS.get(state["status"], "pending"),
            "process_time": seconds(ended) - seconds(started) if ended and started else 0,
            "retry_count": 0,
            "meta": {
                "task_type": record.task_type,
                "origin_task_id": record.origin_task_id,
                "process_mode": record.process_mode,
                "created_at": seconds(created),
                "started_at": seconds(started),
                "ended_at": seconds(ended),
                "task_param": record.input,
            },
            "task_result": {
                "image_url": state["image_url"],
                "image_urls": [],
                "discord_image_url": "",
                "temporary_image_urls": [],
                "task_progress": state["progress"],
                "intermediate_image_urls": state["intermediate"],
                "actions": state["actions"],
                **self._described(record, state),
                "error_messages": [reason] if reason else [],
                "message": "",
            },
        }

    # -- webhooks --------------------------------------------------------------------

    @property
    def _watcher(self) -> threading.Thread | None:
        """The server's webhook thread (shared with CometAPI's notifyHook)."""
        return self.sim.watcher.thread

    def start(self) -> None:
        self.sim.watcher.start()

    def stop(self) -> None:
        self.sim.watcher.stop()

    def scan_webhooks(self) -> list[Delivery]:
        """Send the webhook of every hooked task that just reached completed or failed."""
        due: list[Delivery] = []
        with self._lock:
            waiting = [r for r in self._records.values() if r.endpoint and not r.delivered]
        for record in waiting:
            state = self._state(record)
            if state["status"] not in _TERMINAL:
                continue
            with self._lock:
                if record.delivered:  # a concurrent scan got there first
                    continue
                record.delivered = True
            if record.api == "legacy":
                payload: dict[str, Any] = self.legacy_data(record)
                status = payload["status"]
            else:
                data = self.unified_data(record)
                status = data["status"]
                finished = state["times"][2]
                payload = {"timestamp": (finished or 0) // 1000, "data": data}
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            due.append(Delivery(record.endpoint, record.secret, body, record.task_id, status))
        shaped = self.shape_deliveries(due)
        self.deliveries.extend(shaped)
        send(shaped, self.webhook_timeout)
        return due

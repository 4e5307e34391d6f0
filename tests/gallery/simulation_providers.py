"""The fake providers of the seeded simulation (tests/gallery/simulation.py).

Two dialects, each an httpx.MockTransport handler that answers from the seed's `World`:

- `CometAPIFake`, the midjourney-proxy protocol (docs/provider-protocols.md sections 1-2):
  imagine, action and modal submits with codes 1, 21 (a remix press parked in MODAL; a
  gateway may rewrite it to 1), 22, 23, 9, 24, 3 and 4 (a repeat modal answer); reads by
  list-by-condition (which may omit ids) and by fetch; blank statuses and numeric ids; a
  modal answer that keeps its id or hands out a new one, and the gateway's copy that goes on
  saying MODAL for up to 15 s after it; notifyHook calls on every change.
- `PiAPIFake`, PiAPI's unified task API (section 3): POST /api/v1/task, GET
  /api/v1/task/{id}, statuses pending/staged/processing/completed/failed in any case (and
  blank or unknown ones before a task starts), not-found in each documented shape, and
  webhooks `{"timestamp", "data"}` with the x-webhook-secret it was given, retried when
  they fail.

Both answer 429, 5xx and timeouts (before the request arrives, or after the task was made),
carry hostile fields (NUL characters, URLs longer than our columns, junk buttons), and make
images that may expire. Every request is checked against the protocol too: what the product
got wrong is kept in `world.violations`, which `check` reports.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from gallery import downloads
from tests.gallery.factories import png_bytes

if TYPE_CHECKING:
    from tests.gallery.simulation_world import World

COMETAPI_KEY = "sk-simulation"
PIAPI_KEY = "pk-simulation"
COMETAPI_IMAGES = "https://api.cometapi.com/mj/image/"
PIAPI_IMAGES = "https://img.theapi.app/mj/"
PICTURE = png_bytes((64, 64))
# The gateway refreshes its copy of a task from upstream this often (new-api, section 2.5).
GATEWAY_LAG = 15.0


@dataclass
class Task:
    """One task at the provider, whichever dialect made it."""

    id: str
    state: str  # the job (its code) it was made for; "" for a parent made by the factory
    made_at: float
    takes: float
    fails: bool
    kind: str = "submit"  # submit: an imagine or a press; modal: a remix answer's new task
    grid: bool = True  # four images (imagine, reroll, variation...) or one (an upscale)
    hash: str = ""  # Midjourney's job hash, in the customIds of its buttons
    task_type: str = "imagine"
    prompt: str = ""
    asks: bool = False  # parked in MODAL, waiting for /mj/submit/modal
    answered_at: float | None = None
    lag_until: float = 0.0  # the gateway's copy still says MODAL until then
    frozen: bool = False  # a modal answered with a new id: this original row stays MODAL
    expires_at: float = math.inf  # its image is gone from then on
    hook: str = ""  # where it calls back ("" for nowhere)
    secret: str = ""
    notified: str = ""  # what it last called back about

    def phase(self, now: float) -> tuple[str, int]:
        """(modal | waiting | running | succeeded | failed, progress) at `now`."""
        if self.asks and (self.answered_at is None or self.frozen):
            return "modal", 0
        if now < self.lag_until:
            return "modal", 0
        age = now - self.made_at
        if age >= self.takes:
            return ("failed" if self.fails else "succeeded"), 100
        if age >= 2:
            return "running", min(99, int(100 * age / self.takes))
        return "waiting", 0


@dataclass
class Hook:
    """One callback on its way to us."""

    path: str
    body: str
    headers: dict[str, str]
    retries: int = 0  # PiAPI tries a failed delivery again, up to 3 times


def json_answer(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=data)


class Fake:
    """What both dialects share: the world, task making, faults, images."""

    def __init__(self, world: World) -> None:
        self.world = world

    def notify(self) -> None:
        """Call back about whatever changed since the last time (each dialect its way)."""
        raise NotImplementedError

    def violation(self, text: str) -> None:
        self.world.violations.append(f"{self.world.now:.0f}s {text}")

    def make(self, task_id: str, state: str, **fields: Any) -> Task:
        world = self.world
        task = Task(
            id=task_id,
            state=state,
            made_at=world.now,
            takes=world.rng.uniform(5, 400),
            fails=world.chance(0.1),
            hash=str(uuid.UUID(int=world.rng.getrandbits(128), version=4)),
            **fields,
        )
        if world.chance(world.expire):  # a signed CDN link that runs out
            task.expires_at = world.now + task.takes + world.rng.uniform(30, 3000)
        world.tasks[task.id] = task
        world.note(f"provider made {task.id} ({task.kind}) for {world.name(state)}")
        return task

    def lose_answer(self, request: httpx.Request) -> None:
        """The task exists; its answer never reaches us."""
        if self.world.chance(self.world.lost_answer):
            raise httpx.ReadTimeout("the answer was lost", request=request)

    def unreachable(self, request: httpx.Request) -> None:
        """The request never arrives."""
        if self.world.chance(self.world.busy / 4):
            raise httpx.ConnectTimeout("no connection", request=request)

    def download(self, url: str, *, allowed_hosts: Any, **kwargs: Any) -> bytes:
        """downloads.download: the host must be one the adapter vouched for; an expired
        link answers 404 (which the real downloader reports as transient)."""
        downloads.check_url(url, allowed_hosts)
        stem = urlsplit(url).path.rsplit("/", 1)[-1].split(".")[0]
        task = self.world.tasks.get(stem)
        if task is not None and self.world.now >= task.expires_at:
            raise downloads.ImageFetchError("The image is gone (HTTP 404).", permanent=False)
        if self.world.chance(self.world.expire):
            raise downloads.ImageFetchError("The image is gone (HTTP 404).", permanent=False)
        return PICTURE


# --- CometAPI: midjourney-proxy behind a new-api gateway ------------------------------------

_COMETAPI_STATUS = {
    "modal": "MODAL",
    "waiting": "SUBMITTED",
    "running": "IN_PROGRESS",
    "succeeded": "SUCCESS",
    "failed": "FAILURE",
}
# customId kinds (section 1.8): what they make, and whether Remix parks them in MODAL.
_REMIXABLE = ("reroll", "variation", "pan_left", "pan_right", "pan_up", "pan_down")


def cometapi_buttons(task: Task) -> list[dict[str, Any]]:
    """The buttons Midjourney offers on a finished task (section 1.8)."""
    h = task.hash
    if task.grid:
        ids = [f"MJ::JOB::upsample::{i}::{h}" for i in range(1, 5)]
        ids += [f"MJ::JOB::reroll::0::{h}::SOLO"]
        ids += [f"MJ::JOB::variation::{i}::{h}" for i in range(1, 5)]
        labels = [f"U{i}" for i in range(1, 5)] + [""] + [f"V{i}" for i in range(1, 5)]
    else:
        ids = [
            f"MJ::JOB::upsample_v6_2x_subtle::1::{h}::SOLO",
            f"MJ::JOB::upsample_v6_2x_creative::1::{h}::SOLO",
            f"MJ::JOB::low_variation::1::{h}::SOLO",
            f"MJ::JOB::high_variation::1::{h}::SOLO",
            f"MJ::Outpaint::50::1::{h}::SOLO",
            f"MJ::JOB::pan_left::1::{h}::SOLO",
            f"MJ::Inpaint::1::{h}::SOLO",  # Vary (Region): not offered by the product
        ]
        labels = [""] * len(ids)
    return [
        {"customId": cid, "emoji": "", "label": label, "type": 2, "style": 2}
        for cid, label in zip(ids, labels, strict=True)
    ]


class CometAPIFake(Fake):
    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {COMETAPI_KEY}":
            self.violation(f"CometAPI call without our key: {request.url.path}")
        path = request.url.path
        self.unreachable(request)
        if path.endswith("/mj/submit/imagine"):
            return self.imagine(request, json.loads(request.content))
        if path.endswith("/mj/submit/action"):
            return self.action(request, json.loads(request.content))
        if path.endswith("/mj/submit/modal"):
            return self.modal(request, json.loads(request.content))
        if path == "/mj/task/list-by-condition":
            return self.list_by_condition(request)
        if path.startswith("/mj/task/") and path.endswith("/fetch"):
            return self.fetch(request, path.split("/")[-2])
        self.violation(f"CometAPI has no {request.method} {path}")
        return json_answer({"error": {"message": "not found"}}, 404)

    # --- submits --------------------------------------------------------------------------

    def busy(self) -> httpx.Response | None:
        world = self.world
        if not world.chance(world.busy):
            return None
        return world.rng.choice(
            (
                json_answer({"error": {"message": "rate limited", "type": "comet_api_error"}}, 429),
                json_answer({"code": 23, "description": "队列已满，请稍后尝试", "result": None}),
                json_answer({"code": 9, "description": "提交失败，队列已满，请稍后重试"}),
                httpx.Response(503, text="upstream error"),
            )
        )

    def accepted(self, task: Task, code: int, properties: dict[str, Any]) -> httpx.Response:
        world = self.world
        words = {1: "提交成功", 21: "Waiting for window confirm", 22: "排队中，前面还有1个任务"}
        if code == 22:
            properties = {**properties, "numberOfQueues": 1}
        # Ids are 16-digit numbers; some gateways send them as JSON numbers.
        result: str | int = int(task.id) if world.chance(0.3) else task.id
        if world.chance(world.hostile / 10):
            result = "9" * 80  # longer than any id column
        body = {"code": code, "description": words[code], "result": result}
        return json_answer({**body, "properties": properties})

    def imagine(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        world = self.world
        if refused := self.busy():
            return refused
        if world.chance(0.05):  # a banned word: refused, nothing made
            return json_answer(
                {"code": 24, "description": "可能包含敏感词", "properties": {"bannedWord": "x"}}
            )
        task = self.make(
            str(1773314942177000 + len(world.tasks)),
            str(body.get("state") or ""),
            prompt=str(body.get("prompt") or ""),
            hook=str(body.get("notifyHook") or ""),
        )
        self.lose_answer(request)
        return self.accepted(task, 22 if world.chance(0.3) else 1, {})

    def action(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        world = self.world
        parent = world.tasks.get(str(body.get("taskId")))
        custom = str(body.get("customId") or "")
        if parent is None:
            self.violation(f"a press on {body.get('taskId')!r}, which we never made")
            return json_answer({"code": 3, "description": "关联任务不存在或已失效"})
        parts = [part for part in custom.split("::") if part != "SOLO"]
        if len(parts) < 4 or parts[-1] != parent.hash:
            self.violation(f"a press with {custom!r}, not a button of {parent.id}")
            return json_answer({"code": 4, "description": "customId 无效"})
        if parent.phase(world.now)[0] != "succeeded":
            return json_answer({"code": 4, "description": "关联任务状态错误"})
        if refused := self.busy():
            return refused
        kind = parts[2] if parts[1] == "JOB" else parts[1]
        asks = kind in _REMIXABLE and (bool(body.get("enableRemix")) or world.account_remix)
        task = self.make(
            str(1773314942177000 + len(world.tasks)),
            str(body.get("state") or ""),
            grid=not kind.startswith("upsample"),
            task_type=kind,
            prompt=parent.prompt,
            asks=asks,
            hook=str(body.get("notifyHook") or ""),
        )
        self.lose_answer(request)
        if asks:
            properties = {"finalPrompt": parent.prompt, "remix": True}
            # A new-api gateway rewrites 21 to 1: only the task's status says MODAL then.
            return self.accepted(task, 1 if world.rewrite_21 else 21, properties)
        return self.accepted(task, 22 if world.chance(0.3) else 1, {})

    def modal(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        world = self.world
        task = world.tasks.get(str(body.get("taskId")))
        prompt = str(body.get("prompt") or "")
        if task is None or not task.asks:
            self.violation(f"a modal answer for {body.get('taskId')!r}, which asks nothing")
            return json_answer({"code": 4, "description": "任务状态错误"})
        if task.answered_at is not None:  # it has its answer already: a repeat is refused
            world.note(f"provider refused a repeat answer for {task.id}")
            return json_answer({"code": 4, "description": "任务状态错误"})
        if refused := self.busy():
            return refused
        if prompt not in world.answers.get(task.state, ()):
            self.violation(f"modal answer {prompt!r} for {world.name(task.state)} was not typed")
        lag = world.rng.uniform(0, GATEWAY_LAG)
        task.answered_at = world.now
        if world.chance(world.new_modal_id):
            # A gateway hands out a new id; its copy of the original row stays MODAL.
            task.frozen = True
            follow = self.make(
                str(1773314942177000 + len(world.tasks)),
                task.state,
                kind="modal",
                grid=task.grid,
                task_type=task.task_type,
                prompt=prompt,
                hook=task.hook,
            )
            follow.made_at = world.now + lag
            follow.lag_until = world.now + lag if world.chance(0.5) else 0.0
        else:
            follow = task
            task.made_at = task.lag_until = world.now + lag
            task.takes = world.rng.uniform(5, 400)
        task.prompt = prompt
        world.note(f"provider took the answer for {task.id}, follow {follow.id} in {lag:.0f}s")
        self.lose_answer(request)
        return self.accepted(follow, 22 if world.chance(0.1) else 1, {})

    # --- reads ----------------------------------------------------------------------------

    def task_object(self, task: Task, *, stale: bool = False) -> dict[str, Any]:
        world = self.world
        phase, progress = task.phase(world.now)
        if stale and task.answered_at is not None and not task.frozen:
            phase, progress = "modal", 0  # fetch reads the gateway's first row (section 2.4)
        status = _COMETAPI_STATUS[phase]
        if phase == "waiting" and world.chance(0.3):
            status = world.rng.choice(("", "NOT_START"))  # the gateway before its refresh
        image = ""
        if phase == "running":
            image = f"{COMETAPI_IMAGES}{task.id}?rand={world.rng.randrange(10**6)}"
        elif phase == "succeeded":
            image = f"{COMETAPI_IMAGES}{task.id}"
        body: dict[str, Any] = {
            "id": int(task.id) if world.chance(0.3) else task.id,
            "action": "UPSCALE" if not task.grid else "IMAGINE",
            "customId": "",
            "prompt": task.prompt,
            "promptEn": task.prompt,
            "description": "提交成功",
            "state": task.state,
            "status": status,
            "progress": f"{100 if phase in ('succeeded', 'failed') else progress}%",
            "imageUrl": image,
            "failReason": "任务超时" if phase == "failed" else "",
            "buttons": cometapi_buttons(task) if phase == "succeeded" else [],
            "properties": {"finalPrompt": task.prompt, "finalZhPrompt": ""},
        }
        if world.chance(world.hostile):
            body["failReason"] += "\x00" * 3
            body["properties"]["finalPrompt"] += "\x00"
            if phase == "running":
                body["imageUrl"] = COMETAPI_IMAGES + "x" * 1200
            if phase == "succeeded":
                body["buttons"].append(
                    {"customId": "MJ::JOB::reroll::0::x::SOLO", "label": "x" * 9000}
                )
        return body

    def read_busy(self, request: httpx.Request) -> httpx.Response | None:
        world = self.world
        if not world.chance(world.busy):
            return None
        if world.chance(0.3):
            raise httpx.ReadTimeout("no answer in time", request=request)
        return world.rng.choice(
            (httpx.Response(503, text="upstream error"), json_answer({"error": "slow down"}, 429))
        )

    def list_by_condition(self, request: httpx.Request) -> httpx.Response:
        world = self.world
        if refused := self.read_busy(request):
            return refused
        ids = [str(i) for i in json.loads(request.content)["ids"]]
        found = [
            self.task_object(world.tasks[i])
            for i in ids
            if i in world.tasks and not world.chance(world.omit)
        ]
        return json_answer(found)

    def fetch(self, request: httpx.Request, task_id: str) -> httpx.Response:
        world = self.world
        if refused := self.read_busy(request):
            return refused
        task = world.tasks.get(task_id)
        if task is None:
            return world.rng.choice(
                (
                    json_answer({"description": "task_no_found ", "type": "upstream_error"}, 400),
                    httpx.Response(200, content=b""),
                    httpx.Response(204),
                )
            )
        return json_answer(self.task_object(task, stale=world.stale_fetch))

    # --- callbacks ------------------------------------------------------------------------

    def notify(self) -> None:
        """notifyHook: the full task object on every change of status or progress, no retry,
        sometimes twice (section 1.10)."""
        world = self.world
        for task in world.tasks.values():
            if not task.hook:
                continue
            phase, progress = task.phase(world.now)
            seen = f"{phase}:{progress // 25}"
            if seen == task.notified:
                continue
            task.notified = seen
            hook = Hook(urlsplit(task.hook).path, json.dumps(self.task_object(task)), {})
            world.hooks.extend([hook] * world.rng.choice((1, 1, 2)))


# --- PiAPI: the unified task API -------------------------------------------------------------

_PIAPI_WAITING = ("pending", "Pending", "PENDING", "staged", "Staged", "", "queued")
_PIAPI_STATUS = {"modal": "pending", "running": "processing", "succeeded": "completed"}
BANNED = (
    "failed to do request: [Banned prompt detected] Sorry! Our AI moderator thinks this prompt"
    " is probably against our community standards."
)
_PIAPI_FAILURES = (
    (BANNED, "Banned prompt detected"),
    ("提示词可能包含敏感词，请修改后重试", ""),
    ("Midjourney task failed: task timeout", ""),
)
_PIAPI_QUEUE_FULL = {"code": 500, "data": {}, "message": "too many tasks in queue, try later"}
_GRID_ACTIONS = [*(f"upscale{i}" for i in range(1, 5)), "reroll"]
_GRID_ACTIONS += [f"variation{i}" for i in range(1, 5)]
_SINGLE_ACTIONS = ["upscale_subtle", "upscale_creative", "low_variation", "high_variation"]
_SINGLE_ACTIONS += ["outpaint_2x", "outpaint_1.5x", "pan_left", "pan_up"]
# What an origin task of each shape may be pressed with (section 3.1, input per task_type).
_ON_GRID = {"upscale": ("1", "2", "3", "4"), "variation": ("1", "2", "3", "4"), "reroll": ()}
_ON_SINGLE = {
    "upscale": ("subtle", "creative"),
    "variation": ("low_variation", "high_variation"),
    "outpaint": (),
    "pan": (),
}


class PiAPIFake(Fake):
    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-api-key") != PIAPI_KEY:
            self.violation(f"PiAPI call without our key: {request.url.path}")
            return json_answer({"code": 401, "message": "Invalid API key"}, 401)
        path = request.url.path
        self.unreachable(request)
        if request.method == "POST" and path == "/api/v1/task":
            return self.create(request, json.loads(request.content))
        if request.method == "GET" and path.startswith("/api/v1/task/"):
            return self.get(request, path.rsplit("/", 1)[-1])
        self.violation(f"PiAPI has no {request.method} {path}")
        return json_answer({"code": 404, "data": {}, "message": "not found"}, 404)

    def data(self, task: Task) -> dict[str, Any]:
        """A unified task object (GET data, create data, webhook data)."""
        world = self.world
        phase, progress = task.phase(world.now)
        status = _PIAPI_STATUS.get(phase, phase)
        if phase == "waiting":
            status = world.rng.choice(_PIAPI_WAITING)  # blank and unknown words happen too
        elif world.chance(0.2):
            status = status.capitalize()  # the docs' enum: Completed | Processing | ...
        output: dict[str, Any] = {
            "image_url": "",
            "image_urls": [],
            "temporary_image_urls": [],
            "discord_image_url": "",
            "progress": progress,
            "intermediate_image_urls": None,
            "actions": [],
        }
        error: dict[str, Any] = {"code": 0, "raw_message": "", "message": "", "detail": None}
        if phase == "running" and world.chance(0.5):
            output["intermediate_image_urls"] = [f"{PIAPI_IMAGES}intermediate/{task.id}.webp"]
        if phase == "succeeded":
            output["image_url"] = f"{PIAPI_IMAGES}{task.id}.png"
            # `actions` is plan-dependent: often there are none.
            if world.chance(0.5):
                output["actions"] = list(_GRID_ACTIONS if task.grid else _SINGLE_ACTIONS)
        if phase == "failed":
            message, raw = _PIAPI_FAILURES[int(task.hash[:2], 16) % len(_PIAPI_FAILURES)]
            error.update(code=10000, message=message, raw_message=raw)
        if world.chance(world.hostile):
            if phase == "failed":
                error["message"] += "\x00"
            output["progress"] = world.rng.choice(("46", 250, -3, None))
            if phase == "running":
                output["intermediate_image_urls"] = [PIAPI_IMAGES + "x" * 1200]
            if phase == "succeeded":
                output["actions"] = [*output["actions"], 7, None, "sparkle" * 400]
        return {
            "task_id": task.id,
            "model": "midjourney",
            "task_type": task.task_type,
            "status": status,
            "config": {"service_mode": "public", "webhook_config": {"endpoint": "", "secret": ""}},
            "input": {"prompt": task.prompt},
            "output": output,
            "meta": {"created_at": "2025-06-11T11:43:31.673594+08:00"},
            "detail": None,
            "logs": [],
            "error": error,
        }

    def create(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        world = self.world
        task_type = str(body.get("task_type") or "")
        fields = body.get("input") if isinstance(body.get("input"), dict) else {}
        if body.get("model") != "midjourney":
            self.violation(f"a PiAPI task for model {body.get('model')!r}")
        if world.chance(world.busy):
            return world.rng.choice(
                (
                    json_answer({"code": 429, "message": "rate limit exceeded"}, 429),
                    json_answer(_PIAPI_QUEUE_FULL),
                    httpx.Response(502, text="Bad Gateway"),
                )
            )
        grid, prompt = True, str(fields.get("prompt") or "")
        if task_type != "imagine":
            origin = world.tasks.get(str(fields.get("origin_task_id")))
            if origin is None:
                self.violation(f"a {task_type} of {fields.get('origin_task_id')!r}, never made")
                return json_answer({"code": 400, "data": {}, "message": "origin task not found"})
            allowed = (_ON_GRID if origin.grid else _ON_SINGLE).get(task_type)
            index = fields.get("index")
            if allowed is None or (allowed and str(index) not in allowed):
                self.violation(f"{task_type} {index!r} on {origin.id}, which does not offer it")
                return json_answer({"code": 400, "data": {}, "message": "invalid request"})
            if origin.phase(world.now)[0] != "succeeded":
                refusal = {"code": 400, "data": {}, "message": "origin task is not completed"}
                return json_answer(refusal, world.rng.choice((200, 400)))
            grid = task_type != "upscale"
            prompt = prompt or origin.prompt
        typed = world.answers.get(world.sending)
        if typed and prompt not in typed:
            self.violation(f"{world.name(world.sending)} was sent with {prompt!r}, not the remix")
        if world.chance(0.05):  # refused as it was made (unified_create_refused.json)
            task_id = str(uuid.UUID(int=world.rng.getrandbits(128), version=4))
            data = self.data(Task(task_id, "", world.now, takes=0, fails=True, hash="00"))
            data["error"]["message"] = "prompt check failed: banned word 'gore'"
            return json_answer({"code": 200, "data": data, "message": "success"})
        config = body.get("config") if isinstance(body.get("config"), dict) else {}
        hook = (
            config.get("webhook_config") if isinstance(config.get("webhook_config"), dict) else {}
        )
        task = self.make(
            str(uuid.UUID(int=world.rng.getrandbits(128), version=4)),
            world.sending,
            grid=grid,
            task_type=task_type,
            prompt=prompt,
            hook=str(hook.get("endpoint") or ""),
            secret=str(hook.get("secret") or ""),
        )
        self.lose_answer(request)
        return json_answer({"code": 200, "data": self.data(task), "message": "success"})

    def get(self, request: httpx.Request, task_id: str) -> httpx.Response:
        world = self.world
        if world.chance(world.busy):
            if world.chance(0.3):
                raise httpx.ReadTimeout("no answer in time", request=request)
            if world.chance(0.5):
                return json_answer({"code": 429, "message": "too many requests"}, 429)
            return httpx.Response(503, text="Service Unavailable")
        task = world.tasks.get(task_id)
        if task is None or world.chance(world.omit):
            return world.rng.choice(
                (
                    json_answer({"code": 404, "data": {}, "message": "task not found"}, 404),
                    json_answer({"code": 404, "data": {}, "message": "task not found"}),
                    json_answer({"code": 200, "data": {}, "message": "success"}),
                )
            )
        return json_answer({"code": 200, "data": self.data(task), "message": "success"})

    def notify(self) -> None:
        """Webhooks when a task ends (some plans also while it runs), with the secret we
        gave, sometimes twice with one timestamp (a retry)."""
        world = self.world
        for task in world.tasks.values():
            if not task.hook:
                continue
            phase, _ = task.phase(world.now)
            if phase == task.notified or (phase == "running" and not world.progress_hooks):
                continue
            if phase in ("waiting", "modal"):
                continue
            task.notified = phase
            body = json.dumps({"timestamp": int(world.epoch + world.now), "data": self.data(task)})
            headers = {"x-webhook-secret": task.secret} if task.secret else {}
            hook = Hook(urlsplit(task.hook).path, body, headers)
            world.hooks.extend([hook] * world.rng.choice((1, 1, 2)))

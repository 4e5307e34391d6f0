"""In-memory task store and state machine of the provider simulator.

Status and progress are not pushed by a background thread: they are a pure function of
the injectable monotonic clock, read lazily whenever a task is fetched. That keeps tests
free of sleeps (advance a fake clock instead) and lets any number of server threads read
the same task consistently. Wall-clock stamps (submitTime, startTime, finishTime) are
derived from the wall time at submit plus the elapsed monotonic time, so the two agree.

Mutations (submit, modal confirmation, forced failure) happen under one lock; rendering
happens outside it (images.render and images.preview keep bounded caches of the bytes).

Fault injection (simulator.faults) reaches the engine through `shape_task`, which
may alter a new task before anyone can see it (hold it, slow it, fail it later), through
`fail` and `finish`, and through the `ttl` of `image`.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from simulator import images, uploads

Clock = Callable[[], float]

# Fractions of a task's duration (the gateway shows "" until its first refresh).
BLANK_UNTIL = 0.05
NOT_START_UNTIL = 0.08
SUBMITTED_UNTIL = 0.15

MODE_FACTORS = {"FAST": 1.0, "TURBO": 0.5, "RELAX": 3.0}
SUBMIT_OK = "提交成功"

# customId verb -> (gateway action, simulator op); the index or zoom level comes after.
_VERBS: dict[str, tuple[str, str]] = {
    "upsample": ("UPSCALE", "upscale"),
    "upsample_v6_2x_subtle": ("UPSCALE", "upscale_subtle"),
    "upsample_v6_2x_creative": ("UPSCALE", "upscale_creative"),
    "reroll": ("REROLL", "reroll"),
    "variation": ("VARIATION", "variation"),
    "low_variation": ("LOW_VARIATION", "vary_subtle"),
    "high_variation": ("HIGH_VARIATION", "vary_strong"),
    "pan_left": ("PAN", "pan"),
    "pan_right": ("PAN", "pan"),
    "pan_up": ("PAN", "pan"),
    "pan_down": ("PAN", "pan"),
}
_CUSTOM_ID = re.compile(
    r"^MJ::(?:JOB::(?P<verb>\w+)::(?P<index>\d)|Outpaint::(?P<zoom>50|75)::1"
    r"|(?P<inpaint>Inpaint)::1|(?P<custom>CustomZoom))::[0-9a-f-]{36}"
)
_ASPECT = re.compile(r"--(?:ar|aspect)\s+(\S+)", re.IGNORECASE)
_ZOOM = re.compile(r"--zoom\s+(\S+)", re.IGNORECASE)
MAX_ASPECT = 4.0  # the simulator draws shapes from 1:4 to 4:1
REFERENCE_ALPHA = 0.35  # image prompts show through as a faint copy
BLEND_ALPHA = 0.85  # a blend is mostly its inputs
BLEND_DIMENSIONS = {"PORTRAIT": 2 / 3, "SQUARE": 1.0, "LANDSCAPE": 3 / 2}
FAILED_AT = 0.1  # a task whose pictures could not be used fails this early
_VARIATION_STRENGTH = {"variation": 0.3, "vary_subtle": 0.12, "vary_strong": 0.45}
_REMIX_OPS = {"reroll", "variation", "pan"}  # the actions Midjourney's Remix mode intercepts


def parse_aspect(text: str) -> float:
    """W:H as a ratio; SubmitError (code 4) for anything else or a shape out of range."""
    w, sep, h = text.strip().partition(":")
    try:
        ratio = int(w) / int(h) if sep and int(w) > 0 and int(h) > 0 else 0.0
    except ValueError:
        ratio = 0.0
    if ratio <= 0:
        raise SubmitError(4, f"invalid aspect ratio {text!r}: write it as W:H, e.g. 3:2")
    if not 1 / MAX_ASPECT <= ratio <= MAX_ASPECT:
        raise SubmitError(4, f"aspect ratio {text} is out of range (1:4 to 4:1)")
    return ratio


def prompt_aspect(prompt: str) -> float:
    """The shape a prompt's --ar asks for (the last one wins, as in Midjourney); 1:1 without."""
    found = _ASPECT.findall(prompt)
    return parse_aspect(found[-1]) if found else 1.0


def prompt_zoom(prompt: str) -> float:
    """Custom Zoom's --zoom N, 1 <= N <= 2; SubmitError (code 4) otherwise."""
    found = _ZOOM.findall(prompt)
    try:
        zoom = float(found[-1]) if found else 0.0
    except ValueError:
        zoom = 0.0
    if not 1.0 <= zoom <= 2.0:
        raise SubmitError(4, "zoom must be between 1 and 2")
    return zoom


class SubmitError(Exception):
    """A refused submit: answered with HTTP 200 and this `code` (3 or 4) and description."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True)
class Recipe:
    """How a task's picture is made, so that a reroll can make it again with a new seed."""

    op: str
    source: images.Scene | None = None
    arg: float | int | str | None = None


@dataclass
class Task:
    id: str
    action: str  # the gateway's action: IMAGINE, REROLL, UPSCALE, VARIATION, ...
    prompt: str
    mode: str  # FAST / RELAX / TURBO
    duration: float  # seconds of clock time from submit to SUCCESS
    seed: int
    recipe: Recipe
    picture: images.Picture
    submitted_at: float  # engine clock
    submit_ms: int  # wall clock, epoch ms
    parent_id: str | None = None
    custom_id: str = ""
    bot_type: str = "MID_JOURNEY"
    state: str = ""
    notify_hook: str = ""  # stored for a later webhook sender
    origin: float = 0.0  # clock time the schedule counts from (moved by a modal confirm)
    awaiting_modal: bool = False
    forced_failure: str | None = None  # fault injection: failReason to report
    failed_at: float | None = None
    hold: float | None = None  # fault injection: the fraction of the run it never gets past
    image_ttl: float | None = None  # fault injection: seconds its image outlives the finish
    schedule: list[tuple[float, int]] = field(default_factory=list)  # (fraction, percent)
    described: list[str] = field(default_factory=list)  # DESCRIBE: its four prompts

    def wall_ms(self, at: float) -> int:
        return self.submit_ms + round((at - self.submitted_at) * 1000)

    @property
    def hash(self) -> str:
        """The job UUID inside this task's customIds: stable for a given seed."""
        digest = hashlib.sha256(f"mjsim-job:{self.seed}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass(frozen=True)
class Phase:
    status: str
    progress: int
    started_at: float | None  # clock time SUBMITTED began
    finished_at: float | None


def progress_schedule(seed: int) -> list[tuple[float, int]]:
    """Uneven progress steps like the real ones (0%, 8%, 23%, 46%, ...), held unevenly."""
    rng = random.Random(seed ^ 0x5EED)
    last = rng.randint(72, 96)  # the last preview before SUCCESS is nearly done
    percents = [0, *sorted(rng.sample(range(3, last), 4)), last]
    weights = [rng.uniform(0.6, 1.6) for _ in percents]
    total, acc, steps = sum(weights), 0.0, []
    for percent, weight in zip(percents, weights, strict=True):
        steps.append((acc / total, percent))
        acc += weight
    return steps


def phase(task: Task, now: float) -> Phase:
    if task.forced_failure is not None and task.failed_at is not None and now >= task.failed_at:
        started = task.origin + NOT_START_UNTIL * task.duration
        return Phase("FAILURE", 100, started if task.failed_at >= started else None, task.failed_at)
    if task.awaiting_modal:
        return Phase("MODAL", 0, None, None)
    f = (now - task.origin) / task.duration
    if task.hold is not None:
        f = min(f, task.hold)
    started = task.origin + NOT_START_UNTIL * task.duration
    if f >= 1.0:
        # SUCCESS once the picture exists too, as a provider reports it: a painter that
        # fell behind holds the task at its last step, as a slow render would.
        drawn = images.ready_at(task.picture)
        finished = task.origin + task.duration
        if drawn:
            finished = max(finished, task.submitted_at + (drawn * 1000 - task.submit_ms) / 1000)
        if drawn is not None and now >= finished:
            return Phase("SUCCESS", 100, started, finished)
        return Phase("IN_PROGRESS", max((p for _, p in task.schedule), default=99), started, None)
    if f < BLANK_UNTIL:
        return Phase("", 0, None, None)
    if f < NOT_START_UNTIL:
        return Phase("NOT_START", 0, None, None)
    if f < SUBMITTED_UNTIL:
        return Phase("SUBMITTED", 0, started, None)
    g = (f - SUBMITTED_UNTIL) / (1.0 - SUBMITTED_UNTIL)
    percent = max(p for at, p in task.schedule if at <= g)
    return Phase("IN_PROGRESS", percent, started, None)


def buttons(task: Task) -> list[dict[str, Any]]:
    h = task.hash

    def button(custom_id: str, label: str = "", emoji: str = "") -> dict[str, Any]:
        return {"customId": custom_id, "emoji": emoji, "label": label, "type": 2, "style": 2}

    if task.picture.kind == "upload":  # Describe's answer: imagine one of its prompts, again
        return [button(f"MJ::Job::PicReader::{i}", str(i)) for i in range(1, 5)] + [
            button("MJ::Picread::Retry", "", "🔄")
        ]
    if task.picture.kind == "grid":
        return (
            [button(f"MJ::JOB::upsample::{i}::{h}", f"U{i}") for i in range(1, 5)]
            + [button(f"MJ::JOB::reroll::0::{h}::SOLO", "", "🔄")]
            + [button(f"MJ::JOB::variation::{i}::{h}", f"V{i}") for i in range(1, 5)]
        )
    return [
        button(f"MJ::JOB::upsample_v6_2x_subtle::1::{h}::SOLO", "Upscale (Subtle)"),
        button(f"MJ::JOB::upsample_v6_2x_creative::1::{h}::SOLO", "Upscale (Creative)"),
        button(f"MJ::JOB::low_variation::1::{h}::SOLO", "Vary (Subtle)", "🪄"),
        button(f"MJ::JOB::high_variation::1::{h}::SOLO", "Vary (Strong)", "🪄"),
        button(f"MJ::Inpaint::1::{h}::SOLO", "Vary (Region)", "🖌️"),
        button(f"MJ::Outpaint::50::1::{h}::SOLO", "Zoom Out 2x", "🔍"),
        button(f"MJ::Outpaint::75::1::{h}::SOLO", "Zoom Out 1.5x", "🔍"),
        button(f"MJ::CustomZoom::{h}", "Custom Zoom", "🔍"),
        button(f"MJ::JOB::pan_left::1::{h}::SOLO", "", "⬅️"),
        button(f"MJ::JOB::pan_right::1::{h}::SOLO", "", "➡️"),
        button(f"MJ::JOB::pan_up::1::{h}::SOLO", "", "⬆️"),
        button(f"MJ::JOB::pan_down::1::{h}::SOLO", "", "⬇️"),
    ]


@dataclass(frozen=True)
class ImageResult:
    body: bytes
    content_type: str
    final: bool


class Engine:
    def __init__(
        self,
        duration: float = 6.0,
        clock: Clock | None = None,
        *,
        wall_clock: Clock = time.time,
        seed: int | None = None,
    ) -> None:
        self.duration = duration
        self.clock: Clock = clock or time.monotonic
        self.wall_clock = wall_clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        # one fake Discord account: real answers name the instance and channel used
        self.instance_id = f"{self._rng.getrandbits(64):016x}"
        # fault-injection seam: called with each new task, under the lock, before it is seen
        self.shape_task: Callable[[Task], None] | None = None

    # -- submits ---------------------------------------------------------------------

    def submit_properties(self) -> dict[str, str]:
        return {"discordInstanceId": self.instance_id, "discordChannelId": self.instance_id}

    def imagine(
        self,
        prompt: str,
        *,
        mode: str = "FAST",
        bot_type: str = "MID_JOURNEY",
        state: str = "",
        notify_hook: str = "",
        aspect: float | None = None,
        references: tuple[bytes, ...] = (),
        failure: str | None = None,
    ) -> Task:
        """A 2x2 grid for a prompt. `aspect` (else the prompt's --ar) shapes its tiles;
        `references` are image prompts (RGB PNGs, simulator.uploads) it takes from;
        `failure`, when the user's pictures could not be used, the failReason it ends with."""
        if not prompt.strip():
            raise SubmitError(4, "prompt不能为空")
        shape = aspect if aspect is not None else prompt_aspect(prompt)
        template = images.Scene(prompt, 0, camera=images.Camera(aspect=shape))
        template = images.with_references(template, references, REFERENCE_ALPHA)
        with self._lock:
            seed = self._rng.getrandbits(31)
            return self._add(
                action="IMAGINE",
                prompt=prompt,
                mode=mode,
                seed=seed,
                recipe=Recipe("imagine", template),
                bot_type=bot_type,
                state=state,
                notify_hook=notify_hook,
                failure=failure,
            )

    def blend(
        self,
        pictures: tuple[bytes, ...],
        *,
        aspect: float = 1.0,
        mode: str = "FAST",
        bot_type: str = "MID_JOURNEY",
        state: str = "",
        notify_hook: str = "",
        failure: str | None = None,
    ) -> Task:
        """A 2x2 grid mixing 2-5 pictures (RGB PNGs), each tile in other shares."""
        if failure is None and not 2 <= len(pictures) <= 5:
            raise SubmitError(4, f"blend takes 2 to 5 images, not {len(pictures)}")
        template = images.Scene("", 0, camera=images.Camera(aspect=aspect))
        template = images.with_references(template, pictures, BLEND_ALPHA)
        with self._lock:
            seed = self._rng.getrandbits(31)
            return self._add(
                action="BLEND",
                prompt="",
                mode=mode,
                seed=seed,
                recipe=Recipe("blend", template),
                bot_type=bot_type,
                state=state,
                notify_hook=notify_hook,
                failure=failure,
            )

    def describe(
        self,
        picture: bytes,
        size: tuple[int, int],
        *,
        mode: str = "FAST",
        bot_type: str = "MID_JOURNEY",
        state: str = "",
        notify_hook: str = "",
        failure: str | None = None,
    ) -> Task:
        """Four prompts for a picture (an RGB PNG of the original `size`), from its shape,
        colours and brightness; the task's image is the picture itself."""
        with self._lock:
            seed = self._rng.getrandbits(31)
            task = self._add(
                action="DESCRIBE",
                prompt="",
                mode=mode,
                seed=seed,
                recipe=Recipe("upload"),
                bot_type=bot_type,
                state=state,
                notify_hook=notify_hook,
                failure=failure,
                picture=images.upload(picture),
            )
            if failure is None:
                task.described = uploads.describe(picture, size, seed)
            return task

    def action(
        self,
        task_id: str,
        custom_id: str,
        *,
        mode: str = "FAST",
        state: str = "",
        notify_hook: str = "",
        enable_remix: bool = False,
        prompt: str | None = None,
    ) -> Task:
        """Press a button of a finished task. `prompt` edits the prompt with the press itself
        (PiAPI's reroll/variation), with no modal round trip; None keeps the parent's."""
        with self._lock:
            parent = self._tasks.get(task_id)
            if parent is None:
                raise SubmitError(3, "关联任务不存在或已失效")
            if phase(parent, self.clock()).status != "SUCCESS":
                raise SubmitError(4, "关联任务状态错误")
            match = _CUSTOM_ID.match(custom_id)
            pressable = {b["customId"] for b in buttons(parent)}
            if custom_id not in pressable or match is None:
                raise SubmitError(4, f"unknown_action:{custom_id}")
            seed = self._rng.getrandbits(31)
            region = bool(match["inpaint"] or match["custom"])  # these always ask first
            if match["inpaint"]:
                action, op = "INPAINT", "inpaint"
                recipe = Recipe(op, parent.picture.scenes[0])
            elif match["custom"]:
                action, op = "CUSTOM_ZOOM", "zoom"
                recipe = Recipe(op, parent.picture.scenes[0], None)
            elif match["zoom"]:
                action, op = "ZOOM", "zoom"
                recipe = Recipe(
                    op, parent.picture.scenes[0], 2.0 if match["zoom"] == "50" else 4 / 3
                )
            else:
                verb, index = match["verb"], int(match["index"])
                action, op = _VERBS[verb]
                tile = parent.picture.scenes[max(0, index - 1) % len(parent.picture.scenes)]
                if op == "reroll":
                    recipe = parent.recipe  # the same job again, on a new seed
                elif op in _VARIATION_STRENGTH:
                    recipe = Recipe("variation", tile, _VARIATION_STRENGTH[op])
                elif op == "pan":
                    recipe = Recipe("pan", tile, verb.removeprefix("pan_"))
                else:
                    recipe = Recipe(op, tile)
            remix = region or (enable_remix and op in _REMIX_OPS)
            new_prompt = parent.prompt
            if prompt and prompt.strip() and prompt != parent.prompt:
                new_prompt = prompt
                if recipe.source is not None:  # the tile is redrawn under the new prompt
                    recipe = replace(recipe, source=replace(recipe.source, prompt=prompt))
            return self._add(
                action=action,
                prompt=new_prompt,
                mode=mode,
                seed=seed,
                recipe=recipe,
                parent=parent,
                custom_id=custom_id,
                state=state,
                notify_hook=notify_hook,
                awaiting_modal=remix,
            )

    def modal(self, task_id: str, prompt: str | None = None, mask: bytes | None = None) -> Task:
        """Confirm a task waiting in MODAL: Remix with an optional new prompt, Vary (Region)
        with its `mask` (an image's bytes; white repaints, any size) and Custom Zoom with a
        prompt carrying --zoom N."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise SubmitError(3, "关联任务不存在或已失效")
            if not task.awaiting_modal:
                raise SubmitError(4, "关联任务状态错误")
            parent = self._tasks.get(task.parent_id or "")
        recipe = task.recipe
        new_prompt = prompt if prompt and prompt.strip() else task.prompt
        source = recipe.source
        if source is not None and new_prompt != task.prompt:
            source = replace(source, prompt=new_prompt)
        if task.action == "CUSTOM_ZOOM":
            recipe = Recipe("zoom", source, prompt_zoom(new_prompt))
        elif task.action == "INPAINT":
            if parent is None or source is None:  # pragma: no cover - presses need a parent
                raise SubmitError(3, "关联任务不存在或已失效")
            if mask is None:
                raise SubmitError(4, "maskBase64 is required for Vary (Region)")
            try:
                region = uploads.mask(mask, images.picture_size(parent.picture))
            except uploads.BadImage as bad:
                raise SubmitError(4, str(bad)) from None
            recipe = Recipe("inpaint", images.with_region(source, parent.picture, region))
        elif source is not None:
            recipe = replace(recipe, source=source)
        picture = images.picture_for(recipe.op, new_prompt, task.seed, recipe.source, recipe.arg)
        with self._lock:
            if not task.awaiting_modal:  # confirmed meanwhile by another request
                raise SubmitError(4, "关联任务状态错误")
            task.prompt, task.recipe, task.picture = new_prompt, recipe, picture
            now = self.clock()
            task.awaiting_modal = False
            # the confirmed task goes straight to SUBMITTED: its schedule starts there
            task.origin = now - (NOT_START_UNTIL + 1e-9) * task.duration  # epsilon: past the edge
        images.render_ahead(picture)
        return task

    def fail(self, task_id: str, reason: str, at: float | None = None) -> None:
        """Fault injection: the task reports FAILURE with `reason` from clock time `at`."""
        with self._lock:
            task = self._tasks[task_id]
            task.forced_failure = reason
            task.failed_at = self.clock() if at is None else at

    def finish(self, task_id: str) -> Task:
        """Fault injection: the task reports SUCCESS from now on, whatever held or failed it
        (the proxy that lost a job finds its message again: a late success)."""
        with self._lock:
            task = self._tasks[task_id]
            task.forced_failure = task.failed_at = task.hold = None
            task.awaiting_modal = False
            task.origin = self.clock() - task.duration
            return task

    def unfinished(self) -> int:
        """Tasks holding a slot of the account: neither ended nor parked in MODAL."""
        with self._lock:
            now = self.clock()
            return sum(
                phase(task, now).status not in ("SUCCESS", "FAILURE", "MODAL")
                for task in self._tasks.values()
            )

    def _add(
        self,
        *,
        action: str,
        prompt: str,
        mode: str,
        seed: int,
        recipe: Recipe,
        parent: Task | None = None,
        custom_id: str = "",
        bot_type: str = "MID_JOURNEY",
        state: str = "",
        notify_hook: str = "",
        awaiting_modal: bool = False,
        failure: str | None = None,
        picture: images.Picture | None = None,
    ) -> Task:
        now = self.clock()
        wall_ms = int(self.wall_clock() * 1000)
        attempt = 0
        while True:  # ids are never reused, even for many submits within one millisecond
            task_id = f"{wall_ms + attempt // 50}{self._rng.randrange(1000):03d}"
            if task_id not in self._tasks:
                break
            attempt += 1
        if picture is None:
            picture = images.picture_for(recipe.op, prompt, seed, recipe.source, recipe.arg)
        if not awaiting_modal and failure is None:  # a modal may still change the picture
            images.render_ahead(picture)
        task = Task(
            id=task_id,
            action=action,
            prompt=prompt,
            mode=mode,
            duration=self.duration * MODE_FACTORS.get(mode, 1.0),
            seed=seed,
            recipe=recipe,
            picture=picture,
            submitted_at=now,
            submit_ms=wall_ms,
            parent_id=parent.id if parent else None,
            custom_id=custom_id,
            bot_type=bot_type,
            state=state,
            notify_hook=notify_hook,
            origin=now,
            awaiting_modal=awaiting_modal,
            schedule=progress_schedule(seed),
        )
        if self.shape_task is not None:
            self.shape_task(task)
        if failure is not None:  # the user's pictures could not be used
            task.forced_failure = failure
            task.failed_at = task.origin + FAILED_AT * task.duration
        self._tasks[task_id] = task
        return task

    # -- reads -----------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def tasks(self) -> list[Task]:
        with self._lock:
            return list(self._tasks.values())

    def view(self, task_id: str, base_url: str) -> dict[str, Any] | None:
        """The task as the gateway's fetch returns it, at the current clock time."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            p = phase(task, self.clock())
            image_url = ""
            if p.status == "IN_PROGRESS":
                rand = int(hashlib.sha1(f"{task.id}:{p.progress}".encode()).hexdigest(), 16)
                image_url = f"{base_url}/mj/image/{task.id}?rand={rand % 100}"
            elif p.status == "SUCCESS":
                image_url = f"{base_url}/mj/image/{task.id}"
            # Describe's four prompts, once it has them
            text = uploads.describe_text(task.described) if task.described else task.prompt
            final = text if p.status == "SUCCESS" or not task.described else task.prompt
            return {
                "id": task.id,
                "action": task.action,
                "customId": "",  # the gateway does not pass these two through
                "botType": "",
                "prompt": task.prompt,
                "promptEn": final,
                "description": SUBMIT_OK,
                "state": task.state,
                "submitTime": task.submit_ms,
                "startTime": task.wall_ms(p.started_at) if p.started_at is not None else None,
                "finishTime": task.wall_ms(p.finished_at) if p.finished_at is not None else None,
                "imageUrl": image_url,
                "status": p.status,
                "progress": f"{p.progress}%",
                "failReason": (task.forced_failure or "") if p.status == "FAILURE" else "",
                "buttons": buttons(task) if p.status == "SUCCESS" else [],
                "maskBase64": "",
                "properties": {"finalPrompt": final, "finalZhPrompt": ""},
            }

    def image(self, task_id: str, ttl: float | None = None) -> ImageResult | None:
        """The final picture once SUCCESS, a blurry preview while IN_PROGRESS, else None.

        `ttl` (and the task's own): seconds after the finish the picture stays reachable,
        like a signed CDN link that expires; None keeps it forever.
        """
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            now = self.clock()
            p = phase(task, now)
            picture = task.picture
            if picture.kind == "upload" and not picture.image:  # its link never worked
                return None
            ttls = [t for t in (ttl, task.image_ttl) if t is not None]
            if ttls and p.finished_at is not None and now >= p.finished_at + min(ttls):
                return None
        # rendering runs outside the lock; images caches the bytes per picture
        if p.status == "SUCCESS":
            return ImageResult(images.render(picture), "image/png", True)
        if p.status == "IN_PROGRESS":
            body = images.preview(picture, p.progress)
            return ImageResult(body, images.PREVIEW_CONTENT_TYPE, False)
        return None

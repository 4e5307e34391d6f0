"""A deterministic, seeded simulation of a job's whole life, after FoundationDB's simulation
testing and TigerBeetle's VOPR.

One seed decides everything: a fake midjourney-proxy (CometAPI's protocol, through
httpx.MockTransport) with blank statuses, numeric ids, codes 22-24, 429/5xx, answers lost
after the task was made, ids left out of list-by-condition, hostile fields, expiring images
and webhooks duplicated, reordered or lost; a fake clock; a task queue that delivers late,
twice, out of order or never; and workers killed between any two writes of dispatch,
report handling and ingest. There are no sleeps and no network.

After a run, `check` holds the product to its promises: every job ended within its bound;
at most one provider task per job, or the extra one recorded; every account's balance is
the sum of its entries and its held credits the open holds; a user is charged if and only
if a result was delivered.

`python -m pytest tests/gallery/test_simulation.py` runs the CI's seeds; `make soak
SEEDS=10000` runs more and prints the worst case. A failing seed prints the line that
reruns it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import CreditAccount, LedgerEntry
from gallery import (
    dispatch,
    downloads,
    fitting,
    ingest,
    queue,
    services,
    sweep,
    sync,
    tasks,
    upstream,
    webhooks,
)
from gallery.models import Job, SuspectedDuplicate
from gallery.providers.cometapi import CometAPI
from tests.gallery.factories import png_bytes

PICTURE = png_bytes((64, 64))


class Crash(BaseException):
    """The worker running the task dies here (nothing of ours catches a BaseException)."""


@dataclass
class Task:
    id: str
    state: str
    made_at: float
    takes: float
    fails: bool
    status: str = "SUBMITTED"


@dataclass
class World:
    """Everything one seed decides, and what happened."""

    seed: int
    rng: random.Random
    now: float = 0.0
    tasks: dict[str, Task] = field(default_factory=dict)
    queued: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    # Fault rates, chosen per seed.
    busy: float = 0.0
    lost_answer: float = 0.0
    omit: float = 0.0
    hostile: float = 0.0
    crash: float = 0.0
    drop: float = 0.0
    twice: float = 0.0
    expire: float = 0.0

    def chance(self, rate: float) -> bool:
        return self.rng.random() < rate


def world_for(seed: int) -> World:
    rng = random.Random(seed)
    world = World(seed=seed, rng=rng)
    for name in ("busy", "lost_answer", "omit", "hostile", "crash", "drop", "twice", "expire"):
        setattr(world, name, rng.choice((0.0, 0.0, 0.1, 0.3)))
    return world


# --- the fake provider --------------------------------------------------------------------


def task_object(world: World, task: Task) -> dict[str, Any]:
    age = world.now - task.made_at
    if task.status not in ("SUCCESS", "FAILURE"):
        if age >= task.takes:
            task.status = "FAILURE" if task.fails else "SUCCESS"
        elif age >= 2:
            task.status = "IN_PROGRESS"
    progress = min(99, int(100 * age / task.takes)) if task.status == "IN_PROGRESS" else 0
    body: dict[str, Any] = {
        "id": int(task.id) if world.rng.random() < 0.3 else task.id,  # numeric ids happen
        "status": "" if task.status == "SUBMITTED" and world.chance(0.3) else task.status,
        "progress": f"{100 if task.status == 'SUCCESS' else progress}%",
        "state": task.state,
        "imageUrl": f"https://cdn.example.com/{task.id}.png" if task.status != "SUBMITTED" else "",
        "failReason": "任务超时" if task.status == "FAILURE" else "",
        "buttons": [{"customId": f"MJ::JOB::upsample::1::{task.id}", "label": "U1"}],
        "properties": {"finalPrompt": "a fox"},
    }
    if world.chance(world.hostile):
        body["failReason"] += "\x00" * 3
        if task.status == "IN_PROGRESS":
            body["imageUrl"] = "https://cdn.example.com/" + "x" * 1200
    return body


def provider(world: World) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/mj/submit/imagine"):
            if world.chance(world.busy):
                if world.rng.random() < 0.5:
                    return httpx.Response(429, json={"error": {"message": "slow down"}})
                return httpx.Response(200, json={"code": 23, "description": "队列已满"})
            state = json.loads(request.content)["state"]
            if world.chance(0.05):  # a banned word: refused, nothing made
                body = {
                    "code": 24,
                    "description": "可能包含敏感词",
                    "properties": {"bannedWord": "x"},
                }
                return httpx.Response(200, json=body)
            task = Task(
                id=str(1773314942177000 + len(world.tasks)),
                state=state,
                made_at=world.now,
                takes=world.rng.uniform(5, 400),
                fails=world.chance(0.1),
            )
            world.tasks[task.id] = task
            world.log.append(f"{world.now:.0f}s provider made {task.id} for {state[:8]}")
            if world.chance(0.5):
                world.hooks.append(task_object(world, task))
            if world.chance(world.lost_answer):
                raise httpx.ReadTimeout("the answer was lost", request=request)
            # code 22: accepted into the provider's own queue, as good as 1 for us
            code, text = (22, "排队中") if world.chance(0.3) else (1, "提交成功")
            return httpx.Response(200, json={"code": code, "description": text, "result": task.id})
        if path.endswith("/mj/task/list-by-condition"):
            if world.chance(world.busy):
                return httpx.Response(503, text="upstream error")
            ids = json.loads(request.content)["ids"]
            found = [
                task_object(world, world.tasks[i])
                for i in ids
                if i in world.tasks and not world.chance(world.omit)
            ]
            for item in found:
                if item["status"] in ("SUCCESS", "FAILURE") and world.chance(0.5):
                    world.hooks.extend([item] * world.rng.choice((1, 2)))
            return httpx.Response(200, json=found)
        if path.endswith("/fetch"):
            task = world.tasks.get(path.split("/")[-2])
            if task is None:
                return httpx.Response(404, json={"error": "not_found"})
            return httpx.Response(200, json=task_object(world, task))
        return httpx.Response(404, json={"error": "not_found"})

    return answer


# --- the run ----------------------------------------------------------------------------------

CRASH_POINTS = {
    "dispatch": ("_submit", dispatch),
    "report": ("record_result", sync),
    "ingest": ("store_picture", ingest),
    "fit": ("submission", fitting),
}


@contextmanager
def simulated(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    start = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: start + timedelta(seconds=world.now))
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    # A poll task runs one tick here: the fake clock moves between deliveries, not in them.
    monkeypatch.setattr(settings, "MJ_POLL_TICKS_PER_LINK", 1)
    monkeypatch.setattr(
        queue, "async_task", lambda func, *args, **kw: world.queued.append((func, args))
    )

    def get_provider(name: str | None = None, **kwargs: Any) -> CometAPI:
        return CometAPI(
            name=name or "simulator",
            base_url="https://api.cometapi.com",
            api_key="k",
            mode_prefixes=settings.COMETAPI_MODE_PREFIXES,
            transport=httpx.MockTransport(provider(world)),
            recorder=kwargs.get("recorder"),
        )

    monkeypatch.setattr(upstream, "get_provider", get_provider)

    def download(url: str, **kwargs: Any) -> bytes:
        if world.chance(world.expire):
            raise downloads.ImageFetchError("The image is gone (HTTP 404).", permanent=False)
        return PICTURE

    monkeypatch.setattr(downloads, "download", download)
    for point, (name, module) in CRASH_POINTS.items():
        real = getattr(module, name)

        def crashing(*args: Any, _real: Any = real, _point: str = point, **kw: Any) -> Any:
            if world.chance(world.crash / 2):
                world.log.append(f"{world.now:.0f}s crash before {_point}")
                raise Crash
            result = _real(*args, **kw)
            if world.chance(world.crash / 2):
                world.log.append(f"{world.now:.0f}s crash after {_point}")
                raise Crash
            return result

        monkeypatch.setattr(module, name, crashing)
    yield


def run_queue(world: World, limit: int) -> None:
    """Deliver up to `limit` queued tasks: in any order, some twice, some never."""
    for _ in range(min(limit, len(world.queued))):
        func, args = world.queued.pop(world.rng.randrange(len(world.queued)))
        if world.chance(world.drop):
            world.log.append(f"{world.now:.0f}s lost {func}{args}")
            continue
        if world.chance(world.twice):
            world.queued.append((func, args))
        with suppress(Crash):
            getattr(tasks, func.rsplit(".", 1)[1])(*args)


def deliver_hooks(world: World, client: Client) -> None:
    url = reverse("gallery:hook_cometapi", args=[webhooks.path_token()])
    world.rng.shuffle(world.hooks)
    for body in world.hooks:
        if not world.chance(0.2):  # some are lost
            with suppress(Crash):
                client.post(url, json.dumps(body), content_type="application/json")
    world.hooks.clear()


def simulate(world: World, owner: Any, monkeypatch: pytest.MonkeyPatch) -> list[Job]:
    client = Client()
    with simulated(world, monkeypatch):
        jobs = [
            services.submit(owner=owner, prompt=f"a fox, take {n}", mode="fast")
            for n in range(world.rng.randint(1, 4))
        ]
        last_sweep = 0.0
        # The busy part: faults, crashes, a lossy queue.
        for _ in range(60):
            world.now += world.rng.choice((0.5, 2, 10, 30))
            run_queue(world, world.rng.randint(0, 6))
            if world.chance(0.5):
                deliver_hooks(world, client)
            if world.now - last_sweep >= 60:
                last_sweep = world.now
                with suppress(Crash):
                    sweep.run()
        # Then the faults stop and time runs on past every bound: everything must end.
        world.crash = world.drop = world.twice = world.busy = world.lost_answer = world.omit = 0.0
        for _ in range(100):
            world.now += 60
            sweep.run()
            sync.tick("simulator")
            run_queue(world, 50)
            if not Job.objects.in_flight().exists():
                break
    return [Job.objects.get(pk=job.pk) for job in jobs]


# --- the promises -----------------------------------------------------------------------------


def check(world: World, jobs: list[Job]) -> list[str]:
    """What the run broke (empty: nothing)."""
    broken = []
    for job in jobs:
        made = [t for t in world.tasks.values() if t.state == str(job.code)]
        suspects = SuspectedDuplicate.objects.filter(job=job).count()
        if job.is_in_flight:
            broken.append(f"{job.code} never ended: {job.status} ({job.stage})")
        if len(made) > 1 and suspects < len(made) - 1:
            broken.append(f"{job.code} has {len(made)} provider tasks, {suspects} recorded")
        captured = LedgerEntry.objects.filter(job=job, kind="capture").first()
        delivered = job.status == Job.Status.SUCCEEDED and job.images.exists()
        charged = captured is not None and captured.amount > 0
        if charged and not delivered:
            broken.append(f"{job.code} charged {captured.amount} without a result ({job.status})")
        if delivered and captured is None:
            broken.append(f"{job.code} delivered without a charge decision")
        if job.status == Job.Status.FAILED and job.charge == Job.Charge.HELD:
            broken.append(f"{job.code} failed with its credits still held")
    for account in CreditAccount.objects.all():
        sums = account.entries.aggregate(b=Sum("balance_delta"), h=Sum("held_delta"))
        if (account.balance, account.held) != (sums["b"] or 0, sums["h"] or 0):
            broken.append(f"account {account.pk}: balance/held disagree with the entries")
        still = Job.objects.filter(owner=account.user, charge=Job.Charge.HELD)
        open_holds = sum(still.values_list("cost", flat=True))
        if account.held != open_holds:
            broken.append(f"account {account.pk}: held {account.held}, open holds {open_holds}")
    return broken

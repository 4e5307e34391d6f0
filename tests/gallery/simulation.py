"""A deterministic, seeded simulation of a job's whole life, after FoundationDB's simulation
testing and TigerBeetle's VOPR.

One seed decides everything (tests/gallery/simulation_world.py):

- The provider, faked at the HTTP layer (httpx.MockTransport; simulation_providers.py):
  CometAPI's midjourney-proxy protocol or PiAPI's unified task API, behind the product's
  real adapters and settings. Blank and odd statuses, numeric ids, codes 21-24 (and 3, 4,
  9), answers lost after the task was made, ids a batched read leaves out, not-found in
  every documented shape, 429/5xx/timeouts, hostile fields (NUL characters, URLs longer
  than our columns, junk buttons), images that expire, and webhooks duplicated, reordered,
  late, retried or lost, each with the URL and secret the product gave.
- Remix: some seeds start from a finished job and press its buttons (reroll, U, V and
  what later results offer), with Remix mode on or off. On CometAPI a remix press waits in
  MODAL (code 21, or code 1 from a gateway and a MODAL status); the user answers after a
  delay, sometimes twice, sometimes never (MJ_REMIX_EXPIRY must then cancel it), or cancels
  it; the modal answer keeps its id or hands out a new one, and the gateway goes on saying
  MODAL for up to 15 s after it; a repeat answer is refused with code 4. On PiAPI the
  question is asked before the press, which then carries the prompt.
- A fake clock (timezone.now, model field defaults, the webhook timestamp check), no
  sleeps, no network.
- A task queue that delivers late, twice, out of order or never. As with django_q's ORM
  broker, whose rows join the caller's transaction, a task queued by a transaction that
  rolls back was never queued.
- Workers killed (`Crash`) between any two writes: before and after each submit, its
  fitting, each report recorded and picture stored, every status change
  (`Job.transition`), every other write of a job (`Job.update_if_status`, plain updates),
  every credit move (gallery.lifecycle), every suspected duplicate recorded, and every
  enqueue (after it: the task was queued, the caller died). A crash inside
  `transaction.atomic` rolls it back, as a dead process's would.

After a run, `check` holds the product to its promises: every job ended; at most one
provider task per job, or the extra ones recorded as suspected duplicates; every account's
balance is the sum of its entries and its held credits the open holds; a user is charged if
and only if a result was delivered; nothing that ended holds credits; a cancel the product
confirmed stands; a remix question nobody answers is cancelled at its expiry, not before;
and the product spoke the provider's protocol as documented. `findings` lists what went
wrong without breaking a promise (a result the provider made that was never delivered, a
remix answer taken and never sent); SIM_STRICT=1 fails on those too.

`python -m pytest tests/gallery/test_simulation.py` runs the CI's seeds; `make soak
SEEDS=10000` runs more and prints the worst case. A failing seed prints the line that
reruns it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.test import Client, override_settings
from django.utils import timezone

from billing.models import CreditAccount, LedgerEntry
from gallery import (
    dispatch,
    downloads,
    fitting,
    hooks,
    ingest,
    lifecycle,
    queue,
    sweep,
    sync,
    tasks,
    upstream,
)
from gallery.models import Job, SuspectedDuplicate
from gallery.models.queries import JobQuerySet
from gallery.providers import Hooks, Provider
from gallery.providers.cometapi import CometAPI, parse_buttons
from gallery.providers.piapi import PiAPI, parse_actions
from tests.gallery.factories import make_finished_job
from tests.gallery.simulation_providers import (
    COMETAPI_KEY,
    PIAPI_KEY,
    CometAPIFake,
    Fake,
    PiAPIFake,
    Task,
    cometapi_buttons,
)
from tests.gallery.simulation_user import User
from tests.gallery.simulation_world import Crash, World, world_for

__all__ = [
    "Crash",
    "World",
    "check",
    "enqueue",
    "findings",
    "in_queue",
    "made_for",
    "simulate",
    "world_for",
]

# Where a worker may die: before and after each of these, with the share of the seed's
# crash rate given. The four steps of a job's life die at half the rate each side, as they
# always have; a run passes about four times as many of the writes between them, so those
# die at an eighth: a run dies somewhat more often than before, and now between any two
# writes.
STEP, WRITE = 1 / 2, 1 / 8
CRASH_POINTS: dict[str, tuple[Any, str, float]] = {
    "dispatch._submit": (dispatch, "_submit", STEP),
    "fitting.submission": (fitting, "submission", STEP),
    "sync.record_result": (sync, "record_result", STEP),
    "ingest.store_picture": (ingest, "store_picture", STEP),
    "Job.transition": (Job, "transition", WRITE),
    "Job.update_if_status": (Job, "update_if_status", WRITE),
    "a job's update": (JobQuerySet, "update", WRITE),
    "SuspectedDuplicate.save": (SuspectedDuplicate, "save", WRITE),
    **{
        f"lifecycle.{name}": (lifecycle, name, WRITE)
        for name in ("hold", "capture", "release", "fail", "succeed", "cancel")
    },
    **{
        f"queue.{name}": (queue, name, WRITE)
        for name in (
            "dispatch",
            "submit_modal",
            "refresh",
            "collect",
            "ingest",
            "purge_images",
            "poll",
        )
    },
}
IN_MEMORY = "django.core.files.storage.InMemoryStorage"
COMETAPI_URL, PIAPI_URL = "https://api.cometapi.com", "https://api.piapi.ai"


# --- the harness ------------------------------------------------------------------------------


def crashing(world: World, where: str, real: Any, share: float) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        world.maybe_crash(f"before {where}", share)
        result = real(*args, **kwargs)
        world.maybe_crash(f"after {where}", share)
        return result

    return wrapper


def fake_for(world: World) -> Fake:
    return PiAPIFake(world) if world.dialect == "piapi" else CometAPIFake(world)


@contextmanager
def simulated(world: World, fake: Fake, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    start, real_now = timezone.now(), timezone.now
    world.epoch = start.timestamp()

    def now() -> Any:
        return start + timedelta(seconds=world.now)

    monkeypatch.setattr(timezone, "now", now)
    for model in apps.get_models():  # default=timezone.now was bound at import
        for column in model._meta.concrete_fields:
            if column.default is real_now:
                monkeypatch.setattr(column, "_get_default", now)
    # PiAPI's deliveries are checked for age against the wall clock.
    monkeypatch.setattr(hooks, "time", SimpleNamespace(time=lambda: world.epoch + world.now))
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    # A poll task runs one tick here: the fake clock moves between deliveries, not in them.
    monkeypatch.setattr(settings, "MJ_POLL_TICKS_PER_LINK", 1)
    monkeypatch.setattr(queue, "async_task", enqueue(world))
    transport = httpx.MockTransport(fake)

    def get_provider(name: str | None = None, **kwargs: Any) -> Provider:
        """The adapter the product would build from its settings, over the fake."""
        seams = {"hooks": kwargs.get("hooks") or Hooks(), "recorder": kwargs.get("recorder")}
        if name == "piapi":
            api = PiAPI.from_settings(
                name=name, base_url=PIAPI_URL, api_key=PIAPI_KEY, transport=transport, **seams
            )
            assert isinstance(api, PiAPI)
            # One read at a time: the reads' order, and so the run, stays the seed's.
            api.reads_at_once = 1
            return api
        return CometAPI.from_settings(
            name=name or "cometapi",
            base_url=COMETAPI_URL,
            api_key=COMETAPI_KEY,
            transport=transport,
            **seams,
        )

    monkeypatch.setattr(upstream, "get_provider", get_provider)
    monkeypatch.setattr(downloads, "download", fake.download)
    for where, (owner, name, share) in CRASH_POINTS.items():
        monkeypatch.setattr(owner, name, crashing(world, where, getattr(owner, name), share))
    submit = dispatch._submit

    def sending(job: Job) -> Any:
        world.sending = str(job.code)
        try:
            return submit(job)
        finally:
            world.sending = ""

    monkeypatch.setattr(dispatch, "_submit", sending)
    with override_settings(
        # The pictures stay in memory: the filesystem is not what is under test.
        STORAGES={**settings.STORAGES, "default": {"BACKEND": IN_MEMORY}},
        MJ_PROVIDER=world.provider,
        PIAPI_API="unified",
        MJ_WEBHOOKS=world.hooks_on,
        MJ_REMIX_EXPIRY=world.remix_expiry,
    ):
        yield


@dataclass
class Queued:
    """A task in the queue. django_q's ORM broker writes it in the caller's transaction;
    here it is tied to that transaction by an on_commit mark, which a savepoint rolled back
    forgets, as the database forgets the row."""

    func: str
    args: tuple[Any, ...]
    mark: Callable[[], None] | None  # None: queued outside any transaction


def enqueue(world: World) -> Callable[..., None]:
    def async_task(func: str, *args: Any, **kwargs: Any) -> None:
        mark = None
        if transaction.get_connection().in_atomic_block:
            mark = lambda: None  # noqa: E731 - one object per task, compared by identity
            transaction.on_commit(mark)
        world.queued.append(Queued(func, args, mark))

    return async_task


def in_queue(world: World) -> list[Queued]:
    """The queued tasks whose transactions did not roll back."""
    kept = {id(func) for _, func, _ in transaction.get_connection().run_on_commit}
    world.queued = [task for task in world.queued if task.mark is None or id(task.mark) in kept]
    return world.queued


def run_queue(world: World, limit: int) -> None:
    """Deliver up to `limit` queued tasks: in any order, some twice, some never."""
    for _ in range(min(limit, len(in_queue(world)))):
        waiting = in_queue(world)
        if not waiting:
            return
        task = waiting.pop(world.rng.randrange(len(waiting)))
        name = task.func.rsplit(".", 1)[1]
        if world.chance(world.drop):
            subject = task.args[0] if name == "poll" else world.labels.get(task.args[0], "?")
            world.note(f"lost {name} of {subject}")
            continue
        if world.chance(world.twice):
            waiting.append(task)
        with suppress(Crash):
            getattr(tasks, name)(*task.args)


def deliver_hooks(world: World, client: Client) -> None:
    """The callbacks on their way, in any order; some lost, some held back for later;
    PiAPI tries a failed one again (up to 3 times), midjourney-proxy never does."""
    waiting, world.hooks = world.hooks, []
    world.rng.shuffle(waiting)
    for hook in waiting:
        if world.chance(0.2):
            continue
        if world.chance(0.1):
            world.hooks.append(hook)
            continue
        status = 0
        with suppress(Crash):
            response = client.post(
                hook.path, hook.body, content_type="application/json", headers=hook.headers
            )
            status = response.status_code
        if not 200 <= status < 300 and world.dialect == "piapi" and hook.retries < 3:
            world.hooks.append(replace(hook, retries=hook.retries + 1))


def make_parent(world: World, owner: Any) -> Job:
    """A finished job made the way tests make one, its task known to the provider."""
    task = Task(
        id=str(1773314940000000 + world.seed),
        state="",
        made_at=-1000.0,
        takes=1.0,
        fails=False,
        kind="parent",
        hash=f"{world.seed:08x}-0000-4000-8000-000000000000",
        prompt="a fox at dawn --v 6.1",
    )
    if world.dialect == "piapi":
        task.id = f"{world.seed:08x}-aaaa-4bbb-8ccc-dddddddddddd"
        buttons = [button.as_dict() for button in parse_actions([], "imagine")]
    else:
        buttons = [button.as_dict() for button in parse_buttons(cometapi_buttons(task))]
    world.tasks[task.id] = task
    job = make_finished_job(
        owner,
        provider=world.provider,
        provider_job_id=task.id,
        buttons=buttons,
        prompt=task.prompt,
        final_prompt=task.prompt,
    )
    world.names[str(job.code)], world.labels[job.pk] = "parent", "parent"
    return job


# --- the run ----------------------------------------------------------------------------------


def late_success_due(world: World) -> bool:
    """A job timed out whose task is still on its way to a result (a late success)."""
    for task_id in (
        Job.objects.pollable(world.provider)
        .filter(status=Job.Status.FAILED)
        .values_list("provider_job_id", flat=True)
    ):
        task = world.tasks.get(task_id)
        if task is not None and task.phase(world.now)[0] in ("waiting", "running"):
            return True
    return False


def simulate(world: World, owner: Any, monkeypatch: pytest.MonkeyPatch) -> list[Job]:
    fake = fake_for(world)
    with simulated(world, fake, monkeypatch):
        client = Client()
        user = User(world, owner)
        owner.remix_mode = world.remix
        owner.save(update_fields=["remix_mode"])
        parents = [make_parent(world, owner)] if world.parent else []
        world.armed = True
        for n in range(world.rng.randint(0, 2) if parents else world.rng.randint(1, 4)):
            user.submit(f"a fox, take {n}")
        for parent in parents:
            for _ in range(world.rng.randint(1, 3)):
                user.press(parent, world.rng.choice(parent.buttons))
        last_sweep = 0.0
        # The busy part: faults, crashes, a lossy queue.
        for _ in range(60):
            world.now += world.rng.choice((0.5, 2, 10, 30))
            fake.notify()
            user.act()
            user.maybe_press()
            run_queue(world, world.rng.randint(0, 6))
            if world.chance(0.5):
                deliver_hooks(world, client)
            if world.now - last_sweep >= 60:
                last_sweep = world.now
                with suppress(Crash):
                    sweep.run()
        # Then the faults stop and time runs on past every bound: everything must end.
        world.crash = world.drop = world.twice = world.busy = world.lost_answer = world.omit = 0.0
        for steps in range(1, 101):
            world.now += 60
            fake.notify()
            user.act()
            sweep.run()
            sync.tick(world.provider)
            run_queue(world, 50)
            deliver_hooks(world, client)
            ending = late_success_due(world) or Job.objects.awaiting_ingest().exists()
            if not ending and not Job.objects.in_flight().exists():
                world.note(f"everything ended {steps} steps after the faults stopped")
                break
        world.armed = False
    return list(
        Job.objects.filter(owner=owner)
        .exclude(pk__in=[parent.pk for parent in parents])
        .order_by("pk")
    )


# --- the promises -----------------------------------------------------------------------------


def made_for(world: World, job: Job) -> list[Task]:
    """The provider tasks a submit of this job made (a modal answer's new id is the same
    task going on, not another one)."""
    return [t for t in world.tasks.values() if t.state == str(job.code) and t.kind == "submit"]


def check(world: World, jobs: list[Job]) -> list[str]:
    """What the run broke (empty: nothing)."""
    broken = list(world.violations)
    for job in jobs:
        code, name = str(job.code), world.name(str(job.code))
        made = made_for(world, job)
        suspects = SuspectedDuplicate.objects.filter(job=job).count()
        if job.is_in_flight:
            broken.append(f"{name} never ended: {job.status} ({job.stage})")
        if len(made) > 1 and suspects < len(made) - 1:
            broken.append(f"{name} has {len(made)} provider tasks, {suspects} recorded")
        captured = LedgerEntry.objects.filter(job=job, kind="capture").first()
        delivered = job.status == Job.Status.SUCCEEDED and job.images.exists()
        charged = captured is not None and captured.amount > 0
        if charged and not delivered:
            broken.append(f"{name} charged {captured.amount} without a result ({job.status})")
        if delivered and captured is None:
            broken.append(f"{name} delivered without a charge decision")
        if job.status in (Job.Status.FAILED, Job.Status.CANCELLED) and (
            job.charge == Job.Charge.HELD
        ):
            broken.append(f"{name} {job.status} with its credits still held")
        if code in world.cancelled and job.status != Job.Status.CANCELLED:
            broken.append(f"{name} was cancelled for the user, yet ended {job.status}")
        if code in world.never and job.status != Job.Status.CANCELLED:
            broken.append(f"{name}'s remix question was never answered, yet it ended {job.status}")
        expires = job.asked_at + timedelta(seconds=world.remix_expiry)
        expired = job.fail_note == "No remix prompt came in time."
        if expired and job.finished_at is not None and job.finished_at < expires:
            broken.append(f"{name}'s remix question was cancelled before it expired")
    for account in CreditAccount.objects.all():
        sums = account.entries.aggregate(b=Sum("balance_delta"), h=Sum("held_delta"))
        if (account.balance, account.held) != (sums["b"] or 0, sums["h"] or 0):
            broken.append(f"account {account.pk}: balance/held disagree with the entries")
        still = Job.objects.filter(owner=account.user, charge=Job.Charge.HELD)
        open_holds = sum(still.values_list("cost", flat=True))
        if account.held != open_holds:
            broken.append(f"account {account.pk}: held {account.held}, open holds {open_holds}")
    return broken


def findings(world: World, jobs: list[Job]) -> list[str]:
    """What went wrong for the user without breaking a promise above: a result the provider
    made for the task a job followed (or for its remix answer) and that never reached the
    user, and a remix answer the product took but never sent."""
    found = []
    for job in jobs:
        code, name = str(job.code), world.name(str(job.code))
        ours = [t for t in world.tasks.values() if t.state == code]
        followed = [t for t in ours if t.id == job.provider_job_id or t.kind == "modal"]
        made = [t for t in followed if t.phase(world.now)[0] == "succeeded"]
        # An id we cannot keep, or an image we could not fetch, fails a job by design.
        unkept = job.fail_note.startswith("The provider answered with a task id we cannot keep")
        unfetched = job.fail_kind == Job.FailKind.IMAGE_UNAVAILABLE
        if made and job.status != Job.Status.SUCCEEDED and not (unkept or unfetched):
            found.append(
                f"{name}: the provider made its result, the job ended {job.status}"
                f" ({job.fail_kind}: {job.fail_reason[:80]!r} {job.fail_note[:120]!r})"
            )
        sent = any(t.answered_at is not None for t in ours)
        if code in world.taken and world.dialect == "cometapi" and not sent:
            found.append(
                f"{name}: its remix answer was taken at {world.taken[code]:.0f}s and never"
                f" sent; it ended {job.status} ({job.fail_kind}: {job.fail_note[:120]!r})"
            )
    return found

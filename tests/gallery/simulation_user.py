"""The simulated user of the seeded simulation (tests/gallery/simulation.py).

Submits prompts and presses buttons (reroll, U, V and what else a finished job offers),
answers remix questions after a delay drawn from the seed, sometimes twice, sometimes
never, and cancels jobs that wait here. Half of it goes through the views, half through
gallery.services and gallery.lifecycle; a request whose worker dies (`Crash`) is tried again
with the same submit key, or given up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.test import Client
from django.urls import reverse

from gallery import lifecycle, services
from gallery.models import Job
from tests.gallery.simulation_world import Crash, World

# Delays (seconds) before the user acts on a remix question or a queued job.
DELAYS = (1, 5, 20, 60, 300, 900, 2400)
MAX_JOBS = 8


@dataclass
class Plan:
    kind: str  # answer | twice (answer, then again) | cancel | never
    at: float
    again: bool = False
    done: bool = False


class User:
    def __init__(self, world: World, owner: Any) -> None:
        self.world = world
        self.owner = owner
        self._client: Client | None = None
        # What the user means to do about each question (job code, when it was asked).
        self.plans: dict[tuple[str, str], Plan] = {}
        self.made = 0
        self.pressed = False  # only a press can ask a remix question

    @property
    def client(self) -> Client:
        """The user's browser, signed in when first used."""
        if self._client is None:
            self._client = Client()
            self._client.force_login(self.owner)
        return self._client

    def adopt(self, job: Job) -> None:
        """A job the user now has on screen."""
        world, code = self.world, str(job.code)
        if code not in world.names:
            self.made += 1
            world.names[code] = world.labels[job.pk] = f"j{self.made}"
        if job.status == Job.Status.QUEUED and world.chance(0.1):
            at = world.now + world.rng.choice((0, 1, 10, 60))
            self.plans.setdefault((code, "queued"), Plan("cancel", at))

    # --- making jobs ------------------------------------------------------------------

    def _create(self, what: str, make: Any) -> Job | None:
        """Send a form; a dead worker is a 500 page, after which the user may send it again
        (same submit key: the same job)."""
        world = self.world
        key = uuid.UUID(int=world.rng.getrandbits(128))
        for _ in range(3):
            try:
                job = make(key)
            except services.SubmitError as exc:
                world.note(f"user's {what} refused: {exc}")
                return None
            except Crash:
                world.note(f"user's {what} died")
                if world.chance(0.4):
                    return None
                continue
            self.adopt(job)
            world.note(f"user made {world.name(str(job.code))}: {what} ({job.status})")
            return job
        return None

    def submit(self, prompt: str) -> Job | None:
        mode = self.world.rng.choice((Job.Mode.FAST, Job.Mode.FAST, Job.Mode.TURBO))
        return self._create(
            f"imagine {prompt!r}",
            lambda key: services.submit(owner=self.owner, prompt=prompt, mode=mode, submit_key=key),
        )

    def press(self, parent: Job, button: dict[str, Any]) -> Job | None:
        if self.made >= MAX_JOBS:
            return None
        self.pressed = True
        return self._create(
            f"{button['action']} {button.get('index') or button.get('variant') or ''} of "
            f"{self.world.name(str(parent.code))}",
            lambda key: services.press(
                owner=self.owner,
                parent=parent,
                action=button["action"],
                index=button.get("index"),
                variant=button.get("variant", ""),
                submit_key=key,
            ),
        )

    def maybe_press(self) -> None:
        """Now and then, a button of a job that has finished."""
        world = self.world
        if self.made >= MAX_JOBS or not world.chance(0.03):
            return
        done = [
            job
            for job in Job.objects.filter(owner=self.owner, status=Job.Status.SUCCEEDED)
            .exclude(buttons=[])
            .order_by("pk")
        ]
        if done:
            parent = world.rng.choice(done)
            self.press(parent, world.rng.choice(parent.buttons))

    # --- remix questions and cancels --------------------------------------------------

    def act(self) -> None:
        """Read the questions on screen, and do what is due."""
        world = self.world
        asking = Job.objects.filter(owner=self.owner, status=Job.Status.MODAL, remix_prompt="")
        for job in asking.order_by("pk") if self.pressed else ():
            key = (str(job.code), str(job.modal_answered_at))
            if key not in self.plans:
                kind = world.rng.choices(("answer", "twice", "cancel", "never"), (55, 15, 15, 15))
                self.plans[key] = Plan(kind[0], world.now + world.rng.choice(DELAYS))
                if kind[0] == "never":
                    world.never.add(key[0])
                else:
                    world.never.discard(key[0])
                world.note(f"user is asked about {world.name(key[0])}: will {kind[0]}")
        for (code, _), plan in self.plans.items():
            if plan.done or plan.at > world.now:
                continue
            job = Job.objects.get(code=code)
            if plan.kind == "never":
                pass
            elif plan.kind == "cancel":
                self.cancel(job)
            else:
                self.answer(job)
                if plan.kind == "twice" and not plan.again:
                    plan.again = True  # a double click, or the card shown twice
                    plan.at = world.now + world.rng.choice((0, 1, 10, 40))
                    continue
            plan.done = True

    def answer(self, job: Job) -> None:
        world, code = self.world, str(job.code)
        typed = world.answers.setdefault(code, [])
        prompt = f"{world.name(code)} at night, take {len(typed) + 1}"
        typed.append(prompt)
        try:
            if world.chance(0.5):
                url = reverse("gallery:remix", args=[job.code])
                said = str(self.client.post(url, {"prompt": prompt}).status_code)
            else:
                services.answer_modal(job=job, prompt=prompt)
                said = "taken"
        except services.SubmitError as exc:
            said = str(exc)
        except Crash:
            said = "died"
        job.refresh_from_db()
        if job.remix_prompt == prompt or (job.prompt == prompt and not job.provider_job_id):
            world.taken.setdefault(code, world.now)
        world.note(f"user answered {world.name(code)} with {prompt!r}: {said}")

    def cancel(self, job: Job) -> None:
        world, code = self.world, str(job.code)
        try:
            if world.chance(0.5):
                response = self.client.post(reverse("gallery:cancel", args=[job.code]))
                done = response.status_code == 302
            else:
                done = lifecycle.cancel(job)
        except Crash:
            done = False
        if done:
            world.cancelled.add(code)
        world.note(f"user cancelled {world.name(code)}: {done}")

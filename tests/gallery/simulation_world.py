"""What one seed of the simulation (tests/gallery/simulation.py) decides, and what happened.

`world_for(seed)` draws everything up front from one random.Random: the fault rates, which
provider dialect is spoken and how it behaves where the protocol allows more than one
answer, and what the user does. Everything that happens later draws from the same
generator, in an order fixed by the seed, so a seed replays the same run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tests.gallery.simulation_providers import Hook, Task

FAULTS = ("busy", "lost_answer", "omit", "hostile", "crash", "drop", "twice", "expire")


class Crash(BaseException):
    """The worker running the task dies here (nothing of ours catches a BaseException)."""


@dataclass
class World:
    """Everything one seed decides, and what happened."""

    seed: int
    rng: random.Random
    dialect: str = "cometapi"  # or "piapi" (its unified task API)
    now: float = 0.0  # simulated seconds since the start
    epoch: float = 0.0  # the Unix time of the start (PiAPI's webhook timestamps)
    tasks: dict[str, Task] = field(default_factory=dict)
    hooks: list[Hook] = field(default_factory=list)
    queued: list[Any] = field(default_factory=list)  # simulation.Queued
    log: list[str] = field(default_factory=list)
    # What the product did that the protocol does not allow (the fakes note it).
    violations: list[str] = field(default_factory=list)
    # Our job codes by short names ("j1"), so that a log reads the same in every replay.
    names: dict[str, str] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)  # the same, by the job's row id
    # Prompts the user typed for each job's remix question, and when one was taken.
    answers: dict[str, list[str]] = field(default_factory=dict)
    taken: dict[str, float] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)  # cancels the product confirmed
    never: set[str] = field(default_factory=set)  # questions the user leaves unanswered
    # The job whose submit is on its way (PiAPI carries no `state` to tell).
    sending: str = ""
    armed: bool = False  # crash points fire only while the run is on

    # Fault rates, chosen per seed; all but `hostile` and `expire` stop for the last part.
    busy: float = 0.0
    lost_answer: float = 0.0
    omit: float = 0.0
    hostile: float = 0.0
    crash: float = 0.0
    drop: float = 0.0
    twice: float = 0.0
    expire: float = 0.0

    # Where the protocol allows more than one behaviour, the seed picks one.
    hooks_on: bool = True  # our webhook URLs are sent (MJ_WEBHOOKS)
    progress_hooks: bool = False  # PiAPI also calls back while a task runs
    rewrite_21: bool = False  # the gateway answers a press parked in MODAL with code 1
    new_modal_id: float = 0.0  # chance a modal answer hands out a new task id
    stale_fetch: bool = False  # fetch reads the gateway's first row of a same-id modal task
    account_remix: bool = False  # the Discord account has Remix on: remixable presses ask
    remix_expiry: int = 600  # MJ_REMIX_EXPIRY

    # The user.
    remix: bool = False  # Remix mode on
    parent: bool = False  # starts from a finished job and presses its buttons

    @property
    def provider(self) -> str:
        """The product's name of the provider (MJ_PROVIDER, and each job's `provider`)."""
        return "piapi" if self.dialect == "piapi" else "cometapi"

    def chance(self, rate: float) -> bool:
        return self.rng.random() < rate

    def note(self, text: str) -> None:
        self.log.append(f"{self.now:.0f}s {text}")

    def name(self, code: str) -> str:
        return self.names.get(code, code[:8] or "-")

    def maybe_crash(self, where: str, share: float) -> None:
        """A crash point: the worker dies here with this share of the seed's crash rate."""
        if self.armed and self.chance(self.crash * share):
            self.note(f"crash {where}")
            raise Crash


def world_for(seed: int) -> World:
    rng = random.Random(seed)
    world = World(seed=seed, rng=rng)
    for name in FAULTS:
        setattr(world, name, rng.choice((0.0, 0.0, 0.1, 0.3)))
    world.dialect = "piapi" if rng.random() < 1 / 3 else "cometapi"
    world.hooks_on = rng.random() < 0.8
    world.progress_hooks = rng.random() < 0.3
    world.rewrite_21 = rng.random() < 0.5
    world.new_modal_id = rng.choice((0.0, 0.5, 1.0))
    world.stale_fetch = rng.random() < 0.2
    world.account_remix = rng.random() < 0.1
    world.remix_expiry = rng.choice((120, 600, 1800))
    world.remix = rng.random() < 0.6
    world.parent = rng.random() < 0.6
    return world

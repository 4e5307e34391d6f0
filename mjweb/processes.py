"""A group of child processes that live and die together (`runall`, `worker`).

Ctrl-C or SIGTERM, to the supervisor or to its process group, stops them all: each child
runs in its own session and is sent SIGTERM by the supervisor, and gets SIGTERM from the
kernel if the supervisor is killed outright. If one of them dies, the others are stopped too and the
group exits with its code, so a half-running studio never sits there looking healthy and a
process supervisor (systemd, Docker, Kubernetes) restarts the whole group.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from django.conf import settings

STOP_GRACE = 15.0
# glibc's allocator in the worker's clusters, unless the environment says otherwise: a
# fixed mmap threshold, so a freed image buffer goes back to the system instead of raising
# the threshold and staying in the heap, and two arenas rather than eight per core for the
# encoding threads. Together they keep storing the largest admitted picture within its
# memory budget (bench/image_memory.py: 320 -> 276 MB for a 24 MP RGBA grid).
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}


def manage(*args: str) -> list[str]:
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), *args]


@dataclass(frozen=True)
class Child:
    command: list[str]
    extra_env: Mapping[str, str] = field(default_factory=dict)  # on top of this process's
    # Added to the child's niceness: work that should yield the CPU to the rest.
    nice: int = 0

    def start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.extra_env}
        nice, parent = self.nice, os.getpid()

        def prepare() -> None:  # in the child, before it runs the command
            if nice:
                os.nice(nice)
            _end_with(parent)

        # Its own session: a signal to our process group (systemd's and a shell's SIGTERM or
        # Ctrl-C) reaches only us, and we stop each child by its main process, the one
        # that stops gracefully. A django-q2 cluster hit by a group signal loses its
        # sentinel at once and then waits for ever.
        return subprocess.Popen(self.command, env=env, start_new_session=True, preexec_fn=prepare)


_PR_SET_PDEATHSIG = 1


def _end_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when `parent` dies (Linux), so that a
    supervisor killed outright leaves no child running on its own."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


# What the supervisor calls every `every` seconds with the names of the running children
# (the worker's heartbeat), the first time once they are started.
@dataclass(frozen=True)
class Tick:
    every: float
    call: Callable[[list[str]], None]


def run_group(
    children_to_start: Mapping[str, Child],
    say: Callable[[str], None],
    started: Callable[[], None] = lambda: None,
    tick: Tick | None = None,
) -> int:
    """Start every child under its name, wait until a signal or one exits, then stop the
    rest. Returns the exit code: 0 after a signal, else the dead one's."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _supervise(children_to_start, say, started, lambda: stopping, tick)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _supervise(
    children_to_start: Mapping[str, Child],
    say: Callable[[str], None],
    started: Callable[[], None],
    signalled: Callable[[], bool],
    tick: Tick | None = None,
) -> int:
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, child in children_to_start.items():
            say(f"starting {name}: {' '.join(child.command[1:])}")
            children[name] = child.start()
    except BaseException:
        stop_all(children, say)  # none is left running on its own
        raise
    started()
    exit_code = 0
    stopping = False
    next_tick = time.monotonic()
    while not stopping and not signalled():
        if tick is not None and time.monotonic() >= next_tick:
            tick.call([name for name, child in children.items() if child.poll() is None])
            next_tick = time.monotonic() + tick.every
        for name, child in children.items():
            if child.poll() is not None:
                say(f"{name} exited with code {child.returncode}; stopping.")
                exit_code = child.returncode or 1
                stopping = True
                break
        time.sleep(0.3)
    stop_all(children, say)
    return exit_code


def stop_all(children: Mapping[str, subprocess.Popen[bytes]], say: Callable[[str], None]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in time; killing it.")
            child.kill()
            child.wait()
    say("stopped.")

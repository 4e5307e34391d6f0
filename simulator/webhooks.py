"""Webhook delivery of the simulator, for both protocols: the `Delivery` of one POST, the
server's one `Watcher` thread that runs each protocol's scan, the ordered sender, and
CometAPI's notifyHook (`NotifyHooks`). PiAPI's scan is PiAPISimulator.scan_webhooks.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator import faults

if TYPE_CHECKING:
    from simulator.server import SimulatorServer

log = logging.getLogger("simulator")


@dataclass(frozen=True)
class Delivery:
    """One webhook POST, of either protocol (CometAPI's has no secret)."""

    url: str
    secret: str
    body: bytes
    task_id: str
    status: str

    @property
    def terminal(self) -> bool:
        return self.status in ("SUCCESS", "FAILURE", "completed", "finished", "failed")


class Watcher:
    """The server's one webhook thread: every `interval` s of real time it runs each scan.

    Progress is a function of the clock, read lazily: someone has to look. Every protocol's
    scan runs here, so a server has one watcher however many kinds of hook it sends.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.scans: list[Callable[[], object]] = []
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        if self.thread is not None:
            return
        self._stop.clear()
        self.thread = threading.Thread(target=self._run, name="mj-simulator-webhooks", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        thread, self.thread = self.thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for scan in list(self.scans):
                try:
                    scan()
                except Exception:  # the watcher must outlive one bad round
                    log.exception("webhook scan failed")


def send(deliveries: list[Delivery], timeout: float) -> None:
    """POST one round's deliveries in their order, from one thread (order is a fault too)."""
    if deliveries:
        threading.Thread(target=_post_all, args=(deliveries, timeout), daemon=True).start()


def _post_all(deliveries: list[Delivery], timeout: float) -> None:
    for delivery in deliveries:
        _post(delivery, timeout)


def _post(delivery: Delivery, timeout: float) -> None:
    headers = {"Content-Type": "application/json"}
    if delivery.secret:
        headers["x-webhook-secret"] = delivery.secret
    request = urllib.request.Request(
        delivery.url, data=delivery.body, headers=headers, method="POST"
    )
    # straight to the receiver: an HTTP proxy from the environment must not swallow it
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as answer:
            answer.read()
    except (OSError, ValueError) as exc:  # like the real services: no retry, no error
        log.info("webhook to %s failed: %s", delivery.url, exc)


class NotifyHooks:
    """CometAPI's notifyHook: the task object, as fetch returns it, POSTed to the hook on
    every change of status or progress, unsigned, never retried (section 1.10).

    Runs in the server's webhook watcher, so it sees the states the (fake) clock has reached
    at each look; states passed between two looks are not sent, as with a real proxy that
    notices a change late.
    """

    def __init__(self, sim: SimulatorServer, *, timeout: float = 2.0) -> None:
        self.sim = sim
        self.timeout = timeout
        self.deliveries: list[Delivery] = []  # everything handed to a sender, in order
        self._lock = threading.Lock()
        self._seen: dict[str, str] = {}  # task id -> "status:progress" last delivered
        self._last: dict[str, Delivery] = {}  # task id -> its last delivery
        self._done: set[str] = set()  # terminal states delivered: nothing more to say

    def scan(self) -> list[Delivery]:
        due: list[Delivery] = []
        earlier: dict[str, Delivery] = {}
        for task in self.sim.engine.tasks():
            if not task.notify_hook or task.id in self._done:
                continue
            view = self.sim.engine.view(task.id, self.sim.public_url)
            if view is None:  # pragma: no cover - engine tasks are never deleted
                continue
            state = f"{view['status']}:{view['progress']}"
            with self._lock:
                if self._seen.get(task.id) == state:
                    continue
                self._seen[task.id] = state
                body = json.dumps(view, ensure_ascii=False).encode("utf-8")
                delivery = Delivery(task.notify_hook, "", body, task.id, view["status"])
                if task.id in self._last:
                    earlier[task.id] = self._last[task.id]
                self._last[task.id] = delivery
                if delivery.terminal:
                    self._done.add(task.id)
                    self._seen.pop(task.id, None)
                    self._last.pop(task.id, None)
            due.append(delivery)
        shaped = faults.shape(due, self.sim.faults, earlier)
        self.deliveries.extend(shaped)
        send(shaped, self.timeout)
        return due

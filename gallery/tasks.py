"""django-q2 entry points: an id in, one call out (see gallery.queue for how they are queued).

Delivery is at least once, so every task may run twice or concurrently with itself; each
function it calls is idempotent, and the job's own state (attempts, next_attempt_at,
deadlines, leases), not queue redelivery, drives retries. Queued rows name these functions
by their dotted path: keep the names.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.urls import get_resolver
from PIL import Image as PILImage
from PIL import features

from gallery import dispatch as dispatching
from gallery import ingest as ingesting
from gallery import notify as notifying
from gallery import previews, reconcile, retention, sync
from gallery import sweep as sweeping
from gallery.providers.base import ssl_context


def warm_up(**kwargs: Any) -> None:
    """Run in each worker process as django-q2 spawns it (its `post_spawn` signal): what a
    first task would otherwise pay for inside the first burst of results, measured at a
    second of CPU per process: the URL resolver's reverse table (every hook URL, every
    notify link), the CA bundle of the SSL context, Pillow's format plugins."""
    get_resolver().reverse_dict  # noqa: B018  (built on first use)
    ssl_context()
    PILImage.init()
    features.check("webp")


# One line per task with the CPU and wall time it took, at INFO: off unless
# MJWEB_TASK_LOG_LEVEL=INFO (bench/throughput.py reads these lines).
cost_log = logging.getLogger("gallery.tasks.cost")
_began: dict[str, tuple[float, float]] = {}  # task id -> (CPU, wall) clocks at its start


def task_began(task: dict[str, Any], **kwargs: Any) -> None:
    """django-q2's pre_execute, in the worker process that runs the task."""
    if cost_log.isEnabledFor(logging.INFO):
        _began[str(task.get("id"))] = (time.process_time(), time.perf_counter())


def task_ended(task: dict[str, Any], **kwargs: Any) -> None:
    """django-q2's post_execute_in_worker: the task's CPU time covers every thread of the
    process (the encoders' too), as a worker runs one task at a time."""
    began = _began.pop(str(task.get("id")), None)
    if began is not None:
        cost_log.info(
            "task %s (%s) cpu %.3f s wall %.3f s",
            task.get("func"),
            task.get("name"),
            time.process_time() - began[0],
            time.perf_counter() - began[1],
        )


def dispatch(job_id: int) -> None:
    dispatching.dispatch(job_id)


def submit_modal(job_id: int) -> None:
    dispatching.submit_modal(job_id)


def refresh(job_id: int) -> None:
    sync.refresh(job_id)


def collect(job_id: int) -> None:
    sync.collect(job_id)


def poll(provider: str, token: str = "") -> None:
    sync.poll(provider, token)


def sweep() -> None:
    sweeping.run()


# The schedule's entry point before the sweeper had its name; rows queued by it still run.
kick_all = sweep


def ingest(job_id: int) -> None:
    ingesting.ingest(job_id)


def preview(job_id: int) -> None:
    previews.fetch(job_id)


def renditions(job_id: int) -> None:
    ingesting.complete(job_id)


def purge_images(job_id: int) -> None:
    ingesting.purge_images(job_id)


def prune() -> None:
    retention.prune()


def notify(job_id: int, status: str, attempt: int = 1) -> None:
    notifying.deliver(job_id, status, attempt)


def reconcile_accounts() -> None:
    for outcome in reconcile.reconcile_all():
        reconcile.logger.info("reconciled %s", outcome)

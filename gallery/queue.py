"""One enqueue helper per task, and one naming scheme: "<task>-<job code>", "poll-<provider>".

Task functions live in gallery.tasks; they are enqueued by their dotted path, which queued
rows keep, so these paths never change. With the ORM broker an enqueue joins the caller's
transaction: called inside `transaction.atomic()`, the task exists exactly when the change
that asked for it does.

Each task goes to one of settings.TASK_QUEUES, always named: a task queued from a worker of
another queue (a dispatch from an ingest) would otherwise land in that worker's own queue.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

# The queue of each task (settings.TASK_QUEUES); the rest go to "jobs".
QUEUE_OF = {
    "ingest": "ingest",
    "collect": "ingest",
    "preview": "previews",
    "renditions": "previews",
}


def queue_name(task: str) -> str:
    return settings.TASK_QUEUES[QUEUE_OF.get(task, "jobs")]


def _job_task(task: str, job: Any) -> None:
    async_task(
        f"gallery.tasks.{task}", job.pk, task_name=f"{task}-{job.code}", cluster=queue_name(task)
    )


def dispatch(job: Any) -> None:
    _job_task("dispatch", job)


def submit_modal(job: Any) -> None:
    _job_task("submit_modal", job)


def refresh(job: Any) -> None:
    _job_task("refresh", job)


def collect(job: Any) -> None:
    _job_task("collect", job)


def ingest(job: Any) -> None:
    _job_task("ingest", job)


def preview(job: Any) -> None:
    _job_task("preview", job)


def renditions(job: Any) -> None:
    _job_task("renditions", job)


def purge_images(job: Any) -> None:
    _job_task("purge_images", job)


def notify(job_id: int, status: str, attempt: int) -> None:
    """A delivery of a job's change to its API caller's notifyHook (gallery.notify)."""
    async_task(
        "gallery.tasks.notify",
        job_id,
        status,
        attempt,
        task_name=f"notify-{job_id}-{status}-{attempt}",
        cluster=queue_name("notify"),
    )


def notify_later(job_id: int, status: str, attempt: int, when: Any) -> None:
    """The same delivery tried again at `when` (a one-off schedule, not a sleeping worker)."""
    schedule(
        "gallery.tasks.notify",
        job_id,
        status,
        attempt,
        name=f"notify-{job_id}-{status}-{attempt}",
        schedule_type=Schedule.ONCE,
        next_run=when,
        cluster=queue_name("notify"),
    )


def poll(provider: str, token: str = "") -> None:
    async_task(
        "gallery.tasks.poll",
        provider,
        token,
        task_name=f"poll-{provider}",
        cluster=queue_name("poll"),
    )

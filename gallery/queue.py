"""One enqueue helper per task, and one naming scheme: "<task>-<job code>", "poll-<provider>".

Task functions live in gallery.tasks; they are enqueued by their dotted path, which queued
rows keep, so these paths never change. With the ORM broker an enqueue joins the caller's
transaction: called inside `transaction.atomic()`, the task exists exactly when the change
that asked for it does.
"""

from __future__ import annotations

from typing import Any

from django_q.tasks import async_task


def _job_task(task: str, job: Any) -> None:
    async_task(f"gallery.tasks.{task}", job.pk, task_name=f"{task}-{job.code}")


def dispatch(job: Any) -> None:
    _job_task("dispatch", job)


def submit_modal(job: Any) -> None:
    _job_task("submit_modal", job)


def refresh(job: Any) -> None:
    _job_task("refresh", job)


def ingest(job: Any) -> None:
    _job_task("ingest", job)


def preview(job: Any) -> None:
    _job_task("preview", job)


def purge_images(job: Any) -> None:
    _job_task("purge_images", job)


def poll(provider: str, token: str = "") -> None:
    async_task("gallery.tasks.poll", provider, token, task_name=f"poll-{provider}")

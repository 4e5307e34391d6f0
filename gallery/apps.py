from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


def upsert_schedules(**kwargs: Any) -> None:
    """Keep the sweeper's schedule (gallery.sweep, every minute) and the daily prune
    (gallery.retention) present and unique: django-q2 refuses duplicate names, so the
    sweeper keeps the name it was first created with."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="gallery.kick_all",
        defaults={
            "func": "gallery.tasks.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
    Schedule.objects.update_or_create(
        name="gallery.prune",
        defaults={"func": "gallery.tasks.prune", "schedule_type": Schedule.DAILY, "repeats": -1},
    )
    # The provider accounts' own bills, imported for reconciliation (gallery.reconcile).
    Schedule.objects.update_or_create(
        name="gallery.reconcile",
        defaults={
            "func": "gallery.tasks.reconcile_accounts",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.MJ_RECONCILE_MINUTES,
            "repeats": -1,
        },
    )


def _in_tasks(name: str) -> Callable[..., None]:
    """A receiver calling gallery.tasks.<name>, imported when first sent (it imports the
    task modules, which ready() should not)."""

    def receiver(**kwargs: Any) -> None:
        from gallery import tasks

        getattr(tasks, name)(**kwargs)

    return receiver


class GalleryConfig(AppConfig):
    name = "gallery"
    verbose_name = "Gallery"

    def ready(self) -> None:
        # (their module imports django_q's models)
        from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

        from gallery import (
            checks,  # noqa: F401  (registers them)
            notify,
        )
        from gallery.models.jobs import status_changed

        status_changed.connect(notify.changed, dispatch_uid="gallery.notify")
        # In each worker process: warmed as it is spawned; each task's cost logged.
        for signal, name in (
            (post_spawn, "warm_up"),
            (pre_execute, "task_began"),
            (post_execute_in_worker, "task_ended"),
        ):
            signal.connect(_in_tasks(name), weak=False, dispatch_uid=f"gallery.{name}")

        post_migrate.connect(upsert_schedules, sender=self)

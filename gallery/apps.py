from __future__ import annotations

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


def _warm_up(**kwargs: Any) -> None:
    from gallery import tasks

    tasks.warm_up(**kwargs)


class GalleryConfig(AppConfig):
    name = "gallery"
    verbose_name = "Gallery"

    def ready(self) -> None:
        from django_q.signals import post_spawn  # its module imports django_q's models

        from gallery import (
            checks,  # noqa: F401  (registers them)
            notify,
        )
        from gallery.models.jobs import status_changed

        status_changed.connect(notify.changed, dispatch_uid="gallery.notify")
        post_spawn.connect(_warm_up, dispatch_uid="gallery.warm_up")

        post_migrate.connect(upsert_schedules, sender=self)

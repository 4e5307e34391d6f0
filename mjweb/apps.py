from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MjwebConfig(AppConfig):
    name = "mjweb"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from mjweb import logs, throttle  # noqa: F401  (throttle registers its check)

        post_migrate.connect(_auditors_group, dispatch_uid="mjweb_auditors_group")
        # uvicorn and gunicorn set their access loggers up before Django loads.
        logs.guard_access_logs()


def _auditors_group(sender: AppConfig, using: str = "default", **_: Any) -> None:
    # post_migrate fires once per app; act once. The permissions of the other apps may
    # not exist yet at this point: ensure_auditors creates them first (idempotent).
    if sender.name != "mjweb":
        return
    from mjweb import roles

    roles.ensure_auditors(using=using)

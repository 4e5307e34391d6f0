from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class MjwebConfig(AppConfig):
    # This module also holds the admin's config: say which one "mjweb" means.
    default = True
    name = "mjweb"
    verbose_name = "Accounts"

    def ready(self) -> None:
        post_migrate.connect(_auditors_group, dispatch_uid="mjweb_auditors_group")


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin with our site (reports, audited model admins)."""

    default = False

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin.py
        from django.apps import apps
        from django.contrib import admin

        from mjweb.admin import audit_registered

        others = [
            model
            for label in ("axes", "django_q")
            if label in apps.app_configs
            for model in apps.get_app_config(label).get_models()
        ]
        audit_registered(admin.site, others)

    default_site = "mjweb.adminsite.MjwebAdminSite"


def _auditors_group(sender: AppConfig, using: str = "default", **_: Any) -> None:
    # post_migrate fires once per app; act once. The permissions of the other apps may
    # not exist yet at this point: ensure_auditors creates them first (idempotent).
    if sender.name != "mjweb":
        return
    from mjweb import roles

    roles.ensure_auditors(using=using)

from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class BackofficeConfig(AppConfig):
    # This module also holds the admin's config: say which one "backoffice" means.
    default = True
    name = "backoffice"
    verbose_name = "Back office"


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin with our site (reports, audited model admins)."""

    default = False

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin.py
        from django.apps import apps
        from django.contrib import admin

        from backoffice.users import audit_registered

        others = [
            model
            for label in ("axes", "django_q", "otp_totp", "otp_static")
            if label in apps.app_configs
            for model in apps.get_app_config(label).get_models()
        ]
        audit_registered(admin.site, others)

    default_site = "backoffice.site.MjwebAdminSite"

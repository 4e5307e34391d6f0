"""Default groups: "Auditors" see everything the audit needs and change nothing."""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission

AUDITORS = "Auditors"
# (app label, codename): view rights on every model the audit reads, and the reports.
AUDITOR_PERMISSIONS = [
    ("mjweb", "view_user"),
    ("mjweb", "view_auditentry"),
    ("mjweb", "view_reports"),
    ("gallery", "view_job"),
    ("gallery", "view_image"),
    ("gallery", "view_providercall"),
    ("gallery", "view_suspectedduplicate"),
    ("billing", "view_creditaccount"),
    ("billing", "view_ledgerentry"),
    ("billing", "view_price"),
    ("billing", "view_quota"),
    ("auth", "view_group"),
    ("axes", "view_accessattempt"),
    ("axes", "view_accesslog"),
    ("axes", "view_accessfailurelog"),
]


def ensure_auditors(using: str = "default") -> Group | None:
    """Create the Auditors group if missing and give it every permission above it lacks.

    Idempotent, and it never takes a permission away: an operator who wants auditors to
    see less makes another group.
    """
    # Skip an app that is not installed (axes can be taken out of INSTALLED_APPS).
    labels = {label for label, _ in AUDITOR_PERMISSIONS if label in global_apps.app_configs}
    for label in sorted(labels):
        create_permissions(global_apps.get_app_config(label), verbosity=0, using=using)
    wanted = [(label, code) for label, code in AUDITOR_PERMISSIONS if label in labels]
    found = Permission.objects.using(using).filter(
        content_type__app_label__in=labels, codename__in=[code for _, code in wanted]
    )
    permissions = [p for p in found.select_related("content_type") if _key(p) in wanted]
    group, _ = Group.objects.using(using).get_or_create(name=AUDITORS)
    group.permissions.add(*permissions)
    return group


def _key(permission: Permission) -> tuple[str, str]:
    return (permission.content_type.app_label, permission.codename)

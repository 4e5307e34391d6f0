"""Who reaches what in the admin: superuser, auditor, staff without rights, user, anonymous.

Pages: the auditor sees everything the audit needs; staff without rights get 403; people who
are not staff are sent to the admin's login. Actions: only the superuser's change anything,
and a refused action leaves every row as it was.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from billing.models import CreditAccount, LedgerEntry, Price, Quota
from gallery.models import Job, ProviderCall
from mjweb import roles
from mjweb.models import AuditEntry, User
from tests.admin.conftest import World, client_for

pytestmark = pytest.mark.django_db

ROLES = ["root", "auditor", "staff", "user", "anonymous"]


@pytest.fixture
def clients(root: User, auditor: User, staff: User, world: World) -> dict[str, Client]:
    return {
        "root": client_for(root),
        "auditor": client_for(auditor),
        "staff": client_for(staff),
        "user": client_for(world.alice),
        "anonymous": Client(),
    }


def pages(world: World) -> dict[str, str]:
    account = CreditAccount.objects.get(user=world.alice)
    entry = LedgerEntry.objects.filter(account=account).first()
    call = ProviderCall.objects.first()
    assert entry is not None and call is not None
    query = "?since=2025-01-01&until=2030-12-31"
    return {
        "job list": reverse("admin:gallery_job_changelist"),
        "job page": reverse("admin:gallery_job_change", args=[world.succeeded.pk]),
        "ledger list": reverse("admin:billing_ledgerentry_changelist"),
        "ledger entry": reverse("admin:billing_ledgerentry_change", args=[entry.pk]),
        "provider calls": reverse("admin:gallery_providercall_changelist"),
        "provider call": reverse("admin:gallery_providercall_change", args=[call.pk]),
        "user list": reverse("admin:mjweb_user_changelist"),
        "user page": reverse("admin:mjweb_user_change", args=[world.alice.pk]),
        "audit log": reverse("admin:mjweb_auditentry_changelist"),
        "accounts": reverse("admin:billing_creditaccount_changelist"),
        "account": reverse("admin:billing_creditaccount_change", args=[account.pk]),
        "prices": reverse("admin:billing_price_changelist"),
        "quotas": reverse("admin:billing_quota_changelist"),
        "groups": reverse("admin:auth_group_changelist"),
        "login attempts": reverse("admin:axes_accessattempt_changelist"),
        "report": reverse("admin:reports_usage"),
        "usage csv": reverse("admin:reports_usage_csv") + query,
        "endpoints csv": reverse("admin:reports_endpoints_csv") + query,
        "ledger csv": reverse("admin:reports_ledger_csv") + query,
        "jobs csv": reverse("admin:reports_jobs_csv") + query,
    }


EXPECTED_PAGE = {"root": 200, "auditor": 200, "staff": 403, "user": 302, "anonymous": 302}


@pytest.mark.parametrize("role", ROLES)
def test_pages_by_role(role: str, clients: dict[str, Client], world: World) -> None:
    client = clients[role]
    for name, url in pages(world).items():
        response = client.get(url)
        assert response.status_code == EXPECTED_PAGE[role], (role, name, url)
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("admin:login")), name


@pytest.mark.parametrize("role", ROLES)
def test_the_admin_index_by_role(role: str, clients: dict[str, Client]) -> None:
    response = clients[role].get(reverse("admin:index"))
    assert response.status_code == (200 if role in ("root", "auditor", "staff") else 302)
    body = response.content.decode()
    shows_reports = reverse("admin:reports_usage") in body
    assert shows_reports == (role in ("root", "auditor"))


def test_the_auditor_sees_images_and_staff_do_not(
    auditor_client: Client, staff_client: Client, world: World
) -> None:
    from tests.gallery.factories import make_finished_job

    job = make_finished_job(world.alice)
    image = job.images.get()
    url = reverse("admin:gallery_job_image", args=[job.pk, image.pk, "thumb"])
    response = auditor_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert staff_client.get(url).status_code == 403
    other = reverse("admin:gallery_job_image", args=[world.succeeded.pk, image.pk, "thumb"])
    assert auditor_client.get(other).status_code == 404  # an image of another job


def snapshot() -> dict[str, Any]:
    """Everything an action could change."""
    return {
        "entries": LedgerEntry.objects.count(),
        "audit": AuditEntry.objects.count(),
        "balances": sorted(CreditAccount.objects.values_list("user_id", "balance", "held")),
        "jobs": sorted(Job.objects.values_list("pk", "status", "charge")),
        "suspended": sorted(User.objects.values_list("pk", "suspended_at")),
        "prices": sorted(Price.objects.values_list("pk", "credits")),
        "quotas": Quota.objects.count(),
        "staff": sorted(User.objects.values_list("pk", "is_staff", "email")),
        "queue": _queue(),
    }


def _queue() -> int:
    from django_q.models import OrmQ

    return OrmQ.objects.count()


def actions(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, url, POST data) of every action the admin offers."""
    account = CreditAccount.objects.get(user=world.alice)
    price = Price.objects.get(action="imagine", mode="fast")
    alice = world.alice
    operate = "admin:gallery_job_operate"
    return [
        (
            "grant credits",
            reverse("admin:billing_creditaccount_credit", args=[account.pk]),
            {"kind": "grant", "amount": "5", "reason": "r", "key": str(uuid.uuid4())},
        ),
        ("suspend", reverse("admin:mjweb_user_suspend", args=[alice.pk]), {"reason": "r"}),
        (
            "suspend (bulk)",
            reverse("admin:mjweb_user_changelist"),
            {
                "action": "suspend_users",
                "apply": "1",
                "_selected_action": [alice.pk],
                "reason": "r",
            },
        ),
        (
            "re-sync a job",
            reverse(operate, args=[world.running.pk, "resync"]),
            {"reason": "r"},
        ),
        (
            "release a stuck job",
            reverse(operate, args=[world.running.pk, "release"]),
            {"reason": "r"},
        ),
        (
            "release (bulk)",
            reverse("admin:gallery_job_changelist"),
            {
                "action": "release_jobs",
                "apply": "1",
                "_selected_action": [world.running.pk],
                "reason": "r",
            },
        ),
        (
            "edit a price",
            reverse("admin:billing_price_change", args=[price.pk]),
            {"action": "imagine", "mode": "fast", "credits": "99"},
        ),
        (
            "add a quota",
            reverse("admin:billing_quota_add"),
            {"user": alice.pk, "allowed_modes": "relax", "jobs_per_day": "", "jobs_at_once": ""},
        ),
        (
            "edit a user",
            reverse("admin:mjweb_user_change", args=[alice.pk]),
            {
                "username": "alice",
                "email": "changed@example.com",
                "is_active": "on",
                "is_staff": "on",
                "date_joined_0": "2026-01-01",
                "date_joined_1": "00:00:00",
            },
        ),
    ]


@pytest.mark.parametrize("role", ["auditor", "staff", "user", "anonymous"])
def test_nobody_but_the_superuser_changes_anything(
    role: str, clients: dict[str, Client], world: World
) -> None:
    before = snapshot()
    for name, url, data in actions(world):
        response = clients[role].post(url, data)
        # Refused outright, sent to log in, or (a bulk action the role may not run) the
        # list shown again as if no action had been chosen.
        expected = (200, 403) if name.endswith("(bulk)") else (403,)
        if role in ("user", "anonymous"):
            expected = (302,)
        assert response.status_code in expected, (role, name, response.status_code)
        if role in ("user", "anonymous"):
            assert response["Location"].startswith(reverse("admin:login")), name
        assert snapshot() == before, (role, name)


def test_the_superuser_can_do_every_action(root_client: Client, world: World) -> None:
    for name, url, data in actions(world):
        before = AuditEntry.objects.count()
        response = root_client.post(url, data)
        assert response.status_code == 302, (name, response.content.decode()[:2000])
        if name == "suspend (bulk)":
            continue  # alice is suspended already: nothing changes, nothing is recorded
        if name == "release (bulk)":
            continue  # released by the previous action
        assert AuditEntry.objects.count() == before + 1, name


def test_ledger_and_provider_calls_cannot_be_added_changed_or_deleted(
    root_client: Client, world: World
) -> None:
    entry = LedgerEntry.objects.filter(account__user=world.alice).first()
    call = ProviderCall.objects.first()
    assert entry is not None and call is not None
    for model, obj in (("billing_ledgerentry", entry), ("gallery_providercall", call)):
        assert root_client.get(reverse(f"admin:{model}_add")).status_code == 403
        change = reverse(f"admin:{model}_change", args=[obj.pk])
        assert root_client.post(change, {"amount": 1, "path": "/x"}).status_code == 403
        delete = reverse(f"admin:{model}_delete", args=[obj.pk])
        assert root_client.post(delete, {"post": "yes"}).status_code == 403
        changelist = reverse(f"admin:{model}_changelist")
        body = root_client.get(changelist).content.decode()
        assert "delete_selected" not in body
        response = root_client.post(
            changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
        )
        assert response.status_code == 200  # no action to run: the list again
    assert LedgerEntry.objects.get(pk=entry.pk).amount == entry.amount
    assert ProviderCall.objects.filter(pk=call.pk).exists()


def test_the_audit_log_is_read_only_for_the_superuser_too(root_client: Client, root: User) -> None:
    from django.db import transaction

    from mjweb import audit

    with transaction.atomic():
        entry = audit.record(actor=root, verb=AuditEntry.Verb.CHANGE, reason="x")
    assert root_client.get(reverse("admin:mjweb_auditentry_add")).status_code == 403
    change = reverse("admin:mjweb_auditentry_change", args=[entry.pk])
    assert root_client.get(change).status_code == 200
    assert root_client.post(change, {"reason": "y"}).status_code == 403
    delete = reverse("admin:mjweb_auditentry_delete", args=[entry.pk])
    assert root_client.post(delete, {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).reason == "x"


def test_the_auditors_group_has_view_rights_only() -> None:
    group = Group.objects.get(name=roles.AUDITORS)
    codenames = set(group.permissions.values_list("content_type__app_label", "codename"))
    assert codenames == set(roles.AUDITOR_PERMISSIONS)
    assert all(code.startswith("view_") for _, code in codenames)


def test_ensuring_the_auditors_group_again_changes_nothing_and_keeps_additions() -> None:
    from django.contrib.auth.models import Permission

    group = Group.objects.get(name=roles.AUDITORS)
    extra = Permission.objects.get(codename="view_schedule")
    group.permissions.add(extra)
    group.permissions.remove(Permission.objects.get(codename="view_ledgerentry"))
    again = roles.ensure_auditors()
    assert again is not None and again.pk == group.pk
    assert Group.objects.filter(name=roles.AUDITORS).count() == 1
    codes = set(group.permissions.values_list("codename", flat=True))
    assert {"view_ledgerentry", "view_schedule"} <= codes


def test_operations_on_unknown_objects_are_404(root_client: Client) -> None:
    for url in (
        "/admin/gallery/job/abc/operate/cancel/",
        "/admin/gallery/job/999999/operate/cancel/",
        "/admin/gallery/job/1/operate/explode/",
        "/admin/gallery/job/abc/images/1/thumb/",
        "/admin/mjweb/user/abc/suspend/",
        "/admin/mjweb/user/999999/reactivate/",
    ):
        assert root_client.get(url).status_code == 404, url

"""Every admin action writes its audit entry, in the transaction of its change: both are
written or neither (a failure forced after the first write leaves nothing behind)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, InternalError, transaction
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ

from billing import ledger
from billing.models import CreditAccount, LedgerEntry, Price, Quota
from gallery.models import Job
from mjweb import audit
from mjweb.models import AuditEntry, User
from tests.admin.conftest import World
from tests.requirements import require_postgres

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


@pytest.fixture
def broken_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit write fails after the change it describes was made."""

    def record(**kwargs: Any) -> None:
        raise Boom("the audit log is unavailable")

    monkeypatch.setattr(audit, "record", record)


def only_entry(**filters: Any) -> AuditEntry:
    entries = list(AuditEntry.objects.filter(**filters))
    assert len(entries) == 1, entries
    return entries[0]


# --- credits ---------------------------------------------------------------------------


def grant_form(**overrides: Any) -> dict[str, str]:
    return {
        "kind": "grant",
        "amount": "300",
        "reason": "Refund for an outage",
        "key": str(uuid.uuid4()),
        **overrides,
    }


def test_a_grant_writes_its_ledger_entry_and_its_audit_entry(
    root_client: Client, root: User, alice: User
) -> None:
    account = ledger.account_for(alice)
    url = reverse("admin:billing_creditaccount_credit", args=[account.pk])
    form = grant_form()
    assert root_client.post(url, form).status_code == 302
    assert root_client.post(url, form).status_code == 302  # a double submit
    entry = LedgerEntry.objects.get(key=f"admin:{form['key']}")
    record = only_entry(verb=AuditEntry.Verb.GRANT)
    assert record.actor == root
    assert record.object_id == str(account.pk) and record.object_repr == "Credits of alice"
    assert record.before == {"balance": 1000, "held": 0}
    assert record.after == {"balance": 1300, "held": 0, "amount": 300, "ledger_entry": entry.pk}
    assert record.reason == "Refund for an outage" == entry.memo


def test_an_adjustment_is_audited_as_one(root_client: Client, alice: User) -> None:
    account = ledger.account_for(alice)
    url = reverse("admin:billing_creditaccount_credit", args=[account.pk])
    assert root_client.post(url, grant_form(kind="adjustment", amount="-250")).status_code == 302
    record = only_entry(verb=AuditEntry.Verb.ADJUST)
    assert (record.before["balance"], record.after["balance"]) == (1000, 750)


def test_a_refused_adjustment_records_nothing(root_client: Client, alice: User) -> None:
    account = ledger.account_for(alice)
    url = reverse("admin:billing_creditaccount_credit", args=[account.pk])
    response = root_client.post(url, grant_form(kind="adjustment", amount="-5000"))
    assert response.status_code == 200
    assert "Only 1000 credits are available" in response.content.decode()
    assert not AuditEntry.objects.exists()


@pytest.mark.usefixtures("broken_audit")
def test_a_grant_whose_audit_fails_is_not_written(root_client: Client, alice: User) -> None:
    account = ledger.account_for(alice)
    url = reverse("admin:billing_creditaccount_credit", args=[account.pk])
    form = grant_form()
    with pytest.raises(Boom):
        root_client.post(url, form)
    assert not LedgerEntry.objects.filter(key=f"admin:{form['key']}").exists()
    assert CreditAccount.objects.get(pk=account.pk).balance == 1000
    assert not AuditEntry.objects.exists()


def test_a_grant_whose_ledger_write_fails_is_not_audited(
    root_client: Client, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def grant(*args: Any, **kwargs: Any) -> None:
        raise Boom("the ledger refused")

    monkeypatch.setattr(ledger, "grant", grant)
    account = ledger.account_for(alice)
    url = reverse("admin:billing_creditaccount_credit", args=[account.pk])
    with pytest.raises(Boom):
        root_client.post(url, grant_form())
    assert not AuditEntry.objects.exists()


# --- suspension --------------------------------------------------------------------------


def test_suspend_and_reactivate_are_audited(root_client: Client, root: User, alice: User) -> None:
    url = reverse("admin:mjweb_user_suspend", args=[alice.pk])
    response = root_client.post(url, {"reason": ""})
    assert response.status_code == 200 and "a reason is required" in response.content.decode()
    assert User.objects.get(pk=alice.pk).suspended_at is None
    assert not AuditEntry.objects.exists()
    assert root_client.post(url, {"reason": "chargeback"}).status_code == 302
    alice.refresh_from_db()
    assert alice.suspended_at is not None
    record = only_entry(verb=AuditEntry.Verb.SUSPEND)
    assert (record.actor, record.reason, record.object_id) == (root, "chargeback", str(alice.pk))
    assert record.before == {"suspended_at": None}
    assert record.after == {"suspended_at": alice.suspended_at.isoformat()}
    # Suspending again changes nothing and records nothing.
    assert root_client.post(url, {"reason": "again"}).status_code == 302
    assert AuditEntry.objects.filter(verb=AuditEntry.Verb.SUSPEND).count() == 1
    back = reverse("admin:mjweb_user_reactivate", args=[alice.pk])
    assert root_client.post(back, {"reason": "resolved"}).status_code == 302
    assert User.objects.get(pk=alice.pk).suspended_at is None
    assert only_entry(verb=AuditEntry.Verb.REACTIVATE).reason == "resolved"


def test_bulk_suspension_asks_why_first(root_client: Client, alice: User, bob: User) -> None:
    url = reverse("admin:mjweb_user_changelist")
    data = {"action": "suspend_users", "_selected_action": [alice.pk, bob.pk]}
    response = root_client.post(url, data)
    assert response.status_code == 200
    body = response.content.decode()
    assert "A suspended user can still log in" in body and 'name="apply"' in body
    assert not User.objects.filter(suspended_at__isnull=False).exists()
    response = root_client.post(url, {**data, "apply": "1", "reason": "spam wave"})
    assert response.status_code == 302
    assert User.objects.filter(suspended_at__isnull=False).count() == 2
    assert AuditEntry.objects.filter(verb=AuditEntry.Verb.SUSPEND, reason="spam wave").count() == 2


@pytest.mark.usefixtures("broken_audit")
def test_a_suspension_whose_audit_fails_does_not_happen(root_client: Client, alice: User) -> None:
    with pytest.raises(Boom):
        root_client.post(reverse("admin:mjweb_user_suspend", args=[alice.pk]), {"reason": "x"})
    assert User.objects.get(pk=alice.pk).suspended_at is None


# --- jobs --------------------------------------------------------------------------------


def operate(client: Client, job: Job, name: str, reason: str = "stuck for a day") -> Any:
    return client.post(
        reverse("admin:gallery_job_operate", args=[job.pk, name]), {"reason": reason}
    )


def test_releasing_a_stuck_job_fails_it_refunds_it_and_audits_it(
    root_client: Client, root: User, world: World
) -> None:
    job = world.running
    assert job.charge == Job.Charge.HELD
    response = operate(root_client, job, "release", reason="")
    assert "a reason is required" in response.content.decode()
    assert operate(root_client, job, "release").status_code == 302
    job.refresh_from_db()
    assert (job.status, job.fail_kind, job.charge) == ("failed", "provider_error", "released")
    assert job.fail_note == "Released by root: stuck for a day"
    assert job.fail_reason == ""  # the admin's words are not shown to the user as the provider's
    refund = LedgerEntry.objects.get(job=job, kind=LedgerEntry.Kind.RELEASE)
    record = only_entry(verb=AuditEntry.Verb.RELEASE)
    assert record.before == {"status": "running", "charge": "held", "fail_kind": ""}
    assert record.after == {
        "status": "failed",
        "charge": "released",
        "fail_kind": "provider_error",
        "ledger_entry": refund.pk,
    }
    assert CreditAccount.objects.get(user=world.alice).held == 0
    # A finished job cannot be released again.
    assert operate(root_client, job, "release").status_code == 302
    assert AuditEntry.objects.count() == 1


@pytest.mark.usefixtures("broken_audit")
def test_a_release_whose_audit_fails_leaves_the_job_and_its_hold(
    root_client: Client, world: World
) -> None:
    with pytest.raises(Boom):
        operate(root_client, world.running, "release")
    job = Job.objects.get(pk=world.running.pk)
    assert (job.status, job.charge) == ("running", "held")
    assert not LedgerEntry.objects.filter(job=job, kind=LedgerEntry.Kind.RELEASE).exists()
    assert CreditAccount.objects.get(user=world.alice).held == job.cost


def test_a_release_whose_refund_fails_is_not_audited(
    root_client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def release(*args: Any, **kwargs: Any) -> None:
        raise Boom("the ledger refused")

    monkeypatch.setattr(ledger, "release", release)
    with pytest.raises(Boom):
        operate(root_client, world.running, "release")
    assert Job.objects.get(pk=world.running.pk).status == "running"
    assert not AuditEntry.objects.exists()


def test_cancelling_a_queued_job_refunds_and_audits(
    root_client: Client, alice: User, world: World
) -> None:
    from gallery import services

    queued = services.submit(owner=alice, prompt="waiting")
    assert operate(root_client, world.running, "cancel").status_code == 302  # at the provider
    assert Job.objects.get(pk=world.running.pk).status == "running"
    assert operate(root_client, queued, "cancel", reason="user asked").status_code == 302
    queued.refresh_from_db()
    assert (queued.status, queued.charge) == ("cancelled", "released")
    assert queued.fail_note == "Cancelled by root: user asked"
    record = only_entry(verb=AuditEntry.Verb.CANCEL)
    assert record.after["ledger_entry"] == LedgerEntry.objects.get(job=queued, kind="release").pk


@pytest.mark.usefixtures("broken_audit")
def test_a_cancel_whose_audit_fails_does_not_happen(root_client: Client, alice: User) -> None:
    from gallery import services

    queued = services.submit(owner=alice, prompt="waiting")
    with pytest.raises(Boom):
        operate(root_client, queued, "cancel")
    queued.refresh_from_db()
    assert (queued.status, queued.charge) == ("queued", "held")


def test_resync_enqueues_a_refresh_and_audits_it(root_client: Client, world: World) -> None:
    OrmQ.objects.all().delete()
    assert operate(root_client, world.running, "resync", reason="").status_code == 302
    assert [q.func() for q in OrmQ.objects.all()] == ["gallery.tasks.refresh"]
    assert OrmQ.objects.get().task["args"] == (world.running.pk,)
    assert only_entry(verb=AuditEntry.Verb.RESYNC).object_id == str(world.running.pk)
    # A job the provider has never seen has nothing to fetch.
    assert operate(root_client, world.cancelled, "resync").status_code == 302
    assert OrmQ.objects.count() == 1


@pytest.mark.usefixtures("broken_audit")
def test_a_resync_whose_audit_fails_enqueues_nothing(root_client: Client, world: World) -> None:
    OrmQ.objects.all().delete()
    with pytest.raises(Boom):
        operate(root_client, world.running, "resync")
    assert not OrmQ.objects.exists()


def test_bulk_release_acts_on_each_job(root_client: Client, alice: User, world: World) -> None:
    from gallery import services
    from tests.admin.conftest import running

    other = running(services.submit(owner=alice, prompt="stuck too"), "1730000000000099")
    url = reverse("admin:gallery_job_changelist")
    ids = [world.running.pk, other.pk, world.succeeded.pk]
    data = {"action": "release_jobs", "_selected_action": ids}
    assert root_client.post(url, data).status_code == 200  # asks why
    response = root_client.post(url, {**data, "apply": "1", "reason": "provider outage"})
    assert response.status_code == 302
    assert set(Job.objects.filter(pk__in=ids, status="failed").values_list("pk", flat=True)) == {
        world.running.pk,
        other.pk,
    }
    assert AuditEntry.objects.filter(verb=AuditEntry.Verb.RELEASE).count() == 2


# --- prices, quotas, users, groups ----------------------------------------------------------


def test_a_price_change_is_audited_with_before_after_and_reason(
    root_client: Client, root: User
) -> None:
    price = Price.objects.get(action="imagine", mode="fast")
    url = reverse("admin:billing_price_change", args=[price.pk])
    data = {"action": "imagine", "mode": "fast", "credits": "60", "audit_reason": "new rates"}
    assert root_client.post(url, data).status_code == 302
    record = only_entry(verb=AuditEntry.Verb.CHANGE)
    assert (record.before, record.after) == ({"credits": 56}, {"credits": 60})
    assert record.reason == "new rates" and record.object_repr == "Imagine (fast): 60 credits"
    # Saving without a change records nothing.
    assert root_client.post(url, {**data, "audit_reason": ""}).status_code == 302
    assert AuditEntry.objects.count() == 1


def test_list_editable_price_changes_are_audited(root_client: Client) -> None:
    prices = list(Price.objects.order_by("action", "mode"))
    data: dict[str, Any] = {
        "form-TOTAL_FORMS": str(len(prices)),
        "form-INITIAL_FORMS": str(len(prices)),
        "_save": "Save",
    }
    for n, price in enumerate(prices):
        data[f"form-{n}-id"] = str(price.pk)
        data[f"form-{n}-credits"] = str(price.credits + (1 if n < 2 else 0))
    response = root_client.post(reverse("admin:billing_price_changelist"), data)
    assert response.status_code == 302
    records = AuditEntry.objects.filter(verb=AuditEntry.Verb.CHANGE).order_by("id")
    assert [r.object_id for r in records] == [str(prices[0].pk), str(prices[1].pk)]
    assert [r.after["credits"] for r in records] == [prices[0].credits + 1, prices[1].credits + 1]


@pytest.mark.usefixtures("broken_audit")
def test_a_price_change_whose_audit_fails_is_not_saved(root_client: Client) -> None:
    price = Price.objects.get(action="imagine", mode="fast")
    url = reverse("admin:billing_price_change", args=[price.pk])
    with pytest.raises(Boom):
        root_client.post(url, {"action": "imagine", "mode": "fast", "credits": "1"})
    assert Price.objects.get(pk=price.pk).credits == 56


def test_quota_add_and_delete_are_audited(root_client: Client, alice: User) -> None:
    data = {"user": alice.pk, "allowed_modes": "relax", "jobs_per_day": "5", "jobs_at_once": ""}
    assert root_client.post(reverse("admin:billing_quota_add"), data).status_code == 302
    quota = Quota.objects.get(user=alice)
    added = only_entry(verb=AuditEntry.Verb.ADD)
    assert added.after["allowed_modes"] == "relax" and added.after["jobs_per_day"] == 5
    delete = reverse("admin:billing_quota_delete", args=[quota.pk])
    assert root_client.post(delete, {"post": "yes"}).status_code == 302
    deleted = only_entry(verb=AuditEntry.Verb.DELETE)
    assert deleted.before["jobs_per_day"] == 5 and deleted.object_id == str(quota.pk)
    assert not Quota.objects.exists()


def test_a_user_edit_and_a_password_change_are_audited_without_secrets(
    root_client: Client, alice: User
) -> None:
    url = reverse("admin:mjweb_user_change", args=[alice.pk])
    data = {
        "username": "alice",
        "email": "alice@new.example.com",
        "is_active": "on",
        "is_staff": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "audit_reason": "she asked",
    }
    response = root_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    record = only_entry(verb=AuditEntry.Verb.CHANGE)
    assert record.before["email"] == "alice@example.com"
    assert record.after["email"] == "alice@new.example.com"
    assert record.after["is_staff"] is True and record.reason == "she asked"
    password = reverse("admin:auth_user_password_change", args=[alice.pk])
    data = {"password1": "a new long phrase 3", "password2": "a new long phrase 3"}
    data["set_usable_password"] = "true"
    assert root_client.post(password, data).status_code == 302
    changed = only_entry(verb=AuditEntry.Verb.PASSWORD)
    assert changed.after == {"usable_password": True}
    text = str(list(AuditEntry.objects.values_list("before", "after")))
    assert "md5$" not in text and "password" not in text.replace("usable_password", "")


def test_a_groups_permissions_are_in_its_audit_entry(root_client: Client) -> None:
    permission = Permission.objects.get(codename="view_job")
    data = {"name": "Support", "permissions": [permission.pk]}
    assert root_client.post(reverse("admin:auth_group_add"), data).status_code == 302
    record = only_entry(verb=AuditEntry.Verb.ADD)
    assert record.after["name"] == "Support"
    assert record.after["permissions"] == [str(permission)]
    group = Group.objects.get(name="Support")
    data = {"name": "Support", "permissions": []}
    url = reverse("admin:auth_group_change", args=[group.pk])
    assert root_client.post(url, data).status_code == 302
    change = only_entry(verb=AuditEntry.Verb.CHANGE)
    assert change.before == {"permissions": [str(permission)]} and change.after == {
        "permissions": []
    }


def test_unlocking_a_login_is_audited(root_client: Client, client: Client, alice: User) -> None:
    from axes.models import AccessAttempt

    for _ in range(5):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    attempt = AccessAttempt.objects.get(username="alice")
    delete = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert root_client.post(delete, {"post": "yes"}).status_code == 302
    assert only_entry(verb=AuditEntry.Verb.DELETE).object_repr == str(attempt)


# --- the log itself ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_record_outside_a_transaction_is_refused(django_user_model: Any) -> None:
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit.record(actor=root, verb=AuditEntry.Verb.CHANGE)


def test_postgresql_refuses_to_change_or_delete_an_audit_entry(root: User) -> None:
    require_postgres()
    with transaction.atomic():
        entry = audit.record(actor=root, verb=AuditEntry.Verb.CHANGE, reason="kept")
    for change in (
        lambda: AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten"),
        lambda: AuditEntry.objects.filter(pk=entry.pk).delete(),
    ):
        with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
            change()
    assert AuditEntry.objects.get(pk=entry.pk).reason == "kept"


def test_the_audit_log_lists_and_shows_changes(root_client: Client, root: User) -> None:
    price = Price.objects.get(action="reroll", mode="turbo")
    url = reverse("admin:billing_price_change", args=[price.pk])
    root_client.post(url, {"action": "reroll", "mode": "turbo", "credits": "170"})
    entry = AuditEntry.objects.get()
    body = root_client.get(reverse("admin:mjweb_auditentry_changelist")).content.decode()
    assert reverse("admin:billing_price_change", args=[price.pk]) in body
    page = root_client.get(reverse("admin:mjweb_auditentry_change", args=[entry.pk]))
    text = page.content.decode()
    assert "<th>credits</th><td><pre>168</pre></td><td><pre>170</pre></td>" in text

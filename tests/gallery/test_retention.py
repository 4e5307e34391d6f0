"""gallery.retention: what `manage.py prune` empties and deletes, and what it keeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule, Task

from billing.models import LedgerEntry
from gallery import retention
from gallery.models import ProviderCall, WebhookEvent
from mjweb.models import AuditEntry

pytestmark = pytest.mark.django_db


def call(age: timedelta, body: str = '{"id": "1"}') -> ProviderCall:
    row = ProviderCall.objects.create(
        provider="simulator",
        method="POST",
        path="/mj/submit/imagine",
        status_code=200,
        latency_ms=5,
        request_body=body,
        response_body=body,
    )
    ProviderCall.objects.filter(pk=row.pk).update(created_at=timezone.now() - age)
    return row


def failed_task(age: timedelta, name: str) -> None:
    at = timezone.now() - age
    Task.objects.create(
        id=name, name=name, func="gallery.tasks.ingest", started=at, stopped=at, success=False
    )


def test_prune_empties_old_call_bodies_and_deletes_old_keys_and_failures(
    settings: Any, monkeypatch: Any, capsys: Any
) -> None:
    settings.MJWEB_KEEP_CALL_BODIES_DAYS = 30
    settings.MJWEB_KEEP_FAILED_TASKS_DAYS = 30
    settings.MJ_WEBHOOK_MAX_AGE = 3600
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches
    old = [call(timedelta(days=31)) for _ in range(5)]
    recent = call(timedelta(days=29))
    WebhookEvent.objects.create(provider="piapi", key="a:1")
    WebhookEvent.objects.filter(key="a:1").update(received_at=timezone.now() - timedelta(days=8))
    WebhookEvent.objects.create(provider="piapi", key="b:2")
    failed_task(timedelta(days=31), "old-failure")
    failed_task(timedelta(days=1), "new-failure")
    audit_before, ledger_before = AuditEntry.objects.count(), LedgerEntry.objects.count()

    call_command("prune")
    assert "provider-call bodies emptied: 5; webhook keys deleted: 1; failed tasks deleted: 1" in (
        capsys.readouterr().out
    )
    for row in old:  # the row stays: it is the audit of the call
        row.refresh_from_db()
        assert (row.request_body, row.response_body, row.status_code) == ("", "", 200)
    recent.refresh_from_db()
    assert recent.request_body == '{"id": "1"}'
    assert list(WebhookEvent.objects.values_list("key", flat=True)) == ["b:2"]
    assert list(Task.objects.values_list("name", flat=True)) == ["new-failure"]
    assert (AuditEntry.objects.count(), LedgerEntry.objects.count()) == (
        audit_before,
        ledger_before,
    )
    assert retention.prune() == retention.Pruned(0, 0, 0)  # nothing left to do


def test_zero_days_keeps_for_ever_and_a_long_replay_window_keeps_webhook_keys(
    settings: Any,
) -> None:
    settings.MJWEB_KEEP_CALL_BODIES_DAYS = 0
    settings.MJWEB_KEEP_FAILED_TASKS_DAYS = 0
    settings.MJ_WEBHOOK_MAX_AGE = 6 * 24 * 3600  # replays refused only after 6 days
    row = call(timedelta(days=400))
    failed_task(timedelta(days=400), "ancient")
    WebhookEvent.objects.create(provider="piapi", key="c:3")
    WebhookEvent.objects.filter(key="c:3").update(received_at=timezone.now() - timedelta(days=8))
    assert retention.prune() == retention.Pruned(0, 0, 0)  # kept: 8 days < 2 x 6 days
    row.refresh_from_db()
    assert row.request_body


def test_migrate_schedules_the_prune_daily() -> None:
    schedule = Schedule.objects.get(name="gallery.prune")
    assert (schedule.func, schedule.schedule_type) == ("gallery.tasks.prune", Schedule.DAILY)


def test_prune_deletes_pictures_no_job_uses_after_a_day(alice: Any) -> None:
    from django.core.files.storage import default_storage

    from gallery import references, services
    from gallery.models import Reference
    from tests.gallery.factories import png_bytes

    used = references.take(alice, png_bytes(color="#102030"))
    services.describe(owner=alice, image=used)
    unused = references.take(alice, png_bytes(color="#405060"))
    fresh = references.take(alice, png_bytes(color="#708090"))
    two_days_ago = timezone.now() - timedelta(days=2)
    Reference.objects.filter(pk__in=[used.pk, unused.pk]).update(created_at=two_days_ago)
    assert retention.prune().unused_pictures == 1
    assert set(Reference.objects.values_list("pk", flat=True)) == {used.pk, fresh.pk}
    assert not default_storage.exists(unused.file.name)
    assert default_storage.exists(used.file.name)

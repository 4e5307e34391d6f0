"""The rules of a job's life that used to be written in several places, and disagreed.

Each has one home now (Job, its queryset, gallery.lifecycle, gallery.sync); these tests hold
every caller to the same answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from billing.models import LedgerEntry
from gallery import lifecycle, operations, services, sync
from gallery.models import Job, ProviderCall
from gallery.providers.base import TaskSnapshot, TaskStatus
from tests.gallery.factories import FakeProvider, make_job

pytestmark = pytest.mark.django_db

SUCCESS = TaskSnapshot(
    provider_job_id="t-late",
    status=TaskStatus.SUCCEEDED,
    progress=100,
    image_url="https://cdn.example.com/late.png",
)


def running(job: Job, provider_job_id: str = "t-late") -> Job:
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, provider_job_id=provider_job_id)
    job.refresh_from_db()
    return job


def queued_tasks(name: str) -> int:
    return sum(1 for task in OrmQ.objects.all() if task.func() == f"gallery.tasks.{name}")


def test_after_end_and_release_a_late_success_writes_nothing_and_queues_nothing(
    alice: Any, admin_user: Any
) -> None:
    job = running(services.submit(owner=alice, prompt="a fox"))
    assert operations.release(job, actor=admin_user, reason="stuck at the provider")
    job.refresh_from_db()
    assert (job.status, job.fail_kind, job.charge) == ("failed", "provider_error", "released")
    ingests = queued_tasks("ingest")

    sync.apply_snapshot(job, SUCCESS)
    assert not sync.record_result(job, SUCCESS)
    assert not lifecycle.succeed(job)

    job.refresh_from_db()
    assert (job.status, job.result_url, job.charge) == ("failed", "", "released")
    assert queued_tasks("ingest") == ingests
    assert not LedgerEntry.objects.filter(job=job, kind="capture").exists()
    assert not job.can_resync
    assert job not in Job.objects.pollable(job.provider)


def test_after_a_timeout_a_late_success_is_recorded_and_queued_once(alice: Any) -> None:
    job = running(services.submit(owner=alice, prompt="a fox"))
    Job.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    job.refresh_from_db()
    assert lifecycle.fail(job, kind=Job.FailKind.TIMEOUT, reason="late")
    assert job.accepts_late_success and job.can_resync
    assert job in Job.objects.pollable(job.provider)
    ingests = queued_tasks("ingest")

    sync.apply_snapshot(job, SUCCESS)
    sync.apply_snapshot(job, SUCCESS)  # a duplicate report
    job.refresh_from_db()
    assert job.result_url == SUCCESS.image_url
    assert queued_tasks("ingest") == ingests + 1
    assert lifecycle.succeed(job)
    job.refresh_from_db()
    assert (job.status, job.charge, job.fail_kind) == ("succeeded", "captured", "")


@pytest.mark.parametrize("kind", ["rejected_prompt", "provider_error", "image_unavailable"])
def test_no_failure_but_a_timeout_takes_a_success(alice: Any, kind: str) -> None:
    job = make_job(alice, status=Job.Status.FAILED, fail_kind=kind, provider_job_id="t-9")
    assert not job.transition(Job.Status.SUCCEEDED)
    assert not lifecycle.succeed(job)
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED


# (status, fail_kind, provider_job_id, remix_prompt) -> may a re-sync change anything?
RESYNC = [
    ("queued", "", "", "", False),  # not at the provider yet
    ("submitted", "", "t-1", "", True),
    ("running", "", "t-2", "", True),
    ("modal", "", "t-3", "", True),  # waiting for the user: the provider may still move it
    ("modal", "", "", "", False),  # asked before the press (PiAPI): not at the provider
    ("failed", "timeout", "t-4", "", True),  # may still succeed late
    ("failed", "rejected_prompt", "t-5", "", False),
    ("failed", "provider_error", "t-6", "", False),
    ("failed", "image_unavailable", "t-7", "", False),
    ("succeeded", "", "t-8", "", False),
    ("cancelled", "cancelled", "", "", False),
]


@pytest.mark.parametrize(("status", "fail_kind", "task", "remix", "expected"), RESYNC)
def test_resync_has_one_answer_per_state_in_the_studio_and_the_admin(
    alice: Any,
    admin_client: Client,
    status: str,
    fail_kind: str,
    task: str,
    remix: str,
    expected: bool,
) -> None:
    job = make_job(
        alice, status=status, fail_kind=fail_kind, provider_job_id=task, remix_prompt=remix
    )
    assert job.can_resync is expected

    studio = Client()
    studio.force_login(alice)
    page = studio.get(reverse("gallery:job", args=[job.code])).content.decode()
    assert (reverse("gallery:resync", args=[job.code]) in page) is expected

    admin_page = admin_client.get(reverse("admin:gallery_job_change", args=[job.pk]))
    operate = reverse("admin:gallery_job_operate", args=[job.pk, "resync"])
    assert (operate in admin_page.content.decode()) is expected

    refreshes = queued_tasks("refresh")
    answer = studio.post(reverse("gallery:resync", args=[job.code]), HTTP_HX_REQUEST="true")
    assert ("Asking the provider now" in answer.content.decode()) is expected
    assert queued_tasks("refresh") == refreshes + int(expected)


def test_cancel_and_dispatch_agree_on_when_a_lease_is_free(alice: Any) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    soon = timezone.now() + timedelta(seconds=60)
    Job.objects.filter(pk=job.pk).update(dispatch_lease_until=soon)
    job.refresh_from_db()
    assert job not in Job.objects.lease_free()
    assert not lifecycle.cancel(job)  # a dispatch holds it: it may be submitting right now
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED

    # The dispatch died: its lease ran out, so the job is free for a dispatch and a cancel.
    Job.objects.filter(pk=job.pk).update(dispatch_lease_until=timezone.now() - timedelta(1))
    job.refresh_from_db()
    assert job in Job.objects.lease_free()
    assert lifecycle.cancel(job)
    job.refresh_from_db()
    assert (job.status, job.charge) == ("cancelled", "released")


def test_a_remix_answer_moves_the_status_through_transition(alice: Any) -> None:
    job = make_job(alice, status=Job.Status.MODAL, remix=True)
    answered = services.answer_modal(job=job, prompt="a red fox")
    assert (answered.status, answered.prompt) == ("queued", "a red fox")
    with pytest.raises(services.SubmitError):
        services.answer_modal(job=job, prompt="again")  # the instance still says MODAL


def test_jobs_counted_today_are_the_same_for_the_limit_and_the_admin(
    alice: Any, admin_client: Client
) -> None:
    make_job(alice, status=Job.Status.SUCCEEDED)
    make_job(alice, status=Job.Status.RUNNING)
    make_job(alice, status=Job.Status.FAILED)
    make_job(alice, status=Job.Status.CANCELLED)
    make_job(alice, action=Job.Action.IMPORT, status=Job.Status.SUCCEEDED)
    from gallery import limits

    assert limits.jobs_today(alice) == 2
    page = admin_client.get(reverse("admin:mjweb_user_changelist")).content.decode()
    assert '<td class="field-jobs_today">2</td>' in page


def test_a_failed_call_is_one_rule_in_sql_and_in_python() -> None:
    rows = [
        ProviderCall.objects.create(provider="p", method="GET", path="/", latency_ms=1, **fields)
        for fields in (
            {"status_code": 200},
            {"status_code": 399},
            {"status_code": 400},
            {"status_code": 503},
            {"status_code": None},
            {"status_code": 200, "error": "reset"},
        )
    ]
    in_sql = set(ProviderCall.objects.failed().values_list("pk", flat=True))
    assert in_sql == {row.pk for row in rows if row.failed}
    assert len(in_sql) == 4


def test_an_unknown_provider_is_refused_at_start_up(settings: Any) -> None:
    from gallery import checks

    assert checks.provider_is_known() == []
    settings.MJ_PROVIDER = "midjourney-direct"
    errors = checks.provider_is_known()
    assert [error.id for error in errors] == ["gallery.E001"]
    assert "cometapi, piapi, simulator" in errors[0].msg


def test_provider_said_stands_only_before_the_providers_own_words(
    alice: Any, admin_user: Any, fake: FakeProvider
) -> None:
    fake.routes["/mj/task/list-by-condition"] = lambda request: httpx.Response(200, json=[])
    studio = Client()
    studio.force_login(alice)

    def card(job: Job) -> str:
        return studio.get(reverse("gallery:job", args=[job.code])).content.decode()

    timed_out = running(services.submit(owner=alice, prompt="a fox"), "t-20")
    Job.objects.filter(pk=timed_out.pk).update(deadline_at=timezone.now() - timedelta(hours=1))
    sync.tick(timed_out.provider)  # no read gets through: the deadline and its grace passed
    timed_out.refresh_from_db()
    assert timed_out.fail_kind == "timeout" and "deadline" in timed_out.fail_note
    assert "Provider said" not in card(timed_out)

    released = running(services.submit(owner=alice, prompt="a fox"), "t-21")
    operations.release(released, actor=admin_user, reason="a private note about this user")
    page = card(released)
    assert "Provider said" not in page and "private note" not in page

    failed = running(services.submit(owner=alice, prompt="a fox"), "t-22")
    report = TaskSnapshot(provider_job_id="t-22", status=TaskStatus.FAILED, fail_reason="任务超时")
    sync.apply_snapshot(failed, report)
    assert "Provider said: <q>任务超时</q>" in card(failed)

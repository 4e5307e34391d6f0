"""Every state a job waits in has a bound and an owner that moves it on (gallery.sweep):
remix questions expire, killed ingests are restarted, a lagging MODAL after our answer is
not a new question, and a refused repeat answer is read, never failed."""

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
from gallery import ingest, lifecycle, services, sweep, sync, tasks
from gallery.models import Job
from gallery.providers.base import TaskSnapshot, TaskStatus
from tests.conftest import load
from tests.gallery.factories import FakeProvider, json_answer, make_finished_job, png_bytes

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def queued(name: str) -> int:
    return sum(1 for q in OrmQ.objects.all() if q.func() == f"gallery.tasks.{name}")


def remix_question(alice: Any, *, asked: timedelta = timedelta(0), task: str = "4001") -> Job:
    """A held reroll that the provider parked in MODAL `asked` ago, unanswered."""
    alice.remix_mode = True
    alice.save(update_fields=["remix_mode"])
    child = services.press(owner=alice, parent=make_finished_job(alice), action="reroll")
    Job.objects.filter(pk=child.pk).update(
        status=Job.Status.MODAL, provider_job_id=task, submitted_at=timezone.now() - asked
    )
    child.refresh_from_db()
    return child


# --- an unanswered remix question ---------------------------------------------------------


def test_an_unanswered_remix_question_expires_and_its_credits_come_back(
    alice: Any, settings: Any
) -> None:
    settings.MJ_REMIX_EXPIRY = 3600
    fresh = remix_question(alice, asked=timedelta(minutes=59), task="4001")
    stale = remix_question(alice, asked=timedelta(minutes=61), task="4002")
    sweep.run()
    fresh.refresh_from_db()
    stale.refresh_from_db()
    assert (fresh.status, fresh.charge) == ("modal", "held")
    assert (stale.status, stale.fail_kind, stale.charge) == ("cancelled", "cancelled", "released")
    assert "Until" in fresh.stage and "credits come back" in fresh.stage


def test_the_user_can_cancel_a_question_the_provider_parked(
    alice: Any, alice_client: Client
) -> None:
    job = remix_question(alice)
    assert job.can_cancel
    response = alice_client.post(reverse("gallery:cancel", args=[job.code]), **HX)
    assert response.status_code == 200
    job.refresh_from_db()
    assert (job.status, job.charge) == ("cancelled", "released")
    assert LedgerEntry.objects.filter(job=job, kind="release").count() == 1


def test_an_unanswered_question_is_not_polled(fake: FakeProvider, alice: Any) -> None:
    job = remix_question(alice)
    assert job not in Job.objects.pollable(job.provider)
    assert sync.tick(job.provider) is False  # nothing to ask: the chain rests
    assert fake.requests == []


# --- a lagging MODAL after our answer, and a refused repeat ------------------------------


def answered(alice: Any, fake: FakeProvider) -> Job:
    job = remix_question(alice)
    fake.routes["/mj/submit/modal"] = json_answer(load("cometapi/submit_success.json"))
    services.answer_modal(job=job, prompt="a fox at night")
    tasks.submit_modal(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED and job.modal_answered_at is not None
    return job


def modal(job: Job) -> TaskSnapshot:
    return TaskSnapshot(provider_job_id=job.provider_job_id, status=TaskStatus.MODAL)


def test_a_modal_report_right_after_our_answer_is_a_stale_copy(
    alice: Any, fake: FakeProvider
) -> None:
    job = answered(alice, fake)
    sync.apply_snapshot(job, modal(job))
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED  # the prompt box does not reopen
    assert job.polls
    # Long after our answer, a provider asking again is a real question.
    past = timezone.now() - Job.MODAL_ECHO - timedelta(seconds=1)
    Job.objects.filter(pk=job.pk).update(modal_answered_at=past)
    job.refresh_from_db()
    sync.apply_snapshot(job, modal(job))
    job.refresh_from_db()
    assert job.status == Job.Status.MODAL


def test_a_refused_repeat_answer_is_read_not_failed(alice: Any, fake: FakeProvider) -> None:
    job = answered(alice, fake)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.MODAL)  # the card reopened
    job.refresh_from_db()
    fake.routes["/mj/submit/modal"] = json_answer(load("cometapi/submit_validation.json"))
    services.answer_modal(job=job, prompt="a fox at night, again")
    refreshes = queued("refresh")
    tasks.submit_modal(job.pk)
    job.refresh_from_db()
    assert (job.status, job.charge, job.fail_kind) == ("submitted", "held", "")
    assert queued("refresh") == refreshes + 1


# --- a result whose ingest was killed -------------------------------------------------------


def recorded(alice: Any) -> Job:
    job = services.submit(owner=alice, prompt="a fox")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, provider_job_id="4101")
    job.refresh_from_db()
    snapshot = TaskSnapshot(
        provider_job_id="4101",
        status=TaskStatus.SUCCEEDED,
        progress=100,
        image_url="http://127.0.0.1:8001/mj/image/4101",
    )
    assert sync.record_result(job, snapshot)
    job.refresh_from_db()
    return job


def test_a_killed_ingest_is_restarted_by_the_sweeper(
    alice: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.MJ_IMAGE_HOSTS = ["127.0.0.1"]
    job = recorded(alice)  # its ingest was queued ... and the worker died with it
    assert job.awaits_ingest and job.ingest_due_at > timezone.now()
    ingests = queued("ingest")
    sweep.run()
    assert queued("ingest") == ingests  # not due yet: the first ingest may still be running
    Job.objects.filter(pk=job.pk).update(ingest_due_at=timezone.now() - timedelta(seconds=1))
    sweep.run()
    sweep.run()  # a second sweeper finds the job claimed
    assert queued("ingest") == ingests + 1
    monkeypatch.setattr(ingest.downloads, "download", lambda url, **kw: png_bytes((512, 512)))
    tasks.ingest(job.pk)
    job.refresh_from_db()
    assert (job.status, job.charge) == ("succeeded", "captured")


def test_an_ingest_that_keeps_dying_fails_the_job_and_releases_it(alice: Any) -> None:
    job = recorded(alice)
    Job.objects.filter(pk=job.pk).update(
        ingest_attempts=ingest.RUNS, ingest_due_at=timezone.now() - timedelta(seconds=1)
    )
    sweep.run()
    job.refresh_from_db()
    assert (job.status, job.fail_kind, job.charge) == ("failed", "image_unavailable", "released")


def test_a_resync_restarts_the_ingest_of_a_recorded_result(alice: Any) -> None:
    job = recorded(alice)
    ingests = queued("ingest")
    assert sync.request_refresh(job)
    assert queued("ingest") == ingests + 1


def test_a_late_success_after_release_is_not_ingested_by_the_sweeper(
    alice: Any, admin_user: Any
) -> None:
    job = recorded(alice)
    from gallery import operations

    assert operations.release(job, actor=admin_user, reason="stuck")
    Job.objects.filter(pk=job.pk).update(ingest_due_at=timezone.now() - timedelta(seconds=1))
    ingests = queued("ingest")
    sweep.run()
    assert queued("ingest") == ingests
    assert not lifecycle.succeed(Job.objects.get(pk=job.pk))


def test_nothing_at_the_provider_is_left_without_a_poll(alice: Any, fake: FakeProvider) -> None:
    fake.routes["/mj/task/list-by-condition"] = lambda r: httpx.Response(200, json=[])
    job = services.submit(owner=alice, prompt="a fox")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUBMITTED, provider_job_id="4201")
    polls = queued("poll")
    sweep.run()  # the chain died: the sweeper starts one
    assert queued("poll") == polls + 1

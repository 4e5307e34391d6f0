"""Never a second provider task for one job: a submit whose answer was lost is reconciled
before it is sent again. The worker is "killed" at every point of a submit, then the job is
redelivered as the queue would, and the provider's tasks are counted.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gallery import dispatch, fitting, lifecycle, services, sync, tasks, upstream, webhooks
from gallery.models import Job, SuspectedDuplicate
from tests.conftest import load
from tests.gallery.factories import FakeProvider

pytestmark = pytest.mark.django_db


class Crash(BaseException):
    """The worker dies here (BaseException: nothing of ours catches it)."""


class Provider:
    """A CometAPI that makes a task for every submit it receives, with the submit's state."""

    def __init__(self, fake: FakeProvider) -> None:
        self.tasks: dict[str, str] = {}  # task id -> state
        fake.routes["/mj/submit/imagine"] = self.submit

    def submit(self, request: httpx.Request) -> httpx.Response:
        task_id = str(1773314942177000 + len(self.tasks))
        self.tasks[task_id] = json.loads(request.content)["state"]
        return httpx.Response(200, json={**load("cometapi/submit_success.json"), "result": task_id})

    def made_for(self, job: Job) -> list[str]:
        return [task for task, state in self.tasks.items() if state == str(job.code)]


@pytest.fixture
def provider(fake: FakeProvider) -> Provider:
    return Provider(fake)


def crash_at(point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next dispatch die at `point`."""
    if point == "before_the_request":
        monkeypatch.setattr(upstream, "connect", _raise)
    elif point == "after_the_provider_made_it":
        real = dispatch._submit

        def submitted_then_crash(job: Job) -> Any:
            real(job)
            raise Crash

        monkeypatch.setattr(dispatch, "_submit", submitted_then_crash)
    elif point == "before_the_answer_is_recorded":
        monkeypatch.setattr(fitting, "submission", _raise)
    elif point == "after_the_answer_is_recorded":
        monkeypatch.setattr(sync, "kick", _raise)


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise Crash


def redeliver(job: Job) -> Job:
    """The lease of the dead run runs out and the queue delivers the dispatch again."""
    Job.objects.filter(pk=job.pk).update(
        dispatch_lease_until=timezone.now() - timedelta(seconds=1), next_attempt_at=None
    )
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    return job


def after_the_grace(job: Job, settings: Any) -> Job:
    grace = timedelta(seconds=settings.MJ_SUBMIT_GRACE + 1)
    Job.objects.filter(pk=job.pk, submit_sent_at__isnull=False).update(
        submit_sent_at=timezone.now() - grace
    )
    return redeliver(job)


POINTS = [
    "before_the_request",
    "after_the_provider_made_it",
    "before_the_answer_is_recorded",
    "after_the_answer_is_recorded",
]


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_anywhere_in_a_submit_never_makes_an_unrecorded_second_task(
    provider: Provider,
    alice: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    with monkeypatch.context() as patch:
        crash_at(point, patch)
        with pytest.raises(Crash):
            tasks.dispatch(job.pk)
    job = redeliver(job)  # within the grace: a task may exist, nothing is sent
    job = after_the_grace(job, settings)  # nothing found it: sent again, or already done
    job = redeliver(job)  # a further redelivery changes nothing
    made = provider.made_for(job)
    suspects = SuspectedDuplicate.objects.filter(job=job).count()
    assert job.status == Job.Status.SUBMITTED and job.provider_job_id in made
    assert len(made) == 1 or suspects == len(made) - 1, (made, suspects)
    assert len(made) <= 2
    assert job.charge == Job.Charge.HELD


def hook(client: Client, task_id: str, state: str) -> Any:
    url = reverse("gallery:hook_cometapi", args=[webhooks.path_token()])
    body = {**load("cometapi/fetch_in_progress.json"), "id": task_id, "state": state}
    return client.post(url, json.dumps(body), content_type="application/json")


def test_a_task_that_reports_a_lost_submit_is_adopted_and_nothing_is_resent(
    provider: Provider, alice: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, client: Client
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    with monkeypatch.context() as patch:
        crash_at("after_the_provider_made_it", patch)
        with pytest.raises(Crash):
            tasks.dispatch(job.pk)
    job = redeliver(job)  # the dead run's lease ran out; within the grace nothing is sent
    assert not job.can_cancel  # it may be at the provider: too late to refund it here
    assert "answer was lost" in job.stage
    (task_id,) = provider.made_for(job)
    assert hook(client, task_id, str(job.code)).json() == {"ok": True}  # its notifyHook
    job.refresh_from_db()
    assert (job.status, job.provider_job_id, job.submit_sent_at) == ("submitted", task_id, None)
    job = after_the_grace(job, settings)
    assert provider.made_for(job) == [task_id]
    assert not SuspectedDuplicate.objects.exists()


def test_a_task_reporting_a_job_that_has_another_is_recorded(
    provider: Provider, alice: Any, client: Client
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED
    hook(client, "1999999999999999", str(job.code))
    hook(client, "1999999999999999", str(job.code))  # a duplicated delivery: recorded once
    (suspect,) = SuspectedDuplicate.objects.all()
    assert (suspect.job_id, suspect.provider_job_id) == (job.pk, "1999999999999999")
    job.refresh_from_db()
    assert job.provider_job_id != "1999999999999999"


def test_a_lost_answer_waits_the_grace_while_a_refused_connection_retries(
    fake: FakeProvider, alice: Any
) -> None:
    job = services.submit(owner=alice, prompt="a fox")

    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    fake.routes["/mj/submit/imagine"] = read_timeout
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.submit_sent_at is not None and "may have reached the provider" in job.fail_note
    assert job.next_attempt_at > timezone.now() + timedelta(seconds=60)

    other = services.submit(owner=alice, prompt="a hare")

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake.routes["/mj/submit/imagine"] = refused
    tasks.dispatch(other.pk)
    other.refresh_from_db()
    assert other.submit_sent_at is None  # nothing reached the provider: an ordinary retry
    assert other.next_attempt_at < timezone.now() + timedelta(seconds=10)
    assert other.can_cancel
    assert lifecycle.cancel(other)


def test_the_operator_sees_suspected_duplicates_in_the_admin(
    provider: Provider, alice: Any, client: Client, admin_client: Client
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    tasks.dispatch(job.pk)
    hook(client, "1999999999999999", str(job.code))
    page = admin_client.get(reverse("admin:gallery_suspectedduplicate_changelist"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "1999999999999999" in body and "is not its task" in body
    assert reverse("admin:gallery_job_change", args=[job.pk]) in body


# --- the provider's task list (MJ_TASK_LIST: a self-hosted midjourney-proxy) -----------------


def lost_submit(provider: Provider, alice: Any, monkeypatch: pytest.MonkeyPatch) -> Job:
    """A job whose submit made a task at the provider, but whose worker died before the
    answer was recorded."""
    job = services.submit(owner=alice, prompt="a fox")
    with monkeypatch.context() as patch:
        crash_at("after_the_provider_made_it", patch)
        with pytest.raises(Crash):
            tasks.dispatch(job.pk)
    return redeliver(job)


def listing(provider: Provider, wrap: str = "") -> Any:
    """GET /mj/task/list as novicezk and trueai answer it: every task kept, newest first."""

    def answer(request: httpx.Request) -> httpx.Response:
        items = [
            {**load("cometapi/fetch_in_progress.json"), "id": task_id, "state": state}
            for task_id, state in reversed(provider.tasks.items())
        ]
        items.append({"id": "", "state": "not ours"})  # a malformed row is skipped
        return httpx.Response(200, json={wrap: items} if wrap else items)

    return answer


@pytest.mark.parametrize("wrap", ["", "data", "items"])
def test_a_lost_submit_found_in_the_task_list_is_adopted_not_resent(
    provider: Provider,
    fake: FakeProvider,
    alice: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    wrap: str,
) -> None:
    settings.MJ_TASK_LIST = True
    other = services.submit(owner=alice, prompt="another")
    tasks.dispatch(other.pk)  # a task of another job is in the list too
    job = lost_submit(provider, alice, monkeypatch)
    (task_id,) = provider.made_for(job)
    fake.routes["/mj/task/list"] = listing(provider, wrap)
    job = after_the_grace(job, settings)
    assert (job.status, job.provider_job_id, job.submit_sent_at) == ("submitted", task_id, None)
    assert provider.made_for(job) == [task_id]
    assert not SuspectedDuplicate.objects.exists()
    assert job.dispatch_lease_until is None


def test_a_lost_submit_missing_from_the_task_list_is_resent_and_recorded(
    provider: Provider,
    fake: FakeProvider,
    alice: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.MJ_TASK_LIST = True
    job = services.submit(owner=alice, prompt="a fox")
    with monkeypatch.context() as patch:
        crash_at("before_the_request", patch)  # nothing reached the provider
        with pytest.raises(Crash):
            tasks.dispatch(job.pk)
    fake.routes["/mj/task/list"] = listing(provider)
    job = after_the_grace(redeliver(job), settings)
    assert job.status == Job.Status.SUBMITTED and len(provider.made_for(job)) == 1
    (suspect,) = SuspectedDuplicate.objects.filter(job=job)
    assert "nor in the provider's task list" in suspect.reason
    assert "/mj/task/list" in fake.paths()


def test_an_unreadable_task_list_delays_the_resend_instead_of_guessing(
    provider: Provider,
    fake: FakeProvider,
    alice: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.MJ_TASK_LIST = True
    job = lost_submit(provider, alice, monkeypatch)
    fake.routes["/mj/task/list"] = lambda request: httpx.Response(502, text="bad gateway")
    job = after_the_grace(job, settings)
    assert job.status == Job.Status.QUEUED and len(provider.made_for(job)) == 1
    assert job.submit_sent_at is not None and job.dispatch_lease_until is None
    assert "Looking for the task of a lost submit" in job.fail_note
    assert job.next_attempt_at > timezone.now()
    # The list answers again: the task is found and adopted.
    fake.routes["/mj/task/list"] = listing(provider)
    job = redeliver(job)
    assert job.status == Job.Status.SUBMITTED and provider.made_for(job) == [job.provider_job_id]
    assert not SuspectedDuplicate.objects.exists()


def test_without_a_task_list_nothing_asks_for_one(
    provider: Provider,
    fake: FakeProvider,
    alice: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings.MJ_TASK_LIST is False
    job = lost_submit(provider, alice, monkeypatch)
    job = after_the_grace(job, settings)
    assert "/mj/task/list" not in fake.paths()
    assert len(provider.made_for(job)) == 2
    (suspect,) = SuspectedDuplicate.objects.filter(job=job)
    assert suspect.reason.endswith("within MJ_SUBMIT_GRACE.")

"""People with different rights in the admin, and a small world of jobs, credits and calls."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from billing import ledger
from gallery import lifecycle, services
from gallery.models import Job, ProviderCall
from mjweb import roles
from mjweb.models import User


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root(django_user_model: Any) -> User:
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw root 1")


@pytest.fixture
def auditor(django_user_model: Any) -> User:
    user = django_user_model.objects.create_user(
        "audrey", "audrey@example.com", "pw audrey 1", is_staff=True
    )
    user.groups.add(Group.objects.get(name=roles.AUDITORS))
    return user


@pytest.fixture
def staff(django_user_model: Any) -> User:
    """Staff without any permission: reaches the admin's index and nothing else."""
    return django_user_model.objects.create_user(
        "stan", "stan@example.com", "pw stan 1", is_staff=True
    )


@pytest.fixture
def root_client(root: User) -> Client:
    return client_for(root)


@pytest.fixture
def auditor_client(auditor: User) -> Client:
    return client_for(auditor)


@pytest.fixture
def staff_client(staff: User) -> Client:
    return client_for(staff)


@dataclass
class World:
    alice: User
    bob: User
    succeeded: Job
    failed: Job
    cancelled: Job
    running: Job
    relax: Job
    old: Job


def call(job: Job | None, path: str, status: int | None, ms: int, error: str = "") -> None:
    ProviderCall.objects.create(
        job=job,
        provider="simulator",
        method="GET" if "fetch" in path else "POST",
        path=path,
        status_code=status,
        latency_ms=ms,
        request_body='{"prompt": "x"}',
        response_body='{"code": 1}',
        error=error,
    )


def running(job: Job, provider_job_id: str) -> Job:
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, provider_job_id=provider_job_id)
    job.refresh_from_db()
    return job


@pytest.fixture
def world(alice: User, bob: User, monkeypatch: pytest.MonkeyPatch) -> World:
    """Alice: a fast imagine that succeeded, one that failed, one cancelled, one running.
    Bob: a relax imagine that succeeded, and one from 40 days ago (outside 30 days).
    Provider calls with ids in their paths, two of them errors."""
    # Bob's old job: made while the clock said 40 days ago.
    real_now = timezone.now
    past = real_now() - dt.timedelta(days=40)
    monkeypatch.setattr(timezone, "now", lambda: past)
    old = running(services.submit(owner=bob, prompt="an old lighthouse"), "1700000000000000")
    lifecycle.succeed(old)
    monkeypatch.setattr(timezone, "now", real_now)
    Job.objects.filter(pk=old.pk).update(created_at=past, finished_at=past)

    succeeded = running(services.submit(owner=alice, prompt="a fox"), "1730000000000001")
    lifecycle.succeed(succeeded)
    failed = running(services.submit(owner=alice, prompt="a wolf"), "1730000000000002")
    lifecycle.fail(failed, kind=Job.FailKind.REJECTED_PROMPT, reason="banned")
    cancelled = services.submit(owner=alice, prompt="a bear")
    lifecycle.cancel(cancelled)
    still = running(services.submit(owner=alice, prompt="an owl"), "1730000000000003")
    relax = running(
        services.submit(owner=bob, prompt="a heron", mode=Job.Mode.RELAX), "1730000000000004"
    )
    lifecycle.succeed(relax)
    ledger.grant(alice, 500, key="test:grant", memo="a present")

    call(succeeded, "/mj-fast/mj/submit/imagine", 200, 120)
    call(succeeded, "/mj/task/1730000000000001/fetch", 200, 40)
    call(failed, "/mj/task/1730000000000002/fetch", 200, 60)
    call(still, "/mj/task/1730000000000003/fetch", 502, 900)
    call(None, "/mj/task/list-by-condition", 200, 80)
    call(None, "/mj/task/list-by-condition", None, 30000, error="timeout: ReadTimeout")
    for job in (succeeded, failed, cancelled, still, relax, old):
        job.refresh_from_db()
    return World(alice, bob, succeeded, failed, cancelled, still, relax, old)

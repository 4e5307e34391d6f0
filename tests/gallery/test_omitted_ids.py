"""A job that a batched read (list-by-condition) leaves out is read on its own, throttled,
before its deadline can fail it; the late-success window is read the same way."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from gallery import lifecycle, services, sync
from gallery.models import Job
from tests.conftest import load
from tests.gallery.factories import FakeProvider, json_answer, make_job

pytestmark = pytest.mark.django_db


def task(base: str, task_id: str) -> dict[str, Any]:
    return {**load(f"cometapi/{base}"), "id": task_id}


def listing_leaves_out(fake: FakeProvider, *omitted: str, base: str = "fetch_in_progress.json"):  # type: ignore[no-untyped-def]
    """list-by-condition answers every id asked but `omitted`; fetch answers `base` for any."""

    def listing(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        return httpx.Response(200, json=[task(base, i) for i in ids if i not in omitted])

    def fetch(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=task(base, request.url.path.split("/")[-2]))

    fake.routes["/mj/task/list-by-condition"] = listing
    fake.routes["/fetch"] = fetch


def single_reads(fake: FakeProvider) -> list[str]:
    return [r.url.path.split("/")[-2] for r in fake.requests if r.url.path.endswith("/fetch")]


def running(owner: Any, task_id: str, **fields: Any) -> Job:
    fields.setdefault("deadline_at", timezone.now() + timedelta(minutes=10))
    return make_job(owner, status=Job.Status.RUNNING, provider_job_id=task_id, **fields)


def test_an_omitted_job_is_read_on_its_own_and_moves(fake: FakeProvider, alice: Any) -> None:
    listed = running(alice, "3001")
    omitted = running(alice, "3002")
    listing_leaves_out(fake, "3002", base="fetch_success.json")
    sync.tick("simulator")
    assert single_reads(fake) == ["3002"]
    omitted.refresh_from_db()
    listed.refresh_from_db()
    assert omitted.result_url and listed.result_url


def test_single_reads_are_throttled_and_capped_most_urgent_first(
    fake: FakeProvider, alice: Any, settings: Any
) -> None:
    settings.MJ_SINGLE_READS_PER_TICK = 2
    now = timezone.now()
    jobs = [running(alice, f"31{n:02}", deadline_at=now + timedelta(minutes=n)) for n in (5, 1, 3)]
    listing_leaves_out(fake, *(job.provider_job_id for job in jobs))
    sync.tick("simulator")
    assert single_reads(fake) == ["3101", "3103"]  # nearest deadlines, two a tick
    sync.tick("simulator")
    assert single_reads(fake) == ["3101", "3103", "3105"]  # the others wait their interval
    sync.tick("simulator")
    assert len(single_reads(fake)) == 3


def test_an_overdue_omitted_job_gets_its_last_read_before_it_fails(
    fake: FakeProvider, alice: Any
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    past = timezone.now() - timedelta(seconds=5)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, provider_job_id="3201", deadline_at=past
    )
    listing_leaves_out(fake, "3201", base="fetch_success.json")
    sync.tick("simulator")
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.result_url  # delivered, not timed out
    assert job.charge == Job.Charge.HELD


def test_an_overdue_job_no_read_reaches_fails_after_the_grace(
    fake: FakeProvider, alice: Any
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    soon_past = timezone.now() - timedelta(seconds=5)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, provider_job_id="3301", deadline_at=soon_past
    )
    fake.routes["/mj/task/list-by-condition"] = json_answer([])
    fake.routes["/fetch"] = lambda request: httpx.Response(503)
    sync.tick("simulator")
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING  # its last read has not got through yet
    long_past = timezone.now() - sync.LAST_READ_GRACE - timedelta(seconds=1)
    Job.objects.filter(pk=job.pk).update(deadline_at=long_past)
    sync.tick("simulator")
    job.refresh_from_db()
    assert (job.status, job.fail_kind, job.charge) == ("failed", "timeout", "released")


def test_a_timed_out_job_left_out_of_the_batch_still_succeeds_late(
    fake: FakeProvider, alice: Any
) -> None:
    job = services.submit(owner=alice, prompt="a fox")
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        provider_job_id="3401",
        deadline_at=timezone.now() - timedelta(seconds=1),
    )
    job.refresh_from_db()
    assert lifecycle.fail(job, kind=Job.FailKind.TIMEOUT, reason="")
    listing_leaves_out(fake, "3401", base="fetch_success.json")
    sync.tick("simulator")
    job.refresh_from_db()
    assert job.result_url  # recorded and handed to ingest, which ends it as a late success
    assert single_reads(fake) == ["3401"]


def test_piapi_reports_are_applied_as_they_arrive(
    alice: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """A slow read does not hold back the others: each job moves as soon as its read is in."""
    import threading

    from gallery import upstream
    from gallery.providers.piapi import PiAPI

    settings.MJ_PROVIDER = "piapi"
    fast = running(alice, "p-fast", provider="piapi")
    slow = running(alice, "p-slow", provider="piapi")
    fast_applied = threading.Event()
    seen_by_slow: list[bool] = []

    def handler(request: httpx.Request) -> httpx.Response:
        task_id = request.url.path.rsplit("/", 1)[-1]
        if task_id == "p-slow":
            # Still in flight while the fast one's report is applied (or 5 s, if it is not).
            seen_by_slow.append(fast_applied.wait(timeout=5))
        body = load("piapi/unified_get_processing.json")
        body["data"]["task_id"] = task_id
        return httpx.Response(200, json=body)

    def get_provider(name: str | None = None, **kwargs: Any) -> PiAPI:
        return PiAPI(
            name="piapi",
            base_url="https://api.piapi.ai",
            api_key="k",
            transport=httpx.MockTransport(handler),
            recorder=kwargs.get("recorder"),
        )

    apply = sync.apply_snapshot

    def applied(job: Job, snapshot: Any) -> None:
        apply(job, snapshot)
        if job.pk == fast.pk:
            fast_applied.set()

    monkeypatch.setattr(upstream, "get_provider", get_provider)
    monkeypatch.setattr(sync, "apply_snapshot", applied)
    sync.tick("piapi")
    assert seen_by_slow == [True]
    for job in (fast, slow):
        job.refresh_from_db()
        assert job.progress > 0

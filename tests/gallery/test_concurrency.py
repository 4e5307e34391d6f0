"""Races with real threads and connections (PostgreSQL; SQLite serialises writers)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.db import connection

from gallery import services, tasks
from gallery.models import Job
from tests.conftest import load
from tests.gallery.factories import answer_through, make_job
from tests.requirements import require_postgres

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _postgres() -> None:
    require_postgres()


def race(count: int, work: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_concurrent_dispatches_submit_once(
    monkeypatch: pytest.MonkeyPatch, settings: Any, alice: Any
) -> None:
    submits: list[int] = []
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            submits.append(1)
        return httpx.Response(200, json=load("cometapi/submit_success.json"))

    answer_through(monkeypatch, handler)
    job = make_job(alice)
    race(8, lambda: tasks.dispatch(job.pk))
    job.refresh_from_db()
    assert len(submits) == 1
    assert job.status == Job.Status.SUBMITTED
    assert job.attempts == 1


def test_one_submit_key_sent_at_once_makes_one_job(alice: Any) -> None:
    key = uuid.uuid4()
    jobs = race(10, lambda: services.submit(owner=alice, prompt="same click", submit_key=key))
    assert len({job.pk for job in jobs}) == 1
    assert Job.objects.filter(owner=alice).count() == 1


def test_status_changes_race_and_exactly_one_wins(alice: Any) -> None:
    job = make_job(alice, status=Job.Status.RUNNING)
    # Every racer read the job while it was running; their compare-and-sets collide.
    seen = [Job.objects.get(pk=job.pk) for _ in range(6)]
    targets = [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED] * 2
    turn = iter(range(6))
    lock = threading.Lock()

    def attempt() -> tuple[str, bool]:
        with lock:
            i = next(turn)
        return targets[i], seen[i].transition(targets[i])

    outcomes = race(6, attempt)
    winners = [target for target, won in outcomes if won]
    assert len(winners) == 1
    job.refresh_from_db()
    assert job.status == winners[0]

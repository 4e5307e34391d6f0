"""/metrics: who may read it, and that each figure is what the database holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ
from prometheus_client.parser import text_string_to_metric_families

from billing.models import CreditAccount
from gallery.models import Job, ProviderCall
from mjweb import health
from tests.gallery.factories import make_job

pytestmark = pytest.mark.django_db


def samples(client: Client, **headers: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics", **headers)
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.content.decode())
        for s in family.samples
    }


def test_only_the_token_or_staff_may_read_the_metrics(
    client: Client, alice_client: Client, admin_client: Client, settings: Any
) -> None:
    settings.MJWEB_METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert "MJWEB_METRICS_TOKEN" in client.get("/metrics").json()["error"]
    assert alice_client.get("/metrics").status_code == 401  # signed in, not staff
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    assert admin_client.get("/metrics").status_code == 200
    settings.MJWEB_METRICS_TOKEN = ""  # no token set: an empty bearer opens nothing
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_the_figures_are_read_from_the_database(alice: Any, admin_client: Client) -> None:
    now = timezone.now()
    make_job(alice, status=Job.Status.RUNNING)
    make_job(alice, status=Job.Status.RUNNING)
    make_job(alice, status=Job.Status.QUEUED, action=Job.Action.REROLL)
    make_job(alice, status=Job.Status.FAILED, finished_at=now)
    make_job(alice, status=Job.Status.FAILED, finished_at=now - timedelta(hours=1))  # too old
    # a result recorded 20 s ago and waiting to be stored
    due_after = timedelta(seconds=120)
    make_job(
        alice,
        status=Job.Status.RUNNING,
        result_url="https://cdn.example/x.png",
        ingest_due_at=now - timedelta(seconds=20) + due_after,
    )
    # ingested in 2 s, ended a minute ago
    started = now - timedelta(seconds=62)
    make_job(
        alice,
        status=Job.Status.SUCCEEDED,
        finished_at=started + timedelta(seconds=2),
        ingest_due_at=started + due_after,
    )
    for path, status, ms in (
        ("/mj/task/1796195861383475/fetch", 200, 40),
        ("/mj/task/1796195861383476/fetch", 200, 60),
        ("/mj/task/1796195861383477/fetch", 502, 900),
    ):
        ProviderCall.objects.create(
            provider="simulator", method="GET", path=path, status_code=status, latency_ms=ms
        )
    OrmQ.objects.create(key="mjweb-ingest", payload="x", lock=now)
    OrmQ.objects.create(key="mjweb-ingest", payload="y", lock=now)
    CreditAccount.objects.filter(user=alice).update(held=70)
    health.beat(["jobs"])

    got = samples(admin_client)

    def at(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert at("mjweb_jobs_in_flight", action="imagine", status="running") == 3
    assert at("mjweb_jobs_in_flight", action="reroll", status="queued") == 1
    assert at("mjweb_jobs_ended_recent", action="imagine", status="failed") == 1
    fetch = {"endpoint": "/mj/task/{id}/fetch", "method": "GET", "provider": "simulator"}
    assert at("mjweb_provider_calls_recent", **fetch, outcome="ok") == 2
    assert at("mjweb_provider_calls_recent", **fetch, outcome="failed") == 1
    latency = at("mjweb_provider_call_latency_seconds_recent", **fetch, outcome="ok")
    assert latency == pytest.approx(0.1)
    worst = at("mjweb_provider_call_latency_seconds_max_recent", **fetch, outcome="failed")
    assert worst == pytest.approx(0.9)
    assert at("mjweb_task_queue_depth", queue="ingest") == 2
    assert at("mjweb_task_queue_depth", queue="jobs") == 0
    assert at("mjweb_credits_held") == 70
    assert at("mjweb_ingest_waiting") == 1
    assert at("mjweb_ingest_oldest_waiting_seconds") == pytest.approx(20, abs=5)
    assert at("mjweb_ingest_seconds_recent", measure="count") == 1
    assert at("mjweb_ingest_seconds_recent", measure="seconds") == pytest.approx(2)
    assert 0 <= at("mjweb_worker_last_seen_seconds", queue="jobs") < 5
    assert at("mjweb_worker_last_seen_seconds", queue="ingest") == -1
